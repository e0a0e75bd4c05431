"""JSON Schema / OpenAI / MCP / pydantic → tool declarations: shapes, types, rules, what is not mapped."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from policylang import Engine
from policylang.cli import import_tools as cli
from policylang.schema import import_tools, specs_from_document, tools_from_models
from policylang.schema.jsonschema import SchemaImportError

PARAMS = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "minimum": 0, "description": "How much."},
        "currency": {"type": "string", "enum": ["USD", "EUR"]},
        "memo": {"type": ["string", "null"], "maxLength": 5},
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}


def load(text: str) -> Engine:
    return Engine.from_string("default allow\n" + text)


@pytest.mark.parametrize(
    "doc, origin",
    [
        ([{"type": "function", "function": {"name": "pay", "parameters": PARAMS}}], "openai"),
        (
            {"tools": [{"type": "function", "function": {"name": "pay", "parameters": PARAMS}}]},
            "openai",
        ),
        ([{"type": "function", "name": "pay", "parameters": PARAMS, "strict": True}], "openai"),
        ({"functions": [{"name": "pay", "parameters": PARAMS}]}, "openai"),
        ({"tools": [{"name": "pay", "inputSchema": PARAMS}]}, "mcp"),
        (
            {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {"tools": [{"name": "pay", "inputSchema": PARAMS}]},
            },
            "mcp",
        ),
        ([{"name": "pay", "input_schema": PARAMS}], "anthropic"),
        ({**PARAMS, "title": "pay"}, "jsonschema"),
        ({"pay": PARAMS}, "jsonschema"),
    ],
)
def test_document_shapes(doc: object, origin: str) -> None:
    specs = specs_from_document(doc)
    assert [(s.name, s.origin) for s in specs] == [("pay", origin)]
    engine = load(import_tools(doc).text)
    assert engine.decide("pay", args={"amount": 5, "currency": "USD"}).effect == "allow"


def test_format_option_and_errors() -> None:
    with pytest.raises(SchemaImportError, match="MCP"):
        specs_from_document([{"type": "function", "function": {"name": "x"}}], "mcp")
    with pytest.raises(SchemaImportError, match="title"):
        specs_from_document(PARAMS)
    assert specs_from_document(PARAMS, name="pay")[0].name == "pay"
    with pytest.raises(SchemaImportError, match="item 1"):
        specs_from_document([{"name": "a", "inputSchema": {}}, {"bogus": 1}])
    with pytest.raises(SchemaImportError):
        specs_from_document(42)


def test_types_and_rules_text() -> None:
    text = import_tools(
        [
            {
                "type": "function",
                "function": {"name": "pay", "description": "Pay.", "parameters": PARAMS},
            }
        ]
    ).text
    assert "# Pay." in text and "    # How much." in text
    assert "amount: number\n" in text
    assert 'currency: "USD" | "EUR"\n' in text
    assert "memo: string | null?\n" in text
    assert 'deny pay when args.amount < 0 because "amount must be at least 0"' in text
    assert (
        "deny pay when has(args.memo) && size(args.memo) > 5 because "
        '"memo must be at most 5 characters long"'
    ) in text


def test_every_mapping_loads_and_checks() -> None:
    params = {
        "type": "object",
        "required": ["first-name", "when", "owner", "items"],
        "properties": {
            "first-name": {"type": "string", "pattern": "^[A-Z]"},
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "n": {"type": "integer", "exclusiveMaximum": 10, "multipleOf": 2},
            "ok": {"type": "boolean", "default": True},
            "owner": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "email": {"type": "string", "minLength": 3},
                    "age": {"type": "integer", "minimum": 18},
                },
            },
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["sku"],
                    "properties": {
                        "sku": {"type": "string", "maxLength": 4},
                        "qty": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
                    },
                },
            },
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string", "maxLength": 3},
            },
            "level": {"enum": [1, 2, 3, None]},
            "pw": {"type": "string", "writeOnly": True},
            "ref": {"$ref": "#/$defs/Point"},
        },
        "$defs": {
            "Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
        },
    }
    result = import_tools({"t": params})
    assert result.warnings == []
    text = result.text
    assert '"first-name": string' in text and "when: timestamp" in text and "day: date?" in text
    assert "ok: bool = true" in text and "@secret pw: string?" in text
    assert "labels: map<string, string>?" in text and "level: 1 | 2 | 3 | null?" in text
    engine = load(text)
    good = {
        "first-name": "Ann",
        "when": "2024-05-15T10:00:00Z",
        "owner": {"email": "a@b"},
        "items": [{"sku": "ab", "qty": None}, {"sku": "c", "qty": 2}],
        "n": 4,
        "labels": {"a": "xy"},
        "level": None,
        "ref": {"x": 1.5},
    }
    assert engine.decide("t", args=good).effect == "allow"
    bad = {
        "first-name": ("ann", "first-name must match the pattern ^[A-Z]"),
        "n": (10, "n must be less than 10"),
        "owner": ({"email": "a@b", "age": 17}, "owner.age must be at least 18"),
        "items": ([{"sku": "abcde"}], "items[].sku must be at most 4 characters long"),
        "labels": ({"a": "long"}, "labels.* must be at most 3 characters long"),
    }
    for key, (value, reason) in bad.items():
        d = engine.decide("t", args={**good, key: value})
        assert d.code == "denied" and reason in d.reasons, (key, d.reasons)
    assert engine.decide("t", args={**good, "items": []}).reasons == [
        "items must have at least 1 items"
    ]
    assert engine.decide("t", args={**good, "n": 3}).reasons == ["n must be a multiple of 2"]
    d = engine.decide("t", args={**good, "items": [{"sku": "a", "qty": 0}]})
    assert d.reasons == ["items[].qty must be at least 1"]
    d = engine.decide("t", args={**good, "ref": {"x": "1"}})
    assert d.code == "invalid_request" and "'ref.x'" in d.reasons[0]


NOT_MAPPED = {
    "shape": (
        {
            "oneOf": [
                {"type": "object", "properties": {"r": {"type": "number"}}},
                {"type": "object", "properties": {"w": {"type": "number"}}},
            ]
        },
        "'oneOf' of different shapes",
    ),
    "tree": ({"$ref": "#/$defs/Node"}, "is recursive"),
    "remote": ({"$ref": "https://example.com/s.json"}, "points outside this document"),
    "headers": (
        {"type": "object", "patternProperties": {"^x-": {"type": "string"}}},
        "'patternProperties'",
    ),
    "open": (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
        "policylang objects are closed",
    ),
    "re": ({"type": "string", "pattern": "^(?!admin)"}, "not RE2 syntax"),
    "mail": ({"type": "string", "format": "email"}, "format 'email' is not checked"),
    "either": ({"type": ["string", "integer"]}, "a union of types"),
    "uniq": ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "'uniqueItems'"),
    "maybe": ({"type": "array", "items": {"type": ["string", "null"]}}, "null elements"),
    "flag": ({"enum": [True, False]}, "cannot be written as a policylang literal"),
    "neg": ({"type": "string", "not": {"const": "x"}}, "'not'"),
    "cond": (
        {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "if": {"required": ["a"]},
            "then": {},
        },
        "'if'/'then'/'else'",
    ),
}


def test_what_cannot_be_mapped_is_said_twice_never_dropped() -> None:
    params = {
        "type": "object",
        "properties": {k: v for k, (v, _) in NOT_MAPPED.items()},
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
    }
    result = import_tools([{"name": "odd", "inputSchema": params}])
    for key, (_, what) in NOT_MAPPED.items():
        assert any(
            w.startswith(f"odd: not mapped: {key}") and what in w for w in result.warnings
        ), (key, result.warnings)
        assert any(
            line.startswith(f"# not mapped: {key}") and what in line
            for line in result.text.splitlines()
        ), key
        assert f"    {key}: " in result.text  # the field is still declared
    engine = load(result.text)  # and the declarations load
    assert (
        engine.decide(
            "odd",
            args={"shape": {"r": 1}, "tree": {"children": [{}]}, "either": 3, "maybe": ["a", None]},
        ).effect
        == "allow"
    )


def test_unmappable_tools_are_reported() -> None:
    doc = {
        "tools": [
            {"name": "files/read", "inputSchema": {"type": "object"}},
            {"name": "free", "inputSchema": {"type": "object", "additionalProperties": True}},
            {"name": "arr", "inputSchema": {"type": "array"}},
            {"name": "ok", "inputSchema": {"type": "object", "properties": {}}},
            {"name": "ok", "inputSchema": {"type": "object"}},
        ]
    }
    result = import_tools(doc)
    assert result.tools == ["ok"] and result.skipped == ["files/read", "free", "arr", "ok"]
    assert "# not mapped: tool 'files/read': the name is not a policylang tool name" in result.text
    assert len(result.warnings) == 4
    assert load(result.text).tools == ["ok"]


def test_pydantic_models() -> None:
    class Address(BaseModel):
        city: str
        zip: str = Field(pattern=r"^\d{5}$")

    class SendPayment(BaseModel):
        """Send money."""

        __tool_name__ = "payments.send"
        amount: float = Field(gt=0, le=50_000)
        currency: Literal["USD", "EUR"]
        memo: str | None = None
        when: datetime | None = None
        day: date
        address: Address
        tags: list[str] = []

    class Refund(BaseModel):
        payment_id: str = Field(min_length=3)

    result = tools_from_models(SendPayment, ("payments.refund", Refund))
    assert result.tools == ["payments.send", "payments.refund"]
    assert result.warnings == [
        "payments.send: not mapped: tags: default [] is not carried over (only string, number "
        "and boolean defaults of the field's type are)"
    ]
    engine = load(result.text)
    args = {
        "amount": 10,
        "currency": "EUR",
        "day": "2024-05-15",
        "address": {"city": "X", "zip": "12345"},
        "memo": None,
    }
    assert engine.decide("payments.send", args=args).effect == "allow"
    assert engine.decide("payments.send", args={**args, "amount": 0}).reasons == [
        "amount must be greater than 0"
    ]
    d = engine.decide("payments.send", args={**args, "address": {"city": "X", "zip": "1"}})
    assert d.reasons == [r"address.zip must match the pattern ^\d{5}$"]
    assert engine.decide("payments.refund", args={"payment_id": "ab"}).code == "denied"
    with pytest.raises(TypeError):
        tools_from_models(int)


# ---------------------------------------------------------------- the command


def test_cli_prints_declarations_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "tools.json"
    f.write_text(
        json.dumps(
            {
                "tools": [
                    {
                        "name": "pay",
                        "inputSchema": {
                            **PARAMS,
                            "properties": {
                                **PARAMS["properties"],
                                "email": {"type": "string", "format": "email"},
                            },
                        },
                    }
                ]
            }
        )
    )
    assert cli.main([str(f)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# Generated by `policylang import-tools` from tools.json.")
    assert "tool pay {" in out and "# not mapped: email: format 'email'" in out
    assert (
        err == "warning: pay: not mapped: email: format 'email' is not checked (the value is "
        "a plain string)\n"
    )
    load(out)
    target = tmp_path / "out.policy"
    assert cli.main([str(f), "-o", str(target), "--format", "mcp"]) == 0
    assert target.read_text() == out
    assert cli.main([str(f), "--format", "openai"]) == 2
    assert "(expected OpenAI tool definitions" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{nope")
    assert cli.main([str(tmp_path / "bad.json")]) == 2
    assert cli.main([str(tmp_path / "missing.json")]) == 2
    y = tmp_path / "tools.yaml"
    y.write_text(
        "- name: pay\n  inputSchema:\n    type: object\n    properties:\n      n: {type: integer}\n"
    )
    capsys.readouterr()
    assert cli.main([str(y)]) == 0 and "n: int?" in capsys.readouterr().out
