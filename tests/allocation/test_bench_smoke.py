"""`make bench`'s harness still runs end to end (tiny sizes, fractions of a second per figure), so it never rots."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "hotpaths.py"
MEASURES = {"bare gRPC echo", "AllocateNumber", "AllocateNumber, 2 workers", "AllocateNumber while ingesting batched",
            "outcomes ingested batched (while allocating)", "AllocateNumber while ingesting streamed",
            "outcomes ingested streamed (while allocating)", "ListHealth first page", "ListNumbers first page"}


@pytest.mark.slow
def test_harness_runs_every_measurement_on_a_tiny_size(tmp_path):
    args = [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)]
    postgres = os.environ.get("NHM_TEST_POSTGRES_URL")
    if postgres:  # the harness creates and drops its own databases on that server
        args += ["--postgres", postgres]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "x echo" in result.stdout and "goal" in result.stdout, result.stdout  # the table and the targets
    [written] = list(tmp_path.glob("hotpaths-*-smoke.json"))
    figures = json.loads(written.read_text())["figures"]
    backends = {"-", "sqlite", "postgresql"} if postgres else {"-", "sqlite"}
    assert {f["backend"] for f in figures} == backends
    assert {f["measure"] for f in figures} == MEASURES
    for f in figures:
        assert f["rate"] > 0 and f["errors"] == 0, f
        if f["backend"] != "-" and f["measure"].startswith("AllocateNumber"):
            assert f["echo_rate_ratio"] > 0, f  # every allocation figure is set against the echo of its run


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_allocation_profile_prints_its_figures(backend):
    args = [sys.executable, str(SCRIPT.with_name("profile_allocate.py")), "--calls", "30", "--statements"]
    if backend == "postgresql":
        postgres = os.environ.get("NHM_TEST_POSTGRES_URL")
        if not postgres:
            pytest.skip("PostgreSQL run needs NHM_TEST_POSTGRES_URL; CI sets it")
        args += ["--postgres", postgres]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "µs wall" in result.stdout and "per call" in result.stdout, result.stdout
    # the statement that counts the calls was timed (PostgreSQL: WITH locked AS (SELECT number_usage... FOR UPDATE)
    assert "number_usage" in result.stdout


def test_the_refusal_benchmark_prints_both_tallies_and_finds_them_equal():
    args = [sys.executable, str(SCRIPT.with_name("bench_refusal.py")), "--numbers", "300", "--repeat", "1"]
    postgres = os.environ.get("NHM_TEST_POSTGRES_URL")
    if postgres:
        args += ["--postgres", postgres]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr  # it exits non-zero when the two tallies differ
    assert result.stdout.count("300 considered") == (4 if postgres else 2), result.stdout


def test_the_kit_profile_times_each_interceptor_and_the_chain_a_server_installs():
    args = [sys.executable, str(SCRIPT.with_name("profile_kit.py")), "--calls", "50"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    figures = dict(re.findall(r"^  (.+?)\s+([\d.]+) µs/call$", result.stdout, re.MULTILINE))
    assert set(figures) == {"bare handler", "access log, metrics, request id", "authentication",
                            "well-formed check", "as a server installs them"}, result.stdout
    assert float(figures["as a server installs them"]) > float(figures["bare handler"])  # the chain did run
