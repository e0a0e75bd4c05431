"""A Redis that lost its data (FLUSHALL, restart without persistence, eviction, a stale replica)
is noticed by the epoch check and fails closed, instead of restarting every quota from zero.

The class is generated: any schedule of recorded calls, then any kind of loss, then the next
check must raise ``StoreUnavailable`` (``on_lost="deny"``) or start afresh (``"reset"``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.errors import StoreUnavailable
from policylang.runtime.clock import FixedClock
from policylang.runtime.limits import LimitRequest
from policylang.runtime.session_stores import RedisSessionStore
from policylang.runtime.stores import RedisStore

POLICY = """
policy lost
default allow
tool t { n: int }
limit t to 3 per 1h
"""
SESSIONS = """
tool files.read { path: string }
tool email.send { to: string }
context { sid: string }
session by context.sid keep 5 for 1h
allow *
rule no_mail_after_secrets: deny email.send
    when session.called("files.read", c, c.args.path.startsWith("/secrets"))
    because "a secrets file was read in this session"
"""
T0 = datetime(2025, 6, 11, 10, 0, tzinfo=UTC)
NOW = T0.timestamp()


def _keys(store: RedisStore) -> list[bytes]:
    return list(store.client.scan_iter(match=store.prefix + "*"))


def lose(store: RedisStore, how: str, snapshot: dict[bytes, bytes] | None = None) -> None:
    """Make the server lose this store's data the way a real deployment can."""
    client = store.client
    if how == "flushall":
        client.flushall()
    elif how == "evict-all":  # eviction (allkeys-*) or an expiry of everything under the prefix
        for key in _keys(store):
            client.delete(key)
    elif how == "evict-epoch":  # only the epoch key went
        client.delete(store.prefix + "epoch")
    elif how == "stale-replica":  # a failover to a replica that is behind: older data, same epoch
        assert snapshot is not None
        for key in _keys(store):
            client.delete(key)
        for key, dumped in snapshot.items():
            client.restore(key, 0, dumped, replace=True)
    else:  # pragma: no cover - a typo in a test
        raise AssertionError(how)


def _snapshot(store: RedisStore) -> dict[bytes, bytes]:
    return {k: store.client.dump(k) for k in _keys(store)}


def _req(cost: float = 1.0) -> list[LimitRequest]:
    return [LimitRequest("k", 100.0, 60.0, cost)]


LOSSES = ["flushall", "evict-all", "evict-epoch", "stale-replica"]


@given(before=st.integers(1, 4), after=st.integers(1, 3), how=st.sampled_from(LOSSES))
def test_any_loss_fails_closed_for_the_window(
    redis_store: Callable[..., RedisStore], before: int, after: int, how: str
) -> None:
    store = redis_store()
    for _ in range(before):
        store.acquire(_req(), NOW, True)
    snapshot = _snapshot(store)
    for _ in range(after):  # the replica missed these
        store.acquire(_req(), NOW, True)
    lose(store, how, snapshot)
    with pytest.raises(StoreUnavailable, match="lost its data") as exc:
        store.acquire(_req(), NOW, False)
    assert "fail closed for 60s more" in str(exc.value) or "fail closed for 59s" in str(exc.value)
    # Every client of the keyspace sees it, also one that never saw the old epoch.
    with pytest.raises(StoreUnavailable, match="lost its data"):
        RedisStore(client=store.client, prefix=store.prefix, use_server_time=False).acquire(
            _req(), NOW, True
        )
    with pytest.raises(StoreUnavailable, match="lost its data"):
        store.refund(_req(), NOW)
    store.reset_lost()  # the operator decides the quotas restart
    assert store.acquire(_req(), NOW, True)[0].fits


@given(before=st.integers(1, 4), how=st.sampled_from(LOSSES))
def test_reset_mode_starts_afresh_with_a_warning(
    redis_store: Callable[..., RedisStore], before: int, how: str
) -> None:
    store = redis_store(on_lost="reset")
    for _ in range(before):
        store.acquire(_req(), NOW, True)
    snapshot = _snapshot(store)
    store.acquire(_req(), NOW, True)
    lose(store, how, snapshot)
    logger = logging.getLogger("policylang.stores")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        outcome = store.acquire(_req(), NOW, True)[0]
        again = store.acquire(_req(), NOW, True)[0]  # the new epoch is adopted: no second warning
    finally:
        logger.removeHandler(handler)
    assert outcome.fits and again.fits
    assert len(seen) == 1 and "lost its data" in seen[0]


