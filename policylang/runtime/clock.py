"""Where decision time comes from when the request does not pin it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that says what you set: for tests, replays and reproducible runs."""

    def __init__(self, at: datetime):
        self.at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta | float) -> None:
        self.at += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

    def set(self, at: datetime) -> None:
        self.at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
