"""Cases files, strategies, the command line and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import given, settings

from policylang import Engine
from policylang.testing import collect_constants, requests, run_path
from policylang.testing.cases import load_cases, run_case

POLICY = """
policy t version "1"
default deny
timezone "America/New_York"
principal { id: string, role: string, scopes: list<string> = [] }
context { confidence: number = 1.0 }
tool payments.send { amount: number, currency: "USD" | "EUR", to: string, memo: string? }
tool calendar.create_event { start: timestamp, end: timestamp }
rule staff: allow payments.send, calendar.create_event
    when principal.role in ["finance", "admin"] && "payments:write" in principal.scopes
rule big: confirm payments.send when args.amount > 10000
rule unsure: confirm payments.send when context.confidence < 0.85
rule acct: deny payments.send when args.to.startsWith("X-")
rule hol: deny calendar.create_event when is_holiday(args.start, "US")
rule hours: deny calendar.create_event unless business_hours(args.start, "08:00-18:00", "Europe/Berlin")
rule cap: limit payments.send to 2 per 1h by principal.id
assert never allow payments.send when args.amount > 10000
"""


def engine() -> Engine:
    return Engine.from_string(POLICY, path="t.policy")


def test_constants_are_collected_per_path() -> None:
    c = collect_constants(engine().compiled.policy)
    assert {10000, 10001, 9999, 0} <= set(c.at("args.amount").numbers)
    assert 0.85 in c.at("context.confidence").numbers
    assert {"finance", "admin"} <= set(c.at("principal.role").strings)
    assert "payments:write" in c.at("principal.scopes[]").strings
    assert any(s.startswith("X-") and s != "X-" for s in c.at("args.to").strings)
    assert ("US", None) in c.countries and ("08:00-18:00", "Europe/Berlin") in c.windows
    assert {"America/New_York", "Europe/Berlin", "UTC"} <= set(c.zones)


e = engine()


@settings(max_examples=60, deadline=None)
@given(requests(e))
def test_requests_are_valid_and_pin_now(req: dict) -> None:
    assert req["tool"] in ("payments.send", "calendar.create_event")
    assert "now" in req["context"]
    d = e.decide(**req)
    assert d.code not in ("invalid_request", "internal_error"), d.reasons


def test_strategy_hits_holidays_and_thresholds() -> None:
    seen_amount, seen_holiday = set(), False
    from policylang.testing.properties import Harness, run_search

    h = Harness(e)

    def fn(req: dict) -> None:
        nonlocal seen_holiday
        if req["tool"] == "payments.send":
            seen_amount.add(req["args"]["amount"])
        elif any(r.id == "hol" for r in h.decide(req).rules):
            seen_holiday = True

    run_search(requests(e), fn, 300, 0, "t")
    assert 10000 in seen_amount and seen_holiday


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(textwrap.dedent(text))
    return p


def test_cases_sequence_history_counters_and_coverage(tmp_path: Path) -> None:
    write(tmp_path, "t.policy", POLICY)
    write(
        tmp_path,
        "t.cases.yaml",
        """
        - name: allowed
          request: {tool: payments.send, args: {amount: 5, currency: USD, to: A},
                    principal: {id: u, role: finance, scopes: ["payments:write"]}}
          want: allow
          want_rules: [staff]
        - name: either effect
          request: {tool: payments.send, args: {amount: 50000, currency: USD, to: A},
                    principal: {id: u, role: finance, scopes: ["payments:write"]}}
          want: [deny, confirm]
          want_reason: approval
        - name: limit via history
          given:
            now: 2025-06-11T10:00:00Z
            history:
              - {tool: payments.send, args: {amount: 5, currency: USD, to: A},
                 principal: {id: u, role: finance, scopes: ["payments:write"]}, at: "2025-06-11T09:30:00Z"}
          steps:
            - request: {tool: payments.send, args: {amount: 5, currency: USD, to: B},
                        principal: {id: u, role: finance, scopes: ["payments:write"]}}
              want: allow
            - advance: 1m
              request: {tool: payments.send, args: {amount: 5, currency: USD, to: C},
                        principal: {id: u, role: finance, scopes: ["payments:write"]}}
              want: deny
              want_code: rate_limited
            - advance: 31m
              request: {tool: payments.send, args: {amount: 5, currency: USD, to: C},
                        principal: {id: u, role: finance, scopes: ["payments:write"]}}
              want: allow
        - name: counters
          given: {counters: [{limit: cap, key: u, used: 2}]}
          request: {tool: payments.send, args: {amount: 5, currency: USD, to: A},
                    principal: {id: u, role: finance, scopes: ["payments:write"]}}
          want: deny
        - name: wrong on purpose
          request: {tool: payments.send, args: {amount: 5, currency: USD, to: A},
                    principal: {id: u, role: finance, scopes: ["payments:write"]}}
          want: deny
        """,
    )
    report = run_path(tmp_path, auto=False, properties=False)
    by_name = {c.case.name: c for c in report.cases}
    assert all(
        by_name[n].ok for n in ("allowed", "either effect", "limit via history", "counters")
    ), [c.report() for c in report.cases if not c.ok]
    bad = by_name["wrong on purpose"]
    assert not bad.ok and "want: deny" in bad.report() and "got:  allow" in bad.report()
    assert "hol" in report.uncovered and "staff" in report.covered and "cap" in report.covered
    assert report.exit_code == 1


def test_cli_summary_junit_and_seed(tmp_path: Path) -> None:
    write(tmp_path, "t.policy", POLICY)
    junit = tmp_path / "out.xml"
    cmd = [
        sys.executable,
        "-m",
        "policylang.testing",
        str(tmp_path),
        "--max-examples",
        "50",
        "--seed",
        "3",
        "--junit-xml",
        str(junit),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "properties" in out.stdout and "coverage" in out.stdout and "OK" in out.stdout
    assert "<testsuite" in junit.read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    strip = lambda s: [line for line in s.splitlines() if not line.startswith("OK in")]  # noqa: E731
    assert strip(again.stdout) == strip(out.stdout)


def test_cli_module_add_parser() -> None:
    import argparse

    from policylang.cli import test as cli_test

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_test.add_parser(sub)
    args = parser.parse_args(["test", "somewhere", "--no-auto", "--seed", "1"])
    assert (
        args.func is cli_test.run and args.no_auto and args.seed == 1 and args.max_examples == 200
    )


def test_pytest_plugin_collects_cases_and_assertions(pytester) -> None:  # type: ignore[no-untyped-def]
    src = Path(__file__).parent / "buggy" / "off_by_one" / "buggy"
    for f in src.iterdir():
        (pytester.path / f.name).write_text(f.read_text())
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",  # the plugin loads by its entry point
        "--policylang-max-examples",
        "100",
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*amount: 10000*", "*want:*", "*- deny*"])


def test_load_cases_accepts_a_cases_map(tmp_path: Path) -> None:
    p = write(tmp_path, "x.cases.yaml", "cases:\n  - {name: a, request: {tool: t}, want: allow}\n")
    [case] = load_cases(p)
    assert case.name == "a" and case.line == 2
    r = run_case(engine(), case)
    assert not r.ok and r.steps[0].got == "deny"


def test_automatic_checks_never_contradict_a_passing_case(tmp_path) -> None:
    """A tool a case allows is 'allowable', whatever the random search happened to find."""
    from policylang.testing import run_path

    # only n = 16935 (mod 100003) opens it: no search over the rule's constants finds that
    (tmp_path / "p.policy").write_text(
        "policy p\ntool t { n: int }\nallow t when args.n * 7919 % 100003 == 4242\n"
    )
    (tmp_path / "p.cases.yaml").write_text(
        "- name: the one number\n  request: {tool: t, args: {n: 16935}}\n  want: allow\n"
    )
    report = run_path(tmp_path, max_examples=5, seed=1)
    allowed = [r for r in report.auto if r.kind == "tool-allowed" and r.name == "t"]
    assert allowed and allowed[0].ok
