"""Rate-limit stores shared between processes: a SQLite file and Redis.

Both implement the protocol of :mod:`policylang.runtime.limits` with the same
algorithm as :class:`~policylang.runtime.limits.MemoryStore` — an exact
sliding-window log — so that any store admits the same calls for the same
arrival schedule:

* an event recorded at ``ts`` counts while ``ts > now - window``;
* a request fits when ``used + cost <= limit``; ``acquire`` checks every
  request and, only if all fit and ``consume`` is true, records them all, in
  one atomic step;
* events recorded under a receipt id are tagged with it; ``refund`` with that
  receipt takes back all of those events (so once at most, and nothing for a
  receipt that recorded nothing); ``refund`` without one takes back the most
  recently recorded event of the same cost.

Any failure to reach the store (a locked, read-only or full SQLite file, a
Redis server that is down or slow) raises
:class:`~policylang.errors.StoreUnavailable` within a bounded time; the
engine then denies the call (``store_unavailable``), or skips limits declared
``fail open``.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from typing import Any

from policylang.errors import StoreUnavailable
from policylang.runtime.limits import LimitOutcome, LimitRequest

_EPS = 1e-9  # the same tolerance as MemoryStore


# ---------------------------------------------------------------- SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS policylang_events (
    id      INTEGER PRIMARY KEY,
    key     TEXT    NOT NULL,
    ts      REAL    NOT NULL,
    cost    REAL    NOT NULL,
    expires REAL    NOT NULL,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS policylang_events_key_ts ON policylang_events (key, ts);
CREATE INDEX IF NOT EXISTS policylang_events_expires ON policylang_events (expires);
"""


class SQLiteStore:
    """A sliding-window log in a SQLite file, shared by every process on one host.

    Each ``acquire`` runs in one ``BEGIN IMMEDIATE`` transaction (the write
    lock is taken before reading), so check-and-consume is atomic across
    threads and processes. The file is in WAL mode. Waiting for the lock is
    bounded by ``busy_timeout`` seconds; after that, or on any other SQLite
    error (read-only file, disk full, corrupt file), ``StoreUnavailable`` is
    raised.

    ``path`` may be a ``file:`` URI (``file:limits.db?mode=ro``). Connections
    are opened lazily, one per thread (and again after a fork), so an engine
    can be built while the file is unreachable; :meth:`ping` checks it eagerly.
    """

    SWEEP_EVERY = 1000  # acquires between sweeps of expired rows of all keys

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 2.0,
        synchronous: str = "NORMAL",
    ):
        self.path = os.fspath(path)
        self.busy_timeout = float(busy_timeout)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.synchronous = synchronous.upper()
        self._local = threading.local()
        self._ops = 0
        self._ops_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []

    # ---- connection handling

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        uri = self.path.startswith("file:")
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=uri,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                # switching a fresh file to WAL fails at once ("database is locked", the busy
                # handler is not consulted) while another process is opening it: retry in time
                deadline = time.monotonic() + self.busy_timeout
                while True:
                    try:
                        conn.execute("PRAGMA journal_mode = WAL")
                        break
                    except sqlite3.OperationalError:
                        if time.monotonic() >= deadline:
                            raise
                        time.sleep(0.005)
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'policylang_events'"
            ).fetchone():
                conn.executescript(_SCHEMA)
            elif not any(
                row[1] == "receipt" for row in conn.execute("PRAGMA table_info(policylang_events)")
            ):
                # a file from before receipts: its events keep counting, untagged (never refunded by id)
                with contextlib.suppress(
                    sqlite3.OperationalError
                ):  # another process added it first
                    conn.execute("ALTER TABLE policylang_events ADD COLUMN receipt TEXT")
        except BaseException:
            conn.close()
            raise
        local.conn = conn
        local.pid = os.getpid()
        self._all.append(conn)
        return conn

    def ping(self) -> None:
        """Open the file and take the write lock once; raises ``StoreUnavailable`` if that fails."""
        self._run(lambda c: None)

    def close(self) -> None:
        for conn in self._all:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._all.clear()
        self._local = threading.local()

    def _run(self, body: Any) -> Any:
        started = time.monotonic()
        conn = None
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.Error as exc:
            waited = time.monotonic() - started
            if conn is not None:  # a broken connection is not reused
                self._local.conn = None
            raise StoreUnavailable(
                f"SQLite store {self.path}: {exc} (after {waited:.2f}s)"
            ) from exc

    # ---- the protocol

    def acquire(
        self, requests: list[LimitRequest], now: float, consume: bool, receipt: str | None = None
    ) -> list[LimitOutcome]:
        with self._ops_lock:
            self._ops += 1
            sweep = self._ops % self.SWEEP_EVERY == 0

        def body(conn: sqlite3.Connection) -> list[LimitOutcome]:
            outcomes = []
            for r in requests:
                cutoff = now - r.window
                if consume:
                    conn.execute(
                        "DELETE FROM policylang_events WHERE key = ? AND ts <= ?", (r.key, cutoff)
                    )
                used = conn.execute(
                    "SELECT COALESCE(SUM(cost), 0.0) FROM policylang_events "
                    "WHERE key = ? AND ts > ?",
                    (r.key, cutoff),
                ).fetchone()[0]
                used = float(used)
                outcomes.append(LimitOutcome(used, used + r.cost <= r.limit + _EPS))
            if consume and all(o.fits for o in outcomes):
                conn.executemany(
                    "INSERT INTO policylang_events (key, ts, cost, expires, receipt) VALUES (?, ?, ?, ?, ?)",
                    [(r.key, now, r.cost, now + r.window, receipt) for r in requests if r.cost],
                )
            if sweep:
                conn.execute("DELETE FROM policylang_events WHERE expires <= ?", (now,))
            return outcomes

        return self._run(body)

    def refund(self, requests: list[LimitRequest], now: float, receipt: str | None = None) -> None:
        def body(conn: sqlite3.Connection) -> None:
            for r in requests:
                if receipt is not None:
                    conn.execute(
                        "DELETE FROM policylang_events WHERE key = ? AND receipt = ?",
                        (r.key, receipt),
                    )
                else:
                    conn.execute(
                        "DELETE FROM policylang_events WHERE id = (SELECT id FROM policylang_events "
                        "WHERE key = ? AND cost = ? ORDER BY id DESC LIMIT 1)",
                        (r.key, r.cost),
                    )

        self._run(body)

    def __len__(self) -> int:
        """Number of keys with recorded events (expired rows may still count until swept)."""
        return int(
            self._run(
                lambda c: c.execute("SELECT COUNT(DISTINCT key) FROM policylang_events").fetchone()[
                    0
                ]
            )
        )


