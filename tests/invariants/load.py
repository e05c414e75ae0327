"""Load invariants: several allocation processes on one PostgreSQL database, several client processes, and
the checks that every run (and every fault run) must pass.

A scenario is a set of campaigns, each with the numbers that may serve it (and the daily cap that applies to
each), members that must never serve it (resting, quarantined, retired, flagged, blocked) and its prospects.
The fake upstream (allocation test support) publishes them on the registry and scoring feeds, which every
allocation process follows. Each check reads the outcomes the clients saw and the allocation database and
returns its violations, one line each: an empty list is a pass.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from allocation.support import FakeUpstream
from sqlalchemy import create_engine, text

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm.type.v1 import types_pb2
from nhm_allocation.policy import DEFAULT_CAP_RESET_ZONE
from nhm_testing.databases import owner_url
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, TENANT_B, TENANT_B_KEY, auth
from nhm_testing.processes import ServiceProcess, service_environment

# The long versions (make reliability sets 10) multiply calls, caps, prospects and model examples by this.
SCALE = int(os.environ.get("NHM_RELIABILITY_SCALE", "1"))
# Marks every reliability test: it starts processes, and its timeout (the suite's 300 s) grows with SCALE.
RELIABILITY_MARKS = [pytest.mark.slow, pytest.mark.timeout(300 * max(1, SCALE))]

FLAGGED, BLOCKED = types_pb2.HEALTH_STATUS_FLAGGED, types_pb2.HEALTH_STATUS_BLOCKED
HEALTHY = types_pb2.HEALTH_STATUS_HEALTHY
RESTING, QUARANTINED, RETIRED = (types_pb2.LIFECYCLE_STATE_RESTING, types_pb2.LIFECYCLE_STATE_QUARANTINED,
                                 types_pb2.LIFECYCLE_STATE_RETIRED)
WARMING = types_pb2.LIFECYCLE_STATE_WARMING
KEYS = {TENANT_A: TENANT_A_KEY, TENANT_B: TENANT_B_KEY}


def numbers(prefix: str, start: int, count: int) -> list[str]:
    """`count` caller IDs +1<prefix><start..>, prefix = area code + exchange."""
    return [f"+1{prefix}{start + i:04d}" for i in range(count)]


@dataclass
class Campaign:
    tenant: str
    campaign_id: str
    # Numbers that may serve the campaign, with the daily cap that applies to each.
    eligible: dict[str, int]
    # Members that must never get a call: phone -> "resting", "quarantined", "retired", "flagged" or "blocked".
    excluded: dict[str, str]
    prospects: list[str]
    calls: int
    daily_cap: int
    hourly_cap: int = 1000
    per_prospect_day: int = 0
    sticky: bool = False
    # Demand is far above capacity: every eligible number ends the run at its cap.
    expect_full: bool = False
    # Capacity is far above demand: no call may be refused.
    expect_no_refusal: bool = False
    # Some calls are released (never placed) right after their allocation, with a retried release.
    releases: bool = False
    # Warm-up ramps of WARMING members: phone -> daily caps.
    warming: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return KEYS[self.tenant]


def scenario(scale: int = 1) -> list[Campaign]:
    """The campaigns of one run; `scale` multiplies calls, caps and prospects (the long version)."""
    cap = 5 * scale
    capped = numbers("415867", 5300, 6) + numbers("213234", 5600, 3)
    return [
        # Demand ten times the capacity: every number ends exactly at its cap (the warming one at its step's).
        Campaign(TENANT_A, "capped", eligible={**dict.fromkeys(capped, cap), "+14158675399": 2},
                 warming={"+14158675399": (2, 4)},
                 excluded={"+14158675380": "resting", "+14158675381": "quarantined", "+14158675382": "retired",
                           "+12132345680": "flagged", "+12132345681": "blocked"},
                 prospects=numbers("415902", 0, 100 * scale), calls=470 * scale, daily_cap=cap,
                 per_prospect_day=2, sticky=True, expect_full=True),
        # The hourly cap binds.
        Campaign(TENANT_A, "hourly", eligible=dict.fromkeys(numbers("212736", 3100, 6), 1000),
                 excluded={"+12127363190": "flagged"}, prospects=numbers("212583", 0, 400 * scale),
                 calls=180 * scale, daily_cap=1000, hourly_cap=3 * scale, releases=True),
        # Few hot numbers with ample capacity: nothing may be refused.
        Campaign(TENANT_A, "ample", eligible=dict.fromkeys(numbers("212736", 3200, 3), 10**6), excluded={},
                 prospects=numbers("212583", 5000, 200 * scale), calls=200 * scale, daily_cap=10**6,
                 hourly_cap=10**6, expect_no_refusal=True, releases=True),
        # Few prospects called concurrently from every process: the per-prospect limit binds, not the caps.
        Campaign(TENANT_A, "prospects", eligible=dict.fromkeys(numbers("213234", 5700, 4), 1000), excluded={},
                 prospects=numbers("213624", 100, 20 * scale), calls=200 * scale, daily_cap=1000,
                 per_prospect_day=2, sticky=True, releases=True),
        # Another tenant's campaign with the same id: never crosses over.
        Campaign(TENANT_B, "capped", eligible=dict.fromkeys(numbers("415867", 5500, 4), cap),
                 excluded={"+14158675580": "resting"}, prospects=numbers("415902", 5000, 60 * scale),
                 calls=200 * scale, daily_cap=cap, per_prospect_day=2, sticky=True, expect_full=True),
    ]


def publish(upstream: FakeUpstream, campaigns: list[Campaign]) -> None:
    """What the registry and scoring would publish for these campaigns."""
    for c in campaigns:
        upstream.campaign(c.campaign_id, tenant=c.tenant, daily_cap_per_number=c.daily_cap,
                          hourly_cap_per_number=c.hourly_cap, sticky_caller_id=c.sticky,
                          calling_window_start=(0, 0), calling_window_end=(0, 0),
                          max_calls_per_prospect_per_day=c.per_prospect_day, max_calls_per_prospect_per_week=0)
        for phone in c.eligible:
            if phone in c.warming:
                upstream.number(phone, campaigns=(c.campaign_id,), tenant=c.tenant, state=WARMING,
                                warmup_caps=c.warming[phone], warmup_start=None)
            else:
                upstream.number(phone, campaigns=(c.campaign_id,), tenant=c.tenant)
        for phone, why in c.excluded.items():
            state = {"resting": RESTING, "quarantined": QUARANTINED, "retired": RETIRED}.get(why)
            upstream.number(phone, campaigns=(c.campaign_id,), tenant=c.tenant,
                            **({"state": state} if state else {}))
            if why in ("flagged", "blocked"):
                upstream.health(phone, FLAGGED if why == "flagged" else BLOCKED, tenant=c.tenant)


@dataclass
class Jobs:
    """Every call of a run, split over the client processes."""

    per_client: list[list[dict[str, Any]]]

    @classmethod
    def plan(cls, campaigns: list[Campaign], clients: int, servers: int, seed: int = 11,
             retry_every: int = 4, reuse_every: int = 9, release_every: int = 7) -> Jobs:
        rng = random.Random(seed)
        jobs = []
        for c in campaigns:
            for i in range(c.calls):
                jobs.append({"campaign": c.campaign_id, "tenant": c.tenant, "key": c.key,
                             "destination": rng.choice(c.prospects), "call_id": f"{c.campaign_id}-{i}",
                             # Every 4th call retried at once, every 8th twice (two copies on one process).
                             "copies": (3 if i % (2 * retry_every) == 0 else 2) if i % retry_every == 0 else 1,
                             "first_target": i % servers,
                             "twin_destination": rng.choice(c.prospects) if i % reuse_every == 5 else "",
                             "release": c.releases and i % release_every == 3})
        rng.shuffle(jobs)
        return cls([jobs[i::clients] for i in range(clients)])


def run_clients(targets: list[str], jobs: Jobs, *, threads: int, timeout: float,
                sdk: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run one client process per job list at once (raw stubs, or the SDK's Client with its retries); the record
    of every send and of every release."""
    procs = []
    for client_jobs in jobs.per_client:
        proc = subprocess.Popen([sys.executable, "-m", "invariants.load_client"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=service_environment("client"))
        procs.append((proc, json.dumps({"targets": targets, "timeout": timeout, "threads": threads,
                                        "jobs": client_jobs, "sdk": sdk})))
    records: list[dict[str, Any]] = []
    releases: list[dict[str, Any]] = []
    for proc, plan in procs:
        out, _ = proc.communicate(plan, timeout=600 * max(1, SCALE))
        assert proc.returncode == 0, "a load client failed"
        result = json.loads(out)
        records.extend(result["records"])
        releases.extend(result["releases"])
    return records, releases


def start_allocation(url: str, upstream: str, variant: str = "", clock_file: Path | None = None,
                     clock_skew: float = 0.0, **settings: Any) -> ServiceProcess:
    """An allocation process (a test launcher around the real entry point; `variant` breaks one rule, and with
    clock_file its clock can be moved ahead, off by clock_skew seconds: move_clocks)."""
    args = (variant,) if variant else ()
    if clock_file is not None:
        args += ("--clock-file", str(clock_file), "--clock-skew", repr(clock_skew))
    process = ServiceProcess("allocation", module="invariants.allocation_process",
                             args=args, database_url=url, registry_target=upstream,
                             scoring_target=upstream, housekeeping_interval=0,
                             # The machine is shared: give lock waits room before UNAVAILABLE.
                             **{"db_timeout": 15, **settings})
    return process.start()


def midnight_ahead(seconds: float, zone: str = DEFAULT_CAP_RESET_ZONE) -> float:
    """How far ahead to move a clock for the next local midnight in zone (the campaigns' cap reset zone, where
    daily caps start again) to come `seconds` from now: it is also the start of a UTC hour."""
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    local = at.astimezone(ZoneInfo(zone))
    midnight = datetime.combine(local.date() + timedelta(days=1), clock_time(), tzinfo=ZoneInfo(zone))
    return (midnight - at).total_seconds()


def hour_ahead(ahead: float, seconds: float) -> float:
    """How far ahead to move a clock that runs `ahead` seconds ahead for the start of the next UTC hour to come
    `seconds` from now (never less than `ahead`: the clock only moves forward)."""
    now = time.time() + ahead
    boundary = (now + seconds) // 3600 * 3600 + 3600
    return ahead + (boundary - now - seconds)


def move_clocks(processes: list[ServiceProcess], clock_file: Path, ahead: float, timeout: float = 10) -> None:
    """Move the clocks of processes started with clock_file `ahead` seconds, every one by the same amount, and
    wait until each has."""
    written = clock_file.with_suffix(".new")
    written.write_text(repr(ahead))
    written.replace(clock_file)  # whole, never half written
    deadline = time.monotonic() + timeout
    for process in processes:
        assert process.proc is not None
        acknowledged = Path(f"{clock_file}.{process.proc.pid}")
        while not (acknowledged.exists() and acknowledged.read_text() == repr(ahead)):
            assert time.monotonic() < deadline, f"process {process.proc.pid} did not move its clock"
            time.sleep(0.01)


def wait_caught_up(targets: list[str], upstream: FakeUpstream, timeout: float = 60) -> None:
    wanted = {"registry": upstream.registry.head, "scoring": upstream.scoring.head}
    deadline = time.monotonic() + timeout
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            stub = allocation_pb2_grpc.AllocationServiceStub(channel)
            while True:
                feeds = {f.upstream: f.revision for f in stub.GetReplicationStatus(
                    allocation_pb2.GetReplicationStatusRequest(), metadata=auth(TENANT_A_KEY), timeout=5).feeds}
                if all(feeds.get(name, 0) >= head for name, head in wanted.items()):
                    break
                assert time.monotonic() < deadline, f"{target} did not catch up: {feeds} < {wanted}"
                time.sleep(0.05)


def replay(target: str, records: list[dict[str, Any]], limit: int, timeout: float) -> list[dict[str, Any]]:
    """Send acknowledged call ids once more, after the load: each must get its first answer again."""
    acknowledged = {(r["tenant"], r["call_id"]): r for r in records if r["outcome"].startswith("+")}
    sample = random.Random(3).sample(sorted(acknowledged), min(limit, len(acknowledged)))
    replays = []
    with grpc.insecure_channel(target) as channel:
        stub = allocation_pb2_grpc.AllocationServiceStub(channel)
        for key in sample:
            job = acknowledged[key]
            try:
                outcome = stub.AllocateNumber(allocation_pb2.AllocateNumberRequest(
                    campaign_id=job["campaign"], destination=job["destination"], call_id=job["call_id"]),
                    metadata=auth(job["key"]), timeout=timeout).caller_id
            except grpc.RpcError as error:
                outcome = error.code().name
            replays.append({**job, "outcome": outcome, "replay": True})
    return replays


@dataclass
class Ledger:
    """What the allocation database holds after a run, or at one moment of it (one snapshot of both tables)."""

    allocations: list[dict[str, Any]]
    usage: list[dict[str, Any]]

    @classmethod
    def read(cls, url: str) -> Ledger:
        engine = create_engine(owner_url(url))
        try:
            with engine.connect() as connection:
                if engine.dialect.name == "postgresql":
                    connection = connection.execution_options(isolation_level="REPEATABLE READ")
                else:  # the driver would run each SELECT in a transaction of its own
                    connection.exec_driver_sql("BEGIN")
                allocations = [dict(r._mapping) for r in connection.execute(text(
                    "SELECT tenant_id, call_id, campaign_id, destination, phone_number, day_start, hour_start, "
                    "counted, released FROM allocations"))]
                usage = [dict(r._mapping) for r in connection.execute(text(
                    "SELECT tenant_id, phone_number, day_start, day_used, hour_start, hour_used FROM number_usage"))]
        finally:
            engine.dispose()
        return cls(allocations, usage)

    @property
    def counted(self) -> list[dict[str, Any]]:
        return [a for a in self.allocations if a["counted"] and not a["released"]]


@dataclass
class Run:
    campaigns: list[Campaign]
    records: list[dict[str, Any]]
    ledger: Ledger
    releases: list[dict[str, Any]] = field(default_factory=list)

    def campaign(self, tenant: str, campaign_id: str) -> Campaign:
        return next(c for c in self.campaigns if (c.tenant, c.campaign_id) == (tenant, campaign_id))

    def outcomes(self) -> Counter[str]:
        return Counter("allocated" if r["outcome"].startswith("+") else r["outcome"] for r in self.records)


# --- the invariants: each returns its violations ------------------------------------------------------------


def over_cap(run: Run) -> list[str]:
    """No number over its daily cap in any day or its hourly cap in any hour, by the ledger and by the answers."""
    violations = []
    days: Counter[tuple[str, str, int]] = Counter()
    hours: Counter[tuple[str, str, int]] = Counter()
    caps: dict[tuple[str, str], tuple[int, int]] = {}
    for c in run.campaigns:
        for phone, cap in c.eligible.items():
            caps[c.tenant, phone] = (cap, c.hourly_cap)
    for a in run.ledger.counted:
        days[a["tenant_id"], a["phone_number"], a["day_start"]] += 1
        hours[a["tenant_id"], a["phone_number"], a["hour_start"]] += 1
    for (tenant, phone, day), count in days.items():
        if (tenant, phone) in caps and count > caps[tenant, phone][0]:
            violations.append(f"{tenant} {phone}: {count} calls on day {day}, cap {caps[tenant, phone][0]}")
    for (tenant, phone, hour), count in hours.items():
        if (tenant, phone) in caps and count > caps[tenant, phone][1]:
            violations.append(f"{tenant} {phone}: {count} calls in hour {hour}, cap {caps[tenant, phone][1]}")
    periods = len({a["day_start"] for a in run.ledger.counted}) or 1
    answered = Counter((tenant, outcome) for (tenant, _), outcome in _answers(run).items() if outcome.startswith("+"))
    for (tenant, phone), count in answered.items():
        if (tenant, phone) in caps and count > caps[tenant, phone][0] * periods:
            violations.append(f"{tenant} {phone}: {count} calls acknowledged, cap {caps[tenant, phone][0]}")
    return violations


def counters_match_ledger(run: Run) -> list[str]:
    """Each number's usage counters equal the ledger rows of the day and hour they count."""
    return counters_against(run.ledger)


def counters_against(ledger: Ledger) -> list[str]:
    """counters_match_ledger for one snapshot of the database (after a run, or while it runs)."""
    violations = []
    for u in ledger.usage:
        rows = [a for a in ledger.counted if (a["tenant_id"], a["phone_number"]) == (u["tenant_id"],
                                                                                     u["phone_number"])]
        day = sum(1 for a in rows if a["day_start"] == u["day_start"])
        hour = sum(1 for a in rows if a["hour_start"] == u["hour_start"])
        if (u["day_used"], u["hour_used"]) != (day, hour):
            violations.append(f"{u['tenant_id']} {u['phone_number']}: counters day {u['day_used']} hour "
                              f"{u['hour_used']}, ledger day {day} hour {hour}")
    return violations


def false_refusals(run: Run) -> list[str]:
    """No refusal while capacity remained: none at all where capacity is ample, and where demand is far above
    capacity every eligible number ends at its cap."""
    violations = []
    for r in run.records:
        c = run.campaign(r["tenant"], r["campaign"])
        if c.expect_no_refusal and r["outcome"] == "RESOURCE_EXHAUSTED":
            violations.append(f"{c.tenant}/{c.campaign_id} {r['call_id']}: {r['outcome']} with capacity left")
    used: Counter[tuple[str, str]] = Counter((a["tenant_id"], a["phone_number"]) for a in run.ledger.counted)
    for c in run.campaigns:
        if c.expect_full:
            for phone, cap in c.eligible.items():
                if used[c.tenant, phone] < cap:
                    violations.append(f"{c.tenant}/{c.campaign_id} {phone}: ended at {used[c.tenant, phone]} of "
                                      f"{cap} while calls were refused")
    return violations


def double_allocations(run: Run) -> list[str]:
    """One call id, one allocation: every send and later replay of it gets the same caller ID, the ledger holds
    at most one row for it, and no row for a call nobody made."""
    violations = []
    by_call: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in run.records:
        if r["outcome"].startswith("+") or r.get("replay"):
            by_call[r["tenant"], r["call_id"]].add(r["outcome"])
    for (tenant, call_id), answers in by_call.items():
        if len(answers) > 1:
            violations.append(f"{tenant} {call_id}: answered {sorted(answers)}")
    destinations: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in run.records:
        if r["outcome"].startswith("+"):
            destinations[r["tenant"], r["call_id"]].add(r["destination"])
    for (tenant, call_id), prospects in destinations.items():
        if len(prospects) > 1:
            violations.append(f"{tenant} {call_id}: one call id allocated for {sorted(prospects)}")
    sent = {(r["tenant"], r["call_id"]) for r in run.records}
    rows = Counter((a["tenant_id"], a["call_id"]) for a in run.ledger.allocations)
    for key, count in rows.items():
        if count > 1 or key not in sent:
            violations.append(f"{key[0]} {key[1]}: {count} ledger rows" + ("" if key in sent else " (never sent)"))
    return violations


def releases_once(run: Run) -> list[str]:
    """A release sent twice at once gives one call back once: one of them says released, the ledger agrees."""
    violations = []
    said: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in run.releases:
        said[r["tenant"], r["call_id"]].append(r["outcome"])
    ledger = {(a["tenant_id"], a["call_id"]): a["released"] for a in run.ledger.allocations}
    for key, outcomes in said.items():
        if outcomes.count("True") > 1:
            violations.append(f"{key[0]} {key[1]}: released {outcomes.count('True')} times")
        if "True" in outcomes and not ledger.get(key):
            violations.append(f"{key[0]} {key[1]}: acknowledged released, ledger says not")
        if ledger.get(key) and not set(outcomes) - {"False"}:
            violations.append(f"{key[0]} {key[1]}: released in the ledger, every release said no")
    return violations


def prospect_limit_violations(run: Run) -> list[str]:
    """No prospect called more often than its campaign allows (the run is shorter than the limit's 24 h)."""
    calls: Counter[tuple[str, str]] = Counter((a["tenant_id"], a["destination"]) for a in run.ledger.counted)
    limits = {(c.tenant, p): c.per_prospect_day for c in run.campaigns for p in c.prospects if c.per_prospect_day}
    return [f"{tenant} {prospect}: {count} calls, limit {limits[tenant, prospect]}"
            for (tenant, prospect), count in calls.items()
            if (tenant, prospect) in limits and count > limits[tenant, prospect]]


def foreign_or_ineligible(run: Run) -> list[str]:
    """Only the tenant's own, active, eligible members of the campaign ever place a call."""
    violations = []
    for a in run.ledger.allocations:
        c = run.campaign(a["tenant_id"], a["campaign_id"])
        if a["phone_number"] not in c.eligible:
            why = c.excluded.get(a["phone_number"], "not the tenant's number in this campaign")
            violations.append(f"{c.tenant}/{c.campaign_id} {a['call_id']}: {a['phone_number']} ({why})")
    for r in run.records:
        c = run.campaign(r["tenant"], r["campaign"])
        if r["outcome"].startswith("+") and r["outcome"] not in c.eligible:
            violations.append(f"{c.tenant}/{c.campaign_id} {r['call_id']}: answered {r['outcome']}")
    return violations


def lost_acknowledged(run: Run) -> list[str]:
    """Every allocation a client saw acknowledged is in the ledger, with that caller ID."""
    ledger = {(a["tenant_id"], a["call_id"]): a["phone_number"] for a in run.ledger.allocations}
    return [f"{tenant} {call_id}: acknowledged {outcome}, ledger {ledger.get((tenant, call_id))}"
            for (tenant, call_id), outcome in _answers(run).items()
            if outcome.startswith("+") and ledger.get((tenant, call_id)) != outcome]


DEFINITE = ("RESOURCE_EXHAUSTED", "FAILED_PRECONDITION")


def unexpected_errors(run: Run, allowed: tuple[str, ...] = ()) -> list[str]:
    """Sends answered with neither an allocation nor a refusal (RESOURCE_EXHAUSTED, FAILED_PRECONDITION), nor
    one of the `allowed` codes (what a fault may cause: UNAVAILABLE, DEADLINE_EXCEEDED ...)."""
    return [f"{r['tenant']} {r['call_id']}: {r['outcome']}" for r in run.records
            if not r["outcome"].startswith("+") and r["outcome"] not in DEFINITE + allowed]


def outlived_deadline(run: Run, slack: float = 1.0) -> list[str]:
    """Every call ended by its deadline (plus `slack` seconds for a loaded machine to notice)."""
    return [f"{r['call_id']}: {r['elapsed']:.2f} s, deadline {r['timeout']} s ({r['outcome']})"
            for r in run.records if "elapsed" in r and r["elapsed"] > r["timeout"] + slack]


INVARIANTS = {
    "over_cap": over_cap,
    "counters_match_ledger": counters_match_ledger,
    "false_refusals": false_refusals,
    "double_allocations": double_allocations,
    "releases_once": releases_once,
    "prospect_limit_violations": prospect_limit_violations,
    "foreign_or_ineligible": foreign_or_ineligible,
    "lost_acknowledged": lost_acknowledged,
}


def _answers(run: Run) -> dict[tuple[str, str], str]:
    """The first successful answer each call id got (or its last error)."""
    answers: dict[tuple[str, str], str] = {}
    for r in run.records:
        key = (r["tenant"], r["call_id"])
        if key not in answers or (r["outcome"].startswith("+") and not answers[key].startswith("+")):
            answers[key] = r["outcome"]
    return answers


def violations(run: Run) -> dict[str, list[str]]:
    return {name: check(run) for name, check in INVARIANTS.items()}
