"""Fault tests run the load of the invariant tests (tests/invariants) with faults injected."""

from invariants.conftest import upstream  # noqa: F401  (the fake registry and scoring the load follows)
