"""Measuring one engine on one workload: load time, memory, agreement, per-call latency.

Takes an engine spec, a workload, its requests and the oracle's answers; gives
a `Measurement` (numbers, or a status saying why there are none). Order of work:

1. load once on a 5-tool workload and throw it away (one-time library set-up,
   such as building a parser, is not counted as the workload's load time);
2. load the workload timed with `perf_counter_ns`;
3. load it again into a fresh adapter under `tracemalloc` for the peak of
   Python allocations during load, and once more in a child process for the
   growth of resident memory (memprobe.py; that one sees native allocations);
4. decide every request once and compare with the oracle; on any difference
   print the first few and report "disagrees (k/n)" instead of timing
   (this pass is also the warm-up);
5. timed rounds over all requests, one `perf_counter_ns` pair per call, with gc
   disabled inside a round, until `repeat` rounds are done or `budget_s` is
   spent (at least one round). `time_interleaved` runs the rounds of all the
   engines of one size in turn (round 1 of each engine, then round 2, ...), so a
   machine that slows down for a while slows every engine alike and the ratios
   stay fair.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass

from benchmarks.engines import Adapter, EngineSpec, Unavailable, load_adapter
from benchmarks.memprobe import rss_delta_kib
from benchmarks.workload import Request, Workload, build_workload

SHOW_DISAGREEMENTS = 3


@dataclass(slots=True)
class Measurement:
    engine: str
    status: str = "ok"
    median_us: float | None = None
    mean_us: float | None = None
    p99_us: float | None = None
    load_ms: float | None = None
    mem_peak_kib: float | None = None
    rss_delta_kib: float | None = None
    calls: int = 0

    @property
    def timed(self) -> bool:
        return self.median_us is not None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def _decide_safely(adapter: Adapter, request: Request) -> str:
    try:
        return adapter.decide(request)
    except Exception as exc:
        return f"error ({_first_line(exc)})"


def measure(
    spec: EngineSpec,
    workload: Workload,
    requests: list[Request],
    expected: list[str],
    repeat: int,
    budget_s: float,
) -> Measurement:
    """Steps 1-5 for one engine on its own."""
    m, adapter = prepare(spec, workload, requests, expected)
    if adapter is not None:
        time_interleaved([(m, adapter)], requests, repeat, budget_s)
    return m


def prepare(
    spec: EngineSpec, workload: Workload, requests: list[Request], expected: list[str]
) -> tuple[Measurement, Adapter | None]:
    """Steps 1-4: the measurement so far, and the loaded adapter if it may be timed."""
    m = Measurement(spec.name)
    try:
        adapter = load_adapter(spec)
    except Unavailable as exc:
        m.status = str(exc)
        return m, None
    except Exception as exc:
        m.status = f"unavailable: {_first_line(exc)}"
        return m, None
    try:
        adapter.load(build_workload(5))
        adapter = load_adapter(spec)
        gc.collect()
        t0 = time.perf_counter_ns()
        adapter.load(workload)
        m.load_ms = (time.perf_counter_ns() - t0) / 1e6
        m.mem_peak_kib = _traced_load_peak(spec, workload)
        m.rss_delta_kib = rss_delta_kib(spec.name, workload.size)
    except Exception as exc:
        m.status = f"load failed: {_first_line(exc)}"
        print(f"  {spec.name}: load failed: {exc}", file=sys.stderr)
        return m, None

    got = [_decide_safely(adapter, r) for r in requests]
    bad = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    if bad:
        m.status = f"disagrees ({len(bad)}/{len(requests)})"
        print(
            f"  {spec.name} disagrees with the oracle on {len(bad)} requests; the first:",
            file=sys.stderr,
        )
        for i in bad[:SHOW_DISAGREEMENTS]:
            r = requests[i]
            print(
                f"  {spec.name}: {r.tool} args={r.args} principal={r.principal} "
                f"context={r.context} -> {got[i]!r}, oracle says {expected[i]!r}",
                file=sys.stderr,
            )
        return m, None
    return m, adapter


def time_interleaved(
    engines: list[tuple[Measurement, Adapter]],
    requests: list[Request],
    repeat: int,
    budget_s: float,
) -> None:
    """Step 5 for several engines at once: round r of every engine before round r + 1 of any."""
    samples: dict[str, list[int]] = {m.engine: [] for m, _ in engines}
    spent = dict.fromkeys(samples, 0)  # ns of timed rounds per engine, against its budget
    for round_no in range(max(1, repeat)):
        for m, adapter in engines:
            if round_no and spent[m.engine] > budget_s * 1e9:
                continue  # a slow engine stops early; the others go on
            start = time.perf_counter_ns()
            _timed_round(adapter, requests, samples[m.engine])
            spent[m.engine] += time.perf_counter_ns() - start
    for m, _ in engines:
        ordered = sorted(samples[m.engine])
        m.calls = len(ordered)
        m.median_us = statistics.median(ordered) / 1000
        m.mean_us = statistics.fmean(ordered) / 1000  # steadier than the median on a mix of tools
        m.p99_us = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] / 1000


def _traced_load_peak(spec: EngineSpec, workload: Workload) -> float:
    adapter = load_adapter(spec)
    gc.collect()
    tracemalloc.start()
    try:
        adapter.load(workload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1024


def _timed_round(adapter: Adapter, requests: list[Request], samples: list[int]) -> None:
    add = samples.append
    clock = time.perf_counter_ns
    decide = adapter.decide
    gc.collect()
    gc.disable()
    try:
        for r in requests:
            t0 = clock()
            decide(r)
            add(clock() - t0)
    finally:
        gc.enable()
