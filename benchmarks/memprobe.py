"""Resident memory one engine's loaded workload takes, measured in a fresh process.

    python -m benchmarks.memprobe ENGINE SIZE     # prints the RSS growth in KiB

In the benchmark's own process RSS is meaningless per engine (memory freed by
the previous engine is reused, so deltas go negative), hence a clean child per
engine and size. It imports the adapter, loads a 5-tool workload once (library
set-up), builds the workload, then reads RSS around loading it. Unlike
tracemalloc this counts native (Rust) allocations too.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from benchmarks.engines import REGISTRY, load_adapter
from benchmarks.workload import build_workload

ROOT = Path(__file__).resolve().parent.parent


def probe(engine: str, size: int) -> float:
    import psutil  # only in the child: without it the RSS column shows "—"

    spec = next(s for s in REGISTRY if s.name == engine)
    load_adapter(spec).load(build_workload(5))
    workload = build_workload(size)
    adapter = load_adapter(spec)
    gc.collect()
    before = psutil.Process().memory_info().rss
    adapter.load(workload)
    gc.collect()
    return (psutil.Process().memory_info().rss - before) / 1024


def rss_delta_kib(engine: str, size: int, timeout_s: float = 600) -> float | None:
    """Run `probe` in a child process; None if it fails."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.memprobe", engine, str(size)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None


if __name__ == "__main__":
    print(f"{probe(sys.argv[1], int(sys.argv[2])):.1f}")
