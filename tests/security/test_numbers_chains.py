"""Long chains load; real nesting stays bounded (hardening §7).

Generated policies write long allow-lists: ``a || b || ...`` of thousands of
terms, ``&&`` of as many exclusions, ``x in [...]`` of 10,000 members. The
parser balances ``&&``/``||`` chains (exact: both are associative in CEL,
error absorption included), and the 100-level limit counts real nesting: a
chain is one level however long. Every stage copes: checker, codegen and
Python's own compile(), the fused path, the interpreter, the formatter.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang import Effect, Engine, PolicySyntaxError
from policylang.language import ast
from policylang.language.formatter import format_source
from policylang.language.parser import MAX_DEPTH, parse, parse_expr

HEAD = "policy chains\ntool t { to: string, n: int }\n"


def _paths(text: str) -> list[Engine]:
    """The fused path, the ordinary path and the reference interpreter, sharing one parse."""
    fused = Engine.from_string(text)
    assert fused.compiled is not None
    ordinary = Engine(fused.compiled)
    assert ordinary._prepared is not None
    ordinary._prepared.fused.clear()
    return [fused, ordinary, Engine.from_string(text, reference=True)]


def test_a_10000_term_or_chain_loads_and_decides_on_every_path() -> None:
    names = [f"u{i}" for i in range(10_000)]
    chain = " || ".join(f'args.to == "{n}"' for n in names)
    text = HEAD + f"rule listed: allow t when {chain}\n"
    engines = [Engine.from_string(text)]
    assert engines[0].compiled is not None
    ordinary = Engine(engines[0].compiled)
    assert ordinary._prepared is not None
    ordinary._prepared.fused.clear()
    engines.append(ordinary)
    for engine in engines:
        for name in ("u0", "u4999", "u9999"):
            d = engine.decide("t", args={"to": name, "n": 1})
            assert d.effect is Effect.ALLOW and [r.name for r in d.rules] == ["listed"]
        d = engine.decide("t", args={"to": "stranger", "n": 1})
        assert d.effect is Effect.DENY and d.code == "default_deny"
    rule = engines[0].compiled.policy.rules[0]
    assert rule.when is not None
    real, tree, _ = ast.nesting(rule.when)
    assert (
        real == 4 and tree <= 20
    )  # the chain, ==, args.to, args; a balanced chain is ~log2(10,000) high
    interp = engines[0].compiled.interpreter  # the reference interpreter on the same tree
    env = engines[0].compiled.env({"to": "u9999", "n": 1}, {}, {}, None, "t", None)
    assert interp.evaluate(rule.when, env) is True


@pytest.mark.parametrize("kind", ["and", "in", "mixed"])
def test_other_long_chains_load(kind: str) -> None:
    n = 1000
    cond = {
        "and": " && ".join(f'args.to != "u{i}"' for i in range(n)),
        "in": "args.to in [" + ", ".join(f'"u{i}"' for i in range(n)) + "]",
        "mixed": " || ".join(f'(args.to == "u{i}" && args.n > {i % 7})' for i in range(n)),
    }[kind]
    for engine in _paths(HEAD + f'deny t when {cond} because "x"\nallow t\n'):
        listed = engine.decide("t", args={"to": "u17", "n": 9}).effect
        other = engine.decide("t", args={"to": "zz", "n": 9}).effect
        assert (listed, other) == (
            (Effect.ALLOW, Effect.DENY) if kind == "and" else (Effect.DENY, Effect.ALLOW)
        )


def test_real_nesting_is_still_bounded_with_a_clear_error() -> None:
    ok = HEAD + "allow t when " + "!" * (MAX_DEPTH - 2) + "(true || false || true)\n"
    Engine.from_string(ok)
    # a chain through any parentheses stays one level ...
    Engine.from_string(
        HEAD + "allow t when " + "(" * 150 + "args.n == 1" + " && args.n == 1)" * 150 + "\n"
    )
    # ... but alternating operators, negations and other operators nest for real
    for deep in (
        "!" * MAX_DEPTH + "true",
        "(args.n == 1 || (args.n == 2 && " * 51 + "true" + "))" * 51,
        "args.n" + " + 1" * 150 + " > 0",
    ):
        with pytest.raises(PolicySyntaxError) as info:
            parse(HEAD + f"allow t when {deep}\n")
        assert (
            info.value.code == "PL005"
            and "expression too deep" in info.value.diagnostics[0].message
        )


def test_chains_inlined_from_predicates_count_as_one_level() -> None:
    body = " || ".join(f"x == {i}" for i in range(300))
    text = HEAD + f"def small(x): {body}\nallow t when small(args.n) || small(args.n + 1)\n"
    for engine in _paths(text):
        assert engine.decide("t", args={"to": "a", "n": 299}).effect is Effect.ALLOW
        assert engine.decide("t", args={"to": "a", "n": 600}).effect is Effect.DENY


# ---------------------------------------------------------------- property: any grouping, any length

atoms = st.sampled_from(
    [
        "args.n == 1",
        "args.n == 2",
        "args.n > 3",
        "true",
        "false",
        "args.to == 'a'",
        "int(args.to) == 1",
    ]
)  # the last errs for most names: absorption is tested too


def _expr(draw: Any, depth: int) -> str:
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(atoms)
    op = draw(st.sampled_from(["&&", "||"]))
    parts = [_expr(draw, depth - 1) for _ in range(draw(st.integers(2, 6)))]
    text = f" {op} ".join(f"({p})" if draw(st.booleans()) else p for p in parts)
    return f"!({text})" if draw(st.integers(0, 5)) == 0 else text


@st.composite
def conditions(draw: Any) -> str:
    return _expr(draw, draw(st.integers(1, 3)))


def _cel(text: str, n: int, to: str) -> bool | None:
    """The expected value, by CEL's rules (None: an error), from a left-leaning tree of the same text."""

    def value(e: ast.Expr) -> bool | None:
        if isinstance(e, ast.Binary) and e.op in ("&&", "||"):
            stop = e.op == "||"
            vals = [value(x) for x in ast.chain_operands(e)]
            if stop in vals:
                return stop
            return None if None in vals else not stop
        if isinstance(e, ast.Unary):
            inner = value(e.operand)
            return None if inner is None else not inner
        if isinstance(e, ast.Literal_):
            return bool(e.value)
        assert isinstance(e, ast.Binary)
        left = e.left
        if isinstance(left, ast.Call):  # int(args.to) == 1
            return (to == "1") if to.lstrip("-").isdigit() else None
        assert isinstance(left, ast.Select) and isinstance(e.right, ast.Literal_)
        actual = n if left.field == "n" else to
        return {
            "==": actual == e.right.value,
            ">": isinstance(actual, int) and actual > e.right.value,
        }[e.op]

    return value(parse_expr(text))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(cond=conditions(), n=st.integers(0, 5), to=st.sampled_from(["a", "1", "x"]))
