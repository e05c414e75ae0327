"""Every page and action through Flask's test client, against the four real services seeded through the SDK."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from typing import Any

from dashboard.support import AT_RISK, BLOCKED, FLAGGED, GLOBEX_NUMBER, HEALTHY, Seed, Stack
from dashboard.web import csrf_token, rows, sign_in, text, tile_count
from structlog.testing import capture_logs

from nhm.remediation.v1 import remediation_pb2 as rem
from nhm.type.v1 import types_pb2 as types
from nhm_dashboard import vocabulary as words
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, TENANT_B_KEY

ACME = sorted([*HEALTHY, AT_RISK, FLAGGED, BLOCKED])


def test_read_pages_show_the_seeded_tenant(seeded: Seed, stack: Stack, make_app: Callable[..., Any]) -> None:
    client = make_app(page_size=4).test_client()
    assert sign_in(client, TENANT_A_KEY).status_code == 302

    # Overview: counts per status with the seed's meaning, change since last week, today's calls, answer rates,
    # short campaigns, overdue tasks.
    page = text(client.get("/"))
    assert [tile_count(page, s) for s in ("healthy", "at-risk", "flagged", "blocked")] == [3, 1, 1, 1]
    assert "Minor flags detected on one or more carriers. Monitor closely." in page
    assert "Calls are being blocked by carriers. Remove from active campaigns." in page
    assert "+3 since last week" in page  # the tenant's numbers were all added this week
    calls, risky = sum(seeded.calls.values()), seeded.calls.get(AT_RISK, 0) + seeded.calls.get(FLAGGED, 0)
    assert risky > 0
    assert f"{risky / calls * 100:.1f}%" in page and f"of today's {calls} calls" in page
    assert re.search(r"Clean numbers</dt><dd class=\"big\">[1-9][0-9.]*%", page)  # healthy numbers answered
    short = page.split('id="short-campaigns"')[1].split("</section>")[0]
    assert "West" in short and "East" not in short
    overdue = page.split('id="overdue"')[1].split("</section>")[0]
    assert FLAGGED in overdue and "Carrier registration" in overdue

    # Numbers: every number in pages of 4 that follow each other without gaps or repeats.
    first = text(client.get("/numbers"))
    listed = rows(first)
    assert listed == ACME[:4]
    next_link = re.search(r'id="next-page" href="([^"]+)"', first)
    assert next_link
    second = text(client.get(next_link.group(1)))
    assert rows(second) == ACME[4:] and 'id="next-page"' not in second
    flagged_row = second.split(f'data-phone="{FLAGGED}"')[1].split("</tr>")[0]
    assert "Flagged" in flagged_row and "First Orion: Spam Likely" in flagged_row and "West" in flagged_row
    assert f"{seeded.calls[FLAGGED]} / 100" in flagged_row

    # Filters: status, carrier, area code, campaign, search; and counts per status for the filter.
    at_risk = text(client.get("/numbers?status=at-risk"))
    assert rows(at_risk) == [AT_RISK] and "Hiya: Potential Spam" in at_risk
    assert rows(text(client.get("/numbers?carrier=first_orion"))) == [FLAGGED]
    assert rows(text(client.get("/numbers?area_code=212"))) == HEALTHY[:2]
    assert rows(text(client.get(f"/numbers?campaign={seeded.west}"))) == [AT_RISK, FLAGGED]
    assert rows(text(client.get("/numbers?q=(415) 867"))) == [AT_RISK, FLAGGED]
    assert rows(text(client.get("/numbers?q=%2B1999"))) == []
    # Sorted by the registry: lifecycle state, with numbers descending as a second look.
    by_number_desc = []
    url = "/numbers?sort=number-desc"
    while url:
        page = text(client.get(url))
        by_number_desc += rows(page)
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert by_number_desc == sorted(ACME, reverse=True)
    by_state = text(client.get("/numbers?sort=state&status=flagged"))
    assert "Status and carrier filters apply when sorted by number" in by_state
    assert len(rows(by_state)) == 4

    # One number: health chart, factors with value/threshold/advice, labels per source, usage, the case.
    page = text(client.get(f"/numbers/{FLAGGED}"))
    assert "<svg" in page and 'class="band status-flagged"' in page
    factors = page.split('id="factors"')[1].split("</section>")[0]
    assert "answer rate" in factors and "Improve list quality, use Local Presence." in factors
    labels = page.split('id="labels"')[1].split("</section>")[0]
    assert "First Orion" in labels and "Spam Likely" in labels
    assert f"{seeded.calls[FLAGGED]} of 100" in page
    case = page.split('id="case"')[1].split("</section>")[0]
    assert "Dispute" in case and "First Orion" in case and f"/cases/{seeded.flagged_case}/evidence.csv" in case

    # Remediation: open cases by step, overdue tasks, evidence downloads.
    page = text(client.get("/remediation"))
    assert FLAGGED in page and BLOCKED in page and AT_RISK in page  # the At Risk number is under watch
    assert "Watching" in page
    assert FLAGGED in page.split('id="overdue"')[1].split("</section>")[0]
    evidence = client.get(f"/cases/{seeded.flagged_case}/evidence.csv")
    assert evidence.status_code == 200 and evidence.mimetype == "text/csv"
    assert "attachment" in evidence.headers["Content-Disposition"] and FLAGGED in evidence.get_data(as_text=True)
    packets = json.loads(client.get(f"/cases/{seeded.flagged_case}/evidence.json").get_data(as_text=True))
    assert FLAGGED in json.dumps(packets)

    # Weekly report: printable page, and the same as CSV.
    page = text(client.get("/weekly"))
    assert "Weekly number health report" in page and 'href="/weekly.csv"' in page
    download = client.get("/weekly.csv")
    assert download.mimetype == "text/csv" and "attachment" in download.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    status = {r[1]: int(r[2]) for r in table if r[0] == "status"}
    assert status == {"Healthy": 3, "At Risk": 1, "Flagged": 1, "Blocked": 1, "Total": 6}
    assert {r[1] for r in table if r[0] == "changed"} >= {AT_RISK, FLAGGED, BLOCKED}


def test_actions_forms_sessions_and_isolation(seeded: Seed, stack: Stack, make_app: Callable[..., Any]) -> None:
    """One stack for the write paths (starting four services is most of a test's time)."""
    app = make_app()
    check_forged_requests_are_refused(app, seeded, stack)
    check_operator_actions(app, seeded, stack)
    check_sign_in_sessions_and_isolation(app, seeded, stack)


def check_operator_actions(app: Any, seeded: Seed, stack: Stack) -> None:
    client = app.test_client()
    sign_in(client, TENANT_A_KEY)
    acme = stack.client()

    # Quarantine now.
    page = text(client.get(f"/numbers/{HEALTHY[0]}"))
    quarantine = f"/numbers/{HEALTHY[0]}/quarantine"
    done = client.post(quarantine, data={"csrf_token": csrf_token(page, quarantine),
                                                                  "reason": "complaint from a prospect"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/numbers/{HEALTHY[0]}")
    assert acme.get_number(HEALTHY[0]).state == types.LIFECYCLE_STATE_QUARANTINED
    page = text(client.get(f"/numbers/{HEALTHY[0]}"))
    assert "is quarantined" in page and 'id="lifecycle">Quarantined' in page and 'id="quarantine"' not in page

    # Open a case.
    page = text(client.get(f"/numbers/{HEALTHY[1]}"))
    cases_url = f"/numbers/{HEALTHY[1]}/cases"
    client.post(cases_url, data={"csrf_token": csrf_token(page, cases_url), "reason": "callbacks say spam"})
    cases = acme.list_cases(phone_number=HEALTHY[1], states="OPEN").to_list()
    assert len(cases) == 1 and any("callbacks say spam" in t for t in cases[0].triggers)
    assert "A remediation case was opened" in text(client.get(f"/numbers/{HEALTHY[1]}"))

    # Mark the dispute task done: a reference is required; then it is recorded with its outcome.
    page = text(client.get(f"/numbers/{FLAGGED}"))
    url = f"/cases/{seeded.flagged_case}/tasks/{seeded.dispute_task}/done"
    refused = client.post(url, data={"csrf_token": csrf_token(page, url), "phone": FLAGGED, "needs_reference": "1",
                                     "reference": ""})
    assert refused.status_code == 302
    assert "Enter the programme's or engine's reference" in text(client.get(f"/numbers/{FLAGGED}"))
    assert _task(acme, seeded).status != rem.TASK_STATUS_DONE
    client.post(url, data={"csrf_token": csrf_token(page, url), "phone": FLAGGED, "needs_reference": "1",
                           "reference": "FO-2026-0042", "outcome": "cleared"})
    task = _task(acme, seeded)
    assert (task.status, task.reference, task.outcome) == (rem.TASK_STATUS_DONE, "FO-2026-0042",
                                                          rem.TASK_OUTCOME_CLEARED)
    page = text(client.get(f"/numbers/{FLAGGED}"))
    assert "Task marked done with reference FO-2026-0042." in page
    row = page.split(f'data-task="{seeded.dispute_task}"')[1].split("</tr>")[0]
    assert "Done (Cleared)" in row and "FO-2026-0042" in row


def check_forged_requests_are_refused(app: Any, seeded: Seed, stack: Stack) -> None:
    client = app.test_client()
    sign_in(client, TENANT_A_KEY)
    acme = stack.client()
    token = csrf_token(text(client.get(f"/numbers/{HEALTHY[2]}")), f"/numbers/{HEALTHY[2]}/quarantine")
    no_token = client.post(f"/numbers/{HEALTHY[2]}/quarantine", data={})
    wrong_token = client.post(f"/numbers/{HEALTHY[2]}/quarantine", data={"csrf_token": token + "x"})
    other_site = client.post(f"/numbers/{HEALTHY[2]}/quarantine", data={"csrf_token": token},
                             headers={"Origin": "http://evil.example"})
    assert [r.status_code for r in (no_token, wrong_token, other_site)] == [400, 400, 400]
    assert acme.get_number(HEALTHY[2]).state == types.LIFECYCLE_STATE_ACTIVE
    task_url = f"/cases/{seeded.flagged_case}/tasks/{seeded.dispute_task}/done"
    assert client.post(task_url, data={"reference": "X", "phone": FLAGGED}).status_code == 400
    assert _task(acme, seeded).status != rem.TASK_STATUS_DONE
    assert client.post("/logout", data={}).status_code == 400  # a forged sign-out does nothing
    assert client.get("/").status_code == 200


def check_sign_in_sessions_and_isolation(app: Any, seeded: Seed, stack: Stack) -> None:
    client = app.test_client()
    assert client.get("/numbers?status=flagged").headers["Location"].startswith("/login?next=")

    bad = sign_in(client, "nhm_not_a_key_0123456789")
    assert bad.status_code == 401 and "That API key was not accepted" in text(bad)
    assert client.get_cookie("nhm_session") is None
    no_token = client.post("/login", data={"api_key": TENANT_A_KEY})
    assert no_token.status_code == 400 and client.get_cookie("nhm_session") is None

    ok = sign_in(client, TENANT_A_KEY)
    header = ok.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Secure" not in header
    cookie = client.get_cookie("nhm_session")
    assert cookie is not None and TENANT_A_KEY not in cookie.value
    assert ok.headers["Location"] == "/"

    # A key sees only its tenant.
    globex = app.test_client()
    sign_in(globex, TENANT_B_KEY)
    page = text(globex.get("/"))
    assert [tile_count(page, s) for s in ("healthy", "at-risk", "flagged", "blocked")] == [1, 0, 0, 0]
    assert rows(text(globex.get("/numbers"))) == [GLOBEX_NUMBER]
    assert globex.get(f"/numbers/{FLAGGED}").status_code == 404
    assert globex.get(f"/cases/{seeded.flagged_case}/evidence.csv").status_code == 404
    token = csrf_token(text(globex.get("/")))
    before = stack.client().get_number(HEALTHY[2])
    assert globex.post(f"/numbers/{HEALTHY[2]}/quarantine", data={"csrf_token": token}).status_code == 404
    assert stack.client().get_number(HEALTHY[2]).etag == before.etag
    assert FLAGGED not in text(globex.get("/remediation"))

    # A tampered cookie is no session; signing out ends the session for good.
    tampered = app.test_client()
    tampered.set_cookie("nhm_session", cookie.value[:-1] + ("0" if cookie.value[-1] != "0" else "1"))
    assert tampered.get("/").status_code == 302
    token = csrf_token(text(client.get("/")), "/logout")
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 302 and "signed-out" in out.headers["Location"]
    replay = app.test_client()
    replay.set_cookie("nhm_session", cookie.value)
    assert replay.get("/").status_code == 302

    # Over TLS the cookie is Secure and host-only (__Host- prefix).
    secure = app.test_client()
    form = secure.get("/login", base_url="https://localhost")
    signed = secure.post("/login", base_url="https://localhost",
                         data={"api_key": TENANT_A_KEY, "csrf_token": csrf_token(text(form))})
    assert "__Host-nhm_session=" in signed.headers["Set-Cookie"] and "Secure" in signed.headers["Set-Cookie"]

    # Every page forbids framing and foreign content, and its assets come from the dashboard itself.
    page = app.test_client().get("/login")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Cache-Control"] == "no-store"
    html = text(page)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from another origin
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200
    assert client.get("/healthz").get_data(as_text=True) == "ok\n"


def _task(acme: Any, seeded: Seed) -> rem.Task:
    case = acme.get_case(seeded.flagged_case)
    return next(t for t in case.tasks if t.id == seeded.dispute_task)


def test_campaign_names_are_reused_for_their_ttl_only(stack: Stack, make_app: Callable[..., Any]) -> None:
    acme = stack.client()
    acme.create_campaign("North")
    cached, fresh = make_app(campaign_names_ttl=3600).test_client(), make_app(campaign_names_ttl=0).test_client()
    for client in (cached, fresh):
        sign_in(client, TENANT_A_KEY)
        assert ">North</option>" in text(client.get("/numbers"))
    acme.create_campaign("South")
    # Listing campaigns counts their numbers, so the Numbers page reuses the names it read for a while.
    assert ">South</option>" not in text(cached.get("/numbers"))
    assert ">South</option>" in text(fresh.get("/numbers"))


def rpcs_of_tenant_a(events: list[dict[str, Any]]) -> list[str]:
    """The RPCs the services answered for tenant A's key (not the services' own feeds), e.g. "ListHealth"."""
    return sorted(e["method"].rsplit("/", 1)[1] for e in events if e.get("event") == "rpc"
                  and e.get("tenant") == TENANT_A and e.get("caller", "").startswith("tenant"))


def test_a_numbers_page_costs_three_calls_whatever_its_size(seeded: Seed, stack: Stack,
                                                            make_app: Callable[..., Any]) -> None:
    """One list call and two batch gets, side by side: no call per row, so 1,000 rows cost what 4 do."""
    pages: dict[str, str] = {}
    # Remediation may move the flagged number on (Active, Quarantined, then Resting) while the pages load: a row
    # may show any state on that path between the one seen before the pages and the one seen after them.
    path_of_remediation = ["Active", "Quarantined", "Resting"]
    before = words.name_of(words.STATE_NAMES, stack.client().get_number(FLAGGED).state)
    for page_size in (2, 50):
        client = make_app(page_size=page_size).test_client()
        sign_in(client, TENANT_A_KEY)
        client.get("/numbers")  # campaign names are listed once, then reused
        for path, shown, listing, batch_gets in [
                ("/numbers", min(page_size, len(ACME)), "ListHealth", ["BatchGetNumbers", "BatchGetNumberUsage"]),
                ("/numbers?status=at-risk&q=415", 1, "ListHealth", ["BatchGetNumbers", "BatchGetNumberUsage"]),
                ("/numbers?sort=state", min(page_size, len(ACME)), "ListNumbers",
                 ["BatchGetHealth", "BatchGetNumberUsage"])]:
            with capture_logs() as events:
                pages[path] = text(client.get(path))
            assert len(rows(pages[path])) == shown, path
            assert rpcs_of_tenant_a(events) == sorted([listing, *batch_gets]), (path, page_size)
    # The rows carry what the batch gets brought: the registry's lifecycle state, scoring's status, the usage.
    after = words.name_of(words.STATE_NAMES, stack.client().get_number(FLAGGED).state)
    states = {before, after}
    if states <= set(path_of_remediation):
        first, last = sorted(path_of_remediation.index(state) for state in states)
        states = set(path_of_remediation[first:last + 1])
    for path in ("/numbers", "/numbers?sort=state"):
        flagged = pages[path].split(f'data-phone="{FLAGGED}"')[1].split("</tr>")[0]
        assert "Flagged" in flagged and f"{seeded.calls[FLAGGED]} / 100" in flagged
        assert any(f"<td>{state}</td>" in flagged for state in states), (states, flagged)


def test_the_overview_reads_no_number_one_by_one(seeded: Seed, make_app: Callable[..., Any]) -> None:
    client = make_app().test_client()
    sign_in(client, TENANT_A_KEY)
    with capture_logs() as events:
        assert text(client.get("/")).count("data-count=") == 4
    called = rpcs_of_tenant_a(events)
    # Tenant-wide reads, then per campaign (East, West) and per overdue task's case; the unhealthy numbers'
    # usage in one batch get.
    assert called.count("BatchGetNumberUsage") == 1 and called.count("GetCapacityPlan") == 2
    assert not {"GetNumberUsage", "GetHealth", "GetNumber"} & set(called), called
    assert called.count("GetCampaignUsage") == 2 and called.count("GetCase") == 1, called
