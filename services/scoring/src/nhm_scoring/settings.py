"""The scoring service's settings (environment variables NHM_SCORING_<FIELD> or NHM_<FIELD>)."""

from __future__ import annotations

from dataclasses import dataclass

from nhm_platform.settings import ServerSettings


@dataclass(frozen=True)
class ScoringSettings(ServerSettings):
    port: int = 50052
    # Address of the registry service, whose change feed this service follows.
    registry_target: str = "localhost:50051"
