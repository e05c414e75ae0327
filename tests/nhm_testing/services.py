"""Real services in the test process, on port 0, against a test database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from nhm_platform.clock import Clock
from nhm_platform.server import RunningServer
from nhm_platform.service import ServiceSpec, start_service
from nhm_testing.databases import owner_url
from nhm_testing.keys import STATIC_KEY_SETTINGS


@dataclass
class ServiceHandle:
    spec: ServiceSpec[Any]
    running: RunningServer
    port: int
    settings: Any

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)


@contextlib.contextmanager
def running_service(spec: ServiceSpec[Any], database_url: str, clock: Clock | None = None,
                    **overrides: Any) -> Iterator[ServiceHandle]:
    """Start a service on 127.0.0.1:0 with the test keys; stop it (grace 0) afterwards."""
    values = {"host": "127.0.0.1", "port": 0, "database_url": database_url,
              "migration_database_url": owner_url(database_url), "log_format": "json",
              "grace_period": 0.0, "migrate_on_start": True, **STATIC_KEY_SETTINGS, **overrides}
    settings = spec.load_settings(**values)
    running, port = start_service(spec, settings, clock)
    try:
        yield ServiceHandle(spec, running, port, settings)
    finally:
        running.stop(0)
