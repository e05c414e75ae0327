"""The registry benchmark still runs (on a tiny size), so it never rots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_registry.py"


def test_benchmark_runs_on_a_tiny_size():
    result = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "100", "--repeat", "5"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("bulk import" in line and "numbers/s" in line for line in lines), result.stdout
    assert sum("p50" in line and "p99" in line for line in lines) == 3, result.stdout
