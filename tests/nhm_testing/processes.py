"""Services as real OS processes: start on port 0, read the port they announce, kill -9, restart on that port."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nhm_testing.keys import STATIC_KEY_SETTINGS

TESTS_DIR = Path(__file__).resolve().parent.parent


def service_environment(service: str, **settings: Any) -> dict[str, str]:
    """The environment of a service process: the test keys, quiet JSON logs, and NHM_<SERVICE>_<FIELD> settings."""
    prefix = f"NHM_{service.upper()}_"
    env = {**os.environ, "NHM_API_KEYS": STATIC_KEY_SETTINGS["api_keys"],
           "NHM_ADMIN_KEYS": STATIC_KEY_SETTINGS["admin_keys"], "NHM_SERVICE_KEY": STATIC_KEY_SETTINGS["service_key"],
           "NHM_LOG_LEVEL": "warning", "NHM_LOG_FORMAT": "json",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))}
    env.update({f"{prefix}{name.upper()}": str(value) for name, value in settings.items()})
    return env


class ServiceProcess:
    """One service process. `module` is what `python -m` runs (a service, or a test launcher around one)."""

    def __init__(self, service: str, module: str | None = None, args: tuple[str, ...] = (), **settings: Any) -> None:
        self.service = service
        self.module = module or f"nhm_{service}"
        self.args = args
        self.settings = {"port": 0, "migrate_on_start": "false", "grace_period": 1, **settings}
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Start (again, on the same port once it has one) and wait for its NHM_SERVING line."""
        settings = {**self.settings, "port": self.port} if self.port else self.settings
        self.proc = subprocess.Popen([sys.executable, "-m", self.module, *self.args], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     env=service_environment(self.service, **settings))
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].startswith(f"NHM_SERVING {self.service}"):
            self.kill()
            raise AssertionError(f"{self.module} did not start: {line!r}")
        self.port = int(line[0].split()[-1])
        self.starts += 1
        return self

    def kill(self) -> None:
        """kill -9: no shutdown hook runs, open transactions die with their connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def wait_serving(address: str, timeout: float, service: str = "") -> float:
    """Poll grpc.health.v1 until `service` (default: the server) is SERVING; seconds it took."""
    began = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - began
            except grpc.RpcError:
                pass
            if time.monotonic() - began > timeout:
                raise AssertionError(f"{address} not SERVING after {timeout} s")
            time.sleep(0.05)


def free_port_block(size: int) -> int:
    """A base port with `size` consecutive ports free on both 127.0.0.1 and ::1, below the kernel's ephemeral
    range: a block inside it can be taken between this probe and the service's bind by the source port of any
    outgoing connection (a service connecting to PostgreSQL took one of a launcher's metrics ports so)."""
    ephemeral_low = _ephemeral_port_range()[0]
    for _ in range(100):
        base = random.randrange(10_000, ephemeral_low - size)
        try:
            for port in range(base, base + size):
                for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                    with socket.socket(family) as probe:
                        probe.bind((host, port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port block")


def _ephemeral_port_range() -> tuple[int, int]:
    """The ports the kernel picks source ports from (Linux; the IANA range elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535
