"""Stored session history gives back exactly the caller's data, even maps that look like tags.

The class under test: any JSON-like caller value, including one-key maps whose key
is a stored type tag (``$ts``, ``$date``, ``$dur``, ``$b64``), the escape tag
``$esc`` or any other ``$`` key, nested anywhere, beside real typed values. It
must round-trip identically through memory, SQLite and Redis, and never brick a
session.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policylang import Engine, FixedClock
from policylang.runtime.session_stores import RedisSessionStore, SQLiteSessionStore, dumps, loads
from policylang.runtime.sessions import MemorySessionStore

T0 = datetime(2025, 6, 11, 10, 0, tzinfo=UTC)
_keys = itertools.count()

TAGGY_KEYS = st.sampled_from(["$ts", "$date", "$dur", "$b64", "$esc", "$x", "$", "a", "ts"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["garbage", "2025-06-11T10:00:00+00:00", "2025-06-11", "AA=="]),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.timedeltas(min_value=timedelta(days=-999), max_value=timedelta(days=999)).map(
        lambda d: timedelta(seconds=round(d.total_seconds(), 3))
    ),
    st.binary(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(TAGGY_KEYS, inner, max_size=3),
        st.dictionaries(TAGGY_KEYS, inner, min_size=1, max_size=1),
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(args=st.dictionaries(TAGGY_KEYS, VALUES, max_size=3))
def test_caller_maps_round_trip_identically_on_every_store(
    args: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, redis_or_none: Any
) -> None:
    call = {"tool": "t", "args": args, "effect": "allow", "at": T0}
    assert loads(dumps(call)) == call
    stores: list[Any] = [
        MemorySessionStore(),
        SQLiteSessionStore(str(tmp_path_factory.mktemp("codec") / "s.db")),
    ]
    if redis_or_none is not None:
        stores.append(RedisSessionStore(client=redis_or_none().client, prefix=f"c{next(_keys)}:"))
    for store in stores:
        store.append("k", call, T0.timestamp(), 10, 3600.0)
        assert store.load("k", T0.timestamp(), 3600.0) == [call], type(store).__name__


@pytest.mark.parametrize(
    "meta",
    [
        {"$ts": "garbage"},
        {"$date": "not a day"},
        {"$dur": "x"},
        {"$b64": "!!"},
        {"$esc": {"$ts": "garbage"}},
        {"$esc": 1},
        [{"$ts": "garbage"}, {"k": {"$b64": 5}}],
    ],
)
def test_a_tag_shaped_argument_does_not_brick_the_session(
    meta: Any, tmp_path: Path, redis_or_none: Any
) -> None:
    src = """
tool t { meta: dyn }
context { sid: string }
session by context.sid keep 10 for 1h
allow t when session.calls.all(c, c.args.meta == args.meta)
"""
    stores: list[Any] = [MemorySessionStore(), SQLiteSessionStore(str(tmp_path / "s.db"))]
    if redis_or_none is not None:
        stores.append(RedisSessionStore(client=redis_or_none().client, prefix=f"b{next(_keys)}:"))
    for store in stores:
        engine = Engine.from_string(src, sessions=store, clock=FixedClock(T0))
        for _ in range(3):  # the later calls see the stored value, equal to the caller's
            d = engine.decide("t", {"meta": meta}, context={"sid": "s"})
            assert d.allowed, (type(store).__name__, d.code, d.message)
