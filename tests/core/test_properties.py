"""Property tests: compiled vs reference, order independence, monotonicity, combine(), cel-python."""

from __future__ import annotations

import itertools

import celpy
import pytest
from celpy import celtypes
from hypothesis import find, given, settings
from hypothesis import strategies as st

from policylang import Effect, Engine, PolicyLoadError, combine
from policylang.compiler.codegen import impl_name
from policylang.compiler.interpreter import Err, Interpreter
from policylang.language.parser import parse_expr
from policylang.runtime import library, timefuncs

# ------------------------------------------------------------ expression generator
#
# Typed, so every generated condition passes the checker. ``v`` maps a variable
# name (i, j, s, b, xs) to how it is written: ``args.i`` in policies, ``i`` when
# evaluated directly. ``cel_only`` leaves out what cel-python lacks or gets wrong.

SMALL_STRINGS = ["", "a", "ab", "B", "ba", "a b"]
INTS = st.integers(min_value=-5, max_value=12)


def _q(s: str) -> str:
    return '"' + s + '"'


@st.composite
def int_expr(draw, v, depth=2, cel_only=False):
    leaves = [v("i"), v("j"), str(draw(INTS)), f"size({v('s')})", f"size({v('xs')})"]
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(leaves))
    kind = draw(st.sampled_from(["bin", "bin", "tern", "neg"] + ([] if cel_only else ["idx"])))
    if kind == "bin":
        op = draw(st.sampled_from(["+", "-", "*", "/", "%"]))
        a = draw(int_expr(v, depth - 1, cel_only))
        b = draw(int_expr(v, depth - 1, cel_only))
        return f"({a} {op} {b})"
    if kind == "neg":
        return f"-({draw(int_expr(v, depth - 1, cel_only))})"
    if kind == "idx":
        return f"{v('s')}.indexOf({_q(draw(st.sampled_from(SMALL_STRINGS)))})"
    c = draw(bool_expr(v, depth - 1, cel_only))
    return f"({c} ? {draw(int_expr(v, depth - 1, cel_only))} : {draw(int_expr(v, depth - 1, cel_only))})"


@st.composite
def str_expr(draw, v, depth=2, cel_only=False):
    leaves = [v("s"), _q(draw(st.sampled_from(SMALL_STRINGS)))]
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(leaves))
    kind = draw(st.sampled_from(["cat", "index", "tern"] + ([] if cel_only else ["lower"])))
    if kind == "cat":
        return (
            f"({draw(str_expr(v, depth - 1, cel_only))} + {draw(str_expr(v, depth - 1, cel_only))})"
        )
    if kind == "index":  # may be out of range: an error
        if cel_only:  # cel-python reads xs[-1] Python-style; CEL says error
            return f"{v('xs')}[{draw(st.integers(0, 3))}]"
        return f"{v('xs')}[{draw(int_expr(v, depth - 1, cel_only))}]"
    if kind == "lower":
        return f"{draw(str_expr(v, depth - 1, cel_only))}.lowerAscii()"
    c = draw(bool_expr(v, depth - 1, cel_only))
    return f"({c} ? {draw(str_expr(v, depth - 1, cel_only))} : {draw(str_expr(v, depth - 1, cel_only))})"


