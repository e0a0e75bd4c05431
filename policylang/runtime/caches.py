"""Every cache that request data can fill: its bound, and a count of what it dropped.

A request chooses the strings these caches are keyed by (a regex built from
an argument, a ``context.now`` text, a time-zone name, a holiday calendar), so
each one is bounded, and reaching the bound is counted, never silent:
:func:`stats` reports, per cache, its entries now, its bound and how many
entries it has dropped (``policylang_cache_evictions_total`` on the server's
``/metrics``). What happens at a bound:

========================  ======  ===================================================
cache                     bound   at the bound
========================  ======  ===================================================
``regex``                 4096    least recently used pattern dropped (LRU)
``regex.uncached``        --      a pattern over 4096 characters is compiled, not kept
``zone``                  1024    least recently used zone dropped (LRU)
``zone.fast``             1024    further names are read through ``zone`` only
``holiday.years``         4096    further (country, year) sets are built per call
``holiday.country``       512     least recently used dropped (LRU)
``time_window``           256     least recently used dropped (LRU)
``now``                   4096    per policy: emptied, then refilled
``outcomes``              65536   per policy: emptied, then refilled
``fused``                 65536   per policy and tool: emptied, then refilled
``undeclared``            512     per policy: least recently used evaluator dropped
========================  ======  ===================================================

Counting costs nothing on the decision path: an LRU cache's drops are its
misses less its size (``functools`` counts both), and the dict caches count
when they empty, which is the rare path.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

_LOCK = threading.Lock()
_DROPPED: Counter[str] = Counter()  # entries dropped by caches that empty themselves
_LRU: dict[str, Any] = {}  # name -> functools.lru_cache wrapper
_SIZED: dict[str, tuple[Callable[[], int], int]] = {}  # name -> (entries now, bound)


def register_lru(name: str, cached: Any) -> Any:
    """Report a ``functools.lru_cache`` function under ``name``; returns it unchanged."""
    _LRU[name] = cached
    return cached


def register_sized(name: str, size: Callable[[], int], bound: int) -> None:
    """Report a cache that stops growing at ``bound`` (``size()`` gives its entries)."""
    _SIZED[name] = (size, bound)


def dropped(name: str, entries: int = 1) -> None:
    """Count ``entries`` dropped (or never kept) by the cache ``name``."""
    with _LOCK:
        _DROPPED[name] += entries


def stats(extra: dict[str, tuple[int, int]] | None = None) -> dict[str, dict[str, int]]:
    """``{cache: {"entries", "bound", "evictions"}}`` for every cache; ``extra``: an engine's own.

    ``extra`` maps a cache name to ``(entries, bound)``; its drops are those
    counted with :func:`dropped` under the same name.
    """
    out: dict[str, dict[str, int]] = {}
    for name, fn in _LRU.items():
        info = fn.cache_info()
        evicted = max(info.misses - info.currsize, 0)  # cache_clear() resets both
        out[name] = {"entries": info.currsize, "bound": info.maxsize or 0, "evictions": evicted}
    for name, (size, bound) in _SIZED.items():
        out[name] = {"entries": size(), "bound": bound, "evictions": _DROPPED.get(name, 0)}
    for name, (entries, bound) in (extra or {}).items():
        out[name] = {"entries": entries, "bound": bound, "evictions": _DROPPED.get(name, 0)}
    for name, n in _DROPPED.items():
        if name not in out:
            out[name] = {"entries": 0, "bound": 0, "evictions": n}
    return out


__all__ = ["register_lru", "register_sized", "dropped", "stats"]
