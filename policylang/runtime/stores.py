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
import logging
import math
import os
import sqlite3
import threading
import time
from typing import Any

from policylang.errors import StoreUnavailable
from policylang.runtime.limits import LimitOutcome, LimitRequest

_EPS = 1e-9  # the same tolerance as MemoryStore
_ON_LOST = ("deny", "reset")
_log = logging.getLogger("policylang.stores")


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

# KEYS: one sorted set per limit key, then the _EPOCH keys (the first is the sequence counter).
# ARGV: consume ("1"/"0"), use server time ("1"/"0"), now, receipt ("" for none), then limit,
# window, cost per key. Members are "<seq>:<cost>" or "<seq>:<cost>:<receipt>", scores are the
# event times. Returns
# {now, used_1, fits_1, used_2, fits_2, ...} with numbers as strings (exact floats).
_REPLICATE = "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"

# Lost-state check, run first inside every script (so in the same atomic step as the data).
# Trailing KEYS: the sequence counter, the epoch key, the lost-state key. Trailing ARGV: the epoch
# this client last saw ("" for none yet), a fresh epoch id, the highest sequence number it saw,
# the grace in ms, the mode ("deny"/"reset"). The data is lost when the epoch key is gone (FLUSHALL,
# a restart without persistence, eviction), differs from the one seen (another client found the
# loss first) or the sequence went backwards (a failover to a stale replica). In "deny" mode the
# lost-state key then lives for the grace and every script refuses while it exists.
# Every reply starts {state, epoch, sequence, lost ms left}: state is ok, reset or lost.
_EPOCH = """
local EK, EA = #KEYS, #ARGV
local SEQ_KEY, EPOCH_KEY, LOST_KEY = KEYS[EK - 2], KEYS[EK - 1], KEYS[EK]
local function epoch_check()
  local expected, fresh = ARGV[EA - 4], ARGV[EA - 3]
  local seen, grace, mode = tonumber(ARGV[EA - 2]), tonumber(ARGV[EA - 1]), ARGV[EA]
  local cur = redis.call('GET', EPOCH_KEY)
  local seq = tonumber(redis.call('GET', SEQ_KEY) or '0')
  local lost = false
  if not cur then
    redis.call('SET', EPOCH_KEY, fresh)
    cur = fresh
    lost = expected ~= ''
  elseif expected ~= '' and cur ~= expected then
    lost = true
  elseif seq < seen then
    redis.call('SET', EPOCH_KEY, fresh)
    cur = fresh
    lost = true
  end
  if lost and mode == 'deny' then redis.call('SET', LOST_KEY, cur, 'PX', grace, 'NX') end
  if mode == 'deny' then
    local left = redis.call('PTTL', LOST_KEY)
    if left > 0 or left == -1 then return cur, 'lost', left end
  end
  if lost then return cur, 'reset', 0 end
  return cur, 'ok', 0
end
local EPOCH, STATE, LEFT = epoch_check()
if STATE == 'lost' then return {STATE, EPOCH, redis.call('GET', SEQ_KEY) or '0', LEFT} end
local function reply(out)
  local head = {STATE, EPOCH, redis.call('GET', SEQ_KEY) or '0', 0}
  for _, v in ipairs(out) do head[#head + 1] = v end
  return head
end
"""

_ACQUIRE = (
    _REPLICATE
    + _EPOCH
    + """
local n = #KEYS - 3
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
return reply(out)
"""
)