@st.composite
def bool_expr(draw, v, depth=2, cel_only=False):
    leaves = [v("b"), "true", "false"]
    if depth <= 0:
        return draw(st.sampled_from(leaves))
    kind = draw(
        st.sampled_from(
            [
                "leaf",
                "icmp",
                "icmp",
                "scmp",
                "in",
                "inlist",
                "starts",
                "contains",
                "not",
                "and",
                "or",
                "tern",
                "exists",
                "all",
                "bcmp",
            ]
        )
    )
    d = depth - 1
    if kind == "leaf":
        return draw(st.sampled_from(leaves))
    if kind == "icmp":
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return f"({draw(int_expr(v, d, cel_only))} {op} {draw(int_expr(v, d, cel_only))})"
    if kind == "scmp":
        op = draw(st.sampled_from(["==", "!=", "<", ">="]))
        return f"({draw(str_expr(v, d, cel_only))} {op} {draw(str_expr(v, d, cel_only))})"
    if kind == "bcmp":
        op = draw(st.sampled_from(["==", "!="]))
        return f"({draw(bool_expr(v, d, cel_only))} {op} {draw(bool_expr(v, d, cel_only))})"
    if kind == "in":
        return f"({draw(str_expr(v, d, cel_only))} in {v('xs')})"
    if kind == "inlist":
        items = draw(st.lists(st.sampled_from(SMALL_STRINGS), max_size=3))
        return f"({draw(str_expr(v, d, cel_only))} in [{', '.join(map(_q, items))}])"
    if kind in ("starts", "contains"):
        method = "startsWith" if kind == "starts" else "contains"
        # cel-python 0.5.0 loses the CEL string type of a concatenation, so that
        # `(s + s).contains(s)` is "no such overload" there: keep its receiver plain.
        target = v("s") if cel_only else draw(str_expr(v, d, cel_only))
        return f"{target}.{method}({draw(str_expr(v, d, cel_only))})"
    if kind == "not":
        return f"!({draw(bool_expr(v, d, cel_only))})"
    if kind in ("and", "or"):
        op = "&&" if kind == "and" else "||"
        return f"({draw(bool_expr(v, d, cel_only))} {op} {draw(bool_expr(v, d, cel_only))})"
    if kind in ("exists", "all"):
        body = draw(
            st.sampled_from(["x == {s}", "x.startsWith({s})", "size(x) > {i}", "{s}.contains(x)"])
        )
        body = body.format(s=draw(str_expr(v, 0, cel_only)), i=draw(int_expr(v, 0, cel_only)))
        return f"{v('xs')}.{kind}(x, {body})"
    c = draw(bool_expr(v, d, cel_only))
    return f"({c} ? {draw(bool_expr(v, d, cel_only))} : {draw(bool_expr(v, d, cel_only))})"


def as_arg(name: str) -> str:
    return f"args.{name}"


def as_var(name: str) -> str:
    return name


requests = st.fixed_dictionaries(
    {
        "i": st.integers(min_value=-3, max_value=6),
        "j": st.sampled_from([0, 1, 2, -1, 7]),
        "s": st.sampled_from(SMALL_STRINGS),
        "b": st.booleans(),
        "xs": st.lists(st.sampled_from(SMALL_STRINGS), max_size=3),
    }
)

# ------------------------------------------------------------ policy generator

TOOLS = (
    "tool t1 { i: int, j: int, s: string, b: bool, xs: list<string> }\n"
    "tool t2 { i: int, j: int, s: string, b: bool, xs: list<string> }\n"
    "tool u.x { i: int, j: int, s: string, b: bool, xs: list<string> }\n"
)


@st.composite
def rule(draw):
    effect = draw(st.sampled_from(["allow", "deny", "confirm"]))
    tools = draw(st.sampled_from(["t1", "t2", "t1, t2", "t*", "*", "u.*", "t1, u.x"]))
    parts = [effect, tools]
    if draw(st.booleans()):
        parts += ["when", draw(bool_expr(as_arg, 3))]
    if draw(st.integers(0, 3)) == 0:
        parts += ["unless", draw(bool_expr(as_arg, 2))]
    return " ".join(parts)


@st.composite
def policy(draw, named=True):
    default = draw(st.sampled_from(["allow", "deny"]))
    rules = draw(st.lists(rule(), min_size=1, max_size=8))
    if named:
        rules = [f"rule r{k}: {r}" for k, r in enumerate(rules)]
    return default, rules


def text_of(default: str, rules: list[str]) -> str:
    return f"policy gen\ndefault {default}\n{TOOLS}" + "\n".join(rules) + "\n"


def _load(text: str, reference: bool = False) -> Engine:
    try:
        return Engine.from_string(text, reference=reference)
    except PolicyLoadError as exc:  # the generator only makes well-typed rules
        raise AssertionError(f"generated policy does not load:\n{text}\n{exc}") from None


def _outcome(d):
    return d.effect, d.code, sorted(r.id for r in d.rules), sorted(str(e.rule) for e in d.errors)


# (a) compiled and reference evaluators agree


