"""The allocation service's settings (environment variables NHM_ALLOCATION_<FIELD> or NHM_<FIELD>)."""

from __future__ import annotations

from dataclasses import dataclass

from nhm_platform.settings import ServerSettings

DAY = 86_400.0


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
    # AllocateNumber calls served together in one transaction at most: the calls that arrive while a transaction
    # runs share the next one (one commit for all, each call in its own savepoint, answered after the commit).
    # 1 gives every call its own transaction.
    coalesce_max_calls: int = 32
    # Such transactions one process runs at once on PostgreSQL (SQLite has one writer: one). Fewer transactions
    # make larger batches, whose calls share their reads and writes, and hold each number's row for fewer other
    # calls to wait on; more keep the database's cores busy while a batch waits for its round trips. 2, the
    # cores of the 2-core machine it was measured on (docs/performance.md, change 13): 20-25% more calls than 32
    # at every concurrency measured, with a lower p99. Raise it with the database's cores.
    coalesce_transactions: int = 2
    # Seconds a call sharing a PostgreSQL transaction waits for a row another transaction holds before it leaves
    # the batch and runs in its own transaction (where db_timeout applies).
    coalesce_lock_wait: float = 0.05
    # Times a call is retried when a conflict with another process (a deadlock, a count that found a number
    # filled meanwhile) aborted its transaction.
    conflict_retries: int = 3
    # A call is counted against its caller ID when its batch ends, with the batch's other counts in one statement
    # that checks every cap (a batch whose count finds a number filled meanwhile by another transaction is rolled
    # back and served again). On PostgreSQL a number with at most this many calls of room left under its caps,
    # as read, is read again under its row lock before a call counts on it (waiting for a transaction counting
    # it), so that batches of several transactions and processes do not all count on its last calls and have to
    # be served again. 32, a full batch's calls. 0 never locks ahead. SQLite never does: its transaction holds the
    # whole database, so nobody counts meanwhile.
    near_cap_room: int = 32
    # Most numbers one BatchGetNumberUsage request may name; more are refused with INVALID_ARGUMENT.
    max_batch_get: int = 1000
    # Seconds between upkeep passes (forgetting old call ids, ledger rows and prospects); 0 turns upkeep off.
    housekeeping_interval: float = 3600.0
    # How long a call id's answer is kept for retries.
    call_id_retention: float = 7 * DAY
    # How long allocations stay in the ledger (per-prospect limits and capacity plans look back 7 days).
    ledger_retention: float = 35 * DAY
    # How long a prospect's sticky caller ID is remembered after its last call (beyond any campaign's TTL).
    prospect_retention: float = 90 * DAY
    # Seconds after which the eligibility replica counts as stale: the health entry "allocation.replication"
    # turns NOT_SERVING (the service keeps allocating from what it last knew).
    replication_stale_after: float = 60.0
    # Seconds between updates of that health entry.
    replication_health_interval: float = 2.0
