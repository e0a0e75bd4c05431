"""Rendering measurements as Markdown: one table per size, ratios to the baseline engine."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import statistics
from datetime import UTC, datetime

from benchmarks.engines import REGISTRY
from benchmarks.measure import Measurement

COLUMNS = (
    "engine",
    "status",
    "median µs",
    "mean µs",
    "p99 µs",
    "load ms",
    "mem peak KiB",
    "RSS Δ KiB",
    "median ×",
    "mean ×",
    "p99 ×",
    "load ×",
    "mem peak ×",
    "RSS Δ ×",
)


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base <= 0:
        return "—"
    r = value / base
    if r == 0:
        return "0x"
    if r >= 1:
        return f"{r:.1f}x"
    if r >= 0.1:
        return f"{r:.2f}x"
    return f"{r:.2g}x" if r >= 0.001 else "<0.001x"


def stats(samples: list[int]) -> tuple[float, float]:
    """Median and p99 of nanosecond samples, in microseconds."""
    ordered = sorted(samples)
    return (
        statistics.median(ordered) / 1000,
        ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] / 1000,
    )


def num(value: float | None) -> str:
    """Three significant digits below 100, whole numbers above."""
    if value is None:
        return "—"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _row(m: Measurement, base: Measurement | None) -> str:
    b = base if base is not None and base.timed else None
    cells = (
        m.engine,
        m.status.replace("|", "\\|"),
        num(m.median_us),
        num(m.mean_us),
        num(m.p99_us),
        num(m.load_ms),
        num(m.mem_peak_kib),
        num(m.rss_delta_kib),
        ratio(m.median_us, b.median_us if b else None),
        ratio(m.mean_us, b.mean_us if b else None),
        ratio(m.p99_us, b.p99_us if b else None),
        ratio(m.load_ms, b.load_ms if b else None),
        ratio(m.mem_peak_kib, b.mem_peak_kib if b else None),
        ratio(m.rss_delta_kib, b.rss_delta_kib if b else None),
    )
    return "| " + " | ".join(cells) + " |"


def size_table(
    size: int, rules: int, outcomes: dict[str, int], results: list[Measurement], baseline: str
) -> str:
    base = next((m for m in results if m.engine == baseline), None)
    calls = max((m.calls for m in results), default=0)
    mix = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    lines = [
        f"### {size} tools, {rules} rules",
        "",
        f"Requests: {sum(outcomes.values())} ({mix}); up to {calls} timed calls per engine. "
        f"Ratios: engine / {baseline}"
        + ("" if base is not None and base.timed else f" (— : {baseline} has no numbers)")
        + ".",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    lines += [_row(m, base) for m in results]
    return "\n".join(lines) + "\n"


def _version(package: str) -> str:
    if not package:
        return "—"
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def header(settings: str) -> str:
    versions = ", ".join(f"{s.package} {_version(s.package)}" for s in REGISTRY if s.package)
    return "\n".join(
        [
            "# policylang benchmark: side by side",
            "",
            f"- run: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, `python benchmarks/run.py {settings}`",
            f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
            f"- packages: {versions}",
            "- latency: per decision, including converting the request to the engine's input; "
            "load: parse/compile the workload's rules; mem peak: tracemalloc peak during load "
            "(Python allocations only); RSS Δ: resident memory growth over load (indicative). "
            "See benchmarks/README.md.",
            "",
        ]
    )
