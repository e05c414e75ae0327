"""Fault tests run the load of the invariant tests (tests/invariants) with faults injected."""

from collections.abc import Iterator

import pytest
from invariants.conftest import upstream  # noqa: F401  (the fake registry and scoring the load follows)

from nhm_testing.databases import PostgresProvisioner
from nhm_testing.private_postgres import PrivatePostgres


@pytest.fixture
def private_postgres(request: pytest.FixtureRequest, postgres: PostgresProvisioner) -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own, to crash and pause (runs where the PostgreSQL tests run)."""
    server = PrivatePostgres(**getattr(request, "param", {}))
    try:
        server.start()
        yield server
    finally:
        server.close()
