"""Built-in function names → implementations, bound once per policy.

The compiler and the reference interpreter both look functions up here, so a
condition calls the very same code whichever of them evaluates it. Functions
that depend on the policy (its default time zone) are bound per policy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from policylang.errors import EvalError
from policylang.runtime import celops, textfuncs, timefuncs


def _identity(v: Any) -> Any:
    return v


def _duration_or(ts_fn: Callable[..., int], dur_fn: Callable[[Any], int]) -> Callable[..., int]:
    def accessor(v: Any, tz: Any = None) -> int:
        if isinstance(v, timedelta):
            if tz is not None:
                raise EvalError("a duration has no time zone")
            return dur_fn(v)
        return ts_fn(v, tz)

    return accessor


def tool_matches(name: Any, pattern: Any) -> bool:
    from policylang.language.policy import tool_matches as matches

    if not isinstance(name, str) or not isinstance(pattern, str):
        raise EvalError("tool_matches() takes two strings")
    return matches(pattern, name)


def bind(zone: tzinfo, declared: bool = False) -> dict[str, Callable[..., Any]]:
    """The implementation table for a policy whose default zone is ``zone``.

    Time functions called without a zone read the time in the policy's declared
    ``timezone``; a policy that declares none reads it in the offset the
    timestamp arrived with (so "2025-06-13T22:00:00-04:00" is a Friday).
    """
    default = zone if declared else None

    def in_zone(fn: Callable[..., Any]) -> Callable[..., Any]:
        if default is None:
            return fn

        def with_default(ts: Any, tz: Any = None) -> Any:
            return fn(ts, default if tz is None else tz)

        return with_default

    def to_timestamp(v: Any) -> datetime:
        return timefuncs.parse_timestamp(v, zone)

    def to_date(v: Any, tz: Any = None) -> date:
        tz = default if tz is None else tz
        if isinstance(v, datetime):
            return timefuncs.date_of(v, tz)
        if tz is not None and isinstance(v, str) and len(v) > 10:
            return timefuncs.date_of(timefuncs.parse_timestamp(v, zone), tz)
        return timefuncs.parse_date(v, zone)

    def business_hours(ts: Any, window: str = "09:00-17:00", tz: Any = None) -> bool:
        return timefuncs.business_hours(ts, window, default if tz is None else tz)

    def is_holiday(ts: Any, calendar: Any, subdivision: Any = None) -> bool:
        return timefuncs.is_holiday(ts, calendar, subdivision, default)

    table: dict[str, Callable[..., Any]] = {
        "size": celops.size,
        "to_int": celops.to_int,
        "to_double": celops.to_double,
        "to_string": celops.to_string,
        "to_bool": celops.to_bool,
        "to_bytes": celops.to_bytes,
        "identity": _identity,
        "to_timestamp": to_timestamp,
        "to_duration": timefuncs.parse_duration,
        "matches": celops.matches,
        "starts_with": celops.starts_with,
        "ends_with": celops.ends_with,
        "contains": celops.contains,
        "lower_ascii": celops.lower_ascii,
        "upper_ascii": celops.upper_ascii,
        "trim": celops.trim,
        "split": celops.split,
        "replace": celops.replace,
        "index_of": celops.index_of,
        "last_index_of": celops.last_index_of,
        "substring": celops.substring,
        "char_at": celops.char_at,
        "join": celops.join,
        "weekday": in_zone(timefuncs.weekday),
        "hour": in_zone(timefuncs.hour),
        "minute": in_zone(timefuncs.minute),
        "date": to_date,
        "is_holiday": is_holiday,
        "business_hours": business_hours,
        "get_full_year": timefuncs.get_full_year,
        "get_month": timefuncs.get_month,
        "get_day_of_month": timefuncs.get_day_of_month,
        "get_date": timefuncs.get_date,
        "get_day_of_week": timefuncs.get_day_of_week,
        "get_day_of_year": timefuncs.get_day_of_year,
        "get_hours": _duration_or(timefuncs.get_hours, timefuncs.duration_hours),
        "get_minutes": _duration_or(timefuncs.get_minutes, timefuncs.duration_minutes),
        "get_seconds": _duration_or(timefuncs.get_seconds, timefuncs.duration_seconds),
        "get_milliseconds": _duration_or(
            timefuncs.get_milliseconds, timefuncs.duration_milliseconds
        ),
        "urls": textfuncs.urls,
        "host": textfuncs.host,
        "domain": textfuncs.domain,
        "emails": textfuncs.emails,
        "regex_escape": textfuncs.regex_escape,
        "normpath": textfuncs.normpath,
        "tool_matches": tool_matches,
        "today": lambda now, tz=None: timefuncs.date_of(now, default if tz is None else tz),
    }
    return table
