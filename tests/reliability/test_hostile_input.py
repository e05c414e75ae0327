"""Hostile input for every RPC of the four services: every reply is a documented status, never INTERNAL or
UNKNOWN; an INVALID_ARGUMENT names the field; a refused request changes nothing.

The services run without their feed followers and with their periodic work pushed out, so that the only writes
are the calls' own: the called service's database is compared (every table, every row) before and after each
refused call. Requests come from tests/reliability/hostile.py: tricky phone numbers, huge batches, empty,
oversized and odd-Unicode strings, invalid enums, negative and absurd durations and timestamps, unknown ids,
server-owned fields in update masks. Callers are a tenant key and an admin key acting for that tenant.

CI: 25 requests per RPC and backend (5 per Watch stream); NHM_RELIABILITY_SCALE=10 (`make reliability`): 10,000 per RPC
(50 per Watch stream, each of which waits for its first message).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants.load import SCALE
from reliability.hostile import request_strategy
from sqlalchemy import Engine, create_engine, inspect, text

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm.audit.v1 import audit_pb2
from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.remediation.v1 import remediation_pb2, remediation_pb2_grpc
from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm_platform.clock import FakeClock
from nhm_testing.databases import owner_url
from nhm_testing.keys import ADMIN_KEY, TENANT_A, TENANT_A_KEY, auth
from nhm_testing.services import ServiceHandle, running_service

# The long version outlasts the suite's 300 s timeout.
pytestmark = pytest.mark.timeout(300 * max(1, SCALE))
EXAMPLES = 25 if SCALE == 1 else 1_000 * SCALE
STREAM_EXAMPLES = 5 if SCALE == 1 else 5 * SCALE
DOCUMENTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED,
              grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE}
SERVICES = {
    "registry": (registry_pb2, registry_pb2_grpc, "RegistryService"),
    "scoring": (scoring_pb2, scoring_pb2_grpc, "ScoringService"),
    "allocation": (allocation_pb2, allocation_pb2_grpc, "AllocationService"),
    "remediation": (remediation_pb2, remediation_pb2_grpc, "RemediationService"),
}
# Services that also serve nhm.audit.v1.AuditService on their port (its RPCs are named "<service>.audit.<method>").
AUDITED = ("registry", "scoring", "remediation")
PHONES = ["+14152220123", "+14152220124", "+12122220188"]
# Tables a refused call may write: none of the services' own data. Rate and concurrency bookkeeping lives in
# memory, so nothing is excluded today; a table named here needs a reason.
EXCLUDED_TABLES: set[str] = {"alembic_version"}


def served(name: str) -> list[tuple[str, Any]]:
    """(id prefix, service descriptor) of every gRPC service a service's port serves."""
    module, _, service_name = SERVICES[name]
    found = [(name, module.DESCRIPTOR.services_by_name[service_name])]
    if name in AUDITED:
        found.append((f"{name}.audit", audit_pb2.DESCRIPTOR.services_by_name["AuditService"]))
    return found


@dataclass
class Target:
    service: Any  # its descriptor
    method: str
    handle: ServiceHandle
    channel: grpc.Channel
    request_type: Any
    client_streaming: bool
    server_streaming: bool
    url: str

    def callable(self) -> Any:
        service = self.service
        path = f"/{service.full_name}/{self.method}"
        response = service.methods_by_name[self.method].output_type
        deserialize = message_factory.GetMessageClass(response).FromString
        serialize = self.request_type.SerializeToString
        kind = ("stream" if self.client_streaming else "unary") + "_" + ("stream" if self.server_streaming else "unary")
        return getattr(self.channel, kind)(path, request_serializer=serialize, response_deserializer=deserialize)