# ---------------------------------------------------------------- Redis

# KEYS: one sorted set per limit key, then the sequence counter.
# ARGV: consume ("1"/"0"), use server time ("1"/"0"), now, receipt ("" for none), then limit,
# window, cost per key. Members are "<seq>:<cost>" or "<seq>:<cost>:<receipt>", scores are the
# event times. Returns
# {now, used_1, fits_1, used_2, fits_2, ...} with numbers as strings (exact floats).
_ACQUIRE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local n = #KEYS - 1
local now
if ARGV[2] == '1' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[3])
end
local consume = ARGV[1] == '1'
local used = {}
local fits = {}
local all_fit = true
for i = 1, n do
  local key = KEYS[i]
  local limit = tonumber(ARGV[2 + 3 * i])
  local window = tonumber(ARGV[3 + 3 * i])
  local cost = tonumber(ARGV[4 + 3 * i])
  local cutoff = now - window
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.17g', cutoff))
  local total = 0
  local members = redis.call('ZRANGEBYSCORE', key, '(' .. string.format('%.17g', cutoff), '+inf')
  for _, m in ipairs(members) do
    total = total + tonumber(string.match(m, '^[^:]*:([^:]*)'))
  end
  used[i] = total
  fits[i] = total + cost <= limit + 1e-9
  if not fits[i] then all_fit = false end
