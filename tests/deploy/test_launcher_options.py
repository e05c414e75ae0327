"""`make run` / `make up-local`'s launcher refuses shapes it cannot run, saying what to change, before it
starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from nhm_platform import devstack


@pytest.mark.parametrize(("argv", "message"), [
    (["--allocation-replicas", "2"], "--allocation-replicas above 1 needs --postgres-url"),
    (["--allocation-replicas", "3", "--postgres-url", "postgresql+psycopg://postgres@127.0.0.1/nhm"],
     "invalid choice: 3"),
    (["--postgres-url", "sqlite:///nhm.db"], "--postgres-url must be a postgresql+psycopg:// URL"),
])
def test_bad_shapes_are_refused_with_what_to_change(argv, message, tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        devstack.main(["--data-dir", str(tmp_path / "data"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing was started or written


def test_replicas_share_one_port_on_both_loopback_addresses_and_clients_use_dns_round_robin():
    processes = devstack.plan(50051, allocation_replicas=2, metrics_base_port=9101)
    replicas = [p for p in processes if p.service == "allocation"]
    assert [(p.label, p.address) for p in replicas] == [("allocation-1", "127.0.0.1:50053"),
                                                        ("allocation-2", "[::1]:50053")]
    assert sorted(p.metrics_port for p in processes) == list(range(9101, 9101 + len(processes)))
    assert devstack.client_targets(50051, 2)["allocation"] == "dns:///localhost:50053"
    assert devstack.client_targets(50051, 1)["allocation"] == "localhost:50053"
