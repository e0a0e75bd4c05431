"""Tool schemas vs. a policy: what drifted since the declarations were written.

Takes the tools read from a schema document (:class:`ToolSpec`) and a loaded
:class:`~policylang.language.policy.Policy`, and gives a :class:`DriftReport`:

* a rule (``when``/``unless``/``because``, a limit's ``by``/``when``/``sum``, an
  assertion, or a predicate they call) reads a parameter the tool no longer has;
* a declared parameter the tool no longer has (no rule reads it);
* a parameter whose type changed (including optional / nullable / enum members);
* a new parameter the policy does not declare, so no rule constrains it (and the
  engine denies calls that send it as unexpected arguments);
* a tool in the schema that the policy does not declare.

Tools the policy declares but the document does not mention are reported as
notes, not drift: one policy usually covers tools from several sources.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policylang.language import ast
from policylang.language.policy import Policy, tool_matches
from policylang.language.types import FieldType, Type
from policylang.schema.jsonschema import ToolSpec, tools_to_policy


@dataclass(frozen=True)
class DriftItem:
    tool: str
    kind: str  # rule_reads_removed, removed, type_changed, new_parameter, new_tool, not_in_schema
    message: str
    parameter: str | None = None
    drift: bool = True

    def __str__(self) -> str:
        return f"{'drift' if self.drift else 'note'}: {self.tool}: {self.message}"


@dataclass
class DriftReport:
    items: list[DriftItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the schema importer could not map

    @property
    def drifted(self) -> bool:
        return any(i.drift for i in self.items)

    def render(self) -> str:
        lines = [str(i) for i in self.items]
        drift = sum(i.drift for i in self.items)
        lines.append(
            f"{drift} drift finding{'s' if drift != 1 else ''}"
            if drift
            else "no drift: the policy matches the tool schemas"
        )
        return "\n".join(lines)


def schema_types(specs: Iterable[ToolSpec]) -> tuple[dict[str, Type], list[str]]:
    """The declared argument types the schemas map to (through the importer)."""
    from policylang.language.checker import check_or_raise
    from policylang.runtime.loader import parse_sources

    result = tools_to_policy(specs)
    policy, _ = check_or_raise(
        parse_sources({"<schema>": result.text}), {}, {"<schema>": result.text}
    )
    return {name: info.args for name, info in policy.tools.items()}, result.warnings


def load_policy(path: str | Path) -> Policy:
    """The checked policy at ``path`` (not compiled); raises PolicyLoadError."""
    from policylang.language.checker import check_or_raise
    from policylang.runtime.loader import parse_sources, read_path

    sources, data = read_path(path)
    policy, _ = check_or_raise(parse_sources(sources), data, sources)
    return policy


def check_drift(specs: list[ToolSpec], policy: Policy) -> DriftReport:
    declared, warnings = schema_types(specs)
    report = DriftReport(warnings=list(warnings))
    refs = _arg_references(policy)
    for spec in specs:
        name = spec.name
        if name not in declared:
            continue  # the importer could not declare it (and said why in warnings)
        new = declared[name]
        info = policy.tools.get(name)
        if info is None:
            report.items.append(
                DriftItem(name, "new_tool", "the tool is not declared in the policy")
            )
            continue
        old = info.args
        old_fields, new_fields = dict(old.fields), dict(new.fields)
        for pname, ftype in old_fields.items():
            if pname in new_fields:
                if _norm_field(ftype) != _norm_field(new_fields[pname]):
                    report.items.append(
                        DriftItem(
                            name,
                            "type_changed",
                            f"parameter '{pname}' changed type: the policy "
                            f"declares {_show(ftype)}, the schema now says {_show(new_fields[pname])}",
                            pname,
                        )
                    )
                continue
            readers = [
                (rid, where)
                for rid, where, tools, params in refs
                if pname in params and any(tool_matches(t, name) for t in tools)
            ]
            if readers:
                for rid, where in readers:
                    report.items.append(
                        DriftItem(
                            name,
                            "rule_reads_removed",
                            f"rule {rid} ({where}) reads args.{pname}, "
                            "a parameter the tool no longer has",
                            pname,
                        )
                    )
            else:
                report.items.append(
                    DriftItem(
                        name,
                        "removed",
                        f"parameter '{pname}' is declared but the tool no longer has it",
                        pname,
                    )
                )
        for pname, ftype in new_fields.items():
            if pname not in old_fields:
                report.items.append(
                    DriftItem(
                        name,
                        "new_parameter",
                        f"new parameter '{pname}: {_show(ftype)}' is not "
                        "declared, so no rule constrains it (calls that send it are denied as "
                        "unexpected arguments)",
                        pname,
                    )
                )
    named = {s.name for s in specs}
    others = [name for name in policy.tools if name not in named]
    if others:
        shown = ", ".join(others[:8]) + (f", ... ({len(others)} in all)" if len(others) > 8 else "")
        report.items.append(
            DriftItem(
                "(policy)",
                "not_in_schema",
                f"tools declared in the policy but not in this schema document: {shown}",
                drift=False,
            )
        )
    return report


# ---------------------------------------------------------------- types, compared by meaning


def _norm(t: Type) -> Any:
    if t.kind == "enum":
        return ("enum", frozenset((type(v) is str, v) for v in t.values))
    if t.kind == "object":
        return ("object", frozenset((n, _norm_field(f)) for n, f in t.fields))
    return (t.kind, tuple(_norm(p) for p in t.params))


def _norm_field(f: FieldType) -> Any:
    return (_norm(f.type), f.optional, f.nullable)


def _show(f: FieldType) -> str:
    text = _type_text(f.type)
    if f.nullable:
        text += " | null"
    return text + ("?" if f.optional else "")


def _type_text(t: Type) -> str:
    if t.kind == "list":
        return f"list<{_type_text(t.params[0])}>"
    if t.kind == "map":
        return f"map<{_type_text(t.params[0])}, {_type_text(t.params[1])}>"
    if t.kind == "object":
        return "{" + ", ".join(f"{n}: {_show(f)}" for n, f in t.fields) + "}"
    return str(t)


# ---------------------------------------------------------------- which rules read which args


def _arg_references(policy: Policy) -> list[tuple[str, str, list[str], set[str]]]:
    """(rule id, file:line, tool patterns, parameter names read) for every statement."""
    def_params: dict[str, set[str]] = {}

    def def_reads(name: str, stack: tuple[str, ...]) -> set[str]:
        if name in def_params:
            return def_params[name]
        if name in stack or name not in policy.defs:
            return set()
        found = _reads([policy.defs[name].body], lambda n: def_reads(n, (*stack, name)))
        def_params[name] = found
        return found

    out = []
    stmts: list[Any] = [*policy.rules, *policy.limits, *policy.assertions]
    for stmt in stmts:
        exprs: list[ast.Expr] = []
        if isinstance(stmt, ast.Rule):
            exprs = [e for e in (stmt.when, stmt.unless) if e is not None]
            if stmt.because is not None:
                exprs += [p for p in stmt.because.parts if not isinstance(p, str)]
        elif isinstance(stmt, ast.LimitRule):
            exprs = [e for e in (stmt.cost, stmt.key, stmt.when) if e is not None]
        elif isinstance(stmt, ast.Assertion):
            exprs = [stmt.when] if stmt.when is not None else []
        params = _reads(exprs, lambda n: def_reads(n, ()))
        if params:
            out.append(
                (
                    policy.rule_id(stmt),
                    f"{stmt.span.file}:{stmt.span.line}",
                    [t.pattern for t in stmt.tools],
                    params,
                )
            )
    return out


def _reads(exprs: list[ast.Expr], via_def: Any) -> set[str]:
    found: set[str] = set()
    for root in exprs:
        for node in ast.walk(root):
            match node:
                case (
                    ast.Select(operand=ast.Ident(name="args"), field=f)
                    | ast.Has(operand=ast.Ident(name="args"), field=f)
                ):
                    found.add(f)
                case ast.Index(
                    operand=ast.Ident(name="args"), index=ast.Literal_(value=str() as f)
                ):
                    found.add(f)
                case ast.Binary(
                    op="in", left=ast.Literal_(value=str() as f), right=ast.Ident(name="args")
                ):
                    found.add(f)
                case ast.Call(function=fn, target=None):
                    found |= via_def(fn)
    return found
