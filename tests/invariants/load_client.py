"""A load client process: ``python -m invariants.load_client`` reads a plan (JSON) on stdin, prints outcomes.

Each job is one call id, sent `copies` times at once (to different allocation processes when there are
several: retries with the same idempotency key, racing each other), possibly also for another prospect at the
same time (a reused call id), and possibly released afterwards (twice at once, a retried release). Every send
is recorded with its outcome (the caller ID, or the status code's name), how long it took and its deadline.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm_sdk import Client, NhmError


def run(plan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    channels = [grpc.insecure_channel(target) for target in plan["targets"]]
    stubs = [allocation_pb2_grpc.AllocationServiceStub(channel) for channel in channels]
    timeout = float(plan["timeout"])
    # With "sdk", calls go through the SDK's Client instead (its retry policy: UNAVAILABLE, same call id).
    sdk: dict[str, list[Client]] = {}
    if plan.get("sdk"):
        keys = {job["key"] for job in plan["jobs"]}
        sdk = {key: [Client(target=target, api_key=key) for target in plan["targets"]] for key in keys}
    records: list[dict[str, Any]] = []
    releases: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send(job: dict[str, Any], target: int, destination: str) -> None:
        request = allocation_pb2.AllocateNumberRequest(campaign_id=job["campaign"], destination=destination,
                                                       call_id=job["call_id"])
        began = time.monotonic()
        try:
            if sdk:
                response = sdk[job["key"]][target].allocate_number(job["campaign"], destination,
                                                                   call_id=job["call_id"], timeout=timeout)
            else:
                response = stubs[target].AllocateNumber(request, metadata=_auth(job), timeout=timeout)
            outcome, staleness = response.caller_id, response.eligibility_staleness.ToTimedelta().total_seconds()
        except grpc.RpcError as error:
            outcome, staleness = error.code().name, None
        except NhmError as error:
            outcome, staleness = error.code.name, None
        with lock:
            records.append({**job, "destination": destination, "target": target, "outcome": outcome,
                            "began": began, "elapsed": time.monotonic() - began, "timeout": timeout,
                            "staleness": staleness})

    def release(job: dict[str, Any], target: int) -> None:
        began = time.monotonic()
        try:
            if sdk:
                released = sdk[job["key"]][target].release_allocation(job["call_id"], timeout=timeout).released
            else:
                released = stubs[target].ReleaseAllocation(allocation_pb2.ReleaseAllocationRequest(
                    call_id=job["call_id"]), metadata=_auth(job), timeout=timeout).released
            outcome = str(released)
        except grpc.RpcError as error:
            outcome = error.code().name
        except NhmError as error:
            outcome = error.code.name
        with lock:
            releases.append({"tenant": job["tenant"], "call_id": job["call_id"], "outcome": outcome,
                             "elapsed": time.monotonic() - began})

    def at_once(calls: list[tuple[Any, ...]]) -> None:
        threads = [threading.Thread(target=c[0], args=c[1:]) for c in calls[1:]]
        for thread in threads:
            thread.start()
        calls[0][0](*calls[0][1:])
        for thread in threads:
            thread.join()

    def serve(job: dict[str, Any]) -> None:
        first = job["first_target"]
        sends = [(send, job, (first + i) % len(stubs), job["destination"]) for i in range(job["copies"])]
        if job.get("twin_destination"):  # the same call id for another prospect: must not be a second call
            sends.append((send, job, (first + 1) % len(stubs), job["twin_destination"]))
        at_once(sends)
        if job.get("release") and any(r["call_id"] == job["call_id"] and r["outcome"].startswith("+")
                                      for r in list(records)):
            at_once([(release, job, (first + i) % len(stubs)) for i in range(2)])  # a retried release

    with ThreadPoolExecutor(plan["threads"]) as pool:
        list(pool.map(serve, plan["jobs"]))
    for channel in channels:
        channel.close()
    for clients in sdk.values():
        for client in clients:
            client.close()
    return {"records": records, "releases": releases}


def _auth(job: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {job['key']}"),)


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
