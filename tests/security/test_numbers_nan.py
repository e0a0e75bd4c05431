"""NaN and infinity: refused on entry at any depth, and never a silent ``false`` when ordered.

Hardening §4. A NaN compares false with everything, so before this a NaN in a
``map`` argument passed a ``> 0.5`` deny, and ``double("NaN")`` on an
``amount: string`` passed both ``> 100.0`` and ``<= 0.0``. Two guarantees:

* every value that enters a decision (arguments at any depth, principal,
  context, declared or not) is checked once: NaN or ±inf is a deny
  ``invalid_request`` naming the place;
* NaN made during evaluation stays a value, but ordering it (``<``, ``<=``,
  ``>``, ``>=``) is an evaluation error, so a deny fails closed and an allow
  does not match, on the fused path, the ordinary path and the reference
  interpreter alike; ``||`` and ``&&`` absorb the error as CEL requires.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang import Effect, Engine
from policylang.runtime.clock import FixedClock
from policylang.runtime.validation import all_finite, nonfinite_path

NOW = datetime(2025, 7, 3, 15, 30, tzinfo=UTC)
NONFINITE = [math.nan, math.inf, -math.inf, float("-nan")]

DECLARED = """
policy numbers
principal { id: string, level: int = 1 }
tool t { amount: number, meta: dyn, tags: list<dyn>, m: map<string, dyn>?, s: string = "" }
deny t when has(args.m) && "risk" in args.m && args.m.risk > 0.5 because "risky"
deny t when args.amount > 1000 because "too much"
deny t when "score" in principal && principal["score"] > 0.5 because "risky caller"
allow t
"""

UNDECLARED = """
policy open
default allow
deny t when args.risk > 0.5 because "risky"
deny t when "score" in principal && principal.score > 0.5 because "risky caller"
"""


def _engines(text: str) -> list[Engine]:
    """The fused path, the ordinary path (fused functions off) and the reference interpreter."""
    fused = Engine.from_string(text, clock=FixedClock(NOW))
    ordinary = Engine.from_string(text, clock=FixedClock(NOW))
    assert ordinary._prepared is not None
    ordinary._prepared.fused.clear()
    reference = Engine.from_string(text, clock=FixedClock(NOW), reference=True)
    return [fused, ordinary, reference]


ENGINES = _engines(DECLARED)
OPEN_ENGINES = _engines(UNDECLARED)

finite_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False)
)
clean = st.recursive(
    finite_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("abcxyz", max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def poisoned(draw: Any) -> tuple[Any, str]:
    """A clean value with one NaN or ±inf put somewhere inside it; and the path it was put at."""
    value = draw(clean)
    bad = draw(st.sampled_from(NONFINITE))
    if not isinstance(value, dict | list) or not value or draw(st.booleans()):
        key = draw(st.text("abcxyz", min_size=1, max_size=3))
        wrapped: Any = draw(st.sampled_from(["list", "map"]))
        return (
            ([value, bad], "[1]")
            if wrapped == "list"
            else ({"k": value, key: bad} if key != "k" else {"k": bad}, key)
        )
    path = ""
    node = value
    while True:  # walk down to a random container, then put the bad number in it
        if isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            if isinstance(node[i], dict | list) and node[i] and draw(st.booleans()):
                node, path = node[i], f"{path}[{i}]"
                continue
            node[i] = bad
            return value, f"{path}[{i}]"
        if isinstance(node, dict) and node:
            k = draw(st.sampled_from(sorted(node)))
            if isinstance(node[k], dict | list) and node[k] and draw(st.booleans()):
                node, path = node[k], f"{path}.{k}" if path else k
                continue
            node[k] = bad
            return value, f"{path}.{k}" if path else k
        raise AssertionError("unreachable: node is a non-empty container")


def _request(where: str, value: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"amount": 5, "meta": "x", "tags": [], "m": {}}
    principal: dict[str, Any] = {"id": "u"}
    context: dict[str, Any] = {}
    if where in ("meta", "tags", "m"):
        args[where] = value if where != "tags" or isinstance(value, list) else [value]
        if where == "m" and not isinstance(value, dict):
            args["m"] = {"v": value}
    elif where == "principal":
        principal["extra"] = value
    else:
        context["extra"] = value
    return {"tool": "t", "args": args, "principal": principal, "context": context}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(where=st.sampled_from(["meta", "tags", "m", "principal", "context"]), bad=poisoned())
def test_nonfinite_anywhere_in_a_request_is_invalid_on_every_path(
    where: str, bad: tuple[Any, str]
) -> None:
    value, _ = bad
    req = _request(where, value)
    assert (
        nonfinite_path(req["args"])
        or nonfinite_path(req["principal"])
        or nonfinite_path(req["context"])
    )
    for engine in ENGINES:
        d = engine.decide(**req)
        assert d.effect is Effect.DENY and d.code == "invalid_request", (where, value, d.reasons)
        assert "must be a finite number" in d.reasons[0]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(where=st.sampled_from(["meta", "tags", "m", "principal", "context"]), value=clean)
def test_clean_values_are_never_refused_as_nonfinite(where: str, value: Any) -> None:
    req = _request(where, value)
    decisions = [engine.decide(**req) for engine in ENGINES]
    assert not any("finite" in r for d in decisions for r in d.reasons), (where, value)
    assert len({(d.effect, d.code) for d in decisions}) == 1  # and the three paths agree


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad=poisoned())
def test_the_scanners_find_exactly_the_poisoned_place(bad: tuple[Any, str]) -> None:
    value, path = bad
    found = nonfinite_path(value)
    assert found is not None and found[0] == path and not math.isfinite(found[1])
    assert not all_finite(value)
    assert all_finite(["ok", 1, {"a": [2.5, None]}])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad=poisoned(), where=st.sampled_from(["args", "principal", "context"]))
def test_undeclared_maps_refuse_nonfinite_too(bad: tuple[Any, str], where: str) -> None:
    value, _ = bad
    req: dict[str, Any] = {"tool": "t", "args": {"risk": 0.1}, "principal": {}, "context": {}}
    req[where]["x"] = value
    for engine in OPEN_ENGINES:
        d = engine.decide(**req)
        assert d.effect is Effect.DENY and d.code == "invalid_request", d.reasons


FAST = """
policy fast
principal { id: string, level: int = 1 }
tool t { amount: number, meta: dyn, tags: list<dyn>, s: string = "" }
deny t when args.amount > 1000 because "too much"
allow t
"""


def test_the_fused_function_itself_never_decides_a_nonfinite_request() -> None:
    """The fused accelerator hands such requests to the ordinary path (which names the place)."""
    prepared = Engine.from_string(FAST)._prepared
    assert prepared is not None
    fn = prepared.fused["t"][0]
    good = _request("meta", "x")
    del good["args"]["m"]
    assert fn(good["args"], good["principal"], good["context"], NOW, "t") is not None
    for where in ("meta", "tags", "principal", "context"):
        for bad in NONFINITE:
            req = _request(where, {"deep": [1, {"x": bad}]})
            del req["args"]["m"]
            assert fn(req["args"], req["principal"], req["context"], NOW, "t") is None, (where, bad)


@pytest.mark.parametrize("bad", NONFINITE)
def test_the_issue_example_a_nan_in_a_map_no_longer_passes_a_deny(bad: float) -> None:
    for engine in ENGINES:
        d = engine.decide(
            "t",
            args={"amount": 5, "meta": 1, "tags": [], "m": {"risk": bad}},
            principal={"id": "u"},
        )
        assert d.effect is Effect.DENY and d.code == "invalid_request"
        assert d.reasons == [
            f"argument 'm.risk' must be a finite number, got "
            f"{'NaN' if math.isnan(bad) else ('+inf' if bad > 0 else '-inf')}"
        ]
        d = engine.decide(
            "t", args={"amount": 5, "meta": 1, "tags": []}, principal={"id": "u", "score": bad}
        )
        assert d.code == "invalid_request" and "principal field 'score'" in d.reasons[0]
        d = engine.decide("t", args={"amount": bad, "meta": 1, "tags": []}, principal={"id": "u"})
        assert d.code == "invalid_request" and "argument 'amount'" in d.reasons[0]


# ---------------------------------------------------------------- NaN made while evaluating

STRING_AMOUNT = """
policy amounts
tool pay { amount: string, x: double, flag: bool }
deny pay when double(args.amount) > 100.0 because "too much"
deny pay when double(args.amount) <= 0.0 because "not positive"
allow pay
"""
STRING_ENGINES = _engines(STRING_AMOUNT)
NAN_SPELLINGS = st.sampled_from(["nan", "NaN", "NAN", "nAn"])


@settings(max_examples=40, deadline=None)
@given(spelling=NAN_SPELLINGS)
def test_a_nan_amount_string_fails_both_range_denies_closed(spelling: str) -> None:
    for engine in STRING_ENGINES:
        d = engine.decide("pay", args={"amount": spelling, "x": 1.0, "flag": False})
        assert d.effect is Effect.DENY and d.code == "evaluation_error", (spelling, d.reasons)
        assert {e.rule for e in d.errors} == {"<string>:4", "<string>:5"}
        assert all("NaN cannot be ordered" in e.message for e in d.errors)


@pytest.mark.parametrize(
    ("text", "effect"),
    [
        ("50", Effect.ALLOW),
        ("1e3", Effect.DENY),
        ("-1", Effect.DENY),
        ("inf", Effect.DENY),
        ("+Infinity", Effect.DENY),
        ("-inf", Effect.DENY),
        ("-nan", Effect.DENY),
        ("+nan", Effect.DENY),
        ("0x10", Effect.DENY),
    ],
)
def test_double_conversions_of_special_spellings(text: str, effect: Effect) -> None:
    """inf is an ordinary (ordered) value; Go's ParseFloat takes no sign before nan: an error."""
    for engine in STRING_ENGINES:
        assert engine.decide("pay", args={"amount": text, "x": 1.0, "flag": False}).effect is effect


