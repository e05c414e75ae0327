"""`make run`: every service on localhost with SQLite under a data folder, in the foreground.

Each service runs as its own process (as in production), on fixed ports from --base-port, and the dashboard
(when its package is installed) on --dashboard-port. Development keys are made once and kept in
<data>/dev-credentials.json so they survive restarts. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nhm_platform.auth import generate_key

SERVICES = ("registry", "scoring", "allocation", "remediation")
DEV_TENANT = "dev"


def load_credentials(data_dir: Path) -> dict[str, str]:
    path = data_dir / "dev-credentials.json"
    if path.exists():
        creds = dict(json.loads(path.read_text()))
        creds.setdefault("dashboard_session_secret", generate_key())
        return creds
    creds = {"tenant_id": DEV_TENANT, "api_key": generate_key(), "admin_key": generate_key(),
             "service_key": generate_key(), "dashboard_session_secret": generate_key()}
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(creds, indent=2))
    path.chmod(0o600)
    return creds


def service_env(data_dir: Path, base_port: int, creds: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "NHM_DATA_DIR": str(data_dir),
        "NHM_API_KEYS": f"{creds['tenant_id']}={creds['api_key']}",
        "NHM_ADMIN_KEYS": creds["admin_key"],
        "NHM_SERVICE_KEY": creds["service_key"],
        "NHM_LOG_FORMAT": env.get("NHM_LOG_FORMAT", "console"),
    })
    for offset, name in enumerate(SERVICES):
        env[f"NHM_{name.upper()}_PORT"] = str(base_port + offset)
        env[f"NHM_{name.upper()}_TARGET"] = f"localhost:{base_port + offset}"
    env["NHM_DASHBOARD_SESSION_SECRET"] = creds["dashboard_session_secret"]
    return env


def dashboard_installed() -> bool:
    return importlib.util.find_spec("nhm_dashboard") is not None


def wait_http_ok(port: int, path: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("localhost", port, timeout=1)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    return False


def wait_serving(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                time.sleep(0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--base-port", type=int, default=50051)
    parser.add_argument("--dashboard-port", type=int, default=8080,
                        help="HTTP port of the dashboard (0: do not start it)")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    creds = load_credentials(data_dir)
    env = service_env(data_dir, args.base_port, creds)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = threading.Event()

    def stop_all(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    for name in SERVICES:
        procs[name] = subprocess.Popen([sys.executable, "-m", f"nhm_{name}"], env=env)
    with_dashboard = args.dashboard_port > 0 and dashboard_installed()
    if with_dashboard:
        procs["dashboard"] = subprocess.Popen([sys.executable, "-m", "nhm_dashboard"],
                                              env={**env, "NHM_DASHBOARD_PORT": str(args.dashboard_port)})
    status = 0
    try:
        for offset, name in enumerate(SERVICES):
            if not wait_serving(args.base_port + offset, args.start_timeout):
                print(f"nhm: {name} did not start; see its log above", file=sys.stderr)
                return 1
        dashboard_url = f"http://localhost:{args.dashboard_port}"
        if with_dashboard and not wait_http_ok(args.dashboard_port, "/healthz", args.start_timeout):
            print("nhm: dashboard did not start; see its log above", file=sys.stderr)
            return 1
        print("\nnhm is running. Endpoints (gRPC, plain text on localhost):")
        for offset, name in enumerate(SERVICES):
            print(f"  {name:<12} localhost:{args.base_port + offset}")
        if with_dashboard:
            print(f"  {'dashboard':<12} {dashboard_url}  (sign in with the API key below)")
        print(f"\nDevelopment tenant: {creds['tenant_id']}")
        print(f"API key:            {creds['api_key']}")
        print(f"(keys are kept in {data_dir / 'dev-credentials.json'})")
        print("Press Ctrl-C to stop.\n", flush=True)
        while not stopping.is_set():
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"nhm: {name} exited with {proc.returncode}; stopping", file=sys.stderr)
                    status = 1
                    stopping.set()
            stopping.wait(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return status


if __name__ == "__main__":
    sys.exit(main())
