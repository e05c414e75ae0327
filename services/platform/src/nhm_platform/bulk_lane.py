"""The bulk lane: a service's bulk and ingest calls served by a process of their own, at a lower CPU priority.

A Python process serves its calls under one interpreter lock, so a 100-number import running beside a
dialer's lookup makes the lookup wait for the lock again and again: one import at a time raised another
tenant's p99 from 5 ms to 44 ms here (docs/reliability.md, "A flooding tenant"). With ``bulk_lane`` on, the
serving process starts a lane process (the same service on the same database, on a Unix socket only this
user can reach, niced by ``bulk_lane_niceness``) and forwards the service's rate-limited methods to it as
bytes: it authenticates the caller and applies the tenant's rate and concurrency limits itself, then passes
the request, its metadata, deadline and cancellation through, and the lane's answer (status, rich details,
trailers) back. The lane parses, checks and does the work; the serving process's lock stays with the short
calls. A lane that dies is started again; while it is down its methods answer UNAVAILABLE.

Changes made through the lane reach this process's Watch streams within the feed's poll interval, as a
replica's do.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import grpc
import structlog

from nhm_platform.interceptors import REQUEST_ID_KEY, current_request_id
from nhm_platform.settings import ServerSettings, settings_environment

_log = structlog.get_logger("nhm.bulk_lane")
# Set in the lane process's environment: the Unix socket it serves on.
LANE_SOCKET_VARIABLE = "NHM_BULK_LANE_SOCKET"
# What the lane process changes of the service's settings: the serving process already limited the tenant
# and checked its certificate; the lane has no metrics port, workers, migrations or lane of its own.
LANE_OVERRIDES: dict[str, object] = {
    "tenant_bulk_rate": 0.0, "workers": 1, "bulk_lane": False, "migrate_on_start": False, "metrics_port": -1,
    "tls_cert_file": "", "tls_key_file": "", "tls_client_ca_file": "", "tls_client_identities": "",
    "tls_service_identities": "",
}
# Metadata gRPC itself sets on a call; the rest of the caller's metadata goes to the lane as it came.
_TRANSPORT_KEYS = ("grpc-", ":", "user-agent")
_NO_DEADLINE = 10.0**9  # seconds
_FIRST_RESTART_WAIT = 0.1  # seconds
_PARENT_VARIABLE = "NHM_BULK_LANE_PARENT"


def lane_socket() -> str | None:
    """The Unix socket to serve on when this process is a service's bulk lane, else None."""
    return os.environ.get(LANE_SOCKET_VARIABLE) or None


