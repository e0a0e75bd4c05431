"""Errors at the right time (hardening §7): bad values are CEL errors, bad options fail at construction.

* A builtin given a bad value (an impossible date, a huge number, an odd zone,
  window or pattern) never escapes as a raw Python exception: it is a CEL
  evaluation error naming the rule, which ``||`` and ``&&`` absorb as CEL
  requires, and never ``internal_error``. Property: every builtin, called
  from a policy on every path with generated junk.
* ``Engine``, ``Guard``, ``Breaker`` and ``ApprovalTokens`` refuse an option of
  the wrong type when they are built, with a message naming it; a path is a
  valid ``audit`` (str or Path).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang import Effect, Engine
from policylang.errors import EvalError
from policylang.language.builtins import GLOBALS, METHODS
from policylang.runtime import library
from policylang.runtime.audit import JsonlSink
from policylang.runtime.clock import FixedClock
from policylang.runtime.guard import ApprovalTokens, Breaker, Guard

NOW = datetime(2025, 7, 3, 15, 30, tzinfo=UTC)

# ---------------------------------------------------------------- junk values


def _stamp(y: int, mo: int, d: int, h: int, mi: int, s: int, off: str, sep: str) -> str:
    return f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{off}"


timestamp_like = st.builds(
    _stamp,
    st.sampled_from([0, 1, 1970, 2024, 2025, 9999]),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from(["Z", "+00:00", "-05:00", "+23:59", "+24:00", "-99:99", "", "+14"]),
    st.sampled_from(["T", " ", "t"]),
)
date_like = st.builds(
    lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
    st.sampled_from([0, 1, 2024, 9999]),
    st.integers(0, 13),
    st.integers(0, 32),
)
duration_like = st.builds(
    lambda n, u: f"{n}{u}",
    st.sampled_from(["0", "1.5", "-3", "99999999999999999", "1e9", ".", "1.", "9" * 30]),
    st.sampled_from(["ns", "us", "ms", "s", "m", "h", "d", "w", ""]),
)
zone_like = st.sampled_from(
    [
        "UTC",
        "Mars/Olympus",
        "+99:99",
        "-24:00",
        "../../etc/passwd",
        "",
        "America/",
        "Europe/Berlin",
        "+05:30",
        "\x00",
        "US",
        "CA",
        "XX",
    ]
)
window_like = st.sampled_from(
    ["09:00-17:00", "25:00-26:00", "9-5", "17:00-09:00", "00:00-24:00", "12:00-12:00", "-", ""]
)
pattern_like = st.sampled_from(
    ["a(", "(?=x)", r"(a)\1", "[z-a]", ".*", "\\", "(?P<n>a)", "a{99999}"]
)
numbers = st.sampled_from(
    [
        0,
        -1,
        1,
        2**63 - 1,
        -(2**63),
        10**30,
        -(10**30),
        1e308,
        -1e308,
        0.5,
        1e-300,
        2.0**63,
        59,
        86400 * 365 * 10000,
    ]
)
junk = st.one_of(
    timestamp_like,
    date_like,
    duration_like,
    zone_like,
    window_like,
    pattern_like,
    numbers,
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(date_like, numbers, st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.one_of(numbers, date_like), max_size=2),
)


def _arity(fn: Any) -> tuple[int, int]:
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = sum(1 for p in params if p.default is p.empty)
    return required, len(params)


FUNCTIONS = library.bind(ZoneInfo("America/New_York"), declared=True)
UNDECLARED_ZONE = library.bind(UTC, declared=False)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(FUNCTIONS)), declared=st.booleans(), data=st.data())
def test_every_builtin_raises_only_eval_errors_on_junk(
    name: str, declared: bool, data: Any
) -> None:
    fn = (FUNCTIONS if declared else UNDECLARED_ZONE)[name]
    low, high = _arity(fn)
    args = data.draw(st.lists(junk, min_size=low, max_size=high))
    with contextlib.suppress(EvalError):  # a CEL error, with a message for a person: fine
        fn(*args)  # anything else escapes and fails the test


SIGNATURES = sorted(
    {
        (s.name, s.receiver is not None, len(s.params) - s.optional, len(s.params))
        for table in (GLOBALS, METHODS)
        for sigs in table.values()
        for s in sigs
        if s.name != "today"
    }
)


def _call(name: str, method: bool, n: int) -> str:
    params = [f"args.v{i}" for i in range(n)]
    if method:
        return f"args.r.{name}({', '.join(params)})"
    return f"{name}({', '.join(params)})"


TEMPLATE = """
policy junk
timezone "America/New_York"
tool t {{ r: dyn, v0: dyn, v1: dyn, v2: dyn, flag: bool }}
rule absorbed_or: allow t when args.flag || {call} == {call}
rule absorbed_and: deny t when !args.flag && {call} == {call} && false
rule plain: deny t when {call} == {call} && args.flag && false
"""


def _engines(text: str) -> list[Engine]:
    fused = Engine.from_string(text, clock=FixedClock(NOW))
    ordinary = Engine.from_string(text, clock=FixedClock(NOW))
    assert ordinary._prepared is not None
    ordinary._prepared.fused.clear()
    return [fused, ordinary, Engine.from_string(text, clock=FixedClock(NOW), reference=True)]


_ENGINE_CACHE: dict[str, list[Engine]] = {}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(sig=st.sampled_from(SIGNATURES), data=st.data())
def test_builtins_on_junk_in_a_policy_are_cel_errors_absorbed_by_or_and(
    sig: tuple[str, bool, int, int], data: Any
) -> None:
    name, method, low, high = sig
    n = data.draw(st.integers(low, high))
    call = _call(name, method, n)
    text = TEMPLATE.format(call=call)
    engines = _ENGINE_CACHE.get(text) or _ENGINE_CACHE.setdefault(text, _engines(text))
    values = {"r": data.draw(junk), **{f"v{i}": data.draw(junk) for i in range(3)}}
    for flag in (True, False):
        args = {**values, "flag": flag}
        outcomes = set()
        for engine in engines:
            d = engine.decide("t", args=args)
            assert d.code != "internal_error", (call, args, d.reasons)
            if flag:  # `true || error` is true, `error && false` is false: CEL's absorption
                assert d.effect is Effect.ALLOW and d.code == "allowed", (call, args, d.reasons)
            else:  # the call's value, or its error (which fails the allow, never the request)
                assert d.code in ("allowed", "default_deny"), (call, args, d.reasons)
                assert all(e.rule in ("absorbed_or", "absorbed_and") for e in d.errors)
            outcomes.add((d.effect, d.code, tuple(e.message for e in d.errors)))
        assert len(outcomes) == 1, (call, args, outcomes)  # fused, ordinary and reference agree


IMPOSSIBLE = [
    "2024-02-30T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2024-01-01T25:00:00Z",
    "2023-02-29",
    "2024-04-31 10:00",
    "2024-00-10T00:00:00+02:00",
]


@pytest.mark.parametrize("text", IMPOSSIBLE)
def test_the_issue_example_impossible_dates_follow_cel(text: str) -> None:
    policy = """
    policy dates
    tool t { s: string, flag: bool, when: timestamp? }
    rule future: deny t when timestamp(args.s) > now || args.flag because "later"
    rule day: deny t when date(args.s) == today() && !args.flag because "today"
    allow t
    """
    for engine in _engines(policy):
        d = engine.decide("t", args={"s": text, "flag": True})
        assert (
            d.effect is Effect.DENY
            and d.code == "denied"
            and [r.name for r in d.rules] == ["future"]
        )
        d = engine.decide("t", args={"s": text, "flag": False})
        assert d.effect is Effect.DENY and d.code == "evaluation_error", d.reasons
        assert any("as a timestamp" in e.message for e in d.errors)
        assert {e.rule for e in d.errors} == {"future", "day"} and all(e.location for e in d.errors)
        d = engine.decide("t", args={"s": "2025-01-01T00:00:00Z", "flag": False, "when": text})
        assert d.code == "invalid_request" and d.reasons[0].startswith(
            "argument 'when': cannot read"
        )


def test_an_impossible_date_says_which_part_is_impossible() -> None:
    engine = Engine.from_string("policy d\ntool t { when: timestamp }\nallow t\n")
    d = engine.decide("t", args={"when": "2024-02-30T10:00:00Z"})
    assert d.reasons == [
        "argument 'when': cannot read '2024-02-30T10:00:00Z' as a timestamp "
        "(expected e.g. 2024-05-15T09:30:00Z): day is out of range for month"
    ]


# ---------------------------------------------------------------- options at construction

POLICY = "policy p\ntool t { x: int }\nallow t\n"


def test_audit_accepts_a_path_as_str_and_as_path(tmp_path: Path) -> None:
    for target in (str(tmp_path / "a.jsonl"), tmp_path / "sub" / "b.jsonl"):
        engine = Engine.from_string(POLICY, audit=target)
        assert isinstance(engine.audit, JsonlSink)
        d = engine.decide("t", args={"x": 1})
        assert d.effect is Effect.ALLOW and d.code == "allowed"
        record = json.loads(Path(target).read_text().splitlines()[-1])
        assert record["decision_id"] == d.decision_id


def test_an_audit_path_that_cannot_be_opened_fails_at_construction(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="audit"):
        Engine.from_string(POLICY, audit=blocker / "audit.jsonl")


class _NoMethods:
    pass


BAD_ENGINE = [
    ("audit", 5),
    ("audit", b"log.jsonl"),
    ("audit", ""),
    ("audit", _NoMethods()),
    ("audit", ["log.jsonl"]),
    ("clock", "now"),
    ("clock", NOW),
    ("store", {}),
    ("store", "redis://x"),
    ("sessions", []),
    ("sessions", "memory"),
    ("reference", 1),
    ("reference", "yes"),
    ("data", [1]),
    ("data", "data.yaml"),
    ("source_path", 3),
]


@pytest.mark.parametrize(("option", "value"), BAD_ENGINE)
def test_a_wrong_engine_option_fails_at_construction(option: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=rf"{option}="):
        Engine.from_string(POLICY, **{option: value})


def test_wrong_engine_options_on_every_constructor() -> None:
    with pytest.raises(TypeError, match="compiled="):
        Engine("policy p")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="warnings="):
        Engine(None, warnings="none")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sources="):
        Engine.from_sources(["policy p"])  # type: ignore[arg-type]
    engine = Engine.from_string(POLICY)
    with pytest.raises(TypeError, match="clock="):
        engine.clock = "now"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="data="):
        engine.reload_string(POLICY, data=[1])  # type: ignore[arg-type]


not_a_bool = st.one_of(
    st.integers(), st.text(max_size=3), st.none(), st.lists(st.booleans(), max_size=1)
)
not_callable = st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=1))


@settings(max_examples=100, deadline=None)
@given(option=st.sampled_from(["shadow", "refund_on_error"]), value=not_a_bool)
def test_guard_flags_must_be_bools(option: str, value: Any) -> None:
    with pytest.raises(TypeError, match=rf"Guard\({option}="):
        Guard(ENGINE, **{option: value})


@settings(max_examples=100, deadline=None)
@given(option=st.sampled_from(["approver", "monotonic"]), value=not_callable)
def test_guard_functions_must_be_callable(option: str, value: Any) -> None:
    with pytest.raises(TypeError, match=rf"Guard\({option}="):
        Guard(ENGINE, **{option: value})


ENGINE = Engine.from_string(POLICY)
BAD_GUARD = [
    ("principal", "alice"),
    ("context", 5),
    ("tools", {"t": 1}),
    ("tools", ["t"]),
    ("breakers", {"t": 5}),
    ("token_ttl", -1),
    ("token_ttl", math.nan),
    ("token_ttl", "5m"),
    ("secret", "s3cret"),
    ("tokens", "x"),
    ("decide_in_thread", 1),
]


@pytest.mark.parametrize(("option", "value"), BAD_GUARD)
def test_a_wrong_guard_option_fails_at_construction(option: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=rf"Guard\({option}="):
        Guard(ENGINE, **{option: value})


def test_guard_breaker_and_tokens_check_their_own_fields() -> None:
    with pytest.raises(TypeError, match=r"Guard\(engine="):
        Guard("engine")  # type: ignore[arg-type]
    for kwargs in (
        {"failures": "5"},
        {"failures": 0},
        {"window": -1},
        {"cooldown": math.inf},
        {"errors": (int,)},
        {"errors": ()},
    ):
        with pytest.raises((TypeError, ValueError), match="Breaker"):
            Breaker(**kwargs)
    for kwargs in ({"secret": "text"}, {"ttl": 0}, {"clock": 5}):
        with pytest.raises((TypeError, ValueError), match="ApprovalTokens"):
            ApprovalTokens(**kwargs)
    guard = Guard(
        ENGINE,
        principal={"id": "u"},
        context=lambda: {},
        tools={"t": lambda x: x},
        breakers={"t": Breaker(failures=2)},
        token_ttl=30,
        secret=b"k" * 16,
        shadow=False,
    )
    assert guard.call("t", {"x": 1}) == 1  # and good options still work
