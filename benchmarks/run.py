"""`make bench`: the hot-path harness (benchmarks/hotpaths.py: one table, ratios to a bare gRPC echo, JSON in
bench-results/), then the detailed benchmark of each service (every other benchmarks/bench_*.py; the allocation
one is the harness's building block and its figures are in the table already).

Set NHM_BENCH_POSTGRES_URL (a postgresql+psycopg:// URL of a server the benchmarks may create databases on) to
measure PostgreSQL as well as SQLite. Arguments are passed to the harness (e.g. --decay for the 120 s run,
--duration 5). Benchmarks print figures; they never fail on a slow result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUPERSEDED = {"bench_allocation"}


def main() -> int:
    folder = Path(__file__).parent
    postgres = os.environ.get("NHM_BENCH_POSTGRES_URL")
    runs = [(folder / "hotpaths.py", sys.argv[1:])]
    runs += [(script, []) for script in sorted(folder.glob("bench_*.py")) if script.stem not in SUPERSEDED]
    failed = 0
    for script, extra in runs:
        args = [sys.executable, str(script), *extra]
        if postgres:
            args += ["--postgres", postgres]
        print(f"\n=== {script.stem} ===", flush=True)
        failed += subprocess.call(args) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
