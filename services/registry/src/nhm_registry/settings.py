"""The registry service's settings (environment variables NHM_REGISTRY_<FIELD> or NHM_<FIELD>).

Durations are in seconds. The campaign policy defaults are what a campaign gets for every policy field it
leaves unset; responses always carry the effective values.
"""

from __future__ import annotations

from dataclasses import dataclass

from nhm_platform.settings import ServerSettings

DAY = 86_400.0


@dataclass(frozen=True)
class RegistrySettings(ServerSettings):
    port: int = 50051

    # --- Change feed ---
    # How long feed entries are kept; a watcher resuming from an older revision gets FAILED_PRECONDITION.
    feed_retention: float = 7 * DAY
    # How often old feed entries and idempotency keys are pruned.
    prune_interval: float = 3600.0
    # Seconds between heartbeats on an idle WatchChanges stream.
    watch_heartbeat_interval: float = 5.0
    # Seconds between polls for changes committed by other replicas (this process's commits wake at once).
    watch_poll_interval: float = 0.5
    # How long a request id is remembered (a retry within it returns the first answer).
    idempotency_retention: float = 7 * DAY

    # --- Numbers ---
    # Most numbers one BatchCreateNumbers, AssignNumbers or UnassignNumbers request may carry.
    max_batch_size: int = 10_000
    # Most numbers one BatchGetNumbers request may name; more are refused with INVALID_ARGUMENT.
    max_batch_get: int = 1000
    # An import of at least this many numbers refreshes the query planner's statistics once it commits
    # (ANALYZE; without it PostgreSQL with autovacuum off planned list pages as whole-tenant sorts).
    analyze_after_import: int = 1000
    # Caller name (CNAM) length: carriers display at most 15 characters.
    display_name_max_length: int = 15
    # Most labels per number.
    max_labels: int = 64
    # After retirement a number with inbound enabled keeps answering callbacks this long.
    inbound_hold_after_retire: float = 30 * DAY
    # Longest rest a transition to RESTING may ask for (industry: 48 hours to 180 days).
    max_rest: float = 365 * DAY
    # Default warm-up ramp: daily caps, comma-separated, one step per warmup_step.
    warmup_daily_caps: str = "20,40,60,100"
    # Default length of one warm-up step.
    warmup_step: float = 3 * DAY
    # Most steps a warm-up plan may have.
    warmup_max_steps: int = 30

    # --- Campaign policy defaults (CallingPolicy) ---
    # Calls per number per day (seed: 100-150).
    default_daily_cap_per_number: int = 100
    # Calls per number per hour (spikes above ~50/hour draw flags).
    default_hourly_cap_per_number: int = 50
    # Local-presence tiers in order: AREA_CODE, REGION, COUNTRY, ANY.
    default_local_presence_tiers: str = "AREA_CODE,REGION,COUNTRY,ANY"
    # Whether At Risk numbers may place calls.
    default_allow_at_risk: bool = False
    # Same caller ID for the same prospect on repeat calls, and for how long.
    default_sticky_caller_id: bool = True
    default_sticky_ttl: float = 30 * DAY
    # Calling window in the prospect's local time, "HH:MM" (US rule: 8 am to 9 pm).
    default_calling_window_start: str = "08:00"
    default_calling_window_end: str = "21:00"
    # Calls to one prospect per 24 hours and per 7 days.
    default_max_calls_per_prospect_per_day: int = 3
    default_max_calls_per_prospect_per_week: int = 7
    # IANA time zone in which daily caps reset at midnight.
    default_cap_reset_time_zone: str = "America/New_York"
    # Upper bounds a policy may set (guards against typos such as 10000 calls per number per day).
    max_daily_cap_per_number: int = 10_000
    max_sticky_ttl: float = 365 * DAY
