"""Fixtures for every test: the database backend (SQLite always, PostgreSQL when configured) and services."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nhm_platform.clock import FakeClock
from nhm_platform.service import ServiceSpec
from nhm_testing.databases import POSTGRES_URL_VARIABLE, PostgresProvisioner, SqliteProvisioner
from nhm_testing.services import ServiceHandle, running_service

BACKENDS = ["sqlite", "postgresql"]


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if url:
        return f"PostgreSQL tests: on ({POSTGRES_URL_VARIABLE} is set)"
    return f"PostgreSQL tests: SKIPPED because {POSTGRES_URL_VARIABLE} is not set (CI always sets it)"


@pytest.fixture(scope="session")
def sqlite_provisioner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteProvisioner]:
    provisioner = SqliteProvisioner(tmp_path_factory.mktemp("sqlite"))
    yield provisioner
    provisioner.close()


@pytest.fixture(scope="session")
def postgres_provisioner() -> Iterator[PostgresProvisioner | None]:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        yield None
        return
    provisioner = PostgresProvisioner(url)
    yield provisioner
    provisioner.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, postgres_provisioner: PostgresProvisioner | None) -> str:
    if request.param == "postgresql" and postgres_provisioner is None:
        pytest.skip(f"PostgreSQL run needs {POSTGRES_URL_VARIABLE} (a postgresql+psycopg:// URL); CI sets it")
    return str(request.param)


@pytest.fixture
def postgres(postgres_provisioner: PostgresProvisioner | None) -> PostgresProvisioner:
    """For tests that only make sense on PostgreSQL (concurrency across processes)."""
    if postgres_provisioner is None:
        pytest.skip(f"PostgreSQL-only test needs {POSTGRES_URL_VARIABLE}; CI sets it")
    return postgres_provisioner


@pytest.fixture
def database_url(backend: str, sqlite_provisioner: SqliteProvisioner,
                 postgres_provisioner: PostgresProvisioner | None) -> Callable[[ServiceSpec[Any]], str]:
    """database_url(SPEC): a fresh, migrated database for that service on the test's backend."""
    provisioner = sqlite_provisioner if backend == "sqlite" else postgres_provisioner
    assert provisioner is not None
    return provisioner.fresh


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start_service(database_url: Callable[[ServiceSpec[Any]], str],
                  clock: FakeClock) -> Iterator[Callable[..., ServiceHandle]]:
    """start_service(SPEC, **settings) → a running service on port 0 with its own fresh database."""
    stack: list[Any] = []

    def start(spec: ServiceSpec[Any], *, url: str | None = None, **overrides: Any) -> ServiceHandle:
        context = running_service(spec, url or database_url(spec), clock, **overrides)
        handle = context.__enter__()
        stack.append(context)
        return handle

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def empty_database_url(backend: str, sqlite_provisioner: SqliteProvisioner,
                       postgres_provisioner: PostgresProvisioner | None) -> Callable[[str], str]:
    """empty_database_url(name): a fresh database with no tables, on the test's backend."""
    provisioner = sqlite_provisioner if backend == "sqlite" else postgres_provisioner
    assert provisioner is not None
    return provisioner.empty
