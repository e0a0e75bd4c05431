"""Rate-limit and quota state: the store protocol and the in-memory store.

A store answers one question atomically for a set of limits: "would these
costs fit in their sliding windows at this time?", and, when asked to,
records them — all or nothing. The algorithm is a sliding-window log: exact
(never more than N admitted in any window of the stated length), with memory
proportional to the admitted events in the window. SQLite and Redis stores
implement the same protocol in :mod:`policylang.runtime.stores`.

Every consuming ``acquire`` may carry a *receipt* id; the events it records
are tagged with it, and ``refund(..., receipt=id)`` removes exactly those
events. A refund therefore frees what that one decision consumed, at most
once (the second refund finds nothing), and nothing at all for a decision
that consumed nothing — also when another engine sharing the store refunds.

This module also holds the canonical form of a ``by`` key
(:func:`canonical_key`): the text two callers' keys are compared by.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, Protocol


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


@dataclass(slots=True)
class Receipt:
    """What one decision did to its limits, so it is settled at most once.

    ``state`` is ``"checked"`` (a confirm: checked, nothing consumed yet),
    ``"booked"`` (consumed under ``id``) or ``"refunded"`` (given back). The
    engine keeps it on the decision; the store tags the booked events with
    ``id``, so a refund can only ever remove what this decision booked.
    """

    id: str
    requests: tuple[LimitRequest, ...]
    state: Literal["checked", "booked", "refunded"]


class LimitStore(Protocol):
    def acquire(
        self, requests: list[LimitRequest], now: float, consume: bool, receipt: str | None = None
    ) -> list[LimitOutcome]:
        """Check every request; if all fit and ``consume``, record them all atomically.

        The recorded events are tagged with ``receipt`` (when given) for :meth:`refund`.
        """
        ...

    def refund(self, requests: list[LimitRequest], now: float, receipt: str | None = None) -> None:
        """Take back what an earlier consuming ``acquire`` recorded (executor failed).

        With ``receipt``: remove every event of the requests' keys tagged with it
        (none if there are none, so refunding twice frees nothing the second time).
        Without: the newest event of the same cost per key (the protocol before receipts).
        """
        ...


# ---------------------------------------------------------------- canonical keys

# Unicode categories dropped from key text: controls (other than whitespace, which
# collapses to one space), invisible format characters (zero-width space and joiners,
# bidi controls, soft hyphen, BOM) and lone surrogates. None of them is visible, so
# two keys that differ only in them look the same to a person.
_DROPPED = frozenset(("Cc", "Cf", "Cs"))


def canonical_text(s: str) -> str:
    r"""One string key in canonical form: how ``by`` values are compared.

    NFKC (full-width and compatibility forms fold to their plain letters), the
    invisible characters above removed, case folded (``str.casefold``, a
    superset of ``lowerAscii``), NFKC again (folding can denormalise), runs of
    whitespace collapsed to one space and the ends trimmed — the comparisons
    the shipped predicates make (``x.trim().lowerAscii()``), extended to all
    of Unicode. ``"Alice"``, ``" alice "``, ``"ALICE\u200b"`` and
    ``"\uff41lice"`` are one key.
    """
    if s.isascii():
        if s.isprintable():  # the common case: letters, digits, punctuation, spaces
            return " ".join(s.lower().split())
        return " ".join("".join(ch for ch in s.lower() if ch.isspace() or ch.isprintable()).split())
    t = unicodedata.normalize("NFKC", s)
    t = "".join(ch for ch in t if ch.isspace() or unicodedata.category(ch) not in _DROPPED)
    t = unicodedata.normalize("NFKC", t.casefold())
    return " ".join(t.split())


def _part(v: Any) -> Any:
    """One value as a JSON-ready tree of canonical strings (lists stay lists)."""
    if type(v) is str:
        return canonical_text(v)
    if isinstance(v, list | tuple):
        return [_part(x) for x in v]
    return canonical_text(_scalar_text(v))


def _scalar_text(v: Any) -> str:
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return str(int(v))  # 3.0 and 3 are one key, as 3.0 == 3 in conditions
    if isinstance(v, int | float):
        return repr(v)
    from policylang.runtime.celops import format_value

    return format_value(v)


def canonical_key(value: Any) -> str:
    """The canonical text of a ``by`` value; distinct texts are distinct allowances.

    * A string is :func:`canonical_text` of it; a number or bool its plain text
      (``3`` and ``3.0`` agree); anything else its rendering, canonicalised.
    * A list (``by [principal.id, args.to]``, or a ``+`` of several strings,
      which the planner splits into its parts) is a JSON array of the canonical
      parts: ``["a/b","c"]`` and ``["a","b/c"]`` differ.
    * A scalar whose canonical text starts with ``[`` or ``\\`` gets one more
      ``\\`` in front, so no scalar ever equals an array's text.
    """
    if isinstance(value, list | tuple):
        return json.dumps(_part(value), ensure_ascii=False, separators=(",", ":"))
    text = canonical_text(value) if type(value) is str else canonical_text(_scalar_text(value))
    if text[:1] in ("[", "\\"):
        return "\\" + text
    return text


class _Window:
    __slots__ = ("events", "total")

    def __init__(self) -> None:
        self.events: deque[tuple[float, float, str | None]] = deque()  # (time, cost, receipt)
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
        self, requests: list[LimitRequest], now: float, consume: bool, receipt: str | None = None
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
                        w.events.append((now, r.cost, receipt))
                        w.total += r.cost
                    self._spans[r.key] = max(self._spans.get(r.key, 0.0), r.window)
            self._ops += 1
            if self._ops % self.SWEEP_EVERY == 0:
                self._sweep(now)
            return outcomes

    def refund(self, requests: list[LimitRequest], now: float, receipt: str | None = None) -> None:
        with self._lock:
            for r in requests:
                w = self._windows.get(r.key)
                if w is None:
                    continue
                if (
                    receipt is not None
                ):  # every event of that receipt, so a second refund finds none
                    kept = deque(e for e in w.events if e[2] != receipt)
                    w.total -= sum(e[1] for e in w.events if e[2] == receipt)
                    w.events = kept
                    if not kept:
                        w.total = 0.0
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
