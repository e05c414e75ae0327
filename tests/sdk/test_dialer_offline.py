"""The dialer helpers when services cannot be reached: the fallback caller ID, and a reporter that never blocks."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from nhm_sdk import Client, DeadlineExceededError, NhmError, UnavailableError, UnimplementedError
from nhm_testing.services import ServiceHandle

FALLBACK = "+14158670000"
PROSPECT = "+12127363100"


def test_fallback_is_used_when_allocation_refuses_connections(make_client: Callable[..., Client],
                                                              closed_port: int) -> None:
    client = make_client(target=f"127.0.0.1:{closed_port}")
    started = time.monotonic()
    with client.call("camp-1", PROSPECT, fallback_caller_id=FALLBACK) as call:
        assert call.fallback and call.caller_id == FALLBACK
        assert isinstance(call.fallback_error, UnavailableError)
        assert call.response is None
    assert time.monotonic() - started < client.config.timeouts.allocation + 0.5
    with pytest.raises(UnavailableError):
        client.call("camp-1", PROSPECT)  # no fallback configured: the error is the dialer's to handle


def test_fallback_is_used_when_allocation_does_not_answer_within_the_deadline(
        make_client: Callable[..., Client], blackhole: int) -> None:
    client = make_client(allocation_target=f"127.0.0.1:{blackhole}")
    started = time.monotonic()
    call = client.call("camp-1", PROSPECT, fallback_caller_id=FALLBACK, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert call.fallback and isinstance(call.fallback_error, DeadlineExceededError)


def test_no_fallback_when_the_service_answers(registry: ServiceHandle, make_client: Callable[..., Client]) -> None:
    # The registry does not serve AllocateNumber: an answer (UNIMPLEMENTED), not unreachability.
    client = make_client(allocation_target=registry.address)
    with pytest.raises(UnimplementedError):
        client.call("camp-1", PROSPECT, fallback_caller_id=FALLBACK)


def test_reporting_never_blocks_the_call_path_and_drops_beyond_the_queue(make_client: Callable[..., Client],
                                                                        closed_port: int) -> None:
    client = make_client(scoring_target=f"127.0.0.1:{closed_port}")
    failures: list[NhmError] = []
    reporter = client.outcome_reporter(batch_size=5, max_queue=10, retry_for=0.3, flush_interval=0.05,
                                       on_error=lambda error, batch: failures.append(error))
    started = time.monotonic()
    accepted = [reporter.report({"phone_number": FALLBACK, "remote_number": PROSPECT, "answered": False,
                                 "start_time": "2026-01-05T15:00:00Z"}) for _ in range(200)]
    assert time.monotonic() - started < 0.5  # scoring is down, and reporting did not wait for it
    stats = reporter.stats
    assert stats.queued + stats.dropped == 200 and stats.dropped > 0 and accepted.count(False) == stats.dropped
    reporter.close(timeout=10)
    assert stats.failed == stats.queued and stats.accepted == 0
    assert failures and isinstance(failures[0], UnavailableError)
    assert reporter.report({"phone_number": FALLBACK}) is False  # closed


def test_a_retrying_reporter_leaves_the_applications_random_generator_alone(make_client: Callable[..., Client],
                                                                            closed_port: int) -> None:
    """The backoff's jitter has its own generator: a dialer that seeds random (a simulation, a test) draws the
    same numbers whether or not the reporter is retrying in the background."""
    client = make_client(scoring_target=f"127.0.0.1:{closed_port}")
    failures: list[NhmError] = []
    reporter = client.outcome_reporter(batch_size=3, retry_for=1.5, send_timeout=0.1, flush_interval=0.01,
                                       on_error=lambda error, batch: failures.append(error))
    random.seed(11)
    state = random.getstate()
    for _ in range(3):
        reporter.report({"phone_number": FALLBACK, "remote_number": PROSPECT, "start_time": "2026-01-05T15:00:00Z"})
    reporter.close(timeout=10)
    assert failures and reporter.stats.failed == 3  # retried with backoff until retry_for ran out
    assert random.getstate() == state


def test_a_fallback_call_reports_its_outcome_through_the_clients_reporter(make_client: Callable[..., Client],
                                                                          closed_port: int) -> None:
    client = make_client(target=f"127.0.0.1:{closed_port}")
    with client.call("camp-1", PROSPECT, fallback_caller_id=FALLBACK) as call:
        queued = call.report(answered=True, talk_duration=42, sip_code=200)
    assert queued and call.reported
    assert client.outcomes.stats.queued == 1
    started = time.monotonic()
    client.close(timeout=0.5)  # scoring is down: close gives up after its timeout
    assert time.monotonic() - started < 2
    assert client.outcomes.stats.failed == 1
