"""rescore_delay: ingestion marks the numbers its events touched and a background pass rescores them, once each.

The pass is the service's own (QueuedRescoring against its database); with a delay of an hour the test runs it by
hand, so it decides exactly when health catches up. On SQLite and PostgreSQL, like every scoring test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scoring.stack import Stack, phone, start_stack, status, triggered

from nhm_platform.clock import FakeClock
from nhm_platform.db import Database
from nhm_platform.row_scope import platform_rows
from nhm_scoring import health_store, rescore_queue
from nhm_scoring.reputation import HealthStatus
from nhm_scoring.rescore_queue import QueuedRescoring
from nhm_testing.keys import TENANT_A

DAY = datetime(2026, 1, 4, tzinfo=UTC)


@pytest.fixture
def deferred(start_service: Callable[..., Any], clock: FakeClock) -> Iterator[tuple[Stack, QueuedRescoring, Database]]:
    clock.set(DAY + timedelta(hours=7))
    made = start_stack(start_service, clock, rescore_delay=3600.0)
    db = Database(made.scoring_handle.settings.database_url)
    yield made, QueuedRescoring(db, clock, delay=3600.0, chunk=2), db
    db.dispose()
    made.close()


def pending(db: Database) -> int:
    with platform_rows(), db.read() as session:
        return rescore_queue.pending(session)


def test_health_catches_up_in_one_pass_that_rescores_each_marked_number_once(deferred, clock):
    stack, queued, db = deferred
    numbers = [phone(i) for i in range(1, 6)]
    stack.create_numbers(*numbers)
    before = {n: len(stack.history(n)) for n in numbers}
    clock.set(DAY + timedelta(hours=20, minutes=30))
    # Three reports over the first number (180 calls, 4% answered: At Risk), one over each of the others.
    calls = stack.calls.day(numbers[0], DAY + timedelta(hours=8), calls=180, answered=7)
    for part in (calls[:60], calls[60:120], calls[120:]):
        assert stack.report(part).accepted == 60
    for number in numbers[1:]:
        assert stack.report(stack.calls.day(number, DAY + timedelta(hours=8), calls=3, answered=3)).accepted == 3

    # Answered and counted, not rescored yet: the marks are committed with the events.
    assert status(stack.health(numbers[0])) == "HEALTHY"
    assert pending(db) == 5

    assert queued.run_once() == 5  # chunks of 2: the pass keeps going until none is left
    assert pending(db) == 0
    health = stack.health(numbers[0])
    assert status(health) == "AT_RISK" and {"DAILY_VOLUME", "ANSWER_RATE"} <= triggered(health)
    assert len(stack.history(numbers[0])) == before[numbers[0]] + 1  # one transition for three reports
    assert [len(stack.history(n)) for n in numbers[1:]] == [before[n] for n in numbers[1:]]  # healthy still

    assert queued.run_once() == 0  # nothing marked since: nothing rescored


def test_a_retried_report_marks_nothing(deferred, clock):
    stack, queued, db = deferred
    stack.create_numbers(phone(1))
    clock.set(DAY + timedelta(hours=20, minutes=30))
    batch = stack.calls.day(phone(1), DAY + timedelta(hours=8), calls=4, answered=1)
    assert stack.report(batch).accepted == 4
    queued.run_once()
    assert stack.report(batch).duplicates == 4
    assert pending(db) == 0


def test_the_service_rescores_marked_numbers_by_itself(start_service, clock):
    clock.set(DAY + timedelta(hours=20, minutes=30))
    stack = start_stack(start_service, clock, rescore_delay=0.05)
    try:
        stack.create_numbers(phone(1))
        stack.report(stack.calls.day(phone(1), DAY + timedelta(hours=8), calls=180, answered=7))
        stack.wait_for(lambda: status(stack.health(phone(1))) == "AT_RISK", "the pass to rescore the number")
    finally:
        stack.close()


def test_events_reported_during_a_pass_are_rescored_by_the_next(deferred, clock, monkeypatch):
    """The pass holds its marks until it commits: a report on the same number meanwhile waits, then marks it
    again, and is not lost when the pass removes the marks it took."""
    stack, queued, db = deferred
    stack.create_numbers(phone(1))
    clock.set(DAY + timedelta(hours=20, minutes=30))
    calls = stack.calls.day(phone(1), DAY + timedelta(hours=8), calls=180, answered=7)
    assert stack.report(calls[:100]).accepted == 100
    reported = threading.Event()
    reporter = threading.Thread(target=lambda: stack.report(calls[100:]) and reported.set())
    original = rescore_queue.rescore

    def rescore_while_a_report_arrives(*args: Any, **kwargs: Any) -> int:
        changed = original(*args, **kwargs)
        reporter.start()
        assert not reported.wait(0.5)  # the report waits for this pass's transaction
        return changed

    monkeypatch.setattr(rescore_queue, "rescore", rescore_while_a_report_arrives)
    assert queued.run_once() == 1
    reporter.join(10)
    assert reported.is_set()
    assert status(stack.health(phone(1))) == "HEALTHY"  # 100 calls: under the daily volume threshold
    assert pending(db) == 1

    monkeypatch.setattr(rescore_queue, "rescore", original)
    assert queued.run_once() == 1
    assert status(stack.health(phone(1))) == "AT_RISK"


def test_a_clean_stop_rescores_what_is_marked(deferred, clock):
    stack, _, db = deferred
    stack.create_numbers(phone(1))
    clock.set(DAY + timedelta(hours=20, minutes=30))
    stack.report(stack.calls.day(phone(1), DAY + timedelta(hours=8), calls=180, answered=7))
    assert pending(db) == 1
    stack.scoring_handle.running.stop(0)
    assert pending(db) == 0
    with platform_rows(), db.read() as session:
        assert health_store.load(session, TENANT_A, [phone(1)])[phone(1)].status is HealthStatus.AT_RISK
