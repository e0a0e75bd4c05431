"""Counters and histograms for the HTTP server, rendered as Prometheus text (format 0.0.4).

Hand-written exposition (no ``prometheus_client`` dependency): a handful of
counters and two histograms behind one lock, which the watcher thread and the
event loop both update. Tool names come from requests, so the ``tool`` label is
the tool's name only when the loaded policy declares it, else ``(undeclared)``:
a client cannot grow the label set without bound. The engine's bounded caches
(:mod:`policylang.runtime.caches`) are shown with their entries, bounds and
drops, so reaching a bound is visible.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNDECLARED = "(undeclared)"
DECISION_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
HTTP_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Histogram:
    """Cumulative-bucket histogram; not locked itself (the owner holds a lock)."""

    def __init__(self, buckets: Sequence[float]):
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        if not math.isfinite(value):
            return
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out = []
        running = 0
        sep = "," if labels else ""
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{_num(bound)}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {_num(self.total)}")
        out.append(f"{name}_count{braces} {self.n}")
        return out


class Metrics:
    """Everything ``GET /metrics`` shows. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.decisions: Counter[tuple[str, str]] = Counter()  # (tool, effect)
        self.codes: Counter[str] = Counter()
        self.limit_hits: Counter[tuple[str, str]] = Counter()  # (tool, limit id)
        self.latency = Histogram(DECISION_BUCKETS)
        self.http: Counter[tuple[str, str, int]] = Counter()  # (method, route, status)
        self.http_latency: dict[str, Histogram] = {}
        self.errors: Counter[str] = Counter()  # error codes of rejected requests
        self.reloads = 0
        self.reload_errors = 0
        self.last_reload_ok: float | None = None
        self.last_reload_error: float | None = None
        self._known: tuple[str, frozenset[str]] = ("", frozenset())

    # ---- recording

    def tool_label(self, engine: Any, tool: Any) -> str:
        key = engine.policy_hash
        if key != self._known[0]:
            self._known = (key, frozenset(engine.tools))
        return tool if isinstance(tool, str) and tool in self._known[1] else UNDECLARED

    def observe_decisions(self, engine: Any, decisions: Iterable[Any]) -> None:
        rows = [
            (
                self.tool_label(engine, d.tool),
                d.effect.value,
                d.code,
                d.elapsed_us / 1e6,
                [lim.id for lim in d.limits if lim.exceeded],
            )
            for d in decisions
        ]
        with self._lock:
            for tool, effect, code, seconds, hits in rows:
                self.decisions[(tool, effect)] += 1
                self.codes[code] += 1
                self.latency.observe(seconds)
                for lid in hits:
                    self.limit_hits[(tool, lid)] += 1
                if code == "rate_limited" and not hits:
                    self.limit_hits[(tool, "")] += 1

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.http[(method, route, status)] += 1
            hist = self.http_latency.get(route)
            if hist is None:
                hist = self.http_latency[route] = Histogram(HTTP_BUCKETS)
            hist.observe(seconds)

    def observe_error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def reloaded(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.reloads += 1
                self.last_reload_ok = time.time()
            else:
                self.reload_errors += 1
                self.last_reload_error = time.time()

    # ---- exposition

    def render(self, engine: Any) -> str:
        with self._lock:
            out: list[str] = []

            def family(name: str, kind: str, help_text: str) -> None:
                out.append(f"# HELP {name} {help_text}")
                out.append(f"# TYPE {name} {kind}")

            family(
                "policylang_decisions_total",
                "counter",
                "Decisions made, by tool (undeclared tools share one label) and effect.",
            )
            for (tool, effect), n in sorted(self.decisions.items()):
                out.append(f"policylang_decisions_total{{tool={_q(tool)},effect={_q(effect)}}} {n}")
            family("policylang_decision_codes_total", "counter", "Decisions made, by code.")
            for code, n in sorted(self.codes.items()):
                out.append(f"policylang_decision_codes_total{{code={_q(code)}}} {n}")
            family(
                "policylang_decision_duration_seconds",
                "histogram",
                "Time the engine spent on one decision.",
            )
            out.extend(self.latency.lines("policylang_decision_duration_seconds"))
            family(
                "policylang_limit_hits_total",
                "counter",
                "Calls denied because a rate limit or quota was exhausted, by tool and limit.",
            )
            for (tool, lid), n in sorted(self.limit_hits.items()):
                out.append(f"policylang_limit_hits_total{{tool={_q(tool)},limit={_q(lid)}}} {n}")
            family(
                "policylang_http_requests_total",
                "counter",
                "HTTP requests, by method, route and status.",
            )
            for (method, route, status), n in sorted(self.http.items()):
                out.append(
                    f"policylang_http_requests_total{{method={_q(method)},"
                    f'route={_q(route)},status="{status}"}} {n}'
                )
            family(
                "policylang_http_request_duration_seconds",
                "histogram",
                "Time to answer an HTTP request, by route.",
            )
            for route, hist in sorted(self.http_latency.items()):
                out.extend(
                    hist.lines("policylang_http_request_duration_seconds", f"route={_q(route)}")
                )
            family(
                "policylang_http_rejected_total",
                "counter",
                "Requests rejected before deciding, by error code.",
            )
            for code, n in sorted(self.errors.items()):
                out.append(f"policylang_http_rejected_total{{code={_q(code)}}} {n}")
            family("policylang_reloads_total", "counter", "Successful policy reloads.")
            out.append(f"policylang_reloads_total {self.reloads}")
            family(
                "policylang_reload_errors_total",
                "counter",
                "Policy reloads that failed (the previous policy kept serving).",
            )
            out.append(f"policylang_reload_errors_total {self.reload_errors}")
            if self.last_reload_ok is not None:
                family(
                    "policylang_last_reload_success_timestamp_seconds",
                    "gauge",
                    "When the policy was last reloaded successfully.",
                )
                out.append(
                    f"policylang_last_reload_success_timestamp_seconds {_num(self.last_reload_ok)}"
                )
            if self.last_reload_error is not None:
                family(
                    "policylang_last_reload_error_timestamp_seconds",
                    "gauge",
                    "When a policy reload last failed.",
                )
                out.append(
                    f"policylang_last_reload_error_timestamp_seconds {_num(self.last_reload_error)}"
                )
        loaded = engine.compiled is not None
        family("policylang_policy_loaded", "gauge", "1 when a policy is loaded, else 0.")
        out.append(f"policylang_policy_loaded {1 if loaded else 0}")
        if loaded:
            family("policylang_policy_info", "gauge", "The loaded policy (always 1).")
            out.append(
                f"policylang_policy_info{{name={_q(engine.policy_name)},"
                f"version={_q(engine.policy_version or '')},hash={_q(engine.policy_hash)},"
                f'tools="{len(engine.tools)}"}} 1'
            )
        stats = engine.cache_stats() if hasattr(engine, "cache_stats") else {}
        if stats:
            family(
                "policylang_cache_entries",
                "gauge",
                "Entries in each bounded cache keyed by request data.",
            )
            out.extend(
                f"policylang_cache_entries{{cache={_q(n)}}} {v['entries']}"
                for n, v in sorted(stats.items())
            )
            family("policylang_cache_bound", "gauge", "The most entries each cache keeps.")
            out.extend(
                f"policylang_cache_bound{{cache={_q(n)}}} {v['bound']}"
                for n, v in sorted(stats.items())
            )
            family(
                "policylang_cache_evictions_total",
                "counter",
                "Entries each cache dropped (or never kept) at its bound.",
            )
            out.extend(
                f"policylang_cache_evictions_total{{cache={_q(n)}}} {v['evictions']}"
                for n, v in sorted(stats.items())
            )
        family("policylang_start_time_seconds", "gauge", "When the server started.")
        out.append(f"policylang_start_time_seconds {_num(self.started)}")
        return "\n".join(out) + "\n"


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _num(v: float) -> str:
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v)) if abs(v) >= 1 or v == 0 else repr(float(v))
    return repr(float(v))
