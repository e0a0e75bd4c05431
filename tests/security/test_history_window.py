"""Session history: denied calls never evict allowed facts; fresh session ids never evict others.

The class under test: any sequence of calls that cost the caller nothing (denied,
or confirms never approved) interleaved with allowed calls, on every store
(memory, SQLite, Redis). The allowed window holds the last ``keep`` allowed calls
whatever else happened; the history is the two windows merged in call order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policylang import Engine, FixedClock
from policylang.errors import StoreUnavailable
from policylang.runtime.session_stores import RedisSessionStore, SQLiteSessionStore
from policylang.runtime.sessions import MemorySessionStore

RULES = Path(__file__).resolve().parents[2] / "rules" / "agents"
T0 = datetime(2025, 6, 11, 10, 0, tzinfo=UTC)
EMP = {"id": "u-1", "role": "employee"}
_keys = itertools.count()

POLICY = """
tool files.read { path: string }
tool email.send { to: string }
tool chat.post { body: string }
context { sid: string }
session by context.sid keep 5 for 1h
allow files.read
allow email.send
deny chat.post because "no chat"
rule no_mail_after_secrets: deny email.send
    when session.called("files.read", c, c.args.path.startsWith("/secrets"))
    because "a secrets file was read in this session"
"""


def _stores(tmp: Path, redis_store: Callable[..., Any] | None) -> dict[str, Any]:
    stores: dict[str, Any] = {
        "memory": MemorySessionStore(),
        "sqlite": SQLiteSessionStore(str(tmp / f"h{next(_keys)}.db")),
    }
    if redis_store is not None:
        stores["redis"] = RedisSessionStore(client=redis_store().client, prefix=f"h{next(_keys)}:")
    return stores


EFFECTS = st.sampled_from(["allow", "deny", "confirm"])


@settings(max_examples=25, deadline=None)
@given(effects=st.lists(EFFECTS, max_size=40), keep=st.integers(1, 6))
def test_denied_calls_never_evict_an_allowed_one(
    effects: list[str], keep: int, tmp_path_factory: pytest.TempPathFactory, redis_or_none: Any
) -> None:
    tmp = tmp_path_factory.mktemp("win")
    for name, store in _stores(tmp, redis_or_none).items():
        key = f"s{next(_keys)}"
        for i, effect in enumerate(effects):
            call = {"tool": "t", "args": {"n": i}, "effect": effect, "at": T0}
            store.append(key, call, T0.timestamp() + i, keep, 3600.0)
        got = [c["args"]["n"] for c in store.load(key, T0.timestamp() + len(effects), 3600.0)]
        allowed = [i for i, e in enumerate(effects) if e == "allow"][-keep:] if keep else []
        other = [i for i, e in enumerate(effects) if e != "allow"][-keep:]
        assert got == sorted(allowed + other), name  # both windows, in call order


@settings(max_examples=15, deadline=None)
@given(denied=st.integers(0, 60), before=st.integers(0, 4))
def test_engine_secrets_fact_survives_any_number_of_denied_calls(
    denied: int, before: int, tmp_path_factory: pytest.TempPathFactory, redis_or_none: Any
) -> None:
    tmp = tmp_path_factory.mktemp("eng")
    for name, store in _stores(tmp, redis_or_none).items():
        engine = Engine.from_string(POLICY, sessions=store, clock=FixedClock(T0))
        ctx = {"sid": f"s{next(_keys)}"}
        for i in range(before):  # allowed calls before the read stay under keep=5 with it
            assert engine.decide("files.read", {"path": f"/tmp/{i}"}, context=ctx).allowed
        assert engine.decide("files.read", {"path": "/secrets/k"}, context=ctx).allowed
        for _ in range(denied):
            assert not engine.decide("chat.post", {"body": "x"}, context=ctx).allowed
        mail = engine.decide("email.send", {"to": "x@evil.example"}, context=ctx)
        assert not mail.allowed and "no_mail_after_secrets" in mail.rule_names, name


def test_shipped_agents_rules_deny_the_exfiltration_mail_after_200_denied_posts(
    tmp_path: Path, redis_or_none: Any
) -> None:
    for name, store in _stores(tmp_path, redis_or_none).items():
        engine = Engine.from_path(str(RULES), sessions=store, clock=FixedClock(T0))
        ctx = {"session_id": f"s{next(_keys)}", "confidence": 0.95}
        read = engine.decide("files.read", {"path": "/secrets/aws/credentials"}, EMP, ctx)
        assert read.allowed, name
        for i in range(200):
            post = engine.decide("chat.post", {"channel": "eng", "body": f"p{i}"}, EMP, ctx)
            assert not post.allowed, name
        mail = engine.decide(
            "email.send",
            {"to": ["dan.okafor@example.com"], "subject": "FYI", "body": "See below."},
            EMP,
            ctx,
        )
        assert not mail.allowed and "mail_after_secrets" in mail.rule_names, (name, mail)


@settings(max_examples=20, deadline=None)
@given(bound=st.integers(1, 8), fresh=st.integers(1, 30))
def test_fresh_session_ids_never_evict_an_existing_session(bound: int, fresh: int) -> None:
    store = MemorySessionStore(max_sessions=bound)
    now = T0.timestamp()
    victims = [f"v{i}" for i in range(bound)]
    for v in victims:
        store.append(v, {"tool": "files.read", "effect": "allow", "n": v}, now, 10, 3600.0)
    refused = 0
    for i in range(fresh):
        try:
            store.append(f"f{i}", {"tool": "t", "effect": "deny"}, now + 1, 10, 3600.0)
        except StoreUnavailable as exc:
            assert "full" in str(exc)
            refused += 1
    assert refused == fresh  # every fresh id refused at the bound, none let in
    for v in victims:
        assert [c["n"] for c in store.load(v, now + 2, 3600.0)] == [v]
        store.append(
            v, {"tool": "t", "effect": "allow", "n": v}, now + 2, 10, 3600.0
        )  # still usable


def test_expired_sessions_are_swept_to_make_room() -> None:
    store = MemorySessionStore(max_sessions=2)
    now = T0.timestamp()
    store.append("old", {"effect": "allow"}, now, 10, 60.0)
    store.append("live", {"effect": "allow"}, now + 100, 10, 3600.0)
    store.append("new", {"effect": "allow"}, now + 101, 10, 3600.0)  # "old" expired: swept
    assert store.load("old", now + 101, 60.0) == []
    assert len(store.load("live", now + 101, 3600.0)) == 1
    assert len(store.load("new", now + 101, 3600.0)) == 1


def test_engine_denies_a_new_session_at_the_bound_and_keeps_the_old_one() -> None:
    clock = FixedClock(T0)
    engine = Engine.from_string(POLICY, sessions=MemorySessionStore(max_sessions=1), clock=clock)
    assert engine.decide("files.read", {"path": "/secrets/k"}, context={"sid": "victim"}).allowed
    other = engine.decide("files.read", {"path": "/tmp/x"}, context={"sid": "attacker"})
    assert not other.allowed and other.code == "store_unavailable"
    assert "full" in other.message
    clock.advance(timedelta(seconds=1))
    mail = engine.decide("email.send", {"to": "x@evil.example"}, context={"sid": "victim"})
    assert not mail.allowed and "no_mail_after_secrets" in mail.rule_names


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True])
def test_max_sessions_is_checked_at_construction(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        MemorySessionStore(max_sessions=bad)
