"""Side-by-side benchmark: the same authorization workload through several engines.

    python benchmarks/run.py                     # quick (the default): a few minutes
    python benchmarks/run.py --full              # more rounds, no time budget per engine
    python benchmarks/run.py --sizes 5,100 --engines handwritten,cedarpy --baseline handwritten

For each size N it builds N tools' rules, generates the requests, asks the
handwritten oracle for the expected effects, measures every engine
(see measure.py) and prints a Markdown table with ratios to the baseline
(policylang by default), which it also writes to --out.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: import the package from the repository root, and do not let
    # benchmarks/ itself shadow any top-level module name.
    ROOT = Path(__file__).resolve().parent.parent
    sys.path[0] = str(ROOT)

from benchmarks.engines import REGISTRY, Adapter, EngineSpec  # noqa: E402
from benchmarks.engines.handwritten import Handwritten  # noqa: E402
from benchmarks.measure import Measurement, prepare, time_interleaved  # noqa: E402
from benchmarks.report import header, size_table  # noqa: E402
from benchmarks.workload import build_workload, generate_requests  # noqa: E402

QUICK = {"repeat": 3, "budget": 6.0}
FULL = {"repeat": 10, "budget": 600.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="5,10,100,1000", help="numbers of tools, comma-separated")
    p.add_argument("--requests", type=int, default=1000, help="requests per size")
    p.add_argument(
        "--repeat",
        type=int,
        help=f"timed rounds over the requests (quick {QUICK['repeat']}, full {FULL['repeat']})",
    )
    p.add_argument(
        "--budget",
        type=float,
        help="seconds of timed rounds per engine and size "
        f"before stopping early (quick {QUICK['budget']:g}, full {FULL['budget']:g})",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: few rounds, time budget")
    mode.add_argument("--full", action="store_true", help="more rounds, effectively no budget")
    p.add_argument(
        "--engines",
        help="comma-separated engine names (default: all); " + ", ".join(s.name for s in REGISTRY),
    )
    p.add_argument("--baseline", default="policylang", help="engine the ratios divide by")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent / "results.md"),
        help="Markdown file to write (default: benchmarks/results.md)",
    )
    return p.parse_args(argv)


def select(names: str | None) -> list[EngineSpec]:
    if not names:
        return list(REGISTRY)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.name: s for s in REGISTRY}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown engine(s) {unknown}; known: {list(known)}")
    return [known[n] for n in wanted]


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    preset = FULL if a.full else QUICK
    repeat = a.repeat if a.repeat is not None else int(preset["repeat"])
    budget = a.budget if a.budget is not None else preset["budget"]
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    engines = select(a.engines)
    settings = " ".join(arg for arg in (sys.argv[1:] if argv is None else argv))

    sections = [header(settings or "(defaults: --quick)")]
    started = time.perf_counter()
    for size in sizes:
        workload = build_workload(size)
        requests = generate_requests(workload, a.requests, seed=a.seed)
        oracle = Handwritten()
        oracle.load(workload)
        expected = [oracle.decide(r) for r in requests]
        results: list[Measurement] = []
        timed: list[tuple[Measurement, Adapter]] = []
        for spec in engines:
            print(
                f"[{time.perf_counter() - started:6.1f}s] size {size}: loading {spec.name} ...",
                file=sys.stderr,
                flush=True,
            )
            m, adapter = prepare(spec, workload, requests, expected)
            if spec.name == "handwritten" and m.status == "ok":
                m.status = "ok (oracle)"
            results.append(m)
            if adapter is not None:
                timed.append((m, adapter))
        print(
            f"[{time.perf_counter() - started:6.1f}s] size {size}: timing {len(timed)} engines, "
            "rounds interleaved ...",
            file=sys.stderr,
            flush=True,
        )
        time_interleaved(timed, requests, repeat, budget)
        del timed
        table = size_table(
            size, workload.rule_count, collections.Counter(expected), results, a.baseline
        )
        print(table, flush=True)
        sections.append(table)

    text = "\n".join(sections)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