def test_any_grouping_of_chains_decides_by_cels_rules_on_every_path(
    cond: str, n: int, to: str
) -> None:
    text = HEAD + f"rule r: allow t when {cond}\n"
    want = _cel(cond, n, to)
    for engine in _paths(text):
        d = engine.decide("t", args={"to": to, "n": n})
        assert (d.effect is Effect.ALLOW) == (want is True), (cond, n, to, d.reasons)
        assert bool(d.errors) == (want is None), (cond, n, to, d.errors)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(cond=conditions())
def test_formatting_a_chain_keeps_its_meaning_and_is_stable(cond: str) -> None:
    text = HEAD + f"allow t when {cond}\n"
    once = format_source(text)
    assert parse(once) == parse(text)  # the same tree, whatever the grouping was
    assert format_source(once) == once


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 17, 1000])
def test_balancing_is_exact_idempotent_and_shallow(n: int) -> None:
    text = " && ".join(f"x{i}" for i in range(n))
    e = parse_expr(text)
    assert [o.name for o in ast.chain_operands(e)] == [f"x{i}" for i in range(n)]  # order kept
    assert ast.balance(e) is e
    _, tree, _ = ast.nesting(e)
    assert tree <= max(1, n - 1).bit_length() + 2
    if n == 3:  # short chains keep the shape the grammar gives
        assert e == parse_expr("(x0 && x1) && x2")
