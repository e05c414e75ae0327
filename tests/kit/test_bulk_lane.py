"""The bulk lane (bulk_lane=true): a service's bulk and ingest calls served by a niced process of their own,
through the real registry process and the SDK, on both databases."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from nhm_sdk import Client, ClientConfig, InvalidArgumentError, ResourceExhaustedError, UnavailableError
from nhm_testing.keys import TENANT_A_KEY, TENANT_B_KEY
from nhm_testing.processes import ServiceProcess

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: the parent's pid
                found.append(int(entry.name))
    return found


def niceness(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[16])  # field 19


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening_on_a_unix_socket(pid: int) -> bool:
    """The process holds a listening Unix socket (the lane serves once it has bound one)."""
    inodes = set()
    for fd in (Path("/proc") / str(pid) / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and fields[3] == "00010000" and fields[7].endswith("lane.sock"):
            return True
    return False


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, UnavailableError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.1)


@pytest.fixture
def registry(database_url: Callable[[Any], str]) -> Iterator[ServiceProcess]:
    from nhm_registry.app import SPEC

    process = ServiceProcess("registry", database_url=database_url(SPEC), bulk_lane="true",
                             tenant_bulk_rate=0.01, tenant_bulk_burst=3)
    with process:
        yield process


def client_of(service: ServiceProcess, key: str) -> Client:
    return Client(ClientConfig(target=service.address, api_key=key))


def test_bulk_calls_go_to_a_niced_lane_and_answer_as_the_service_does(registry: ServiceProcess) -> None:
    assert registry.proc is not None
    [lane] = children(registry.proc.pid)
    assert niceness(lane) == 19
    with client_of(registry, TENANT_A_KEY) as acme:
        imported = acme.import_numbers(["+14152220123", "+14152220124"])
        assert [n.phone_number for n in imported] == ["+14152220123", "+14152220124"]
        assert acme.get_number("+14152220124").phone_number == "+14152220124"  # the serving process sees them
        with pytest.raises(InvalidArgumentError) as refused:  # parsed and checked in the lane, details intact
            acme.import_numbers(["+14152220125", "+1415"])
        assert [v.field for v in refused.value.field_violations] == ["numbers[1].phone_number"]
        assert refused.value.request_id  # the serving process's request id, on both processes' log lines
        acme.import_numbers(["+14152220126"])  # the third and last call of the burst
        with pytest.raises(ResourceExhaustedError) as limited:  # the serving process limits the tenant
            acme.import_numbers(["+14152220127"])
        assert limited.value.retry_after is not None and limited.value.retry_after.total_seconds() > 0
        assert [n.phone_number for n in acme.list_numbers()] == ["+14152220123", "+14152220124", "+14152220126"]


def test_a_killed_lane_is_started_again_and_the_serving_process_stops_it(registry: ServiceProcess) -> None:
    assert registry.proc is not None
    [lane] = children(registry.proc.pid)
    with client_of(registry, TENANT_A_KEY) as acme, client_of(registry, TENANT_B_KEY) as globex:
        for i in range(3):
            globex.import_numbers([f"+1212222018{i}"])  # globex spends its burst
        os.kill(lane, signal.SIGKILL)
        with pytest.raises(ResourceExhaustedError):  # refused by the serving process, lane or no lane
            globex.import_numbers(["+12122220188"])
        assert list(acme.list_numbers()) == []  # the serving process answers the other calls meanwhile
        restarted = eventually(lambda: [pid for pid in children(registry.proc.pid) if pid != lane])
        eventually(lambda: listening_on_a_unix_socket(restarted[0]))
        time.sleep(1.5)  # the serving process's channel to the lane tries again within 1 s
        assert acme.import_numbers(["+14152220123"])[0].phone_number == "+14152220123"
    registry.proc.send_signal(signal.SIGTERM)
    assert registry.proc.wait(30) == 0
    assert eventually(lambda: not alive(restarted[0]), timeout=10)


def test_the_lane_ends_with_a_serving_process_killed_hard(registry: ServiceProcess) -> None:
    assert registry.proc is not None
    [lane] = children(registry.proc.pid)
    registry.kill()
    assert eventually(lambda: not alive(lane), timeout=15)


def test_a_client_stream_goes_through_the_lane_message_by_message(database_url: Callable[[Any], str]) -> None:
    from nhm.scoring.v1 import scoring_pb2 as spb
    from nhm_scoring.app import SPEC

    now = Timestamp()
    now.GetCurrentTime()
    unknown = [spb.CallOutcome(event_id=f"call-{i}", phone_number="+14152229999", remote_number="+12125550100",
                               direction=spb.CALL_DIRECTION_OUTBOUND, start_time=now, sip_code=480,
                               disposition=spb.CALL_DISPOSITION_NO_ANSWER) for i in range(3)]
    scoring = ServiceProcess("scoring", database_url=database_url(SPEC), bulk_lane="true", follow_registry="false")
    with scoring, client_of(scoring, TENANT_A_KEY) as acme:
        assert scoring.proc is not None and len(children(scoring.proc.pid)) == 1
        summary = acme.stream_call_outcomes([unknown[:2], [], unknown[2:]])
    assert (summary.accepted, summary.rejected) == (0, 3)
    assert [(r.index, r.field) for r in summary.rejections] == [
        (0, "requests[0].outcomes[0].phone_number"), (1, "requests[0].outcomes[1].phone_number"),
        (2, "requests[2].outcomes[0].phone_number")]


def test_the_item_budget_counts_a_forwarded_call_by_its_entries(database_url: Callable[[Any], str]) -> None:
    """The serving process does not parse what it forwards, yet weighs it: 100 numbers draw 100 items."""
    from nhm_registry.app import SPEC

    registry = ServiceProcess("registry", database_url=database_url(SPEC), bulk_lane="true",
                              tenant_bulk_item_rate=0.01, tenant_bulk_item_burst=150)
    with registry, client_of(registry, TENANT_A_KEY) as acme:
        for block in range(2):  # 150 items, then 50: the second import is admitted and overdraws the budget
            acme.import_numbers([f"+1415222{block}{n:03d}" for n in range(100)])
        with pytest.raises(ResourceExhaustedError) as limited:
            acme.import_numbers(["+14152229999"])
        assert "items a second" in str(limited.value)
