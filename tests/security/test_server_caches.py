"""Caches keyed by request data stay within their bounds, and every drop is counted: regexes
built from arguments, pinned ``context.now`` texts, time-zone names; on both engine paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime import caches, celops, timefuncs
from policylang.runtime import engine as engine_mod

REGEX = "policy p\ntool t { p: string, s: string }\nallow t when args.s.matches(args.p)\n"
NOW = (
    'policy p\ntool t { n: int }\ncontext { now: timestamp }\nallow t when hour(now, "UTC") < 12\n'
)
ZONE = "policy p\ntool t { z: string }\nallow t when hour(now, args.z) >= 0\n"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def drops(name: str) -> int:
    return caches.stats().get(name, {}).get("evictions", 0)


@pytest.mark.parametrize("reference", [False, True], ids=["fused", "reference"])
def test_regexes_from_arguments_stay_within_the_bound_and_drops_are_counted(
    reference: bool,
) -> None:
    engine = Engine.from_string(REGEX, reference=reference)
    celops._compile.cache_clear()
    n = celops.REGEX_CACHE_SIZE + 300
    for i in range(n):
        assert engine.decide("t", args={"p": f"^x{i}$", "s": f"x{i}"}).code == "allowed"
    stats = engine.cache_stats()["regex"]
    assert stats["entries"] == stats["bound"] == celops.REGEX_CACHE_SIZE
    assert stats["evictions"] == n - celops.REGEX_CACHE_SIZE  # counted, not silent


def test_a_huge_regex_is_compiled_but_never_kept() -> None:
    engine = Engine.from_string(REGEX)
    celops._compile.cache_clear()
    before = drops("regex.uncached")
    pattern = "a" * (celops.REGEX_CACHEABLE + 1)
    for _ in range(3):
        assert engine.decide("t", args={"p": pattern, "s": pattern}).code == "allowed"
    assert celops._compile.cache_info().currsize == 0
    assert drops("regex.uncached") == before + 3


@pytest.mark.parametrize("reference", [False, True], ids=["fused", "reference"])
@given(seconds=st.lists(st.integers(0, 10**9), min_size=1, max_size=60, unique=True))
def test_pinned_now_cache_is_bounded_and_counts_what_it_drops(
    reference: bool, seconds: list[int]
) -> None:
    bound = 8
    old = engine_mod._NOW_CACHE_SIZE
    engine_mod._NOW_CACHE_SIZE = bound
    try:
        engine = Engine.from_string(NOW, reference=reference)
        before = drops("now")
        for s in seconds:
            d = engine.decide("t", args={"n": 1}, context={"now": _iso(s)})
            assert d.code in ("allowed", "default_deny"), d.message
        stats = engine.cache_stats()["now"]
        assert stats["entries"] <= bound
        assert stats["entries"] + drops("now") - before == len(seconds)  # all kept or counted
    finally:
        engine_mod._NOW_CACHE_SIZE = old


def test_zone_names_from_arguments_are_bounded() -> None:
    engine = Engine.from_string(ZONE)
    for i in range(40):
        engine.decide("t", args={"z": f"+{i % 24:02d}:{i % 60:02d}"})
        engine.decide("t", args={"z": f"No/Such_Zone_{i}"})  # an error, never cached as a zone
    stats = engine.cache_stats()
    assert stats["zone"]["entries"] <= stats["zone"]["bound"] == 1024
    assert stats["zone.fast"]["entries"] <= 1024
    assert len(timefuncs._ZONES) <= 1024


def test_every_reported_cache_has_a_bound() -> None:
    stats: dict[str, Any] = Engine.from_string(REGEX).cache_stats()
    for name in ("regex", "zone", "now", "outcomes", "fused", "undeclared", "time_window"):
        assert stats[name]["bound"] > 0, name
        assert 0 <= stats[name]["entries"] <= stats[name]["bound"], name


def test_metrics_show_cache_bounds_and_drops() -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from policylang.server import create_app

    client = TestClient(create_app(Engine.from_string(REGEX)))
    text = client.get("/metrics").text
    assert 'policylang_cache_bound{cache="regex"} 4096' in text
    assert 'policylang_cache_evictions_total{cache="now"}' in text
