"""Limit windows and session expiry run on the engine's clock, never on ``context.now``.

The class of attack: a caller that controls ``context.now`` (any sequence of
values: forward, backward, far future, far past, odd formats) tries to get more
than N calls through an "N per W" limit, or to make its session look expired so
its history starts afresh. The rules still see ``context.now`` as ``now``.

Every property runs on the fused path and on the ordinary path (fused functions
switched off, as in tests/core/test_fused.py), and the limit property on the
memory store, a real SQLite file and a real Redis server.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.clock import FixedClock
from policylang.runtime.decision import Effect
from policylang.runtime.session_stores import SQLiteSessionStore
from policylang.runtime.stores import RedisStore, SQLiteStore

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
N, W = 2, 3600.0

LIMITED = """
policy clocks
tool t { n: int = 0 }
allow t
limit t to 2 per 1h by principal.id
"""

# context.now as a caller may send it: any instant from year 1 to 9999, in several spellings
INSTANTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
PINNED = st.one_of(
    INSTANTS.map(lambda d: d.isoformat()),
    INSTANTS.map(lambda d: d.strftime("%Y-%m-%d %H:%M")),
    st.integers(min_value=0, max_value=250_000_000_000),  # epoch seconds, far into the future
    st.sampled_from(["2099-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "not a time", ""]),
    st.none(),
)
STEP = st.floats(min_value=0, max_value=900, allow_nan=False)  # engine seconds between calls


def _engine(text: str, fused: bool, **options: Any) -> Engine:
    """An engine on the fused path, or with fused functions switched off (the ordinary path)."""
    engine = Engine.from_string(text, **options)
    assert engine._prepared is not None
    if fused:
        assert engine._prepared.fused, "no tool got a fused function"
    else:
        engine._prepared.fused.clear()
    return engine


def _at_most_n_per_window(admitted: list[float]) -> None:
    for t in admitted:
        inside = [u for u in admitted if t - W < u <= t]
        assert len(inside) <= N, f"{len(inside)} calls admitted within {W}s of engine time"


def _run(engine: Engine, clock: FixedClock, calls: list[tuple[Any, float]]) -> list[float]:
    admitted = []
    for pinned, step in calls:
        clock.advance(step)
        context = {} if pinned is None else {"now": pinned}
        d = engine.decide("t", args={"n": 1}, principal={"id": "u"}, context=context)
        if d.effect is Effect.ALLOW:
            admitted.append(clock.now().timestamp())
    return admitted


CALLS = st.lists(st.tuples(PINNED, STEP), min_size=1, max_size=14)


@given(CALLS)
def test_no_context_now_sequence_gets_more_than_n_per_window_memory(
    calls: list[tuple[Any, float]],
) -> None:
    for fused in (True, False):
        clock = FixedClock(T0)
        _at_most_n_per_window(_run(_engine(LIMITED, fused, clock=clock), clock, calls))


@given(CALLS)
def test_no_context_now_sequence_gets_more_than_n_per_window_sqlite(
    calls: list[tuple[Any, float]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for fused in (True, False):
            clock = FixedClock(T0)
            store = SQLiteStore(Path(tmp) / f"limits{fused}.db")
            engine = _engine(LIMITED, fused, clock=clock, store=store)
            try:
                _at_most_n_per_window(_run(engine, clock, calls))
            finally:
                store.close()


@given(calls=CALLS)
def test_no_context_now_sequence_gets_more_than_n_per_window_redis(
    redis_store: Callable[..., RedisStore], calls: list[tuple[Any, float]]
) -> None:
    for fused in (True, False):
        clock = FixedClock(T0)
        store = (
            redis_store()
        )  # on the engine's time: the clock this test steps is the one that counts
        engine = _engine(LIMITED, fused, clock=clock, store=store)
        try:
            _at_most_n_per_window(_run(engine, clock, calls))
        finally:
            store.close()


def test_redis_on_server_time_ignores_context_now_too(
    redis_store: Callable[..., RedisStore],
) -> None:
    store = redis_store(use_server_time=True)
    engine = Engine.from_string(LIMITED, store=store)
    effects = [
        engine.decide(
            "t", principal={"id": "u"}, context={"now": (T0 + timedelta(hours=i)).isoformat()}
        ).effect
        for i in range(6)
    ]
    store.close()
    assert effects == [Effect.ALLOW] * 2 + [Effect.DENY] * 4


def test_an_hour_later_on_each_call_gets_two_of_six_through_two_per_hour() -> None:
    for fused in (True, False):
        engine = _engine(LIMITED, fused, clock=FixedClock(T0))
        effects = [
            engine.decide(
                "t", principal={"id": "u"}, context={"now": (T0 + timedelta(hours=i)).isoformat()}
            )
            for i in range(6)
        ]
        assert [d.effect for d in effects] == [Effect.ALLOW] * 2 + [Effect.DENY] * 4
        assert all(d.code == "rate_limited" for d in effects[2:])


def test_the_engine_clock_still_frees_the_window() -> None:
    for fused in (True, False):
        clock = FixedClock(T0)
        engine = _engine(LIMITED, fused, clock=clock)
        far = {"now": "2999-01-01T00:00:00Z"}
        assert [
            engine.decide("t", principal={"id": "v"}, context=far).effect for _ in range(3)
        ] == [Effect.ALLOW, Effect.ALLOW, Effect.DENY]
        clock.advance(W + 1)
        assert engine.decide("t", principal={"id": "v"}, context=far).effect is Effect.ALLOW


def test_rules_still_see_context_now() -> None:
    text = 'policy r\ntool t {}\nallow t when weekday(now) != "Sun"\nlimit t to 5 per 1h\n'
    for fused in (True, False):
        engine = _engine(text, fused, clock=FixedClock(T0))  # T0 is a Wednesday
        assert (
            engine.decide("t", context={"now": "2026-03-08T12:00:00Z"}).code == "default_deny"
        )  # Sunday
        d = engine.decide("t", context={"now": "2026-03-09T12:00:00Z"})
        assert d.effect is Effect.ALLOW and d.at == datetime(2026, 3, 9, 12, tzinfo=UTC)
        assert (
            engine.decide("t").effect is Effect.ALLOW
        )  # no context.now: the engine clock, a Wednesday


# ---------------------------------------------------------------- sessions

SESSION = """
policy sess
context { sid: string }
session by context.sid keep 100 calls for 1h
tool t {}
allow t
rule once: deny t when session.count("t") >= 1 because "once per session"
"""

SESSION_STORES: dict[str, Callable[[str], Any]] = {
    "memory": lambda tmp: None,
    "sqlite": lambda tmp: SQLiteSessionStore(str(Path(tmp) / "sessions.db")),
}


@pytest.mark.parametrize("kind", sorted(SESSION_STORES))
@given(
    nows=st.lists(PINNED, min_size=1, max_size=10), steps=st.lists(STEP, min_size=10, max_size=10)
)
def test_context_now_cannot_expire_a_session(
    kind: str, nows: list[Any], steps: list[float]
) -> None:
    """Within the TTL of engine time (steps sum to at most 2.5 minutes), only the first call runs."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = FixedClock(T0)
        sessions = SESSION_STORES[kind](tmp)
        engine = Engine.from_string(
            SESSION, clock=clock, **({"sessions": sessions} if sessions else {})
        )
        assert engine.decide("t", context={"sid": "s"}).effect is Effect.ALLOW
        for pinned, step in zip(nows, steps, strict=False):
            clock.advance(step / 6)
            context = {"sid": "s"} if pinned is None else {"sid": "s", "now": pinned}
            d = engine.decide("t", context=context)
            assert d.effect is Effect.DENY, d.message


