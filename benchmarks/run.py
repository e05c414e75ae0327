"""`make bench`: run every benchmarks/bench_*.py in turn; each prints its own table of figures.

Set NHM_BENCH_POSTGRES_URL (a postgresql+psycopg:// URL to a database the benchmark may fill) to measure
PostgreSQL as well as SQLite. Benchmarks print figures; they never fail on a slow result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main() -> int:
    folder = Path(__file__).parent
    scripts = sorted(folder.glob("bench_*.py"))
    extra = sys.argv[1:]
    postgres = os.environ.get("NHM_BENCH_POSTGRES_URL")
    failed = 0
    for script in scripts:
        args = [sys.executable, str(script), *extra]
        if postgres:
            args += ["--postgres", postgres]
        print(f"\n=== {script.stem} ===", flush=True)
        failed += subprocess.call(args) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
