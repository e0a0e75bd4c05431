"""Approval tokens: a person's yes to exactly one confirmed call, once, anywhere.

A guard that meets a ``confirm`` without an approver callback issues a token
and raises :class:`~policylang.runtime.guard.ConfirmationRequired`. The token
is **pending**: it approves nothing until a person approves it through an
explicit call (:meth:`ApprovalTokens.approve`, usually via
``Guard.approve(token, approver="alice")``), which records who did. Then the
same call, retried with the token, runs once.

What a token is bound to (an HMAC-SHA256 over a canonical JSON payload, with
a digest per part so a mismatch says which part differs):

* the tool, the canonical arguments the engine decided on (validated,
  defaults filled in, converted), the whole canonical principal and the
  session (the policy's session id, else ``context.session_id``);
* the ids of the rules behind the confirm and the policy's content hash, so
  a token does not survive a reload that changes the policy, nor approve a
  confirm raised by a rule no person saw;
* an expiry (``ttl`` seconds, 5 minutes by default).

Its state (pending → approved or declined → used) lives in an
:class:`ApprovalStore`: in memory by default (:class:`MemoryApprovalStore`,
shared by every guard of one engine), or in a SQLite file shared by the
processes of one host (:class:`SQLiteApprovalStore`) or in Redis for many
hosts (:class:`RedisApprovalStore`), so a token is used once
across every worker that shares the store and the secret. A token the store
does not know (issued elsewhere, or forgotten after expiry) approves nothing.

Stores are bounded (``max_tokens``): expired tokens are swept first; when
every slot holds a live token, issuing another raises :class:`TokenError`
(the guard denies the call ``approval_unavailable``) and the refusal is
counted in ``store.stats["refused_full"]``. Live tokens are never evicted,
since forgetting a used token would let it be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from policylang.errors import PolicyError, StoreUnavailable
from policylang.runtime import options as _options

PENDING, APPROVED, DECLINED, USED = "pending", "approved", "declined", "used"
_VERSION = 2
# the parts a token binds, and how a mismatch is told to a person
_PARTS = {
    "t": "tool",
    "a": "different arguments",
    "p": "a different principal",
    "s": "a different session",
    "r": "different rules (the policy asks for approval for another reason now)",
    "h": "a different policy (it has been reloaded since)",
}


class TokenError(PolicyError):
    """An approval token that does not approve this call (malformed, forged, expired, unapproved, used...)."""

    code = "invalid_approval"


def canonical_args(args: Any) -> str:
    """One text per value: sorted keys, no spaces, ASCII; non-JSON values by their repr."""
    return json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=repr)


def args_digest(args: Any) -> str:
    return hashlib.sha256(canonical_args(args).encode()).hexdigest()


def _part(value: Any) -> str:
    """A short digest of one bound part (128 bits: collisions are out of reach)."""
    return _b64(hashlib.sha256(canonical_args(value).encode()).digest()[:16])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def binding(
    tool: str, args: Any, principal: Any, session: Any, rules: list[str], policy_hash: str
) -> dict[str, Any]:
    """What a token is bound to, as the digests it carries."""
    return {
        "t": tool,
        "a": _part(args),
        "p": _part(principal),
        "s": _part(session),
        "r": _part(sorted(rules)),
        "h": policy_hash,
    }


# ---------------------------------------------------------------- stores


class ApprovalStore(Protocol):
    """Where token states live. Every method is atomic; store failures raise ``StoreUnavailable``."""

    def add(self, token_id: str, expires: float, now: float) -> None:
        """Record a new pending token; raises TokenError when the store is full of live tokens."""

    def decide(self, token_id: str, approved: bool, approver: str, now: float) -> None:
        """A person's answer to a pending token; raises TokenError unless it is pending and live."""

    def consume(self, token_id: str, now: float) -> str:
        """Approved → used, returning who approved; raises TokenError otherwise."""

    def state(self, token_id: str, now: float) -> str | None:
        """The token's state, or None when the store does not know it (or it expired)."""


def _not_usable(state: str | None) -> str:
    """Why a token in ``state`` cannot take the step asked of it."""
    if state is None:
        return "the approval token is unknown here (issued elsewhere, or expired)"
    return {
        PENDING: "the approval token has not been approved by a person yet",
        APPROVED: "the approval token has already been approved",
        DECLINED: "the approval token was declined",
    }.get(state, "the approval token has already been used")


