"""bench_flood.py (run in full by `make reliability`) still runs end to end, with the bulk lane, so it never rots.
Its figure is not asserted here: a 1-second run on a shared machine says nothing about p99."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("bench_flood.py")


@pytest.mark.slow
def test_the_flood_benchmark_measures_both_floods_through_the_bulk_lane():
    result = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "1", "--rounds", "1", "--bulk-lane"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode in (0, 1), result.stderr  # 1: the p99 rose more than 20%
    backends = ["sqlite", *(["postgresql"] if os.environ.get("NHM_TEST_POSTGRES_URL") else [])]
    headings = re.findall(r"flood \[(\w+), bulk lane, 1 rounds of 1 s\]", result.stdout)
    assert headings == backends, result.stdout  # both databases in one run when CI names a PostgreSQL server
    for flood in ("waiting as told", "ignoring RetryInfo"):
        lines = [line for line in result.stdout.splitlines() if flood in line]
        assert len(lines) == len(backends), result.stdout
        for line in lines:
            assert re.search(r"accepted \d+", line) and "RESOURCE_EXHAUSTED" in line, line
