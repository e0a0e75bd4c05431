"""Time values for policies: timestamps, durations, calendar days, zones, holidays.

Takes the loosely typed values that tools really send (``"2024-05-15 09:30"``,
``"+02:00"`` offsets, epoch seconds, ``"1h30m"``, ``datetime`` objects) and gives
the fixed value model of the runtime: aware :class:`datetime.datetime` for
timestamps (keeping the offset they arrived with), :class:`datetime.timedelta`
for durations and :class:`datetime.date` for calendar days. It also provides the
CEL timestamp/duration accessors (``getHours`` ...) and the domain functions
policies use (``weekday``, ``hour``, ``is_holiday``, ``business_hours``).

Every failure raises :class:`policylang.errors.EvalError` with a message for a
person; no raw Python exception escapes a public function. This module depends
on nothing else in :mod:`policylang.runtime`, so :mod:`celops` can import it.

Two conventions worth knowing:

* The domain functions (``weekday``, ``hour``, ``business_hours`` ...) read a
  timestamp in its *own* offset when no zone is given, because the offset a
  tool sent is usually the user's local time.
* The CEL accessors (``get_hours`` ...) follow the CEL specification instead:
  without a zone they read the timestamp in UTC, as cel-go and cel-python do.
"""

from __future__ import annotations

import functools
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import holidays

from policylang.errors import EvalError
from policylang.runtime import caches as _caches

__all__ = [
    "UTC",
    "WEEKDAYS",
    "business_hours",
    "date_of",
    "day_of_week",
    "duration_hours",
    "duration_milliseconds",
    "duration_minutes",
    "duration_seconds",
    "format_duration",
    "get_date",
    "get_day_of_month",
    "get_day_of_week",
    "get_day_of_year",
    "get_full_year",
    "get_hours",
    "get_milliseconds",
    "get_minutes",
    "get_month",
    "get_seconds",
    "get_zone",
    "hour",
    "is_holiday",
    "known_country",
    "known_zone",
    "minute",
    "parse_date",
    "parse_duration",
    "parse_timestamp",
    "parse_window",
    "weekday",
]

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_ALIASES: dict[str, int] = {}
for _i, _name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
):
    _DAY_ALIASES[_name] = _i
    _DAY_ALIASES[_name[:3]] = _i

_TS_EXAMPLE = "expected e.g. 2024-05-15T09:30:00Z"
_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)
# The shape nearly every tool sends (RFC 3339 with an offset); datetime.fromisoformat reads it in C.
_TS_FAST_RE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.ASCII
)
_OFFSET_RE = re.compile(r"([+-])(\d{2})(?::?(\d{2}))?", re.ASCII)
_DUR_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)", re.ASCII)
_DUR_FULL_RE = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d))+")
_UNIT_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
}
_WINDOW_RE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _show(v: object) -> str:
    """A short, quoted rendering of a bad input for error messages."""
    if isinstance(v, str):
        text = v if len(v) <= 60 else v[:57] + "..."
        return "'" + text.replace("'", "\\'") + "'"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | date | timedelta):
        return str(v)
    return f"a value of type {type(v).__name__}"


# --------------------------------------------------------------------------- zones


@functools.lru_cache(maxsize=1024)
def _zone_cached(name: str) -> tzinfo:
    m = _OFFSET_RE.fullmatch(name)
    if m:
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(name)
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if m.group(1) == "-" else delta)
    if name in ("UTC", "Z"):
        return UTC
    return ZoneInfo(name)


