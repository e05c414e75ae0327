"""WatchChanges: every change once and in order across reconnects, tenant scoping, snapshots, retention."""

from __future__ import annotations

import time
from datetime import timedelta

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from nhm.registry.v1 import registry_pb2 as pb
from nhm.type.v1 import types_pb2 as types
from nhm_platform.auth import hash_key
from nhm_registry.app import SPEC

SF = "+14152220123"
CREATED, UPDATED, DELETED = types.CHANGE_KIND_CREATED, types.CHANGE_KIND_UPDATED, types.CHANGE_KIND_DELETED


def watch(registry, metadata, after=0, until=None, count=None, **request):
    """Read a WatchChanges stream until count changes (not heartbeats) arrived or until(response) holds."""
    call = registry.stub.WatchChanges(pb.WatchChangesRequest(after_revision=after, **request), metadata=metadata,
                                      timeout=20)
    changes, heartbeats = [], []
    try:
        for response in call:
            (heartbeats if response.heartbeat else changes).append(response)
            if (count is not None and len(changes) >= count) or (until is not None and until(response)):
                break
    finally:
        call.cancel()
    return changes, heartbeats


def what(change):
    field = change.WhichOneof("resource")
    resource = getattr(change, field)
    key = {"number": lambda r: r.phone_number, "campaign": lambda r: r.name, "tenant": lambda r: r.id,
           "assignment": lambda r: r.phone_number, "api_key": lambda r: r.api_key.name}[field](resource)
    return field, change.kind, key


def test_every_kind_of_change_is_in_the_feed_in_order(registry, clock):
    tenant_events, _ = watch(registry, registry.service, count=2)
    assert sorted(what(c) for c in tenant_events) == [("tenant", CREATED, "acme"), ("tenant", CREATED, "globex")]
    start = tenant_events[-1].revision
    number = registry.create(SF)
    campaign = registry.campaign("pool")
    registry.stub.AssignNumbers(pb.AssignNumbersRequest(campaign_id=campaign.id, phone_numbers=[SF]),
                                metadata=registry.a)
    registry.stub.UpdateNumber(pb.UpdateNumberRequest(number=pb.Number(phone_number=SF, display_name="NEW"),
                                                      update_mask=FieldMask(paths=["display_name"])),
                               metadata=registry.a)
    registry.stub.TransitionNumber(pb.TransitionNumberRequest(phone_number=SF,
                                                              target_state=types.LIFECYCLE_STATE_QUARANTINED),
                                   metadata=registry.a)
    registry.stub.UpdateCampaign(pb.UpdateCampaignRequest(campaign=pb.Campaign(id=campaign.id, name="pool2"),
                                                          update_mask=FieldMask(paths=["name"])), metadata=registry.a)
    registry.stub.UpdateTenant(pb.UpdateTenantRequest(tenant=pb.Tenant(display_name="Acme"),
                                                      update_mask=FieldMask(paths=["display_name"])),
                               metadata=registry.a)
    key = registry.stub.CreateApiKey(pb.CreateApiKeyRequest(name="dialer", role=pb.API_KEY_ROLE_TENANT),
                                     metadata=registry.a)
    registry.stub.RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id=key.api_key.id), metadata=registry.a)
    registry.stub.RetireNumber(pb.RetireNumberRequest(phone_number=SF), metadata=registry.a)
    registry.stub.DeleteCampaign(pb.DeleteCampaignRequest(campaign_id=campaign.id), metadata=registry.a)
    registry.create("+14152220124", metadata=registry.b)
    expected = [("number", CREATED, SF), ("campaign", CREATED, "pool"), ("assignment", CREATED, SF),
                ("number", UPDATED, SF), ("number", UPDATED, SF), ("campaign", UPDATED, "pool2"),
                ("tenant", UPDATED, "acme"), ("api_key", CREATED, "dialer"), ("api_key", UPDATED, "dialer"),
                ("assignment", DELETED, SF), ("number", UPDATED, SF), ("campaign", DELETED, "pool2"),
                ("number", CREATED, "+14152220124")]

    changes, _ = watch(registry, registry.service, after=start, count=len(expected))
    assert [what(c) for c in changes] == expected
    assert [c.revision for c in changes] == list(range(start + 1, start + 1 + len(expected)))
    assert changes[0].number == number and changes[0].tenant_id == "acme"
    assert changes[0].change_time == number.create_time
    assert changes[4].number.state == types.LIFECYCLE_STATE_QUARANTINED
    credential = changes[7].api_key
    assert credential.secret_sha256 == hash_key(key.secret) and credential.api_key.id == key.api_key.id
    assert changes[8].api_key.api_key.HasField("revoke_time")
    assert changes[10].number.state == types.LIFECYCLE_STATE_RETIRED

    # Tenant keys see their own tenant only, and never key material.
    mine, heartbeats = watch(registry, registry.a, after=start, until=lambda r: r.heartbeat)
    assert [what(c) for c in mine] == [e for e in expected[:-1] if e[0] != "api_key"]
    assert heartbeats[-1].revision == changes[-1].revision  # a heartbeat carries the feed's head
    error = registry.error(lambda: watch(registry, registry.a, tenant_id="globex", count=1))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    theirs, _ = watch(registry, registry.service, after=start, tenant_id="globex", count=1)
    assert [what(c) for c in theirs] == [expected[-1]]