@dataclass
class Platform:
    targets: dict[str, Target]
    known: list[str]
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(request: pytest.FixtureRequest, sqlite_provisioner: Any, postgres_provisioner: Any) -> Iterator[Platform]:
    from nhm_allocation.app import SPEC as ALLOCATION
    from nhm_registry.app import SPEC as REGISTRY
    from nhm_remediation.app import SPEC as REMEDIATION
    from nhm_scoring.app import SPEC as SCORING

    if request.param == "postgresql" and postgres_provisioner is None:
        pytest.skip("PostgreSQL run needs NHM_TEST_POSTGRES_URL (a postgresql+psycopg:// URL); CI sets it")
    provisioner = sqlite_provisioner if request.param == "sqlite" else postgres_provisioner
    clock = FakeClock()
    quiet = {"tenant_bulk_rate": 0.0, "max_message_bytes": 4 * 1024 * 1024}
    specs = {
        # Batch limits below the generated huge batches (5,000): those are refused, smaller ones accepted.
        "registry": (REGISTRY, {"prune_interval": 3600.0, "max_batch_size": 500}),
        "scoring": (SCORING, {"follow_registry": False, "registry_target": "", "rescore_interval": 3600.0,
                              "max_batch_events": 500, "max_stream_batch_events": 500}),
        "allocation": (ALLOCATION, {"registry_target": "", "scoring_target": ""}),
        "remediation": (REMEDIATION, {"registry_target": "", "scoring_target": "", "allocation_target": "",
                                      "scheduler_interval": 3600.0}),
    }
    with contextlib.ExitStack() as stack:
        targets: dict[str, Target] = {}
        for name, (spec, overrides) in specs.items():
            url = provisioner.fresh(spec)
            handle = stack.enter_context(running_service(spec, url, clock, **quiet, **overrides))
            channel = stack.enter_context(handle.channel())
            for prefix, service in served(name):
                for method in service.methods:
                    targets[f"{prefix}.{method.name}"] = Target(
                        service, method.name, handle, channel, message_factory.GetMessageClass(method.input_type),
                        method.client_streaming, method.server_streaming, url)
        known = seed(targets)
        platform = Platform(targets, known)
        try:
            yield platform
        finally:
            release_engines()
        print(f"\nhostile input [{request.param}]: replies by code: "
              + ", ".join(f"{code}={count}" for code, count in sorted(
                  Counter(code for (_, code) in platform.codes.elements()).items())))


def seed(targets: dict[str, Target]) -> list[str]:
    """A campaign and numbers of tenant A, so that generated requests also name ids that exist."""
    registry = registry_pb2_grpc.RegistryServiceStub(targets["registry.GetNumber"].channel)
    a = auth(TENANT_A_KEY)
    campaign = registry.CreateCampaign(registry_pb2.CreateCampaignRequest(
        campaign=registry_pb2.Campaign(name="Seeded")), metadata=a).campaign
    for phone in PHONES:
        registry.CreateNumber(registry_pb2.CreateNumberRequest(
            number=registry_pb2.NumberSpec(phone_number=phone, campaign_ids=[campaign.id])), metadata=a)
    return [*PHONES, campaign.id, TENANT_A, "globex", f"numbers/{PHONES[0]}", f"campaigns/{campaign.id}", "campaigns",
            "number", "created", "tenant:static"]


_ENGINES: dict[str, tuple[Engine, tuple[str, ...]]] = {}


def _engine(url: str) -> tuple[Engine, tuple[str, ...]]:
    if url not in _ENGINES:
        engine = create_engine(owner_url(url), pool_size=1)
        with engine.connect() as connection:
            tables = tuple(sorted(set(inspect(connection).get_table_names()) - EXCLUDED_TABLES))
        _ENGINES[url] = (engine, tables)
    return _ENGINES[url]


def digest(url: str) -> str:
    """Every row of every table of a database (but the excluded ones), as one hash (PostgreSQL: one query).

    Hashing every row after each of 10,000 calls made the long run quadratic, so the database's own
    change counter is read first and the last hash reused while it has not moved: SQLite's data_version (on
    this one connection, it moves with every commit of any other), PostgreSQL's WAL insert position (moves with
    every change to any table of the server, and with some reads: then the rows are hashed again)."""
    engine, tables = _engine(url)
    with engine.connect() as connection:
        version = _change_counter(connection)
        last = _DIGESTS.get(url)
        if last is not None and last[0] == version:
            return last[1]
        if engine.dialect.name == "postgresql":
            query = " UNION ALL ".join(
                f"SELECT '{t}', md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM \"{t}\" x"  # noqa: S608
                for t in tables)  # table names from the schema
            result = repr(connection.execute(text(query)).all())
        else:
            hasher = hashlib.sha256()
            for table in tables:
                rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()  # noqa: S608 - names from the schema
                hasher.update(table.encode())
                for row in sorted(repr(tuple(row)) for row in rows):
                    hasher.update(row.encode())
            result = hasher.hexdigest()
    _DIGESTS[url] = (version, result)
    return result


