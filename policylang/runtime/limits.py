"""Rate-limit and quota state: the store protocol and the in-memory store.

A store answers one question atomically for a set of limits: "would these
costs fit in their sliding windows at this time?", and, when asked to,
records them — all or nothing. The algorithm is a sliding-window log: exact
(never more than N admitted in any window of the stated length), with memory
proportional to the admitted events in the window. SQLite and Redis stores
implement the same protocol in :mod:`policylang.runtime.stores`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LimitRequest:
    key: str
    limit: float
    window: float  # seconds
    cost: float = 1.0


@dataclass(frozen=True, slots=True)
class LimitOutcome:
    used: float  # already used in the window, before this request
    fits: bool  # used + cost <= limit


class LimitStore(Protocol):
    def acquire(
        self, requests: list[LimitRequest], now: float, consume: bool
    ) -> list[LimitOutcome]:
        """Check every request; if all fit and ``consume``, record them all atomically."""
        ...

    def refund(self, requests: list[LimitRequest], now: float) -> None:
        """Take back what an earlier consuming ``acquire`` recorded (executor failed)."""
        ...


class _Window:
    __slots__ = ("events", "total")

    def __init__(self) -> None:
        self.events: deque[tuple[float, float]] = deque()
        self.total = 0.0

    def prune(self, cutoff: float) -> None:
        ev = self.events
        while ev and ev[0][0] <= cutoff:
            self.total -= ev.popleft()[1]
        if not ev:
            self.total = 0.0


class MemoryStore:
    """In-process sliding-window log; one lock makes check-and-consume atomic."""

    SWEEP_EVERY = 10_000

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._spans: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def acquire(
        self, requests: list[LimitRequest], now: float, consume: bool
    ) -> list[LimitOutcome]:
        with self._lock:
            outcomes = []
            windows = []
            for r in requests:
                w = self._windows.get(r.key)
                if w is None:
                    w = _Window()
                    if consume:
                        self._windows[r.key] = w
                        self._spans[r.key] = r.window
                w.prune(now - r.window)
                windows.append(w)
                outcomes.append(LimitOutcome(w.total, w.total + r.cost <= r.limit + 1e-9))
            if consume and all(o.fits for o in outcomes):
                for r, w in zip(requests, windows, strict=True):
                    if r.cost:
                        w.events.append((now, r.cost))
                        w.total += r.cost
                    self._spans[r.key] = max(self._spans.get(r.key, 0.0), r.window)
            self._ops += 1
            if self._ops % self.SWEEP_EVERY == 0:
                self._sweep(now)
            return outcomes

    def refund(self, requests: list[LimitRequest], now: float) -> None:
        with self._lock:
            for r in requests:
                w = self._windows.get(r.key)
                if w is None:
                    continue
                for i in range(len(w.events) - 1, -1, -1):
                    if w.events[i][1] == r.cost:
                        del w.events[i]
                        w.total -= r.cost
                        break

    def _sweep(self, now: float) -> None:
        """Forget keys whose whole window has passed, so memory stays bounded."""
        dead = []
        for key, w in self._windows.items():
            w.prune(now - self._spans.get(key, 0.0))
            if not w.events:
                dead.append(key)
        for key in dead:
            del self._windows[key]
            self._spans.pop(key, None)

    def __len__(self) -> int:
        return len(self._windows)
