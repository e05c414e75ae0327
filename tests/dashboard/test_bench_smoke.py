"""The dashboard benchmark still runs (on a tiny size, on each backend), so it never rots: every kind of page it
times answers, over HTTP, from the services and the dashboard started as processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nhm_testing.databases import POSTGRES_URL_VARIABLE

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dashboard.py"
PAGE_KINDS = 13


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_benchmark_runs_on_a_tiny_size(backend: str) -> None:
    args = [sys.executable, str(SCRIPT), "--numbers", "240", "--repeat", "2"]
    if backend == "postgresql":
        url = os.environ.get(POSTGRES_URL_VARIABLE)
        if not url:
            pytest.skip(f"PostgreSQL run needs {POSTGRES_URL_VARIABLE}; CI sets it")
        args += ["--postgres", url, "--no-sqlite"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(backend)]
    assert any("240 numbers in" in line for line in lines), result.stdout
    pages = [line for line in lines if " p50 " in line]
    assert len(pages) == PAGE_KINDS and not any("HTTP" in line for line in lines), result.stdout
    assert any(line.split()[1:3] == ["first", "page"] and line.endswith("rows 50") for line in pages), result.stdout
