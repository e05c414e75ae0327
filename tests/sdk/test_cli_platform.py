"""The `nhm` commands that read health, remediation and usage, against the whole platform."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from nhm.type.v1 import types_pb2 as types
from nhm_sdk import cli

SF = [f"+1415867{i:04d}" for i in range(3500, 3504)]


def run(platform: Any, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--api-key", platform.client.config.api_key, "--credentials", str(tmp_path / "none.json"),
            *(f"--{k.replace('_', '-')}={v}" for k, v in platform.targets().items()), *args]
    code = cli.main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_health_cases_reports_and_usage_commands(platform: Any, tmp_path: Path) -> None:
    client = platform.client
    campaign = platform.campaign_with_numbers(SF)
    client.allocate_number(campaign, "+12127363500")
    observed = platform.clock.now().isoformat()
    csv_file = tmp_path / "hiya.csv"
    csv_file.write_text("phone_number,source,label,observed_at,raw_label\n"
                        f"{SF[0]},hiya,spam,{observed},Spam Likely\n"
                        f"+1415,hiya,spam,{observed},\n")
    code, out, _ = run(platform, tmp_path, "reputation", "load", str(csv_file))
    assert code == 1 and "1 accepted, 0 duplicates, 1 rejected" in out and "ROW" in out

    platform.wait_until(lambda: client.get_health(SF[0]).status == types.HEALTH_STATUS_FLAGGED, "the flag")
    code, out, _ = run(platform, tmp_path, "health", "list", "--status", "flagged")
    assert code == 0 and "1 flagged" in out and SF[0] in out and "Spam Likely" in out

    code, out, _ = run(platform, tmp_path, "health", "show", SF[0])
    assert code == 0 and "Health: FLAGGED" in out and "HIYA" in out and "Risk factors" in out
    assert "Health history" in out and "-> FLAGGED" in out

    code, out, _ = run(platform, tmp_path, "--json", "health", "show", SF[0])
    assert json.loads(out)["health"]["status"] == "HEALTH_STATUS_FLAGGED"

    case = platform.wait_until(lambda: client.list_cases(phone_number=SF[0]).to_list(), "a case")[0]
    code, out, _ = run(platform, tmp_path, "cases", "list", "--state", "OPEN")
    assert code == 0 and case.id in out and SF[0] in out
    code, out, _ = run(platform, tmp_path, "cases", "show", case.id)
    assert code == 0 and "Tasks" in out and "DISPUTE" in out and "Audit trail" in out
    dispute = next(t for t in client.get_case(case.id).tasks if t.source == types.REPUTATION_SOURCE_HIYA)
    code, out, _ = run(platform, tmp_path, "cases", "update-task", case.id, dispute.id, "--status", "in_progress",
                       "--reference", "HIYA-42")
    assert code == 0 and "IN_PROGRESS" in out and "HIYA-42" in out
    code, out, _ = run(platform, tmp_path, "tasks", "list", "--kind", "DISPUTE")
    assert code == 0 and dispute.id in out
    code, out, _ = run(platform, tmp_path, "cases", "note", case.id, "asked Hiya for review")
    assert code == 0
    evidence_file = tmp_path / "evidence.csv"
    code, out, _ = run(platform, tmp_path, "cases", "evidence", case.id, "--format", "csv", "-o", str(evidence_file))
    assert code == 0 and evidence_file.read_text().count(SF[0]) >= 1

    code, out, _ = run(platform, tmp_path, "report", "weekly")
    assert code == 0 and "Weekly report" in out and "Flagged" in out and SF[0] in out
    code, out, _ = run(platform, tmp_path, "usage", "campaign", campaign)
    assert code == 0 and "1 calls today" in out
    code, out, _ = run(platform, tmp_path, "campaigns", "capacity", campaign, "--expected-daily-calls", "900")
    assert code == 0 and "NEEDED" in out and "short of numbers" in out

    code, out, _ = run(platform, tmp_path, "cases", "cancel", case.id, "--restore")
    assert code == 0 and "CANCELLED" in out