class MemoryApprovalStore:
    """Token states in this process (shared by every guard of one engine by default)."""

    def __init__(self, max_tokens: int = 100_000):
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.max_tokens = max_tokens
        self._items: dict[str, list[Any]] = {}  # id -> [state, expires, approver]
        self._lock = threading.Lock()
        self.stats = {"refused_full": 0, "expired_swept": 0}

    def __len__(self) -> int:
        return len(self._items)

    def _live(self, token_id: str, now: float) -> list[Any] | None:
        item = self._items.get(token_id)
        return item if item is not None and item[1] > now else None

    def add(self, token_id: str, expires: float, now: float) -> None:
        with self._lock:
            if len(self._items) >= self.max_tokens:
                dead = [k for k, v in self._items.items() if v[1] <= now]
                for k in dead:
                    del self._items[k]
                self.stats["expired_swept"] += len(dead)
                if len(self._items) >= self.max_tokens:
                    self.stats["refused_full"] += 1
                    raise TokenError(
                        f"the approval store is full ({self.max_tokens} live tokens); "
                        "try again when some have been used or have expired"
                    )
            self._items[token_id] = [PENDING, expires, None]

    def decide(self, token_id: str, approved: bool, approver: str, now: float) -> None:
        with self._lock:
            item = self._live(token_id, now)
            if item is None or item[0] != PENDING:
                raise TokenError(_not_usable(item[0] if item else None))
            item[0], item[2] = (APPROVED if approved else DECLINED), approver

    def consume(self, token_id: str, now: float) -> str:
        with self._lock:
            item = self._live(token_id, now)
            if item is None or item[0] != APPROVED:
                raise TokenError(_not_usable(item[0] if item else None))
            item[0] = USED
            return str(item[2])

    def state(self, token_id: str, now: float) -> str | None:
        with self._lock:
            item = self._live(token_id, now)
            return item[0] if item is not None else None


class SQLiteApprovalStore:
    """Token states in a SQLite file (WAL) shared by the processes of one host.

    Each operation is one ``BEGIN IMMEDIATE`` transaction, so a token moves
    from approved to used exactly once across processes. Waiting for the lock
    is bounded by ``busy_timeout``; any SQLite error raises
    ``StoreUnavailable`` (the guard then denies: no approval is honoured that
    cannot be recorded).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_tokens: int = 1_000_000,
        busy_timeout: float = 2.0,
    ):
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.path = os.fspath(path)
        self.max_tokens = max_tokens
        self.busy_timeout = float(busy_timeout)
        self._local = threading.local()
        self.stats = {"refused_full": 0, "expired_swept": 0}
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS policylang_approvals (id TEXT PRIMARY KEY, "
                "state TEXT NOT NULL, expires REAL NOT NULL, approver TEXT)"
            )
            db.execute(
                "CREATE INDEX IF NOT EXISTS policylang_approvals_expires "
                "ON policylang_approvals (expires)"
            )

    def _db(self) -> sqlite3.Connection:
        local = self._local
        if (
            getattr(local, "pid", None) != os.getpid()
        ):  # one connection per thread, again after a fork
            try:
                local.db = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    uri=self.path.startswith("file:"),
                )
                local.db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"approval store {self.path}: {exc}") from None
            local.pid = os.getpid()
        db: sqlite3.Connection = local.db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"approval store {self.path}: {exc}") from None

    def _row(
        self, db: sqlite3.Connection, token_id: str, now: float
    ) -> tuple[str, str | None] | None:
        row = db.execute(
            "SELECT state, approver FROM policylang_approvals WHERE id = ? AND expires > ?",
            (token_id, now),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def add(self, token_id: str, expires: float, now: float) -> None:
        with self._tx() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM policylang_approvals").fetchone()
            if count >= self.max_tokens:
                swept = db.execute(
                    "DELETE FROM policylang_approvals WHERE expires <= ?", (now,)
                ).rowcount
                self.stats["expired_swept"] += swept
                if count - swept >= self.max_tokens:
                    self.stats["refused_full"] += 1
                    raise TokenError(
                        f"the approval store is full ({self.max_tokens} live tokens); "
                        "try again when some have been used or have expired"
                    )
            db.execute(
                "INSERT INTO policylang_approvals (id, state, expires) VALUES (?, ?, ?)",
                (token_id, PENDING, expires),
            )

    def decide(self, token_id: str, approved: bool, approver: str, now: float) -> None:
        with self._tx() as db:
            row = self._row(db, token_id, now)
            if row is None or row[0] != PENDING:
                raise TokenError(_not_usable(row[0] if row else None))
            db.execute(
                "UPDATE policylang_approvals SET state = ?, approver = ? WHERE id = ?",
                (APPROVED if approved else DECLINED, approver, token_id),
            )

    def consume(self, token_id: str, now: float) -> str:
        with self._tx() as db:
            row = self._row(db, token_id, now)
            if row is None or row[0] != APPROVED:
                raise TokenError(_not_usable(row[0] if row else None))
            db.execute("UPDATE policylang_approvals SET state = ? WHERE id = ?", (USED, token_id))
            return str(row[1])

    def state(self, token_id: str, now: float) -> str | None:
        with self._tx() as db:
            row = self._row(db, token_id, now)
        return row[0] if row else None


_REDIS_ADD = """
local swept = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {0, swept} end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[2], 'state', 'pending', 'exp', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {1, swept}
"""
# from-state, to-state, approver ('' keeps it), now -> {'ok' or the state found ('' unknown), approver}
_REDIS_MOVE = """
local st = redis.call('HGET', KEYS[1], 'state')
local exp = tonumber(redis.call('HGET', KEYS[1], 'exp') or '0')
if (not st) or exp <= tonumber(ARGV[4]) then return {'', ''} end
local who = redis.call('HGET', KEYS[1], 'approver') or ''
if st ~= ARGV[1] then return {st, who} end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'approver', ARGV[3])
  who = ARGV[3]
