"""Session history: what an agent did earlier in the same session.

The engine records every decided call under the policy's session key
(``session by context.session_id keep 100 for 1d``) and shows the history to
conditions as ``session.calls``. The caller never supplies it, so an injected
instruction cannot rewrite it. Bounded three ways: at most ``keep`` allowed
calls and, apart from them, at most ``keep`` other calls (denied, or confirms
not yet approved) per session, so calls that cost nothing can never push an
allowed call out of the window; a session untouched for ``ttl`` is forgotten;
and the memory store holds at most ``max_sessions`` live sessions, refusing a
new one at the bound instead of evicting another caller's history.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from policylang.errors import StoreUnavailable


class SessionStore(Protocol):
    def load(self, key: str, now: float, ttl: float) -> list[dict[str, Any]]:
        """The remembered calls of a session, oldest first ([] if none or expired)."""
        ...

    def append(self, key: str, call: dict[str, Any], now: float, keep: int, ttl: float) -> None: ...


def is_kept_apart(call: dict[str, Any]) -> bool:
    """Is this an allowed call, held in its own ``keep``-long window?

    Only ``allow`` is: denied calls and unapproved confirms cost the caller
    nothing, so they live in a second window and can never evict an allowed one.
    """
    return call.get("effect") == "allow"


def trim(calls: list[dict[str, Any]], keep: int) -> None:
    """Drop, in place, the oldest calls past ``keep`` allowed and ``keep`` others."""
    allowed = sum(1 for c in calls if is_kept_apart(c))
    extra = {True: allowed - keep, False: len(calls) - allowed - keep}
    if extra[True] <= 0 and extra[False] <= 0:
        return
    kept: list[dict[str, Any]] = []
    for call in calls:
        bucket = is_kept_apart(call)
        if extra[bucket] > 0:
            extra[bucket] -= 1
        else:
            kept.append(call)
    calls[:] = kept


class MemorySessionStore:
    """In-process history, at most ``max_sessions`` live sessions.

    At the bound, expired sessions are swept first; if all are live, a NEW
    session is refused with :class:`StoreUnavailable` (the engine then denies
    ``store_unavailable``) rather than evicting someone else's history: with
    caller-chosen session ids, eviction would let fresh ids erase a victim's facts.
    """

    def __init__(self, max_sessions: int = 100_000):
        if type(max_sessions) is not int or max_sessions < 1:
            raise ValueError(
                f"MemorySessionStore: max_sessions must be a positive int, got {max_sessions!r}"
            )
        self.max_sessions = max_sessions
        # key -> (last touched, ttl, calls); ordered least recently touched first
        self._sessions: OrderedDict[str, tuple[float, float, list[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, key: str, now: float, ttl: float) -> list[dict[str, Any]]:
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                return []
            touched, _, calls = entry
            if now - touched > ttl:
                del self._sessions[key]
                return []
            return list(calls)

    def _sweep(self, now: float) -> None:
        """Forget expired sessions, oldest touched first (stops at the first live one)."""
        while self._sessions:
            key, (touched, ttl, _) = next(iter(self._sessions.items()))
            if now - touched <= ttl:
                return
            del self._sessions[key]

    def append(self, key: str, call: dict[str, Any], now: float, keep: int, ttl: float) -> None:
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None or now - entry[0] > ttl:
                if entry is not None:
                    del self._sessions[key]
                if len(self._sessions) >= self.max_sessions:
                    self._sweep(now)
                if len(self._sessions) >= self.max_sessions:
                    raise StoreUnavailable(
                        f"the in-memory session store is full ({self.max_sessions} live "
                        "sessions): no new session until one expires"
                    )
                calls: list[dict[str, Any]] = []
            else:
                calls = entry[2]
            calls.append(call)
            trim(calls, keep)
            self._sessions[key] = (now, ttl, calls)
            self._sessions.move_to_end(key)

    def __len__(self) -> int:
        return len(self._sessions)


def wall_clock() -> float:
    return time.time()
