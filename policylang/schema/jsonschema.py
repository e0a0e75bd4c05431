"""JSON Schema tool definitions → policylang ``tool`` declarations and ``deny`` rules.

Takes a document describing tools (see :func:`specs_from_document` for the
shapes understood: plain JSON Schema, OpenAI chat / responses / legacy function
definitions, an MCP ``tools/list`` result, Anthropic ``input_schema`` tools) or
pydantic models, and gives policy text:

* types: ``string``, ``integer`` → ``int``, ``number``, ``boolean`` → ``bool``,
  ``array`` → ``list<T>``, ``object`` → an inline ``{...}`` (with
  ``properties``) or ``map<string, T>`` (``additionalProperties`` only);
  ``format: date-time`` → ``timestamp``, ``date`` → ``date``; ``enum`` /
  ``const`` → ``"a" | "b"``; ``type: [T, "null"]``, ``anyOf``/``oneOf`` with a
  null branch and ``nullable: true`` → ``| null``; fields not in ``required``
  → ``?``; local ``$ref`` and ``allOf`` are resolved; ``writeOnly`` and
  ``format: password`` → ``@secret``.
* constraints the type system cannot state become ``deny`` rules:
  ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
  ``multipleOf`` (integers), ``minLength``, ``maxLength``, ``pattern`` (RE2),
  ``minItems``, ``maxItems`` — guarded with ``has()`` for optional fields and
  with ``exists`` for array elements.
* everything else is reported, never dropped silently: a ``# not mapped: ...``
  comment in the output and an entry in :attr:`ImportResult.warnings`. That
  covers unions of different types (``oneOf`` of objects), recursive ``$ref``,
  remote ``$ref``, ``patternProperties``, ``additionalProperties`` next to
  ``properties`` (policylang objects are closed), ``not``, ``if``/``then``,
  ``dependentRequired``, ``uniqueItems``, ``contains``, tuple ``items``,
  unchecked ``format`` values (``email``, ``uri``, ...), patterns that are not
  RE2 syntax, and tool names that are not policylang tool names.

An object schema without ``additionalProperties`` is read as closed (the JSON
Schema default is open, but tool callers send the declared keys only and a
policy rejects the rest).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policylang.language.formatter import quote_string as _quote

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*")
# Keywords are contextual (`to`, `in`, `default` are fine field names); the literal words
# are quoted anyway so that `args.null` never reads as something it is not.
_RESERVED = frozenset({"true", "false", "null"})
_INT64 = 2**63
_ANNOTATIONS = frozenset(
    [
        "title",
        "description",
        "default",
        "examples",
        "example",
        "$comment",
        "$schema",
        "$id",
        "id",
        "readOnly",
        "deprecated",
        "format",
        "nullable",
        "discriminator",
        "xml",
        "externalDocs",
        "contentMediaType",
        "contentEncoding",
        "$anchor",
        "$defs",
        "definitions",
    ]
)
_UNMAPPED_KEYWORDS = {
    "not": "'not' (a negated schema)",
    "if": "'if'/'then'/'else'",
    "dependentRequired": "'dependentRequired'",
    "dependentSchemas": "'dependentSchemas'",
    "dependencies": "'dependencies'",
    "propertyNames": "'propertyNames'",
    "patternProperties": "'patternProperties' (property names matched by a pattern)",
    "unevaluatedProperties": "'unevaluatedProperties'",
    "unevaluatedItems": "'unevaluatedItems'",
    "minProperties": "'minProperties'",
    "maxProperties": "'maxProperties'",
    "uniqueItems": "'uniqueItems'",
    "contains": "'contains'",
    "prefixItems": "'prefixItems' (tuple items)",
    "additionalItems": "'additionalItems'",
}
_CHECKED_FORMATS = {"date-time": "timestamp", "date": "date"}
_SILENT_FORMATS = frozenset({"password", "int32", "int64", "float", "double", "byte", "binary", ""})


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class ToolSpec:
    """One tool as read from a document: a name, its parameters schema, a description."""

    name: str
    parameters: Any
    description: str | None = None
    origin: str = "jsonschema"


@dataclass
class ImportResult:
    """Policy text for the tools, and what could not be mapped (also in the text)."""

    text: str
    warnings: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class SchemaImportError(ValueError):
    """The document is not one of the understood shapes (or not JSON/YAML at all)."""


# ---------------------------------------------------------------- reading documents


def load_document(source: str | Path) -> Any:
    """Read a JSON or YAML file (or ``-`` for standard input) into Python values."""
    import sys

    if str(source) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaImportError(f"cannot read {source}: {exc}") from None
    return parse_document(text, str(source))


def parse_document(text: str, where: str = "<input>") -> Any:
    """JSON, or else YAML read with :mod:`policylang.yamlsafe` (bounded, YAML 1.2 core)."""
    from policylang.yamlsafe import StructuredTextError, load_json, load_yaml

    try:
        return load_json(text)
    except StructuredTextError as json_error:
        try:
            value = load_yaml(text)
        except StructuredTextError:  # report the JSON error, which is the usual format
            raise SchemaImportError(f"{where}: not valid JSON ({json_error}) nor YAML") from None
        if not isinstance(value, dict | list):
            raise SchemaImportError(f"{where}: not valid JSON ({json_error})") from None
        return value


def _is_schema(v: Any) -> bool:
    return isinstance(v, dict) and any(
        k in v for k in ("type", "properties", "$ref", "anyOf", "oneOf", "allOf", "enum")
    )


def _spec_from_item(item: Any, fmt: str) -> ToolSpec | None:
    """One tool definition in any of the known shapes, or None."""
    if not isinstance(item, dict):
        return None
    if fmt in ("auto", "openai") and item.get("type") == "function":
        fn = item.get("function")
        if isinstance(fn, dict) and "name" in fn:  # chat completions
            return ToolSpec(
                str(fn["name"]), fn.get("parameters", {}), fn.get("description"), "openai"
            )
        if "name" in item:  # responses API
            return ToolSpec(
                str(item["name"]), item.get("parameters", {}), item.get("description"), "openai"
            )
    if "name" not in item:
        return None
    if fmt in ("auto", "mcp") and ("inputSchema" in item or fmt == "mcp"):
        return ToolSpec(
            str(item["name"]), item.get("inputSchema", {}), item.get("description"), "mcp"
        )
    if fmt in ("auto", "openai") and "parameters" in item:  # legacy `functions`
        return ToolSpec(str(item["name"]), item["parameters"], item.get("description"), "openai")
    if fmt == "auto" and "input_schema" in item:  # Anthropic tool use
        return ToolSpec(
            str(item["name"]), item["input_schema"], item.get("description"), "anthropic"
        )
    return None


def specs_from_document(doc: Any, fmt: str = "auto", name: str | None = None) -> list[ToolSpec]:
    """The tools described by a document.

    Understood shapes: a list of tool definitions; ``{"tools": [...]}`` (an MCP
    ``tools/list`` result, also inside a JSON-RPC ``{"result": ...}``, or an
    OpenAI request body); ``{"functions": [...]}``; one tool definition; a
    JSON Schema with a ``title`` (or ``name``) naming the tool; a map of tool
    name → JSON Schema.
    """
    if fmt not in ("auto", "jsonschema", "openai", "mcp"):
        raise SchemaImportError(f"unknown format '{fmt}': use auto, jsonschema, openai or mcp")
    if isinstance(doc, dict) and isinstance(doc.get("result"), dict) and "tools" in doc["result"]:
        doc = doc["result"]
    if fmt != "jsonschema":
        items: Any = None
        if isinstance(doc, list):
            items = doc
        elif isinstance(doc, dict) and isinstance(doc.get("tools"), list):
            items = doc["tools"]
        elif isinstance(doc, dict) and isinstance(doc.get("functions"), list):
            items = doc["functions"]
        elif isinstance(doc, dict):
            one = _spec_from_item(doc, fmt)
            if one is not None:
                return [one]
        if items is not None:
            specs = []
            for i, item in enumerate(items):
                spec = _spec_from_item(item, fmt)
                if spec is None:
                    raise SchemaImportError(
                        f"item {i} is not a tool definition this importer understands "
                        f"(expected {_expected(fmt)})"
                    )
                specs.append(spec)
            return specs
        if fmt in ("openai", "mcp"):
            raise SchemaImportError(f"the document is not {_expected(fmt)}")
    if isinstance(doc, dict) and _is_schema(doc):
        tool = name or doc.get("title") or doc.get("name")
        if not isinstance(tool, str) or not tool:
            raise SchemaImportError(
                "a bare JSON Schema needs a 'title' naming the tool (or pass a name: --name TOOL)"
            )
        return [ToolSpec(tool, doc, doc.get("description"), "jsonschema")]
    if isinstance(doc, dict) and doc and all(_is_schema(v) for v in doc.values()):
        return [ToolSpec(str(k), v, v.get("description"), "jsonschema") for k, v in doc.items()]
    raise SchemaImportError(
        "the document is not a JSON Schema, OpenAI tool definitions or an MCP tools/list result"
    )


def _expected(fmt: str) -> str:
    return {
        "openai": 'OpenAI tool definitions ({"type": "function", ...})',
        "mcp": 'an MCP tools/list result ({"tools": [{"name", "inputSchema"}]})',
    }.get(fmt, "an OpenAI, MCP or Anthropic tool definition")


# ---------------------------------------------------------------- mapping one tool


@dataclass(frozen=True)
class _Access:
    """Where a value sits, as a CEL expression, and how to reach it safely."""

    expr: str
    path: str  # for messages: amount, owner.email, items[].price
    wrap: Callable[[str], str]  # inner condition -> full condition (guards, exists)
    depth: int = 0


@dataclass
class _Mapped:
    text: str  # the type as written, without `| null` / `?`
    kind: str  # string int number bool list map object enum timestamp date dyn
    nullable: bool = False
    secret: bool = False


def _name(n: str) -> str:
    return n if _IDENT.fullmatch(n) and n not in _RESERVED else _quote(n)


def _member(parent: str, n: str) -> str:
    return (
        f"{parent}.{n}" if _IDENT.fullmatch(n) and n not in _RESERVED else f"{parent}[{_quote(n)}]"
    )


def _present(parent: str, n: str) -> str:
    if _IDENT.fullmatch(n) and n not in _RESERVED:
        return f"has({parent}.{n})"
    return f"{_quote(n)} in {parent} && {parent}[{_quote(n)}] != null"


def _num(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if isinstance(v, int):
        return str(v) if -_INT64 <= v < _INT64 else None
    if not math.isfinite(v):
        return None
    return repr(float(v))


def _shown(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return str(v)


def _message(text: str) -> str:
    return _quote(text.replace("{", "{{").replace("}", "}}"))


class _ToolMapper:
    def __init__(self, tool: str, root: Any):
        self.tool = tool
        self.root = root
        self.notes: list[str] = []
        self.pending: list[tuple[_Access, str, str]] = []
        self.refs: list[str] = []

    def note(self, path: str, what: str) -> None:
        self.notes.append(f"{path or '(parameters)'}: {what}")

    # ---- schema plumbing

    def resolve(self, schema: Any, path: str) -> Any:
        """Follow a local $ref (merging sibling keywords); None when it cannot be followed."""
        if not isinstance(schema, dict) or "$ref" not in schema:
            return schema
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            self.note(path, f"$ref {ref!r} points outside this document; any value is accepted")
            return None
        if ref in self.refs:
            self.note(path, f"$ref {ref!r} is recursive; the nested value is accepted as any value")
            return None
        target: Any = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                self.note(path, f"$ref {ref!r} does not resolve; any value is accepted")
                return None
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if not isinstance(target, dict):
            return siblings or target
        return {**target, **siblings, "__ref__": ref}

    def merge_all_of(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for branch in schema.get("allOf") or []:
            branch = self.resolve(branch, path)
            if not isinstance(branch, dict):
                self.note(path, "an 'allOf' branch could not be read; it is not checked")
                continue
            if "allOf" in branch:
                branch = self.merge_all_of(branch, path)
            for k, v in branch.items():
                if k == "properties" and isinstance(v, dict):
                    merged["properties"] = {**merged.get("properties", {}), **v}
                elif k == "required" and isinstance(v, list):
                    merged["required"] = [*merged.get("required", []), *v]
                elif k in merged and merged[k] != v and k not in _ANNOTATIONS and k != "__ref__":
                    self.note(path, f"'allOf' branches disagree on {k!r}; the first one is used")
                else:
                    merged.setdefault(k, v)
        return merged

    # ---- types

    def map_type(self, schema: Any, acc: _Access) -> _Mapped:
        path = acc.path
        if schema is True or schema == {}:
            return _Mapped("dyn", "dyn")
        if schema is False:
            self.note(path, "the schema 'false' admits no value; any value is accepted")
            return _Mapped("dyn", "dyn")
        if not isinstance(schema, dict):
            self.note(path, f"not a schema ({type(schema).__name__}); any value is accepted")
            return _Mapped("dyn", "dyn")
        ref = schema.get("$ref")
        pushed = False
        if ref is not None:
            resolved = self.resolve(schema, path)
            if resolved is None:
                return _Mapped("dyn", "dyn")
            schema = resolved
            self.refs.append(ref)
            pushed = True
        try:
            return self._map_type(schema, acc)
        finally:
            if pushed:
                self.refs.pop()

    def _map_type(self, schema: dict[str, Any], acc: _Access) -> _Mapped:
        path = acc.path
        if "allOf" in schema:
            schema = self.merge_all_of(schema, path)
            if "$ref" in schema:
                return self.map_type(schema, acc)
        for key, what in _UNMAPPED_KEYWORDS.items():
            if key in schema and not (key == "patternProperties" and not schema[key]):
                self.note(path, f"{what} is not checked")
        nullable = schema.get("nullable") is True or (
            isinstance(schema.get("type"), list) and "null" in schema["type"]
        )
        secret = schema.get("writeOnly") is True or schema.get("format") == "password"
        alternatives = schema.get("anyOf") if "anyOf" in schema else schema.get("oneOf")
        if isinstance(alternatives, list):
            return self._union(schema, alternatives, acc, nullable, secret)
        if "const" in schema:
            return self._enum(schema, [schema["const"]], acc, nullable, secret)
        if "enum" in schema:
            values = schema["enum"]
            if isinstance(values, list) and values:
                return self._enum(schema, values, acc, nullable, secret)
            self.note(path, "an empty or malformed 'enum'; any value is accepted")
            return _Mapped("dyn", "dyn", nullable, secret)
        typ = schema.get("type")
        if isinstance(typ, list):
            kinds = [t for t in typ if t != "null"]
            nullable = nullable or len(kinds) < len(typ)
            if len(kinds) == 1:
                typ = kinds[0]
            elif kinds and set(kinds) <= {"integer", "number"}:
                typ = "number"
            elif not kinds:
                self.note(path, "a value that can only be null; any value is accepted")
                return _Mapped("dyn", "dyn", True, secret)
            else:
                self.note(
                    path,
                    f"a union of types {kinds} (policylang has one type plus null); "
                    "any value is accepted",
                )
                return _Mapped("dyn", "dyn", nullable, secret)
        if typ is None:
            if "properties" in schema or "additionalProperties" in schema:
                typ = "object"
            elif "items" in schema:
                typ = "array"
            else:
                return _Mapped("dyn", "dyn", nullable, secret)
        m = self._by_type(typ, schema, acc)
        m.nullable = m.nullable or nullable
        m.secret = m.secret or secret
        return m

    def _by_type(self, typ: Any, schema: dict[str, Any], acc: _Access) -> _Mapped:
        path = acc.path
        if typ == "string":
            fmt = schema.get("format")
            if fmt in _CHECKED_FORMATS:
                kind = _CHECKED_FORMATS[fmt]
                for k in ("minLength", "maxLength", "pattern"):
                    if k in schema:
                        self.note(path, f"{k!r} on a {fmt} value is not checked")
                return _Mapped(kind, kind)
            if isinstance(fmt, str) and fmt not in _SILENT_FORMATS:
                self.note(path, f"format {fmt!r} is not checked (the value is a plain string)")
            self._string_rules(schema, acc)
            return _Mapped("string", "string")
        if typ in ("integer", "number"):
            self._number_rules(schema, acc, typ == "integer")
            return _Mapped(
                "int" if typ == "integer" else "number", "int" if typ == "integer" else "number"
            )
        if typ == "boolean":
            return _Mapped("bool", "bool")
        if typ == "null":
            self.note(path, "a value that can only be null; any value is accepted")
            return _Mapped("dyn", "dyn", True)
        if typ == "array":
            return self._array(schema, acc)
        if typ == "object":
            return self._object(schema, acc)
        self.note(path, f"unknown type {typ!r}; any value is accepted")
        return _Mapped("dyn", "dyn")

    def _union(
        self,
        schema: dict[str, Any],
        alternatives: list[Any],
        acc: _Access,
        nullable: bool,
        secret: bool,
    ) -> _Mapped:
        path = acc.path
        which = "anyOf" if "anyOf" in schema else "oneOf"
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        branches = []
        for alt in alternatives:
            r = self.resolve(alt, path) if isinstance(alt, dict) and "$ref" in alt else alt
            if isinstance(r, dict) and (
                r.get("type") == "null" or r.get("const", 0) is None or r.get("enum") == [None]
            ):
                nullable = True
                continue
            branches.append(alt)
        if not branches:
            self.note(path, f"'{which}' allows only null; any value is accepted")
            return _Mapped("dyn", "dyn", True, secret)
        if len(branches) == 1:
            branch = branches[0]
            merged = {**rest, **branch} if isinstance(branch, dict) else branch
            m = self.map_type(merged, acc)
            m.nullable = m.nullable or nullable
            m.secret = m.secret or secret
            return m
        resolved = [self.resolve(b, path) if isinstance(b, dict) else b for b in branches]
        if all(
            isinstance(b, dict)
            and ("const" in b or "enum" in b)
            and "type" not in b
            or isinstance(b, dict)
            and ("const" in b or "enum" in b)
            and b.get("type") in ("string", "integer", "number")
            for b in resolved
        ):
            values: list[Any] = []
            for b in resolved:
                values.extend([b["const"]] if "const" in b else list(b["enum"]))
            return self._enum(rest, values, acc, nullable, secret)
        types = {b.get("type") for b in resolved if isinstance(b, dict)}
        simple = all(isinstance(b, dict) and set(b) - _ANNOTATIONS <= {"type"} for b in resolved)
        if len(types) == 1 and None not in types and simple:
            m = self.map_type({**rest, "type": types.pop()}, acc)
        elif types <= {"integer", "number"} and simple and len(resolved) == len(branches):
            m = self.map_type({**rest, "type": "number"}, acc)
        else:
            shown = ", ".join(_describe(b) for b in resolved)
            self.note(
                path,
                f"'{which}' of different shapes ({shown}) cannot be declared "
                "(policylang has one type plus null); any value is accepted",
            )
            return _Mapped("dyn", "dyn", nullable, secret)
        m.nullable = m.nullable or nullable
        m.secret = m.secret or secret
        return m

    def _enum(
        self, schema: dict[str, Any], values: list[Any], acc: _Access, nullable: bool, secret: bool
    ) -> _Mapped:
        path = acc.path
        members = []
        for v in values:
            if v is None:
                nullable = True
            elif isinstance(v, str):
                members.append(_quote(v))
            elif isinstance(v, bool) or not isinstance(v, int | float) or _num(v) is None:
                self.note(
                    path,
                    f"enum value {json.dumps(v)} cannot be written as a policylang "
                    "literal (only strings and numbers); any value is accepted",
                )
                return _Mapped("dyn", "dyn", nullable, secret)
            else:
                members.append(_num(v) or "")
        if not members:
            self.note(path, "an enum of only null; any value is accepted")
            return _Mapped("dyn", "dyn", True, secret)
        unique = list(dict.fromkeys(members))
        return _Mapped(" | ".join(unique), "enum", nullable, secret)

    def _array(self, schema: dict[str, Any], acc: _Access) -> _Mapped:
        path = acc.path
        items = schema.get("items")
        size_rules = [
            ("minItems", "<", "must have at least {n} items"),
            ("maxItems", ">", "must have at most {n} items"),
        ]
        for key, op, text in size_rules:
            n = schema.get(key)
            if isinstance(n, int) and not isinstance(n, bool):
                self.rule(acc, f"size({acc.expr}) {op} {n}", f"{acc.path} " + text.format(n=n))
        if items is None:
            return _Mapped("list<dyn>", "list")
        if isinstance(items, list):
            self.note(
                path,
                "tuple 'items' (a list of schemas) is not checked; the elements may be any value",
            )
            return _Mapped("list<dyn>", "list")
        var = f"x{acc.depth}"
        outer = acc

        def wrap(cond: str, outer: _Access = outer, var: str = var) -> str:
            return outer.wrap(f"{outer.expr}.exists({var}, {cond})")

        elem = self.map_type(items, self._element(acc, var, wrap, f"{acc.path}[]"))
        return _Mapped(f"list<{self._inner(elem, acc.path + '[]')}>", "list")

    def _inner(self, m: _Mapped, path: str) -> str:
        """A list element or map value type: these cannot be nullable in policylang."""
        if m.nullable and m.kind != "dyn":
            self.note(
                path,
                f"null elements: a list element or map value cannot be null in "
                f"policylang, so it is declared dyn instead of {m.text} | null",
            )
            return "dyn"
        return m.text

    def _element(self, acc: _Access, var: str, wrap: Callable[[str], str], path: str) -> _Access:
        """Element conditions; they skip null elements (harmless when none can be null)."""

        def guarded(cond: str) -> str:
            return wrap(f"{var} != null && {cond}")

        return _Access(var, path, guarded, acc.depth + 1)

    def _object(self, schema: dict[str, Any], acc: _Access) -> _Mapped:
        path = acc.path
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if not isinstance(props, dict) or not props:
            if extra is False:
                return _Mapped("{}", "object")
            if isinstance(extra, dict) and extra:
                key = f"k{acc.depth}"

                def wrap(cond: str, acc: _Access = acc, key: str = key) -> str:
                    return acc.wrap(f"{acc.expr}.exists({key}, {cond})")

                item = f"{acc.expr}[{key}]"

                def value_wrap(
                    cond: str, wrap: Callable[[str], str] = wrap, item: str = item
                ) -> str:
                    return wrap(f"{item} != null && {cond}")

                value_acc = _Access(item, f"{path}.*", value_wrap, acc.depth + 1)
                value = self.map_type(extra, value_acc)
                return _Mapped(f"map<string, {self._inner(value, path + '.*')}>", "map")
            return _Mapped("map<string, dyn>", "map")
        if extra not in (None, False):
            self.note(
                path,
                "'additionalProperties' next to 'properties': policylang objects are "
                "closed, so keys other than the declared ones are rejected",
            )
        required = schema.get("required") or []
        if not isinstance(required, list):
            required = []
        for r in required:
            if r not in props:
                self.note(path, f"required property {r!r} has no schema; it is not declared")
        lines = self.fields(props, set(required), acc)
        return _Mapped("{\n" + "\n".join(lines) + "\n}", "object")

    def fields(self, props: dict[str, Any], required: set[str], acc: _Access) -> list[str]:
        lines: list[str] = []
        for fname, sub in props.items():
            if not isinstance(fname, str):
                continue
            fpath = f"{acc.path}.{fname}" if acc.path else fname
            opt = fname not in required
            sub_r = self.resolve(sub, fpath) if isinstance(sub, dict) and "$ref" in sub else sub
            if sub is False:
                self.note(
                    fpath,
                    "the schema 'false' forbids this property; it is not declared "
                    "(so it is rejected)",
                )
                continue
            cell = {"guard": opt or _nullable_hint(sub_r)}
            guard = _present(acc.expr, fname)

            def wrap(
                cond: str, acc: _Access = acc, guard: str = guard, cell: dict[str, bool] = cell
            ) -> str:
                return acc.wrap(f"{guard} && {cond}" if cell["guard"] else cond)

            facc = _Access(_member(acc.expr, fname), fpath, wrap, acc.depth)
            m = self.map_type(sub, facc)
            cell["guard"] = cell["guard"] or m.nullable  # rules are rendered after mapping
            desc = sub_r.get("description") if isinstance(sub_r, dict) else None
            if isinstance(desc, str) and desc.strip():
                lines.append(f"# {_one_line(desc)}")
            type_text = _with_null(m)
            default = ""
            if opt and isinstance(sub_r, dict) and "default" in sub_r:
                default = self._default(sub_r["default"], m, fpath)
            mark = "?" if opt and not default else ""
            secret = "@secret " if m.secret else ""
            lines.append(f"{secret}{_name(fname)}: {type_text}{mark}{default}")
        return _indent(lines)

    def _default(self, value: Any, m: _Mapped, path: str) -> str:
        ok = (
            m.kind == "string"
            and isinstance(value, str)
            or m.kind == "bool"
            and isinstance(value, bool)
            or m.kind == "int"
            and isinstance(value, int)
            and not isinstance(value, bool)
            and _num(value) is not None
            or m.kind == "number"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and _num(value) is not None
            or m.kind == "enum"
            and isinstance(value, str | int | float)
            and not isinstance(value, bool)
            and (_quote(value) if isinstance(value, str) else _num(value)) in m.text.split(" | ")
        )
        if ok:
            return " = " + (
                _quote(value)
                if isinstance(value, str)
                else ("true" if value is True else "false")
                if isinstance(value, bool)
                else (_num(value) or "")
            )
        if value is not None:
            self.note(
                path,
                f"default {json.dumps(value, default=str)[:60]} is not carried over "
                "(only string, number and boolean defaults of the field's type are)",
            )
        return ""

    # ---- constraints → deny rules

    def rule(self, acc: _Access, cond: str, reason: str) -> None:
        self.pending.append((acc, cond, reason))

    def rendered_rules(self) -> list[str]:
        """Rules are rendered last: guards depend on what mapping found (nullability)."""
        return [
            f"deny {self.tool} when {acc.wrap(cond)} because {_message(reason)}"
            for acc, cond, reason in self.pending
        ]

    def _number_rules(self, schema: dict[str, Any], acc: _Access, integer: bool) -> None:
        x, p = acc.expr, acc.path
        bounds = [
            ("minimum", "<", "must be at least"),
            ("maximum", ">", "must be at most"),
            ("exclusiveMinimum", "<=", "must be greater than"),
            ("exclusiveMaximum", ">=", "must be less than"),
        ]
        for key, op, text in bounds:
            v = schema.get(key)
            if isinstance(v, bool):  # draft 4: exclusiveMinimum: true modifies minimum
                continue
            if v is None:
                continue
            lit = _num(v)
            if lit is None:
                self.note(p, f"{key} {v!r} cannot be written as a policylang number; not checked")
                continue
            if (
                key in ("minimum", "maximum")
                and schema.get("exclusiveMinimum" if key == "minimum" else "exclusiveMaximum")
                is True
            ):
                op = op + "="
                text = "must be greater than" if key == "minimum" else "must be less than"
            self.rule(acc, f"{x} {op} {lit}", f"{p} {text} {_shown(v)}")
        mult = schema.get("multipleOf")
        if mult is not None:
            if (
                integer
                and isinstance(mult, int)
                and not isinstance(mult, bool)
                and 0 < mult < _INT64
            ):
                if mult != 1:
                    self.rule(acc, f"{x} % {mult} != 0", f"{p} must be a multiple of {mult}")
            else:
                self.note(
                    p, f"multipleOf {mult!r} is not checked (only whole divisors of integers)"
                )

    def _string_rules(self, schema: dict[str, Any], acc: _Access) -> None:
        x, p = acc.expr, acc.path
        for key, op, text in (
            ("minLength", "<", "must be at least {n} characters long"),
            ("maxLength", ">", "must be at most {n} characters long"),
        ):
            n = schema.get(key)
            if isinstance(n, int) and not isinstance(n, bool) and 0 <= n < _INT64:
                if key == "minLength" and n == 0:
                    continue
                self.rule(acc, f"size({x}) {op} {n}", f"{p} {text.format(n=n)}")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            from policylang.errors import EvalError
            from policylang.runtime.celops import compile_regex

            try:
                compile_regex(pattern)
            except EvalError as exc:
                self.note(p, f"pattern is not RE2 syntax and is not checked ({exc.message})")
                return
            self.rule(
                acc, f"!{x}.matches({_quote(pattern)})", f"{p} must match the pattern {pattern}"
            )


def _nullable_hint(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    t = schema.get("type")
    if schema.get("nullable") is True or isinstance(t, list) and "null" in t:
        return True
    alts = schema.get("anyOf") or schema.get("oneOf") or []
    if any(isinstance(a, dict) and a.get("type") == "null" for a in alts):
        return True
    e = schema.get("enum")
    return isinstance(e, list) and None in e


def _with_null(m: _Mapped) -> str:
    if not m.nullable or m.kind == "dyn":
        return m.text
    return f"{m.text} | null"


def _describe(s: Any) -> str:
    if not isinstance(s, dict):
        return json.dumps(s)[:30]
    if "__ref__" in s:
        return s["__ref__"].rsplit("/", 1)[-1]
    t = s.get("type")
    if t == "object" or "properties" in s:
        keys = list((s.get("properties") or {}).keys())[:3]
        return "object{" + ", ".join(keys) + ("...}" if len(s.get("properties") or {}) > 3 else "}")
    return str(t) if t is not None else "schema"


def _one_line(text: str, width: int = 100) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _indent(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.extend("    " + part for part in line.split("\n"))
    return out


# ---------------------------------------------------------------- whole documents


def tools_to_policy(specs: Iterable[ToolSpec], source: str | None = None) -> ImportResult:
    """Policy text (tool declarations and deny rules) for these tools."""
    out: list[str] = []
    if source:
        out.append(f"# Generated by `policylang import-tools` from {_one_line(source, 200)}.")
        out.append(
            "# Review it: the declarations and the deny rules below are the tools' "
            "schemas, nothing more."
        )
        out.append("")
    result = ImportResult("")
    seen: set[str] = set()
    for spec in specs:
        block = _tool_block(spec, seen, result)
        out.extend(block)
        out.append("")
    result.text = "\n".join(out).rstrip("\n") + "\n"
    return result


def _tool_block(spec: ToolSpec, seen: set[str], result: ImportResult) -> list[str]:
    name = spec.name
    lines: list[str] = []
    if isinstance(spec.description, str) and spec.description.strip():
        lines.append(f"# {_one_line(spec.description)}")

    def skip(why: str) -> list[str]:
        result.skipped.append(name)
        result.warnings.append(f"{name}: not mapped: {why}")
        return [*lines, f"# not mapped: tool {_one_line(repr(name), 80)}: {why}"]

    if not _TOOL_NAME.fullmatch(name):
        return skip(
            "the name is not a policylang tool name (letters, digits, '_' and '-', in "
            "parts separated by dots); declare it by hand under another name"
        )
    if name in seen:
        return skip("a second definition of the same tool; only the first one is declared")
    seen.add(name)
    mapper = _ToolMapper(name, spec.parameters)
    acc = _Access("args", "", lambda c: c, 0)
    params = spec.parameters
    resolved = (
        mapper.resolve(params, "") if isinstance(params, dict) and "$ref" in params else params
    )
    if isinstance(resolved, dict) and "allOf" in resolved:
        resolved = mapper.merge_all_of(resolved, "")
    if params is None or resolved == {} or resolved is True:
        body: list[str] = []
    elif not isinstance(resolved, dict) or (resolved.get("type", "object") != "object"):
        return skip(f"its parameters are not an object schema ({_describe(resolved)})")
    else:
        props = resolved.get("properties")
        extra = resolved.get("additionalProperties")
        if not props and extra not in (False, None):
            return skip(
                "it takes arbitrary arguments (no 'properties'); left undeclared, so "
                "rules see untyped args"
            )
        for key, what in _UNMAPPED_KEYWORDS.items():
            if resolved.get(key):
                mapper.note("", f"{what} is not checked")
        if props and extra not in (None, False):
            mapper.note(
                "", "'additionalProperties': a policy rejects arguments the tool does not declare"
            )
        required = resolved.get("required") or []
        for r in required if isinstance(required, list) else []:
            if isinstance(props, dict) and r not in props:
                mapper.note("", f"required property {r!r} has no schema; it is not declared")
        body = mapper.fields(
            props or {}, set(required) if isinstance(required, list) else set(), acc
        )
    for n in mapper.notes:
        lines.append(f"# not mapped: {n}")
        result.warnings.append(f"{name}: not mapped: {n}")
    if body:
        lines.append(f"tool {name} {{")
        lines.extend(body)
        lines.append("}")
    else:
        lines.append(f"tool {name} {{}}")
    rules = mapper.rendered_rules()
    if rules:
        lines.append("")
        lines.extend(rules)
    result.tools.append(name)
    return lines


def import_tools(
    doc: Any, fmt: str = "auto", *, source: str | None = None, name: str | None = None
) -> ImportResult:
    """Policy text for the tools in a parsed document (see :func:`specs_from_document`)."""
    return tools_to_policy(specs_from_document(doc, fmt, name), source)


def tools_from_models(*models: Any) -> ImportResult:
    """Tool declarations from pydantic models (their JSON Schema in validation mode).

    Each item is a model class, named by its ``__tool_name__`` attribute or its
    JSON Schema title (the class name), or a ``(tool_name, model)`` pair.
    """
    specs = []
    for item in models:
        name, model = item if isinstance(item, tuple) else (None, item)
        try:
            schema = model.model_json_schema()
        except AttributeError:
            raise TypeError(f"{model!r} is not a pydantic model class") from None
        name = (
            name or getattr(model, "__tool_name__", None) or schema.get("title") or model.__name__
        )
        specs.append(ToolSpec(str(name), schema, (model.__doc__ or "").strip() or None, "pydantic"))
    return tools_to_policy(specs)
