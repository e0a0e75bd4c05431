"""A reservation is a receipt, settled at most once.

The class of problem: any sequence of decide / commit / refund calls — refunds
repeated, refunds of denied or unapproved decisions, commits repeated, refunds
made by another engine sharing the store — must leave exactly as many slots
used as there are allowed-or-committed decisions not yet refunded. Checked
against that model on the memory store, a real SQLite file and a real Redis
server, with two engines sharing each store.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.clock import FixedClock
from policylang.runtime.decision import Decision, Effect
from policylang.runtime.limits import LimitRequest, MemoryStore
from policylang.runtime.stores import RedisStore, SQLiteStore

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
N = 3
POLICY = """
policy refunds
tool t { n: int = 0 }
deny t when args.n < 0 because "negative"
confirm t when args.n > 10 because "big"
allow t
limit t to 3 per 1h by principal.id
"""

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("decide"), st.sampled_from([1, 50, -1]), st.integers(0, 1)),
        st.tuples(st.just("refund"), st.integers(0, 30), st.integers(0, 1)),
        st.tuples(st.just("commit"), st.integers(0, 30), st.integers(0, 1)),
    ),
    min_size=1,
    max_size=25,
)


def _engines(store: Any, fused: bool) -> list[Engine]:
    out = []
    for _ in range(2):
        engine = Engine.from_string(POLICY, clock=FixedClock(T0), store=store)
        assert engine._prepared is not None
        if not fused:
            engine._prepared.fused.clear()
        out.append(engine)
    return out


def _used(engine: Engine, store: Any) -> float:
    probe = engine.decide(
        "t", args={"n": 50}, principal={"id": "u"}
    )  # a confirm: checks, books nothing
    if probe.effect is Effect.CONFIRM:
        return probe.limits[0].used
    assert probe.code == "rate_limited"
    return probe.limits[0].used


def _check_against_the_model(store: Any, ops: list[tuple[str, int, int]], fused: bool) -> None:
    engines = _engines(store, fused)
    decisions: list[Decision] = []
    booked: set[int] = set()  # decisions whose slot is taken
    committed: set[int] = set()  # confirms committed once (booked then, perhaps refunded since)
    for op, arg, which in ops:
        engine = engines[which]
        if op == "decide":
            d = engine.decide("t", args={"n": arg}, principal={"id": "u"})
            if d.effect is Effect.ALLOW:
                assert len(booked) < N
                booked.add(len(decisions))
            elif arg == 1:
                assert d.code == "rate_limited" and len(booked) >= N
            decisions.append(d)
        elif decisions:
            i = arg % len(decisions)
            d = decisions[i]
            if op == "refund":
                engine.refund(d)
                booked.discard(i)
            else:
                out = engine.commit(d)
                if d.effect is Effect.CONFIRM and i not in committed:
                    if len(booked) < N:
                        assert out is d
                        booked.add(i)
                        committed.add(i)
                    else:
                        assert out.code == "rate_limited"
                else:
                    assert out is d  # already settled, an allow or a deny: nothing more consumed
        assert _used(engines[0], store) == len(booked), (op, arg, which)


@given(OPS)
def test_memory_store_receipts_follow_the_model(ops: list[tuple[str, int, int]]) -> None:
    for fused in (True, False):
        _check_against_the_model(MemoryStore(), ops, fused)


@given(OPS)
def test_sqlite_store_receipts_follow_the_model(ops: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for fused in (True, False):
            store = SQLiteStore(Path(tmp) / f"limits-{fused}.db")
            try:
                _check_against_the_model(store, ops, fused)
            finally:
                store.close()


@given(ops=OPS)
def test_redis_store_receipts_follow_the_model(
    redis_store: Callable[..., RedisStore], ops: list[tuple[str, int, int]]
) -> None:
    for fused in (True, False):
        store = redis_store()
        try:
            _check_against_the_model(store, ops, fused)
        finally:
            store.close()


def test_one_decision_refunded_three_times_frees_one_slot() -> None:
    engine = Engine.from_string(POLICY, clock=FixedClock(T0))
    first = [engine.decide("t", principal={"id": "u"}) for _ in range(3)]
    assert engine.decide("t", principal={"id": "u"}).code == "rate_limited"
    for _ in range(3):
        engine.refund(first[0])
    assert engine.decide("t", principal={"id": "u"}).effect is Effect.ALLOW
    assert engine.decide("t", principal={"id": "u"}).code == "rate_limited"


def test_refunds_of_decisions_that_consumed_nothing_free_nothing() -> None:
    engine = Engine.from_string(POLICY, clock=FixedClock(T0))
    for _ in range(3):
        engine.decide("t", principal={"id": "u"})
    limited = engine.decide("t", principal={"id": "u"})
    confirm = engine.decide("t", args={"n": 50}, principal={"id": "v"})
    denied = engine.decide("t", args={"n": -1}, principal={"id": "u"})
    rebuilt = Decision.model_validate_json(limited.model_dump_json())
    for d in (limited, confirm, denied, rebuilt):
        engine.refund(d)
    assert engine.decide("t", principal={"id": "u"}).code == "rate_limited"


def test_a_rebuilt_decision_carries_no_receipt() -> None:
    engine = Engine.from_string(POLICY, clock=FixedClock(T0))
    allowed = engine.decide("t", principal={"id": "u"})
    engine.refund(Decision.model_validate_json(allowed.model_dump_json()))
    assert engine.decide("t", principal={"id": "u"}).limits[0].used == 1


def test_a_refund_by_another_engine_on_the_same_sqlite_file_is_settled_once() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "limits.db"
        a = Engine.from_string(POLICY, clock=FixedClock(T0), store=SQLiteStore(db))
        b = Engine.from_string(POLICY, clock=FixedClock(T0), store=SQLiteStore(db))
        mine = [a.decide("t", principal={"id": "u"}) for _ in range(3)]
        b.refund(mine[0])
        b.refund(mine[0])
        a.refund(mine[0])  # the decision object knows it was refunded, and so does the store
        assert a.decide("t", principal={"id": "u"}).effect is Effect.ALLOW
        assert b.decide("t", principal={"id": "u"}).code == "rate_limited"


def test_commit_books_once_and_a_refund_after_it_frees_that_slot() -> None:
    engine = Engine.from_string(POLICY, clock=FixedClock(T0))
    ask = engine.decide("t", args={"n": 50}, principal={"id": "u"})
    assert ask.effect is Effect.CONFIRM and ask.limits[0].used == 0
    for _ in range(3):
        assert engine.commit(ask) is ask
    assert engine.decide("t", args={"n": 50}, principal={"id": "u"}).limits[0].used == 1
    engine.refund(ask)
    engine.refund(ask)
    assert engine.decide("t", args={"n": 50}, principal={"id": "u"}).limits[0].used == 0
    assert engine.commit(ask) is ask  # settled: a refunded receipt is not booked again
    assert engine.decide("t", args={"n": 50}, principal={"id": "u"}).limits[0].used == 0


def test_commit_of_a_rate_limited_deny_books_nothing() -> None:
    engine = Engine.from_string(POLICY, clock=FixedClock(T0))
    for _ in range(3):
        engine.decide("t", principal={"id": "u"})
    limited = engine.decide("t", principal={"id": "u"})
    engine.refund(engine.decide("t", principal={"id": "x"}))
    assert limited.code == "rate_limited" and engine.commit(limited) is limited
    assert engine.decide("t", args={"n": 50}, principal={"id": "u"}).limits[0].used == 3


def test_a_call_refused_because_the_audit_log_failed_gives_its_slot_back() -> None:
    def broken(record: dict[str, Any]) -> None:
        raise OSError("disk full")

    for fused in (True, False):
        store = MemoryStore()
        engine = Engine.from_string(POLICY, clock=FixedClock(T0), store=store, audit=broken)
        assert engine._prepared is not None
        if not fused:
            engine._prepared.fused.clear()
        for _ in range(5):
            assert engine.decide("t", principal={"id": "u"}).code == "audit_unavailable"
        engine.audit = None
        assert [engine.decide("t", principal={"id": "u"}).effect for _ in range(4)] == [
            Effect.ALLOW
        ] * 3 + [Effect.DENY]


def test_an_sqlite_file_from_before_receipts_keeps_counting() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "old.db"
        with sqlite3.connect(db) as conn:
            conn.execute(
                "CREATE TABLE policylang_events (id INTEGER PRIMARY KEY, key TEXT NOT NULL, "
                "ts REAL NOT NULL, cost REAL NOT NULL, expires REAL NOT NULL)"
            )
            conn.execute(
                "INSERT INTO policylang_events (key, ts, cost, expires) VALUES ('k', 100, 1, 200)"
            )
        store = SQLiteStore(db)
        req = LimitRequest("k", 2, 100)
        assert store.acquire([req], 150, True, "r1")[0].used == 1
        store.refund([req], 150, "r2")  # a receipt that booked nothing here
        assert store.acquire([req], 150, False)[0].used == 2
        store.refund([req], 150, "r1")
        store.refund([req], 150, "r1")
        assert store.acquire([req], 150, False)[0].used == 1  # the old, untagged event still counts
        store.close()


PLANS = st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=12)


def _settled_once(store: Any, plan: list[tuple[int, bool]]) -> None:
    """Store level, as two engines sharing a store see it: a refund frees its receipt's events, once."""
    req = LimitRequest("k", 100, 3600)
    count = dict.fromkeys(range(4), 0)  # events booked per receipt and not yet refunded
    for receipt, book in plan:
        if book:
            store.acquire([req], 10.0, True, f"r{receipt}")
            count[receipt] += 1
        else:
            store.refund([req], 10.0, f"r{receipt}")
            count[receipt] = 0
        assert store.acquire([req], 10.0, False)[0].used == sum(count.values())


