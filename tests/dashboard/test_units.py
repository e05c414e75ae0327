"""The dashboard's rules without services: sessions, CSRF, queries, charts, figures and the CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.registry.v1 import registry_pb2 as reg
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_dashboard import charts, csrf, overview, weekly
from nhm_dashboard import vocabulary as words
from nhm_dashboard.number_page import measure, source_views
from nhm_dashboard.numbers import NumberQuery, search_prefix
from nhm_dashboard.sessions import SessionStore
from nhm_platform.clock import FakeClock

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def store(clock: FakeClock, **kw: object) -> SessionStore:
    options: dict[str, object] = {"lifetime": timedelta(hours=8), "idle_timeout": timedelta(hours=1),
                                  "max_sessions": 100, **kw}
    return SessionStore(b"secret", clock, **options)  # type: ignore[arg-type]


class TestSessions:
    def test_cookie_holds_a_signed_random_id_never_the_key(self) -> None:
        sessions = store(FakeClock(T0))
        cookie, session = sessions.create("nhm_secret_key_123", "acme", "Acme")
        assert "nhm_secret_key_123" not in cookie
        session_id, _, signature = cookie.rpartition(".")
        assert session_id == session.id and len(session_id) >= 40 and len(signature) == 64
        assert sessions.get(cookie) is session

    def test_forged_or_altered_ids_are_refused(self) -> None:
        sessions = store(FakeClock(T0))
        cookie, session = sessions.create("key", "acme", "Acme")
        assert sessions.get(f"{session.id}.{'0' * 64}") is None
        assert sessions.get("x" + cookie) is None
        assert sessions.get(session.id) is None
        other = SessionStore(b"another secret", FakeClock(T0), lifetime=timedelta(hours=1),
                             idle_timeout=timedelta(hours=1), max_sessions=10)
        assert other.get(cookie) is None

    def test_sessions_end_after_lifetime_idleness_and_logout(self) -> None:
        clock = FakeClock(T0)
        sessions = store(clock, lifetime=timedelta(hours=2), idle_timeout=timedelta(minutes=30))
        cookie, _ = sessions.create("key", "acme", "Acme")
        for _ in range(4):  # used every 29 minutes: stays alive until its lifetime ends
            clock.advance(timedelta(minutes=29))
            assert sessions.get(cookie) is not None
        clock.advance(timedelta(minutes=5))
        assert sessions.get(cookie) is None  # 2 h 1 min after login
        idle, _ = sessions.create("key", "acme", "Acme")
        clock.advance(timedelta(minutes=30))
        assert sessions.get(idle) is None
        ended, _ = sessions.create("key", "acme", "Acme")
        sessions.end(ended)
        assert sessions.get(ended) is None

    def test_beyond_the_limit_the_least_recently_used_session_ends(self) -> None:
        sessions = store(FakeClock(T0), max_sessions=2)
        first, _ = sessions.create("a", "acme", "Acme")
        second, _ = sessions.create("b", "acme", "Acme")
        assert sessions.get(first) is not None  # first is now the most recently used
        sessions.create("c", "acme", "Acme")
        assert sessions.get(second) is None and sessions.get(first) is not None and len(sessions) == 2

    def test_flashes_show_once(self) -> None:
        _, session = store(FakeClock(T0)).create("a", "acme", "Acme")
        session.flash("ok", "done")
        assert session.take_flashes() == [("ok", "done")] and session.take_flashes() == []


class TestCsrf:
    def test_tokens_compare_exactly(self) -> None:
        assert csrf.token_matches("abc", "abc")
        assert not csrf.token_matches("abc", "abd")
        assert not csrf.token_matches("abc", "")
        assert not csrf.token_matches("abc", None)

    def test_origin_must_be_this_site_when_given(self) -> None:
        assert csrf.same_origin(None, "http://localhost:8080/")
        assert csrf.same_origin("http://localhost:8080", "http://localhost:8080/")
        assert not csrf.same_origin("http://evil.example", "http://localhost:8080/")
        assert not csrf.same_origin("https://localhost:8080", "http://localhost:8080/")
        assert not csrf.same_origin("null", "http://localhost:8080/")

    def test_login_token_is_bound_to_its_nonce(self) -> None:
        sessions = store(FakeClock(T0))
        assert csrf.login_token(sessions, "n1") != csrf.login_token(sessions, "n2")
        assert csrf.login_token(sessions, "n1") == csrf.login_token(sessions, "n1")


class TestNumberQuery:
    @pytest.mark.parametrize(("typed", "prefix"), [
        ("+1 (415) 867-53", "+141586753"), ("415 867", "+1415867"), ("14158675309", "+14158675309"),
        ("+44 20", "+4420"), ("", ""), ("abc", ""), ("4", "+14"),
    ])
    def test_search_means_an_e164_prefix(self, typed: str, prefix: str) -> None:
        assert search_prefix(typed) == prefix

    def test_filters_become_the_health_listing_request(self) -> None:
        query = NumberQuery.from_args({"status": "at-risk", "carrier": "hiya", "area_code": "415",
                                       "campaign": "cmp_1", "q": "415867", "page": "tok_1"})
        assert not query.problems
        assert query.page == "tok_1"
        assert query.health_filters() == {
            "statuses": [types.HEALTH_STATUS_AT_RISK], "source": types.REPUTATION_SOURCE_HIYA, "area_code": "415",
            "campaign_id": "cmp_1", "phone_number_prefix": "+1415867"}

    def test_bad_filters_are_dropped_with_a_reason(self) -> None:
        query = NumberQuery.from_args({"status": "purple", "carrier": "acme-tel", "area_code": "41a",
                                       "sort": "random", "page": "<script>"})
        assert (query.status, query.carrier, query.area_code, query.sort, query.page) == ("", "", "", "number", "")
        assert len(query.problems) == 5

    def test_registry_sorts_use_the_registry_order_and_say_which_filters_do_not_apply(self) -> None:
        query = NumberQuery.from_args({"sort": "state", "status": "flagged", "area_code": "212"})
        assert query.by_registry and query.status == "" and query.area_code == "212"
        assert any("Status and carrier filters" in p for p in query.problems)
        filters = query.numbers_filters()
        assert (filters["order_by"], filters["descending"], filters["area_code"]) == (
            reg.NUMBER_ORDER_BY_STATE, False, "212")
        newest = NumberQuery.from_args({"sort": "newest"}).numbers_filters()
        assert (newest["order_by"], newest["descending"]) == (reg.NUMBER_ORDER_BY_CREATE_TIME, True)

    def test_links_keep_the_filters(self) -> None:
        query = NumberQuery.from_args({"status": "flagged", "area_code": "212"})
        assert query.args(page="next") == {"status": "flagged", "area_code": "212", "page": "next"}
        assert query.args(status="") == {"area_code": "212"}


class TestFigures:
    def test_todays_calls_are_the_campaigns_and_the_unhealthy_numbers_share_is_split_by_status(self) -> None:
        unhealthy = [alloc.NumberUsage(phone_number="+14158670104", calls_today=3),
                     alloc.NumberUsage(phone_number="+14158670105", calls_today=1),
                     alloc.NumberUsage(phone_number="+13127860106", calls_today=2)]
        share = overview.todays_call_share([9, 3], unhealthy, {
            "+14158670104": types.HEALTH_STATUS_AT_RISK, "+14158670105": types.HEALTH_STATUS_FLAGGED,
            "+13127860106": types.HEALTH_STATUS_BLOCKED})
        assert (share.total, share.risky, share.blocked) == (12, 4, 2)
        assert share.share == pytest.approx(4 / 12)
        assert overview.todays_call_share([], [], {}).share is None

    def test_tiles_show_the_change_since_last_week(self) -> None:
        tiles = overview.status_tiles(sco.StatusCounts(healthy=5, at_risk=2, flagged=1, total=8),
                                      sco.StatusCounts(healthy=7, at_risk=1, total=8))
        assert [(t.status.label, t.count, t.change) for t in tiles] == [
            ("Healthy", 5, -2), ("At Risk", 2, 1), ("Flagged", 1, 1), ("Blocked", 0, 0)]
        assert tiles[2].status.meaning == "Marked as spam/scam by one or more carriers or apps. Remediate immediately."

    @pytest.mark.parametrize(("kind", "value", "threshold", "shown"), [
        (sco.RISK_FACTOR_KIND_ANSWER_RATE, 0.042, 0.08, "4.2%"),
        (sco.RISK_FACTOR_KIND_ANSWER_RATE, 0.08, 0.08, "8%"),
        (sco.RISK_FACTOR_KIND_DAILY_VOLUME, 180, 150, "180"),
        (sco.RISK_FACTOR_KIND_AVERAGE_TALK_TIME, 12.4, 15, "12 s"),
        (sco.RISK_FACTOR_KIND_ATTESTATION, 2, 2, "B"),
        (sco.RISK_FACTOR_KIND_BLOCKED_CALLS, 6, 5, "6"),
    ])
    def test_factor_values_read_in_their_unit(self, kind: int, value: float, threshold: float, shown: str) -> None:
        assert measure(kind, value, threshold) == shown

    def test_label_history_is_grouped_per_source(self) -> None:
        health = sco.NumberHealth(status=types.HEALTH_STATUS_FLAGGED, sources=[sco.SourceHealth(
            source=types.REPUTATION_SOURCE_FIRST_ORION, label=types.REPUTATION_LABEL_SPAM, raw_label="Spam Likely",
            status=types.HEALTH_STATUS_FLAGGED, weight=1.0)])
        history = [sco.HealthTransition(from_status=types.HEALTH_STATUS_AT_RISK, to_status=types.HEALTH_STATUS_FLAGGED,
                                        cause="First Orion: Spam Likely",
                                        sources=[types.REPUTATION_SOURCE_FIRST_ORION]),
                   sco.HealthTransition(from_status=types.HEALTH_STATUS_HEALTHY, to_status=types.HEALTH_STATUS_AT_RISK,
                                        cause="Hiya: Potential Spam", sources=[types.REPUTATION_SOURCE_HIYA])]
        views = {v.name: v for v in source_views(health, history)}
        assert views["First Orion"].label == "Spam Likely" and views["First Orion"].status.key == "flagged"
        assert [e.change for e in views["First Orion"].events] == ["At Risk → Flagged"]
        assert views["Hiya"].label == "No label now" and views["Hiya"].events[0].cause == "Hiya: Potential Spam"


class TestCharts:
    def test_health_chart_draws_each_status_period_and_escapes_text(self) -> None:
        start, end = T0 - timedelta(days=30), T0
        points = [charts.HealthPoint(start - timedelta(days=3), 100, words.STATUS_BY_KEY["healthy"], "first score"),
                  charts.HealthPoint(T0 - timedelta(days=10), 62, words.STATUS_BY_KEY["at-risk"], "<b>Hiya</b>"),
                  charts.HealthPoint(T0 - timedelta(days=2), 35, words.STATUS_BY_KEY["flagged"], "First Orion")]
        svg = str(charts.health_chart(points, start, end))
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert [svg.count(f'class="band status-{k}"') for k in ("healthy", "at-risk", "flagged")] == [1, 1, 1]
        assert svg.count("<circle") == 2  # the point before the window only sets where the line starts
        assert "<b>Hiya" not in svg and "&lt;b&gt;Hiya&lt;/b&gt;" in svg
        assert "score-line" in svg
        # The last date ends at the plot's right edge: a centred label would run past the chart and be cut.
        last = re.findall(r'<text class="axis" x="([0-9.]+)" y="[0-9.]+" text-anchor="(\w+)">([^<]+)</text>', svg)[-1]
        assert (float(last[0]), last[1], last[2]) == (charts.WIDTH - charts.RIGHT, "end", f"{end:%b %d}")

    def test_empty_charts_say_so(self) -> None:
        assert "No health recorded yet" in charts.health_chart([], T0 - timedelta(days=30), T0)
        bars = charts.activity_chart([charts.DayBar("2026-01-04", 0, 0), charts.DayBar("2026-01-05", 12, 5)])
        assert bars.count('class="bar outbound"') == 2 and "2026-01-05: 12 outbound, 5 answered" in bars


class TestWeeklyCsv:
    def report(self) -> sco.WeeklyReport:
        return sco.WeeklyReport(
            counts_now=sco.StatusCounts(healthy=3, at_risk=1, flagged=1, blocked=1, total=6),
            counts_week_ago=sco.StatusCounts(healthy=5, at_risk=1, total=6),
            changed=[sco.HealthTransition(phone_number="+14158670105", from_status=types.HEALTH_STATUS_HEALTHY,
                                          to_status=types.HEALTH_STATUS_FLAGGED, score=35,
                                          cause="=HYPERLINK(\"http://x\")")],
            newly_at_risk=["+14158670104"], answer_rate_flagged=0.05, answer_rate_clean=0.2, outbound_calls=120)

    def test_csv_carries_every_section_of_the_report(self) -> None:
        rows = list(csv.reader(io.StringIO(weekly.to_csv(weekly.view(self.report(), "Acme")))))
        assert rows[0] == ["section", "item", "value", "previous", "change", "detail", "time"]
        status = {r[1]: (int(r[2]), int(r[3]), int(r[4])) for r in rows if r[0] == "status"}
        assert status == {"Healthy": (3, 5, -2), "At Risk": (1, 1, 0), "Flagged": (1, 0, 1), "Blocked": (1, 0, 1),
                          "Total": (6, 6, 0)}
        assert ["newly at risk", "+14158670104", "At Risk", "Healthy", "", "", ""] in rows
        changed = next(r for r in rows if r[0] == "changed")
        assert changed[1:4] == ["+14158670105", "Flagged", "Healthy"]

    def test_cells_that_would_run_as_formulas_are_defused(self) -> None:
        text = weekly.to_csv(weekly.view(self.report(), "Acme"))
        assert "'=HYPERLINK" in text
        assert weekly.safe_cell("+14158670105") == "+14158670105" and weekly.safe_cell("-3") == "-3"
        assert weekly.safe_cell("@SUM(A1)") == "'@SUM(A1)" and weekly.safe_cell(-3) == -3
