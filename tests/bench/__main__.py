"""``make bench``: every benchmark, one after another, on the running local stack.

Each one prints its own table; copy the figures into BENCHMARKS.md with the
date and the machine. Run one alone with ``python -m tests.bench.<name>``.
Benchmarks run in sequence on purpose: on a 2-core machine two at once
measure each other.
"""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    ["tests.bench.bench_runner"],
    ["tests.bench.bench_ledger", "--mode", "kafka", "--events", "30000", "--copies", "2"],
    ["tests.bench.bench_cache"],
    ["tests.bench.bench_gateway"],
]


def main() -> int:
    """Run every benchmark; the exit status is the number that failed."""
    failed = 0
    for bench in BENCHES:
        print(f"\n## python -m {' '.join(bench)}\n", flush=True)
        failed += subprocess.run([sys.executable, "-m", *bench], check=False).returncode != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
