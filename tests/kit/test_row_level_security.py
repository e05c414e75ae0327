"""Row-level security on PostgreSQL, the second wall behind the repositories' tenant filters.

Every test here connects as the application role (the role the services run as), never as a superuser or the
tables' owner: those bypass row-level security, so a test connected that way would prove nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import psycopg
import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from nhm.registry.v1 import registry_pb2 as rpb
from nhm.registry.v1 import registry_pb2_grpc
from nhm_allocation.app import SPEC as ALLOCATION
from nhm_allocation.models import prospects
from nhm_platform.auth import Principal, Role, reset_current_principal, set_current_principal
from nhm_platform.coalescing import TransactionCoalescer
from nhm_platform.db import Database
from nhm_platform.row_scope import current_row_scope, platform_rows, tenant_rows
from nhm_platform.service import open_database
from nhm_registry import repository
from nhm_registry.app import SPEC as REGISTRY
from nhm_registry.models import numbers as registry_numbers
from nhm_remediation.app import SPEC as REMEDIATION
from nhm_scoring.app import SPEC as SCORING
from nhm_testing.databases import APP_ROLE, owner_url
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, TENANT_B, TENANT_B_KEY, auth

SPECS = [REGISTRY, SCORING, ALLOCATION, REMEDIATION]
# Tables that hold no tenant's data (counters and cursors of the feeds).
UNSCOPED_TABLES = {"feed_head", "case_feed_head", "feed_cursors"}
# Tenant-scoped tables whose policy is not on a tenant_id column.
SCOPED_OTHERWISE = {("registry", "tenants"), ("remediation", "pool_alerts")}
A_PROSPECTS = ["+14152220001", "+14152220002"]
B_PROSPECTS = ["+12125550003"]


def connect(url: str) -> psycopg.Connection[Any]:
    parsed = make_url(url)
    return psycopg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                           password=parsed.password, dbname=parsed.database)


@pytest.fixture
def allocation_db(postgres: Any) -> str:
    """A migrated allocation database (application role URL) with prospects of two tenants, planted as owner."""
    url = postgres.fresh(ALLOCATION)
    with connect(owner_url(url)) as owner:
        for tenant, phones in ((TENANT_A, A_PROSPECTS), (TENANT_B, B_PROSPECTS)):
            for phone in phones:
                owner.execute("INSERT INTO prospects (tenant_id, destination) VALUES (%s, %s)", (tenant, phone))
    return url


def visible(session: Any) -> set[tuple[str, str]]:
    return {(r.tenant_id, r.destination) for r in session.execute(select(prospects.c.tenant_id,
                                                                         prospects.c.destination))}


A_ROWS = {(TENANT_A, p) for p in A_PROSPECTS}
B_ROWS = {(TENANT_B, p) for p in B_PROSPECTS}


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_tenant_table_is_under_forced_row_level_security(postgres: Any, spec: Any) -> None:
    """A new table with a tenant_id column fails here until its migration protects it."""
    from importlib import import_module

    metadata = import_module(f"nhm_{spec.name}.models").metadata
    with connect(owner_url(postgres.fresh(spec))) as owner:
        state = {name: (enabled, forced) for name, enabled, forced in owner.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'")}
        policies = {name for (name,) in owner.execute("SELECT tablename FROM pg_policies")}
    tables = {t.name for t in metadata.sorted_tables}
    scoped = {t.name for t in metadata.sorted_tables if "tenant_id" in t.c}
    scoped |= {table for service, table in SCOPED_OTHERWISE if service == spec.name}
    assert tables - scoped <= UNSCOPED_TABLES, f"decide whether {tables - scoped - UNSCOPED_TABLES} are tenant data"
    unprotected = sorted(t for t in scoped if state.get(t) != (True, True) or t not in policies)
    assert not unprotected, f"tenant tables without forced row-level security: {unprotected}"


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_the_application_role_has_exactly_the_privileges_the_service_needs(postgres: Any, spec: Any) -> None:
    """Rows read and written, the audit trail only read and added to; no TRUNCATE, REFERENCES or TRIGGER."""
    from importlib import import_module

    metadata = import_module(f"nhm_{spec.name}.models").metadata
    kinds = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
    with connect(owner_url(postgres.fresh(spec))) as owner:
        for table in metadata.sorted_tables:
            held = {kind for kind in kinds if owner.execute(
                "SELECT has_table_privilege(%s, %s, %s)", (APP_ROLE, table.name, kind)).fetchone()[0]}
            wanted = {"SELECT", "INSERT"} if table.info.get("append_only") else {"SELECT", "INSERT", "UPDATE",
                                                                                  "DELETE"}
            assert held == wanted, table.name


def test_without_the_tenant_setting_the_application_role_reads_and_writes_nothing(allocation_db: str) -> None:
    with connect(allocation_db) as app:
        assert app.execute("SELECT count(*) FROM prospects").fetchone() == (0,)
        assert app.execute("UPDATE prospects SET sticky_phone_number = '+14155550100'").rowcount == 0
        assert app.execute("DELETE FROM prospects").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            app.execute("INSERT INTO prospects (tenant_id, destination) VALUES (%s, '+14152229999')", (TENANT_A,))
        app.rollback()
        app.execute("SELECT set_config('nhm.tenant_id', %s, true)", (TENANT_A,))
        assert app.execute("SELECT count(*) FROM prospects").fetchone() == (len(A_PROSPECTS),)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            app.execute("INSERT INTO prospects (tenant_id, destination) VALUES (%s, '+14152229999')", (TENANT_B,))
        app.rollback()
    with connect(owner_url(allocation_db)) as owner:  # nothing was changed
        assert owner.execute("SELECT count(*) FROM prospects WHERE sticky_phone_number IS NULL").fetchone() == (3,)


STATEMENTS_REFUSED = [
    "ALTER TABLE prospects DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE prospects NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY tenant_rows ON prospects",
    "CREATE POLICY everything ON prospects USING (true)",
    f"ALTER TABLE prospects OWNER TO {APP_ROLE}",
    "TRUNCATE prospects",
    "SET ROLE postgres",
]


@pytest.mark.parametrize("statement", STATEMENTS_REFUSED)
def test_the_application_role_cannot_turn_row_level_security_off_or_act_as_the_owner(allocation_db: str,
                                                                                      statement: str) -> None:
    with connect(allocation_db) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(statement)
        app.rollback()
        app.execute("SET row_security = off")  # asks for an error rather than filtered rows: still no rows
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            app.execute("SELECT count(*) FROM prospects")
        app.rollback()
        row = app.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row == (False, False)


def test_a_service_refuses_a_database_role_that_row_level_security_would_not_hold(postgres: Any) -> None:
    url = postgres.fresh(ALLOCATION)
    settings = ALLOCATION.load_settings(database_url=owner_url(url))  # the test server's superuser
    with pytest.raises(RuntimeError, match="superuser: row-level security would not hold"):
        open_database(ALLOCATION, settings)
    open_database(ALLOCATION, ALLOCATION.load_settings(database_url=url)).dispose()  # the application role


def test_the_tenant_setting_never_outlives_its_transaction_on_a_pooled_connection(allocation_db: str) -> None:
    """Two tenants alternate on a pool of one connection; between them a transaction that names no tenant."""
    db = Database(allocation_db, pool_size=1)
    db.engine.pool._max_overflow = 0  # type: ignore[attr-defined]  # exactly one connection, reused
    backends = set()
    try:
        for _ in range(3):
            for scope, expected in ((tenant_rows(TENANT_A), A_ROWS), (tenant_rows(TENANT_B), B_ROWS),
                                    (platform_rows(), A_ROWS | B_ROWS)):
                with scope, db.read() as session:
                    assert visible(session) == expected
                    backends.add(session.execute(text("SELECT pg_backend_pid()")).scalar())
                with db.engine.connect() as raw:  # the connection itself carries no setting out of a transaction
                    settings = raw.execute(text("SELECT current_setting('nhm.tenant_id', true),"
                                                " current_setting('nhm.platform', true)")).one()
                    assert tuple(value or "" for value in settings) == ("", "")
                    assert raw.execute(select(prospects)).all() == []
                    backends.add(raw.execute(text("SELECT pg_backend_pid()")).scalar())
                with db.read() as session:  # a transaction that names no scope: nothing, whatever came before
                    assert visible(session) == set()
        assert len(backends) == 1
    finally:
        db.dispose()


def test_coalesced_calls_of_two_tenants_in_one_transaction_each_see_only_their_own_rows(allocation_db: str) -> None:
    """Group commit puts calls of different callers in one transaction: each runs under its own caller's scope."""
    db = Database(allocation_db)
    coalescer = TransactionCoalescer(db, max_calls=16, max_transactions=1)
    seen: dict[str, tuple[set[tuple[str, str]], int]] = {}
    first_running = threading.Event()

    def work(name: str, hold: float = 0.0) -> Any:
        def run(session: Any) -> str:
            if hold:
                first_running.set()
                time.sleep(hold)  # the others queue meanwhile and share the next transaction
            seen[name] = (visible(session), session.execute(text("SELECT txid_current()")).scalar())
            return name
        return run

    def call(name: str, tenant: str, hold: float = 0.0) -> None:
        principal = Principal(Role.TENANT, tenant, key_id=name)
        token = set_current_principal(principal)
        try:
            coalescer.run(work(name, hold))
        finally:
            reset_current_principal(token)

    try:
        holder = threading.Thread(target=call, args=("hold", TENANT_A, 0.5))
        holder.start()
        assert first_running.wait(10)
        batch = [threading.Thread(target=call, args=(f"{tenant}-{i}", tenant))
                 for i in range(3) for tenant in (TENANT_B, TENANT_A)]
        for thread in batch:
            thread.start()
        for thread in [holder, *batch]:
            thread.join(30)
        batched = {name: txid for name, (_, txid) in seen.items() if name != "hold"}
        assert len(set(batched.values())) < len(batched), f"no calls shared a transaction: {batched}"
        for name, (rows, _) in seen.items():
            assert rows == (B_ROWS if name.startswith(TENANT_B) else A_ROWS), name
    finally:
        db.dispose()


