"""The static taint rule: a template part derived from a @secret value renders as the marker.

Hypothesis builds ``because`` parts as random compositions of functions,
operators, macros, predicates, lists, maps and conditionals over a leaf. A part
whose leaves include a secret read must render exactly as ``[redacted]`` (on the
fused and the ordinary path alike, and never evaluated); a part with no secret
leaf must render its value as before. The same classification drives the PL213
lint and the per-tool plans.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang import Engine
from policylang.language import parser
from policylang.language.checker import check
from policylang.language.secrets import MARKER, reads_secret, secret_scope
from policylang.runtime.celops import format_value

SECRET = "Zq-4111-2222-3333-4444"

POLICY = """
policy taint
principal {{ id: string, @secret pin: string = "" }}
tool pay {{ to: string, @secret card: string, owner: {{name: string, @secret ssn: string}},
           cards: list<{{label: string, @secret number: string}}> = [] }}
tool log {{ to: string, card: string, owner: {{name: string, ssn: string}},
           cards: list<{{label: string, number: string}}> = [] }}
def shown(x): x + ""
def pick(a, b): a == b ? a : b
rule r: deny pay, log because "r {{{part}}}"
"""

SECRET_LEAVES = [
    "args.card",
    "args.owner.ssn",
    "args.owner",
    "args",
    "principal.pin",
    "args['card']",
    "args.cards[0].number",
    "args.cards",
]
PLAIN_LEAVES = ["args.to", "args.owner.name", "principal.id", "'lit'", "tool"]


def _wrap(e: str) -> st.SearchStrategy[str]:
    """String-valued expressions built around ``e`` (a string-typed expression)."""
    return st.sampled_from(
        [
            f"{e} + 'x'",
            f"'x' + {e}",
            f"{e}.upperAscii()",
            f"string(size({e}))",
            f"({e} == 'a' ? 'y' : 'n')",
            f"string({e}.startsWith('4'))",
            f"shown({e})",
            f"pick({e}, args.to)",
            f"string([{e}, 'z'])",
            f"string({{'k': {e}}})",
            f"string([{e}].exists(v, v == 'q'))",
            f"string([{e}].map(v, v + '!'))",
            f"(true ? {e} : 'n')",
            f"{e}.lowerAscii().trim()",
        ]
    )


def _as_string(leaf: str) -> str:
    """A string-typed expression of any leaf (objects and lists through string(dyn(...)))."""
    return (
        leaf
        if leaf
        in (
            "args.card",
            "args.owner.ssn",
            "principal.pin",
            "args['card']",
            "args.to",
            "args.owner.name",
            "principal.id",
            "'lit'",
            "tool",
            "args.cards[0].number",
        )
        else f"string(dyn({leaf}))"
    )


@st.composite
def parts(draw: Any, leaves: list[str]) -> str:
    e = _as_string(draw(st.sampled_from(leaves)))
    for _ in range(draw(st.integers(0, 3))):
        e = draw(_wrap(e))
    return e


@st.composite
def mixed_parts(draw: Any) -> tuple[str, bool, bool]:
    """A part combining a plain and maybe a secret expression: (text, secret in pay, secret in log).

    In ``log`` the same fields are declared without ``@secret``: only ``principal.pin`` is secret.
    """
    plain = draw(parts(PLAIN_LEAVES))
    if not draw(st.booleans()):
        return plain, False, False
    secret = draw(parts(SECRET_LEAVES))
    combined = draw(
        st.sampled_from(
            [
                f"{plain} + {secret}",
                f"({secret} == '' ? {plain} : {plain})",
                f"pick({plain}, {secret})",
                f"[{plain}, {secret}][0]",
            ]
        )
    )
    return combined, True, "principal.pin" in secret


_ENGINES: dict[str, tuple[Engine, Engine]] = {}


def pair(part: str) -> tuple[Engine, Engine]:
    if part not in _ENGINES:
        fused = Engine.from_string(POLICY.format(part=part))
        ordinary = Engine.from_string(POLICY.format(part=part))
        assert ordinary._prepared is not None
        ordinary._prepared.fused.clear()
        _ENGINES[part] = (fused, ordinary)
    return _ENGINES[part]


ARGS = {
    "to": "bob",
    "card": SECRET,
    "owner": {"name": "ann", "ssn": "Zq-123-45-6789"},
    "cards": [{"label": "main", "number": "Zq-5555-6666-7777-8888"}],
}
PRINCIPAL = {"id": "u1", "pin": "Zq-pin-909090"}
VALUES = ["Zq-4111", "4111-2222", "Zq-123-45", "Zq-5555", "Zq-pin-9"]

_SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow], max_examples=40)


@_SETTINGS
@given(parts(SECRET_LEAVES))
def test_a_part_derived_from_a_secret_renders_as_the_marker_on_both_paths(part: str) -> None:
    for engine in pair(part):
        d = engine.decide("pay", ARGS, PRINCIPAL)
        assert d.reasons == [f"r {MARKER}"], part
        assert not any(v in d.model_dump_json() for v in VALUES)


@_SETTINGS
@given(mixed_parts())
def test_a_part_is_redacted_exactly_when_it_reads_a_secret(case: tuple[str, bool, bool]) -> None:
    part, in_pay, in_log = case
    for tool, secret in (("pay", in_pay), ("log", in_log)):
        fused, ordinary = pair(part)
        a, b = fused.decide(tool, ARGS, PRINCIPAL), ordinary.decide(tool, ARGS, PRINCIPAL)
        assert a.reasons == b.reasons and a.message == b.message
        if secret:
            assert a.reasons == [f"r {MARKER}"], (tool, part)
        else:
            assert MARKER not in a.message, (tool, part)


def test_the_same_rule_redacts_per_tool() -> None:
    """``card`` is secret in ``pay`` and not in ``log``: one rule, two renderings."""
    fused, ordinary = pair("args.card")
    for engine in (fused, ordinary):
        assert engine.decide("pay", ARGS, PRINCIPAL).reasons == [f"r {MARKER}"]
        assert engine.decide("log", {**ARGS, "card": "4111"}, {"id": "u1"}).reasons == ["r 4111"]


def test_plain_parts_render_their_values() -> None:
    fused, _ = pair("args.to + '/' + args.owner.name")
    assert fused.decide("pay", ARGS, PRINCIPAL).reasons == ["r bob/ann"]


def _scope_and_exprs(text: str) -> tuple[Any, list[Any]]:
    policy, diags = check([parser.parse(text, "<t>")], {}, {"<t>": text})
    assert not [d for d in diags if d.severity == "error"], diags
    rule = policy.rules[0]
    return secret_scope(policy, "pay"), [p for p in rule.because.parts if not isinstance(p, str)]


@given(st.sampled_from(SECRET_LEAVES), st.sampled_from(PLAIN_LEAVES))
def test_reads_secret_classifies_leaves(secret_leaf: str, plain_leaf: str) -> None:
    text = POLICY.format(part=_as_string(secret_leaf)).replace(
        '"r {', '"{' + _as_string(plain_leaf) + "} {"
    )
    scope, exprs = _scope_and_exprs(text)
    plain, secret = exprs
    assert reads_secret(secret, scope)
    assert not reads_secret(plain, scope)


def test_computed_keys_and_secret_keys_are_secret() -> None:
    for part in (
        "string(dyn(args[principal.id]))",
        "string(dyn({'a': 1}[args.card]))",
        "string(dyn(args.cards.map(c, c.number)))",
        "string(dyn(args.cards.filter(c, c.label == 'main')))",  # the elements themselves
        "string(args.cards.exists(c, c.number.startsWith('Zq')))",
        "string(dyn(args.cards.map(c, c)))",
    ):
        fused, ordinary = pair(part)
        for engine in (fused, ordinary):
            assert engine.decide("pay", ARGS, PRINCIPAL).reasons == [f"r {MARKER}"], part


def test_plain_fields_read_through_indexes_and_comprehensions_are_not_secret() -> None:
    for part, shown in (
        ("args.cards[0].label", "main"),
        ("args.cards.map(c, c.label)", "[main]"),
        ("string(args.cards.exists(c, c.label == 'main'))", "true"),
        ("string(size(args.cards.filter(c, c.label == 'x')))", None),  # size of secret elements
    ):
        fused, ordinary = pair(part)
        for engine in (fused, ordinary):
            expected = [f"r {MARKER}"] if shown is None else [f"r {shown}"]
            assert engine.decide("pay", ARGS, PRINCIPAL).reasons == expected, part


def test_undeclared_tools_still_redact_principal_secrets() -> None:
    engine = Engine.from_string("""
