"""The table of functions a condition may call: names, arities, types.

The checker reads it to type-check calls; the compiler and the reference
interpreter read the ``impl`` name and bind it to the implementation in
:mod:`policylang.runtime.library`. One table, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from policylang.language.types import (
    BOOL,
    BYTES,
    DATE,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    Type,
    list_of,
)

STRINGS = list_of(STRING)


@dataclass(frozen=True, slots=True)
class Signature:
    """``params`` are the argument types after the receiver; ``optional`` trailing ones may be left out."""

    name: str
    impl: str
    params: tuple[Type, ...]
    result: Type
    receiver: Type | None = None  # None: a global function
    optional: int = 0
    doc: str = ""


def _g(
    name: str, impl: str, params: tuple[Type, ...], result: Type, optional: int = 0, doc: str = ""
) -> Signature:
    return Signature(name, impl, params, result, None, optional, doc)


def _m(
    name: str,
    impl: str,
    receiver: Type,
    params: tuple[Type, ...],
    result: Type,
    optional: int = 0,
    doc: str = "",
) -> Signature:
    return Signature(name, impl, params, result, receiver, optional, doc)


TIME_OR_DATE = DYN  # functions below accept a timestamp or a date

GLOBALS: dict[str, list[Signature]] = {}
METHODS: dict[str, list[Signature]] = {}

for _sig in [
    _g("size", "size", (DYN,), INT, doc="length of a string, bytes, list or map"),
    _g("int", "to_int", (DYN,), INT),
    _g("double", "to_double", (DYN,), DOUBLE),
    _g("string", "to_string", (DYN,), STRING),
    _g("bool", "to_bool", (DYN,), BOOL),
    _g("bytes", "to_bytes", (DYN,), BYTES),
    _g("dyn", "identity", (DYN,), DYN),
    _g("timestamp", "to_timestamp", (DYN,), TIMESTAMP),
    _g("duration", "to_duration", (DYN,), DURATION),
    _g("matches", "matches", (STRING, STRING), BOOL),
    # domain functions: time
    _g(
        "weekday",
        "weekday",
        (TIME_OR_DATE, STRING),
        STRING,
        1,
        doc='"Mon".."Sun" in the given zone (default: the policy zone)',
    ),
    _g("hour", "hour", (TIMESTAMP, STRING), INT, 1, doc="0-23 in the given zone"),
    _g("minute", "minute", (TIMESTAMP, STRING), INT, 1),
    _g("date", "date", (DYN, STRING), DATE, 1, doc="the calendar day of a timestamp in a zone"),
    _g(
        "today", "today", (STRING,), DATE, 1, doc="today's date in a zone (from the decision's now)"
    ),
    _g(
        "is_holiday",
        "is_holiday",
        (TIME_OR_DATE, DYN, STRING),
        BOOL,
        1,
        doc="public holiday of a country (holidays package) or a listed date",
    ),
    _g(
        "business_hours",
        "business_hours",
        (TIMESTAMP, STRING, STRING),
        BOOL,
        2,
        doc='within e.g. "09:00-17:00" on Mon-Fri in a zone',
    ),
    # domain functions: text
    _g("urls", "urls", (STRING,), STRINGS, doc="every link in free text, unreadable ones included"),
    _g(
        "host",
        "host",
        (STRING,),
        STRING,
        doc="a link's host as a browser reads it (ASCII, lower case)",
    ),
    _g("domain", "domain", (STRING,), STRING, doc="registrable domain of a URL or host"),
    _g(
        "normpath",
        "normpath",
        (STRING,),
        STRING,
        doc="canonical path: // . .. collapsed; NUL, backslash, %XX are errors",
    ),
    _g("emails", "emails", (STRING,), STRINGS),
    _g("regex_escape", "regex_escape", (STRING,), STRING),
    _g(
        "tool_matches",
        "tool_matches",
        (STRING, STRING),
        BOOL,
        doc="whether a tool name matches a pattern such as payments.* (used by session.called)",
    ),
    # strings
    _m("size", "size", DYN, (), INT),
    _m("startsWith", "starts_with", STRING, (STRING,), BOOL),
    _m("endsWith", "ends_with", STRING, (STRING,), BOOL),
    _m("contains", "contains", STRING, (STRING,), BOOL),
    _m("matches", "matches", STRING, (STRING,), BOOL),
    _m("lowerAscii", "lower_ascii", STRING, (), STRING),
    _m("upperAscii", "upper_ascii", STRING, (), STRING),
    _m("trim", "trim", STRING, (), STRING),
    _m("split", "split", STRING, (STRING, INT), STRINGS, 1),
    _m("replace", "replace", STRING, (STRING, STRING, INT), STRING, 1),
    _m("indexOf", "index_of", STRING, (STRING, INT), INT, 1),
    _m("lastIndexOf", "last_index_of", STRING, (STRING, INT), INT, 1),
    _m("substring", "substring", STRING, (INT, INT), STRING, 1),
    _m("charAt", "char_at", STRING, (INT,), STRING),
    _m("join", "join", STRINGS, (STRING,), STRING, 1),
    # timestamps (CEL accessors; optional zone name)
    _m("getFullYear", "get_full_year", TIMESTAMP, (STRING,), INT, 1),
    _m("getMonth", "get_month", TIMESTAMP, (STRING,), INT, 1),
    _m("getDayOfMonth", "get_day_of_month", TIMESTAMP, (STRING,), INT, 1),
    _m("getDate", "get_date", TIMESTAMP, (STRING,), INT, 1),
    _m("getDayOfWeek", "get_day_of_week", TIMESTAMP, (STRING,), INT, 1),
    _m("getDayOfYear", "get_day_of_year", TIMESTAMP, (STRING,), INT, 1),
    _m("getHours", "get_hours", DYN, (STRING,), INT, 1),
    _m("getMinutes", "get_minutes", DYN, (STRING,), INT, 1),
    _m("getSeconds", "get_seconds", DYN, (STRING,), INT, 1),
    _m("getMilliseconds", "get_milliseconds", DYN, (STRING,), INT, 1),
]:
    (METHODS if _sig.receiver is not None else GLOBALS).setdefault(_sig.name, []).append(_sig)

VARIABLES = ("args", "principal", "context", "data", "now", "tool", "session")


def all_function_names() -> list[str]:
    return sorted(
        set(GLOBALS) | set(METHODS) | {"has", "all", "exists", "exists_one", "filter", "map"}
    )
