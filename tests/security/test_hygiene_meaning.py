"""Meaning that cannot be mistaken: hygienic ``def`` inlining, ``string()`` of whole numbers, regex escapes.

Each is a class of policies that read right and did something else: a predicate
whose bound variable captured the call site's, a key that split on how JSON
spelled a number, a pattern whose ``\\b`` was a backspace.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.errors import PolicyCheckError
from policylang.language import codes
from policylang.language.checker import check
from policylang.language.lints import lint
from policylang.runtime import celops
from policylang.runtime.loader import parse_sources

NAMES = st.sampled_from(["c", "v", "x", "r", "m", "c_1", "v_2", "item"])
ADDRESSES = st.lists(
    st.sampled_from(["bob@x.com", "ann@x.com", "eve@evil.com", "mal@evil.com"]),
    min_size=1,
    max_size=4,
)
CONTACTS = ["bob@x.com", "ann@x.com"]


def _engine(text: str) -> Engine:
    return Engine.from_string(text, data={"contacts": CONTACTS, "domains": ["x.com"]})


def _effect(engine: Engine, to: list[str]) -> str:
    return str(engine.decide("email.send", args={"to": to}).effect)


@given(param=NAMES, body_var=NAMES, site_var=NAMES, to=ADDRESSES)
def test_renaming_bound_variables_never_changes_a_decision(
    param: str, body_var: str, site_var: str, to: list[str]
) -> None:
    """Any spelling of the call site's and the body's variables decides like the reference."""
    if (
        param == body_var
    ):  # the body's own variable would shadow its parameter: a different predicate
        body_var = body_var + "_b"
    text = f"""
policy p
default allow
tool email.send {{ to: list<string> }}
def is_contact({param}): data.contacts.exists({body_var}, {body_var} == {param})
deny email.send when args.to.exists({site_var}, !is_contact({site_var})) because "unknown recipient"
"""
    want = "deny" if any(t not in CONTACTS for t in to) else "allow"
    assert _effect(_engine(text), to) == want


@given(outer=NAMES, inner=NAMES, site=NAMES, to=ADDRESSES)
def test_nested_predicates_stay_hygienic(outer: str, inner: str, site: str, to: list[str]) -> None:
    """A predicate calling a predicate, each binding variables the call sites also use."""
    if outer == inner:
        inner = inner + "_i"
    text = f"""
policy p
default allow
tool email.send {{ to: list<string> }}
def domain_ok({outer}): data.domains.exists({inner}, {outer}.endsWith("@" + {inner}))
def all_ok(xs): xs.all({site}, domain_ok({site}))
deny email.send when !all_ok(args.to) because "outside domain"
"""
    want = "deny" if any(not t.endswith("@x.com") for t in to) else "allow"
    assert _effect(_engine(text), to) == want


def test_the_reported_capture_denies_an_unknown_recipient() -> None:
    engine = _engine("""
policy p
default allow
tool email.send { to: list<string> }
def is_contact(v): data.contacts.exists(c, c == v)
deny email.send when args.to.exists(c, !is_contact(c)) because "unknown recipient"
""")
    assert _effect(engine, ["eve@evil.com"]) == "deny"
    assert _effect(engine, ["bob@x.com"]) == "allow"


def test_a_predicate_body_cannot_read_the_call_sites_variables() -> None:
    """A free name in a body would be captured by whatever variable the call site binds."""
    with pytest.raises(PolicyCheckError) as info:
        _engine("""
policy p
default allow
tool email.send { to: list<string> }
def f(v): x == v
deny email.send when args.to.exists(x, f("a")) because "no"
""")
    text = str(info.value)
    assert "PL106" in text and "'x' is not a parameter of f()" in text


def test_a_macro_target_in_a_body_is_read_outside_the_macros_variable() -> None:
    """``c.exists(c, ...)`` in a body: the target ``c`` is the parameter, the inner ``c`` the element."""
    engine = _engine("""
policy p
default allow
tool email.send { to: list<string> }
def any_evil(c): c.exists(c, c.endsWith("@evil.com"))
deny email.send when any_evil(args.to) because "evil"
""")
    assert _effect(engine, ["bob@x.com", "eve@evil.com"]) == "deny"
    assert _effect(engine, ["bob@x.com"]) == "allow"


@given(n=st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1))
def test_string_of_a_whole_number_does_not_depend_on_how_json_spelled_it(n: int) -> None:
    assert celops.to_string(float(n)) == celops.to_string(n) == str(n)


@given(acct=st.integers(min_value=0, max_value=10**12))
def test_deny_lists_and_limit_keys_built_with_string_match_either_spelling(acct: int) -> None:
    engine = Engine.from_string(
        """
policy p
default allow
tool pay { acct: number }
deny pay when string(args.acct) in data.blocked because "blocked account"
limit pay to 1 per 1h by string(args.acct)
""",
        data={"blocked": [str(acct)]},
    )
    for spelled in (acct, float(acct)):
        assert engine.decide("pay", args={"acct": spelled}).effect == "deny"
    open_engine = Engine.from_string("""
policy p
default allow
tool pay { acct: number }
limit pay to 1 per 1h by string(args.acct)
""")
    assert open_engine.decide("pay", args={"acct": acct}).effect == "allow"
    second = open_engine.decide("pay", args={"acct": float(acct)})
    assert second.effect == "deny" and second.code == "rate_limited"


def test_fractional_doubles_keep_cels_form() -> None:
    assert celops.to_string(123.456) == "123.456"
    assert celops.to_string(-4.5e-3) == "-0.0045"
    assert celops.to_string(1e20) == "1e+20"


def _lint_codes(text: str) -> list[str]:
    sources = {"t.policy": text}
    files = parse_sources(sources)
    policy, diags = check(files, {}, sources)
    assert not [d for d in diags if d.severity == "error"], diags
    return [d.code for d in lint(policy, files, sources)]


@pytest.mark.parametrize("escape", ["\\b", "\\a", "\\f", "\\v", "\\x01", "\\u001f"])
def test_a_control_character_escape_in_a_constant_pattern_is_flagged(escape: str) -> None:
    text = f"""policy p
default allow
tool email.send {{ body: string }}
deny email.send when args.body.matches("(?i){escape}password{escape}") because "leak"
"""
    assert "PL214" in _lint_codes(text)


@pytest.mark.parametrize(
    "pattern", ['r"(?i)\\bpassword\\b"', '"(?i)\\\\bpassword\\\\b"', '"a\\tb\\n"']
)
def test_raw_strings_and_meaningful_escapes_pass(pattern: str) -> None:
    text = f"""policy p
default allow
tool email.send {{ body: string }}
deny email.send when args.body.matches({pattern}) because "leak"
"""
    assert "PL214" not in _lint_codes(text)


def test_the_code_is_documented() -> None:
    entry = codes.get("PL214")
    assert entry is not None and "raw string" in entry.explain()
