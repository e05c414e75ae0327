"""Dialer helpers: the per-call flow (allocate → dial → report or release), the local fallback caller ID, and
the background outcome reporter that never blocks the call path."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm_sdk import _requests as rq
from nhm_sdk._convert import DurationLike, TimestampLike, enum_number, from_timestamp, to_duration, to_timestamp
from nhm_sdk._errors import DeadlineExceededError, NhmError, UnavailableError

if TYPE_CHECKING:
    from nhm_sdk._async_client import AsyncClient
    from nhm_sdk._client import Client

# Errors that mean "allocation could not be reached in time": the only ones a fallback caller ID covers.
UNREACHABLE = (UnavailableError, DeadlineExceededError)


def allocate_with_fallback(allocate: Callable[[], alloc.AllocateNumberResponse], fallback_caller_id: str | None
                           ) -> tuple[alloc.AllocateNumberResponse | None, NhmError | None]:
    """Allocate; on UNAVAILABLE/DEADLINE_EXCEEDED with a fallback configured, return (None, the error).
    Every other error — NothingEligibleError above all — is raised: failing open burns the pool."""
    try:
        return allocate(), None
    except UNREACHABLE as exc:
        if not fallback_caller_id:
            raise
        return None, exc


async def allocate_with_fallback_async(allocate: Callable[[], Awaitable[alloc.AllocateNumberResponse]],
                                       fallback_caller_id: str | None
                                       ) -> tuple[alloc.AllocateNumberResponse | None, NhmError | None]:
    try:
        return await allocate(), None
    except UNREACHABLE as exc:
        if not fallback_caller_id:
            raise
        return None, exc


def disposition_for(answered: bool, sip_code: int) -> sco.CallDisposition.ValueType:
    """The disposition a SIP final response implies (608 blocked, 603/607 rejected, 486/600 busy …)."""
    if answered:
        return sco.CALL_DISPOSITION_ANSWERED
    if sip_code == 608:
        return sco.CALL_DISPOSITION_BLOCKED
    if sip_code in (603, 607):
        return sco.CALL_DISPOSITION_REJECTED
    if sip_code in (486, 600):
        return sco.CALL_DISPOSITION_BUSY
    if sip_code in (0, 408, 480, 487):
        return sco.CALL_DISPOSITION_NO_ANSWER
    return sco.CALL_DISPOSITION_FAILED


class _Reporter(Protocol):
    def report(self, outcome: sco.CallOutcome) -> bool: ...


class _CallBase:
    """What the sync and async call handles share: the caller ID, how it was chosen, the outcome built."""

    def __init__(self, campaign_id: str, destination: str, response: alloc.AllocateNumberResponse | None,
                 fallback_error: NhmError | None, fallback_caller_id: str | None) -> None:
        self.campaign_id = campaign_id
        self.destination = destination
        self.response = response
        # The error that made the call use the fallback caller ID (None when allocation answered).
        self.fallback_error = fallback_error
        self.call_id = response.call_id if response is not None else rq.new_id()
        self.caller_id = response.caller_id if response is not None else (fallback_caller_id or "")
        # The server's time of the allocation (so outcome times agree with the platform's clock), else ours.
        allocated = from_timestamp(response.allocate_time) if response is not None else None
        self.start_time = allocated or dt.datetime.now(dt.UTC)
        self.reported = False
        self.is_placed = False
        self.released = False

    @property
    def fallback(self) -> bool:
        """True when the caller ID is the local fallback (allocation was unreachable)."""
        return self.response is None

    def placed(self) -> None:
        """Mark the call as dialled (so leaving the block does not release it) when the outcome comes later."""
        self.is_placed = True

    def _outcome(self, *, answered: bool, talk_duration: DurationLike | None, sip_code: int,
                 disposition: int | str | None, start_time: TimestampLike | None) -> sco.CallOutcome:
        outcome = sco.CallOutcome(
            event_id=self.call_id, phone_number=self.caller_id, direction=sco.CALL_DIRECTION_OUTBOUND,
            remote_number=self.destination, answered=answered, sip_code=sip_code,
            disposition=(disposition_for(answered, sip_code) if disposition is None
                         else cast(sco.CallDisposition.ValueType,
                                   enum_number(sco.CallDisposition.DESCRIPTOR, disposition, "disposition"))),
            campaign_id=self.campaign_id, call_id="" if self.fallback else self.call_id)
        outcome.start_time.CopyFrom(to_timestamp(start_time if start_time is not None else self.start_time))
        if talk_duration is not None:
            outcome.talk_duration.CopyFrom(to_duration(talk_duration))
        self.reported = True
        self.is_placed = True
        return outcome


class Call(_CallBase):
    """One outbound call: ``caller_id`` to dial from; ``report(...)`` when it ends. See :meth:`Client.call`."""

    def __init__(self, client: Client, campaign_id: str, destination: str,
                 response: alloc.AllocateNumberResponse | None, fallback_error: NhmError | None,
                 fallback_caller_id: str | None, reporter: _Reporter) -> None:
        super().__init__(campaign_id, destination, response, fallback_error, fallback_caller_id)
        self._client = client
        self._reporter = reporter

    def report(self, *, answered: bool, talk_duration: DurationLike | None = None, sip_code: int = 0,
               disposition: int | str | None = None, start_time: TimestampLike | None = None) -> bool:
        """Queue the call's outcome (never blocks). False if the reporter's queue was full and it was dropped."""
        outcome = self._outcome(answered=answered, talk_duration=talk_duration, sip_code=sip_code,
                                disposition=disposition, start_time=start_time)
        return self._reporter.report(outcome)

    def release(self) -> bool:
        """Give the caller ID back now (the call will not be placed). False if there was nothing to release."""
        if self.fallback or self.released or self.is_placed:
            return False
        self.released = True
        return self._client.release_allocation(self.call_id).released

    def __enter__(self) -> Call:
        return self

    def __exit__(self, *_: object) -> None:
        if not self.is_placed and not self.fallback and not self.released:
            # On failure the allocation stays counted until the cap resets; never mask the caller's own error.
            with contextlib.suppress(NhmError):
                self.release()


class AsyncCall(_CallBase):
    """The asyncio twin of :class:`Call`: ``async with client.call(...) as call``."""

    def __init__(self, client: AsyncClient, campaign_id: str, destination: str,
                 response: alloc.AllocateNumberResponse | None, fallback_error: NhmError | None,
                 fallback_caller_id: str | None, reporter: _Reporter) -> None:
        super().__init__(campaign_id, destination, response, fallback_error, fallback_caller_id)
        self._client = client
        self._reporter = reporter

    def report(self, *, answered: bool, talk_duration: DurationLike | None = None, sip_code: int = 0,
               disposition: int | str | None = None, start_time: TimestampLike | None = None) -> bool:
        """Queue the call's outcome (never blocks, never awaits)."""
        outcome = self._outcome(answered=answered, talk_duration=talk_duration, sip_code=sip_code,
                                disposition=disposition, start_time=start_time)
        return self._reporter.report(outcome)

    async def release(self) -> bool:
        if self.fallback or self.released or self.is_placed:
            return False
        self.released = True
        return (await self._client.release_allocation(self.call_id)).released

    async def __aenter__(self) -> AsyncCall:
        return self

    async def __aexit__(self, *_: object) -> None:
        if not self.is_placed and not self.fallback and not self.released:
            with contextlib.suppress(NhmError):
                await self.release()


