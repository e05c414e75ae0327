"""Every scoring method of the SDK against the real registry + scoring: ingest, health, reports, policy, feed."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_sdk import InvalidArgumentError

SF = [f"+1415867{i:04d}" for i in range(8000, 8012)]
PROSPECT = "+12127368000"


def _numbers(platform: Any, numbers: list[str]) -> None:
    platform.client.import_numbers(numbers)
    platform.wait_until(lambda: platform.client.list_health(phone_number_prefix="+1415867").first_response
                        .counts.total >= len(numbers), "scoring to learn the numbers")


def test_outcomes_are_counted_once_by_event_id(platform: Any) -> None:
    client, now = platform.client, platform.clock.now()
    _numbers(platform, SF[:1])
    outcomes = [{"event_id": f"ev-{i}", "phone_number": SF[0], "remote_number": PROSPECT,
                 "start_time": now - dt.timedelta(minutes=i), "answered": i % 2 == 0,
                 "talk_duration": 60 if i % 2 == 0 else None, "sip_code": 200 if i % 2 == 0 else 480}
                for i in range(6)]
    summary = client.report_call_outcomes(outcomes)
    assert (summary.accepted, summary.duplicates, summary.rejected) == (6, 0, 0)
    again = client.report_call_outcomes(outcomes[:2])
    assert (again.accepted, again.duplicates) == (0, 2)

    rejected = client.report_call_outcomes([{"phone_number": "+14158679999", "start_time": now}])
    assert rejected.rejected == 1 and rejected.rejections[0].field.startswith("outcomes[0]")

    streamed = client.stream_call_outcomes([[{"phone_number": SF[0], "start_time": now, "sip_code": 480}]] * 3)
    assert streamed.accepted == 3  # each outcome got its own event id

    day = client.call_activity(SF[0], days=2, sample_size=3)
    assert day.days[-1].outbound_calls == 9 and day.days[-1].answered_calls == 3
    assert len(day.sample_call_times) == 3


def test_labels_flag_a_number_and_explain_why(platform: Any) -> None:
    client, now = platform.client, platform.clock.now()
    _numbers(platform, SF[1:4])
    summary = client.report_reputation_observations([
        {"phone_number": SF[1], "source": "HIYA", "label": "SPAM", "raw_label": "Spam Likely", "observe_time": now},
        {"phone_number": SF[2], "source": types.REPUTATION_SOURCE_NOMOROBO, "label": "MINOR",
         "raw_label": "Nuisance", "observe_time": now}])
    assert summary.accepted == 2
    complaints = client.report_complaints([{"phone_number": SF[1], "remote_number": PROSPECT, "report_time": now,
                                            "detail": "kept calling"}, {"phone_number": SF[1],
                                                                        "kind": "DO_NOT_CALL",
                                                                        "report_time": now}])
    assert complaints.accepted == 2

    flagged = platform.wait_until(lambda: (h := client.get_health(SF[1])).status == types.HEALTH_STATUS_FLAGGED
                                  and h, "the flag")
    assert any(s.source == types.REPUTATION_SOURCE_HIYA and s.raw_label == "Spam Likely" for s in flagged.sources)
    assert flagged.summary
    assert client.get_health(SF[2]).status == types.HEALTH_STATUS_AT_RISK

    history = list(client.health_history(SF[1], page_size=1))
    assert history[0].to_status == types.HEALTH_STATUS_FLAGGED and history[0].cause

    pages = client.list_health(statuses=["FLAGGED", "AT_RISK"], page_size=1)
    assert pages.first_response.counts.flagged == 1 and pages.first_response.counts.at_risk == 1
    assert sorted(h.phone_number for h in pages) == [SF[1], SF[2]]
    assert [h.phone_number for h in client.list_health(source="HIYA")] == [SF[1]]


def test_reputation_csv_import_reports_rejected_rows(platform: Any) -> None:
    client = platform.client
    _numbers(platform, SF[4:6])
    observed = platform.clock.now().isoformat()
    csv_text = ("phone_number,source,label,observed_at,raw_label\n"
                f"{SF[4]},hiya,spam,{observed},Spam Likely\n"
                f"{SF[5]},nomorobo,clean,{observed},\n"
                f"not-a-number,hiya,spam,{observed},\n")
    summary = client.import_reputation_csv(csv_text)
    assert (summary.accepted, summary.rejected) == (2, 1)
    assert summary.rejections[0].index == 3
    assert client.import_reputation_csv(csv_text.encode()).duplicates == 2  # content-derived event ids


def test_weekly_report_and_policy(platform: Any) -> None:
    client, now = platform.client, platform.clock.now()
    _numbers(platform, SF[6:8])
    client.report_reputation_observations([{"phone_number": SF[6], "source": "TNS", "label": "SCAM",
                                            "observe_time": now}])
    platform.wait_until(lambda: client.get_health(SF[6]).status == types.HEALTH_STATUS_FLAGGED, "the flag")
    report = client.weekly_report()
    assert report.counts_now.flagged == 1 and report.counts_now.total == 2
    assert SF[6] in {t.phone_number for t in report.changed}
    assert client.weekly_report(period_end=now - dt.timedelta(days=30)).counts_now.flagged == 0

    policy = client.get_scoring_policy()
    assert policy.daily_volume_threshold == 150 and policy.short_call_duration.seconds == 10
    updated = client.update_scoring_policy({"daily_volume_threshold": 120,
                                            "short_call_duration": dt.timedelta(seconds=8)})
    assert updated.policy.daily_volume_threshold == 120 and updated.policy.short_call_duration.seconds == 8
    assert updated.policy.answer_rate_threshold == pytest.approx(0.08)  # untouched
    with pytest.raises(InvalidArgumentError) as caught:
        client.update_scoring_policy({"answer_rate_threshold": 7.0})
    assert caught.value.field_violations


def test_watch_health_streams_changes(platform: Any) -> None:
    client, now = platform.client, platform.clock.now()
    _numbers(platform, SF[8:10])
    seen: list[sco.WatchHealthResponse] = []
    flagged = threading.Event()
    with client.watch_health(snapshot=True) as stream:
        def read() -> None:
            for change in stream:
                seen.append(change)
                if change.health.phone_number == SF[8] and change.health.status == types.HEALTH_STATUS_FLAGGED:
                    flagged.set()
                    return
        reader = threading.Thread(target=read)
        reader.start()
        client.report_reputation_observations([{"phone_number": SF[8], "source": "HIYA", "label": "SPAM",
                                                "observe_time": now}])
        assert flagged.wait(20)
        reader.join(5)
    assert {c.health.phone_number for c in seen if c.revision == 0 and not c.heartbeat} >= set(SF[8:10])
