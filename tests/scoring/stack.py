"""Helpers for the scoring tests: the registry + scoring stack, call history builders, assertions on health.

Numbers are created in the registry; scoring learns them from the registry's feed. Time is the shared FakeClock.
The periodic rescoring pass runs on demand (``stack.rescore_now()``: the service's own Housekeeper against its
database), so a test decides exactly when time-driven changes happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest

from nhm.registry.v1 import registry_pb2 as rpb
from nhm.registry.v1 import registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.scoring.v1 import scoring_pb2_grpc
from nhm.type.v1 import types_pb2 as types
from nhm_platform.clock import FakeClock
from nhm_platform.db import Database
from nhm_platform.protoconv import to_duration, to_timestamp
from nhm_registry.app import SPEC as REGISTRY
from nhm_scoring.app import SPEC as SCORING
from nhm_scoring.housekeeping import Housekeeper, PassResult
from nhm_testing.keys import SERVICE_KEY, TENANT_A_KEY, TENANT_B_KEY, auth

A, B, SERVICE = auth(TENANT_A_KEY), auth(TENANT_B_KEY), auth(SERVICE_KEY)
OUT, IN = spb.CALL_DIRECTION_OUTBOUND, spb.CALL_DIRECTION_INBOUND


def phone(i: int, area_code: str = "415") -> str:
    """Distinct valid geographic numbers: +1 <area> 867 xxxx (never 555-01xx)."""
    return f"+1{area_code}867{i:04d}"


def prospect(i: int) -> str:
    return f"+1212736{i % 10_000:04d}"


@dataclass
class CallMaker:
    """Builds CallOutcome messages with unique event ids."""

    counter: int = 0

    def outbound(self, number: str, when: datetime, *, answered: bool = False, talk: float = 0.0, sip: int = 0,
                 to: str | None = None, event_id: str | None = None,
                 disposition: int | None = None) -> spb.CallOutcome:
        self.counter += 1
        if disposition is None:
            disposition = spb.CALL_DISPOSITION_ANSWERED if answered else spb.CALL_DISPOSITION_NO_ANSWER
        return spb.CallOutcome(
            event_id=event_id or f"call-{self.counter}", phone_number=number, direction=OUT,
            remote_number=to if to is not None else prospect(self.counter), start_time=to_timestamp(when),
            answered=answered, talk_duration=to_duration(timedelta(seconds=talk)),
            sip_code=sip or (200 if answered else 480), disposition=disposition)

    def inbound(self, number: str, when: datetime) -> spb.CallOutcome:
        self.counter += 1
        return spb.CallOutcome(event_id=f"call-{self.counter}", phone_number=number, direction=IN,
                               remote_number=prospect(self.counter), start_time=to_timestamp(when), answered=True,
                               talk_duration=to_duration(timedelta(seconds=90)), sip_code=200,
                               disposition=spb.CALL_DISPOSITION_ANSWERED)

    def day(self, number: str, start: datetime, *, calls: int, answered: int, talk: float = 60.0,
            inbound: int = 0, span: timedelta = timedelta(hours=12)) -> list[spb.CallOutcome]:
        """calls outbound calls spread evenly over span from start, the first `answered` of every even spread
        answered; plus inbound calls."""
        step = span / max(calls, 1)
        picks = {round(i * calls / answered) for i in range(answered)} if answered else set()
        made = [self.outbound(number, start + step * i, answered=i in picks, talk=talk if i in picks else 0.0)
                for i in range(calls)]
        made += [self.inbound(number, start + span * (i + 0.5) / max(inbound, 1)) for i in range(inbound)]
        return made


@dataclass
class Stack:
    registry: registry_pb2_grpc.RegistryServiceStub
    scoring: scoring_pb2_grpc.ScoringServiceStub
    scoring_handle: Any
    registry_handle: Any
    clock: FakeClock
    calls: CallMaker = field(default_factory=CallMaker)
    _db: Database | None = None

    # --- registry ---

    def create_numbers(self, *numbers: str, metadata: Any = A, wait: bool = True, **spec: Any) -> None:
        spec.setdefault("inbound_enabled", True)
        spec.setdefault("attestation", types.ATTESTATION_A)
        request = rpb.BatchCreateNumbersRequest(numbers=[rpb.NumberSpec(phone_number=n, **spec) for n in numbers])
        self.registry.BatchCreateNumbers(request, metadata=metadata)
        if wait:
            for number in numbers:
                self.wait_for(lambda number=number: self.try_health(number, metadata) is not None,
                              f"scoring to learn {number} from the registry")

    # --- scoring ---

    def report(self, outcomes: Sequence[spb.CallOutcome], metadata: Any = A) -> spb.IngestSummary:
        return self.scoring.ReportCallOutcomes(spb.ReportCallOutcomesRequest(outcomes=outcomes),
                                               metadata=metadata).summary

    def observe(self, number: str, source: int, label: int, *, when: datetime | None = None, raw_label: str = "",
                event_id: str = "", metadata: Any = A) -> spb.IngestSummary:
        self.calls.counter += 1
        observation = spb.ReputationObservation(
            event_id=event_id or f"obs-{self.calls.counter}", phone_number=number, source=source, label=label,
            raw_label=raw_label, observe_time=to_timestamp(when or self.clock.now()))
        return self.scoring.ReportReputationObservations(
            spb.ReportReputationObservationsRequest(observations=[observation]), metadata=metadata).summary

    def complain(self, number: str, count: int = 1, *, when: datetime | None = None,
                 kind: int = spb.COMPLAINT_KIND_COMPLAINT, metadata: Any = A) -> spb.IngestSummary:
        complaints = []
        for _ in range(count):
            self.calls.counter += 1
            complaints.append(spb.Complaint(event_id=f"complaint-{self.calls.counter}", phone_number=number, kind=kind,
                                            remote_number=prospect(self.calls.counter),
                                            report_time=to_timestamp(when or self.clock.now())))
        return self.scoring.ReportComplaints(spb.ReportComplaintsRequest(complaints=complaints),
                                             metadata=metadata).summary

    def health(self, number: str, metadata: Any = A) -> spb.NumberHealth:
        return self.scoring.GetHealth(spb.GetHealthRequest(phone_number=number), metadata=metadata).health

    def try_health(self, number: str, metadata: Any = A) -> spb.NumberHealth | None:
        try:
            return self.health(number, metadata)
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def history(self, number: str, metadata: Any = A) -> list[spb.HealthTransition]:
        return list(self.scoring.ListHealthHistory(spb.ListHealthHistoryRequest(phone_number=number),
                                                   metadata=metadata).transitions)

    def rescore_now(self) -> PassResult:
        """One periodic pass (rescore time-sensitive numbers, prune), as the service runs it, at the clock's now."""
        if self._db is None:
            self._db = Database(self.scoring_handle.settings.database_url)
        return Housekeeper(self._db, self.clock, self.scoring_handle.settings).run_once()

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def triggered(health: spb.NumberHealth) -> set[str]:
    return {spb.RiskFactorKind.Name(f.kind).removeprefix("RISK_FACTOR_KIND_") for f in health.factors if f.triggered}


def factor(health: spb.NumberHealth, kind: int) -> spb.RiskFactor:
    return next(f for f in health.factors if f.kind == kind)


def carriers(health: spb.NumberHealth) -> dict[str, str]:
    return {key: types.HealthStatus.Name(value).removeprefix("HEALTH_STATUS_")
            for key, value in health.carrier_status.items()}


def status(health: spb.NumberHealth | spb.HealthTransition, attribute: str = "status") -> str:
    return types.HealthStatus.Name(getattr(health, attribute)).removeprefix("HEALTH_STATUS_")


def error_of(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def start_stack(start_service: Callable[..., Any], clock: FakeClock, **scoring_settings: Any) -> Stack:
    registry = start_service(REGISTRY, watch_heartbeat_interval=0.2, watch_poll_interval=0.05)
    settings = {"registry_target": registry.address, "rescore_interval": 3600.0, "watch_heartbeat_interval": 0.2,
                "watch_poll_interval": 0.05, **scoring_settings}
    scoring = start_service(SCORING, **settings)
    return Stack(registry_pb2_grpc.RegistryServiceStub(registry.channel()),
                 scoring_pb2_grpc.ScoringServiceStub(scoring.channel()), scoring, registry, clock)
