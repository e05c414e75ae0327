"""The service layer behind the API: validation, tenant scoping, transactions and idempotent writes around the
workflow. Takes and returns domain values; the servicer converts to and from protobuf."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nhm_platform.audit import CREATED, DELETED, UPDATED, Actor, AuditEvent, AuditQuery, AuditSubject, fields_of
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Unavailable
from nhm_platform.idempotency import fingerprint
from nhm_platform.ids import new_id
from nhm_platform.pagination import decode_page_token, encode_page_token, filter_fingerprint, page_size
from nhm_platform.phone import InvalidPhoneNumber, parse_phone_number
from nhm_remediation import alerting, evidence, policy, workflow
from nhm_remediation.alert_repository import Delivery
from nhm_remediation.alerting import Subscription
from nhm_remediation.case_repository import CaseFilter, TaskFilter
from nhm_remediation.case_store import CaseStore, case_resource
from nhm_remediation.convert import policy_to_proto, subscription_to_proto
from nhm_remediation.domain import (
    AlertChannel,
    AlertKind,
    Case,
    CaseKind,
    DeliveryState,
    LifecycleState,
    Task,
    TaskKind,
)
from nhm_remediation.evidence import EvidencePacket
from nhm_remediation.models import audit, idempotency
from nhm_remediation.ports import ActivityPort, UpstreamError
from nhm_remediation.settings import RemediationSettings

M = TypeVar("M", bound=Message)
MAX_REASON = 1000
MAX_NOTE = 4000
MAX_OWNER = 200
MAX_REFERENCE = 500
MAX_SUBSCRIPTIONS = 100
MIN_SECRET = 16


@dataclass(frozen=True)
class Page:
    size: int
    token: str


@dataclass(frozen=True)
class EvidenceExport:
    packets: list[EvidencePacket]
    content: bytes
    content_type: str
    filename: str


def _text(value: str, field: str, limit: int, violations: list[FieldViolation]) -> str:
    value = value.strip()
    if len(value) > limit:
        violations.append(FieldViolation(field, f"at most {limit} characters"))
    elif any(not c.isprintable() and c not in "\n\t" for c in value):
        violations.append(FieldViolation(field, "no control characters"))
    return value


class Operations:
    def __init__(self, db: Database, clock: Clock, store: CaseStore, settings: RemediationSettings,
                 activity: ActivityPort) -> None:
        self._db, self._clock, self._store, self._settings, self._activity = db, clock, store, settings, activity

    # --- Idempotent writes ---

    def write(self, tenant_id: str, request_id: str, method: str, request: Message, response_type: type[M],
              work: Callable[[Session, datetime], M]) -> M:
        """Run work in one transaction; with a request id, a retry returns the first answer."""
        with self._write_conflicts(), self._db.transaction() as session:
            now = self._clock.now()
            if request_id:
                stored = idempotency.claim(session, tenant_id=tenant_id, request_id=request_id, method=method,
                                           request_fingerprint=fingerprint(request), now=now)
                if stored is not None:
                    return response_type.FromString(stored)
            response = work(session, now)
            if request_id:
                idempotency.complete(session, tenant_id=tenant_id, request_id=request_id, response=response)
            return response

    @staticmethod
    @contextlib.contextmanager
    def _write_conflicts() -> Iterator[None]:
        """A unique key hit by a concurrent writer (e.g. two openings of one number's case) is a conflict."""
        try:
            yield
        except IntegrityError:
            raise Aborted("a concurrent change conflicted with this one; retry", reason="CONFLICT") from None

    # --- Cases ---

    def open_case(self, session: Session, now: datetime, actor: Actor, tenant_id: str, raw_phone: str,
                  kind: CaseKind | None, reason: str) -> tuple[Case, bool]:
        violations: list[FieldViolation] = []
        try:
            phone = parse_phone_number(raw_phone).e164
        except InvalidPhoneNumber as exc:
            violations.append(exc.violation("phone_number"))
            phone = ""
        reason = _text(reason, "reason", MAX_REASON, violations)
        if violations:
            raise InvalidArgument.for_fields(violations)
        kind = kind or CaseKind.REMEDIATION
        store = self._store
        situation = store.situation(session, tenant_id, phone)
        if situation.number is None:
            raise NotFound(f"number {phone} not found (numbers reach remediation through the registry's feed)",
                           reason="NUMBER_NOT_FOUND")
        if situation.number.state is LifecycleState.RETIRED:
            raise FailedPrecondition(f"number {phone} is retired", reason="NUMBER_RETIRED")
        trigger = f"opened by {actor.name}" + (f": {reason}" if reason else "")
        policy_ = store.policy(session, tenant_id)
        case = store.cases.open_case_for(session, tenant_id, phone, for_update=True)
        if case is not None:
            effects = workflow.join(case, trigger, actor.name, remediate=kind is CaseKind.REMEDIATION,
                                    escalate_if_recovering=False, policy=policy_, situation=situation, now=now)
            store.commit(session, case, effects, now, actor=actor)
            return case, False
        case, effects = workflow.open_case(tenant_id, phone, kind, trigger, actor.name, policy_, situation, now)
        store.commit(session, case, effects, now, created=True, actor=actor)
        return case, True

    def get_case(self, tenant_id: str, case_id: str) -> Case:
        with self._db.read() as session:
            return self._case(session, tenant_id, case_id)

    def _case(self, session: Session, tenant_id: str, case_id: str, *, for_update: bool = False) -> Case:
        if not case_id:
            raise InvalidArgument.for_field("case_id", "required")
        case = self._store.cases.get(session, tenant_id, case_id, for_update=for_update)
        if case is None:
            raise NotFound(f"case {case_id!r} not found", reason="CASE_NOT_FOUND")
        return case

    def list_cases(self, tenant_id: str, where: CaseFilter, page: Page) -> tuple[list[Case], str]:
        size = page_size(page.size)
        if where.phone_number:
            try:
                where = CaseFilter(where.states, where.stages, where.overdue,
                                   parse_phone_number(where.phone_number).e164, where.campaign_id)
            except InvalidPhoneNumber as exc:
                raise InvalidArgument.for_fields([exc.violation("phone_number")]) from None
        token_filter = filter_fingerprint("cases", [s.value for s in where.states], [s.value for s in where.stages],
                                          where.overdue, where.phone_number, where.campaign_id)
        last = decode_page_token(page.token, token_filter)
        with self._db.read() as session:
            found = self._store.cases.list_cases(session, tenant_id, where, self._clock.now(),
                                                 str(last[0]) if last else None, size + 1)
        more = len(found) > size
        found = found[:size]
        return found, encode_page_token([found[-1].id], token_filter) if more else ""

    def list_tasks(self, tenant_id: str, where: TaskFilter, page: Page) -> tuple[list[Task], str]:
        size = page_size(page.size)
        token_filter = filter_fingerprint("tasks", [k.value for k in where.kinds], [s.value for s in where.statuses],
                                          where.overdue)
        last = decode_page_token(page.token, token_filter)
        after = None
        if last is not None:
            try:
                datetime.fromisoformat(str(last[0]))
                after = (str(last[0]), str(last[1]))
            except (ValueError, IndexError):
                raise InvalidArgument.for_field("page_token", "not a page token this service issued") from None
        with self._db.read() as session:
            found = self._store.cases.list_tasks(session, tenant_id, where, self._clock.now(), after, size + 1)
        more = len(found) > size
        found = found[:size]
        token = ""
        if more:
            due = found[-1].due_time or datetime.fromisoformat("9999-12-31T00:00:00+00:00")
            token = encode_page_token([due.isoformat(), found[-1].id], token_filter)
        return found, token

    def update_task(self, session: Session, now: datetime, actor: Actor, tenant_id: str, case_id: str,
                    task_id: str, changes: dict[str, Any], etag: str) -> tuple[Task, Case]:
        violations: list[FieldViolation] = []
        if not task_id:
            violations.append(FieldViolation("task.id", "required"))
        if not case_id:
            violations.append(FieldViolation("task.case_id", "required"))
        for name, limit in (("owner", MAX_OWNER), ("reference", MAX_REFERENCE), ("notes", MAX_NOTE)):
            if name in changes:
                changes[name] = _text(changes[name], f"task.{name}", limit, violations)
        if changes.get("owner") == "":
            violations.append(FieldViolation("task.owner", "a task needs an owner (a person or team)"))
        if violations:
            raise InvalidArgument.for_fields(violations)
        case = self._case(session, tenant_id, case_id, for_update=True)
        task = case.task(task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} not found in case {case_id!r}", reason="TASK_NOT_FOUND")
        if etag and etag != task.etag:
            raise Aborted("the task changed since it was read; read it again and retry", reason="ETAG_MISMATCH",
                          metadata={"etag": task.etag})
        effects = workflow.update_task(case, task, changes, actor.name, self._store.policy(session, tenant_id), now)
        if effects.events:
            self._store.commit(session, case, effects, now, actor=actor)
        return task, case

    def add_note(self, session: Session, now: datetime, actor: Actor, tenant_id: str, case_id: str,
                 note: str) -> Case:
        violations: list[FieldViolation] = []
        note = _text(note, "note", MAX_NOTE, violations)
        if not note and not violations:
            violations.append(FieldViolation("note", "required"))
        if violations:
            raise InvalidArgument.for_fields(violations)
        case = self._case(session, tenant_id, case_id, for_update=True)
        self._store.commit(session, case, workflow.add_note(case, note, actor.name, now), now, actor=actor)
        return case

    def cancel(self, session: Session, now: datetime, actor: Actor, tenant_id: str, case_id: str,
               reason: str, restore: bool) -> Case:
        violations: list[FieldViolation] = []
        reason = _text(reason, "reason", MAX_REASON, violations)
        if violations:
            raise InvalidArgument.for_fields(violations)
        case = self._case(session, tenant_id, case_id, for_update=True)
        if not case.is_open:
            raise FailedPrecondition(f"case {case_id} is {case.state.value.lower()}, not open", reason="CASE_CLOSED")
        effects = workflow.cancel(case, reason or f"by {actor.name}", restore, actor.name,
                                  self._store.policy(session, tenant_id), now)
        self._store.commit(session, case, effects, now, actor=actor)
        return case

    def list_events(self, tenant_id: str, case_id: str, page: Page) -> tuple[list[AuditEvent], str]:
        """A case's audit trail (its own events and its tasks'), oldest first."""
        query = AuditQuery(tenant_id, resource_types=("case", "task"), resource_name=case_resource(case_id),
                           oldest_first=True, page_size=page.size, page_token=page.token)
        with self._db.read() as session:
            self._case(session, tenant_id, case_id)
            return audit.list(session, query)

    def evidence(self, tenant_id: str, case_id: str, task_id: str, as_csv: bool) -> EvidenceExport:
        with self._db.read() as session:
            case = self._case(session, tenant_id, case_id)
            number = self._store.replicas.number(session, tenant_id, case.phone_number)
            profile = self._store.replicas.profile(session, tenant_id)
        if task_id:
            task = case.task(task_id)
            if task is None:
                raise NotFound(f"task {task_id!r} not found in case {case_id!r}", reason="TASK_NOT_FOUND")
            if task.kind is not TaskKind.DISPUTE:
                raise InvalidArgument.for_field("task_id", "evidence packets belong to dispute tasks")
            disputes = [task]
        else:
            disputes = [t for t in case.tasks if t.kind is TaskKind.DISPUTE]
            if not disputes:
                raise FailedPrecondition(f"case {case_id} has no dispute tasks", reason="NO_DISPUTES")
        try:
            activity = self._activity.call_activity(tenant_id, case.phone_number, self._settings.evidence_days,
                                                    self._settings.evidence_sample_size)
        except UpstreamError as exc:
            raise Unavailable(f"call activity is not available from scoring now ({exc}); retry later",
                              reason="SCORING_UNAVAILABLE") from None
        now = self._clock.now()
        packets = [evidence.build(case.phone_number, t.source, number, profile, activity, now) for t in disputes]
        if as_csv:
            content, content_type, ext = evidence.to_csv(packets), "text/csv", "csv"
        else:
            content, content_type, ext = evidence.to_json(packets), "application/json", "json"
        return EvidenceExport(packets, content, content_type, evidence.filename(case.phone_number, task_id, ext))

    # --- Alerts ---

    def create_subscription(self, session: Session, now: datetime, actor: Actor, tenant_id: str,
                            channel: AlertChannel | None,
                            target: str, kinds: Sequence[AlertKind | None], campaign_ids: Sequence[str],
                            secret: str) -> tuple[Subscription, str]:
        violations: list[FieldViolation] = []
        if channel is None:
            violations.append(FieldViolation("subscription.channel", "WEBHOOK or EMAIL"))
        else:
            violations += alerting.check_target(channel, target.strip(), allow_http=self._settings.allow_http_webhooks,
                                                field="subscription.target")
        for i, kind in enumerate(kinds):
            if kind is None:
                violations.append(FieldViolation(f"subscription.kinds[{i}]", "not an alert kind"))
        if len(campaign_ids) > alerting.MAX_CAMPAIGN_FILTERS:
            violations.append(FieldViolation("subscription.campaign_ids",
                                             f"at most {alerting.MAX_CAMPAIGN_FILTERS} campaigns"))
        # Another tenant's campaign gets the answer an unknown one gets, as the registry answers for a number's.
        countable = len(campaign_ids) <= alerting.MAX_CAMPAIGN_FILTERS
        known = self._store.replicas.existing_campaigns(
            session, tenant_id, [c for c in campaign_ids if 0 < len(c) <= 80]) if countable else set()
        for i, campaign_id in enumerate(campaign_ids):
            if not campaign_id or len(campaign_id) > 80:
                violations.append(FieldViolation(f"subscription.campaign_ids[{i}]", "a campaign id"))
            elif countable and campaign_id not in known:
                violations.append(FieldViolation(
                    f"subscription.campaign_ids[{i}]",
                    f"campaign {campaign_id!r} not found (campaigns reach remediation through the registry's feed)"))
        if channel is AlertChannel.WEBHOOK and secret and (len(secret) < MIN_SECRET or len(secret) > 200):
            violations.append(FieldViolation("signing_secret", f"{MIN_SECRET} to 200 characters, or empty to get one"))
        if channel is AlertChannel.EMAIL and secret:
            violations.append(FieldViolation("signing_secret", "only webhooks are signed"))
        if violations:
            raise InvalidArgument.for_fields(violations)
        assert channel is not None
        if len(self._store.alerts.subscriptions(session, tenant_id)) >= MAX_SUBSCRIPTIONS:
            raise FailedPrecondition(f"a tenant has at most {MAX_SUBSCRIPTIONS} subscriptions; delete one first",
                                     reason="TOO_MANY_SUBSCRIPTIONS")
        if channel is AlertChannel.WEBHOOK and not secret:
            secret = alerting.new_signing_secret()
        chosen = tuple(dict.fromkeys(k for k in kinds if k is not None))
        sub = Subscription(id=new_id("sub"), tenant_id=tenant_id, channel=channel, target=target.strip(),
                           kinds=chosen, campaign_ids=tuple(dict.fromkeys(campaign_ids)), signing_secret=secret,
                           create_time=now)
        self._store.alerts.add_subscription(session, sub)
        audit.record(session, actor, [_subscription_subject(sub).entry(CREATED)], now)
        if not chosen or AlertKind.WEEKLY_DIGEST in chosen:
            first = now + timedelta(seconds=self._settings.digest_interval)
            self._store.alerts.schedule_digest(session, tenant_id, first)
        return sub, secret

    def list_subscriptions(self, tenant_id: str, page: Page) -> tuple[list[Subscription], str]:
        size = page_size(page.size)
        token_filter = filter_fingerprint("subscriptions")
        last = decode_page_token(page.token, token_filter)
        with self._db.read() as session:
            found = self._store.alerts.subscriptions(session, tenant_id, str(last[0]) if last else None, size + 1)
        more = len(found) > size
        found = found[:size]
        return found, encode_page_token([found[-1].id], token_filter) if more else ""

    def delete_subscription(self, actor: Actor, tenant_id: str, subscription_id: str) -> None:
        if not subscription_id:
            raise InvalidArgument.for_field("subscription_id", "required")
        with self._db.transaction() as session:
            now = self._clock.now()
            if not self._store.alerts.delete_subscription(session, tenant_id, subscription_id, now):
                raise NotFound(f"subscription {subscription_id!r} not found", reason="SUBSCRIPTION_NOT_FOUND")
            deleted = AuditSubject(tenant_id, SUBSCRIPTION, f"alert_subscriptions/{subscription_id}", {})
            audit.record(session, actor, [deleted.entry(DELETED)], now)

    def list_deliveries(self, tenant_id: str, subscription_id: str, states: Sequence[DeliveryState],
                        page: Page) -> tuple[list[Delivery], str]:
        size = page_size(page.size)
        token_filter = filter_fingerprint("deliveries", subscription_id, [s.value for s in states])
        last = decode_page_token(page.token, token_filter)
        with self._db.read() as session:
            found = self._store.alerts.deliveries(session, tenant_id, subscription_id, states,
                                                  str(last[0]) if last else None, size + 1)
        more = len(found) > size
        found = found[:size]
        return found, encode_page_token([found[-1].id], token_filter) if more else ""

    # --- Policy ---

    def get_policy(self, tenant_id: str) -> policy.RemediationPolicy:
        with self._db.read() as session:
            return self._store.policy(session, tenant_id)

    def update_policy(self, session: Session, now: datetime, actor: Actor, tenant_id: str, given: dict[str, Any],
                      paths: list[str]) -> policy.RemediationPolicy:
        stored = self._store.policies.stored(session, tenant_id)
        merged = policy.merge(stored, given, paths)
        self._store.policies.save(session, tenant_id, merged, now)
        before, after = (AuditSubject(tenant_id, "remediation_policy", "remediation_policy",
                                      fields_of(policy_to_proto(policy.effective(p)))) for p in (stored, merged))
        audit.record(session, actor, [after.entry(UPDATED, before=before)], now)
        return policy.effective(merged)


SUBSCRIPTION = "alert_subscription"


def _subscription_subject(sub: Subscription) -> AuditSubject:
    """A subscription as the audit trail shows it: channel, target, kinds, campaigns; never its signing secret."""
    return AuditSubject(sub.tenant_id, SUBSCRIPTION, f"alert_subscriptions/{sub.id}",
                        fields_of(subscription_to_proto(sub), omit=("id", "tenant_id", "create_time")))
