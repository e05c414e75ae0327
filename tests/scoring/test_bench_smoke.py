"""The scoring benchmark still runs (on a tiny size, on each backend), so it never rots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nhm_testing.databases import POSTGRES_URL_VARIABLE

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_scoring.py"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_benchmark_runs_on_a_tiny_size(backend):
    args = [sys.executable, str(SCRIPT), "--numbers", "120", "--events", "300", "--batch", "50", "--repeat", "3"]
    if backend == "postgresql":
        url = os.environ.get(POSTGRES_URL_VARIABLE)
        if not url:
            pytest.skip(f"PostgreSQL run needs {POSTGRES_URL_VARIABLE}; CI sets it")
        args += ["--postgres", url, "--no-sqlite"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(backend)]
    assert any("numbers scored" in line and "120 in" in line for line in lines), result.stdout
    assert sum("events/s" in line for line in lines) == 3, result.stdout
    assert sum("ListHealth" in line and "p50" in line and "p99" in line for line in lines) == 5, result.stdout


@pytest.mark.parametrize("defer", [False, True], ids=["rescoring", "marking"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_ingestion_profile_prints_each_step_of_a_batch(backend, defer):
    args = [sys.executable, str(SCRIPT.with_name("profile_ingest.py")), "--numbers", "500", "--batch", "40",
            "--batches", "3", *(["--defer"] if defer else [])]
    if backend == "postgresql":
        url = os.environ.get(POSTGRES_URL_VARIABLE)
        if not url:
            pytest.skip(f"PostgreSQL run needs {POSTGRES_URL_VARIABLE}; CI sets it")
        args += ["--postgres", url]
    result = subprocess.run(args, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr  # it also fails if a batch is not accepted whole
    assert result.stdout.startswith(f"{backend}: 500 numbers"), result.stdout
    assert "3 batches of 40 over 10 numbers" in result.stdout, result.stdout
    rescoring = ("rescoring: bucket reads", "rescoring: health writes")
    for step in ("raw insert", "bucket upserts", *(() if defer else rescoring), *(("marks",) if defer else ())):
        assert step in result.stdout, result.stdout
    if defer:  # the numbers are left to the background pass
        assert not any(step in result.stdout for step in rescoring), result.stdout
