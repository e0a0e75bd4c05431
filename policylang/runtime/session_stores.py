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
from policylang.runtime.sessions import is_kept_apart

_ESCAPE = "$esc"


def _encode(value: Any) -> Any:
    """A JSON-ready copy: typed values tagged, caller maps that look like a tag escaped.

    Any one-key map whose key starts with ``$`` (a tag, ``$esc`` itself, or any
    future tag) is wrapped as ``{"$esc": {...}}``, so caller data such as
    ``{"$ts": "garbage"}`` comes back as that map and never as a value to decode.
    """
    if isinstance(value, dict):
        encoded = {k: _encode(v) for k, v in value.items()}
        if len(encoded) == 1 and str(next(iter(encoded))).startswith("$"):
            return {_ESCAPE: encoded}
        return encoded
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, datetime):
        return {"$ts": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$dur": value.total_seconds()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in session history")


def _decode(value: Any) -> Any:
    """The inverse of :func:`_encode`: tags become values, ``$esc`` unwraps to the caller's map."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, v),) = value.items()
        if tag == _ESCAPE and isinstance(v, dict):
            return {k: _decode(x) for k, x in v.items()}
        if tag == "$ts":
            return datetime.fromisoformat(v)
        if tag == "$date":
            return date.fromisoformat(v)
        if tag == "$dur":
            return timedelta(seconds=v)
        if tag == "$b64":
            return base64.b64decode(v)
    return {k: _decode(v) for k, v in value.items()}


def dumps(call: dict[str, Any]) -> str:
    return json.dumps(_encode(call), separators=(",", ":"), allow_nan=True)


def loads(text: str | bytes) -> dict[str, Any]:
    decoded = _decode(json.loads(text))
    if not isinstance(decoded, dict):
        raise ValueError("a stored session call is not a map")
    return decoded


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
            columns = [row[1] for row in db.execute("PRAGMA table_info(policylang_session_calls)")]
            if "allowed" not in columns:  # a file from before allowed calls had their own window
                db.execute(
                    "ALTER TABLE policylang_session_calls "
                    "ADD COLUMN allowed INTEGER NOT NULL DEFAULT 0"
                )
                db.execute(
                    "UPDATE policylang_session_calls SET allowed = 1 "
                    "WHERE json_extract(call, '$.effect') = 'allow'"
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
            allowed = int(is_kept_apart(call))
            db.execute(
                "INSERT INTO policylang_session_calls (key, at, call, allowed) VALUES (?, ?, ?, ?)",
                (key, now, dumps(call), allowed),
            )
            # trim only the window the new call went into: a denied call never evicts an allowed one
            db.execute(
                "DELETE FROM policylang_session_calls WHERE key = ? AND allowed = ? AND id NOT IN "
                "(SELECT id FROM policylang_session_calls WHERE key = ? AND allowed = ? "
                "ORDER BY id DESC LIMIT ?)",
                (key, allowed, key, allowed, keep),
            )


# Scripts run behind the lost-state check of policylang.runtime.stores (_EPOCH), so a session's
# history is read and written in the same atomic step that checks the data was not lost.
# KEYS: (allowed calls, other calls, sequence counter). Load returns both windows; append takes
# ARGV: call, keep, ttl (s), numbers the call, pushes it onto its window (allowed calls or the
# rest), trims only that window, and keeps all three keys alive for the ttl.
_LOAD = """
return reply({redis.call('LRANGE', KEYS[1], 0, -1), redis.call('LRANGE', KEYS[2], 0, -1)})
"""
_APPEND = """
local n = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[1], n .. '|' .. ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3])) end
redis.call('INCR', SEQ_KEY)
return reply({})
"""


def _numbered(item: bytes | str) -> tuple[int, str]:
    """(sequence number, JSON) of a stored Redis item ``n|json`` (a bare JSON item sorts first)."""
    text = item.decode("utf-8") if isinstance(item, bytes) else item
    head, sep, rest = text.partition("|")
    if sep and head.isdigit():
        return int(head), rest
    return 0, text


class RedisSessionStore:
    """Session history in Redis: per session, a list of allowed calls and a list of the rest.

    Each list is trimmed to ``keep`` on its own (so denied calls never push an
    allowed one out) and every item carries a per-session sequence number, by
    which :meth:`load` merges the two back into call order. All keys expire after ``ttl``.

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

    def _keys(self, key: str) -> list[str]:
        """(allowed calls, other calls, sequence counter) of one session."""
        return [self._key(key), self.prefix + "sd:" + key, self.prefix + "sn:" + key]

    def load(self, key: str, now: float, ttl: float) -> list[dict[str, Any]]:
        allowed, other, counter = self._keys(key)
        parts = self._limits._call(self._load, [allowed, other, counter], [], float(ttl))
        items = [_numbered(item) for part in parts for item in part]
        items.sort(key=lambda item: item[0])
        return [loads(text) for _, text in items]

    def append(self, key: str, call: dict[str, Any], now: float, keep: int, ttl: float) -> None:
        allowed, other, counter = self._keys(key)
        window = allowed if is_kept_apart(call) else other
        self._limits._call(
            self._append,
            [window, allowed if window == other else other, counter],
            [dumps(call), str(int(keep)), str(max(int(ttl), 1))],
            float(ttl),
        )