def become_lane(niceness: int) -> None:
    """Called first thing in a lane process: end with the serving process that started it (Linux: SIGTERM when
    it dies, even by kill -9; no orphaned lanes), and yield the CPU to it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(os.environ.get(_PARENT_VARIABLE, os.getppid())):
        sys.exit("the serving process that started this bulk lane is gone")  # it died before the line above
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), niceness))


class LaneForwardInterceptor(grpc.ServerInterceptor):
    """Serves the named methods by forwarding them, as bytes, to the lane at ``target``. Placed after
    authentication and the rate limit and before anything that reads the request."""

    def __init__(self, methods: Collection[str], target: str) -> None:
        self._methods = frozenset(methods)
        # A local socket: try again soon after the lane is gone (gRPC's default backoff grows to two minutes).
        self._channel = grpc.insecure_channel(target, options=[("grpc.initial_reconnect_backoff_ms", 100),
                                                               ("grpc.min_reconnect_backoff_ms", 100),
                                                               ("grpc.max_reconnect_backoff_ms", 1000)])
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def close(self) -> None:
        self._channel.close()

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
                          handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self._methods:
            return continuation(handler_call_details)
        handler = self._handlers.get(method)
        if handler is None:
            served = continuation(handler_call_details)
            if served is None:
                return None
            handler = self._forwarding_handler(method, served)
            self._handlers[method] = handler
        return handler

    def _forwarding_handler(self, method: str, served: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if served.response_streaming:
            raise ValueError(f"{method}: the bulk lane forwards unary responses only")
        if served.request_streaming:
            stream_call = self._channel.stream_unary(method)

            def forward_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
                return _forward(stream_call, requests, context)
            return grpc.stream_unary_rpc_method_handler(forward_stream)
        unary_call = self._channel.unary_unary(method)

        def forward_unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            return _forward(unary_call, request, context)
        return grpc.unary_unary_rpc_method_handler(forward_unary)


def _forward(call: Any, request: Any, context: grpc.ServicerContext) -> bytes:
    metadata = [(key, value) for key, value in context.invocation_metadata()
                if not key.startswith(_TRANSPORT_KEYS) and key != REQUEST_ID_KEY]
    metadata.append((REQUEST_ID_KEY, current_request_id()))
    remaining = context.time_remaining()  # a call without a deadline has about 2**63 seconds left
    future = call.future(request, metadata=metadata, timeout=remaining if remaining < _NO_DEADLINE else None)
    context.add_callback(future.cancel)  # the caller gave up: so does the lane
    # The lane's trailers go back as they came: among them grpc-status-details-bin, the rich status (field
    # violations, retry info) that the caller's SDK reads.
    try:
        response = future.result()
    except grpc.RpcError as error:  # the lane's refusal, or UNAVAILABLE
        context.set_trailing_metadata(tuple(error.trailing_metadata() or ()))
        context.abort(error.code(), error.details() or "")
    context.set_trailing_metadata(tuple(future.trailing_metadata() or ()))
    return response


class LaneProcess:
    """The lane process of a service: started at once, started again when it exits, stopped with the server."""

    def __init__(self, service: str, settings: ServerSettings, *, ready_timeout: float = 60.0) -> None:
        self._service, self._niceness, self._ready_timeout = service, settings.bulk_lane_niceness, ready_timeout
        self._grace, self._longest_wait = settings.grace_period, settings.bulk_lane_restart_max_seconds
        # The lane runs with this process's settings (however they were given), changed by LANE_OVERRIDES.
        self._environment = settings_environment(settings, service)
        self._folder = tempfile.mkdtemp(prefix=f"nhm-{service}-lane-")  # 0700: only this user reaches the socket
        self.socket = str(Path(self._folder) / "lane.sock")
        self.target = f"unix:{self.socket}"
        self._process: subprocess.Popen[str] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._keep_running, name=f"{service}-bulk-lane", daemon=True)

    def start(self) -> LaneProcess:
        self._process = self._launch()
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self._grace + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        Path(self.socket).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.rmdir(self._folder)

    def _launch(self) -> subprocess.Popen[str]:
        Path(self.socket).unlink(missing_ok=True)
        env = {**os.environ, **self._environment, LANE_SOCKET_VARIABLE: self.socket,
               _PARENT_VARIABLE: str(os.getpid())}
        # No preexec_fn (unsafe in a process with threads): the lane nices itself and asks to end with this
        # process (become_lane), and is niced from here as well in case it cannot.
        process = subprocess.Popen([sys.executable, "-m", f"nhm_{self._service}", "serve"], env=env,
                                   stdout=subprocess.PIPE, text=True)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, process.pid, max(os.getpriority(os.PRIO_PROCESS, process.pid),
                                                               self._niceness))
        ready = threading.Event()
        threading.Thread(target=_wait_until_serving, args=(process, ready), daemon=True).start()
        if not ready.wait(self._ready_timeout) or process.poll() is not None:
            process.kill()
            process.wait()
            raise RuntimeError(f"the {self._service} bulk lane did not start (exit code {process.returncode})")
        _log.info("bulk_lane.serving", service=self._service, pid=process.pid, socket=self.socket)
        return process

    def _keep_running(self) -> None:
        wait = _FIRST_RESTART_WAIT
        started = time.monotonic()
        while not self._stopping.is_set():
            assert self._process is not None
            code = self._process.wait()
            if self._stopping.is_set():
                return
            # A lane that served a while before dying starts again at once; one that keeps dying, ever slower.
            wait = _FIRST_RESTART_WAIT if time.monotonic() - started > 60 else min(wait * 2, self._longest_wait)
            _log.warning("bulk_lane.exited", service=self._service, exit_code=code, restart_in_s=wait)
            if self._stopping.wait(wait):
                return
            started = time.monotonic()
            try:
                self._process = self._launch()
            except RuntimeError:
                _log.exception("bulk_lane.restart_failed", service=self._service)


def _wait_until_serving(process: subprocess.Popen[str], ready: threading.Event) -> None:
    """Sets ready at the lane's NHM_SERVING line, then keeps its output drained."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("NHM_SERVING"):
            ready.set()


_PR_SET_PDEATHSIG = 1