end
if consume and all_fit then
  for i = 1, n do
    local key = KEYS[i]
    local window = tonumber(ARGV[3 + 3 * i])
    local cost = tonumber(ARGV[4 + 3 * i])
    if cost ~= 0 then
      local seq = redis.call('INCR', KEYS[n + 1])
      local member = seq .. ':' .. ARGV[4 + 3 * i]
      if ARGV[4] ~= '' then member = member .. ':' .. ARGV[4] end
      redis.call('ZADD', key, string.format('%.17g', now), member)
    end
    local ttl = math.ceil(window * 1000) + 1000
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end
local out = {string.format('%.17g', now)}
for i = 1, n do
  out[#out + 1] = string.format('%.17g', used[i])
  out[#out + 1] = fits[i] and '1' or '0'
end
return out
"""

# KEYS: one sorted set per request; ARGV: the receipt ("" for none), then the cost per key.
# Removes every event of that receipt (with none: the newest event of that cost).
_REFUND = """
local receipt = ARGV[1]
for i = 1, #KEYS do
  local members = redis.call('ZREVRANGE', KEYS[i], 0, -1)
  for _, m in ipairs(members) do
    if receipt ~= '' then
      if string.match(m, '^[^:]*:[^:]*:(.*)$') == receipt then redis.call('ZREM', KEYS[i], m) end
    elseif tonumber(string.match(m, '^[^:]*:([^:]*)')) == tonumber(ARGV[i + 1]) then
      redis.call('ZREM', KEYS[i], m)
      break
    end
  end
end
return 1
"""


def _receipt_arg(receipt: str | None) -> str:
    """A receipt as the scripts read it: "" for none; never a ':' (the member separator)."""
    if receipt is None:
        return ""
    if not receipt or ":" in receipt:
        raise ValueError(f"a receipt id must be non-empty and free of ':', got {receipt!r}")
    return receipt


def _redis_module() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "RedisStore needs the redis client: pip install 'policylang[redis]' "
            "(or pip install 'redis>=5')"
        ) from exc
    return redis


class RedisStore:
    """A sliding-window log in Redis: one sorted set per key, checked and filled by one Lua script.

    The script checks every key and records the events of all of them in one
    atomic step. By default it reads the time on the Redis server
    (``redis.call('TIME')``) and ignores the ``now`` the engine passes, so
    hosts with skewed clocks share one timeline; the engine's ``now`` still
    drives the rules' own time. ``use_server_time=False`` uses the engine's
    ``now`` instead (replays, tests with a fixed clock). Each key expires one
    window (plus a second) after its last event.

    ``timeout`` (seconds) bounds connecting and each command; no retries are
    made, so a down or stalled server raises ``StoreUnavailable`` after at
    most ``timeout`` (a refused connection fails at once). Pass ``url``
    (``redis://host:6379/0``) or a ready ``client`` (its own timeouts apply).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        timeout: float = 0.25,
        prefix: str = "policylang:",
        use_server_time: bool = True,
    ):
        redis = _redis_module()
        if client is None:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = redis.Redis.from_url(
                url or "redis://127.0.0.1:6379/0",
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry_on_timeout=False,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
                decode_responses=False,
            )
        elif url is not None:
            raise ValueError("pass either url or client, not both")
        self.client = client
        self.timeout = timeout
        self.prefix = prefix
        self.use_server_time = use_server_time
        self._acquire = client.register_script(_ACQUIRE)
        self._refund = client.register_script(_REFUND)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.last_now: float | None = (
            None  # the time the last acquire used (server time by default)
        )

    def _key(self, key: str) -> str:
        return self.prefix + "w:" + key

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        started = time.monotonic()
        try:
            return script(keys=keys, args=args)
        except self._errors as exc:
            waited = time.monotonic() - started
            raise StoreUnavailable(
                f"Redis store: {type(exc).__name__}: {exc} (after {waited:.2f}s)"
            ) from exc

    def acquire(
        self, requests: list[LimitRequest], now: float, consume: bool, receipt: str | None = None
    ) -> list[LimitOutcome]:
        if not requests:
            return []
        keys = [self._key(r.key) for r in requests] + [self.prefix + "seq"]
        args: list[Any] = [
            "1" if consume else "0",
            "1" if self.use_server_time else "0",
            repr(float(now)),
            _receipt_arg(receipt),
        ]
        for r in requests:
            if not all(math.isfinite(v) for v in (r.limit, r.window, r.cost)):
                raise ValueError(f"limit request {r.key!r} has a non-finite number")
            args += [repr(float(r.limit)), repr(float(r.window)), repr(float(r.cost))]
        reply = self._call(self._acquire, keys, args)
        self.last_now = float(reply[0])
        return [
            LimitOutcome(float(reply[1 + 2 * i]), reply[2 + 2 * i] in (b"1", "1"))
            for i in range(len(requests))
        ]

    def refund(self, requests: list[LimitRequest], now: float, receipt: str | None = None) -> None:
        if requests:
            self._call(
                self._refund,
                [self._key(r.key) for r in requests],
                [_receipt_arg(receipt)] + [repr(float(r.cost)) for r in requests],
            )

    def ping(self) -> None:
        try:
            self.client.ping()
        except self._errors as exc:
            raise StoreUnavailable(f"Redis store: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.client.close()
