"""The audit table of every service that has one: append-only through the service's own database connection
(triggers refuse UPDATE, DELETE and, on PostgreSQL, TRUNCATE), on both backends; remediation's migration turns
its case events into audit events; the field comparison behind every "updated" event."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, text

from nhm_platform.audit import Actor, ActorRole, AuditEntry, AuditQuery, FieldChange, diff
from nhm_platform.db import Database
from nhm_platform.migrations import upgrade
from nhm_platform.row_scope import tenant_rows
from nhm_registry import models as registry_models
from nhm_registry.app import SPEC as REGISTRY
from nhm_remediation import models as remediation_models
from nhm_remediation.app import SPEC as REMEDIATION
from nhm_scoring import models as scoring_models
from nhm_scoring.app import SPEC as SCORING
from nhm_testing.databases import owner_url

NOW = dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.UTC)
AUDITED = [(REGISTRY, registry_models.audit), (SCORING, scoring_models.audit),
           (REMEDIATION, remediation_models.audit)]


@pytest.mark.parametrize("spec, log", AUDITED, ids=[spec.name for spec, _ in AUDITED])
def test_the_service_cannot_change_or_delete_an_audit_event(database_url: Any, spec: Any, log: Any) -> None:
    db = Database(database_url(spec))  # as the service connects: same URL and role, same engine settings
    try:
        with tenant_rows("acme"), db.transaction() as session:
            log.record(session, Actor("tenant:ops", ActorRole.TENANT, "key_1", "req-1"), [AuditEntry(
                "acme", "number", "numbers/+14152220123", "created", (FieldChange("display_name", new="Sales"),))],
                NOW)
        assert log.table.name == "audit_events"
        attempts = ["UPDATE audit_events SET reason = 'rewritten'", "DELETE FROM audit_events",
                    "UPDATE audit_events SET tenant_id = 'globex' WHERE seq > 0"]
        if not db.is_sqlite:
            attempts.append("TRUNCATE audit_events")
        # PostgreSQL: the application role has no UPDATE, DELETE or TRUNCATE on the table, and the triggers
        # refuse them for its owner too.
        for statement in attempts:
            with pytest.raises(Exception, match=r"append-only|permission denied for table audit_events"), \
                    tenant_rows("acme"), db.transaction() as session:
                session.execute(text(statement))
        if not db.is_sqlite:
            owner = Database(owner_url(db.url))
            try:
                for statement in attempts:
                    with pytest.raises(Exception, match="append-only"), owner.transaction() as session:
                        session.execute(text(statement))
            finally:
                owner.dispose()
        with tenant_rows("acme"), db.read() as session:
            events, _ = log.list(session, AuditQuery("acme"))
            assert session.execute(select(func.count()).select_from(log.table)).scalar_one() == 1
        (event,) = events
        assert (event.entry.reason, event.entry.tenant_id, event.actor.request_id) == ("", "acme", "req-1")
        assert event.entry.changes == (FieldChange("display_name", None, "Sales"),)
    finally:
        db.dispose()


def test_remediation_case_events_become_its_audit_trail(empty_database_url: Any) -> None:
    url = empty_database_url("remediation_upgrade")
    upgrade(url, REMEDIATION.migrations_dir, REMEDIATION.version_table, "0001")
    db = Database(url)
    try:
        with db.transaction() as session:
            session.execute(text(
                "INSERT INTO cases (id, tenant_id, phone_number, kind, state, stage, cycle, triggers, recommendation,"
                " open_time, update_time, waiting, version) VALUES ('cas_1', 'acme', '+14152220123', 'REMEDIATION',"
                " 'OPEN', 'QUARANTINE', 1, '[]', '', :now, :now, false, 1)"), {"now": NOW})
            session.execute(text(
                "INSERT INTO case_events (case_id, tenant_id, event_type, actor, detail, task_id, event_time) VALUES"
                " ('cas_1', 'acme', 'case.opened', 'tenant:ops', 'opened by tenant:ops', '', :now),"
                " ('cas_1', 'acme', 'task.created', 'system:remediation', 'quarantine', 'tsk_1', :now),"
                " ('cas_1', 'acme', 'task.status', 'service:scoring', 'quarantine: PENDING -> DONE', 'tsk_1', :now)"),
                {"now": NOW})
        upgrade(url, REMEDIATION.migrations_dir, REMEDIATION.version_table)
        with db.read() as session:
            events, _ = remediation_models.audit.list(session, AuditQuery("acme", resource_name="cases/cas_1",
                                                                          oldest_first=True))
            assert "case_events" not in {row[0] for row in session.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'table'" if db.is_sqlite else
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
    finally:
        db.dispose()
    assert [(e.entry.resource_type, e.entry.resource_name, e.entry.action, e.entry.reason, e.actor.name,
             e.actor.role, e.event_time) for e in events] == [
        ("case", "cases/cas_1", "case.opened", "opened by tenant:ops", "tenant:ops", ActorRole.TENANT, NOW),
        ("task", "cases/cas_1/tasks/tsk_1", "task.created", "quarantine", "system:remediation", ActorRole.SYSTEM,
         NOW),
        ("task", "cases/cas_1/tasks/tsk_1", "task.status", "quarantine: PENDING -> DONE", "service:scoring",
         ActorRole.SERVICE, NOW)]

    config = Config()  # and back: the downgrade returns them to case_events
    config.set_main_option("script_location", str(REMEDIATION.migrations_dir))
    config.attributes.update(database_url=url, version_table=REMEDIATION.version_table)
    command.downgrade(config, "0001")
    db = Database(url)
    try:
        with db.read() as session:
            rows = session.execute(text("SELECT case_id, event_type, actor, detail, task_id FROM case_events"
                                        " ORDER BY seq")).all()
    finally:
        db.dispose()
    assert [tuple(r) for r in rows] == [
        ("cas_1", "case.opened", "tenant:ops", "opened by tenant:ops", ""),
        ("cas_1", "task.created", "system:remediation", "quarantine", "tsk_1"),
        ("cas_1", "task.status", "service:scoring", "quarantine: PENDING -> DONE", "tsk_1")]


def test_diff_names_each_changed_field_by_path() -> None:
    before = {"name": "A", "policy": {"cap": 80, "tiers": ["AREA_CODE"]}, "labels": {"team": "west"}, "on": True}
    after = {"name": "A", "policy": {"cap": 60, "tiers": ["AREA_CODE", "REGION"]}, "labels": {}, "on": False}
    assert diff(before, after) == [FieldChange("labels.team", "west", None), FieldChange("on", True, False),
                                   FieldChange("policy.cap", 80, 60),
                                   FieldChange("policy.tiers", ["AREA_CODE"], ["AREA_CODE", "REGION"])]
    assert diff(None, {"name": "A", "provider": "", "caps": [], "on": False, "cap": 0}) == [FieldChange("name", None,
                                                                                                     "A")]
    assert diff({"name": "A", "provider": ""}, None) == [FieldChange("name", "A", None)]
    assert diff(before, before) == []


def test_filters_longer_than_the_columns_are_refused_by_field() -> None:
    from nhm_platform.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as refused:
        AuditQuery("acme", resource_types=("x" * 33,), actor="a" * 201, actions=("",)).checked()
    assert [v.field for v in refused.value.violations] == ["resource_types[0]", "actions[0]", "actor"]
