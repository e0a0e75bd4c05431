"""Each lint (PL2xx) fires on a small example and stays quiet on clean policies and on rules/."""

from __future__ import annotations

from pathlib import Path

import pytest

from policylang.errors import Diagnostic
from policylang.language.checker import check
from policylang.language.codes import CODES, explain
from policylang.language.lints import lint
from policylang.runtime.loader import parse_sources, read_path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"

HEAD = 'policy t version "1"\ndefault deny\n'
TOOLS = """
tool payments.send { amount: number, currency: string, to: string, memo: string? }
tool files.delete { path: string }
tool email.send { to: string, body: string }
"""
# A clean example: every tool allowed somewhere, every deny/confirm with a reason.
CLEAN = (
    HEAD
    + TOOLS
    + """
allow payments.send when principal.role == "finance" because "finance pays"
allow files.delete when principal.role == "admin" because "admins delete"
allow email.send because "anyone may mail"
deny payments.send when args.amount <= 0 || args.amount > 50000 because "out of range"
deny payments.send when args.amount >= 0 && args.amount < 1 because "dust"
deny files.delete when args.path in ["/", "/etc"] because "system folder"
confirm email.send when size(args.body) > 5000 because "long mail"
deny email.send when args.to != "a" && args.to != "b" because "unknown recipient"
limit email.send to 10 per 1h by principal.id
"""
)


def lints(text: str, data: dict | None = None) -> list[Diagnostic]:
    sources = {"t.policy": text}
    files = parse_sources(sources)
    policy, diags = check(files, data or {}, sources)
    assert not [d for d in diags if d.severity == "error"], diags
    return lint(policy, files, sources)


def codes(text: str, data: dict | None = None) -> list[str]:
    return [d.code for d in lints(text, data)]


def test_clean_example_is_quiet() -> None:
    assert lints(CLEAN) == []


def test_shipped_rules_are_quiet() -> None:
    assert RULES.is_dir()
    sources, data = read_path(RULES)
    files = parse_sources(sources)
    policy, _ = check(files, data, sources)
    assert lint(policy, files, sources) == []


@pytest.mark.parametrize(
    "cond",
    [
        "args.amount > 100 && args.amount < 50",
        "args.to in []",
        'args.to == "a" && args.to == "b"',
        "args.amount == 5 && args.amount != 5",
        'args.to in ["a", "b"] && !(args.to in ["a", "b"])',
        "-3 > args.amount && args.amount > 0",
        "args.amount >= 10 && args.amount <= 10 && args.amount != 10",
    ],
)
def test_pl201_never_true(cond: str) -> None:
    assert "PL201" in codes(CLEAN + f'deny payments.send when {cond} because "x"\n')


def test_pl201_when_unless_clash() -> None:
    text = CLEAN + 'deny payments.send when args.amount > 10 unless args.amount > 5 because "x"\n'
    assert "PL201" in codes(text)


@pytest.mark.parametrize(
    "cond",
    [
        "args.amount > 5 || args.amount <= 5",
        "!(args.to in [])",
        'args.to != "a" || args.to != "b"',
        "args.amount < 10 || args.amount > 0",
    ],
)
def test_pl202_always_true(cond: str) -> None:
    assert "PL202" in codes(CLEAN + f'deny payments.send when {cond} because "x"\n')


@pytest.mark.parametrize(
    "cond",
    [
        "args.amount > 5 && args.amount < 6",
        "args.amount >= 5 && args.amount <= 5",
        'args.to == "a" || args.to == "b"',
        'args.amount > 5 || args.currency == "USD"',
        'args.amount > 5 && args.currency == "USD"',
    ],
)
def test_satisfiable_conditions_are_quiet(cond: str) -> None:
    found = codes(CLEAN + f'deny payments.send when {cond} because "x"\n')
    assert "PL201" not in found and "PL202" not in found


def test_pl203_unconditional_deny_shadows_allow() -> None:
    text = CLEAN + 'deny files.delete because "off"\n'
    found = lints(text)
    assert [d.code for d in found] == ["PL203"]
    assert found[0].related and found[0].related[0][1].line == text.count("\n")


def test_pl203_more_general_deny_shadows_allow() -> None:
    text = (
        HEAD
        + TOOLS
        + """
allow email.send, files.delete because "ok"
deny payments.send when args.amount > 1000 because "big"
allow payments.send when args.amount > 5000 && principal.role == "finance"
"""
    )
    assert "PL203" in codes(text)


