"""The buggy-policy suite: each buggy policy must fail `policylang test`, its twin must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from policylang.testing import run_path

BUGGY = Path(__file__).parent / "buggy"
PAIRS = sorted(p.name for p in BUGGY.iterdir() if p.is_dir())


def test_there_are_enough_pairs() -> None:
    assert len(PAIRS) >= 4


@pytest.mark.parametrize("name", PAIRS)
def test_buggy_policy_is_caught(name: str) -> None:
    report = run_path(BUGGY / name / "buggy")
    assert report.failed, f"{name}: the bug went unnoticed"


@pytest.mark.parametrize("name", PAIRS)
def test_correct_twin_passes(name: str) -> None:
    report = run_path(BUGGY / name / "correct")
    problems = (
        [c.report() for c in report.cases if not c.ok]
        + [p.message for p in report.properties + report.auto if p.failed]
        + report.errors
    )
    assert not report.failed, "\n".join(problems)


def test_off_by_one_counterexample_is_the_threshold() -> None:
    report = run_path(BUGGY / "off_by_one" / "buggy", auto=False)
    [prop] = [p for p in report.properties if p.failed]
    assert prop.request is not None and prop.request["args"]["amount"] == 10000
    assert "want:" in (prop.case_yaml or "") and "payments_staff" in prop.message


def test_holiday_zone_is_caught_by_the_property() -> None:
    report = run_path(BUGGY / "holiday_zone" / "buggy", auto=False)
    assert any(p.failed for p in report.properties)


def test_limit_key_is_caught_by_the_sequence_case() -> None:
    report = run_path(BUGGY / "limit_key" / "buggy", auto=False)
    [bad] = [c for c in report.cases if not c.ok]
    assert bad.case.is_sequence and "rate_limited" in bad.report()