def get_zone(name: str | tzinfo) -> tzinfo:
    """The zone for an IANA name ("Europe/Berlin"), "UTC", or a fixed offset "+02:00".

    Cached, because zone look-ups read tzdata files and decisions call this on
    every evaluation. A tzinfo passes through so callers can hand either.
    """
    if type(name) is str:
        zone = _ZONES.get(name)
        if zone is not None:
            return zone
    if isinstance(name, tzinfo):
        return name
    if not isinstance(name, str):
        raise EvalError(f"a time zone must be a string, got {_show(name)}")
    try:
        zone = _zone_cached(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for odd paths, OSError
        raise EvalError(f"unknown time zone {_show(name)}") from None
    if type(name) is str:
        if len(_ZONES) < 1024:
            _ZONES[name] = zone
        else:
            _caches.dropped("zone.fast")  # still cached, in _zone_cached's LRU
    return zone


_ZONES: dict[str, tzinfo] = {}  # names already resolved: a plain dict read beats the lru_cache call


def known_zone(name: str) -> bool:
    """True when :func:`get_zone` accepts the name (for the linter)."""
    try:
        get_zone(name)
    except EvalError:
        return False
    return True


# --------------------------------------------------------------------------- parsing


def _parse_offset(text: str) -> tzinfo:
    if text in ("Z", "z"):
        return UTC
    m = _OFFSET_RE.fullmatch(text)
    if not m or int(m.group(2)) > 23 or int(m.group(3) or 0) > 59:
        raise ValueError(text)
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
    return timezone(-delta if m.group(1) == "-" else delta)


def _parse_ts_string(text: str, default_tz: tzinfo) -> datetime:
    if _TS_FAST_RE.fullmatch(
        text
    ):  # same fields as the general reader below (tests hold them equal)
        try:
            return datetime.fromisoformat(text)
        except ValueError:  # an impossible date: the general reader says which part
            pass
    return _parse_ts_general(text, default_tz)


def _parse_ts_general(text: str, default_tz: tzinfo) -> datetime:
    m = _TS_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(text)
    year, month, day, hh, mm, ss, frac, off = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tz = _parse_offset(off) if off else default_tz
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hh or 0),
            int(mm or 0),
            int(ss or 0),
            micro,
            tzinfo=tz,
        )
    except ValueError as exc:  # the right shape, an impossible value: say which
        raise _ImpossibleTime(str(exc)) from None


class _ImpossibleTime(ValueError):
    """A timestamp of the right shape naming a day or time that does not exist (Feb 30, 25:00)."""


def timestamp_reader(default_tz: tzinfo) -> Callable[[object], datetime]:
    """:func:`parse_timestamp` bound to a zone, with the common RFC 3339 shape read first."""
    match, read = _TS_FAST_RE.fullmatch, datetime.fromisoformat

    def reader(v: object) -> datetime:
        if type(v) is str and match(v):
            try:
                return read(v)
            except (
                ValueError
            ):  # the right shape, an impossible day (Feb 30): the checked reader says so
                pass
        return parse_timestamp(v, default_tz)

    return reader


def parse_timestamp(v: object, default_tz: tzinfo | str = UTC) -> datetime:
    """Read a timestamp from what tools really send, keeping its own offset.

    Zone-less inputs (naive datetimes, dates, strings without an offset) take
    ``default_tz``; numbers are epoch seconds in UTC. The offset is kept rather
    than normalised to UTC so that "local" functions like :func:`hour` see the
    wall-clock time the sender meant. ``default_tz`` may also be a zone name.
    """
    detail = ""
    if type(v) is str and _TS_FAST_RE.fullmatch(v):  # the common case first
        try:
            return datetime.fromisoformat(v)
        except ValueError:  # an impossible date or time (Feb 30, month 13, year 0): said below
            pass
    if not isinstance(default_tz, tzinfo):
        default_tz = get_zone(default_tz)
    if isinstance(v, datetime):
        return (
            v
            if v.tzinfo is not None and v.utcoffset() is not None
            else v.replace(tzinfo=default_tz)
        )
    if isinstance(v, date):
        return datetime.combine(v, time(), default_tz)
    try:
        if isinstance(v, str):
            return _parse_ts_string(v, default_tz)
        if type(v) is int or type(v) is float:
            if not math.isfinite(v):
                raise ValueError(v)
            return _EPOCH + timedelta(seconds=v)
    except _ImpossibleTime as exc:
        detail = f": {exc}"
    except (ValueError, OverflowError):
        pass
    raise EvalError(f"cannot read {_show(v)} as a timestamp ({_TS_EXAMPLE}){detail}")


