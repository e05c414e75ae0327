"""Time-driven progress: threads inside the service that advance due cases, carry out queued registry actions,
raise overdue and digest alerts, and deliver alerts.

All state is in the database (due times on cases, queued actions, pending deliveries), so a restart picks up
where the last process stopped. Several replicas can run it at once: due cases are locked (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite has one writer) and re-checked after locking; actions and deliveries are claimed
with a conditional update (a lease) and carry idempotency keys, so no step takes effect twice. A replica whose
lease runs out while it works (a pause longer than ``claim_lease``, or a clock stepped past it) may see another
replica do the step again with the same key: the registry answers a request id it has seen from its store, and a
webhook receiver ignores an alert id it has seen (delivery is at least once). Time is the injected clock; the
loop's own pacing (``scheduler_interval``) is real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete

from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.ids import new_id
from nhm_platform.row_scope import platform_rows
from nhm_remediation import workflow
from nhm_remediation.action_repository import DONE, FAILED, QueuedAction
from nhm_remediation.alerting import backoff
from nhm_remediation.case_store import CaseStore
from nhm_remediation.domain import SYSTEM_ACTOR, AlertKind, AlertRequest, CaseEvent, RegistryAction
from nhm_remediation.models import case_feed, idempotency
from nhm_remediation.ports import RegistryPort, UpstreamError, WeeklyReportPort
from nhm_remediation.senders import DeliveryError, Notifier
from nhm_remediation.settings import RemediationSettings

_log = structlog.get_logger("nhm.remediation.scheduler")


class Scheduler:
    def __init__(self, db: Database, store: CaseStore, clock: Clock, settings: RemediationSettings,
                 registry: RegistryPort, notifier: Notifier, reports: WeeklyReportPort) -> None:
        self._db, self._store, self._clock, self._settings = db, store, clock, settings
        self._registry, self._notifier, self._reports = registry, notifier, reports
        self.owner = new_id("sch")
        self._lease = timedelta(seconds=settings.claim_lease)
        self._batch = settings.scheduler_batch
        self._stop = threading.Event()
        self._wakeups = [threading.Event(), threading.Event()]
        self._threads: list[threading.Thread] = []
        self._next_prune = 0.0

    # --- Lifecycle ---

    def start(self) -> None:
        loops: list[tuple[str, Callable[[], int], threading.Event]] = [
            ("cases", self.run_cases_once, self._wakeups[0]),
            ("deliveries", self.run_deliveries_once, self._wakeups[1]),
        ]
        for name, work, wakeup in loops:
            thread = threading.Thread(target=self._loop, args=(work, wakeup), name=f"remediation-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        try:
            with platform_rows(), self._db.transaction() as session:
                self._store.actions.release(session, self.owner)
                self._store.alerts.release(session, self.owner)
        except Exception:  # noqa: BLE001 - best effort; leases also run out on their own
            _log.warning("scheduler.release_failed", exc_info=True)

    def wake(self) -> None:
        for event in self._wakeups:
            event.set()

    def _loop(self, work: Callable[[], int], wakeup: threading.Event) -> None:
        while not self._stop.is_set():
            wakeup.clear()
            try:
                with platform_rows():  # the scheduler advances every tenant's cases
                    did = work()
            except Exception:  # noqa: BLE001 - the scheduler never dies; it logs and tries again
                _log.exception("scheduler.pass_failed")
                did = 0
            if did == 0:
                wakeup.wait(self._settings.scheduler_interval)

    # --- One pass each (tests call these directly too) ---

    def run_cases_once(self) -> int:
        done = self.advance_due_cases() + self.run_actions() + self.alert_overdue_tasks() + self.send_digests()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self._settings.prune_interval
            self.prune()
        return done

    def prune(self) -> None:
        """Drop case-feed entries and remembered request ids older than the retention."""
        cutoff = self._clock.now() - timedelta(seconds=self._settings.feed_retention)
        with self._db.transaction() as session:
            dropped = case_feed.prune(session, cutoff)
            expired = session.execute(delete(idempotency.table).where(idempotency.table.c.create_time < cutoff))
        _log.info("scheduler.pruned", feed_entries=dropped, request_ids=expired.rowcount)

    def run_deliveries_once(self) -> int:
        return self.deliver_alerts()

    def advance_due_cases(self) -> int:
        now = self._clock.now()
        with self._db.read() as session:
            due = self._store.cases.due_case_ids(session, now, self._batch)
        done = 0
        recheck = timedelta(seconds=self._settings.recheck_interval)
        for case_id in due:
            with self._db.transaction() as session:
                case = self._store.cases.get_any_tenant(session, case_id, for_update=True, skip_locked=True)
                due_time = case.next_due() if case is not None else None
                if case is None or due_time is None or due_time > now:
                    continue  # another replica has it, or moved it on already
                policy = self._store.policy(session, case.tenant_id)
                situation = self._store.situation(session, case.tenant_id, case.phone_number)
                effects = workflow.on_due(case, policy, situation, now, recheck)
                self._store.commit(session, case, effects, now)
                done += 1
        return done

    def run_actions(self) -> int:
        now = self._clock.now()
        with self._db.read() as session:
            due = self._store.actions.due_ids(session, now, self._batch)
        done = 0
        for action_id in due:
            with self._db.transaction() as session:
                claimed = self._store.actions.claim(session, action_id, self.owner, now, self._lease)
            if claimed is not None:
                self._carry_out(claimed)
                done += 1
        return done

    def _carry_out(self, queued: QueuedAction) -> None:
        action: RegistryAction | None = queued.action
        error = ""
        try:
            if queued.action.method == "restore":
                state = self._registry.state(queued.tenant_id, queued.phone_number)
                action = workflow.restore_step(queued.action, state)
                if action is not None:
                    self._registry.apply(queued.tenant_id, queued.phone_number, action)
            else:
                self._registry.apply(queued.tenant_id, queued.phone_number, action)
        except UpstreamError as exc:
            error = str(exc)
            if exc.transient and queued.attempts < self._settings.action_max_attempts:
                delay = backoff(queued.attempts, timedelta(seconds=self._settings.action_retry_initial),
                                timedelta(seconds=self._settings.action_retry_max))
                with self._db.transaction() as session:
                    self._store.actions.retry_later(session, queued.id, self.owner, error, self._clock.now() + delay)
                _log.info("action.retry", case_id=queued.case_id, target=queued.action.target_state.value,
                          error=error)
                return
            if action is not None and self._already_there(queued, action):
                error = ""
        now = self._clock.now()
        with self._db.transaction() as session:
            if not self._store.actions.finish(session, queued.id, self.owner, now,
                                              status=FAILED if error else DONE, error=error):
                return  # the claim ran out and another replica finished it
            case = self._store.cases.get_any_tenant(session, queued.case_id, for_update=True)
            if case is None:
                return
            if action is None:  # nothing to restore: the number is active (or retired) already
                self._store.record_events(session, case, [CaseEvent(
                    "number.restore_skipped", SYSTEM_ACTOR, "the number needed no restoring")], now)
                return
            policy = self._store.policy(session, case.tenant_id)
            effects = (workflow.on_action_failed(case, queued.action if error else action, error, now) if error
                       else workflow.on_action_done(case, action, now, policy))
            self._store.commit(session, case, effects, now)

    def _already_there(self, queued: QueuedAction, action: RegistryAction) -> bool:
        """A refused transition whose target the number is in already (an operator, a replay) counts as done."""
        try:
            return self._registry.state(queued.tenant_id, queued.phone_number) is action.target_state
        except UpstreamError:
            return False

    def alert_overdue_tasks(self) -> int:
        now = self._clock.now()
        with self._db.read() as session:
            overdue = self._store.cases.overdue_task_ids(session, now, self._batch)
        done = 0
        for task_id in overdue:
            with self._db.transaction() as session:
                case_id = self._store.cases.claim_overdue_alert(session, task_id, now)
                case = self._store.cases.get_any_tenant(session, case_id) if case_id else None
                task = case.task(task_id) if case is not None else None
                if case is None or task is None or task.due_time is None:
                    continue
                summary = (f"{task.describe()} for {case.phone_number} is overdue (due "
                           f"{task.due_time.isoformat()})")
                self._store.record_events(session, case, [CaseEvent("task.overdue", SYSTEM_ACTOR, summary,
                                                                    task.id)], now)
                self._store.raise_alerts(session, case.tenant_id, [AlertRequest(
                    AlertKind.TASK_OVERDUE, summary, {"task_id": task.id, "task_kind": task.kind.value,
                                                      "due_time": task.due_time.isoformat()})], now, case=case)
                done += 1
        return done

    def send_digests(self) -> int:
        now = self._clock.now()
        interval = timedelta(seconds=self._settings.digest_interval)
        with self._db.read() as session:
            due = self._store.alerts.due_digests(session, now, self._batch)
        done = 0
        for tenant_id, due_time in due:
            # The digest covers the scheduled week, even when it goes out late.
            start, end = due_time - interval, due_time
            following = due_time + interval
            while following <= now:
                following += interval
            try:
                report: dict[str, object] = self._reports.weekly_report(tenant_id, end)
            except UpstreamError as exc:
                report = {"unavailable": str(exc)}
            with self._db.transaction() as session:
                if not self._store.alerts.claim_digest(session, tenant_id, due_time, following):
                    continue
                summary = _digest_summary(report, start, end)
                cases = self._store.cases.digest(session, tenant_id, start, end)
                self._store.raise_alert(session, tenant_id, AlertKind.WEEKLY_DIGEST, summary, now, report=report,
                                        remediation=cases, period_start=start.isoformat(),
                                        period_end=end.isoformat())
                done += 1
        return done

    def deliver_alerts(self) -> int:
        now = self._clock.now()
        with self._db.read() as session:
            due = self._store.alerts.due_delivery_ids(session, now, self._batch)
        done = 0
        max_attempts = self._settings.delivery_max_attempts
        for delivery_id in due:
            if self._stop.is_set():
                break
            with self._db.transaction() as session:
                claimed = self._store.alerts.claim_delivery(session, delivery_id, self.owner, now, self._lease)
            if claimed is None:
                continue
            error = ""
            try:
                self._notifier.send(claimed)
            except DeliveryError as exc:
                error = str(exc)
            attempts = claimed.delivery.attempts + 1
            finished = self._clock.now()
            retry_at: datetime | None = None
            if error and attempts < max_attempts and claimed.subscription is not None:
                retry_at = finished + backoff(attempts, timedelta(seconds=self._settings.delivery_backoff_initial),
                                              timedelta(seconds=self._settings.delivery_backoff_max))
            with self._db.transaction() as session:
                self._store.alerts.record_attempt(session, delivery_id, self.owner, finished, ok=not error,
                                                  error=error, retry_at=retry_at)
            if error:
                _log.info("alert.delivery_failed", delivery_id=delivery_id, attempts=attempts, error=error)
            done += 1
        return done


def _digest_summary(report: dict[str, object], start: datetime, end: datetime) -> str:
    counts = report.get("countsNow") or {}
    if isinstance(counts, dict) and counts:
        parts = ", ".join(f"{counts.get(k, 0)} {k.replace('atRisk', 'at risk')}"
                          for k in ("healthy", "atRisk", "flagged", "blocked"))
        return f"Weekly digest {start.date()} to {end.date()}: {parts}"
    return f"Weekly digest {start.date()} to {end.date()}"
