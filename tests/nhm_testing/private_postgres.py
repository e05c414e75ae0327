"""A PostgreSQL server of a test's own, which it may kill -9, stop with SIGSTOP and start again.

The machine's PostgreSQL is shared with every other test and engineer, so fault tests that need a real server
to crash run one of their own: initdb into a temporary folder, the postmaster in the foreground of a process
group of its own (every backend in it, so that one signal reaches them all). As root, the server runs as the
`postgres` user (PostgreSQL refuses to run as root); otherwise as whoever runs the tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from nhm_testing.processes import free_port_block


def postgres_binaries() -> Path:
    """The bin folder of the newest PostgreSQL installed from Debian's packages (as .ci/run starts it)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql (Debian's postgresql package)")
    return found[-1].parent


class PrivatePostgres:
    def __init__(self, **settings: str) -> None:
        self._bin = postgres_binaries()
        self._settings = [f"-c{name}={value}" for name, value in settings.items()]
        self._root = Path(tempfile.mkdtemp(prefix="nhm-pg-"))
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            owner = pwd.getpwnam(self._user)
            os.chown(self._root, owner.pw_uid, owner.pw_gid)
        self.data = self._root / "data"
        self.port = free_port_block(1)
        self.process: subprocess.Popen[bytes] | None = None
        self._run([str(self._bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
                   "-E", "UTF8", "--locale=C.UTF-8"])

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 30.0) -> float:
        """Start the server (after a crash: with recovery); seconds until it accepts connections."""
        began = time.monotonic()
        self.process = subprocess.Popen(
            [str(self._bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self._root),
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "shared_buffers=64MB",
             *self._settings],
            user=self._user, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                connect_timeout=1).close()
                return time.monotonic() - began
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() - began > timeout:
                    raise RuntimeError(f"private PostgreSQL did not start (exit {self.process.poll()})") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL to the postmaster and every backend at once: what a crash of the server leaves behind."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._wait_group_gone(self.process.pid)

    def pause(self, seconds: float) -> None:
        """SIGSTOP to every process of the server for `seconds`, then SIGCONT: connections stay open, nothing
        answers (a stalled host, a long GC pause, a frozen VM)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.killpg(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # immediate shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self._wait_group_gone(self.process.pid)
        shutil.rmtree(self._root, ignore_errors=True)

    def _run(self, command: list[str]) -> None:
        subprocess.run(command, user=self._user, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @staticmethod
    def _wait_group_gone(group: int, timeout: float = 10.0) -> None:
        """Backends exit a moment after their postmaster: a restart before they have would find the old shared
        memory still attached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
