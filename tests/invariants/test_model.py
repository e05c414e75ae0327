"""Model-based test: the allocation service and a small pure-Python model agree at every step.

Hypothesis drives a real allocation server (fake registry and scoring feeds, injected clock) through
allocations, releases, retries, flags and clears, rest and warm-up, cap changes, time passing, local midnight
and daylight-saving changes. The model says what must happen: which calls are refused (per-prospect limit,
nothing eligible), which numbers may take a call (the least used today of the eligible ones), and each number's
calls today and this hour. Every example gets its own campaign, numbers and prospects on one server, and time
only moves forward. NHM_RELIABILITY_SCALE multiplies the examples (the long version).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
from allocation.support import Allocation
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from invariants import load

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm.type.v1 import types_pb2 as t
from nhm_allocation.app import SPEC
from nhm_testing.keys import TENANT_A_KEY, auth

SCALE = load.SCALE
pytestmark = load.RELIABILITY_MARKS
NEW_YORK = ZoneInfo("America/New_York")  # the default cap reset zone
WARMUP_CAPS, WARMUP_STEP = (1, 2, 3), timedelta(days=1)
PER_PROSPECT_DAY = 3
NUMBERS_PER_EXAMPLE, PROSPECTS_PER_EXAMPLE = 3, 3


@dataclass
class Entry:
    call_id: str
    prospect: str
    phone: str
    time: datetime
    released: bool = False


@dataclass
class NumberModel:
    state: str = "active"  # active | resting | warming
    flagged: bool = False
    warm_start: datetime | None = None


@dataclass
class Model:
    """What the rules say, computed independently of the service's code."""

    daily_cap: int
    hourly_cap: int
    numbers: dict[str, NumberModel]
    ledger: list[Entry] = field(default_factory=list)

    @staticmethod
    def day(when: datetime) -> date:
        return when.astimezone(NEW_YORK).date()

    @staticmethod
    def hour(when: datetime) -> datetime:
        return when.replace(minute=0, second=0, microsecond=0)

    def cap(self, phone: str, now: datetime) -> int:
        number = self.numbers[phone]
        if number.state == "warming" and number.warm_start is not None:
            step = int((now - number.warm_start) / WARMUP_STEP)
            return min(WARMUP_CAPS[min(max(step, 0), len(WARMUP_CAPS) - 1)], self.daily_cap)
        return self.daily_cap

    def today(self, phone: str, now: datetime) -> int:
        return sum(1 for e in self.ledger if e.phone == phone and not e.released and self.day(e.time) == self.day(now))

    def this_hour(self, phone: str, now: datetime) -> int:
        return sum(1 for e in self.ledger
                   if e.phone == phone and not e.released and self.hour(e.time) == self.hour(now))

    def eligible(self, now: datetime) -> list[str]:
        return [phone for phone, n in self.numbers.items()
                if n.state in ("active", "warming") and not n.flagged
                and self.today(phone, now) < self.cap(phone, now) and self.this_hour(phone, now) < self.hourly_cap]

    def prospect_limited(self, prospect: str, now: datetime) -> bool:
        recent = [e for e in self.ledger if e.prospect == prospect and not e.released and e.time > now - timedelta(1)]
        return len(recent) >= PER_PROSPECT_DAY


def next_dst_change(after: datetime) -> datetime:
    """The first daylight-saving change in New York after `after` (an hour-by-hour search)."""
    when = after.replace(minute=0, second=0, microsecond=0)
    offset = when.astimezone(NEW_YORK).utcoffset()
    while True:
        when += timedelta(hours=1)
        if when.astimezone(NEW_YORK).utcoffset() != offset:
            return when


def next_midnight(after: datetime) -> datetime:
    local = after.astimezone(NEW_YORK).date() + timedelta(days=1)
    return datetime(local.year, local.month, local.day, tzinfo=NEW_YORK).astimezone(UTC)


