"""``nhm simulate``: a dialer simulation against a running platform, so a newcomer sees the whole loop work.

It creates a campaign and a pool of numbers, picks a few "bad" ones, and dials: every call asks allocation for a
caller ID, "rings" the prospect and reports the outcome through the SDK's background reporter. Good numbers are
answered at a realistic rate and talk for a minute or two; bad numbers are rarely answered, get SIP 608 blocks,
draw complaints, and reputation feeds label them "Spam Likely". Scoring flags them, remediation quarantines them,
allocation stops handing them out — and the healthy numbers carry the load. The run ends with a table of what
happened to each number, and exits 0 only if every bad number was quarantined and none was used afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nhm.type.v1 import types_pb2 as types
from nhm_sdk._client import Client
from nhm_sdk._errors import (
    AlreadyExistsError,
    CallingRestrictedError,
    NhmError,
    NotFoundError,
    NothingEligibleError,
)
from nhm_sdk.cli._context import Context, Subparsers, command
from nhm_sdk.cli._output import enum_name, table

# Area codes the pool and the prospects live in, with an exchange used for the pool's numbers.
AREAS = (("415", "867"), ("212", "736"), ("312", "786"), ("305", "674"))
BAD_STATES = (types.LIFECYCLE_STATE_QUARANTINED, types.LIFECYCLE_STATE_RESTING, types.LIFECYCLE_STATE_RETIRED)


def register(commands: Subparsers) -> None:
    p = command(commands, "simulate", simulate, "drive realistic dialer traffic and watch bad numbers get "
                                                "flagged, quarantined and replaced")
    p.add_argument("--numbers", type=int, default=16, help="pool size (default 16)")
    p.add_argument("--bad", type=int, default=3, help="how many of them misbehave (default 3)")
    p.add_argument("--calls", type=int, default=400, help="calls before checking remediation (default 400)")
    p.add_argument("--after-calls", type=int, default=100,
                   help="calls placed after remediation, to show who carries the load (default 100)")
    p.add_argument("--concurrency", type=int, default=4, help="simultaneous dialer lines (default 4)")
    p.add_argument("--answer-rate", type=float, default=0.25, help="good numbers' answer rate (default 0.25)")
    p.add_argument("--settle", type=float, default=60.0,
                   help="seconds to wait for scoring and remediation to act (default 60)")
    p.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable run")
    p.add_argument("--quiet", action="store_true", help="only the final summary")


@dataclass
class Tally:
    calls: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    restricted: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Simulation:
    def __init__(self, client: Client, context: Context, options: argparse.Namespace) -> None:
        self.client = client
        self.context = context
        self.options = options
        self.random = random.Random(options.seed)
        self.tally = Tally()
        self.campaign_id = ""
        self.pool: list[str] = []
        self.bad: set[str] = set()
        self._observed: set[str] = set()
        # The platform's clock, as allocation reports it: event times follow it, not this machine's.
        self.server_now: dt.datetime | None = None

    def log(self, text: str) -> None:
        if not self.options.quiet:
            self.context.say(text)

    # --- setup ----------------------------------------------------------------------------------------------

    def setup(self) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        campaign = self.client.create_campaign(
            f"simulation {stamp}", description="nhm simulate: synthetic dialer traffic",
            # Calls at any hour, so the simulation works whenever it is run; real campaigns keep 08:00-21:00.
            policy={"calling_window_start": "00:00", "calling_window_end": "23:59",
                    "daily_cap_per_number": 100, "hourly_cap_per_number": 50})
        self.campaign_id = campaign.id
        size, bad = max(2, self.options.numbers), max(0, min(self.options.bad, self.options.numbers - 1))
        for _attempt in range(10):
            candidates = self._pool_candidates(size)
            try:
                created = self.client.import_numbers(
                    [{"phone_number": n, "display_name": "Simulated", "inbound_enabled": True, "attestation": "A"}
                     for n in candidates], campaign_ids=[campaign.id])
            except AlreadyExistsError:
                continue  # an earlier run used some of these; draw others
            self.pool = [n.phone_number for n in created]
            break
        else:
            raise RuntimeError("could not find unused numbers for the pool")
        self.bad = set(self.random.sample(self.pool, bad))
        self._wait_for_allocation()
        self.log(f"campaign {campaign.id}: {len(self.pool)} numbers, {len(self.bad)} of them will misbehave: "
                 + ", ".join(sorted(self.bad)))

    def _wait_for_allocation(self) -> None:
        """Allocation learns numbers from the registry's feed: start dialling once it knows the whole pool."""
        deadline = time.monotonic() + self.options.settle
        while time.monotonic() < deadline:
            try:
                if len(self.client.get_campaign_usage(self.campaign_id).numbers) >= len(self.pool):
                    return
            except NotFoundError:
                pass  # the campaign has not reached allocation yet
            time.sleep(0.2)
        self.context.warn("allocation does not know the pool yet (is it following the registry?); dialling anyway")

    def _pool_candidates(self, size: int) -> list[str]:
        numbers: set[str] = set()
        while len(numbers) < size:
            npa, nxx = AREAS[len(numbers) % len(AREAS)]
            numbers.add(f"+1{npa}{nxx}{self.random.randrange(2000, 9999):04d}")
        return sorted(numbers)

    def prospect(self) -> str:
        npa, pool_nxx = self.random.choice(AREAS)
        while True:
            nxx = self.random.randrange(201, 999)
            if str(nxx) != pool_nxx and nxx != 555 and nxx % 100 != 11:  # never a neighbour, never fictional
                return f"+1{npa}{nxx}{self.random.randrange(0, 10000):04d}"

    # --- one call -------------------------------------------------------------------------------------------

    def dial(self, after: bool) -> None:
        prospect = self.prospect()
        try:
            with self.client.call(self.campaign_id, prospect) as call:
                caller_id = call.caller_id
                self.server_now = call.start_time
                answered, seconds, sip = self._ring(caller_id in self.bad)
                call.report(answered=answered, talk_duration=seconds if answered else None, sip_code=sip)
        except NothingEligibleError:
            with self.tally.lock:
                self.tally.refused += 1
            return
        except CallingRestrictedError:
            with self.tally.lock:
                self.tally.restricted += 1
            return
        except NhmError as exc:
            with self.tally.lock:
                self.tally.errors[exc.code.name] += 1
            return
        with self.tally.lock:
            (self.tally.after if after else self.tally.calls)[caller_id] += 1
            count = self.tally.calls[caller_id]
        if caller_id in self.bad and not after:
            self._bad_number_signals(caller_id, prospect, count)

    def _ring(self, bad: bool) -> tuple[bool, float, int]:
        roll = self.random.random()
        if bad:
            if roll < 0.04:
                return True, self.random.uniform(2, 8), 200  # hung up at once
            if roll < 0.40:
                return False, 0.0, 608  # an analytics engine blocked the call
            if roll < 0.55:
                return False, 0.0, 603
            return False, 0.0, 480
        if roll < self.options.answer_rate:
            return True, min(900.0, self.random.lognormvariate(4.1, 0.6)), 200  # about a minute, some longer
        if roll < self.options.answer_rate + 0.08:
            return False, 0.0, 486  # busy
        return False, 0.0, 480  # no answer (or voicemail)

    def _bad_number_signals(self, number: str, prospect: str, count: int) -> None:
        """What the outside world says about a bad number: complaints, and labels from reputation feeds."""
        now = self.server_now or dt.datetime.now(dt.UTC)
        if count % 4 == 0:
            self.client.report_complaints([{"phone_number": number, "remote_number": prospect, "report_time": now,
                                            "source": "simulated prospect", "detail": "robocall, hung up"}])
        if count >= 6 and number not in self._observed:
            self._observed.add(number)
            self.client.report_reputation_observations([
                {"phone_number": number, "source": "HIYA", "label": "SPAM", "raw_label": "Spam Likely",
                 "observe_time": now},
                {"phone_number": number, "source": "FIRST_ORION", "label": "SCAM", "raw_label": "Scam Likely",
                 "observe_time": now}])

    def run_calls(self, count: int, after: bool) -> None:
        done = 0
        step = max(1, count // 4)
        with ThreadPoolExecutor(max_workers=max(1, self.options.concurrency)) as pool:
            for _ in pool.map(lambda _i: self.dial(after), range(count)):
                done += 1
                if done % step == 0 and not after:
                    self.client.outcomes.flush(10)
                    self.log(f"  {done}/{count} calls placed; {self.tally.refused} refused")
        self.client.outcomes.flush(30)

    # --- checks ---------------------------------------------------------------------------------------------

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        numbers = {n.phone_number: n for n in self.client.list_numbers(campaign_id=self.campaign_id,
                                                                       page_size=500)}
        # Quarantine takes numbers out of the campaign's rotation, not out of the campaign: fall back to get.
        for number in self.pool:
            if number not in numbers:
                numbers[number] = self.client.get_number(number)
        health: dict[str, Any] = {}
        try:
            health = {h.phone_number: h for h in self.client.list_health(campaign_id=self.campaign_id,
                                                                         page_size=500)}
        except NhmError as exc:
            self.context.warn(f"scoring: {exc}")
        return numbers, health

    def wait_for_remediation(self) -> bool:
        deadline = time.monotonic() + self.options.settle
        while True:
            numbers, _health = self.snapshot()
            pending = [n for n in self.bad if numbers[n].state not in BAD_STATES]
            if not pending or time.monotonic() >= deadline:
                return not pending
            time.sleep(1.0)

    def summary(self) -> bool:
        numbers, health = self.snapshot()
        cases: dict[str, str] = {}
        try:
            for case in self.client.list_cases(campaign_id=self.campaign_id, page_size=200):
                cases.setdefault(case.phone_number, f"{enum_name(case, 'state')}/{enum_name(case, 'stage')}")
        except NhmError as exc:
            self.context.warn(f"remediation: {exc}")
        rows = []
        for number in sorted(self.pool, key=lambda n: (n not in self.bad, n)):
            status = enum_name(health[number], "status") if number in health else "?"
            rows.append([number, "bad" if number in self.bad else "good", self.tally.calls[number],
                         self.tally.after[number], status, enum_name(numbers[number], "state"),
                         cases.get(number, "")])
        self.context.say("")
        table(rows, ["NUMBER", "ROLE", "CALLS", "CALLS AFTER", "HEALTH", "STATE", "CASE"], self.context.out)
        quarantined = [n for n in self.bad if numbers[n].state in BAD_STATES]
        used_after = sum(self.tally.after[n] for n in self.bad)
        carried = sum(self.tally.after.values())
        self.context.say("")
        self.context.say(f"{len(quarantined)}/{len(self.bad)} misbehaving numbers were flagged and quarantined.")
        self.context.say(f"After remediation, healthy numbers carried {carried - used_after} of {carried} calls "
                         f"({self.tally.refused} refused as nothing eligible"
                         + (f", errors: {dict(self.tally.errors)}" if self.tally.errors else "") + ").")
        stats = self.client.outcomes.stats
        self.context.say(f"Outcomes reported: {stats.accepted} accepted, {stats.duplicates} duplicates, "
                         f"{stats.rejected} rejected, {stats.failed + stats.dropped} lost.")
        return len(quarantined) == len(self.bad) and used_after == 0 and carried > 0


def simulate(context: Context, args: argparse.Namespace) -> int:
    simulation = Simulation(context.client, context, args)
    simulation.setup()
    simulation.log(f"placing {args.calls} calls on {args.concurrency} lines…")
    simulation.run_calls(args.calls, after=False)
    simulation.log(f"waiting up to {args.settle:.0f}s for scoring to flag and remediation to quarantine…")
    settled = simulation.wait_for_remediation()
    if not settled:
        context.warn("not every misbehaving number was quarantined in time (is remediation running?)")
    simulation.log(f"placing {args.after_calls} more calls…")
    simulation.run_calls(args.after_calls, after=True)
    return 0 if simulation.summary() else 1
