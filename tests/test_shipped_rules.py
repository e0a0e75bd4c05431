"""The shipped rules/ decide what their README says, and their own cases and assertions pass."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from policylang import Engine
from policylang.testing import run_path

RULES = Path(__file__).resolve().parent.parent / "rules"
ROW = re.compile(
    r"^\| `(?P<file>[\w.]+\.json)` \| `(?P<tool>[\w.]+)` \| \*\*(?P<effect>\w+)\*\* \| .*\(`(?P<rule>\w+)`\) \|$",
    re.MULTILINE,
)
EXPECTED = [
    m.groupdict() for m in ROW.finditer((RULES / "requests" / "README.md").read_text("utf-8"))
]


def test_every_example_request_is_listed():
    listed = {row["file"] for row in EXPECTED}
    on_disk = {p.name for p in (RULES / "requests").glob("*.json")}
    assert listed == on_disk


@pytest.mark.parametrize("row", EXPECTED, ids=[row["file"] for row in EXPECTED])
def test_example_request_gets_the_documented_decision(row):
    engine = Engine.from_path(RULES)
    req = json.loads((RULES / "requests" / row["file"]).read_text("utf-8"))
    decision = engine.decide(
        req["tool"],
        args=req.get("args"),
        principal=req.get("principal"),
        context=req.get("context"),
    )
    assert req["tool"] == row["tool"]
    assert decision.effect == row["effect"], decision.message
    assert row["rule"] in decision.rule_names, decision.rule_names


def test_the_shipped_cases_and_assertions_pass():
    report = run_path(RULES, max_examples=60, seed=1, auto=False)
    assert report.exit_code == 0, report
