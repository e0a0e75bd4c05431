"""Import hundreds of generated, real-world-shaped tool schemas and check the engine agrees.

A seeded generator writes OpenAI / MCP tool definitions with nested objects,
arrays, enums, optional and nullable fields, formats, maps and constraints.
The declarations they import to are loaded with ``default allow``; then

* calls generated to satisfy the schema are allowed (never ``invalid_request``,
  never denied by a generated constraint rule);
* a wrong type, a missing required field or a value outside an enum is denied
  ``invalid_request`` with a reason naming the field;
* a value that breaks a range / length / pattern constraint is denied by a
  generated rule whose reason names the field.
"""

from __future__ import annotations

import copy
import random
import string
from typing import Any

import pytest

from policylang import Engine
from policylang.schema import import_tools

WORDS = [
    "amount",
    "currency",
    "to",
    "from",
    "memo",
    "title",
    "start",
    "end",
    "count",
    "tags",
    "owner",
    "email",
    "name",
    "id",
    "limit",
    "query",
    "path",
    "mode",
    "level",
    "items",
    "price",
    "sku",
    "priority",
    "notes",
    "in",
    "default",
    "first-name",
    "x.y",
    "due_date",
    "created_at",
    "meta",
    "labels",
    "enabled",
    "retries",
    "timeout_s",
    "region",
    "body",
]
PATTERNS = ["^[a-z]+$", "^[a-z0-9_-]*$"]
N_TOOLS = 300
PER_DOC = 30


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def schema(self, depth: int, field: bool = True) -> dict[str, Any]:
        r = self.r
        kinds = ["string", "integer", "number", "boolean", "enum", "datetime", "date"]
        if depth < 3:
            kinds += ["array", "object", "map"]
        kind = r.choice(kinds)
        s: dict[str, Any]
        if kind == "string":
            s = {"type": "string"}
            if r.random() < 0.3:
                s["minLength"] = r.randint(1, 3)
            if r.random() < 0.3:
                s["maxLength"] = r.randint(5, 12)
            if r.random() < 0.25:
                s["pattern"] = r.choice(PATTERNS)
        elif kind in ("integer", "number"):
            s = {"type": kind}
            if r.random() < 0.4:
                s["minimum"] = r.randint(-10, 10)
            if r.random() < 0.4:
                s["maximum"] = r.randint(20, 1000)
            if r.random() < 0.15 and "minimum" not in s:
                s["exclusiveMinimum"] = 0
        elif kind == "boolean":
            s = {"type": "boolean"}
        elif kind == "enum":
            values = r.sample(
                ["low", "normal", "high", "urgent", "a b", "x-y", "é"], r.randint(1, 4)
            )
            if r.random() < 0.2:
                values = r.sample([1, 2, 3, 5, 8], r.randint(1, 3))
            s = {"type": "string" if isinstance(values[0], str) else "integer", "enum": values}
        elif kind == "datetime":
            s = {"type": "string", "format": "date-time"}
        elif kind == "date":
            s = {"type": "string", "format": "date"}
        elif kind == "array":
            s = {"type": "array", "items": self.schema(depth + 1, field=False)}
            if r.random() < 0.3:
                s["maxItems"] = r.randint(2, 5)
            if r.random() < 0.2:
                s["minItems"] = 1
        elif kind == "map":
            s = {"type": "object", "additionalProperties": self.schema(depth + 2, field=False)}
        else:
            s = self.object(depth + 1)
        # nullable fields (policylang cannot declare nullable list elements or map values)
        if field and r.random() < 0.15 and kind not in ("object",):
            if r.random() < 0.5 and isinstance(s.get("type"), str):
                s["type"] = [s["type"], "null"]
            else:
                s = {"anyOf": [s, {"type": "null"}], "description": "may be null"}
        if r.random() < 0.3:
            s.setdefault("description", r.choice(["The value.", "What to use.\nSecond line."]))
        return s

    def object(self, depth: int) -> dict[str, Any]:
        r = self.r
        names = r.sample(WORDS, r.randint(1, 6))
        props = {n: self.schema(depth) for n in names}
        required = [n for n in names if r.random() < 0.5]
        return {
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": False,
        }

    def tool(self, i: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
        name = f"svc{i % 7}.{self.r.choice(['get', 'create', 'update', 'delete'])}_{i}"
        params = self.object(0)
        if self.r.random() < 0.5:
            return (
                name,
                params,
                {
                    "type": "function",
                    "function": {"name": name, "description": f"Tool {i}.", "parameters": params},
                },
            )
        return name, params, {"name": name, "description": f"Tool {i}.", "inputSchema": params}

    # ---- instances

    def value(self, s: dict[str, Any]) -> Any:
        r = self.r
        if "anyOf" in s:
            return None if r.random() < 0.3 else self.value(s["anyOf"][0])
        t = s.get("type")
        if isinstance(t, list):
            return None if r.random() < 0.3 else self.value({**s, "type": t[0]})
        if "enum" in s:
            return r.choice(s["enum"])
        if s.get("format") == "date-time":
            return r.choice(["2024-05-15T09:30:00Z", "2025-01-02T03:04:05+02:00"])
        if s.get("format") == "date":
            return "2024-05-15"
        if t == "string":
            lo, hi = max(s.get("minLength", 0), 1 if "pattern" in s else 0), s.get("maxLength", 10)
            return "".join(r.choice(string.ascii_lowercase) for _ in range(r.randint(lo, hi)))
        if t in ("integer", "number"):
            lo = s.get(
                "minimum", s.get("exclusiveMinimum", -5) + 1 if "exclusiveMinimum" in s else -50
            )
            hi = s.get("maximum", 5000)
            v = r.randint(lo, hi)
            return v + 0.5 if t == "number" and v < hi and r.random() < 0.5 else v
        if t == "boolean":
            return r.random() < 0.5
        if t == "array":
            lo, hi = s.get("minItems", 0), s.get("maxItems", 3)
            return [self.value(s["items"]) for _ in range(r.randint(lo, hi))]
        if t == "object" and "properties" in s:
            out = {}
            for n, sub in s["properties"].items():
                if n in s.get("required", []) or r.random() < 0.6:
                    out[n] = self.value(sub)
            return out
        if t == "object":
            return {f"k{j}": self.value(s["additionalProperties"]) for j in range(r.randint(0, 2))}
        raise AssertionError(s)


def _base(s: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in s:
        return s["anyOf"][0]
    if isinstance(s.get("type"), list):
        return {**s, "type": s["type"][0]}
    return s


def _nullable(s: dict[str, Any]) -> bool:
    return "anyOf" in s or isinstance(s.get("type"), list)


def wrong_value(s: dict[str, Any]) -> Any:
    """A value of the wrong type for schema ``s`` (never null, which may be allowed)."""
    b = _base(s)
    t = b.get("type")
    if "enum" in b or t in ("integer", "number"):
        return "not-a-number" if t in ("integer", "number") else 12345
    if b.get("format") in ("date-time", "date"):
        return "not a time"
    return {"string": 7, "boolean": "yes", "array": "not-a-list", "object": 5}[t]


def fields(params: dict[str, Any], prefix: str = "") -> list[tuple[str, list[str], dict, bool]]:
    """(shown path, key path, schema, required) for top-level fields and nested object fields."""
    out = []
    for n, s in params["properties"].items():
        path = f"{prefix}{n}"
        out.append((path, [n], s, n in params.get("required", [])))
        b = _base(s)
        if b.get("type") == "object" and "properties" in b and not _nullable(s):
            out.extend(
                (p, [n, *k], ss, req and n in params.get("required", []))
                for p, k, ss, req in fields(b, path + ".")
            )
    return out


def put(args: dict[str, Any], keys: list[str], value: Any) -> bool:
    cur = args
    for k in keys[:-1]:
        if not isinstance(cur.get(k), dict):
            return False
        cur = cur[k]
    cur[keys[-1]] = value
    return True


def generated() -> list[list[tuple[str, dict[str, Any], dict[str, Any]]]]:
    g = Gen(20240515)
    tools = [g.tool(i) for i in range(N_TOOLS)]
    return [tools[i : i + PER_DOC] for i in range(0, N_TOOLS, PER_DOC)]


@pytest.mark.parametrize("doc_index", range(N_TOOLS // PER_DOC))
def test_generated_tools_import_and_validate(doc_index: int) -> None:
    batch = generated()[doc_index]
    result = import_tools([d for _, _, d in batch])
    assert result.warnings == [], result.warnings  # everything generated here is mappable
    engine = Engine.from_string("default allow\n" + result.text)
    assert sorted(engine.tools) == sorted(name for name, _, _ in batch)
    g = Gen(doc_index)
    for name, params, _ in batch:
        for _ in range(5):
            args = g.value(params)
            d = engine.decide(name, args=args)
            assert d.effect == "allow", (name, args, d.reasons, result.text)
        base = g.value(params)
        for path, keys, s, required in fields(params):
            args = copy.deepcopy(base)
            if put(args, keys, wrong_value(s)):
                d = engine.decide(name, args=args)
                assert d.code == "invalid_request", (name, path, args, d.reasons)
                assert f"'{path}" in d.reasons[0], (path, d.reasons)
            b = _base(s)
            if "enum" in b:
                args = copy.deepcopy(base)
                bad = "zz-not-a-member" if isinstance(b["enum"][0], str) else 999
                if put(args, keys, bad):
                    d = engine.decide(name, args=args)
                    assert d.code == "invalid_request" and f"'{path}'" in d.reasons[0]
            if required and len(keys) == 1:
                args = copy.deepcopy(base)
                del args[keys[0]]
                d = engine.decide(name, args=args)
                assert d.code == "invalid_request"
                assert d.reasons[0] == f"missing required argument '{path}'"
            if len(keys) == 1 and not _nullable(s):
                bad_value, why = _breaks_constraint(b)
                if why:
                    args = copy.deepcopy(base)
                    args[keys[0]] = bad_value
                    d = engine.decide(name, args=args)
                    assert d.effect == "deny" and d.code == "denied", (path, bad_value, d.reasons)
                    assert any(r.startswith(f"{path} {why}") for r in d.reasons), d.reasons


def _breaks_constraint(s: dict[str, Any]) -> tuple[Any, str | None]:
    if "minimum" in s:
        return s["minimum"] - 1, "must be at least"
    if "maximum" in s:
        return s["maximum"] + (1 if s["type"] == "integer" else 0.5), "must be at most"
    if "exclusiveMinimum" in s:
        return s["exclusiveMinimum"], "must be greater than"
    if "maxLength" in s and "pattern" not in s:
        return "a" * (s["maxLength"] + 1), "must be at most"
    if "pattern" in s:
        return "UPPER CASE!", "must match the pattern"
    if "maxItems" in s:
        return [Gen(1).value(s["items"]) for _ in range(s["maxItems"] + 1)], "must have at most"
    return None, None