@pytest.mark.parametrize("kind", sorted(SESSION_STORES))
def test_the_engine_clock_expires_a_session_and_history_is_stamped_with_it(kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FixedClock(T0)
        sessions = SESSION_STORES[kind](tmp)
        text = SESSION.replace(
            'rule once: deny t when session.count("t") >= 1 because "once per session"',
            'deny t when session.calls.exists(c, c.at != now) because "{session.calls}"',
        )
        engine = Engine.from_string(
            SESSION, clock=clock, **({"sessions": sessions} if sessions else {})
        )
        ahead = {"sid": "s", "now": "2100-01-01T00:00:00Z"}
        assert engine.decide("t", context=ahead).effect is Effect.ALLOW
        assert engine.decide("t", context=ahead).effect is Effect.DENY
        clock.advance(3601)  # the TTL has passed on the engine's clock
        assert engine.decide("t", context={"sid": "s"}).effect is Effect.ALLOW
        # the remembered call's `at` is the engine's time, not the pinned one
        stamped = Engine.from_string(text, clock=clock)
        stamped.decide("t", context={"sid": "x", "now": "2100-01-01T00:00:00Z"})
        d = stamped.decide(
            "t", context={"sid": "x"}
        )  # now == the engine clock == the first call's at
        assert d.effect is Effect.ALLOW, d.message


@given(CALLS)
def test_fused_and_ordinary_paths_book_alike_whatever_context_now_says(
    calls: list[tuple[Any, float]],
) -> None:
    seen = []
    for fused in (True, False):
        clock = FixedClock(T0)
        engine = _engine(LIMITED, fused, clock=clock)
        out = []
        for pinned, step in calls:
            clock.advance(step)
            d = engine.decide(
                "t",
                args={"n": 1},
                principal={"id": "u"},
                context={} if pinned is None else {"now": pinned},
            )
            out.append(
                (
                    d.effect,
                    d.code,
                    d.at,
                    [(s.id, s.key, s.used, s.exceeded) for s in d.limits],
                    d.reasons,
                )
            )
        seen.append(out)
    assert seen[0] == seen[1]