def parse_duration(v: object) -> timedelta:
    """Read a duration: ``90s``, ``1h30m``, ``1.5h``, ``-30s``, ``500ms``, ``1d``; numbers are seconds.

    Units are Go's (``ns``, ``us``, ``ms``, ``s``, ``m``, ``h``) plus ``d`` for
    days. Arithmetic is exact (Decimal) and rounds to the microsecond that
    timedelta can hold, so ``0.1s`` is exactly 100 ms.
    """
    if isinstance(v, timedelta):
        return v
    try:
        if isinstance(v, str):
            text = v.strip()
            if text in ("0", "+0", "-0"):
                return timedelta(0)
            if not _DUR_FULL_RE.fullmatch(text):
                raise ValueError(text)
            total = Decimal(0)
            for number, unit in _DUR_PART_RE.findall(text):
                total += Decimal(number) * _UNIT_NS[unit]
            micros = int((total / 1000).to_integral_value())
            return timedelta(microseconds=-micros if text.startswith("-") else micros)
        if type(v) is int or type(v) is float:
            if not math.isfinite(v):
                raise ValueError(v)
            return timedelta(seconds=v)
    except (ValueError, OverflowError, InvalidOperation):
        pass
    raise EvalError(f"cannot read {_show(v)} as a duration (expected e.g. 90s, 15m, 1h30m)")


def parse_date(v: object, default_tz: tzinfo | str = UTC) -> date:
    """A calendar day: a date, a timestamp's own local date, ``"2024-05-15"`` or a timestamp string."""
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        try:
            return parse_timestamp(v, default_tz).date()
        except EvalError:
            pass
    raise EvalError(f"cannot read {_show(v)} as a date (expected e.g. 2024-05-15)")


def _local(ts: object, tz: str | tzinfo | None) -> datetime:
    """The timestamp as wall-clock time in ``tz`` (or in its own offset when None)."""
    if type(ts) is datetime and ts.tzinfo is not None:  # the common case: a parsed argument
        dt = ts
    else:
        if isinstance(ts, date) and not isinstance(ts, datetime):
            raise EvalError(f"{ts.isoformat()} is a date and has no time of day")
        dt = parse_timestamp(ts)
    if tz is None:
        return dt
    zone = get_zone(tz)
    try:
        return dt.astimezone(zone)
    except (OverflowError, ValueError):
        raise EvalError(f"timestamp {dt.isoformat()} is out of range in {tz}") from None


def _local_day(ts: object, tz: str | tzinfo | None) -> date:
    """The calendar day of a timestamp (or a date, which has no zone to convert)."""
    if type(ts) is datetime:
        return _local(ts, tz).date()
    if isinstance(ts, date) and not isinstance(ts, datetime):
        return ts
    if isinstance(ts, str) and len(ts.strip()) == 10:
        return parse_date(ts)
    return _local(ts, tz).date()


# --------------------------------------------------------------------------- domain functions


def weekday(ts: object, tz: str | tzinfo | None = None) -> str:
    """Three-letter English day name ("Mon".."Sun"): what policy authors write in lists."""
    if type(ts) is datetime:
        return WEEKDAYS[_local(ts, tz).weekday()]
    return WEEKDAYS[_local_day(ts, tz).weekday()]


def hour(ts: object, tz: str | tzinfo | None = None) -> int:
    """Local hour 0-23, in ``tz`` or the timestamp's own offset."""
    return _local(ts, tz).hour


def minute(ts: object, tz: str | tzinfo | None = None) -> int:
    """Local minute 0-59, in ``tz`` or the timestamp's own offset."""
    return _local(ts, tz).minute


def date_of(ts: object, tz: str | tzinfo | None = None) -> date:
    """The local calendar day of a timestamp."""
    return _local_day(ts, tz)


def day_of_week(ts: object, tz: str | tzinfo | None = None) -> int:
    """0=Sunday .. 6=Saturday, as CEL's getDayOfWeek counts."""
    return (_local_day(ts, tz).weekday() + 1) % 7


# --------------------------------------------------------------------------- CEL accessors
# CEL reads timestamps in UTC unless a zone is given; a date is read as itself.


