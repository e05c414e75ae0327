"""The `nhm` command line against real servers: what an operator types and reads."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from nhm_sdk import cli
from nhm_testing.keys import TENANT_A_KEY
from nhm_testing.services import ServiceHandle

SF = [f"+1415867{i:04d}" for i in range(5000, 5010)]


@dataclass
class Output:
    """What the last command printed (the servers log to the real stdout, so the CLI gets its own streams)."""

    out: str = ""
    err: str = ""


LAST = Output()


def main(argv: Sequence[str]) -> int:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    LAST.out, LAST.err = out.getvalue(), err.getvalue()
    return code


def printed() -> Output:
    """What the last command wrote to its stdout and stderr."""
    return Output(LAST.out, LAST.err)


def nhm(registry: ServiceHandle, tmp_path: Path, *args: str) -> list[str]:
    return ["--target", registry.address, "--api-key", TENANT_A_KEY, "--credentials",
            str(tmp_path / "none.json"), *args]


def test_numbers_import_reports_each_bad_row_and_imports_the_rest(
        registry: ServiceHandle, tmp_path: Path) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text(
        "phone_number,display_name,attestation,labels\n"
        f"{SF[0]},West 1,A,team=west\n"
        "+1 415 867 5001,Bad format,,\n"
        f"{SF[2]},West 2,B,team=west;tier=gold\n"
        ",No number,,\n"
        f"{SF[3]},West 3,Z,\n"
        f"{SF[4]},West 4,,\n")
    code = main(nhm(registry, tmp_path, "numbers", "import", str(csv_file), "--batch-size", "2"))
    out = printed().out
    assert code == 1  # some rows were rejected
    assert "3 created, 0 already existed, 3 rejected" in out
    rejected = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    assert rejected == {"3", "5", "6"}  # CSV line numbers (header is line 1)

    again = main(nhm(registry, tmp_path, "--json", "numbers", "import", str(csv_file)))
    result = json.loads(printed().out)
    assert again == 1 and result["created"] == 0
    assert sorted(result["already_existed"]) == sorted([SF[0], SF[2], SF[4]])

    assert main(nhm(registry, tmp_path, "--json", "numbers", "list", "--label", "team=west")) == 0
    listed = json.loads(printed().out)
    assert sorted(n["phone_number"] for n in listed) == [SF[0], SF[2]]
    assert {n["attestation"] for n in listed} == {"ATTESTATION_A", "ATTESTATION_B"}


def test_an_import_with_hundreds_of_bad_rows_reports_every_one(registry: ServiceHandle, tmp_path: Path) -> None:
    # One answer names only the bad rows that fit in gRPC's trailers: the CLI sends the rest again until all are named.
    good = [f"+1415868{i:04d}" for i in range(100)]
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("phone_number\n" + "".join(f"bad-{i}\n{good[i]}\n" for i in range(100))
                        + "".join(f"worse-{i}\n" for i in range(200)))
    code = main(nhm(registry, tmp_path, "--json", "numbers", "import", str(csv_file)))
    result = json.loads(printed().out)
    assert code == 1
    assert result["created"] == 100
    assert len(result["errors"]) == 300
    assert sorted(e["line"] for e in result["errors"]) == sorted([2 + 2 * i for i in range(100)]
                                                                 + [202 + i for i in range(200)])


def test_numbers_list_show_and_lifecycle_as_tables(registry: ServiceHandle, tmp_path: Path) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("phone_number\n" + "\n".join(SF[5:9]) + "\n")
    assert main(nhm(registry, tmp_path, "numbers", "import", str(csv_file))) == 0
    printed()
    assert main(nhm(registry, tmp_path, "numbers", "transition", SF[5], "quarantined", "--reason", "test")) == 0
    assert "ACTIVE -> QUARANTINED" in printed().out

    assert main(nhm(registry, tmp_path, "numbers", "list", "--state", "QUARANTINED")) == 0
    lines = printed().out.splitlines()
    assert lines[0].split()[:3] == ["NUMBER", "STATE", "AREA"]
    assert [line.split()[:2] for line in lines[1:]] == [[SF[5], "QUARANTINED"]]

    assert main(nhm(registry, tmp_path, "numbers", "show", SF[5])) == 0
    shown = printed()
    assert f"{SF[5]}  QUARANTINED" in shown.out and "America/Los_Angeles" in shown.out
    assert "ACTIVE -> QUARANTINED" in shown.out and "test" in shown.out

    assert main(nhm(registry, tmp_path, "numbers", "retire", SF[6])) == 0
    assert "RETIRED" in printed().out
    assert main(nhm(registry, tmp_path, "numbers", "show", "+14158679999")) == 1
    assert "NOT_FOUND" in printed().err


def test_campaigns_and_keys(registry: ServiceHandle, tmp_path: Path) -> None:
    assert main(nhm(registry, tmp_path, "--json", "campaigns", "create", "Spring", "--daily-cap", "80",
                    "--window", "09:00-20:00")) == 0
    campaign = json.loads(printed().out)
    assert campaign["policy"]["daily_cap_per_number"] == 80
    assert campaign["policy"]["calling_window_start"] == {"hours": 9}

    csv_file = tmp_path / "n.csv"
    csv_file.write_text(f"phone_number\n{SF[9]}\n")
    assert main(nhm(registry, tmp_path, "numbers", "import", str(csv_file), "--campaign", campaign["id"])) == 0
    assert main(nhm(registry, tmp_path, "campaigns", "update", campaign["id"], "--hourly-cap", "10")) == 0
    assert main(nhm(registry, tmp_path, "campaigns", "show", campaign["id"])) == 0
    shown = printed().out
    assert "Numbers:" in shown and "Hourly cap per number:" in shown and "09:00-20:00" in shown
    assert main(nhm(registry, tmp_path, "campaigns", "list")) == 0
    assert "Spring" in printed().out
    assert main(nhm(registry, tmp_path, "campaigns", "unassign", campaign["id"], SF[9])) == 0
    assert "0 numbers" in printed().out

    assert main(nhm(registry, tmp_path, "keys", "create", "dialer", "--read-only")) == 0
    created = printed().out
    secret = created.split("store it now): ")[1].strip()
    key_id = created.split()[2]
    readonly = ["--target", registry.address, "--api-key", secret, "--credentials", str(tmp_path / "x")]
    assert main([*readonly, "tenant", "show"]) == 0
    assert main([*readonly, "campaigns", "create", "nope"]) == 1
    assert "PERMISSION_DENIED" in printed().err
    assert main(nhm(registry, tmp_path, "keys", "revoke", key_id)) == 0
    assert main(nhm(registry, tmp_path, "keys", "list", "--all")) == 0
    assert "dialer" in printed().out
    assert main([*readonly, "tenant", "show"]) == 1


def test_missing_key_and_bad_csv_are_explained(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, registry: ServiceHandle) -> None:
    monkeypatch.delenv("NHM_API_KEY", raising=False)
    assert main(["--target", registry.address, "--credentials", str(tmp_path / "none.json"), "keys", "list"]) == 2
    assert "no API key" in printed().err

    creds = tmp_path / "dev-credentials.json"
    creds.write_text(json.dumps({"tenant_id": "acme", "api_key": TENANT_A_KEY}))
    assert main(["--target", registry.address, "--credentials", str(creds), "tenant", "show"]) == 0
    assert "acme" in printed().out

    bad = tmp_path / "bad.csv"
    bad.write_text("number,name\n+14158675000,x\n")
    assert main(nhm(registry, tmp_path, "numbers", "import", str(bad))) == 2
    assert "phone_number column" in printed().err