@settings(max_examples=100)
@given(policy(), st.lists(requests, min_size=1, max_size=4), st.sampled_from(["t1", "t2", "u.x"]))
def test_compiled_and_reference_agree(pol, reqs, tool):
    text = text_of(*pol)
    fast, ref = _load(text), _load(text, reference=True)
    for args in reqs:
        a, b = fast.decide(tool, args=args), ref.decide(tool, args=args)
        assert _outcome(a) == _outcome(b), f"{text}\nargs={args}\n{a.message}\n{b.message}"


# (b) order and duplication never change the effect


@given(
    policy(named=False),
    st.lists(requests, min_size=1, max_size=3),
    st.randoms(use_true_random=False),
    st.sampled_from(["t1", "t2", "u.x"]),
)
def test_shuffling_or_duplicating_rules_keeps_the_effect(pol, reqs, rnd, tool):
    default, rules = pol
    base = _load(text_of(default, rules))
    shuffled = list(rules)
    rnd.shuffle(shuffled)
    duplicated = rules + [rnd.choice(rules) for _ in range(3)]
    rnd.shuffle(duplicated)
    others = [_load(text_of(default, shuffled)), _load(text_of(default, duplicated))]
    for args in reqs:
        want = base.decide(tool, args=args)
        for other in others:
            got = other.decide(tool, args=args)
            assert (got.effect, got.code) == (want.effect, want.code)


# (c) monotonicity


@given(
    policy(named=False),
    rule(),
    st.lists(requests, min_size=1, max_size=3),
    st.sampled_from(["t1", "t2", "u.x"]),
)
def test_adding_a_rule_is_monotone(pol, extra, reqs, tool):
    default, rules = pol
    base = _load(text_of(default, rules))
    added = _load(text_of(default, rules + [extra]))
    effect = extra.split(" ", 1)[0]
    for args in reqs:
        before = base.decide(tool, args=args).effect
        after = added.decide(tool, args=args).effect
        if effect == "allow" and before is Effect.ALLOW:
            assert after is Effect.ALLOW
        if effect == "allow":
            assert not (before is not Effect.DENY and after is Effect.DENY)
        if effect == "deny":
            assert after is Effect.DENY or after is before
            if before is Effect.DENY and base.decide(tool, args=args).code == "denied":
                assert added.decide(tool, args=args).code == "denied"
            assert not (before is Effect.DENY and after is Effect.ALLOW)
            assert not (before is not Effect.ALLOW and after is Effect.ALLOW)
        if effect == "confirm":
            if before is Effect.DENY and base.decide(tool, args=args).code != "default_deny":
                assert after is Effect.DENY  # a confirm never overrides an explicit deny
            assert after is not Effect.ALLOW or before is Effect.ALLOW


# (d) combine()


@pytest.mark.parametrize(
    ("denied", "exhausted", "confirmed", "allowed", "default"),
    list(
        itertools.product(
            [False, True], [False, True], [False, True], [False, True], ["allow", "deny"]
        )
    ),
)
def test_combine_table(denied, exhausted, confirmed, allowed, default):
    got = combine(denied, exhausted, confirmed, allowed, default)
    if denied or exhausted:
        want = Effect.DENY
    elif confirmed:
        want = Effect.CONFIRM
    elif allowed:
        want = Effect.ALLOW
    else:
        want = Effect(default)
    assert got is want


# (e) agreement with cel-python


_INTERP = Interpreter(library.bind(timefuncs.get_zone("UTC")), impl_name)
_CEL = celpy.Environment()
_FN = "policy e\ntool t { i: int, j: int, s: string, b: bool, xs: list<string> }\nallow t when "


def _plain(v):
    if isinstance(v, celtypes.BoolType):
        return ("bool", bool(v))
    if isinstance(v, celtypes.IntType):
        return ("int", int(v))
    if isinstance(v, celtypes.StringType):
        return ("string", str(v))
    if isinstance(v, celtypes.ListType):
        return ("list", [_plain(x) for x in v])
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, str):
        return ("string", v)
    if isinstance(v, list):
        return ("list", [_plain(x) for x in v])
    return ("other", repr(v))