end
return {'ok', who}
"""


class RedisApprovalStore:
    """Token states in Redis, shared by every host: one hash per token, one script per step.

    Each step (add, answer, spend) is one Lua script, so a token moves from
    approved to used exactly once across all workers. The live set is a
    sorted set scored by expiry (for the bound); each token's hash expires
    with the token. Client setup (bounded timeouts, no retries) is the one of
    :class:`~policylang.runtime.stores.RedisStore`; any Redis error raises
    ``StoreUnavailable``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        timeout: float = 0.25,
        prefix: str = "policylang:",
        max_tokens: int = 1_000_000,
    ):
        from policylang.runtime.stores import RedisStore

        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        limits = RedisStore(url, client=client, timeout=timeout, prefix=prefix)
        self.client, self.prefix, self.max_tokens = limits.client, prefix, max_tokens
        self._errors = limits._errors
        self._add = self.client.register_script(_REDIS_ADD)
        self._move = self.client.register_script(_REDIS_MOVE)
        self.stats = {"refused_full": 0, "expired_swept": 0}

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except self._errors as exc:
            raise StoreUnavailable(f"redis approval store: {type(exc).__name__}: {exc}") from None

    def _key(self, token_id: str) -> str:
        return f"{self.prefix}a:{token_id}"

    def add(self, token_id: str, expires: float, now: float) -> None:
        ttl = max(int(expires - now) + 1, 1)
        added, swept = self._run(
            self._add,
            [self.prefix + "a:live", self._key(token_id)],
            [repr(now), repr(expires), self.max_tokens, token_id, ttl],
        )
        self.stats["expired_swept"] += int(swept)
        if not int(added):
            self.stats["refused_full"] += 1
            raise TokenError(
                f"the approval store is full ({self.max_tokens} live tokens); "
                "try again when some have been used or have expired"
            )

    def _step(self, token_id: str, src: str, dst: str, approver: str, now: float) -> str:
        found, who = (
            v.decode() if isinstance(v, bytes) else str(v)
            for v in self._run(self._move, [self._key(token_id)], [src, dst, approver, repr(now)])
        )
        if found != "ok":
            raise TokenError(_not_usable(found or None))
        return who

    def decide(self, token_id: str, approved: bool, approver: str, now: float) -> None:
        self._step(token_id, PENDING, APPROVED if approved else DECLINED, approver, now)

    def consume(self, token_id: str, now: float) -> str:
        return self._step(token_id, APPROVED, USED, "", now)

    def state(self, token_id: str, now: float) -> str | None:
        try:
            state, exp = self.client.hmget(self._key(token_id), "state", "exp")
        except self._errors as exc:
            raise StoreUnavailable(f"redis approval store: {type(exc).__name__}: {exc}") from None
        if state is None or float(exp or 0) <= now:
            return None
        return state.decode() if isinstance(state, bytes) else str(state)