def test_untouched_data_never_counts_as_lost(redis_store: Callable[..., RedisStore]) -> None:
    first = redis_store()
    second = RedisStore(client=first.client, prefix=first.prefix, use_server_time=False)
    for i in range(10):
        (first if i % 2 else second).acquire(_req(), NOW, True)
        if i % 2:
            second.refund(_req(), NOW)
    assert first.acquire(_req(), NOW, False)[0].used == 5.0


def test_lost_grace_bounds_the_fail_closed_period(redis_store: Callable[..., RedisStore]) -> None:
    store = redis_store(lost_grace=0.3)
    store.acquire(_req(), NOW, True)
    store.client.flushall()
    with pytest.raises(StoreUnavailable, match="lost its data"):
        store.acquire(_req(), NOW, True)
    time.sleep(0.4)
    assert store.acquire(_req(), NOW, True)[0].used == 0.0


@pytest.mark.parametrize(
    "options",
    [
        {"on_lost": "allow"},
        {"on_lost": None},
        {"lost_grace": 0},
        {"lost_grace": -1},
        {"lost_grace": float("nan")},
        {"lost_grace": float("inf")},
        {"lost_grace": True},
        {"lost_grace": "60"},
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ValueError, match="on_lost|lost_grace"):
        RedisStore("redis://127.0.0.1:1/0", **options)
    with pytest.raises(ValueError, match="on_lost|lost_grace"):
        RedisSessionStore("redis://127.0.0.1:1/0", **options)


def _engine_pair(store: RedisStore) -> tuple[Engine, Engine]:
    """The same policy on the fused and the ordinary path, sharing the store."""
    fused = Engine.from_string(POLICY, store=store, clock=FixedClock(T0))
    ordinary = Engine.from_string(POLICY, store=store, clock=FixedClock(T0))
    assert ordinary._prepared is not None
    ordinary._prepared.fused.clear()
    return fused, ordinary


def test_flushall_between_decisions_denies_on_both_paths(
    redis_store: Callable[..., RedisStore],
) -> None:
    store = redis_store()
    for engine in _engine_pair(store):
        assert engine.decide("t", {"n": 1}).effect == "allow"
        store.client.flushall()
        d = engine.decide("t", {"n": 1})
        assert (d.effect, d.code) == ("deny", "store_unavailable")
        assert "lost its data" in d.message
        store.reset_lost()
        assert engine.decide("t", {"n": 1}).effect == "allow"


def test_reset_mode_engine_starts_fresh(redis_store: Callable[..., RedisStore]) -> None:
    store = redis_store(on_lost="reset")
    engine = Engine.from_string(POLICY, store=store, clock=FixedClock(T0))
    for _ in range(3):
        assert engine.decide("t", {"n": 1}).effect == "allow"
    assert engine.decide("t", {"n": 1}).effect == "deny"  # quota spent
    store.client.flushall()
    assert engine.decide("t", {"n": 1}).effect == "allow"  # forgotten, as configured


def test_a_restart_without_persistence_denies_limits_and_sessions(redis_server: Any) -> None:
    store = RedisStore(redis_server.url, use_server_time=False, timeout=1.0)
    sessions = RedisSessionStore(redis_server.url, timeout=1.0)
    limits = Engine.from_string(POLICY, store=store, clock=FixedClock(T0))
    history = Engine.from_string(SESSIONS, sessions=sessions, clock=FixedClock(T0))
    ctx = {"sid": "s1"}
    assert limits.decide("t", {"n": 1}).effect == "allow"
    assert history.decide("files.read", args={"path": "/secrets/k"}, context=ctx).effect == "allow"
    assert history.decide("email.send", args={"to": "x"}, context=ctx).effect == "deny"
    redis_server.kill()
    redis_server.start()  # empty: the test server runs with --save "" --appendonly no
    for d in (
        limits.decide("t", {"n": 1}),
        history.decide("email.send", args={"to": "x"}, context=ctx),
    ):
        assert (d.effect, d.code) == ("deny", "store_unavailable"), d.message
        assert "lost its data" in d.message
    sessions.reset_lost()
    # After the operator's reset the (forgotten) history no longer blocks the mail: that is
    # exactly what the reset means, so it must be an explicit decision.
    assert history.decide("email.send", args={"to": "x"}, context=ctx).effect == "allow"


def test_session_store_flushall_denies(redis_store: Callable[..., RedisStore]) -> None:
    client = redis_store().client
    sessions = RedisSessionStore(client=client, prefix=f"sess{uuid.uuid4().hex}:")
    sessions.append("k", {"tool": "files.read"}, NOW, 5, 3600)
    assert len(sessions.load("k", NOW, 3600)) == 1
    client.flushall()
    with pytest.raises(StoreUnavailable, match="lost its data.*3600s"):
        sessions.load("k", NOW, 3600)