_DIGESTS: dict[str, tuple[tuple[int, str], str]] = {}  # url -> (change counter, digest)


def _change_counter(connection: Any) -> tuple[int, str]:
    """Moves whenever another connection commits a change (read before the rows, so a commit while they are
    hashed makes the next call hash again). Paired with the connection: data_version means nothing across two."""
    raw = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        return id(raw), str(connection.execute(text("SELECT pg_current_wal_insert_lsn()")).scalar_one())
    return id(raw), str(connection.execute(text("PRAGMA data_version")).scalar_one())


def release_engines() -> None:
    _DIGESTS.clear()
    while _ENGINES:
        _ENGINES.popitem()[1][0].dispose()


def call(target: Target, request: Any, metadata: Any) -> grpc.RpcError | None:
    method = target.callable()
    try:
        if target.server_streaming:
            stream = method(request, metadata=metadata, timeout=10)
            with contextlib.suppress(StopIteration):
                next(iter(stream))
            stream.cancel()
        elif target.client_streaming:
            method(iter(request), metadata=metadata, timeout=30)
        else:
            method(request, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.CANCELLED and target.server_streaming:
            return None  # our own cancel after the first message
        return error
    return None


def shown(request: Any) -> str:
    return str(request).replace("\n", " ")[:300]


def field_violations(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)
    found = []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [v.field for v in bad.field_violations]
    return found


def rpc_ids() -> list[str]:
    return [f"{prefix}.{m.name}" for name in SERVICES for prefix, service in served(name) for m in service.methods]


CALLERS = [auth(TENANT_A_KEY), (*auth(ADMIN_KEY), ("x-nhm-tenant-id", TENANT_A))]


@pytest.mark.parametrize("rpc", rpc_ids())
def test_every_reply_is_documented_and_a_refusal_changes_nothing(platform: Platform, rpc: str) -> None:
    target = platform.targets[rpc]
    requests = request_strategy(target.request_type.DESCRIPTOR, platform.known)
    if target.client_streaming:
        requests = st.lists(requests, max_size=3)
    examples = STREAM_EXAMPLES if target.server_streaming else EXAMPLES
    failures: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(request=requests, caller=st.sampled_from(CALLERS))
    def check(request: Any, caller: Any) -> None:
        error = call(target, request, caller)
        code = error.code() if error is not None else grpc.StatusCode.OK
        platform.codes[(rpc, code.name)] += 1
        if code not in DOCUMENTED:
            failures.append(f"{code.name}: {error.details() if error else ''} for {shown(request)}")
            return
        if code is grpc.StatusCode.INVALID_ARGUMENT and not field_violations(error):
            failures.append(f"INVALID_ARGUMENT without a field: {error.details()} for {shown(request)}")
        after = digest(target.url)
        if code is not grpc.StatusCode.OK and after != state[0]:
            failures.append(f"{code.name} changed state: {error.details() if error else ''} for {shown(request)}")
        state[0] = after

    state = [digest(target.url)]  # only the calls write: the state before each is the one after the last
    check()
    assert not failures, f"{len(failures)} bad replies, first ones:\n" + "\n".join(failures[:5])


def test_the_digest_sees_every_commit_of_another_connection(empty_database_url: Any) -> None:
    url = empty_database_url("digest")
    writer = create_engine(owner_url(url))
    try:
        with writer.begin() as connection:
            connection.execute(text("CREATE TABLE t (v integer)"))
        release_engines()  # the digest's engine learns the tables when it first connects
        first = digest(url)
        assert digest(url) == first  # nothing committed: the same hash, from the counter
        with writer.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
        second = digest(url)
        assert second != first
        with writer.begin() as connection:
            connection.execute(text("UPDATE t SET v = 2"))
        assert digest(url) not in (first, second)
        with writer.begin() as connection:
            connection.execute(text("UPDATE t SET v = 1"))
        assert digest(url) == second  # the rows, not the counter, make the hash
    finally:
        release_engines()
        writer.dispose()
