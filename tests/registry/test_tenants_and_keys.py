"""Tenants (their business profile) and API keys: created, listed, used on the registry itself, revoked."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import create_engine, text

from nhm.registry.v1 import registry_pb2 as pb
from nhm_platform.auth import hash_key
from nhm_testing.databases import owner_url
from nhm_testing.keys import auth

SF = "+14152220123"
PROFILE = pb.BusinessProfile(legal_name="Initech LLC", address="1 Main St\nAustin, TX", website="https://initech.example",
                             call_purpose="B2B software sales follow-up", expected_monthly_volume=50_000,
                             contact_email="ops@initech.example", contact_phone="+15122220100")


def test_static_tenants_exist_at_start_up_and_read_their_own(registry):
    own = registry.stub.GetTenant(pb.GetTenantRequest(), metadata=registry.a).tenant
    assert own.id == "acme" and own.display_name == "acme" and own.etag
    assert registry.stub.GetTenant(pb.GetTenantRequest(tenant_id="acme"), metadata=registry.a).tenant == own
    error = registry.error(lambda: registry.stub.GetTenant(pb.GetTenantRequest(tenant_id="globex"),
                                                           metadata=registry.a))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert registry.stub.GetTenant(pb.GetTenantRequest(tenant_id="globex"),
                                   metadata=registry.admin).tenant.id == "globex"


def test_create_tenant_is_for_admins_and_validated(registry):
    tenant = pb.Tenant(id="initech", display_name="Initech", business_profile=PROFILE)
    for metadata in (registry.a, registry.service):
        error = registry.error(lambda metadata=metadata: registry.stub.CreateTenant(
            pb.CreateTenantRequest(tenant=tenant), metadata=metadata))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    created = registry.stub.CreateTenant(pb.CreateTenantRequest(tenant=tenant), metadata=registry.admin).tenant
    assert created.business_profile == PROFILE and created.create_time.seconds
    error = registry.error(lambda: registry.stub.CreateTenant(pb.CreateTenantRequest(tenant=tenant),
                                                              metadata=registry.admin))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    bad = pb.Tenant(id="Bad Id!", business_profile=pb.BusinessProfile(
        website="ftp://x", contact_email="nope", contact_phone="123", expected_monthly_volume=-1))
    error = registry.error(lambda: registry.stub.CreateTenant(pb.CreateTenantRequest(tenant=bad),
                                                              metadata=registry.admin))
    assert set(registry.violations(error)) == {
        "tenant.id", "tenant.business_profile.website", "tenant.business_profile.contact_email",
        "tenant.business_profile.contact_phone", "tenant.business_profile.expected_monthly_volume"}
    # The new tenant is usable at once: an admin acts for it through the metadata, then gives it a key.
    acting = (*registry.admin, ("x-nhm-tenant-id", "initech"))
    assert registry.create(SF, metadata=acting).tenant_id == "initech"
    key = registry.stub.CreateApiKey(pb.CreateApiKeyRequest(name="dialer", role=pb.API_KEY_ROLE_TENANT,
                                                            tenant_id="initech"), metadata=registry.admin)
    got = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=auth(key.secret)).number
    assert got.tenant_id == "initech"
    error = registry.error(lambda: registry.create(SF, metadata=(*registry.admin, ("x-nhm-tenant-id", "nobody"))))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    error = registry.error(lambda: registry.create(SF, metadata=registry.admin))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # admin keys must say which tenant


def test_update_tenant_profile_by_mask(registry):
    own = registry.stub.GetTenant(pb.GetTenantRequest(), metadata=registry.a).tenant
    updated = registry.stub.UpdateTenant(pb.UpdateTenantRequest(
        tenant=pb.Tenant(display_name="Acme Corp", business_profile=PROFILE),
        update_mask=FieldMask(paths=["display_name", "business_profile.legal_name",
                                     "business_profile.expected_monthly_volume"]), etag=own.etag),
        metadata=registry.a).tenant
    assert updated.display_name == "Acme Corp"
    assert updated.business_profile == pb.BusinessProfile(legal_name="Initech LLC", expected_monthly_volume=50_000)
    whole = registry.stub.UpdateTenant(pb.UpdateTenantRequest(
        tenant=pb.Tenant(business_profile=PROFILE), update_mask=FieldMask(paths=["business_profile"])),
        metadata=registry.a).tenant
    assert whole.business_profile == PROFILE
    for paths in (["id"], ["create_time"], ["business_profile.secret"]):
        error = registry.error(lambda paths=paths: registry.stub.UpdateTenant(pb.UpdateTenantRequest(
            tenant=pb.Tenant(id="acme"), update_mask=FieldMask(paths=paths)), metadata=registry.a))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    error = registry.error(lambda: registry.stub.UpdateTenant(pb.UpdateTenantRequest(
        tenant=pb.Tenant(id="globex", display_name="mine"), update_mask=FieldMask(paths=["display_name"])),
        metadata=registry.a))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    error = registry.error(lambda: registry.stub.UpdateTenant(pb.UpdateTenantRequest(
        tenant=pb.Tenant(display_name="x"), update_mask=FieldMask(paths=["display_name"]), etag=own.etag),
        metadata=registry.a))
    assert error.code() is grpc.StatusCode.ABORTED


def test_api_keys_authenticate_at_once_and_stop_at_once(registry):
    created = registry.stub.CreateApiKey(pb.CreateApiKeyRequest(name="dialer", role=pb.API_KEY_ROLE_TENANT),
                                         metadata=registry.a)
    key, secret = created.api_key, created.secret
    assert secret.startswith("nhm_") and key.prefix == secret[:12] and key.tenant_id == "acme"
    assert registry.create(SF, metadata=auth(secret)).tenant_id == "acme"
    history = registry.stub.ListNumberTransitions(pb.ListNumberTransitionsRequest(phone_number=SF),
                                                  metadata=registry.a).transitions
    assert history[0].actor == "tenant:dialer"
    # Only the digest is stored.
    url = registry.handle.settings.database_url
    engine = create_engine(owner_url(url))
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT secret_sha256 FROM api_keys")).scalars().all()
        responses = connection.execute(text("SELECT response FROM idempotency_keys")).scalars().all()
    engine.dispose()
    assert stored == [hash_key(secret)] and not any(secret.encode() in bytes(r or b"") for r in responses)

    reader = registry.stub.CreateApiKey(pb.CreateApiKeyRequest(name="viewer", role=pb.API_KEY_ROLE_READ_ONLY),
                                        metadata=registry.a)
    assert registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=auth(reader.secret)).number
    for write in (lambda: registry.create("+14152220124", metadata=auth(reader.secret)),
                  lambda: registry.stub.CreateApiKey(pb.CreateApiKeyRequest(name="x", role=pb.API_KEY_ROLE_TENANT),
                                                     metadata=auth(reader.secret))):
        assert registry.error(write).code() is grpc.StatusCode.PERMISSION_DENIED

    listed = registry.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=registry.a).api_keys
    assert [k.name for k in listed] == ["dialer", "viewer"] and not any(k.HasField("revoke_time") for k in listed)
    revoked = registry.stub.RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id=key.id), metadata=registry.a).api_key
    assert revoked.HasField("revoke_time")
    error = registry.error(lambda: registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF),
                                                           metadata=auth(secret)))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert [k.name for k in registry.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=registry.a).api_keys] == [
        "viewer"]
    both = registry.stub.ListApiKeys(pb.ListApiKeysRequest(include_revoked=True, page_size=1), metadata=registry.a)
    rest = registry.stub.ListApiKeys(pb.ListApiKeysRequest(include_revoked=True, page_size=1,
                                                           page_token=both.next_page_token), metadata=registry.a)
    assert [k.id for k in [*both.api_keys, *rest.api_keys]] == [key.id, reader.api_key.id]
    # Revoking again is harmless; another tenant's key is not found.
    assert registry.stub.RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id=key.id),
                                      metadata=registry.a).api_key.revoke_time == revoked.revoke_time
    error = registry.error(lambda: registry.stub.RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id=reader.api_key.id),
                                                              metadata=registry.b))
    assert error.code() is grpc.StatusCode.NOT_FOUND


def test_create_api_key_validates_and_a_retry_never_shows_the_secret_again(registry):
    error = registry.error(lambda: registry.stub.CreateApiKey(pb.CreateApiKeyRequest(), metadata=registry.a))
    assert set(registry.violations(error)) == {"name", "role"}
    error = registry.error(lambda: registry.stub.CreateApiKey(pb.CreateApiKeyRequest(
        name="x", role=pb.API_KEY_ROLE_TENANT, tenant_id="globex"), metadata=registry.a))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    request = pb.CreateApiKeyRequest(name="dialer", role=pb.API_KEY_ROLE_TENANT, request_id="k-1")
    first = registry.stub.CreateApiKey(request, metadata=registry.a)
    retry = registry.stub.CreateApiKey(request, metadata=registry.a)
    assert first.secret and retry.api_key == first.api_key and retry.secret == ""
    assert len(registry.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=registry.a).api_keys) == 1
