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
    # Follow the registry's and scoring's feeds (off only for tools that run the service without upstreams).
    follow_upstreams: bool = True
    # Deadline of each call to the registry or scoring.
    upstream_timeout: float = 10.0

    # Seconds between scheduler passes (time-driven progress; a commit that queues work wakes it at once).
    scheduler_interval: float = 1.0
    # Most due cases, registry actions and alert deliveries one scheduler pass handles of each.
    scheduler_batch: int = 100
    # How long a replica owns a claimed registry action or delivery before another replica may take it over.
    claim_lease: float = 5 * MINUTE
    # First retry delay of a registry step that failed for a transient reason (UNAVAILABLE, timeout); doubles.
    action_retry_initial: float = 30.0
    # Longest retry delay of a registry step.
    action_retry_max: float = 1 * HOUR
    # Attempts after which a registry step is given up: its task fails and the case asks for an operator.
    action_max_attempts: int = 50
    # Re-check interval of a case whose warm-up ended while the number is not yet Healthy and label-free.
    recheck_interval: float = 1 * DAY

    # Days of call activity in a dispute's evidence packet (domain: the last 30 days).
    evidence_days: int = 30
    # Recent outbound call start times listed as samples in an evidence packet.
    evidence_sample_size: int = 10

    # Attempts per alert delivery before it is given up as FAILED.
    delivery_max_attempts: int = 8
    # Delay after a failed delivery attempt; doubles per attempt up to delivery_backoff_max.
    delivery_backoff_initial: float = 30.0
    # Longest delay between delivery attempts.
    delivery_backoff_max: float = 1 * HOUR
    # Seconds a webhook receiver or the SMTP server has to answer.
    delivery_timeout: float = 10.0
    # SMTP server for e-mail alerts (empty: e-mail deliveries fail, and are logged, with a clear error).
    smtp_host: str = ""
    # SMTP port (plain SMTP; 25 or a relay's port).
    smtp_port: int = 25
    # Sender address of e-mail alerts.
    smtp_from: str = "nhm-alerts@localhost"
    # How often each tenant with a weekly-digest subscription gets the digest.
    digest_interval: float = 7 * DAY
    # Accept http:// webhook URLs (local receivers in development and tests); otherwise https only.
    allow_http_webhooks: bool = False

    # Seconds between heartbeats on an idle WatchCases stream.
    watch_heartbeat_interval: float = 5.0
    # Seconds a WatchCases stream waits before looking for changes committed by other replicas.
    watch_poll_interval: float = 0.5
    # How long case feed entries and remembered request ids are kept.
    feed_retention: float = 7 * DAY
    # Seconds between prunes of old case feed entries and request ids.
    prune_interval: float = 1 * HOUR