principal { id: string, @secret pin: string }
default allow
allow * because "pin {principal.pin} for {tool}"
""")
    d = engine.decide("anything.at_all", {"x": 1}, {"id": "u", "pin": "Zq-pin-42424242"})
    assert d.reasons == [f"pin {MARKER} for anything.at_all"]


def test_lint_pl212_warns_once_per_part() -> None:
    from policylang.language.lints import lint

    text = POLICY.format(part="args.card") + 'deny pay because "fine {args.to}"\n'
    policy, _ = check([parser.parse(text, "<t>")], {}, {"<t>": text})
    found = [
        d for d in lint(policy, [parser.parse(text, "<t>")], {"<t>": text}) if d.code == "PL213"
    ]
    assert len(found) == 1 and "{args.card}" in found[0].message and found[0].severity == "warning"


def test_the_marker_is_what_format_value_would_not_produce_for_the_secret() -> None:
    assert format_value(SECRET) != MARKER


ERRORS = """
tool t { @secret card: string, to: string }
deny t when int(args.card.upperAscii() + "!") > 0 because "upper"
deny t when args.to == "int" && int(args.to) > 0 because "plain"
limit t to sum(double(args.card)) 10 per 1h when args.to == "sum"
allow t
"""


@given(st.text("ghijklmnopqrstuvwxyz", min_size=8, max_size=20))
def test_errors_of_expressions_that_read_a_secret_are_withheld(secret: str) -> None:
    """Scrubbing by value cannot see ``upperAscii()`` of the secret: the error text is withheld."""
    from policylang.language.secrets import WITHHELD

    fused = Engine.from_string(ERRORS)
    ordinary = Engine.from_string(ERRORS)
    assert ordinary._prepared is not None
    ordinary._prepared.fused.clear()
    for engine in (fused, ordinary):
        d = engine.decide("t", {"card": secret, "to": "int"})
        assert d.code == "evaluation_error" and d.denied
        by_rule = {e.rule: e.message for e in d.errors}
        assert WITHHELD in by_rule.values()
        assert "cannot convert 'int' to int" in by_rule.values()  # a plain condition keeps its text
        text = d.model_dump_json()
        assert secret.upper() not in text and secret not in text
        d = engine.decide("t", {"card": "zz", "to": "sum"})
        assert d.code == "evaluation_error" and WITHHELD in d.message and "zz" not in d.message
    from policylang.cli import eval as eval_cli

    explained = eval_cli.explain(fused, "t", {"card": secret, "to": "x"}, None, None)
    assert [r["error"] for r in explained["rules"] if r["error"]] == [WITHHELD]
