"""`import-tools --check`: schemas vs. a policy — removed, retyped and new parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policylang.cli import import_tools as cli
from policylang.schema.drift import check_drift, load_policy
from policylang.schema.jsonschema import specs_from_document

POLICY = """
policy shop version "1"
tool payments.send { amount: number, currency: "USD" | "EUR", to: string, memo: string? }
tool email.send { to: list<string>, body: string }
def big(): args.amount > 1000
deny payments.send when args.to == "mallory" because "no"
confirm payments.* when big()
rule memo_len: deny payments.send when has(args.memo) && size(args.memo) > 20
limit payments.send to 5 per 1h by args.to
"""


def schema(**props: dict) -> list[dict]:
    return [
        {
            "type": "function",
            "function": {
                "name": "payments.send",
                "parameters": {
                    "type": "object",
                    "properties": props,
                    "required": [k for k in props if k != "memo"],
                },
            },
        }
    ]


SAME = {
    "amount": {"type": "number"},
    "currency": {"enum": ["EUR", "USD"]},
    "to": {"type": "string"},
    "memo": {"type": "string"},
}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    (tmp_path / "main.policy").write_text(POLICY)
    return tmp_path


def kinds(report) -> list[tuple[str, str | None]]:
    return [(i.kind, i.parameter) for i in report.items if i.drift]


def test_no_drift(rules: Path) -> None:
    report = check_drift(specs_from_document(schema(**SAME)), load_policy(rules))
    assert not report.drifted and kinds(report) == []
    assert "email.send" in report.render() and "no drift" in report.render()


def test_drift_kinds(rules: Path) -> None:
    props = {**SAME, "amount": {"type": "integer"}, "recipient": {"type": "string"}}
    del props["to"], props["memo"]
    props["currency"] = {"enum": ["EUR", "USD", "GBP"]}
    report = check_drift(specs_from_document(schema(**props)), load_policy(rules))
    assert report.drifted
    found = kinds(report)
    assert ("type_changed", "amount") in found and ("type_changed", "currency") in found
    assert ("new_parameter", "recipient") in found
    readers = [i.message for i in report.items if i.kind == "rule_reads_removed"]
    assert any("(" in m and "reads args.to" in m for m in readers)
    assert len([m for m in readers if "args.to" in m]) == 2  # the deny rule and the limit's `by`
    assert any(m.startswith("rule memo_len") and "args.memo" in m for m in readers)
    text = report.render()
    assert "the policy declares number, the schema now says int" in text


def test_removed_parameter_without_readers_and_new_tool(rules: Path) -> None:
    props = dict(SAME)
    doc = schema(**props)
    doc.append(
        {
            "type": "function",
            "function": {
                "name": "email.send",
                "parameters": {
                    "type": "object",
                    "properties": {"to": {"type": "array", "items": {"type": "string"}}},
                    "required": ["to"],
                },
            },
        }
    )
    doc.append({"type": "function", "function": {"name": "chat.post", "parameters": {}}})
    report = check_drift(specs_from_document(doc), load_policy(rules))
    assert kinds(report) == [("removed", "body"), ("new_tool", None)]


def test_predicates_count_as_readers(rules: Path) -> None:
    props = dict(SAME)
    del props["amount"]
    report = check_drift(specs_from_document(schema(**props)), load_policy(rules))
    assert any(i.kind == "rule_reads_removed" and "args.amount" in i.message for i in report.items)


def test_check_command_exit_codes(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same, changed = tmp_path / "same.json", tmp_path / "changed.json"
    same.write_text(json.dumps(schema(**SAME)))
    changed.write_text(json.dumps(schema(**{**SAME, "amount": {"type": "string"}})))
    assert cli.main(["--check", str(same), str(rules)]) == 0
    assert "no drift" in capsys.readouterr().out
    assert cli.main(["--check", str(changed), str(rules)]) == 1
    assert "drift: payments.send: parameter 'amount' changed type" in capsys.readouterr().out
    assert cli.main(["--check", str(same)]) == 2
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.policy").write_text("deny x when (")
    assert cli.main(["--check", str(same), str(tmp_path / "broken")]) == 2
    assert "PL001" in capsys.readouterr().err
