"""Domain functions the workload's rules call, shared by the adapters that need them.

`weekday(ts, tz)` gives "Mon".."Sun" of an aware datetime in a time zone, and
`is_holiday(ts, "US")` tells whether its New York date is a US public holiday
(the `holidays` package's calendar, observed days included, precomputed for
2020-2030 into a frozenset so every engine looks up the same dates).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

US_HOLIDAYS: frozenset[date] = frozenset(holidays.US(years=range(2020, 2031)))
US_HOLIDAY_STRINGS: frozenset[str] = frozenset(d.isoformat() for d in US_HOLIDAYS)
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HOLIDAY_ZONE: dict[str, str] = {"US": "America/New_York"}


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def weekday(ts: datetime, tz: str) -> str:
    return WEEKDAYS[ts.astimezone(zone(tz)).weekday()]


def local_date(ts: datetime, tz: str) -> date:
    return ts.astimezone(zone(tz)).date()


def is_holiday(ts: datetime, country: str) -> bool:
    if country != "US":
        raise ValueError(f"no holiday calendar for {country!r} in the benchmark")
    return local_date(ts, HOLIDAY_ZONE[country]) in US_HOLIDAYS