NAN_MAKERS = [
    "double(args.s)",
    "args.x * 0.0 / 0.0",
    "(args.x / 0.0) - (args.x / 0.0)",
    "[1.0, args.x * 0.0 / 0.0][1]",
    "(args.flag ? 1.0 : 0.0 / 0.0)",
    "{'k': 0.0 / 0.0}.k",
    "[0.0 / 0.0].map(v, v)[0]",
    "-(0.0 / 0.0)",
    "dyn(0.0 / 0.0)",
]
ORDERINGS = ["<", "<=", ">", ">="]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    maker=st.sampled_from(NAN_MAKERS),
    op=st.sampled_from(ORDERINGS),
    swap=st.booleans(),
    other=st.sampled_from(["1.0", "0", "args.x", "-5", "args.n", "1e308"]),
)
def test_ordering_a_nan_is_an_error_on_every_path(
    maker: str, op: str, swap: bool, other: str
) -> None:
    cmp = f"{other} {op} {maker}" if swap else f"{maker} {op} {other}"
    head = "policy nan\ntool t { s: string, x: double, n: number, flag: bool }\n"
    denies = (
        head
        + f"""
    rule d: deny t when {cmp} because "ordered"
    rule absorbed_and: deny t when ({cmp}) && false
    allow t
    """
    )
    allows = (
        head
        + f"""
    rule a: allow t when {cmp}
    rule absorbed_or: allow t when ({cmp}) || true
    rule absorbed_and: deny t when ({cmp}) && false
    """
    )
    args = {"s": "NaN", "x": 2.0, "n": 3, "flag": False}
    for engine in _engines(denies):  # the deny fails closed; `&& false` absorbs the error
        d = engine.decide("t", args=args)
        assert d.effect is Effect.DENY and d.code == "evaluation_error", (cmp, d.reasons)
        assert {r.name for r in d.rules} == {"d"} and {e.rule for e in d.errors} == {"d"}
        assert all("NaN cannot be ordered" in e.message for e in d.errors)
    for engine in _engines(allows):  # the allow does not match; `|| true` absorbs the error
        d = engine.decide("t", args=args)
        assert d.effect is Effect.ALLOW, (cmp, d.reasons)
        assert {r.name for r in d.rules} == {"absorbed_or"} and {e.rule for e in d.errors} == {"a"}