# KEYS: one sorted set per request; ARGV: the receipt ("" for none), then the cost per key.
# Removes every event of that receipt (with none: the newest event of that cost).
_REFUND = (
    _EPOCH
    + """
local receipt = ARGV[1]
for i = 1, #KEYS - 3 do
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
return reply({})
"""
)


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

    Lost state: a Redis that restarts empty (no persistence), fails over to a
    stale replica, evicts keys or is flushed would silently start every quota
    again from zero. So the store writes an epoch key (``<prefix>epoch``, a
    random id) with the data and remembers it and the highest event sequence
    number it saw; every script checks both in the same atomic step. When the
    epoch is gone or changed, or the sequence went backwards, the data is
    lost: with ``on_lost="deny"`` (the default) every call raises
    ``StoreUnavailable`` (the engine denies, ``store_unavailable``) for
    ``lost_grace`` seconds — by default the longest window this store has
    seen, so no window can be reset early — shared by every client through
    ``<prefix>lost``; :meth:`reset_lost` ends it early (an operator's
    decision). ``on_lost="reset"`` logs a warning and starts afresh. A
    deployment should run Redis with persistence (``appendonly yes`` or RDB
    snapshots) and ``maxmemory-policy noeviction`` so this stays rare.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        timeout: float = 0.25,
        prefix: str = "policylang:",
        use_server_time: bool = True,
        on_lost: str = "deny",
        lost_grace: float | None = None,
    ):
        if on_lost not in _ON_LOST:
            raise ValueError(f"on_lost must be 'deny' or 'reset', got {on_lost!r}")
        if lost_grace is not None and (
            isinstance(lost_grace, bool)
            or not isinstance(lost_grace, int | float)
            or not math.isfinite(lost_grace)
            or lost_grace <= 0
        ):
            raise ValueError(
                f"lost_grace must be a positive number of seconds or None, got {lost_grace!r}"
            )
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
        self.on_lost = on_lost
        self.lost_grace = lost_grace
        self._acquire = client.register_script(_ACQUIRE)
        self._refund = client.register_script(_REFUND)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.last_now: float | None = (
            None  # the time the last acquire used (server time by default)
        )
        # What this client last saw of the server's data: its epoch and highest sequence number.
        self._epoch = b""
        self._seq_seen = 0
        self._epoch_prefix = prefix  # the keyspace the two above belong to
        self._longest = 0.0  # the longest window (or session ttl) seen: the default grace
        self._epoch_lock = threading.Lock()

    def _key(self, key: str) -> str:
        return self.prefix + "w:" + key

    def _call(self, script: Any, keys: list[str], args: list[Any], longest: float = 0.0) -> Any:
        """Run a script with the lost-state check in front; returns the script's own reply.

        ``longest`` is the longest window (or session ttl) this call protects: it widens the
        default grace, so a loss is never forgiven before every window it reset has passed.
        """
        p = self.prefix
        with self._epoch_lock:
            if p != self._epoch_prefix:  # another keyspace: nothing seen of it yet
                self._epoch, self._seq_seen, self._epoch_prefix = b"", 0, p
            self._longest = max(self._longest, longest)
            grace = self.lost_grace if self.lost_grace is not None else max(self._longest, 1.0)
            trailer = [self._epoch, os.urandom(12).hex(), str(self._seq_seen)]
        trailer += [str(math.ceil(grace * 1000)), self.on_lost]
        started = time.monotonic()
        try:
            reply = script(keys=[*keys, p + "seq", p + "epoch", p + "lost"], args=args + trailer)
        except self._errors as exc:
            waited = time.monotonic() - started
            raise StoreUnavailable(
                f"Redis store: {type(exc).__name__}: {exc} (after {waited:.2f}s)"
            ) from exc
        state, epoch, seq, left = reply[0], reply[1], int(reply[2]), int(reply[3])
        with self._epoch_lock:
            # After a loss the server's count restarts: adopt it, or every call would be "lost".
            self._seq_seen = seq if state != b"ok" else max(self._seq_seen, seq)
            self._epoch = epoch
        if state == b"lost":
            wait = "until an operator resets it" if left < 0 else f"for {left / 1000:.0f}s more"
            raise StoreUnavailable(
                "the Redis store lost its data (epoch changed: restarted empty, flushed, evicted "
                f"or failed over to a stale replica): limits and sessions fail closed {wait} "
                "(the longest window), or until an operator resets it (RedisStore.reset_lost())"
            )
        if state == b"reset":
            _log.warning(
                "the Redis store at prefix %r lost its data (epoch changed): quotas and session "
                "history start again from zero (on_lost='reset')",
                self.prefix,
            )
        return reply[4:]

    def reset_lost(self) -> None:
        """End the fail-closed period after a loss (an operator's decision: the quotas restart)."""
        try:
            self.client.delete(self.prefix + "lost")
        except self._errors as exc:
            raise StoreUnavailable(f"Redis store: {type(exc).__name__}: {exc}") from exc

    def acquire(
        self, requests: list[LimitRequest], now: float, consume: bool, receipt: str | None = None
    ) -> list[LimitOutcome]:
        if not requests:
            return []
        keys = [self._key(r.key) for r in requests]
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
        reply = self._call(self._acquire, keys, args, max(float(r.window) for r in requests))
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
