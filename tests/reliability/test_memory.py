"""Memory stays bounded: many distinct limit keys (expired by MemoryStore's sweep as a fake
clock advances) and many distinct run-time regular expressions (a bounded cache)."""

from __future__ import annotations

import gc
import os
from datetime import UTC, datetime

from reliability_support import scale

from policylang import Engine
from policylang.runtime.clock import FixedClock
from policylang.runtime.limits import MemoryStore

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


POLICY = """
policy mem
default allow
tool t { k: string }
tool r { s: string, re: string }
limit t to 3 per 1m by args.k
deny r when args.s.matches(args.re)
"""


def test_distinct_limit_keys_expire_and_rss_stays_bounded(figure):
    n = scale(200_000, 1_000_000)
    clock = FixedClock(datetime(2025, 1, 1, tzinfo=UTC))
    store = MemoryStore()
    engine = Engine.from_string(POLICY, clock=clock, store=store)
    for i in range(2_000):  # warm up caches before measuring
        engine.decide("t", {"k": f"warm{i}"})
    gc.collect()
    start = rss_bytes()
    peak_keys = 0
    for i in range(n):
        d = engine.decide("t", {"k": f"key-{i}-{'x' * (i % 40)}"})
        assert d.effect.value == "allow"
        if i % 100 == 0:
            clock.advance(1.0)  # ~6,000 keys per one-minute window
        if i % 10_000 == 0:
            peak_keys = max(peak_keys, len(store))
    gc.collect()
    grown = rss_bytes() - start
    figure(
        f"{n:,} distinct limit keys (memory store, advancing clock): RSS growth",
        round(grown / 2**20, 1),
        f"MB (peak {peak_keys:,} live keys)",
    )
    assert grown < 200 * 2**20
    assert len(store) < 20_000, "expired keys must be swept"


def test_distinct_runtime_regexes_rss_stays_bounded(figure):
    n = scale(20_000, 100_000)
    engine = Engine.from_string(POLICY)
    for i in range(500):
        engine.decide("r", {"s": "warm", "re": f"w{i}"})
    gc.collect()
    start = rss_bytes()
    for i in range(n):
        d = engine.decide("r", {"s": "abc" * 10, "re": f"(x{i}|y{i * 7})+[a-f]{{2,{i % 50 + 2}}}z"})
        assert d.effect.value == "allow", d.message
    gc.collect()
    grown = rss_bytes() - start
    figure(f"{n:,} distinct run-time regexes: RSS growth", round(grown / 2**20, 1), "MB")
    assert grown < 200 * 2**20
