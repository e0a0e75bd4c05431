"""``policylang test``: cases, assertion properties and automatic checks, with a summary.

:func:`run_path` does the work and returns a :class:`Report`; :func:`main`
is the command line (``policylang test`` and ``python -m policylang.testing``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree as ET

from policylang.errors import PolicyError
from policylang.runtime.engine import Engine
from policylang.testing.cases import (
    CaseFileError,
    CaseResult,
    coverage,
    find_case_files,
    load_cases,
    run_case,
)
from policylang.testing.properties import (
    CheckResult,
    Harness,
    auto_checks,
    check_assertion,
    explore,
)

DEFAULT_MAX_EXAMPLES = 200


@dataclass
class Report:
    path: str
    cases: list[CaseResult] = field(default_factory=list)
    properties: list[CheckResult] = field(default_factory=list)
    auto: list[CheckResult] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files that could not be loaded
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return (
            bool(self.errors)
            or any(not c.ok for c in self.cases)
            or any(p.failed for p in self.properties)
            or any(a.failed for a in self.auto)
        )

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def policy_path(path: str | Path) -> Path:
    """What to load for PATH: a folder, a .policy file, or the folder of a cases file."""
    p = Path(path)
    if p.is_file() and not p.name.endswith(".policy"):
        return p.parent
    return p


def run_path(
    path: str | Path,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = None,
    auto: bool = True,
    properties: bool = True,
    sweep: bool = True,
    progress: Callable[[str], None] | None = None,
    follow_links: bool = False,
) -> Report:
    """Run every case file, every assertion and (unless ``auto=False``) the automatic checks.

    ``follow_links=False`` refuses policy, data and cases files that are links
    out of the policy folder (their text is never read, so never printed).
    """
    started = time.perf_counter()
    report = Report(str(path))
    try:
        engine = Engine.from_path(policy_path(path), follow_links=follow_links)
    except (PolicyError, OSError) as exc:
        report.errors.append(str(exc))
        report.seconds = time.perf_counter() - started
        return report
    report.cases, errors = run_cases(engine, path, progress, follow_links)
    report.errors += errors
    report.covered, report.uncovered = coverage(engine, report.cases)
    assert engine.compiled is not None
    policy = engine.compiled.policy
    if properties and (policy.assertions or auto):
        h = Harness(engine)
        if progress:
            progress(f"exploring {len(h.space.tools)} tool(s), {max_examples} examples each")
        tools = None
        if not auto:  # only what the assertions need
            from policylang.testing.strategies import tools_of

            tools = [
                t
                for t in h.space.tools
                if any(t in tools_of(policy, a.tools) for a in policy.assertions)
            ]
        ex = explore(h, max_examples, seed, progress, tools)
        for a in policy.assertions:
            if progress:
                progress(f"checking assertion {policy.rule_id(a)}")
            report.properties.append(check_assertion(h, a, ex, max_examples, seed, sweep))
        if auto:
            _learn_from_cases(ex, report.cases)
            report.auto = auto_checks(h, ex, max_examples, seed, progress)
    report.seconds = time.perf_counter() - started
    return report


def _learn_from_cases(ex: Any, cases: list[CaseResult]) -> None:
    """What the cases showed counts as found: a rule that decided a case fires, a tool a
    case allowed can be allowed (so the automatic checks never contradict a passing case)."""
    for result in cases:
        for step in result.steps:
            tool = step.request.get("tool") if isinstance(step.request, dict) else None
            for rid in step.rules:
                ex.fired.setdefault(rid, step.request)
            if isinstance(tool, str) and step.got == "allow":
                ex.allowed.setdefault(tool, step.request)
            if isinstance(tool, str) and step.got == "confirm":
                ex.confirmed.setdefault(tool, step.request)


def run_cases(
    engine: Engine,
    path: str | Path,
    progress: Callable[[str], None] | None = None,
    follow_links: bool = False,
) -> tuple[list[CaseResult], list[str]]:
    results: list[CaseResult] = []
    errors: list[str] = []
    for f in find_case_files(path):
        try:
            cases = load_cases(f, follow_links=follow_links)
        except CaseFileError as exc:
            errors.append(str(exc))
            continue
        if progress:
            progress(f"running {len(cases)} case(s) from {f.name}")
        results += [run_case(engine, c) for c in cases]
    return results, errors


# ---------------------------------------------------------------- output


def render(report: Report, out: TextIO, verbose: bool = False) -> None:
    w = out.write
    for e in report.errors:
        w(f"ERROR {e}\n")
    for c in report.cases:
        if not c.ok or verbose:
            w(c.report() + "\n")
    for p in report.properties:
        if p.failed:
            w(f"FAIL assertion {p.name}\n  {p.message}\n")
            if p.case_yaml:
                w("  minimal counterexample, ready to paste into a cases file:\n")
                w("".join("    " + line + "\n" for line in p.case_yaml.rstrip().splitlines()))
        elif not p.ok:
            w(f"WARN assertion {p.name}: {p.message}\n")
        elif verbose:
            w(f"PASS assertion {p.name}: {p.message} ({p.examples} requests checked)\n")
    for a in report.auto:
        if a.failed:
            w(f"FAIL {a.kind} {a.name}: {a.message}\n")
            if a.case_yaml:
                w("".join("    " + line + "\n" for line in a.case_yaml.rstrip().splitlines()))
        elif not a.ok:
            w(f"WARN {a.message}\n")
    if report.uncovered and report.cases:
        w(f"WARN no case is decided by: {', '.join(report.uncovered)}\n")
    w("\n" + summary_table(report) + "\n")


def summary_table(report: Report) -> str:
    def row(what: str, passed: int, failed: int, warned: int = 0, note: str = "") -> list[str]:
        return [what, str(passed), str(failed), str(warned), note]

    cases_ok = sum(1 for c in report.cases if c.ok)
    props = report.properties
    auto = report.auto
    total_rules = len(report.covered) + len(report.uncovered)
    rows = [
        ["", "passed", "failed", "warnings", ""],
        row("cases", cases_ok, len(report.cases) - cases_ok),
        row(
            "properties",
            sum(1 for p in props if p.ok),
            sum(1 for p in props if p.failed),
            sum(1 for p in props if not p.ok and not p.failed),
        ),
        row(
            "auto checks",
            sum(1 for a in auto if a.ok),
            sum(1 for a in auto if a.failed),
            sum(1 for a in auto if not a.ok and not a.failed),
        ),
        [
            "coverage",
            f"{len(report.covered)}/{total_rules} rules",
            "",
            "",
            "decided some case" if total_rules else "",
        ],
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    status = "FAILED" if report.failed else "OK"
    lines.append(f"{status} in {report.seconds:.1f}s")
    return "\n".join(lines)


def write_junit(report: Report, path: str | Path) -> None:
    suite = ET.Element("testsuite", name=f"policylang {report.path}")
    count = failures = skipped = 0

    def case(classname: str, name: str, seconds: float = 0.0) -> ET.Element:
        nonlocal count
        count += 1
        return ET.SubElement(
            suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}"
        )

    for e in report.errors:
        el = case("policylang.errors", "load")
        ET.SubElement(el, "error", message=e).text = e
        failures += 1
    for c in report.cases:
        el = case(f"cases.{Path(c.case.path).name}", c.case.name, c.seconds)
        if not c.ok:
            failures += 1
            ET.SubElement(el, "failure", message=(c.error or "wrong decision")).text = c.report()
    for p in [*report.properties, *report.auto]:
        el = case(f"{p.kind}", p.name)
        if p.failed:
            failures += 1
            ET.SubElement(el, "failure", message=p.message.splitlines()[0]).text = p.message + (
                "\n" + p.case_yaml if p.case_yaml else ""
            )
        elif not p.ok:
            skipped += 1
            ET.SubElement(el, "skipped", message=p.message)
    suite.set("tests", str(count))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{report.seconds:.3f}")
    ET.ElementTree(suite).write(str(path), encoding="utf-8", xml_declaration=True)


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", help="a folder of .policy files, a .policy file, or a .cases.yaml file"
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=DEFAULT_MAX_EXAMPLES,
        metavar="N",
        help=f"Hypothesis examples per search (default {DEFAULT_MAX_EXAMPLES})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="seed for the searches (runs are reproducible; default 0)",
    )
    parser.add_argument(
        "--junit-xml", default=None, metavar="FILE", help="also write a JUnit XML report"
    )
    parser.add_argument(
        "--no-auto",
        action="store_true",
        help="skip the automatic checks (rules fire, tools can be allowed, determinism)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="list passing cases and properties too"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--follow-links",
        action="store_true",
        help="read files that are symbolic links out of the policy folder (refused by default)",
    )


def run(args: argparse.Namespace) -> int:
    err: TextIO = sys.stderr
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            err.write(f"[{time.perf_counter() - t0:5.1f}s] {msg}\n")
            err.flush()

    report = run_path(
        args.path,
        max_examples=args.max_examples,
        seed=args.seed,
        auto=not args.no_auto,
        progress=progress,
        follow_links=args.follow_links,
    )
    render(report, sys.stdout, args.verbose)
    if args.junit_xml:
        write_junit(report, args.junit_xml)
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="policylang test",
        description="Run example cases, assertion properties and "
        "automatic checks against a policy.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = [
    "Report",
    "run_path",
    "run_cases",
    "render",
    "summary_table",
    "write_junit",
    "main",
    "run",
    "add_arguments",
]
