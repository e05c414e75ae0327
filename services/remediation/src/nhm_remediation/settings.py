"""The remediation service's settings (environment variables NHM_REMEDIATION_<FIELD> or NHM_<FIELD>).

Durations are in seconds. The per-tenant remediation policy (rest, warm-up, deadlines, retirement, pool
guard) is not here: it is a resource (Get/UpdateRemediationPolicy) whose defaults live in ``policy.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nhm_platform.settings import ServerSettings

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0


@dataclass(frozen=True)
class RemediationSettings(ServerSettings):
    port: int = 50054
    # Address of the registry service, whose change feed this service follows and which it asks to move
    # numbers through their lifecycle.
    registry_target: str = "localhost:50051"
    # Address of the scoring service, whose health feed opens cases and whose call activity is the evidence.
    scoring_target: str = "localhost:50052"
    # Address of the allocation service (not called today; kept so one environment configures every service).
    allocation_target: str = "localhost:50053"

    # --- Upstream feeds and calls ---
    # Follow the registry's and scoring's feeds (off only in tests that feed the service by hand).
    follow_upstreams: bool = True
    # Deadline of each call to the registry or scoring.
    upstream_timeout: float = 10.0

    # --- Scheduler (time-driven progress; state lives in the database) ---
    # Seconds between scheduler passes (a commit that creates work also wakes it at once).
    scheduler_interval: float = 1.0
    # Most cases, registry actions and deliveries one pass handles of each.
    scheduler_batch: int = 100
    # How long a replica owns a claimed registry action or delivery before another replica may take it over.
    claim_lease: float = 5 * MINUTE
    # A registry call that failed for a transient reason (UNAVAILABLE, timeout) is retried after this, doubling
    # up to action_retry_max.
    action_retry_initial: float = 30.0
    action_retry_max: float = 1 * HOUR
    # After this many failed attempts a step is given up: its task fails and the case asks for an operator.
    action_max_attempts: int = 50
    # Re-check interval of a case whose warm-up ended while the number is not yet Healthy and label-free.
    recheck_interval: float = 1 * DAY

    # --- Evidence packets ---
    # Days of call activity in a dispute's evidence (domain: last 30 days).
    evidence_days: int = 30
    # Recent outbound call start times listed as samples.
    evidence_sample_size: int = 10

    # --- Alerts ---
    # Attempts per delivery before it is given up as FAILED.
    delivery_max_attempts: int = 8
    # Backoff after a failed attempt: initial, doubling per attempt, capped.
    delivery_backoff_initial: float = 30.0
    delivery_backoff_max: float = 1 * HOUR
    # Seconds a webhook receiver or the SMTP server has to answer.
    delivery_timeout: float = 10.0
    # SMTP server for e-mail alerts (empty host: e-mail deliveries fail with a clear error).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "nhm-alerts@localhost"
    # How often each tenant with a weekly-digest subscription gets the digest.
    digest_interval: float = 7 * DAY
    # Webhook URLs must use https unless this is set (local receivers in development and tests).
    allow_http_webhooks: bool = False

    # --- Case feed ---
    watch_heartbeat_interval: float = 5.0
    watch_poll_interval: float = 0.5
    # How long case feed entries and request ids are kept, and how often older ones are pruned.
    feed_retention: float = 7 * DAY
    prune_interval: float = 1 * HOUR