# ---------------------------------------------------------------- tokens


class ApprovalTokens:
    """Issues, approves and redeems signed tokens; see the module docstring for what they bind.

    Share one ``secret`` and one ``store`` (e.g. :class:`SQLiteApprovalStore`)
    between processes to honour a token in any of them, exactly once.
    """

    def __init__(
        self,
        secret: bytes | None = None,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        store: ApprovalStore | None = None,
    ):
        if secret is not None and not isinstance(secret, bytes):
            raise _options.fail(
                "ApprovalTokens", "secret", "bytes (or None for a random secret)", secret
            )
        if secret is not None and len(secret) < 16:
            raise ValueError(
                "ApprovalTokens(secret=...): the approval secret must be at least 16 bytes"
            )
        ttl = _options.positive_number("ApprovalTokens", "ttl", ttl)
        _options.function("ApprovalTokens", "clock", clock, optional=False)
        self.secret = secret if secret is not None else os.urandom(32)
        self.ttl = float(ttl)
        self.clock = clock
        self.store: ApprovalStore = store if store is not None else MemoryApprovalStore()

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())

    def issue(self, bound: Mapping[str, Any], decision_id: str = "") -> str:
        """A new pending token for the call ``bound`` describes (see :func:`binding`)."""
        now = self.clock()
        payload = {
            "v": _VERSION,
            "id": os.urandom(16).hex(),
            "exp": round(now + self.ttl, 3),
            "d": decision_id,
            **bound,
        }
        self.store.add(payload["id"], payload["exp"], now)
        body = _b64(canonical_args(payload).encode())
        return f"{body}.{self._sign(body)}"

    def read(self, token: Any) -> dict[str, Any]:
        """The payload of a well-formed, genuine, unexpired token; raises TokenError otherwise."""
        if not isinstance(token, str) or len(token) > 4096 or token.count(".") != 1:
            raise TokenError("the approval token is malformed")
        body, sig = token.split(".")
        if not hmac.compare_digest(sig.encode(), self._sign(body).encode()):
            raise TokenError("the approval token's signature is not valid")
        try:
            payload = json.loads(_unb64(body))
        except ValueError:
            raise TokenError("the approval token is malformed") from None
        if (
            not isinstance(payload, dict)
            or payload.get("v") != _VERSION
            or not isinstance(payload.get("id"), str)
        ):
            raise TokenError("the approval token is malformed (or from another version)")
        exp = payload.get("exp")
        if not isinstance(exp, int | float) or exp <= self.clock():
            raise TokenError("the approval token has expired")
        return payload

    def approve(self, token: Any, approver: str) -> dict[str, Any]:
        """A person approves the call behind ``token``; returns its payload."""
        return self._answer(token, True, approver)

    def decline(self, token: Any, approver: str) -> dict[str, Any]:
        """A person declines it: the token can never run the call."""
        return self._answer(token, False, approver)

    def _answer(self, token: Any, approved: bool, approver: str) -> dict[str, Any]:
        if not isinstance(approver, str) or not approver.strip():
            raise ValueError(
                "say who approves: approver must be a non-empty string (a person's id)"
            )
        payload = self.read(token)
        self.store.decide(payload["id"], approved, approver, self.clock())
        return payload

    def state(self, token: Any) -> str | None:
        return self.store.state(self.read(token)["id"], self.clock())

    def redeem(self, payload: Mapping[str, Any], bound: Mapping[str, Any]) -> str:
        """Spend an approved token on the call ``bound`` describes; returns who approved it."""
        for key, what in _PARTS.items():
            if payload.get(key) != bound[key]:
                if key == "t":
                    raise TokenError(
                        f"the approval token is for {payload.get('t')}, not {bound['t']}"
                    )
                raise TokenError(f"the approval token was issued for {what}")
        return self.store.consume(str(payload["id"]), self.clock())


__all__ = [
    "APPROVED",
    "DECLINED",
    "PENDING",
    "USED",
    "ApprovalStore",
    "ApprovalTokens",
    "MemoryApprovalStore",
    "RedisApprovalStore",
    "SQLiteApprovalStore",
    "TokenError",
    "args_digest",
    "binding",
    "canonical_args",
]