def test_the_platform_scope_is_refused_inside_a_call_made_with_a_tenant_key() -> None:
    token = set_current_principal(Principal(Role.TENANT, TENANT_A))
    try:
        assert current_row_scope().tenant_id == TENANT_A and not current_row_scope().platform
        with pytest.raises(RuntimeError), platform_rows():
            pass
        with pytest.raises(RuntimeError), tenant_rows(TENANT_B):
            pass
    finally:
        reset_current_principal(token)
    token = set_current_principal(Principal(Role.SERVICE, key_id="service"))
    try:
        assert current_row_scope().platform  # a service key acting for no tenant: the platform's rows
        with tenant_rows(TENANT_B):
            assert current_row_scope().tenant_id == TENANT_B
    finally:
        reset_current_principal(token)
    assert current_row_scope().tenant_id == "" and not current_row_scope().platform  # no caller: no rows


def _without_tenant_filter(self: repository.Repository, tenant_id: str, phone_numbers: Any, *,
                           lock: Any = None) -> dict[str, Any]:
    """A deliberately broken repository query: the number lookup forgets its tenant filter."""
    rows = list(self.session.execute(select(registry_numbers).where(
        registry_numbers.c.phone_number.in_(list(phone_numbers)))))
    return {n.phone_number: n for n in self._hydrate(rows)}


