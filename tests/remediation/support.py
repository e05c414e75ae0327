"""Test doubles for remediation's upstreams, served over real gRPC: a registry (numbers, lifecycle transitions,
WatchChanges) and scoring (WatchHealth, GetCallActivity, GetWeeklyReport); a webhook receiver and an SMTP server.

The fakes keep to the contracts the real services publish (feeds with revisions, snapshots, heartbeats;
idempotent request ids; the registry's lifecycle rules) so the remediation service is tested as it will run.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.remediation.v1 import remediation_pb2 as rpb
from nhm.remediation.v1 import remediation_pb2_grpc
from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm.type.v1 import types_pb2 as t
from nhm_platform.auth import hash_key
from nhm_platform.protoconv import to_duration, to_timestamp
from nhm_testing.keys import SERVICE_KEY, auth

S = t.LifecycleState
ALLOWED = {
    S.LIFECYCLE_STATE_ACTIVE: {S.LIFECYCLE_STATE_QUARANTINED, S.LIFECYCLE_STATE_RESTING, S.LIFECYCLE_STATE_WARMING,
                               S.LIFECYCLE_STATE_RETIRED},
    S.LIFECYCLE_STATE_WARMING: {S.LIFECYCLE_STATE_ACTIVE, S.LIFECYCLE_STATE_QUARANTINED, S.LIFECYCLE_STATE_RESTING,
                                S.LIFECYCLE_STATE_RETIRED},
    S.LIFECYCLE_STATE_QUARANTINED: {S.LIFECYCLE_STATE_ACTIVE, S.LIFECYCLE_STATE_RESTING, S.LIFECYCLE_STATE_WARMING,
                                    S.LIFECYCLE_STATE_RETIRED},
    S.LIFECYCLE_STATE_RESTING: {S.LIFECYCLE_STATE_RESTING, S.LIFECYCLE_STATE_WARMING, S.LIFECYCLE_STATE_RETIRED},
    S.LIFECYCLE_STATE_RETIRED: set(),
}


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata()}


class _Feed:
    """An append-only list of responses with revisions, served as a Watch stream."""

    def __init__(self, heartbeat: Callable[[int], Any]) -> None:
        self.items: list[Any] = []
        self.cond = threading.Condition()
        self._heartbeat = heartbeat
        self.opened: list[tuple[int, bool]] = []

    def append(self, response: Any) -> int:
        with self.cond:
            response.revision = len(self.items) + 1
            self.items.append(response)
            self.cond.notify_all()
            return response.revision

    def serve(self, after: int, snapshot: Callable[[], list[Any]] | None,
              context: grpc.ServicerContext) -> Iterator[Any]:
        self.opened.append((after, snapshot is not None))
        if snapshot is not None:
            with self.cond:  # the state and its revision, taken together
                head = len(self.items)
                items = snapshot()
            yield from items
            yield self._heartbeat(head)
            after = head
        cursor = after
        while context.is_active():
            with self.cond:
                if len(self.items) <= cursor:
                    self.cond.wait(0.2)
                batch = self.items[cursor:]
            if batch:
                yield from batch
                cursor += len(batch)
            else:
                yield self._heartbeat(cursor)


class FakeRegistry(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.numbers: dict[tuple[str, str], registry_pb2.Number] = {}
        self.tenants: dict[str, registry_pb2.Tenant] = {}
        self.campaigns: dict[tuple[str, str], registry_pb2.Campaign] = {}
        self.keys: list[registry_pb2.WatchChangesResponse] = []
        self.feed = _Feed(lambda rev: registry_pb2.WatchChangesResponse(revision=rev, heartbeat=True))
        self.requests: dict[tuple[str, str], bytes] = {}
        self.calls: list[tuple[str, str, str, int, str]] = []   # (tenant, phone, method, target, request id)
        # Every TransitionNumber/RetireNumber received, replays of a request id included: (phone, request id).
        self.invocations: list[tuple[str, str]] = []
        self.metadata: list[dict[str, str]] = []
        self.fail_next: list[grpc.StatusCode] = []
        self.lock = threading.Lock()

    # --- test helpers ---

    def add_tenant(self, tenant_id: str, **profile: Any) -> None:
        tenant = registry_pb2.Tenant(id=tenant_id, display_name=tenant_id.title(),
                                     business_profile=registry_pb2.BusinessProfile(**profile))
        self.tenants[tenant_id] = tenant
        self.feed.append(registry_pb2.WatchChangesResponse(kind=t.CHANGE_KIND_CREATED, tenant_id=tenant_id,
                                                           tenant=tenant))

    def add_number(self, tenant_id: str, phone: str, *, campaigns: tuple[str, ...] = (),
                   state: int = S.LIFECYCLE_STATE_ACTIVE, attestation: int = t.ATTESTATION_A,
                   registrations: tuple[tuple[int, int], ...] = ()) -> None:
        number = registry_pb2.Number(
            phone_number=phone, tenant_id=tenant_id, state=state, attestation=attestation, provider="Telnyx",
            display_name="ACME SALES", campaign_ids=list(campaigns),
            registrations=[registry_pb2.CarrierRegistration(program=p, status=s) for p, s in registrations])
        self.numbers[(tenant_id, phone)] = number
        for campaign in campaigns:  # a campaign exists before numbers are assigned to it, as in the registry
            if (tenant_id, campaign) not in self.campaigns:
                self.add_campaign(tenant_id, campaign)
        self.feed.append(registry_pb2.WatchChangesResponse(kind=t.CHANGE_KIND_CREATED, tenant_id=tenant_id,
                                                           number=number))
        for campaign in campaigns:
            self.feed.append(registry_pb2.WatchChangesResponse(
                kind=t.CHANGE_KIND_CREATED, tenant_id=tenant_id,
                assignment=registry_pb2.Assignment(tenant_id=tenant_id, campaign_id=campaign, phone_number=phone)))

    def add_campaign(self, tenant_id: str, campaign_id: str) -> None:
        campaign = registry_pb2.Campaign(id=campaign_id, tenant_id=tenant_id, name=campaign_id)
        self.campaigns[(tenant_id, campaign_id)] = campaign
        self.feed.append(registry_pb2.WatchChangesResponse(kind=t.CHANGE_KIND_CREATED, tenant_id=tenant_id,
                                                           campaign=campaign))

    def add_api_key(self, tenant_id: str, key_id: str, secret: str, role: int) -> None:
        key = registry_pb2.ApiKey(id=key_id, tenant_id=tenant_id, name=key_id, role=role)
        change = registry_pb2.WatchChangesResponse(
            kind=t.CHANGE_KIND_CREATED, tenant_id=tenant_id,
            api_key=registry_pb2.ApiKeyCredential(api_key=key, secret_sha256=hash_key(secret)))
        with self.feed.cond:  # a snapshot taken meanwhile sees the key either in its items or after its head
            self.keys.append(change)
            self.feed.append(change)

    def set_state(self, tenant_id: str, phone: str, state: int) -> None:
        with self.lock:
            number = self.numbers[(tenant_id, phone)]
            number.state = state
            self.feed.append(registry_pb2.WatchChangesResponse(kind=t.CHANGE_KIND_UPDATED, tenant_id=tenant_id,
                                                               number=number))

    def state(self, tenant_id: str, phone: str) -> int:
        return self.numbers[(tenant_id, phone)].state

    def transitions(self, phone: str) -> list[str]:
        return [t.LifecycleState.Name(target).removeprefix("LIFECYCLE_STATE_")
                for _, p, _, target, _ in self.calls if p == phone]

    # --- RPCs ---

    def _tenant(self, context: grpc.ServicerContext) -> str:
        md = _metadata(context)
        self.metadata.append(md)
        if md.get("authorization") != f"Bearer {SERVICE_KEY}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "service key expected")
        tenant = md.get("x-nhm-tenant-id", "")
        if not tenant:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "x-nhm-tenant-id expected")
        return tenant

    def _maybe_fail(self, context: grpc.ServicerContext) -> None:
        if self.fail_next:
            context.abort(self.fail_next.pop(0), "injected failure")

    def TransitionNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        tenant = self._tenant(context)
        self.invocations.append((request.phone_number, request.request_id))
        self._maybe_fail(context)
        with self.lock:
            key = (tenant, request.request_id)
            if request.request_id and key in self.requests:
                return registry_pb2.TransitionNumberResponse.FromString(self.requests[key])
            number = self.numbers.get((tenant, request.phone_number))
            if number is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "number not found")
            if request.target_state not in ALLOWED[number.state]:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "transition not allowed")
            if request.target_state == S.LIFECYCLE_STATE_RESTING and not request.HasField("rest_until"):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "rest_until required")
            self.calls.append((tenant, request.phone_number, "transition", request.target_state, request.request_id))
            number.state = request.target_state
            number.ClearField("rest_until")
            number.ClearField("warmup_plan")
            if request.target_state == S.LIFECYCLE_STATE_RESTING:
                number.rest_until.CopyFrom(request.rest_until)
            if request.target_state == S.LIFECYCLE_STATE_WARMING:
                number.warmup_plan.CopyFrom(request.warmup_plan)
                number.warmup_start_time.CopyFrom(to_timestamp(self.clock.now()))
            response = registry_pb2.TransitionNumberResponse(number=number)
            self.requests[key] = response.SerializeToString()
            self.feed.append(registry_pb2.WatchChangesResponse(kind=t.CHANGE_KIND_UPDATED, tenant_id=tenant,
                                                               number=number))
            return response

    def RetireNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        tenant = self._tenant(context)
        self.invocations.append((request.phone_number, request.request_id))
        self._maybe_fail(context)
        with self.lock:
            key = (tenant, request.request_id)
            if request.request_id and key in self.requests:
                return registry_pb2.RetireNumberResponse.FromString(self.requests[key])
            number = self.numbers[(tenant, request.phone_number)]
            if number.state == S.LIFECYCLE_STATE_RETIRED:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "already retired")
            self.calls.append((tenant, request.phone_number, "retire", S.LIFECYCLE_STATE_RETIRED, request.request_id))
            number.state = S.LIFECYCLE_STATE_RETIRED
            response = registry_pb2.RetireNumberResponse(number=number)
            self.requests[key] = response.SerializeToString()
            self.feed.append(registry_pb2.WatchChangesResponse(kind=t.CHANGE_KIND_UPDATED, tenant_id=tenant,
                                                               number=number))
            return response

    def GetNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        tenant = self._tenant(context)
        number = self.numbers.get((tenant, request.phone_number))
        if number is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "number not found")
        return registry_pb2.GetNumberResponse(number=number)

    def WatchChanges(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        yield from self.feed.serve(request.after_revision, self._snapshot if request.snapshot else None, context)

    def _snapshot(self) -> list[Any]:
        created = t.CHANGE_KIND_CREATED
        snapshot = [registry_pb2.WatchChangesResponse(kind=created, tenant_id=tid, tenant=tenant)
                    for tid, tenant in self.tenants.items()]
        snapshot += [registry_pb2.WatchChangesResponse(kind=created, tenant_id=tid, campaign=c)
                     for (tid, _), c in self.campaigns.items()]
        snapshot += [registry_pb2.WatchChangesResponse(kind=created, tenant_id=tid, number=n)
                     for (tid, _), n in self.numbers.items()]
        snapshot += [registry_pb2.WatchChangesResponse(
            kind=created, tenant_id=tid, assignment=registry_pb2.Assignment(tenant_id=tid, campaign_id=c,
                                                                            phone_number=p))
            for (tid, p), n in self.numbers.items() for c in n.campaign_ids]
        snapshot += [registry_pb2.WatchChangesResponse(kind=created, tenant_id=k.tenant_id, api_key=k.api_key)
                     for k in self.keys]
        return snapshot


LABELS = {"spam": (t.REPUTATION_LABEL_SPAM, "Spam Likely", t.HEALTH_STATUS_FLAGGED),
          "scam": (t.REPUTATION_LABEL_SCAM, "Scam Likely", t.HEALTH_STATUS_FLAGGED),
          "minor": (t.REPUTATION_LABEL_MINOR, "Potential Spam", t.HEALTH_STATUS_AT_RISK),
          "blocked": (t.REPUTATION_LABEL_BLOCKED, "Blocked", t.HEALTH_STATUS_BLOCKED)}


class FakeScoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.feed = _Feed(lambda rev: scoring_pb2.WatchHealthResponse(revision=rev, heartbeat=True))
        self.health: dict[tuple[str, str], scoring_pb2.NumberHealth] = {}
        self.activity: dict[str, scoring_pb2.GetCallActivityResponse] = {}
        self.activity_unimplemented = False
        self.metadata: list[dict[str, str]] = []

    def set_health(self, tenant_id: str, phone: str, labels: dict[int, str] | None = None,
                   status: int | None = None) -> int:
        """Publish a number's health: labels maps a ReputationSource to "spam", "minor", ... (none: Healthy)."""
        labels = labels or {}
        sources = []
        worst = t.HEALTH_STATUS_HEALTHY
        for source, name in labels.items():
            label, raw, source_status = LABELS[name]
            sources.append(scoring_pb2.SourceHealth(source=source, label=label, raw_label=raw, status=source_status,
                                                    observe_time=to_timestamp(self.clock.now()), weight=1.0))
            worst = max(worst, source_status)
        status = worst if status is None else status
        previous = self.health.get((tenant_id, phone))
        health = scoring_pb2.NumberHealth(phone_number=phone, tenant_id=tenant_id, status=status, sources=sources,
                                          status_time=to_timestamp(self.clock.now()),
                                          score=100 - 25 * (status - 1))
        self.health[(tenant_id, phone)] = health
        response = scoring_pb2.WatchHealthResponse(kind=t.CHANGE_KIND_UPDATED if previous else t.CHANGE_KIND_CREATED,
                                                   change_time=to_timestamp(self.clock.now()), health=health)
        if previous is None or previous.status != status:
            response.transition.CopyFrom(scoring_pb2.HealthTransition(
                phone_number=phone, from_status=previous.status if previous else t.HEALTH_STATUS_HEALTHY,
                to_status=status, transition_time=to_timestamp(self.clock.now()),
                sources=list(labels)))
        return self.feed.append(response)

    def set_activity(self, phone: str, days: list[tuple[str, int, int, float, int]],
                     samples: list[datetime]) -> None:
        """days: (date, outbound, answered, talk seconds, complaints), oldest first."""
        self.activity[phone] = scoring_pb2.GetCallActivityResponse(
            phone_number=phone,
            days=[scoring_pb2.DailyActivity(date=d, outbound_calls=o, answered_calls=a,
                                            talk_time=to_duration(_seconds(s)), complaints=c)
                  for d, o, a, s, c in days],
            sample_call_times=[to_timestamp(s) for s in samples])

    def WatchHealth(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        def snapshot() -> list[Any]:
            return [scoring_pb2.WatchHealthResponse(kind=t.CHANGE_KIND_CREATED, health=h) for h in self.health.values()]
        yield from self.feed.serve(request.after_revision, snapshot if request.snapshot else None, context)

    def GetCallActivity(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.metadata.append(_metadata(context))
        if self.activity_unimplemented:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "not yet")
        return self.activity.get(request.phone_number, scoring_pb2.GetCallActivityResponse(
            phone_number=request.phone_number))

    def GetWeeklyReport(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.metadata.append(_metadata(context))
        tenant = _metadata(context).get("x-nhm-tenant-id", "")
        counts = scoring_pb2.StatusCounts(healthy=8, at_risk=1, flagged=1, total=10)
        return scoring_pb2.GetWeeklyReportResponse(report=scoring_pb2.WeeklyReport(
            tenant_id=tenant, counts_now=counts, period_end=request.period_end, outbound_calls=1234))


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


@contextlib.contextmanager
def grpc_fake(add: Callable[[grpc.Server], None]) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


# --- Alert receivers ---------------------------------------------------------------------------------------------

class WebhookReceiver:
    """http.server on 127.0.0.1:0 that records every POST; it can fail the first attempt of each alert."""

    def __init__(self, fail_first: bool = True) -> None:
        self.fail_first = fail_first
        self.attempts: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k: v for k, v in self.headers.items()}
                key = headers.get("Idempotency-Key", "")
                with receiver._lock:
                    receiver.attempts.append((headers, body))
                    fail = receiver.fail_first and key not in receiver._seen
                    receiver._seen.add(key)
                    if not fail:
                        receiver.accepted.append((headers, body))
                self.send_response(503 if fail else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/nhm"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.accepted]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SmtpServer:
    """A tiny SMTP server (stdlib sockets) that accepts every message and keeps it."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")

        def say(line: str) -> None:
            conn.sendall(line.encode() + b"\r\n")

        say("220 localhost test SMTP")
        sender, recipients = "", []
        try:
            while True:
                raw = reader.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    say("250 localhost")
                elif verb == "MAIL":
                    sender = line.split(":", 1)[1].strip()
                    say("250 OK")
                elif verb == "RCPT":
                    recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                    say("250 OK")
                elif verb == "DATA":
                    say("354 end with .")
                    data = []
                    while True:
                        part = reader.readline().decode()
                        if part.rstrip("\r\n") == ".":
                            break
                        data.append(part)
                    self.messages.append((sender, recipients, "".join(data)))
                    sender, recipients = "", []
                    say("250 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("250 OK")
        finally:
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._sock.close()


# --- Helpers for talking to the remediation service ---------------------------------------------------------------

def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or predicate}: last value {last!r}")


class Remediation:
    """A stub bound to one tenant's key."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self.stub = remediation_pb2_grpc.RemediationServiceStub(channel)
        self.md = auth(key)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.stub, name)
        return lambda request: method(request, metadata=self.md, timeout=10)

    def cases(self, **filters: Any) -> list[rpb.Case]:
        return list(self.ListCases(rpb.ListCasesRequest(**filters)).cases)

    def case_for(self, phone: str) -> rpb.Case | None:
        found = self.cases(phone_number=phone)
        return found[0] if found else None

    def wait_case(self, phone: str, predicate: Callable[[rpb.Case], bool], what: str = "",
                  timeout: float = 30.0) -> rpb.Case:
        seen: list[rpb.Case | None] = [None]

        def check() -> rpb.Case | None:
            case = seen[0] = self.case_for(phone)
            return case if case is not None and predicate(case) else None
        try:
            return wait_for(check, timeout, what=what or "case condition")
        except AssertionError:
            case = seen[0]
            events = [f"{e.event_type}: {e.detail}" for e in self.events(case.id)] if case else []
            raise AssertionError(f"timed out waiting for {what}; case: {case}; events: {events}") from None

    def events(self, case_id: str) -> list[rpb.CaseEvent]:
        return list(self.ListCaseEvents(rpb.ListCaseEventsRequest(case_id=case_id, page_size=1000)).events)


# A tenant of its own (its key reaches the service through the registry's feed too), so tests never see it.
TENANT_SENTINEL, SENTINEL_KEY, SENTINEL = "initech", "nhm_test_initech_key_0123456789", "+13127860999"


def sync_registry(handle: Any, registry: FakeRegistry) -> None:
    """Wait until the service has applied the registry's feed as it stands: a sentinel number appended last is
    known once OpenCase finds it (its case is cancelled again at once)."""
    if (TENANT_SENTINEL, SENTINEL) not in registry.numbers:
        registry.add_api_key(TENANT_SENTINEL, "initech-key", SENTINEL_KEY, registry_pb2.API_KEY_ROLE_TENANT)
        registry.add_number(TENANT_SENTINEL, SENTINEL)
    with grpc.insecure_channel(handle.address) as channel:
        api = Remediation(channel, SENTINEL_KEY)

        def opened() -> rpb.OpenCaseResponse | None:
            try:
                return api.OpenCase(rpb.OpenCaseRequest(phone_number=SENTINEL, kind=rpb.CASE_KIND_WATCH))
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED):
                    return None
                raise

        response = wait_for(opened, what="registry feed applied")
        if response.case.state == rpb.CASE_STATE_OPEN:
            api.CancelCase(rpb.CancelCaseRequest(case_id=response.case.id, reason="feed sync probe"))