@dataclass
class ReporterStats:
    """What an outcome reporter did: outcomes accepted, duplicate, rejected by the server, dropped because the
    queue was full, and failed (not delivered after retries)."""

    queued: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped: int = 0
    failed: int = 0
    batches: int = 0
    last_error: NhmError | None = None
    rejections: list[sco.EventStatus] = field(default_factory=list)


class _Batcher:
    """The queue both reporters share: bounded, never blocking the producer."""

    def __init__(self, batch_size: int, max_queue: int) -> None:
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be at least 1")
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.items: deque[sco.CallOutcome] = deque()
        self.stats = ReporterStats()
        self.in_flight = 0

    def offer(self, outcome: sco.CallOutcome) -> bool:
        if len(self.items) >= self.max_queue:
            self.stats.dropped += 1
            return False
        self.items.append(outcome)
        self.stats.queued += 1
        return True

    def take(self) -> list[sco.CallOutcome]:
        count = min(self.batch_size, len(self.items))
        batch = [self.items.popleft() for _ in range(count)]
        self.in_flight = len(batch)
        return batch

    def record(self, summary: sco.IngestSummary) -> None:
        self.stats.batches += 1
        self.stats.accepted += summary.accepted
        self.stats.duplicates += summary.duplicates
        self.stats.rejected += summary.rejected
        self.stats.rejections = (self.stats.rejections + list(summary.rejections))[-100:]

    @property
    def idle(self) -> bool:
        return not self.items and self.in_flight == 0