def test_nan_stays_a_value_equality_and_conversions() -> None:
    text = """
    policy nan
    tool t { s: string }
    rule unequal: deny t when double(args.s) == double(args.s) because "equal"
    rule to_int: deny t when int(double(args.s)) == 0 because "int"
    rule to_int_text: deny t when int(args.s) == 0 because "int text"
    allow t when double(args.s) != double(args.s)
    """
    for engine in _engines(text):
        d = engine.decide("t", args={"s": "nan"})
        assert d.effect is Effect.DENY and d.code == "evaluation_error"
        assert {r.name for r in d.rules} == {
            "to_int",
            "to_int_text",
        }  # NaN == NaN is false, no error
        for s in ("inf", "-Infinity", "nan", "1e400"):
            errors = {e.rule for e in engine.decide("t", args={"s": s}).errors}
            assert {"to_int", "to_int_text"} <= errors, s


def test_generated_code_keeps_native_comparisons_only_where_nan_cannot_appear() -> None:
    text = """
    policy nan
    tool t { x: double, n: int, items: list<double> }
    deny t when args.x > 1.0 && args.n < 5 && args.items.exists(i, i >= 2.0) because "inputs"
    deny t when args.x / 3.0 > 1.0 because "made"
    allow t
    """
    source = Engine.from_string(text).source_for("t")
    assert "(a[K1_x] > K3_double)" in source  # input reads compare natively ...
    assert (
        "_gt((a[K1_x] / K8_double), K3_double)" in source
    )  # ... arithmetic, which may be NaN, does not
    assert "_ge(" not in source  # a macro variable over an input list is as clean as the list