def test_with_a_repository_query_missing_its_tenant_filter_row_level_security_still_hides_the_rows(
        backend: str, start_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite (no row-level security) the broken query hands tenant B tenant A's number, so the variant is a
    real leak; on PostgreSQL row-level security hides it and B gets NOT_FOUND, as for a number that does not
    exist."""
    handle = start_service(REGISTRY)
    with handle.channel() as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        phone = "+14152220123"
        stub.CreateNumber(rpb.CreateNumberRequest(number=rpb.NumberSpec(phone_number=phone)),
                          metadata=auth(TENANT_A_KEY))
        monkeypatch.setattr(repository.Repository, "get_numbers", _without_tenant_filter)
        request = rpb.GetNumberRequest(phone_number=phone)
        assert stub.GetNumber(request, metadata=auth(TENANT_A_KEY)).number.tenant_id == TENANT_A
        if backend == "sqlite":
            assert stub.GetNumber(request, metadata=auth(TENANT_B_KEY)).number.tenant_id == TENANT_A  # the leak
            return
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetNumber(request, metadata=auth(TENANT_B_KEY))
        assert refused.value.code() is grpc.StatusCode.NOT_FOUND


def test_writes_under_a_tenant_scope_land_in_that_tenant_only(allocation_db: str) -> None:
    db = Database(allocation_db)
    try:
        with tenant_rows(TENANT_B), db.transaction() as session:
            session.execute(insert(prospects).values(tenant_id=TENANT_B, destination="+12125550004"))
            assert session.execute(text("UPDATE prospects SET sticky_phone_number = '+12125550100'")).rowcount == 2
        with platform_rows(), db.read() as session:
            sticky = dict(session.execute(select(prospects.c.destination, prospects.c.sticky_phone_number)).all())
        assert {d for d, s in sticky.items() if s} == {"+12125550003", "+12125550004"}
    finally:
        db.dispose()
