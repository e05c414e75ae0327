"""Concurrent ingestion: the same batch from several clients at once counts once; nothing is lost or doubled."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from scoring.stack import A, phone, status

from nhm.scoring.v1 import scoring_pb2 as spb

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
NUMBERS = [phone(i) for i in range(3)]


def test_the_same_batch_from_four_clients_at_once_counts_once(stack, clock):
    stack.create_numbers(*NUMBERS)
    calls = stack.calls
    start = NOW.replace(hour=6)
    shared = [calls.outbound(NUMBERS[i % 3], start + timedelta(seconds=60 * i), answered=i % 25 == 0, talk=40)
              for i in range(240)]
    own = [[calls.outbound(NUMBERS[i % 3], start + timedelta(seconds=60 * i + 7), answered=False)
            for i in range(90)] for _ in range(4)]
    summaries: list[spb.IngestSummary] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def client(mine: list[spb.CallOutcome]) -> None:
        try:
            barrier.wait()
            for part in (shared[:120] + mine[:45], shared[120:] + mine[45:]):
                summaries.append(stack.report(part))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(mine,)) for mine in own]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sum(s.accepted for s in summaries) == 240 + 4 * 90
    assert sum(s.duplicates for s in summaries) == 3 * 240
    total = 0
    for number in NUMBERS:
        day = stack.scoring.GetCallActivity(spb.GetCallActivityRequest(phone_number=number, days=1),
                                            metadata=A).days[-1]
        total += day.outbound_calls
        history = stack.history(number)
        # Every transition follows the one before it: none was recorded twice by racing writers.
        assert all(newer.from_status == older.to_status for newer, older in pairwise(history))
        assert all(t.from_status != t.to_status for t in history)
    assert total == 240 + 4 * 90
    # 200 calls a day at a 1.3% answer rate: all three numbers are At Risk, and said so once each.
    assert {status(stack.health(n)) for n in NUMBERS} == {"AT_RISK"}
