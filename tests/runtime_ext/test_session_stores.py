"""Session history in SQLite and Redis behaves like the in-memory store, across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from policylang import Engine, FixedClock
from policylang.runtime.session_stores import RedisSessionStore, SQLiteSessionStore, dumps, loads
from policylang.runtime.sessions import MemorySessionStore

REPO = str(Path(__file__).resolve().parents[2])
POLICY = """
tool files.read { path: string }
tool email.send { to: string, when: timestamp }
context { sid: string }
session by context.sid keep 3 for 1h
allow *
rule no_mail_after_secrets: deny email.send
    when session.called("files.read", c, c.args.path.startsWith("/secrets"))
    because "a secrets file was read in this session"
"""
T0 = datetime(2025, 6, 11, 10, 0, tzinfo=UTC)


def _calls(store, key="k"):  # type: ignore[no-untyped-def]
    now = T0.timestamp()
    for i in range(5):
        store.append(
            key,
            {
                "tool": "t",
                "args": {"n": i, "at": T0 + timedelta(seconds=i)},
                "effect": "allow",
                "at": T0,
            },
            now + i,
            keep=3,
            ttl=60,
        )
    return store.load(key, now + 5, 60)


def test_values_survive_the_round_trip():
    call = {
        "tool": "t",
        "args": {"ts": T0, "d": timedelta(minutes=90), "day": T0.date(), "b": b"\x00"},
        "effect": "allow",
        "at": T0,
    }
    assert loads(dumps(call)) == call


def test_sqlite_keeps_the_same_history_as_memory(tmp_path):
    assert _calls(SQLiteSessionStore(str(tmp_path / "s.db"))) == _calls(MemorySessionStore())
    store = SQLiteSessionStore(str(tmp_path / "s.db"))
    assert [c["args"]["n"] for c in store.load("k", T0.timestamp() + 5, 60)] == [2, 3, 4]
    assert store.load("k", T0.timestamp() + 1000, 60) == []  # untouched past the ttl: forgotten


def test_redis_keeps_the_same_history_as_memory(redis_server):
    assert _calls(RedisSessionStore(redis_server.url)) == _calls(MemorySessionStore())


def test_history_is_shared_between_processes_through_sqlite(tmp_path):
    db = str(tmp_path / "sessions.db")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {REPO!r})
        from policylang import Engine
        from policylang.runtime.session_stores import SQLiteSessionStore
        engine = Engine.from_string({POLICY!r}, sessions=SQLiteSessionStore({db!r}))
        d = engine.decide("files.read", args={{"path": "/secrets/key"}},
                          context={{"sid": "s1", "now": "2025-06-11T10:00:00Z"}})
        print(d.effect.value)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "allow", out.stderr
    engine = Engine.from_string(POLICY, sessions=SQLiteSessionStore(db), clock=FixedClock(T0))
    ctx = {"sid": "s1", "now": "2025-06-11T10:05:00Z"}
    d = engine.decide("email.send", args={"to": "a", "when": "2025-06-12T10:00:00Z"}, context=ctx)
    assert d.effect == "deny" and d.reasons == ["a secrets file was read in this session"]
    other = engine.decide(
        "email.send",
        args={"to": "a", "when": "2025-06-12T10:00:00Z"},
        context={"sid": "s2", "now": "2025-06-11T10:05:00Z"},
    )
    assert other.effect == "allow"


def test_an_unreachable_session_store_denies(redis_server):
    engine = Engine.from_string(POLICY, sessions=RedisSessionStore(redis_server.url))
    ctx = {"sid": "s1", "now": "2025-06-11T10:00:00Z"}
    assert engine.decide("files.read", args={"path": "/a"}, context=ctx).effect == "allow"
    redis_server.kill()
    d = engine.decide("files.read", args={"path": "/a"}, context=ctx)
    assert d.effect == "deny" and d.code == "store_unavailable"
