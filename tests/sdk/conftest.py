"""Fixtures for the SDK tests: real services on port 0 and SDK clients pointed at them."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nhm_sdk import Client, ClientConfig, RetryPolicy
from nhm_testing.keys import ADMIN_KEY, TENANT_A_KEY
from nhm_testing.services import ServiceHandle


@pytest.fixture
def registry(start_service: Callable[..., ServiceHandle]) -> ServiceHandle:
    from nhm_registry.app import SPEC

    return start_service(SPEC)


@pytest.fixture
def make_client() -> Iterator[Callable[..., Client]]:
    """make_client(**ClientConfig fields) → a Client closed after the test."""
    clients: list[Client] = []

    def make(**fields: Any) -> Client:
        fields.setdefault("api_key", TENANT_A_KEY)
        client = Client(ClientConfig(**fields))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(registry: ServiceHandle, make_client: Callable[..., Client]) -> Client:
    """A tenant (acme) client of the registry."""
    return make_client(registry_target=registry.address)


@pytest.fixture
def admin(registry: ServiceHandle, make_client: Callable[..., Client]) -> Client:
    return make_client(registry_target=registry.address, api_key=ADMIN_KEY)


NO_RETRY = RetryPolicy.disabled()


class FaultProxy:
    """A TCP proxy in front of a server that can drop a connection right after the server answered.

    It reads the server's HTTP/2 frames; when armed, the next response HEADERS frame (sent once the handler
    returned, so after the server committed) is not forwarded: both sockets are closed instead, and the client
    sees UNAVAILABLE for a call the server already applied.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed = 0
        self.kills = 0
        self._sockets: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drop_next_responses(self, count: int = 1) -> None:
        with self._lock:
            self._armed = count

    def _accept(self) -> None:
        while not self._stopped:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self._sockets += [downstream, upstream]
            threading.Thread(target=self._pump_requests, args=(downstream, upstream), daemon=True).start()
            threading.Thread(target=self._pump_responses, args=(upstream, downstream), daemon=True).start()

    @staticmethod
    def _pump_requests(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            FaultProxy._close(source, sink)

    def _pump_responses(self, source: socket.socket, sink: socket.socket) -> None:
        buffer = b""
        try:
            while data := source.recv(65536):
                buffer += data
                while len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < 9 + length:
                        break
                    frame, buffer = buffer[:9 + length], buffer[9 + length:]
                    frame_type, stream_id = frame[3], int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF
                    with self._lock:
                        drop = frame_type == 0x1 and stream_id != 0 and self._armed > 0
                        if drop:
                            self._armed -= 1
                            self.kills += 1
                    if drop:
                        self._close(source, sink)
                        return
                    sink.sendall(frame)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._stopped = True
        self._close(self._listener)
        with self._lock:
            self._close(*self._sockets)


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[ServiceHandle], FaultProxy]]:
    proxies: list[FaultProxy] = []

    def make(service: ServiceHandle) -> FaultProxy:
        proxy = FaultProxy(service.port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stopped = threading.Event()

    def accept() -> None:
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    stopped.set()
    listener.close()
    for conn in held:
        conn.close()