def test_service_and_model_agree_at_every_step(start_service, upstream, clock):
    handle = start_service(SPEC, registry_target=upstream.address, scoring_target=upstream.address,
                           housekeeping_interval=0)
    service = Allocation(handle, upstream)
    phones = (f"+1415867{n:04d}" for n in itertools.count(1000))
    prospects = (f"+1415902{n:04d}" for n in itertools.count(1000))
    examples = itertools.count()

    class AllocationMachine(RuleBasedStateMachine):
        @initialize(daily_cap=st.integers(1, 4), hourly_cap=st.integers(1, 5))
        def new_campaign(self, daily_cap: int, hourly_cap: int) -> None:
            self.campaign = f"m{next(examples)}"
            self.calls = itertools.count()
            self.model = Model(daily_cap, hourly_cap, {next(phones): NumberModel() for _ in range(NUMBERS_PER_EXAMPLE)})
            self.prospects = [next(prospects) for _ in range(PROSPECTS_PER_EXAMPLE)]
            self.answers: dict[str, str] = {}
            self.publish_policy()
            for phone in self.model.numbers:
                upstream.number(phone, campaigns=(self.campaign,))
            service.sync()

        def publish_policy(self) -> None:
            upstream.campaign(self.campaign, daily_cap_per_number=self.model.daily_cap,
                              hourly_cap_per_number=self.model.hourly_cap, sticky_caller_id=False,
                              calling_window_start=(0, 0), calling_window_end=(0, 0),
                              max_calls_per_prospect_per_day=PER_PROSPECT_DAY, max_calls_per_prospect_per_week=0)

        def publish_number(self, phone: str) -> None:
            number = self.model.numbers[phone]
            state = {"active": t.LIFECYCLE_STATE_ACTIVE, "resting": t.LIFECYCLE_STATE_RESTING,
                     "warming": t.LIFECYCLE_STATE_WARMING}[number.state]
            upstream.number(phone, campaigns=(self.campaign,), state=state, warmup_caps=WARMUP_CAPS,
                            warmup_step=WARMUP_STEP, warmup_start=number.warm_start)
            service.sync()

        def phone(self, index: int) -> str:
            return list(self.model.numbers)[index]

        @rule(prospect=st.integers(0, PROSPECTS_PER_EXAMPLE - 1))
        def allocate(self, prospect: int) -> None:
            now, destination = clock.now(), self.prospects[prospect]
            call_id = f"{self.campaign}-{next(self.calls)}"
            limited = self.model.prospect_limited(destination, now)
            eligible = self.model.eligible(now)
            try:
                caller_id = service.allocate(destination, call_id, campaign=self.campaign).caller_id
            except grpc.RpcError as error:
                expected = (grpc.StatusCode.FAILED_PRECONDITION if limited
                            else grpc.StatusCode.RESOURCE_EXHAUSTED)
                assert error.code() is expected, f"{error.code()} {error.details()}; model: {eligible=} {limited=}"
                assert limited or not eligible, f"refused while {eligible} had room: {error.details()}"
                return
            assert not limited, f"{destination} was called {PER_PROSPECT_DAY} times in 24 h, yet got {caller_id}"
            assert caller_id in eligible, f"{caller_id} is not eligible; model: {eligible}"
            least = min(self.model.today(p, now) for p in eligible)
            assert self.model.today(caller_id, now) == least, f"{caller_id} is not among the least used of {eligible}"
            self.model.ledger.append(Entry(call_id, destination, caller_id, now))
            self.answers[call_id] = caller_id

        @precondition(lambda self: self.model.ledger)
        @rule(pick=st.integers(0, 10**6))
        def retry(self, pick: int) -> None:
            entry = self.model.ledger[pick % len(self.model.ledger)]
            assert service.allocate(entry.prospect, entry.call_id, campaign=self.campaign).caller_id == entry.phone

        @precondition(lambda self: self.model.ledger)
        @rule(pick=st.integers(0, 10**6))
        def release(self, pick: int) -> None:
            entry = self.model.ledger[pick % len(self.model.ledger)]
            released = service.stub.ReleaseAllocation(pb.ReleaseAllocationRequest(call_id=entry.call_id),
                                                      metadata=auth(TENANT_A_KEY), timeout=10).released
            assert released is not entry.released
            entry.released = True

        @rule(index=st.integers(0, NUMBERS_PER_EXAMPLE - 1), flagged=st.booleans())
        def flag_or_clear(self, index: int, flagged: bool) -> None:
            phone = self.phone(index)
            self.model.numbers[phone].flagged = flagged
            upstream.health(phone, t.HEALTH_STATUS_FLAGGED if flagged else t.HEALTH_STATUS_HEALTHY)
            service.sync()

        @rule(index=st.integers(0, NUMBERS_PER_EXAMPLE - 1), state=st.sampled_from(["active", "resting", "warming"]))
        def rest_warm_or_activate(self, index: int, state: str) -> None:
            phone = self.phone(index)
            self.model.numbers[phone] = NumberModel(state, self.model.numbers[phone].flagged,
                                                    clock.now() if state == "warming" else None)
            self.publish_number(phone)

        @rule(daily_cap=st.integers(0, 5), hourly_cap=st.integers(1, 5))
        def change_caps(self, daily_cap: int, hourly_cap: int) -> None:
            self.model.daily_cap, self.model.hourly_cap = daily_cap, hourly_cap
            self.publish_policy()
            service.sync()

        @rule(minutes=st.integers(1, 26 * 60))
        def time_passes(self, minutes: int) -> None:
            clock.advance(timedelta(minutes=minutes))

        @rule(before=st.integers(0, 3))
        def to_local_midnight(self, before: int) -> None:
            clock.set(next_midnight(clock.now()) - timedelta(minutes=before))

        @rule(before=st.integers(0, 90))
        def to_daylight_saving_change(self, before: int) -> None:
            clock.set(max(clock.now(), next_dst_change(clock.now()) - timedelta(minutes=before)))

        @invariant()
        def usage_agrees(self) -> None:
            now = clock.now()
            for phone in self.model.numbers:
                usage = service.usage(phone, self.campaign)
                expected = (self.model.today(phone, now), self.model.cap(phone, now), self.model.this_hour(phone, now),
                            self.model.hourly_cap)
                assert (usage.calls_today, usage.daily_cap, usage.calls_this_hour, usage.hourly_cap) == expected, (
                    f"{phone} at {now.astimezone(NEW_YORK)}: service {usage}, model (today, cap, hour, hourly cap) "
                    f"{expected}")

    run_state_machine_as_test(AllocationMachine, settings=settings(
        max_examples=12 * SCALE, stateful_step_count=25, deadline=None, derandomize=SCALE == 1,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]))