def _cel_local(ts: object, tz: str | tzinfo | None) -> datetime:
    return _local(ts, UTC if tz is None else tz)


def _cel_day(ts: object, tz: str | tzinfo | None) -> date:
    return _local_day(ts, UTC if tz is None else tz)


def get_full_year(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getFullYear``."""
    return _cel_day(ts, tz).year


def get_month(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getMonth``: 0-based (January is 0)."""
    return _cel_day(ts, tz).month - 1


def get_day_of_month(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getDayOfMonth``: 0-based."""
    return _cel_day(ts, tz).day - 1


def get_date(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getDate``: 1-based day of the month."""
    return _cel_day(ts, tz).day


def get_day_of_year(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getDayOfYear``: 0-based (January 1st is 0)."""
    return _cel_day(ts, tz).timetuple().tm_yday - 1


def get_day_of_week(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getDayOfWeek``: 0=Sunday, in UTC unless a zone is given."""
    return (_cel_day(ts, tz).weekday() + 1) % 7


def get_hours(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getHours`` on a timestamp."""
    return _cel_local(ts, tz).hour


def get_minutes(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getMinutes`` on a timestamp."""
    return _cel_local(ts, tz).minute


def get_seconds(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getSeconds`` on a timestamp."""
    return _cel_local(ts, tz).second


def get_milliseconds(ts: object, tz: str | tzinfo | None = None) -> int:
    """CEL ``getMilliseconds`` on a timestamp (0-999)."""
    return _cel_local(ts, tz).microsecond // 1000


def _total_micros(d: object) -> int:
    return _micros(parse_duration(d))


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return -q if a < 0 else q


def duration_hours(d: object) -> int:
    """CEL ``getHours`` on a duration: whole hours, truncated toward zero."""
    return _trunc_div(_total_micros(d), 3_600_000_000)


def duration_minutes(d: object) -> int:
    """CEL ``getMinutes`` on a duration: whole minutes, truncated toward zero."""
    return _trunc_div(_total_micros(d), 60_000_000)


def duration_seconds(d: object) -> int:
    """CEL ``getSeconds`` on a duration: whole seconds, truncated toward zero."""
    return _trunc_div(_total_micros(d), 1_000_000)


def duration_milliseconds(d: object) -> int:
    """CEL ``getMilliseconds`` on a duration: total milliseconds, as cel-go and cel-python give."""
    return _trunc_div(_total_micros(d), 1000)


# --------------------------------------------------------------------------- holidays

_YEAR_SETS: dict[tuple[str, str | None, int], frozenset[date]] = {}  # (country, subdivision, year)


@functools.lru_cache(maxsize=512)
def _country_year(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """One country's holidays for one year, built once: building is slow (ms)."""
    cal = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return frozenset(d for d in cal if d.year == year)


@functools.lru_cache(maxsize=256)
def _country_ok(country: str, subdivision: str | None) -> bool:
    try:
        holidays.country_holidays(country, subdiv=subdivision, years=[])
    except (NotImplementedError, KeyError, ValueError, TypeError, AttributeError):
        return False
    return True


def known_country(code: str, subdivision: str | None = None) -> bool:
    """True when the holidays package knows the country (and subdivision), for the linter."""
    if not isinstance(code, str) or not (subdivision is None or isinstance(subdivision, str)):
        return False
    return _country_ok(code, subdivision)


def _custom_entry(item: object) -> date:
    try:
        return parse_date(item)
    except EvalError:
        raise EvalError(
            f"holiday calendar entry {_show(item)} is not a date (expected e.g. 2024-12-25)"
        ) from None


@functools.lru_cache(maxsize=256)
def _custom_hashable(items: tuple[object, ...] | frozenset[object]) -> frozenset[date]:
    return frozenset(_custom_entry(i) for i in items)


# id(obj) -> (obj, len, parsed). Holding obj keeps its id from being reused.
_CUSTOM_BY_ID: OrderedDict[int, tuple[object, int, frozenset[date]]] = OrderedDict()
_CUSTOM_MAX = 128


def _custom_calendar(cal: Collection[object]) -> frozenset[date]:
    """Parse a custom calendar once; data files are loaded once and treated as immutable."""
    if isinstance(cal, tuple | frozenset):
        try:
            return _custom_hashable(cal)
        except TypeError:  # unhashable member
            pass
    entry = _CUSTOM_BY_ID.get(id(cal))
    if entry is not None and entry[0] is cal and entry[1] == len(cal):
        _CUSTOM_BY_ID.move_to_end(id(cal))
        return entry[2]
    parsed = frozenset(_custom_entry(i) for i in cal)
    _CUSTOM_BY_ID[id(cal)] = (cal, len(cal), parsed)
    while len(_CUSTOM_BY_ID) > _CUSTOM_MAX:
        _CUSTOM_BY_ID.popitem(last=False)
    return parsed


def is_holiday(
    ts_or_date: object,
    calendar: str | Iterable[object],
    subdivision: str | None = None,
    tz: str | tzinfo | None = None,
) -> bool:
    """Whether the local day of a timestamp is a public holiday.

    ``calendar`` is a country code of the ``holidays`` package ("US", "DE"), with
    an optional subdivision ("CA", "BY"), or a collection of days (dates or
    "YYYY-MM-DD" strings; a dict's keys) from a policy data file.
    """
    day = _local_day(ts_or_date, tz)
    if type(calendar) is str:
        known = _YEAR_SETS.get((calendar, subdivision, day.year))
        if known is not None:  # a calendar year already built: one dict read
            return day in known
    if isinstance(calendar, str):
        if subdivision is not None and not isinstance(subdivision, str):
            raise EvalError(f"a holiday subdivision must be a string, got {_show(subdivision)}")
        if not _country_ok(calendar, subdivision):
            if subdivision is not None and _country_ok(calendar, None):
                raise EvalError(
                    f"unknown subdivision {_show(subdivision)} of holiday "
                    f"calendar {_show(calendar)}"
                )
            raise EvalError(
                f"unknown holiday calendar {_show(calendar)} "
                "(expected a country code such as 'US' or a list of dates)"
            )
        try:
            days = _country_year(calendar, subdivision, day.year)
        except Exception as exc:  # holidays raises assorted errors for odd years
            raise EvalError(f"cannot compute {calendar} holidays for {day.year}: {exc}") from None
        if type(calendar) is str and (subdivision is None or type(subdivision) is str):
            if len(_YEAR_SETS) < 4096:
                _YEAR_SETS[(calendar, subdivision, day.year)] = days
            else:
                _caches.dropped("holiday.years")  # read through _country_year's LRU instead
        return day in days
    if isinstance(calendar, list | tuple | set | frozenset | dict):
        return day in _custom_calendar(calendar)
    raise EvalError(
        f"a holiday calendar must be a country code or a list of dates, got {_show(calendar)}"
    )


# --------------------------------------------------------------------------- business hours


def parse_window(window: str) -> tuple[time, time]:
    """Parse ``"09:00-17:00"`` into (start, end); ``24:00`` is allowed as an end.

    Raises ValueError (not EvalError) so the checker can report it at compile
    time with a source position. An end of ``24:00`` is returned as
    ``time.max``; an end before the start means the window wraps past midnight.
    """
    if not isinstance(window, str):
        raise ValueError(f"a time window must be a string like '09:00-17:00', got {_show(window)}")
    return _parse_window(window)


@functools.lru_cache(maxsize=256)
def _parse_window(window: str) -> tuple[time, time]:
    m = _WINDOW_RE.fullmatch(window)
    if not m:
        raise ValueError(f"malformed time window {_show(window)} (expected e.g. '09:00-17:00')")
    sh, sm, eh, em = (int(g) for g in m.groups())
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
        raise ValueError(f"time window {_show(window)} has an impossible time of day")
    start = time(sh, sm)
    end = time.max if eh == 24 else time(eh, em)
    if start == end:
        raise ValueError(f"time window {_show(window)} is empty (start equals end)")
    return start, end


def _day_index(name: object) -> int:
    if isinstance(name, str):
        idx = _DAY_ALIASES.get(name.strip().lower())
        if idx is not None:
            return idx
    raise EvalError(f"unknown day {_show(name)} (expected one of {', '.join(WEEKDAYS)})")


def business_hours(
    ts: object,
    window: str = "09:00-17:00",
    tz: str | tzinfo | None = None,
    days: Iterable[str] = ("Mon", "Tue", "Wed", "Thu", "Fri"),
) -> bool:
    """True when the local time is in [start, end) on one of ``days``.

    A wrapping window ("22:00-06:00") belongs to the day it starts on: Tuesday
    03:00 is inside Monday's night shift, so it counts when Monday is listed.
    """
    try:
        start, end = parse_window(window)
    except ValueError as exc:
        raise EvalError(str(exc)) from None
    if isinstance(days, str):
        days = (days,)
    if not isinstance(days, list | tuple | set | frozenset):
        raise EvalError(f"business_hours days must be a list of day names, got {_show(days)}")
    allowed = {_day_index(d) for d in days}
    local = _local(ts, tz)
    now = local.time().replace(tzinfo=None)
    today = local.weekday()
    if start < end:
        return today in allowed and start <= now < end
    if now >= start:
        return today in allowed
    return now < end and (today - 1) % 7 in allowed


# --------------------------------------------------------------------------- formatting


def format_duration(td: timedelta) -> str:
    """Compact human form: ``1h30m``, ``1m30s``, ``2.5s``, ``500ms``, ``0s``, ``-45m``.

    Zero components are left out; hours are not folded into days so values
    read the same way policy authors write them.
    """
    micros = _micros(td)
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 1_000_000:
        if micros % 1000 == 0:
            return f"{sign}{micros // 1000}ms"
        if micros < 1000:
            return f"{sign}{micros}us"
        return f"{sign}{_trim_decimal(micros, 1000)}ms"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{_trim_decimal(rest, 1_000_000)}s" if rest else "",
    ]
    return sign + "".join(parts)


def _trim_decimal(value: int, scale: int) -> str:
    """``value / scale`` printed exactly with no trailing zeros (1500000, 10**6 -> "1.5")."""
    whole, frac = divmod(value, scale)
    if not frac:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def _micros(td: timedelta) -> int:
    if not isinstance(td, timedelta):
        raise EvalError(f"expected a duration, got {_show(td)}")
    return (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds


def duration_to_cel_string(td: timedelta) -> str:
    """CEL's ``string(duration)``: seconds with the fraction cel-go prints ("3600s", "1.5s")."""
    micros = _micros(td)
    sign = "-" if micros < 0 else ""
    return f"{sign}{_trim_decimal(abs(micros), 1_000_000)}s"


def timestamp_to_string(ts: datetime) -> str:
    """RFC 3339 with ``Z`` for UTC and the fraction trimmed, as cel-go prints timestamps."""
    if not isinstance(ts, datetime):
        raise EvalError(f"expected a timestamp, got {_show(ts)}")
    base = (
        ts.strftime("%Y-%m-%dT%H:%M:%S")
        if ts.year >= 1000
        else (
            f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
        )
    )
    if ts.microsecond:
        base += f".{ts.microsecond:06d}".rstrip("0")
    off = ts.utcoffset()
    if off is None or off == timedelta(0):
        return base + "Z"
    total = int(off.total_seconds())
    sign = "-" if total < 0 else "+"
    hh, mm = divmod(abs(total) // 60, 60)
    return f"{base}{sign}{hh:02d}:{mm:02d}"


# Bounded caches keyed by request data, reported by policylang.runtime.caches.stats().
_caches.register_lru("zone", _zone_cached)
_caches.register_lru("holiday.country", _country_year)
_caches.register_lru("holiday.known", _country_ok)
_caches.register_lru("holiday.custom", _custom_hashable)
_caches.register_lru("time_window", _parse_window)
_caches.register_sized("zone.fast", lambda: len(_ZONES), 1024)
_caches.register_sized("holiday.years", lambda: len(_YEAR_SETS), 4096)
