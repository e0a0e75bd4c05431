"""Files → one Policy: the header, tools, shapes, rules and data, assembled.

Takes parsed files (one policy may be split over several) plus loaded data and
gives a :class:`Policy` whose declared types are resolved to
:class:`~policylang.language.types.Type`. Problems that concern more than one
place (two headers, a tool declared twice) are reported here, naming both.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from policylang.errors import NO_SPAN, Diagnostic, Span
from policylang.language import ast
from policylang.language.types import (
    DYN,
    DYN_LIST,
    DYN_MAP,
    NULL,
    SCALARS,
    STRING,
    TIMESTAMP,
    FieldType,
    Type,
    list_of,
    map_of,
    type_of_value,
)

MAX_RULES = 50_000


@dataclass(frozen=True, slots=True)
class ToolInfo:
    name: str
    args: Type  # an object type
    decl: ast.ToolDecl | None

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.args.fields if f.secret)


@dataclass
class Policy:
    """Everything the checker and the compiler need, in one place."""

    name: str = "policy"
    version: str | None = None
    default: str = "deny"
    timezone: str = "UTC"
    tools: dict[str, ToolInfo] = field(default_factory=dict)
    principal: Type | None = None
    context: Type | None = None
    rules: list[ast.Rule] = field(default_factory=list)
    limits: list[ast.LimitRule] = field(default_factory=list)
    defs: dict[str, ast.FunctionDef] = field(default_factory=dict)
    assertions: list[ast.Assertion] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    files: list[ast.PolicyFile] = field(default_factory=list)
    header_span: Span = NO_SPAN
    timezone_declared: bool = False
    session: ast.SessionDecl | None = None
    breakers: list[ast.BreakerDecl] = field(default_factory=list)

    @property
    def open_tools(self) -> bool:
        """A policy that declares no tools treats every tool as open (untyped args)."""
        return not self.tools

    @property
    def content_hash(self) -> str:
        """What decisions, audit records, ``/v1/policies`` and metrics call the policy's hash.

        It covers the sources and the data (files and ``data=`` alike, as
        canonical JSON): an edited allow-list is a different policy. A policy
        without data hashes as it always did.
        """
        h = hashlib.sha256()
        for path in sorted(self.sources):
            h.update(path.encode("utf-8", "surrogatepass") + b"\0")
            h.update(self.sources[path].encode("utf-8", "surrogatepass") + b"\0")
        if self.data:
            encoded = self.__dict__.get("_data_json")  # set by the loader, which checked it
            h.update(b"\0data\0" + (encoded if encoded is not None else canonical_data(self.data)))
        return h.hexdigest()[:16]

    def tools_matching(self, pattern: str) -> list[str]:
        if "*" not in pattern:
            return [pattern] if pattern in self.tools else []
        return [name for name in self.tools if tool_matches(pattern, name)]

    def rule_id(self, rule: ast.Rule | ast.LimitRule | ast.Assertion) -> str:
        if rule.name:
            return rule.name
        return f"{short_path(rule.span.file)}:{rule.span.line}"


MAX_DATA_DEPTH = 100  # nesting of data values (YAML files are held to the same bound)
_TAGGED = "\0"  # starts the key of a tagged non-JSON value, e.g. {"\0timestamp": "..."}


def _jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON values, each non-JSON value tagged with its type, so none collide."""
    if depth > MAX_DATA_DEPTH:
        raise ValueError(f"data nests more than {MAX_DATA_DEPTH} levels deep (or contains itself)")
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_TAGGED + "float": repr(value)}
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if all(type(k) is str for k in value):
            return {k: _jsonable(v, depth + 1) for k, v in value.items()}
        pairs = [[_jsonable(k, depth + 1), _jsonable(v, depth + 1)] for k, v in value.items()]
        pairs.sort(key=lambda kv: json.dumps(kv[0], sort_keys=True))
        return {_TAGGED + "map": pairs}
    if isinstance(value, datetime | date | time | timedelta):
        return {_TAGGED + type(value).__name__: str(value)}
    if isinstance(value, bytes):
        return {_TAGGED + "bytes": value.hex()}
    if isinstance(value, set | frozenset):
        items = [_jsonable(v, depth + 1) for v in value]
        return {_TAGGED + "set": sorted(items, key=lambda v: json.dumps(v, sort_keys=True))}
    return {_TAGGED + type(value).__qualname__: repr(value)}


