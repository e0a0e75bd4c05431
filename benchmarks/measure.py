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
   spent (at least one round).
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


def measure(spec: EngineSpec, workload: Workload, requests: list[Request],
            expected: list[str], repeat: int, budget_s: float) -> Measurement:
    m = Measurement(spec.name)
    try:
        adapter = load_adapter(spec)
    except Unavailable as exc:
        m.status = str(exc)
        return m
    except Exception as exc:
        m.status = f"unavailable: {_first_line(exc)}"
        return m
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
        return m

    got = [_decide_safely(adapter, r) for r in requests]
    bad = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    if bad:
        m.status = f"disagrees ({len(bad)}/{len(requests)})"
        print(f"  {spec.name} disagrees with the oracle on {len(bad)} requests; the first:",
              file=sys.stderr)
        for i in bad[:SHOW_DISAGREEMENTS]:
            r = requests[i]
            print(f"  {spec.name}: {r.tool} args={r.args} principal={r.principal} "
                  f"context={r.context} -> {got[i]!r}, oracle says {expected[i]!r}",
                  file=sys.stderr)
        return m

    samples = _timed_rounds(adapter, requests, repeat, budget_s)
    samples.sort()
    m.calls = len(samples)
    m.median_us = statistics.median(samples) / 1000
    m.mean_us = statistics.fmean(samples) / 1000  # steadier than the median on a mix of tools
    m.p99_us = samples[max(0, math.ceil(0.99 * len(samples)) - 1)] / 1000
    return m


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


def _timed_rounds(adapter: Adapter, requests: list[Request], repeat: int,
                  budget_s: float) -> list[int]:
    samples: list[int] = []
    add = samples.append
    clock = time.perf_counter_ns
    decide = adapter.decide
    deadline = clock() + int(budget_s * 1e9)
    for _ in range(max(1, repeat)):
        gc.collect()
        gc.disable()
        try:
            for r in requests:
                t0 = clock()
                decide(r)
                add(clock() - t0)
        finally:
            gc.enable()
        if clock() > deadline:
            break
    return samples