# Its own generator: the process-wide one belongs to the dialer's application, which may seed it.
_JITTER = random.Random()


def _backoff(attempt: int, base: float, cap: float) -> float:
    return _JITTER.uniform(0, min(cap, base * 2 ** attempt))


class OutcomeReporter:
    """Batches call outcomes and sends them from a background thread.

    ``report(outcome)`` only appends to a bounded queue (a full queue drops the outcome and counts it in
    ``stats.dropped``: the call path is never blocked). Batches of up to ``batch_size`` go out at least every
    ``flush_interval`` seconds; an unreachable scoring service is retried with backoff for up to ``retry_for``
    seconds — event ids make a resent outcome count once. ``flush()`` waits for the queue to drain; ``close()``
    (also on ``with`` exit and at interpreter exit) flushes and stops the thread.
    """

    def __init__(self, client: Client, *, batch_size: int = 200, flush_interval: float = 0.5,
                 max_queue: int = 10_000, retry_for: float = 30.0, send_timeout: float | None = None,
                 on_error: Callable[[NhmError, Sequence[sco.CallOutcome]], None] | None = None) -> None:
        self._client = client
        self._batcher = _Batcher(batch_size, max_queue)
        self._flush_interval = flush_interval
        self._retry_for = retry_for
        self._send_timeout = send_timeout
        self._on_error = on_error
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._closed = False
        self._stop = threading.Event()
        self._abandoned = False
        atexit.register(self.close)

    @property
    def stats(self) -> ReporterStats:
        return self._batcher.stats

    def report(self, outcome: sco.CallOutcome | Any) -> bool:
        """Queue one outcome (a CallOutcome or a mapping of its fields); False if it was dropped."""
        message = outcome if isinstance(outcome, sco.CallOutcome) else rq.call_outcomes([outcome])[0]
        if not message.event_id:
            message.event_id = rq.new_id()
        with self._cond:
            if self._closed:
                self._batcher.stats.dropped += 1
                return False
            accepted = self._batcher.offer(message)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nhm-outcome-reporter", daemon=True)
                self._thread.start()
            if len(self._batcher.items) >= self._batcher.batch_size:
                self._cond.notify_all()
            return accepted

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every queued outcome was sent (or given up); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while not self._batcher.idle:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
            return True

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush for up to ``timeout`` seconds, then stop the background thread: a batch still being retried is
        given up (counted in ``stats.failed``). Outcomes reported afterwards are dropped."""
        if self._closed:
            return
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._closing = True
            self._stop.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            if not self._batcher.idle:
                # Still unsent after the timeout: given up now (a send in flight is not counted twice).
                self._batcher.stats.failed += len(self._batcher.items) + self._batcher.in_flight
                self._batcher.items.clear()
                self._abandoned = True
        atexit.unregister(self.close)

    def __enter__(self) -> OutcomeReporter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._batcher.items and not self._closing:
                    self._cond.wait(self._flush_interval)
                if not self._batcher.items:
                    if self._closing:
                        return
                    continue
                batch = self._batcher.take()
            self._send(batch)
            with self._cond:
                self._batcher.in_flight = 0
                self._cond.notify_all()

    def _send(self, batch: list[sco.CallOutcome]) -> None:
        give_up_at = time.monotonic() + self._retry_for
        attempt = 0
        while True:
            try:
                summary = self._client.report_call_outcomes(batch, timeout=self._send_timeout)
            except UNREACHABLE as exc:
                if time.monotonic() + 0.05 >= give_up_at or self._stop.is_set():
                    self._fail(exc, batch)
                    return
                self._stop.wait(min(_backoff(attempt, 0.2, 5.0), max(0.0, give_up_at - time.monotonic())))
                attempt += 1
                continue
            except NhmError as exc:
                self._fail(exc, batch)
                return
            with self._cond:
                self._batcher.record(summary)
            return

    def _fail(self, error: NhmError, batch: list[sco.CallOutcome]) -> None:
        with self._cond:
            self._batcher.stats.last_error = error
            if self._abandoned:
                return
            self._batcher.stats.failed += len(batch)
        if self._on_error is not None:
            self._on_error(error, batch)


class AsyncOutcomeReporter:
    """The asyncio twin of :class:`OutcomeReporter`: a background task on the running loop."""

    def __init__(self, client: AsyncClient, *, batch_size: int = 200, flush_interval: float = 0.5,
                 max_queue: int = 10_000, retry_for: float = 30.0, send_timeout: float | None = None,
                 on_error: Callable[[NhmError, Sequence[sco.CallOutcome]], None] | None = None) -> None:
        self._client = client
        self._batcher = _Batcher(batch_size, max_queue)
        self._flush_interval = flush_interval
        self._retry_for = retry_for
        self._send_timeout = send_timeout
        self._on_error = on_error
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def stats(self) -> ReporterStats:
        return self._batcher.stats

    def report(self, outcome: sco.CallOutcome | Any) -> bool:
        message = outcome if isinstance(outcome, sco.CallOutcome) else rq.call_outcomes([outcome])[0]
        if not message.event_id:
            message.event_id = rq.new_id()
        if self._closed:
            self._batcher.stats.dropped += 1
            return False
        accepted = self._batcher.offer(message)
        self._ensure_task()
        assert self._wake is not None and self._idle is not None
        self._idle.clear()
        if len(self._batcher.items) >= self._batcher.batch_size:
            self._wake.set()
        return accepted

    def _ensure_task(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._idle = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="nhm-outcome-reporter")

    async def flush(self, timeout: float | None = 30.0) -> bool:
        if self._task is None or self._batcher.idle:
            return True
        assert self._wake is not None and self._idle is not None
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float | None = 10.0) -> None:
        if self._closed:
            return
        await self.flush(timeout)
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> AsyncOutcomeReporter:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _run(self) -> None:
        assert self._wake is not None and self._idle is not None
        while True:
            if not self._batcher.items:
                self._idle.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval)
                self._wake.clear()
                continue
            batch = self._batcher.take()
            await self._send(batch)
            self._batcher.in_flight = 0
            if self._batcher.idle:
                self._idle.set()

    async def _send(self, batch: list[sco.CallOutcome]) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._retry_for
        attempt = 0
        while True:
            try:
                summary = await self._client.report_call_outcomes(batch, timeout=self._send_timeout)
            except UNREACHABLE as exc:
                if loop.time() + 0.05 >= give_up_at or self._closed:
                    self._fail(exc, batch)
                    return
                await asyncio.sleep(min(_backoff(attempt, 0.2, 5.0), max(0.0, give_up_at - loop.time())))
                attempt += 1
                continue
            except NhmError as exc:
                self._fail(exc, batch)
                return
            self._batcher.record(summary)
            return

    def _fail(self, error: NhmError, batch: list[sco.CallOutcome]) -> None:
        self._batcher.stats.failed += len(batch)
        self._batcher.stats.last_error = error
        if self._on_error is not None:
            self._on_error(error, batch)
