"""The benchmarks' load generator: caller threads in a closed loop, one caller timing a call again and again, and
the percentiles of what they measured.

Every benchmark that drives calls uses this one loop, so their figures (and the echo baseline they are divided
by) come from the same generator.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Driven:
    ok: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    # Calls completed in each window of the length asked for (empty if none was).
    per_window: list[int] = field(default_factory=list)


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of samples, the nearest sample; 0 for none."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """p50 and p99 latency of call in milliseconds, over repeat calls one after another (after one to warm up)."""
    call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), percentile(samples, 0.99)


def drive(calls: Sequence[Callable[[int], bool]], callers: int, duration: float, windows: float = 0.0) -> Driven:
    """callers threads, caller i calling calls[i % len(calls)](n) with a shared increasing n, for duration seconds;
    a call returns False for an error. With windows > 0, also counts completed calls per window of that length."""
    counter = iter(range(10**12))
    lock = threading.Lock()
    latencies: list[float] = []
    ends: list[float] = []
    errors = [0]
    stop = threading.Event()

    def worker(call: Callable[[int], bool]) -> None:
        mine, mine_ends, failed = [], [], 0
        while not stop.is_set():
            with lock:
                i = next(counter)
            started = time.perf_counter()
            ok = call(i)
            finished = time.perf_counter()
            mine.append((finished - started) * 1000)
            mine_ends.append(finished)
            failed += not ok
        with lock:
            latencies.extend(mine)
            ends.extend(mine_ends)
            errors[0] += failed

    threads = [threading.Thread(target=worker, args=(calls[i % len(calls)],)) for i in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(duration)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    per_window = []
    if windows > 0:
        per_window = [0] * max(1, int(duration // windows))
        for end in ends:
            index = int((end - started) // windows)
            if index < len(per_window):
                per_window[index] += 1
    return Driven(len(latencies) - errors[0], errors[0], elapsed, latencies, per_window)
