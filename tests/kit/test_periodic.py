"""The kit's Periodic: upkeep that runs on a schedule, survives its own errors and stops when told."""

from __future__ import annotations

import threading

import pytest

from nhm_platform.periodic import Periodic


def test_it_runs_again_after_a_run_that_raised_and_stops_when_told():
    runs: list[int] = []
    third = threading.Event()

    def work() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the first run fails")
        if len(runs) == 3:
            third.set()

    periodic = Periodic("test-periodic", 0.01, work)
    assert not periodic.started
    periodic.start()
    assert third.wait(5), "the task died with its first error"
    periodic.stop()
    assert periodic.stopping
    stopped_at = len(runs)
    threading.Event().wait(0.05)
    assert len(runs) == stopped_at  # nothing runs after stop()


def test_the_first_run_comes_one_interval_after_start():
    ran = threading.Event()
    periodic = Periodic("test-periodic", 3600, ran.set)
    periodic.start()
    try:
        assert not ran.wait(0.1)
    finally:
        periodic.stop()
    assert not ran.is_set()


def test_a_run_now_logs_its_error_instead_of_raising():
    def work() -> None:
        raise RuntimeError("boom")

    Periodic("test-periodic", 1, work).run_logged()  # returns


@pytest.mark.parametrize("interval", [0, -1])
def test_an_interval_that_is_not_positive_is_refused(interval):
    with pytest.raises(ValueError, match="test-periodic: the interval must be positive"):
        Periodic("test-periodic", interval, lambda: None)
