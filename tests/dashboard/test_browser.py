"""The operator's weekly check in real headless Chromium (Debian's package, driven by Playwright), offline.

Screenshots of every page land in test-artifacts/screenshots/ for review.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard.support import AT_RISK, FLAGGED, Seed, Stack

from nhm.remediation.v1 import remediation_pb2 as rem
from nhm_testing.keys import TENANT_A_KEY

# CI sets NHM_REQUIRE_BROWSER=1: there a missing browser is a failure, never a skip.
BROWSER_REQUIRED = os.environ.get("NHM_REQUIRE_BROWSER") == "1"


def _browser_missing(reason: str) -> None:
    if BROWSER_REQUIRED:
        pytest.fail(f"{reason} (NHM_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


try:
    from playwright import sync_api
except ImportError:  # pragma: no cover - depends on the machine
    _browser_missing("playwright is not installed: pip install playwright")

CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium headless and off the network: no first-run, sync, component or background fetches.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def served(make_app: Callable[..., Any]) -> Iterator[str]:
    """The dashboard on a real HTTP server (127.0.0.1, a free port)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, make_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _browser_missing("Chromium is not installed: apt-get install -y chromium")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            accept_downloads=True, viewport={"width": 1280, "height": 900})
        # Nothing may leave the machine: every request must go to the dashboard itself.
        foreign: list[str] = []
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1:")
                      else (foreign.append(route.request.url), route.abort()))
        yield context
        context.close()
        assert not foreign, f"the pages asked for other origins: {foreign}"


def test_weekly_check_in_a_browser(seeded: Seed, stack: Stack, served: str, browser: Any, backend: str,
                                   tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    def shot(name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{backend}-{name}.png"), full_page=True)

    # Sign in: a wrong key gets a clear message, the right one the overview.
    page.goto(f"{served}/")
    assert "/login" in page.url
    page.fill("#api_key", "nhm_wrong_key_0123456789")
    page.click("button[type=submit]")
    assert "That API key was not accepted" in page.inner_text("#login-error")
    shot("login")
    errors.clear()  # the browser reports the refused sign-in's 401 as a console error
    page.fill("#api_key", TENANT_A_KEY)
    page.click("button[type=submit]")
    page.wait_for_selector(".tiles")
    cookie = next(c for c in browser.cookies() if c["name"] == "nhm_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TENANT_A_KEY not in cookie["value"]

    # The counts match the seeded tenant.
    counts = {key: int(page.inner_text(f'.tile[data-status="{key}"] .tile-count'))
              for key in ("healthy", "at-risk", "flagged", "blocked")}
    assert counts == {"healthy": 3, "at-risk": 1, "flagged": 1, "blocked": 1}
    assert "Monitor closely." in page.inner_text('.tile[data-status="at-risk"]')
    shot("overview")

    # Numbers, filtered to At Risk with the status list (the form applies itself on change).
    page.click("nav >> text=Numbers")
    page.wait_for_selector("#numbers-table")
    assert page.locator("#numbers-table tbody tr").count() == 6
    shot("numbers")
    with page.expect_navigation():
        page.select_option("#filter-status", "at-risk")
    assert "status=at-risk" in page.url
    listed = page.locator("#numbers-table tbody tr[data-phone]")
    assert listed.count() == 1 and listed.first.get_attribute("data-phone") == AT_RISK
    shot("numbers-at-risk")

    # Open it: its factors and its health chart.
    page.click(f"#numbers-table a:has-text('{AT_RISK}')")
    page.wait_for_selector("#factors")
    assert page.locator("#factors tbody tr").count() >= 5
    assert "Improve list quality, use Local Presence." in page.inner_text("#factors")
    assert page.locator("#health-chart svg rect.band").count() >= 1
    assert page.locator("#health-chart svg path.score-line").count() == 1
    assert "Hiya" in page.inner_text("#labels")
    shot("number-at-risk")

    # The Flagged number's dispute: mark it done with the engine's reference.
    page.goto(f"{served}/numbers/{FLAGGED}")
    dispute = page.locator("#case tr[data-kind='Dispute']").first
    dispute.locator("input[name=reference]").fill("FO-77812")
    dispute.locator("select[name=outcome]").select_option("cleared")
    with page.expect_navigation():
        dispute.locator("button[type=submit]").click()
    assert "Task marked done with reference FO-77812." in page.inner_text(".flash-ok")
    assert "Done (Cleared)" in page.inner_text("#case tr[data-kind='Dispute']")
    case = stack.client().get_case(seeded.flagged_case)
    task = next(t for t in case.tasks if t.id == seeded.dispute_task)
    assert (task.status, task.reference) == (rem.TASK_STATUS_DONE, "FO-77812")
    shot("number-flagged")

    page.click("nav >> text=Remediation")
    page.wait_for_selector("#overdue")
    assert FLAGGED in page.inner_text("#overdue")
    shot("remediation")

    # The weekly report, printable, and its CSV download.
    page.click("nav >> text=Weekly report")
    page.wait_for_selector("#weekly-counts")
    shot("weekly")
    page.emulate_media(media="print")
    assert not page.is_visible("header.top")
    page.emulate_media(media="screen")
    with page.expect_download() as download_info:
        page.click("#weekly-csv")
    download = download_info.value
    target = tmp_path / download.suggested_filename
    download.save_as(str(target))
    assert target.name.startswith("nhm-weekly-") and target.suffix == ".csv"
    shutil.copy(target, SCREENSHOTS / f"{backend}-weekly.csv")
    table = list(csv.reader(io.StringIO(target.read_text())))
    assert {r[1]: int(r[2]) for r in table if r[0] == "status"} == {
        "Healthy": 3, "At Risk": 1, "Flagged": 1, "Blocked": 1, "Total": 6}

    page.click("text=Sign out")
    page.wait_for_selector("#api_key")
    assert "You are signed out." in page.inner_text("main")
    page.goto(f"{served}/numbers")
    assert "/login" in page.url
    assert not errors, f"console errors: {errors}"
