"""The scoring service's settings (environment variables NHM_SCORING_<FIELD> or NHM_<FIELD>).

Scoring thresholds, windows and weights are not settings: they are each tenant's ScoringPolicy (policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from nhm_platform.settings import ServerSettings


@dataclass(frozen=True)
class ScoringSettings(ServerSettings):
    port: int = 50052
    # Address of the registry service, whose change feed this service follows.
    registry_target: str = "localhost:50051"
    # Follow the registry's feed (off only in tests that load numbers by hand).
    follow_registry: bool = True
    # Seconds between passes that rescore the numbers whose health time alone can change (windows sliding past,
    # labels ageing) and prune data no window needs any more.
    rescore_interval: float = 60.0
    # Seconds ingestion may leave the health of the numbers its events touched to a background pass, which then
    # rescores each of them once however many events it got meanwhile (a dialer reporting thousands of calls a
    # second over a few thousand numbers). 0: rescored in the transaction that counts the events, so a number's
    # health and its feed reflect an event as soon as the report is answered.
    rescore_delay: float = 0.0
    # Most events in one request, or in one message of a stream.
    max_batch_events: int = 10000
    # Most numbers one BatchGetHealth request may name; more are refused with INVALID_ARGUMENT.
    max_batch_get: int = 1000
    # Most events one transaction of a stream applies (messages that arrive together are applied together).
    max_stream_batch_events: int = 5000
    # Seconds an event's time may lie in the future (clocks differ); later ones are rejected.
    max_clock_skew: float = 300.0
    # CSV rows applied per transaction by ImportReputationCsv.
    csv_chunk_rows: int = 1000
    # Days raw events (and so their event ids) are kept: longer than any policy's max_event_age and label expiry.
    event_retention_days: int = 190
    # Days daily buckets are kept (GetCallActivity reaches back 90 days).
    daily_retention_days: int = 100
    # Days hourly buckets are kept (weekly reports, hourly windows).
    hourly_retention_days: int = 35
    # Days the health feed keeps its entries; a watcher further behind is told to take a snapshot.
    health_feed_retention_days: float = 7.0
    # Days request ids of UpdateScoringPolicy are remembered.
    request_id_retention_days: float = 7.0
    # Seconds between heartbeats on an idle WatchHealth stream.
    watch_heartbeat_interval: float = 5.0
    # Seconds a WatchHealth stream waits before looking for changes committed by other processes.
    watch_poll_interval: float = 0.5
