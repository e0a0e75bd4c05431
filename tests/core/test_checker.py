"""The checker: every load-time mistake gets a code, a place, a snippet and a hint."""

from __future__ import annotations

import re

import pytest

from policylang import Engine, PolicyCheckError, PolicyLoadError

HEAD = "policy p\ntool payments.send { amount: number, currency: string, to: string }\n"


def _load_error(text: str, **kw) -> PolicyLoadError:
    with pytest.raises(PolicyLoadError) as info:
        Engine.from_string(text, path="rules.policy", **kw)
    return info.value


def _where(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of needle in text."""
    pos = -1
    for _ in range(occurrence + 1):
        pos = text.index(needle, pos + 1)
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _check(text: str, code: str, needle: str, *fragments: str, kw=None) -> PolicyLoadError:
    exc = _load_error(text, **(kw or {}))
    assert isinstance(exc, PolicyCheckError), str(exc)
    codes = [d.code for d in exc.errors()]
    assert code in codes, str(exc)
    diag = next(d for d in exc.errors() if d.code == code)
    line, col = _where(text, needle)
    assert (diag.span.line, diag.span.column) == (line, col), str(exc)
    rendered = str(exc)
    assert f"rules.policy:{line}:{col}: {code}" in rendered
    # a caret snippet: the offending line, then carets under the problem
    src_line = text.splitlines()[line - 1]
    assert f"{line:>4} | {src_line}" in rendered
    caret = re.search(r"\n\s+\| ( *)(\^+)", rendered)
    assert caret is not None and len(caret.group(1)) == col - 1
    whole = rendered + " " + (diag.hint or "")
    for fragment in fragments:
        assert fragment in whole, whole
    return exc


def test_unknown_tool_with_did_you_mean():
    text = HEAD + "allow payments.sned\n"
    _check(text, "PL101", "payments.sned", "did you mean", "payments.send")


def test_glob_matching_no_declared_tool_is_a_warning():
    text = HEAD + "deny refunds.* when true\nallow payments.send\n"
    engine = Engine.from_string(text)
    warns = [d for d in engine.warnings if d.code == "PL101"]
    assert warns and warns[0].severity == "warning" and "refunds.*" in warns[0].message
    assert (warns[0].span.line, warns[0].span.column) == _where(text, "refunds.*")


def test_unknown_parameter_with_did_you_mean():
    text = HEAD + "deny payments.send when args.amout > 1\n"
    _check(text, "PL102", "args.amout", "amout", "did you mean", "amount")


def test_string_compared_with_number():
    text = HEAD + "deny payments.send when args.currency == 1\n"
    _check(text, "PL103", "args.currency == 1", "string")


def test_ordering_a_string_against_a_number():
    text = HEAD + "deny payments.send when args.to < 3\n"
    _check(text, "PL103", "args.to < 3")


def test_unknown_function():
    text = HEAD + "deny payments.send when frobnicate(args.to)\n"
    _check(text, "PL104", "frobnicate(", "frobnicate")


def test_unknown_method():
    text = HEAD + "deny payments.send when args.to.frobnicate()\n"
    _check(text, "PL104", "args.to.frobnicate", "frobnicate")


def test_wrong_arity():
    text = HEAD + 'deny payments.send when args.to.startsWith("a", "b")\n'
    _check(text, "PL105", "args.to.startsWith", "startsWith", "1 argument")


def test_wrong_arity_of_a_predicate():
    text = HEAD + "def big(x): x > 10\ndeny payments.send when big(args.amount, 2)\n"
    exc = _load_error(text)
    assert "PL105" in [d.code for d in exc.errors()], str(exc)


def test_unknown_name():
    text = HEAD + "deny payments.send when amount > 1\n"
    _check(text, "PL106", "amount > 1", "amount", "args")


def test_non_bool_condition():
    text = HEAD + "deny payments.send when args.amount\n"
    exc = _load_error(text)
    assert any(d.code == "PL110" for d in exc.errors()), str(exc)


def test_bad_constant_regex():
    text = HEAD + 'deny payments.send when args.to.matches("(unclosed")\n'
    _check(text, "PL111", '"(unclosed"', "regular expression")


def test_backreference_is_not_re2():
    text = HEAD + r'deny payments.send when args.to.matches("(a)\\1")' + "\n"
    _check(text, "PL111", '"(a)', "regular expression")


def test_unknown_zone_in_a_function():
    text = HEAD + 'deny payments.send when weekday(now, "Mars/Olympus") == "Sat"\n'
    _check(text, "PL112", '"Mars/Olympus"', "Mars/Olympus")


def test_unknown_zone_in_the_header():
    text = 'policy p\ntimezone "Nowhere/Land"\ntool t {}\nallow t\n'
    exc = _load_error(text)
    assert exc.code == "PL112"
    assert exc.line == 2


def test_unknown_country():
    text = HEAD + 'deny payments.send when is_holiday(now, "XQ")\n'
    _check(text, "PL113", '"XQ"', "XQ")


def test_data_without_data_file():
    text = HEAD + "deny payments.send when !(args.to in data.payees)\n"
    _check(text, "PL114", "data.payees", "payees")


def test_data_file_typo_suggests_the_real_one():
    text = HEAD + "deny payments.send when !(args.to in data.payes)\n"
    exc = _check(text, "PL114", "data.payes", "payes", kw={"data": {"payees": ["bob"]}})
    assert "payees" in str(exc)


def test_def_cycle():
    text = HEAD + "def a(x): b(x)\ndef b(x): a(x)\ndeny payments.send when a(args.amount)\n"
    exc = _load_error(text)
    assert "PL115" in [d.code for d in exc.errors()], str(exc)
    assert "cycle" in str(exc)


def test_def_self_recursion():
    text = HEAD + "def a(x): x > 1 && a(x - 1)\ndeny payments.send when a(args.amount)\n"
    exc = _load_error(text)
    assert "PL115" in [d.code for d in exc.errors()], str(exc)


def test_two_errors_in_one_file_are_both_reported_in_order():
    text = (
        HEAD + "deny payments.send when args.amout > 1\n"
        "allow payments.sned\n"
        "deny payments.send when frobnicate(args.to)\n"
    )
    exc = _load_error(text)
    errs = exc.errors()
    codes = [d.code for d in errs]
    assert {"PL101", "PL102", "PL104"} <= set(codes), str(exc)
    lines = [d.span.line for d in errs]
    assert lines == sorted(lines)
    rendered = str(exc)
    for code in ("PL101", "PL102", "PL104"):
        assert code in rendered
    assert rendered.index("PL102") < rendered.index("PL101") < rendered.index("PL104")


def test_errors_in_several_files_are_reported_together():
    sources = {
        "main.policy": "policy p\ntool t { n: int }\nallow t when args.m > 1\n",
        "more.policy": "deny t when zzz\n",
    }
    with pytest.raises(PolicyLoadError) as info:
        Engine.from_sources(sources)
    rendered = str(info.value)
    assert "main.policy:3:" in rendered and "more.policy:1:" in rendered


def test_duplicate_rule_names():
    text = HEAD + "rule r: allow payments.send\nrule r: deny payments.send\n"
    exc = _load_error(text)
    assert exc.errors() and "r" in str(exc)


def test_tool_declared_twice():
    text = HEAD + "tool payments.send { amount: number }\nallow payments.send\n"
    exc = _load_error(text)
    assert "PL107" in [d.code for d in exc.errors()]


def test_valid_policy_has_no_errors():
    # The control: everything above is wrong only because of the one mistake.
    text = HEAD + (
        'deny payments.send when args.amount > 1 && args.currency == "EUR" '
        '&& args.to.startsWith("a") && weekday(now, "UTC") == "Sat" '
        '&& !is_holiday(now, "US")\nallow payments.send\n'
    )
    Engine.from_string(text)
