"""Tests for policylang.runtime.timefuncs: parsing, zones, CEL accessors, holidays, windows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policylang.errors import EvalError
from policylang.runtime import timefuncs as t

FAST = settings(max_examples=150, deadline=None)
PLUS2 = timezone(timedelta(hours=2))
MINUS5 = timezone(timedelta(hours=-5))
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
TIMESTAMPS = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=OFFSETS
)
DURATIONS = st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=400))
ALL_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --------------------------------------------------------------------------- zones


def test_zones() -> None:
    assert t.get_zone("UTC").utcoffset(None) == timedelta(0)
    assert t.get_zone("Europe/Berlin") is t.get_zone("Europe/Berlin")
    assert t.get_zone("+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    for bad in ("Mars/Olympus", "", "../etc/passwd", "+25:00"):
        with pytest.raises(EvalError, match="unknown time zone"):
            t.get_zone(bad)
    assert t.known_zone("America/New_York") and not t.known_zone("Mars/Olympus")
    with pytest.raises(EvalError, match="unknown time zone 'Mars/Olympus'"):
        t.hour("2024-05-15T09:30:00Z", "Mars/Olympus")


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-15", datetime(2024, 5, 15, tzinfo=UTC)),
        ("2024-05-15 09:30", datetime(2024, 5, 15, 9, 30, tzinfo=UTC)),
        ("2024-05-15T09:30", datetime(2024, 5, 15, 9, 30, tzinfo=UTC)),
        ("2024-05-15T09:30:00", datetime(2024, 5, 15, 9, 30, tzinfo=UTC)),
        ("2024-05-15T09:30:00.123456789Z", datetime(2024, 5, 15, 9, 30, 0, 123456, tzinfo=UTC)),
        ("2024-05-15T09:30:00+02:00", datetime(2024, 5, 15, 9, 30, tzinfo=PLUS2)),
        ("2024-05-15T09:30:00-0500", datetime(2024, 5, 15, 9, 30, tzinfo=MINUS5)),
        ("2024-05-15 09:30:15.5 Z", datetime(2024, 5, 15, 9, 30, 15, 500000, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_forms(text: str, expected: datetime) -> None:
    got = t.parse_timestamp(text)
    assert got == expected and got.utcoffset() == expected.utcoffset()


def test_parse_timestamp_keeps_offsets_and_takes_default_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert t.parse_timestamp("2024-05-15T09:30", berlin).utcoffset() == timedelta(hours=2)
    assert t.parse_timestamp("2024-05-15T09:30+02:00", berlin).tzinfo == PLUS2
    aware = datetime(2024, 1, 1, tzinfo=MINUS5)
    assert t.parse_timestamp(aware) is aware
    assert t.parse_timestamp(datetime(2024, 1, 1), berlin).tzinfo is berlin
    assert t.parse_timestamp(date(2024, 1, 1)) == datetime(2024, 1, 1, tzinfo=UTC)
    assert t.parse_timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert t.parse_timestamp(1.5) == datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    "bad",
    [
        "yesterday",
        "2024-13-01",
        "2024-05-15T25:00",
        "2024-5-15",
        "2024-05-15T09:30+24:00",
        True,
        None,
        [1],
        float("nan"),
        10**20,
    ],
)
def test_parse_timestamp_rejects(bad: Any) -> None:
    with pytest.raises(EvalError, match=r"as a timestamp \(expected e.g. 2024-05-15T09:30:00Z\)"):
        t.parse_timestamp(bad)


@FAST
@given(TIMESTAMPS)
def test_timestamp_string_roundtrip_keeps_offset(ts: datetime) -> None:
    back = t.parse_timestamp(t.timestamp_to_string(ts))
    assert back == ts and back.utcoffset() == ts.utcoffset()


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("500ms", timedelta(milliseconds=500)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("-30s", timedelta(seconds=-30)),
        ("3600s", timedelta(hours=1)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30.5)),
        ("250us", timedelta(microseconds=250)),
        ("1500ns", timedelta(microseconds=2)),
        ("0.1s", timedelta(milliseconds=100)),
        ("0", timedelta(0)),
        (90, timedelta(seconds=90)),
        (0.5, timedelta(milliseconds=500)),
    ],
)
def test_parse_duration(text: Any, expected: timedelta) -> None:
    assert t.parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "1", "h", "1x", "1h 30m", "--1s", "1.2.3s", True, None, [1]])
def test_parse_duration_rejects(bad: Any) -> None:
    with pytest.raises(EvalError, match="as a duration"):
        t.parse_duration(bad)


@FAST
@given(DURATIONS)
def test_duration_formats_roundtrip(td: timedelta) -> None:
    assert t.parse_duration(t.format_duration(td)) == td
    assert t.parse_duration(t.duration_to_cel_string(td)) == td


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(minutes=90), "1h30m"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(0), "0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=-2700), "-45m"),
        (timedelta(hours=49, seconds=1.5), "49h1.5s"),
        (timedelta(microseconds=1500), "1.5ms"),
    ],
)
def test_format_duration(td: timedelta, text: str) -> None:
    assert t.format_duration(td) == text


def test_duration_accessors_truncate_toward_zero() -> None:
    d = t.parse_duration("3723.5s")
    assert (
        t.duration_hours(d),
        t.duration_minutes(d),
        t.duration_seconds(d),
        t.duration_milliseconds(d),
    ) == (1, 62, 3723, 3723500)
    neg = t.parse_duration("-3723.5s")
    assert (t.duration_hours(neg), t.duration_seconds(neg)) == (-1, -3723)


# --------------------------------------------------------------------------- dates and local time


def test_parse_date() -> None:
    assert t.parse_date("2024-05-15") == date(2024, 5, 15)
    assert t.parse_date("2024-05-15T23:30:00-05:00") == date(2024, 5, 15)
    assert t.parse_date(datetime(2024, 5, 15, 23, tzinfo=MINUS5)) == date(2024, 5, 15)
    with pytest.raises(EvalError, match="as a date"):
        t.parse_date(20240515)


def test_local_time_functions() -> None:
    ts = t.parse_timestamp("2024-05-19T23:30:00-05:00")  # Sunday evening in New York time
    assert (t.weekday(ts), t.hour(ts), t.minute(ts), t.day_of_week(ts)) == ("Sun", 23, 30, 0)
    assert (t.weekday(ts, "UTC"), t.hour(ts, "UTC"), t.date_of(ts, "UTC")) == (
        "Mon",
        4,
        date(2024, 5, 20),
    )
    assert t.weekday(date(2024, 5, 20)) == "Mon" and t.weekday("2024-05-18") == "Sat"
    assert t.hour("2024-05-15T09:30:00Z", "America/New_York") == 5
    with pytest.raises(EvalError, match="has no time of day"):
        t.hour(date(2024, 5, 15))


def test_cel_accessors_read_utc_unless_a_zone_is_given() -> None:
    ts = t.parse_timestamp("2024-01-01T00:30:45.250+02:00")  # 2023-12-31T22:30:45.25Z
    assert (t.get_full_year(ts), t.get_month(ts), t.get_day_of_month(ts), t.get_date(ts)) == (
        2023,
        11,
        30,
        31,
    )
    assert (t.get_hours(ts), t.get_minutes(ts), t.get_seconds(ts), t.get_milliseconds(ts)) == (
        22,
        30,
        45,
        250,
    )
    assert (t.get_day_of_year(ts), t.get_day_of_week(ts)) == (364, 0)
    assert (
        t.get_full_year(ts, "+02:00"),
        t.get_month(ts, "+02:00"),
        t.get_hours(ts, "+02:00"),
        t.get_day_of_year(ts, "Europe/Athens"),
    ) == (2024, 0, 0, 0)


@FAST
@given(TIMESTAMPS, st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "+13:00"]))
def test_local_functions_agree_with_astimezone(ts: datetime, zone: str) -> None:
    local = ts.astimezone(t.get_zone(zone))
    assert t.weekday(ts, zone) == t.WEEKDAYS[local.weekday()]
    assert t.day_of_week(ts, zone) == t.get_day_of_week(ts, zone) == local.isoweekday() % 7
    assert (t.hour(ts, zone), t.minute(ts, zone), t.date_of(ts, zone)) == (
        local.hour,
        local.minute,
        local.date(),
    )
    assert t.hour(ts) == ts.hour and t.weekday(ts) == t.WEEKDAYS[ts.weekday()]


# --------------------------------------------------------------------------- holidays


def test_country_holidays() -> None:
    assert t.is_holiday("2024-07-04T10:00:00-04:00", "US")
    assert not t.is_holiday("2024-07-05", "US")
    assert t.is_holiday(date(2024, 1, 6), "DE", "BY") and not t.is_holiday(date(2024, 1, 6), "DE")
    assert t.is_holiday("2024-12-25T23:30:00-08:00", "GB")  # its own local day
    assert not t.is_holiday("2024-07-04T02:00:00Z", "US", tz="America/Los_Angeles")  # July 3 there
    with pytest.raises(EvalError, match="unknown holiday calendar 'XX'"):
        t.is_holiday("2024-01-01", "XX")
    with pytest.raises(EvalError, match="unknown subdivision 'ZZ'"):
        t.is_holiday("2024-01-01", "US", "ZZ")
    assert t.known_country("US") and t.known_country("US", "CA") and not t.known_country("XX")
    assert not t.known_country("US", "ZZ")


def test_holiday_sets_are_built_once_per_year(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = holidays.country_holidays

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(holidays, "country_holidays", counting)
    t._country_year.cache_clear()
    for day in range(1, 29):
        t.is_holiday(date(2031, 2, day), "FR")
    built = [c for c in calls if c[1].get("years") == 2031]
    assert len(built) == 1


def test_custom_calendars() -> None:
    cal = ["2024-12-24", date(2024, 12, 31)]
    assert t.is_holiday("2024-12-24T08:00:00Z", cal) and t.is_holiday(date(2024, 12, 31), cal)
    assert not t.is_holiday("2024-12-25", cal)
    assert t.is_holiday("2024-12-24", ("2024-12-24",)) and t.is_holiday(
        "2024-12-24", {"2024-12-24": "Eve"}
    )
    assert t._custom_calendar(cal) is t._custom_calendar(cal)  # parsed once
    with pytest.raises(EvalError, match="holiday calendar entry 'soon' is not a date"):
        t.is_holiday("2024-12-24", ["soon"])
    with pytest.raises(EvalError, match="a holiday calendar must be"):
        t.is_holiday("2024-12-24", 5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- business hours


def test_parse_window() -> None:
    assert t.parse_window("09:00-17:00") == (time(9), time(17))
    assert t.parse_window("22:00 - 06:00") == (time(22), time(6))
    assert t.parse_window("00:00-24:00") == (time(0), time.max)
    for bad in ("9-5", "09:00-25:00", "09:60-10:00", "10:00-10:00", "nine to five"):
        with pytest.raises(ValueError):
            t.parse_window(bad)


def test_business_hours() -> None:
    assert t.business_hours("2024-05-15T09:00:00+02:00")  # Wednesday, start is inclusive
    assert not t.business_hours("2024-05-15T17:00:00+02:00")  # end is exclusive
    assert not t.business_hours("2024-05-18T10:00:00Z")  # Saturday
    assert t.business_hours("2024-05-18T10:00:00Z", days=["sat"])
    assert t.business_hours("2024-05-15T09:30:00Z", tz="Europe/Berlin", window="11:00-12:00")
    assert t.business_hours("2024-05-14T03:00:00Z", "22:00-06:00", days=["Mon"])  # Monday's night
    assert not t.business_hours("2024-05-14T03:00:00Z", "22:00-06:00", days=["Tue"])
    with pytest.raises(EvalError, match="malformed time window"):
        t.business_hours("2024-05-15T09:00:00Z", "9 to 5")
    with pytest.raises(EvalError, match="unknown day 'Funday'"):
        t.business_hours("2024-05-15T09:00:00Z", days=["Funday"])


@FAST
@given(TIMESTAMPS, st.integers(0, 23), st.integers(1, 23))
def test_business_hours_laws(ts: datetime, start_h: int, length: int) -> None:
    end_h = (start_h + length) % 24
    window, complement = f"{start_h:02d}:00-{end_h:02d}:00", f"{end_h:02d}:00-{start_h:02d}:00"
    inside = t.business_hours(ts, window, days=ALL_DAYS)
    assert inside != t.business_hours(ts, complement, days=ALL_DAYS)
    if start_h < end_h:
        assert inside == (start_h <= ts.hour < end_h)
    assert not t.business_hours(ts, window, days=())


# ---------------------------------------------------------------- the RFC 3339 fast reader

_digits = st.integers
fast_shaped = st.builds(
    lambda y, mo, d, h, mi, s, frac, off: (
        f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{off}"
    ),
    _digits(0, 9999),
    _digits(0, 19),
    _digits(0, 39),
    _digits(0, 29),
    _digits(0, 69),
    _digits(0, 69),
    st.sampled_from(["", ".5", ".123", ".000001", ".999999", ".1234"]),
    st.sampled_from(
        ["Z", "+00:00", "-00:00", "+05:30", "-08:00", "+23:59", "+24:00", "-12:60", "+14:00"]
    ),
)


@given(fast_shaped)
def test_the_fast_timestamp_reader_agrees_with_the_general_one(text: str) -> None:
    """Strings of the common shape go through datetime.fromisoformat; it must read them identically."""

    def read(fn: object) -> object:
        try:
            dt = fn(text, UTC)  # type: ignore[operator]
        except ValueError:
            return "refused"
        return (dt, dt.utcoffset(), dt.isoformat())

    assert read(t._parse_ts_string) == read(t._parse_ts_general)
