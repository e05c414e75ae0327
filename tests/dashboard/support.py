"""Support for the dashboard tests: the running services, the seeded tenant, waiting on feeds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from nhm_dashboard.settings import DashboardSettings
from nhm_platform.clock import FakeClock
from nhm_sdk import Client, ClientConfig, NhmError, NothingEligibleError
from nhm_testing.keys import TENANT_A_KEY, TENANT_B_KEY
from nhm_testing.services import ServiceHandle

T = TypeVar("T")

FAST_FEEDS = {"watch_poll_interval": 0.05, "watch_heartbeat_interval": 0.2}


@dataclass
class Stack:
    registry: ServiceHandle
    scoring: ServiceHandle
    allocation: ServiceHandle
    remediation: ServiceHandle
    clock: FakeClock
    clients: list[Client] = field(default_factory=list)

    def targets(self) -> dict[str, str]:
        return {f"{name}_target": getattr(self, name).address
                for name in ("registry", "scoring", "allocation", "remediation")}

    def client(self, key: str = TENANT_A_KEY) -> Client:
        client = Client(ClientConfig(api_key=key, **self.targets()))
        self.clients.append(client)
        return client


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll until probe() returns something truthy (feeds between services take a moment)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except NhmError as error:
            last_error = error
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


# --- the seeded tenant ---------------------------------------------------------------------------------------

# Valid geographic numbers (not 555-01xx): New York 212, Miami 305, San Francisco 415, Chicago 312.
HEALTHY = ["+12127363101", "+12127363102", "+13056740103"]
AT_RISK = "+14158670104"
FLAGGED = "+14158670105"
BLOCKED = "+13127860106"
GLOBEX_NUMBER = "+12127363999"


@dataclass
class Seed:
    east: str  # campaign with every healthy number, and the blocked one
    west: str  # campaign of the At Risk and Flagged numbers only: short of eligible numbers once they are labelled
    calls: dict[str, int]  # calls allocated today per number
    flagged_case: str
    dispute_task: str
    overdue_task: str


def _allocate(client: Client, campaign: str, prospect: str) -> str:
    def once() -> str | None:
        try:
            return client.allocate_number(campaign, prospect).caller_id
        except NothingEligibleError:
            return None  # the allocation service has not seen the numbers yet
    return wait_for(once, f"an allocation for {prospect}")


def seed(stack: Stack) -> Seed:
    """Tenant acme: 3 Healthy, 1 At Risk (Hiya: Potential Spam), 1 Flagged (First Orion: Spam Likely),
    1 Blocked (Nomorobo). Calls are placed before the labels arrive, as in life; tenant globex has one number."""
    acme = stack.client()
    window = {"calling_window_start": "00:00", "calling_window_end": "23:59"}
    east = acme.create_campaign("East", policy=window).id
    west = acme.create_campaign("West", policy=window).id
    for phone in [*HEALTHY, BLOCKED]:
        acme.create_number(phone, campaign_ids=[east], inbound_enabled=True)
    for phone in (AT_RISK, FLAGGED):
        acme.create_number(phone, campaign_ids=[west], inbound_enabled=True)
    globex = stack.client(TENANT_B_KEY)
    globex.create_number(GLOBEX_NUMBER, campaign_ids=[globex.create_campaign("Globex").id])
    wait_for(lambda: acme.get_capacity_plan(east).total.numbers_total == 4 and
             acme.get_capacity_plan(west).total.numbers_total == 2, "the allocation service to see the numbers")
    # Three quiet days, so each number's chart shows a Healthy stretch before today's labels.
    stack.clock.advance(timedelta(days=3))

    calls: dict[str, int] = {}
    outcomes = []
    prospects = [f"+1212949{i:04d}" for i in range(6)] + [f"+1415949{i:04d}" for i in range(4)] + \
        [f"+1312949{i:04d}" for i in range(2)]
    for i, prospect in enumerate(prospects):
        campaign = west if prospect.startswith("+1415") else east
        caller = _allocate(acme, campaign, prospect)
        calls[caller] = calls.get(caller, 0) + 1
        answered = caller in HEALTHY
        outcomes.append({"phone_number": caller, "remote_number": prospect, "direction": "OUTBOUND",
                         "start_time": stack.clock.now() - timedelta(minutes=30 - i), "answered": answered,
                         "talk_duration": 95 if answered else 0, "sip_code": 200 if answered else 480,
                         "disposition": "ANSWERED" if answered else "NO_ANSWER", "campaign_id": campaign})
    acme.report_call_outcomes(outcomes)
    now = stack.clock.now()
    acme.report_reputation_observations([
        {"phone_number": AT_RISK, "source": "HIYA", "label": "MINOR", "raw_label": "Potential Spam",
         "observe_time": now},
        {"phone_number": FLAGGED, "source": "FIRST_ORION", "label": "SPAM", "raw_label": "Spam Likely",
         "observe_time": now},
        {"phone_number": BLOCKED, "source": "NOMOROBO", "label": "BLOCKED", "raw_label": "Blocked",
         "observe_time": now},
    ])
    wait_for(lambda: acme.list_health(page_size=1).first_response.counts.flagged == 1 and
             acme.list_health(page_size=1).first_response.counts.blocked == 1, "the labels to be scored")

    def flagged_case() -> Any:
        cases = acme.list_cases(phone_number=FLAGGED, states="OPEN").to_list()
        return cases[0] if cases and any(t.kind == 3 for t in cases[0].tasks) else None

    case = wait_for(flagged_case, "the Flagged number's remediation case")
    dispute = next(t for t in case.tasks if t.kind == 3)  # TASK_KIND_DISPUTE
    registration = next(t for t in case.tasks if t.kind == 2)  # TASK_KIND_REGISTRATION
    acme.update_task(case.id, registration.id, due_time=now - timedelta(hours=2))
    wait_for(lambda: acme.list_tasks(overdue=True).to_list(), "the overdue task")
    return Seed(east, west, calls, case.id, dispute.id, registration.id)


# --- the dashboard -----------------------------------------------------------------------------------------------

def dashboard_settings(stack: Stack, **overrides: Any) -> DashboardSettings:
    values: dict[str, Any] = {"session_secret": "test-secret", "page_size": 50, "log_format": "json",
                              **stack.targets(), **overrides}
    return DashboardSettings(**values)