def wait_event(api: Remediation, case_id: str, predicate: Callable[[rpb.CaseEvent], bool], what: str = "",
               timeout: float = 30.0) -> rpb.CaseEvent:
    """Wait until the case's audit trail has an event matching predicate (e.g. the service saw a health change)."""
    def check() -> rpb.CaseEvent | None:
        return next((e for e in api.events(case_id) if predicate(e)), None)
    return wait_for(check, timeout, what=what or "case event")


def saw_health(api: Remediation, case_id: str, status: str, times: int = 1) -> list[rpb.CaseEvent]:
    """Wait until the service recorded ``times`` health changes to ``status`` ("Healthy", "Flagged", ...)."""
    def check() -> list[rpb.CaseEvent] | None:
        seen = [e for e in api.events(case_id) if e.event_type == "health.changed" and f"-> {status}" in e.detail]
        return seen if len(seen) >= times else None
    return wait_for(check, what=f"health {status} seen {times} time(s)")


def saw_transition(api: Remediation, case_id: str, state: str, times: int = 1) -> list[rpb.CaseEvent]:
    """Wait until the case recorded ``times`` registry confirmations that the number is in ``state``."""
    def check() -> list[rpb.CaseEvent] | None:
        seen = [e for e in api.events(case_id)
                if e.event_type == "number.transitioned" and e.detail == f"registry: number is {state}"]
        return seen if len(seen) >= times else None
    return wait_for(check, what=f"registry confirmed {state} {times} time(s)")


def tasks_of(case: rpb.Case, kind: int) -> list[rpb.Task]:
    return [task for task in case.tasks if task.kind == kind]
