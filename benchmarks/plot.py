"""Latency against number of tools, one line per engine, from a results table as PNG.

    python benchmarks/plot.py                                  # benchmarks/results.md -> latency_vs_tools.png
    python benchmarks/plot.py --results other.md --out other.png --stat mean

Reads the Markdown that run.py writes (so a plot always shows a measured run
and can be redrawn without re-measuring) and draws the median (or mean) µs per
decision on a log scale. Needs matplotlib (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_SECTION = re.compile(r"^### (\d+) tools")


def read_table(text: str, stat: str) -> dict[str, dict[int, float]]:
    """engine -> {tools: µs} for every engine that has a number."""
    series: dict[str, dict[int, float]] = {}
    size = None
    columns: list[str] = []
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            size = int(m.group(1))
            continue
        if not line.startswith("|") or size is None:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "engine":
            columns = cells
            continue
        if not columns or set(cells[0]) <= {"-", ":"}:
            continue
        try:
            value = float(cells[columns.index(f"{stat} µs")].replace(",", ""))
        except (ValueError, IndexError):
            continue  # "—": not timed
        series.setdefault(cells[0], {})[size] = value
    return series


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(HERE / "results.md"))
    p.add_argument("--out", default=str(HERE / "latency_vs_tools.png"))
    p.add_argument("--stat", choices=("median", "mean"), default="median")
    a = p.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('plot.py needs matplotlib: pip install -e ".[bench]"', file=sys.stderr)
        return 2
    series = read_table(Path(a.results).read_text("utf-8"), a.stat)
    if not series:
        print(f"no timed engines in {a.results}", file=sys.stderr)
        return 2
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for engine, points in series.items():
        sizes = sorted(points)
        ax.plot(
            sizes,
            [points[s] for s in sizes],
            marker="o",
            label=engine,
            linewidth=2.5 if engine == "policylang" else 1.2,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tools (5 base tools replicated, 3 rules per tool)")
    ax.set_ylabel(f"{a.stat} µs per decision (log)")
    ax.set_title("Decision latency against number of tools")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
