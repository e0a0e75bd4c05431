"""Session history shared between processes: SQLite (one host) and Redis (many).

The same contract as :class:`~policylang.runtime.sessions.MemorySessionStore`
(``load`` the remembered calls of a session, ``append`` one, at most ``keep``
per session, forgotten after ``ttl`` untouched), so several engine processes
see one history per agent session. Calls are stored as JSON with tagged
timestamps, durations, dates and bytes so they come back as the same values.
Any store error raises :class:`~policylang.errors.StoreUnavailable`; the
engine then denies the call (``store_unavailable``): no history, no decision.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from datetime import date, datetime, timedelta
from typing import Any

from policylang.errors import StoreUnavailable


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$ts": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$dur": value.total_seconds()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot store a {type(value).__name__} in session history")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((tag, v),) = obj.items()
        if tag == "$ts":
            return datetime.fromisoformat(v)
        if tag == "$date":
            return date.fromisoformat(v)
        if tag == "$dur":
            return timedelta(seconds=v)
        if tag == "$b64":
            return base64.b64decode(v)
    return obj


def dumps(call: dict[str, Any]) -> str:
    return json.dumps(call, default=_encode, separators=(",", ":"), allow_nan=True)


def loads(text: str | bytes) -> dict[str, Any]:
    return json.loads(text, object_hook=_decode)


class SQLiteSessionStore:
    """Session history in a SQLite file (WAL) shared by the processes of one host."""

    def __init__(self, path: str, busy_timeout: float = 2.0):
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS policylang_session_calls ("
                "id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, at REAL NOT NULL, "
                "call TEXT NOT NULL)"
            )
            db.execute(
                "CREATE INDEX IF NOT EXISTS policylang_session_key "
                "ON policylang_session_calls (key, id)"
            )

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    uri=self.path.startswith("file:"),
                )
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"session store {self.path}: {exc}") from None
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection, path: str):
            self.db, self.path = db, path

        def __enter__(self) -> sqlite3.Connection:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"session store {self.path}: {exc}") from None
            return self.db

        def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
            try:
                self.db.execute("COMMIT" if kind is None else "ROLLBACK")
            except sqlite3.Error as error:
                raise StoreUnavailable(f"session store {self.path}: {error}") from None
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"session store {self.path}: {exc}") from None

    def _tx(self) -> SQLiteSessionStore._Tx:
        return self._Tx(self._db(), self.path)

    def load(self, key: str, now: float, ttl: float) -> list[dict[str, Any]]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT at, call FROM policylang_session_calls WHERE key = ? ORDER BY id", (key,)
            ).fetchall()
            if rows and now - rows[-1][0] > ttl:  # untouched for longer than the ttl: forgotten
                db.execute("DELETE FROM policylang_session_calls WHERE key = ?", (key,))
                return []
        return [loads(call) for _, call in rows]

    def append(self, key: str, call: dict[str, Any], now: float, keep: int, ttl: float) -> None:
        with self._tx() as db:
            last = db.execute(
                "SELECT MAX(at) FROM policylang_session_calls WHERE key = ?", (key,)
            ).fetchone()[0]
            if last is not None and now - last > ttl:
                db.execute("DELETE FROM policylang_session_calls WHERE key = ?", (key,))
            db.execute(
                "INSERT INTO policylang_session_calls (key, at, call) VALUES (?, ?, ?)",
                (key, now, dumps(call)),
            )
            db.execute(
                "DELETE FROM policylang_session_calls WHERE key = ? AND id NOT IN "
                "(SELECT id FROM policylang_session_calls WHERE key = ? ORDER BY id DESC LIMIT ?)",
                (key, key, keep),
            )


# Scripts run behind the lost-state check of policylang.runtime.stores (_EPOCH), so a session's
# history is read and written in the same atomic step that checks the data was not lost.
# KEYS[1]: the session's list. Load returns its items; append takes ARGV: call, keep, ttl (s).
_LOAD = """
return reply(redis.call('LRANGE', KEYS[1], 0, -1))
"""
_APPEND = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('INCR', SEQ_KEY)
return reply({})
"""


class RedisSessionStore:
    """Session history in Redis: one list per session, trimmed to ``keep``, expiring after ``ttl``.

    Shares the lost-state guard of :class:`~policylang.runtime.stores.RedisStore`: when the
    server lost its data (restart without persistence, FLUSHALL, eviction, stale replica),
    loading or appending raises ``StoreUnavailable`` (the engine denies) for ``lost_grace``
    seconds, by default the longest session ttl seen, unless ``on_lost="reset"``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        timeout: float = 0.25,
        prefix: str = "policylang:",
        on_lost: str = "deny",
        lost_grace: float | None = None,
    ):
        from policylang.runtime.stores import _EPOCH, RedisStore

        # One client setup (bounded timeouts, no retries) and one lost-state guard for limits
        # and sessions alike.
        self._limits = RedisStore(
            url,
            client=client,
            timeout=timeout,
            prefix=prefix,
            on_lost=on_lost,
            lost_grace=lost_grace,
        )
        self.client = self._limits.client
        self.prefix = prefix
        self._errors = self._limits._errors
        self._load = self.client.register_script(_EPOCH + _LOAD)
        self._append = self.client.register_script(_EPOCH + _APPEND)

    def _key(self, key: str) -> str:
        return self.prefix + "s:" + key

    def reset_lost(self) -> None:
        """End the fail-closed period after a loss (an operator's decision)."""
        self._limits.reset_lost()

    def load(self, key: str, now: float, ttl: float) -> list[dict[str, Any]]:
        items = self._limits._call(self._load, [self._key(key)], [], float(ttl))
        return [loads(item) for item in items]

    def append(self, key: str, call: dict[str, Any], now: float, keep: int, ttl: float) -> None:
        self._limits._call(
            self._append,
            [self._key(key)],
            [dumps(call), str(int(keep)), str(max(int(ttl), 1))],
            float(ttl),
        )
