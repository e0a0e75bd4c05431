"""Session history: what an agent did earlier in the same session.

The engine records every decided call under the policy's session key
(``session by context.session_id keep 100 for 1d``) and shows the history to
conditions as ``session.calls``. The caller never supplies it, so an injected
instruction cannot rewrite it. Bounded twice: at most ``keep`` calls per
session, and a session untouched for ``ttl`` is forgotten.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Any, Protocol


class SessionStore(Protocol):
    def load(self, key: str, now: float, ttl: float) -> list[dict[str, Any]]:
        """The remembered calls of a session, oldest first ([] if none or expired)."""
        ...

    def append(self, key: str, call: dict[str, Any], now: float, keep: int, ttl: float) -> None: ...


class MemorySessionStore:
    """In-process history; least recently used sessions are dropped past ``max_sessions``."""

    def __init__(self, max_sessions: int = 100_000):
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, tuple[float, deque[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, key: str, now: float, ttl: float) -> list[dict[str, Any]]:
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                return []
            touched, calls = entry
            if now - touched > ttl:
                del self._sessions[key]
                return []
            return list(calls)

    def append(self, key: str, call: dict[str, Any], now: float, keep: int, ttl: float) -> None:
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None or now - entry[0] > ttl:
                calls: deque[dict[str, Any]] = deque(maxlen=keep)
            else:
                calls = entry[1]
                if calls.maxlen != keep:
                    calls = deque(calls, maxlen=keep)
            calls.append(call)
            self._sessions[key] = (now, calls)
            self._sessions.move_to_end(key)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sessions)


def wall_clock() -> float:
    return time.time()