def test_a_watcher_that_drops_and_resumes_sees_every_change_once_in_order(registry):
    numbers = [registry.phone(i) for i in range(30)]
    seen = []
    last = 0
    for round_ in range(3):
        for number in numbers[round_ * 10:round_ * 10 + 5]:  # made while disconnected
            registry.create(number)
        # Reconnect with the last revision seen, read a few, drop the stream mid-way.
        changes, _ = watch(registry, registry.a, after=last, count=3)
        seen.extend(changes)
        last = changes[-1].revision
        for number in numbers[round_ * 10 + 5:round_ * 10 + 10]:
            registry.create(number)
    changes, _ = watch(registry, registry.a, after=last, until=lambda r: r.heartbeat)
    seen.extend(changes)
    created = [c.number.phone_number for c in seen if c.WhichOneof("resource") == "number"]
    assert created == numbers
    revisions = [c.revision for c in seen]
    assert revisions == sorted(set(revisions))


def test_live_changes_arrive_while_watching(registry):
    import threading

    got = []
    done = threading.Event()

    def watcher():
        changes, _ = watch(registry, registry.a, after=0, count=3)
        got.extend(changes)
        done.set()

    thread = threading.Thread(target=watcher)
    thread.start()
    time.sleep(0.3)
    for i in range(2):
        registry.create(registry.phone(i))
    assert done.wait(10)
    thread.join()
    assert [what(c)[0] for c in got] == ["tenant", "number", "number"]


def test_snapshot_then_changes(registry):
    registry.create(SF)
    campaign = registry.campaign("pool")
    registry.stub.AssignNumbers(pb.AssignNumbersRequest(campaign_id=campaign.id, phone_numbers=[SF]),
                                metadata=registry.a)
    key = registry.stub.CreateApiKey(pb.CreateApiKeyRequest(name="dialer", role=pb.API_KEY_ROLE_TENANT),
                                     metadata=registry.a)
    items, heartbeats = watch(registry, registry.service, snapshot=True, tenant_id="acme",
                              until=lambda r: r.heartbeat)
    assert [what(i) for i in items] == [("tenant", CREATED, "acme"), ("api_key", CREATED, "dialer"),
                                        ("campaign", CREATED, "pool"), ("number", CREATED, SF),
                                        ("assignment", CREATED, SF)]
    assert all(i.revision == 0 for i in items)
    assert items[1].api_key.secret_sha256 == hash_key(key.secret)
    assert items[2].campaign.number_count == 1 and list(items[3].number.campaign_ids) == [campaign.id]
    head = heartbeats[0].revision
    tenant_view, _ = watch(registry, registry.a, snapshot=True, until=lambda r: r.heartbeat)
    assert [what(i)[0] for i in tenant_view] == ["tenant", "campaign", "number", "assignment"]
    registry.create("+14152220124")
    after, _ = watch(registry, registry.a, after=head, count=1)
    assert what(after[0]) == ("number", CREATED, "+14152220124")


def test_resume_from_beyond_retention_fails_loudly(start_service, clock):
    from nhm.registry.v1 import registry_pb2_grpc
    from nhm_testing.keys import TENANT_A_KEY, auth

    handle = start_service(SPEC, feed_retention=3600, prune_interval=0.05, watch_heartbeat_interval=0.2)
    with handle.channel() as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        metadata = auth(TENANT_A_KEY)
        stub.CreateNumber(pb.CreateNumberRequest(number=pb.NumberSpec(phone_number=SF)), metadata=metadata)
        clock.advance(timedelta(hours=2))
        stub.CreateNumber(pb.CreateNumberRequest(number=pb.NumberSpec(phone_number="+14152220124")),
                          metadata=metadata)
        deadline = time.monotonic() + 10
        while True:
            call = stub.WatchChanges(pb.WatchChangesRequest(after_revision=0), metadata=metadata, timeout=5)
            try:
                first = next(iter(call))
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
                assert "retention" in error.details()
                break
            finally:
                call.cancel()
            assert first.revision <= 3 and time.monotonic() < deadline, "the pruner never ran"
            time.sleep(0.05)
        # Revisions 1-3 (two tenants, the first number) are pruned; a watcher past them resumes, and a
        # snapshot always works.
        call = stub.WatchChanges(pb.WatchChangesRequest(after_revision=3), metadata=metadata, timeout=5)
        assert next(iter(call)).number.phone_number == "+14152220124"
        call.cancel()
        call = stub.WatchChanges(pb.WatchChangesRequest(snapshot=True), metadata=metadata, timeout=5)
        items = []
        for item in call:
            if item.heartbeat:
                break
            items.append(item)
        call.cancel()
        assert sorted(i.number.phone_number for i in items if i.HasField("number")) == [SF, "+14152220124"]
