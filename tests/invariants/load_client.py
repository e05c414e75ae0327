"""A load client process: ``python -m invariants.load_client`` reads a plan (JSON) on stdin, prints outcomes.

Each job is one call id, sent `copies` times at once (to different allocation processes when there are
several: retries with the same idempotency key, racing each other). Every send is recorded with its outcome
(the caller ID, or the status code's name), how long it took and its deadline.
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


def run(plan: dict[str, Any]) -> list[dict[str, Any]]:
    channels = [grpc.insecure_channel(target) for target in plan["targets"]]
    stubs = [allocation_pb2_grpc.AllocationServiceStub(channel) for channel in channels]
    timeout = float(plan["timeout"])
    records: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send(job: dict[str, Any], target: int) -> None:
        request = allocation_pb2.AllocateNumberRequest(campaign_id=job["campaign"], destination=job["destination"],
                                                       call_id=job["call_id"])
        began = time.monotonic()
        try:
            response = stubs[target].AllocateNumber(request, metadata=(("authorization", f"Bearer {job['key']}"),),
                                                    timeout=timeout)
            outcome, staleness = response.caller_id, response.eligibility_staleness.ToTimedelta().total_seconds()
        except grpc.RpcError as error:
            outcome, staleness = error.code().name, None
        with lock:
            records.append({**job, "target": target, "outcome": outcome, "began": began,
                            "elapsed": time.monotonic() - began, "timeout": timeout, "staleness": staleness})

    def serve(job: dict[str, Any]) -> None:
        first = job["first_target"]
        copies = [threading.Thread(target=send, args=(job, (first + i) % len(stubs))) for i in range(1, job["copies"])]
        for thread in copies:
            thread.start()
        send(job, first)
        for thread in copies:
            thread.join()

    with ThreadPoolExecutor(plan["threads"]) as pool:
        list(pool.map(serve, plan["jobs"]))
    for channel in channels:
        channel.close()
    return records


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