@given(PLANS)
def test_store_receipts_are_settled_once_memory_and_sqlite(plan: list[tuple[int, bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "s.db")
        _settled_once(MemoryStore(), plan)
        _settled_once(store, plan)
        store.close()


@given(plan=PLANS)
def test_store_receipts_are_settled_once_redis(
    redis_store: Callable[..., RedisStore], plan: list[tuple[int, bool]]
) -> None:
    store = redis_store()
    try:
        _settled_once(store, plan)
    finally:
        store.close()


class _StoreWithoutReceipts:
    """A store written for the protocol before receipts."""

    def acquire(self, requests: list[LimitRequest], now: float, consume: bool) -> list[Any]:
        return []

    def refund(self, requests: list[LimitRequest], now: float) -> None:
        return None


class _NaiveClock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1)


def test_a_store_or_clock_that_cannot_work_is_refused_when_the_engine_is_built() -> None:
    with pytest.raises(TypeError, match="receipt"):
        Engine.from_string(POLICY, store=_StoreWithoutReceipts())
    with pytest.raises(TypeError, match="acquire"):
        Engine.from_string(POLICY, store=object())
    with pytest.raises(TypeError, match="timezone-aware"):
        Engine.from_string(POLICY, clock=_NaiveClock())
    engine = Engine.from_string(POLICY)
    with pytest.raises(TypeError, match="now"):
        engine.clock = object()  # type: ignore[assignment]