def test_pl203_glob_deny_covers_tool() -> None:
    text = CLEAN + 'deny files.* because "files are off"\n'
    assert "PL203" in codes(text)


def test_pl203_quiet_when_deny_is_narrower() -> None:
    text = (
        CLEAN
        + 'deny payments.send when args.amount > 40000 && args.currency == "EUR" because "x"\n'
    )
    assert "PL203" not in codes(text)


def test_pl204_duplicate_rule() -> None:
    rule = 'deny files.delete when args.path == "/tmp" because "tmp"\n'
    assert codes(CLEAN + rule + rule) == ["PL204"]


def test_pl205_tool_never_allowed() -> None:
    text = (
        CLEAN
        + "tool crm.export { table: string }\n"
        + 'deny crm.export when args.table == "users" because "personal data"\n'
    )
    assert codes(text) == ["PL205"]


def test_pl205_quiet_with_confirm_or_default_allow() -> None:
    confirm = CLEAN + "tool crm.export { table: string }\n" + 'confirm crm.export because "check"\n'
    assert codes(confirm) == []
    text = (
        CLEAN.replace("default deny", "default allow")
        + "tool crm.export { table: string }\n"
        + 'deny crm.export when args.table == "users" because "personal data"\n'
    )
    assert codes(text) == []


def test_pl206_unmentioned_tool() -> None:
    text = (
        CLEAN + "tool crm.get { id: string }\n" + 'deny * when principal.id == "" because "who?"\n'
    )
    assert codes(text) == ["PL206"]


def test_pl207_bad_regex_in_data() -> None:
    text = (
        CLEAN
        + 'deny email.send when data.patterns.exists(p, args.body.matches(p)) because "x"\n'
        + 'deny email.send when args.body.matches(data.rules.link) because "y"\n'
    )
    found = lints(text, {"patterns": ["ok+", "(a)\\1"], "rules": {"link": "(?=x)"}})
    assert [d.code for d in found] == ["PL207", "PL207"]
    assert all(d.severity == "error" for d in found)
    assert codes(text, {"patterns": ["ok+"], "rules": {"link": "https?://"}}) == []


def test_pl208_zero_limit() -> None:
    assert codes(CLEAN + "limit files.delete to 0 per 1h\n") == ["PL208"]


def test_pl209_missing_because() -> None:
    found = lints(
        CLEAN
        + 'deny files.delete when args.path == "/x"\nconfirm email.send when args.to == "boss"\n'
    )
    assert [d.code for d in found] == ["PL209", "PL209"]


def test_pl210_no_header_single_and_multi_file() -> None:
    assert codes(CLEAN.replace('policy t version "1"\n', "")) == ["PL210"]
    sources = {"a.policy": "default deny\n" + TOOLS, "b.policy": 'allow * because "x"\n'}
    files = parse_sources(sources)
    policy, _ = check(files, {}, sources)
    found = lint(policy, files, sources)
    assert [d.code for d in found if d.code == "PL210"] == ["PL210"] and "2 files" in found[
        0
    ].message


def test_every_code_is_documented() -> None:
    for code, entry in CODES.items():
        assert entry.code == code and entry.summary and entry.why and entry.example
        assert code in explain(code)
    for n in [*range(1, 7), *range(101, 118), *range(201, 211)]:
        assert f"PL{n:03d}" in CODES


def test_pl211_fires_when_a_rule_counts_more_calls_than_the_session_keeps():
    from policylang.language.checker import check
    from policylang.language.lints import lint
    from policylang.language.parser import parse

    def codes(text: str) -> list[str]:
        files = [parse(text, "s.policy")]
        policy, _ = check(files, {}, {"s.policy": text})
        return [d.code for d in lint(policy, files, {"s.policy": text})]

    head = "policy s\ntool t {}\ncontext { sid: string }\nallow t\n"
    assert "PL211" in codes(
        head + "session by context.sid keep 10\n"
        'deny t when session.count("t") > 10 because "too many"\n'
    )
    assert "PL211" in codes(
        head + "session by context.sid keep 10\n"
        'deny t when 11 <= session.count("t") because "too many"\n'
    )
    assert "PL211" not in codes(
        head + "session by context.sid keep 10\n"
        'deny t when session.count("t") >= 10 because "enough"\n'
    )
