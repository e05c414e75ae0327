"""The allocation service's settings (environment variables NHM_ALLOCATION_<FIELD> or NHM_<FIELD>)."""

from __future__ import annotations

from dataclasses import dataclass

from nhm_platform.settings import ServerSettings


@dataclass(frozen=True)
class AllocationSettings(ServerSettings):
    port: int = 50053
    # Address of the registry service, whose change feed this service follows; empty: do not follow.
    registry_target: str = "localhost:50051"
    # Address of the scoring service, whose change feed this service follows; empty: do not follow.
    scoring_target: str = "localhost:50052"
    # Candidates read per index walk step of AllocateNumber (one statement per window). Larger windows cost
    # more per call; smaller ones cost a statement more when the least used numbers are passed over.
    candidate_window: int = 16
