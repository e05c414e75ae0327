"""Real processes: `make run`'s launcher brings every service to SERVING; SIGTERM lets calls finish."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm_platform.service import reserved_port
from nhm_testing.keys import TENANT_A_KEY, auth
from nhm_testing.processes import free_port_block

SERVICES = ("registry", "scoring", "allocation", "remediation")


def read_until(proc: subprocess.Popen, marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    found = threading.Event()

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    found.wait(timeout)
    return lines


@pytest.mark.slow
def test_launcher_brings_every_service_to_serving_and_stops_cleanly(tmp_path: Path):
    base = free_port_block(len(SERVICES) + 1)
    dashboard_port = base + len(SERVICES)
    env = {**os.environ, "NHM_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nhm_platform.devstack", "--data-dir", str(tmp_path / "data"),
         "--base-port", str(base), "--dashboard-port", str(dashboard_port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        lines = read_until(proc, "Press Ctrl-C", timeout=90)
        output = "".join(lines)
        assert "nhm is running" in output, output
        for offset, name in enumerate(SERVICES):
            assert f"{name}" in output and f"localhost:{base + offset}" in output
            with grpc.insecure_channel(f"localhost:{base + offset}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert "API key:" in output
        api_key = next(line.split()[-1] for line in lines if line.startswith("API key:"))
        assert f"http://localhost:{dashboard_port}" in output
        # The dashboard is up and talks to the services: the printed key signs in and lands on the overview.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(f"http://localhost:{dashboard_port}/login", timeout=10) as page:
            login = page.read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
        form = urllib.parse.urlencode({"api_key": api_key, "csrf_token": csrf}).encode()
        with opener.open(f"http://localhost:{dashboard_port}/login", data=form, timeout=30) as page:
            body = page.read().decode()
            assert page.status == 200 and "Sign out" in body and 'title="Tenant dev"' in body, body[:2000]
        for name in SERVICES:
            assert (tmp_path / "data" / f"{name}.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


@pytest.mark.slow
def test_sigterm_during_a_call_lets_it_finish_and_exits_zero():
    script = Path(__file__).with_name("slow_server.py")
    proc = subprocess.Popen([sys.executable, str(script), TENANT_A_KEY], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.split()[-1])
        result: dict[str, object] = {}

        def call() -> None:
            with grpc.insecure_channel(f"localhost:{port}") as channel:
                stub = registry_pb2_grpc.RegistryServiceStub(channel)
                try:
                    result["reply"] = stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="+14158675309"),
                                                     metadata=auth(TENANT_A_KEY), timeout=10)
                except grpc.RpcError as exc:
                    result["error"] = exc.code()

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        caller.join(15)
        assert "error" not in result, result
        assert result["reply"].number.phone_number == "+14158675309"
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_several_worker_processes_share_one_port(tmp_path: Path):
    env = {**os.environ, "NHM_DATA_DIR": str(tmp_path), "NHM_REGISTRY_WORKERS": "2", "NHM_REGISTRY_PORT": "0",
           "NHM_LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "nhm_registry"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("NHM_SERVING registry"), proc.stderr.read() if proc.poll() is not None else line
        port = int(line.split()[-1])
        serving = [json.loads(entry) for entry in _stderr_lines_until(proc, "service.serving", 2)]
        assert len({entry["pid"] for entry in serving}) == 2
        with grpc.insecure_channel(f"localhost:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def _stderr_lines_until(proc: subprocess.Popen, event: str, count: int) -> list[str]:
    found = []
    deadline = time.monotonic() + 30
    while len(found) < count and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if f'"event": "{event}"' in line:
            found.append(line)
    return found


def test_a_port_reserved_for_workers_is_theirs_to_share_and_nobody_elses():
    with reserved_port("127.0.0.1") as port:
        with socket.socket() as intruder, pytest.raises(OSError, match="in use"):
            intruder.bind(("127.0.0.1", port))  # another listener, or a connection's source port
        server = grpc.server(ThreadPoolExecutor(1))  # binds with SO_REUSEPORT, as the workers do
        assert server.add_insecure_port(f"127.0.0.1:{port}") == port
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                with pytest.raises(grpc.RpcError) as unimplemented:
                    channel.unary_unary("/x.Y/Z")(b"", timeout=5)
                assert unimplemented.value.code() is grpc.StatusCode.UNIMPLEMENTED  # the worker got the call
        finally:
            server.stop(0).wait(10)  # gRPC closes its listener as the shutdown completes, not when stop returns
    with socket.socket() as later:
        later.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the call's TIME_WAIT, not a holder
        later.bind(("127.0.0.1", port))  # released once the workers have bound it
