"""`nhm simulate` against the whole platform: misbehaving numbers get flagged and quarantined, healthy ones carry
the load afterwards."""

from __future__ import annotations

import io
from typing import Any

from nhm.type.v1 import types_pb2 as types
from nhm_sdk import cli


def test_simulation_closes_the_loop(platform: Any, tmp_path: Any) -> None:
    targets = platform.targets()
    out, err = io.StringIO(), io.StringIO()
    argv = ["--api-key", platform.client.config.api_key, "--credentials", str(tmp_path / "none.json"),
            *(f"--{name.replace('_', '-')}={address}" for name, address in targets.items()),
            "simulate", "--numbers", "8", "--bad", "2", "--calls", "120", "--after-calls", "40",
            "--concurrency", "2", "--settle", "40", "--seed", "7"]
    code = cli.main(argv, stdout=out, stderr=err)
    printed = out.getvalue()
    assert code == 0, printed + err.getvalue()
    assert "2/2 misbehaving numbers were flagged and quarantined" in printed
    assert "healthy numbers carried 40 of 40 calls (0 refused" in printed

    client = platform.client
    flagged = {h.phone_number for h in client.list_health(statuses=["FLAGGED", "BLOCKED"])}
    pulled = {n.phone_number for n in client.list_numbers(states=["QUARANTINED", "RESTING"])}
    assert len(flagged) == 2 and flagged <= pulled
    assert len(client.list_cases(states="OPEN").to_list()) >= 2
    healthy = [h for h in client.list_health(statuses="HEALTHY")]
    assert len(healthy) == 6 and all(h.status == types.HEALTH_STATUS_HEALTHY for h in healthy)