def _cel(expr: str, env: dict):
    try:
        prog = _CEL.program(_CEL.compile(expr))
        out = prog.evaluate({k: celpy.json_to_cel(v) for k, v in env.items()})
    except celpy.CELEvalError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - cel-python raises assorted errors
        return exc
    return out


_EXPRS = st.one_of(
    bool_expr(as_var, 3, cel_only=True),
    int_expr(as_var, 3, cel_only=True),
    str_expr(as_var, 2, cel_only=True),
)


@settings(max_examples=200)
@given(_EXPRS, requests)
def test_interpreter_agrees_with_cel_python(expr, env):
    theirs = _cel(expr, env)
    ours = _INTERP.eval(parse_expr(expr), dict(env))
    if isinstance(theirs, Exception) or not isinstance(
        theirs, celtypes.BoolType | celtypes.IntType | celtypes.StringType | celtypes.ListType
    ):
        return  # fail-closed on errors is checked below, through the engine
    assert not isinstance(ours, Err), (
        f"{expr} with {env}: cel-python says {theirs!r}, we say {ours}"
    )
    assert _plain(ours) == _plain(theirs), f"{expr} with {env}"


@settings(max_examples=150)
@given(bool_expr(as_var, 3, cel_only=True), requests)
def test_engine_agrees_with_cel_python_and_fails_closed(expr, env):
    theirs = _cel(expr, env)
    cond = expr
    for name in ("xs", "i", "j", "s", "b"):  # variables → args.*, longest first
        cond = _rename(cond, name)
    for reference in (False, True):
        engine = _cached_engine(cond, reference)
        d = engine.decide("t", args=env)
        if isinstance(theirs, celtypes.BoolType):
            want = Effect.ALLOW if bool(theirs) else Effect.DENY
            assert d.effect is want, f"{expr} with {env}: cel-python {theirs!r}; {d.message}"
        else:  # cel-python errs: we must not allow
            assert d.effect is not Effect.ALLOW, f"{expr} with {env}: cel-python {theirs!r}"


_ENGINES: dict[tuple[str, bool], Engine] = {}


def _cached_engine(cond: str, reference: bool) -> Engine:
    key = (cond, reference)
    if key not in _ENGINES:
        if len(_ENGINES) > 2000:
            _ENGINES.clear()
        _ENGINES[key] = _load(_FN + cond + "\n", reference)
    return _ENGINES[key]


def _rename(expr: str, name: str) -> str:
    """Replace the free variable ``name`` by ``args.name`` outside string literals."""
    import re

    out, pieces = [], re.split(r'("[^"]*")', expr)
    for k, piece in enumerate(pieces):
        if k % 2:
            out.append(piece)
        else:
            out.append(re.sub(rf"(?<![\w.]){name}\b(?!\s*\()", f"args.{name}", piece))
    return "".join(out)


def test_rename_helper():
    assert (
        _rename('(xs.exists(x, x == s) && "s i" in xs) || size(s) > i', "s")
        == '(xs.exists(x, x == args.s) && "s i" in xs) || size(args.s) > i'
    )


@pytest.mark.parametrize(
    "expr",
    [
        "i / j > 0",
        "xs[3] == s",
        "(i * 1000000000000) * 100000000 > 0",
        "xs.all(x, xs[5] == x) || false",
    ],
)
def test_known_errors_fail_closed_in_both_engines(expr):
    env = {"i": 9, "j": 0, "s": "a", "b": True, "xs": ["a"]}
    assert isinstance(_cel(expr, env), Exception)
    cond = expr
    for name in ("xs", "i", "j", "s", "b"):
        cond = _rename(cond, name)
    for reference in (False, True):
        assert _cached_engine(cond, reference).decide("t", args=env).effect is Effect.DENY


@pytest.mark.parametrize("feature", ["&&", "?", " / ", "[", ".exists("])
def test_generator_can_produce(feature):
    # Guard against a generator that silently stopped producing some construct.
    found = find(
        bool_expr(as_arg, 3),
        lambda e: feature in e and "args." in e,
        settings=settings(max_examples=500, database=None),
    )
    assert feature in found