def canonical_data(data: dict[str, Any]) -> bytes:
    """The canonical JSON of a policy's data: sorted keys, no spaces, types kept apart.

    ``1``, ``1.0``, ``true`` and ``"1"`` differ; so do a date and its text.
    Raises ValueError for data nested deeper than :data:`MAX_DATA_DEPTH`.
    """
    text = json.dumps(
        _jsonable(data), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return text.encode("utf-8", "surrogatepass")


TRUE = ast.Literal_(True, "bool")


def condition_of(rule: ast.Rule) -> ast.Expr:
    """``when W unless U`` → ``W && !U``; no ``when`` → true."""
    cond = rule.when if rule.when is not None else TRUE
    if rule.unless is not None:
        neg = ast.Unary("!", rule.unless, span=rule.unless.span)
        cond = neg if rule.when is None else ast.Binary("&&", cond, neg, span=rule.span)
    return cond


def short_path(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def tool_matches(pattern: str, name: str) -> bool:
    """Glob match where ``*`` may also span dots (``payments.*``, ``*.delete_*``)."""
    if "*" not in pattern:
        return pattern == name
    return fnmatch.fnmatchcase(name, pattern.replace("[", "[[]"))


def suggest(name: str, options: Any) -> str | None:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class Assembler:
    """Combines files into a Policy and resolves declared types, collecting diagnostics."""

    def __init__(self, diags: list[Diagnostic]):
        self.diags = diags

    def error(
        self,
        code: str,
        message: str,
        span: Span,
        hint: str | None = None,
        related: tuple[tuple[str, Span], ...] = (),
    ) -> None:
        self.diags.append(Diagnostic(code, message, span, "error", hint, related))

    def assemble(
        self, files: list[ast.PolicyFile], data: dict[str, Any], sources: dict[str, str]
    ) -> Policy:
        policy = Policy(data=dict(data), sources=dict(sources), files=list(files))
        seen: dict[type, ast.Statement] = {}
        tool_decls: dict[str, ast.ToolDecl] = {}
        shapes: dict[str, ast.ShapeDecl] = {}
        count = 0
        for pf in files:
            for stmt in pf.statements:
                count += 1
                if isinstance(stmt, ast.Header | ast.DefaultDecl | ast.TimezoneDecl):
                    prev = seen.get(type(stmt))
                    if prev is not None:
                        what = {
                            ast.Header: "policy header",
                            ast.DefaultDecl: "default",
                            ast.TimezoneDecl: "timezone",
                        }[type(stmt)]
                        self.error(
                            "PL108",
                            f"a second {what}: a policy has exactly one",
                            stmt.span,
                            "keep the header, default and timezone in one file",
                            (("the first one is here", prev.span),),
                        )
                        continue
                    seen[type(stmt)] = stmt
                match stmt:
                    case ast.Header(name=name, version=version):
                        policy.name, policy.version, policy.header_span = name, version, stmt.span
                    case ast.DefaultDecl(effect=effect):
                        policy.default = effect
                    case ast.TimezoneDecl(zone=zone):
                        policy.timezone = zone
                        policy.timezone_declared = True
                        self._check_zone(zone, stmt.span)
                    case ast.ToolDecl(name=name):
                        if name in tool_decls:
                            self.error(
                                "PL107",
                                f"tool '{name}' is declared twice",
                                stmt.span,
                                "merge the two declarations",
                                (("the first declaration is here", tool_decls[name].span),),
                            )
                            continue
                        tool_decls[name] = stmt
                    case ast.ShapeDecl(kind=kind):
                        if kind in shapes:
                            self.error(
                                "PL107",
                                f"'{kind}' is declared twice",
                                stmt.span,
                                related=(("the first declaration is here", shapes[kind].span),),
                            )
                            continue
                        shapes[kind] = stmt
                    case ast.Rule():
                        policy.rules.append(stmt)
                    case ast.LimitRule():
                        policy.limits.append(stmt)
                    case ast.FunctionDef(name=name):
                        if name in policy.defs:
                            self.error(
                                "PL115",
                                f"predicate '{name}' is defined twice",
                                stmt.span,
                                related=(("the first definition is here", policy.defs[name].span),),
                            )
                            continue
                        policy.defs[name] = stmt
                    case ast.Assertion():
                        policy.assertions.append(stmt)
                    case ast.BreakerDecl():
                        policy.breakers.append(stmt)
                    case ast.SessionDecl():
                        if policy.session is not None:
                            self.error(
                                "PL108",
                                "a second session declaration: a policy has one",
                                stmt.span,
                                related=(("the first one is here", policy.session.span),),
                            )
                            continue
                        policy.session = stmt
        if count > MAX_RULES:
            self.error(
                "PL006",
                f"the policy has {count:,} statements; the limit is {MAX_RULES:,}",
                files[0].span if files else NO_SPAN,
            )
        for name, decl in tool_decls.items():
            policy.tools[name] = ToolInfo(name, self.object_type(decl.params, f"tool {name}"), decl)
        if "principal" in shapes:
            policy.principal = self.object_type(shapes["principal"].fields, "principal")
        if "context" in shapes:
            ctx = self.object_type(shapes["context"].fields, "context")
            if ctx.field("now") is None:
                ctx = Type(
                    "object", fields=ctx.fields + (("now", FieldType(TIMESTAMP, optional=True)),)
                )
            policy.context = ctx
        self._check_rule_names(policy)
        return policy

    def _check_zone(self, zone: str, span: Span) -> None:
        from policylang.runtime.timefuncs import known_zone

        if not known_zone(zone):
            self.error(
                "PL112",
                f"unknown time zone '{zone}'",
                span,
                "use an IANA name such as 'America/New_York' or 'UTC'",
            )

    def _check_rule_names(self, policy: Policy) -> None:
        named: dict[str, Span] = {}
        stmts: list[ast.Rule | ast.LimitRule | ast.Assertion] = [
            *policy.rules,
            *policy.limits,
            *policy.assertions,
        ]
        for stmt in stmts:
            if stmt.name is None:
                continue
            if stmt.name in named:
                self.error(
                    "PL117",
                    f"two rules are named '{stmt.name}'",
                    stmt.span,
                    "rule names identify rules in decisions and tests; make them unique",
                    (("the other one is here", named[stmt.name]),),
                )
            else:
                named[stmt.name] = stmt.span

    # ---- declared types

    def object_type(self, fields: tuple[ast.Field, ...], owner: str) -> Type:
        out: list[tuple[str, FieldType]] = []
        names: dict[str, Span] = {}
        for f in fields:
            if f.name in names:
                self.error(
                    "PL107",
                    f"{owner} has two fields named '{f.name}'",
                    f.span,
                    related=(("the first one is here", names[f.name]),),
                )
                continue
            names[f.name] = f.span
            typ = self.resolve(f.type)
            default, has_default = None, f.default is not None
            if f.default is not None:
                try:
                    default = constant_value(f.default)
                except ValueError as exc:
                    self.error(
                        "PL103",
                        f"the default of '{f.name}' must be a constant: {exc}",
                        f.default.span,
                    )
                    has_default = False
            out.append(
                (
                    f.name,
                    FieldType(
                        typ,
                        optional=f.optional or has_default,
                        nullable=f.nullable,
                        secret=f.secret,
                        default=default,
                        has_default=has_default,
                    ),
                )
            )
        return Type("object", fields=tuple(out))

    def resolve(self, t: ast.TypeExpr) -> Type:
        match t:
            case ast.EnumType(values=values):
                return Type("enum", values=values)
            case ast.ObjectType(fields=fields):
                return self.object_type(fields, "object")
            case ast.TypeRef(name=name, params=params):
                args = [self.resolve(p) for p in params]
                if name in SCALARS and not args:
                    return SCALARS[name]
                if name == "list" and len(args) <= 1:
                    return list_of(args[0]) if args else DYN_LIST
                if name == "map" and len(args) in (0, 2):
                    return map_of(args[0], args[1]) if args else DYN_MAP
                if name == "map" and len(args) == 1:
                    return map_of(STRING, args[0])
                if name == "nullable" and len(args) == 1:
                    return Type("nullable", (args[0],))  # list<T | null>: elements may be null
                if name in SCALARS or name in ("list", "map"):
                    self.error(
                        "PL109",
                        f"'{name}' takes a different number of type parameters",
                        t.span,
                        "e.g. list<string> or map<string, int>",
                    )
                    return DYN
                self.error(
                    "PL109",
                    f"unknown type '{name}'",
                    t.span,
                    suggest(name, [*SCALARS, "list", "map"])
                    or "types are string, int, double, number, bool, timestamp, duration, "
                    "date, bytes, dyn, list<T>, map<K, V>",
                )
                return DYN
        return DYN  # pragma: no cover


def constant_value(expr: ast.Expr) -> Any:
    """Evaluate a constant expression (defaults of declared fields)."""
    match expr:
        case ast.Literal_(value=value):
            return value
        case ast.ListExpr(items=items):
            return [constant_value(i) for i in items]
        case ast.MapExpr(entries=entries):
            return {constant_value(k): constant_value(v) for k, v in entries}
        case ast.Unary(op="-", operand=ast.Literal_(value=v)) if isinstance(v, int | float):
            return -v
    raise ValueError("only literals, lists and maps of literals are allowed here")


def data_type(data: dict[str, Any]) -> Type:
    return Type("object", fields=tuple((k, FieldType(type_of_value(v))) for k, v in data.items()))


def policy_data_type(policy: Policy) -> Type:
    """The type of ``data`` for a policy, inferred once (data can be large)."""
    cached = policy.__dict__.get("_data_type")
    if cached is None:
        cached = policy.__dict__["_data_type"] = data_type(policy.data)
    return cached


__all__ = [
    "Policy",
    "ToolInfo",
    "Assembler",
    "tool_matches",
    "suggest",
    "data_type",
    "DYN",
    "NULL",
    "canonical_data",
    "MAX_DATA_DEPTH",
]
