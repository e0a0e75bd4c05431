"""Catch rate of `policylang test` on the buggy-policy suite.

Runs every buggy policy in tests/testing/buggy/ with N different seeds (default
100) at the default budget (200 examples) and prints how often the bug is
caught. A bug counts as caught when the run fails; the table also shows how
often the assertion properties alone caught it, with and without the
constant sweep (seeds from exploration x each constant of the fields the
assertion reads), so the Hypothesis search is measured on its own too.
Each correct twin is run with the same seeds to count false alarms.

    python benchmarks/catch_rate.py [--seeds 100] [--max-examples 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policylang.testing import run_path  # noqa: E402

BUGGY = ROOT / "tests" / "testing" / "buggy"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--max-examples", type=int, default=200)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    print(
        f"{'policy':<14} {'caught':>8} {'by property':>12} {'no sweep':>9} {'twin false alarms':>18} {'s/run':>6}"
    )
    for pair in sorted(p for p in BUGGY.iterdir() if p.is_dir()):
        if args.only and pair.name != args.only:
            continue
        caught = by_prop = no_sweep = false_alarm = 0
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            r = run_path(pair / "buggy", max_examples=args.max_examples, seed=seed, auto=False)
            caught += r.failed
            by_prop += any(p.failed for p in r.properties)
            r2 = run_path(
                pair / "buggy", max_examples=args.max_examples, seed=seed, auto=False, sweep=False
            )
            no_sweep += any(p.failed for p in r2.properties)
            ok = run_path(pair / "correct", max_examples=args.max_examples, seed=seed, auto=False)
            false_alarm += ok.failed
        per = (time.perf_counter() - t0) / (3 * args.seeds)
        has_props = bool(r.properties)
        n = args.seeds
        fmt = (lambda k, n=n: f"{k}/{n}") if has_props else (lambda k, n=n: "n/a")
        print(
            f"{pair.name:<14} {caught:>5}/{n} {fmt(by_prop):>12} {fmt(no_sweep):>9} "
            f"{false_alarm:>15}/{n} {per:>6.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
