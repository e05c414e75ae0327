"""The allocation benchmark still runs (tiny pools, one second per figure), so it never rots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_allocation.py"


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_size():
    args = [sys.executable, str(SCRIPT), "--pools", "20,200", "--duration", "0.5", "--callers", "4"]
    postgres = os.environ.get("NHM_TEST_POSTGRES_URL")
    if postgres:  # PostgreSQL on one pool size: the benchmark creates and drops its own database
        args += ["--postgres", postgres]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    echo = [line for line in lines if line.startswith("bare gRPC echo")]
    allocations = [line.split() for line in lines if line.startswith("AllocateNumber")]
    assert len(echo) == 1, result.stdout
    assert len(allocations) == (4 if postgres else 2), result.stdout
    for columns in allocations:
        calls_per_second, errors = float(columns[3]), int(columns[6])
        assert calls_per_second > 0 and errors == 0, result.stdout
