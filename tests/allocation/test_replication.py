"""The eligibility replica: followed from the upstream feeds, resumed from stored cursors, serving while an
upstream is down, resynchronised from a snapshot, and reporting how stale it is."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from allocation.support import CREATED, Allocation, FakeUpstream
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import MetaData, select
from sqlalchemy.dialects import postgresql, sqlite

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm.registry.v1 import registry_pb2
from nhm.type.v1 import types_pb2 as t
from nhm_allocation import repository as repo
from nhm_allocation.app import SPEC
from nhm_allocation.eligibility_replica import EligibilityReplica
from nhm_allocation.enums import Tier
from nhm_allocation.models import cursors, numbers
from nhm_platform.auth import hash_key
from nhm_platform.db import Database
from nhm_platform.replica import ApiKeyReplica
from nhm_platform.row_scope import platform_rows, tenant_rows
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, auth

SF1, SF2 = "+14158675301", "+14158675302"
PROSPECTS = [f"+1415902{n:04d}" for n in range(100)]
NOON_PT = datetime(2026, 1, 6, 20, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def midday(clock):
    clock.set(NOON_PT)


def feeds(allocation) -> dict[str, pb.FeedStatus]:
    reply = allocation.stub.GetReplicationStatus(pb.GetReplicationStatusRequest(), metadata=auth(TENANT_A_KEY))
    return {f.upstream: f for f in reply.feeds}


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_changes_from_both_feeds_apply_and_the_status_says_how_far(allocation):
    up = allocation.upstream
    up.campaign("c1")
    up.number(SF1)
    up.number(SF2, state=t.LIFECYCLE_STATE_RESTING)
    up.health(SF1, t.HEALTH_STATUS_HEALTHY)
    allocation.sync()
    status = feeds(allocation)
    assert status["registry"].revision == up.registry.head and status["scoring"].revision == up.scoring.head
    assert status["registry"].connected and status["scoring"].connected
    assert status["registry"].staleness.ToTimedelta() == timedelta(0)
    assert allocation.allocate(PROSPECTS[0], "call-1").caller_id == SF1
    up.number(SF1, state=t.LIFECYCLE_STATE_QUARANTINED)
    up.number(SF2)
    allocation.sync()
    assert allocation.allocate(PROSPECTS[1], "call-2").caller_id == SF2
    up.unassign(SF2)
    allocation.sync()
    assert allocation.refuse(PROSPECTS[2], "call-3").code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_restart_resumes_from_the_stored_cursors_and_keeps_usage(allocation, start_service):
    up = allocation.upstream
    up.campaign("c1", daily_cap_per_number=2)
    up.number(SF1)
    allocation.sync()
    allocation.allocate(PROSPECTS[0], "call-1")
    url = allocation.handle.settings.database_url
    allocation.handle.running.stop(0)
    up.number(SF2)  # published while allocation was down
    head = up.registry.head
    restarted = Allocation(start_service(SPEC, url=url, registry_target=up.address, scoring_target=up.address), up)
    try:
        restarted.sync()
        # the follower resumed after its cursor: no snapshot, nothing replayed
        assert up.registry.requests[-1] == (head - 2, False)
        assert restarted.allocate(PROSPECTS[0], "call-1").caller_id == SF1  # the stored answer survived
        assert restarted.usage(SF1).calls_today == 1
        picks = {restarted.allocate(PROSPECTS[i], f"after-{i}").caller_id for i in (1, 2)}
        assert picks == {SF1, SF2}
    finally:
        restarted.channel.close()


def health(allocation, entry: str) -> int:
    return health_pb2_grpc.HealthStub(allocation.channel).Check(health_pb2.HealthCheckRequest(service=entry)).status


def test_allocation_keeps_serving_while_an_upstream_is_down_and_says_how_stale(start_service, upstream, clock):
    allocation = Allocation(start_service(SPEC, registry_target=upstream.address, scoring_target=upstream.address,
                                          replication_health_interval=0.05, replication_stale_after=60.0), upstream)
    up = allocation.upstream
    up.campaign("c1")
    up.number(SF1)
    allocation.sync()
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    wait_for(lambda: health(allocation, "allocation.replication") == serving, "the replica to be reported current")
    up.stop()
    wait_for(lambda: not feeds(allocation)["registry"].connected, "the follower to notice")
    clock.advance(timedelta(minutes=2))
    wait_for(lambda: health(allocation, "allocation.replication") == not_serving, "the replica to be reported stale")
    assert health(allocation, "") == serving  # the service itself keeps serving
    answer = allocation.allocate(PROSPECTS[0], "call-1")
    assert answer.caller_id == SF1
    assert answer.eligibility_staleness.ToTimedelta() >= timedelta(minutes=2)
    status = feeds(allocation)
    assert not status["registry"].connected and status["registry"].staleness.ToTimedelta() >= timedelta(minutes=2)
    up.start()  # back on the same port
    up.number(SF1, state=t.LIFECYCLE_STATE_RESTING)
    wait_for(lambda: feeds(allocation)["registry"].revision == up.registry.head, "the follower to reconnect")
    assert feeds(allocation)["registry"].connected
    assert allocation.refuse(PROSPECTS[1], "call-2").code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    wait_for(lambda: health(allocation, "allocation.replication") == serving, "the replica to be current again")
    allocation.channel.close()


def test_a_cursor_beyond_retention_resyncs_from_a_snapshot(allocation):
    up = allocation.upstream
    up.campaign("c1")
    up.number(SF1)
    up.number(SF2)
    allocation.sync()
    allocation.allocate(PROSPECTS[0], "call-1")
    used = {n: allocation.usage(n).calls_today for n in (SF1, SF2)}
    up.stop()
    # Meanwhile the registry retired SF1 and pruned its log: a snapshot now lists the campaign and SF2 only.
    campaign = next(m for m in up.registry._items if m.HasField("campaign"))
    number = next(m for m in up.registry._items if m.HasField("number") and m.number.phone_number == SF2)
    member = registry_pb2.WatchChangesResponse(kind=CREATED, tenant_id=TENANT_A, assignment=registry_pb2.Assignment(
        tenant_id=TENANT_A, campaign_id="c1", phone_number=SF2))
    up.number(SF1, state=t.LIFECYCLE_STATE_RETIRED)
    up.registry.compact([campaign, number, member])
    up.start()
    wait_for(lambda: up.registry.requests[-1][1] and feeds(allocation)["registry"].revision == up.registry.head,
             "the resync")
    picks = {allocation.allocate(PROSPECTS[i], f"after-{i}").caller_id for i in range(1, 4)}
    assert picks == {SF2}
    usage = allocation.stub.GetCampaignUsage(pb.GetCampaignUsageRequest(campaign_id="c1"), metadata=auth(TENANT_A_KEY))
    assert [n.phone_number for n in usage.numbers] == [SF2]
    assert allocation.usage(SF2).calls_today == used[SF2] + 3  # counters survive a resync


def test_api_keys_replicated_from_the_registry_authenticate_until_revoked(allocation):
    up = allocation.upstream
    up.campaign("c1")
    up.number(SF1)

    def credential(key_id: str, secret: str, role: int, revoked: bool = False) -> None:
        key = registry_pb2.ApiKey(id=key_id, tenant_id=TENANT_A, name=key_id, role=role)
        if revoked:
            key.revoke_time.FromDatetime(NOON_PT)
        up.registry.append(registry_pb2.WatchChangesResponse(
            kind=CREATED, tenant_id=TENANT_A,
            api_key=registry_pb2.ApiKeyCredential(api_key=key, secret_sha256=hash_key(secret))))

    credential("k1", "nhm_dialer_secret", registry_pb2.API_KEY_ROLE_TENANT)
    credential("k2", "nhm_viewer_secret", registry_pb2.API_KEY_ROLE_READ_ONLY)
    allocation.sync()
    assert allocation.allocate(PROSPECTS[0], "call-1", key="nhm_dialer_secret").caller_id == SF1
    denied = allocation.refuse(PROSPECTS[1], "call-2", key="nhm_viewer_secret")
    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED
    assert allocation.stub.GetNumberUsage(pb.GetNumberUsageRequest(phone_number=SF1),
                                          metadata=auth("nhm_viewer_secret")).usage.calls_today == 1
    credential("k1", "nhm_dialer_secret", registry_pb2.API_KEY_ROLE_TENANT, revoked=True)
    allocation.sync()
    assert allocation.refuse(PROSPECTS[1], "call-3", key="nhm_dialer_secret").code() is \
        grpc.StatusCode.UNAUTHENTICATED


def test_a_replica_that_is_behind_never_moves_rows_back_to_older_states(database_url, clock):
    """Two replicas of allocation share a database and both follow the registry: the one that is behind skips
    what the other already applied instead of replaying older states over newer ones."""
    db = Database(database_url(SPEC))
    replica = EligibilityReplica(clock, ApiKeyReplica(MetaData()).bind(db))
    log = FakeUpstream()
    log.number(SF1, campaigns=())  # revision 1: ACTIVE
    log.number(SF1, state=t.LIFECYCLE_STATE_RESTING, campaigns=())  # revision 2: RESTING
    first, second = log.registry._items
    try:
        with platform_rows(), db.transaction() as session:  # replica A applies both and stores cursor 2
            for change in (first, second):
                replica.apply_registry(session, change)
            replica.after_batch(session)
            cursors.save(session, "registry", 2, clock)
        with platform_rows(), db.transaction() as session:  # replica B, behind, replays revision 1
            replica.apply_registry(session, first)
            replica.after_batch(session)
            cursors.save(session, "registry", 1, clock)
        with platform_rows(), db.read() as session:
            assert session.execute(select(numbers.c.state)).scalar() == t.LIFECYCLE_STATE_RESTING
            assert cursors.load(session, "registry") == 2
    finally:
        db.dispose()


def test_after_a_large_snapshot_the_candidate_walk_reads_the_tiers_own_index(database_url, clock):
    """Cost must not grow with the pool: the area-code walk must read ix_pool_area (16 entries), not filter the
    whole pool along another index, including right after a snapshot of thousands of numbers."""
    db = Database(database_url(SPEC))
    replica = EligibilityReplica(clock, ApiKeyReplica(MetaData()).bind(db))
    feed = FakeUpstream()
    feed.campaign("c1")
    for i in range(3_000):
        feed.number(f"+1{('415', '212', '305')[i % 3]}{200 + i // 3000:03d}{i:04d}")
    try:
        items = feed.registry._items
        for start in range(0, len(items), 500):  # applied as the follower does: batches of 500
            with platform_rows(), db.transaction() as session:
                for change in items[start:start + 500]:
                    replica.apply_registry(session, change)
                replica.after_batch(session)
        statement = repo._window_statement(Tier.AREA_CODE, False, 16)
        params = {"tenant": TENANT_A, "campaign": "c1", "gate": 0, "tier_key": "US-415"}
        with tenant_rows(TENANT_A), db.read() as session:  # as AllocateNumber reads: under row-level security
            connection = session.connection()
            if db.is_sqlite:
                compiled = statement.compile(dialect=sqlite.dialect())
                merged = {**compiled.params, **params}
                plan = " ".join(str(row[3]) for row in connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + str(compiled), tuple(merged[n] for n in compiled.positiontup)))
            else:
                compiled = statement.compile(dialect=postgresql.dialect())
                plan = " ".join(row[0] for row in connection.exec_driver_sql(
                    "EXPLAIN " + str(compiled), {**compiled.params, **params}))
            assert len(repo.candidate_window(session, TENANT_A, "c1", 0, Tier.AREA_CODE, "US-415", None, 16)) == 16
        assert "ix_pool_area" in plan and "Sort" not in plan and "TEMP B-TREE" not in plan, plan
    finally:
        db.dispose()
