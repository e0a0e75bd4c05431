"""The policy AST: frozen dataclasses produced by the parser.

Every node carries a ``span`` that is excluded from equality and hashing, so
``parse(fmt(src)) == parse(src)`` holds whenever the two differ only in layout.
The Lark tree never leaves the parser; everything after it works on these nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from policylang.errors import NO_SPAN, Span

Effect = Literal["allow", "deny", "confirm"]


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Literal_:
    """A constant: int, double, string, bytes, bool, null or duration."""

    value: object
    kind: Literal["int", "double", "string", "bytes", "bool", "null", "duration"]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Ident:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Select:
    """``operand.field`` (map or object field access)."""

    operand: Expr
    field: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Has:
    """``has(operand.field)``: the field is present and not null."""

    operand: Expr
    field: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Index:
    operand: Expr
    index: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """A global call ``f(a, b)`` or a method call ``target.f(a, b)``."""

    function: str
    args: tuple[Expr, ...]
    target: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Unary:
    op: Literal["!", "-"]
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * / % == != < <= > >= in && ||
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Conditional:
    cond: Expr
    then: Expr
    otherwise: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MapExpr:
    entries: tuple[tuple[Expr, Expr], ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Comprehension:
    """A CEL macro over a list or map: ``target.exists(x, body)`` and friends.

    ``kind`` is one of all, exists, exists_one, filter, map. For ``map`` with a
    filter (``xs.map(x, pred, f)``) the predicate is in ``condition``.
    """

    kind: Literal["all", "exists", "exists_one", "filter", "map"]
    target: Expr
    var: str
    body: Expr
    condition: Expr | None = None
    span: Span = _span()


Expr = (
    Literal_
    | Ident
    | Select
    | Has
    | Index
    | Call
    | Unary
    | Binary
    | Conditional
    | ListExpr
    | MapExpr
    | Comprehension
)


# ---------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class TypeRef:
    """A declared type as written: ``string``, ``list<string>``, ``map<string, int>``."""

    name: str
    params: tuple[TypeExpr, ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class EnumType:
    """A closed set of literal values: ``"low" | "high"``."""

    values: tuple[object, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ObjectType:
    """An inline object: ``{ name: string, email: string? }``."""

    fields: tuple[Field, ...]
    span: Span = _span()


TypeExpr = TypeRef | EnumType | ObjectType


@dataclass(frozen=True, slots=True)
class Field:
    """A parameter of a tool, or a field of ``principal``/``context``/an object.

    ``optional`` (``T?``): may be absent. ``nullable`` (``T | null``): may be null.
    ``secret``: redacted before any audit sink. ``default``: taken when absent.
    """

    name: str
    type: TypeExpr
    optional: bool = False
    nullable: bool = False
    secret: bool = False
    default: Expr | None = None
    span: Span = _span()


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    version: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class DefaultDecl:
    effect: Literal["allow", "deny"]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TimezoneDecl:
    """``timezone "Europe/Berlin"``: zone for zone-less timestamps and time functions."""

    zone: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ToolDecl:
    name: str
    params: tuple[Field, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ShapeDecl:
    """``principal { ... }`` or ``context { ... }``: the caller-supplied signals."""

    kind: Literal["principal", "context"]
    fields: tuple[Field, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ToolPattern:
    """A tool name or glob (``payments.send``, ``payments.*``, ``*.delete_*``)."""

    pattern: str
    span: Span = _span()

    @property
    def is_glob(self) -> bool:
        return "*" in self.pattern


@dataclass(frozen=True, slots=True)
class Message:
    """A ``because`` text; ``{expr}`` parts are filled in when the rule matches."""

    parts: tuple[str | Expr, ...]
    span: Span = _span()
    is_plain: bool = field(
        init=False, compare=False, repr=False
    )  # no {expr} parts: the same text always

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_plain", all(isinstance(p, str) for p in self.parts))


@dataclass(frozen=True, slots=True)
class Rule:
    effect: Effect
    tools: tuple[ToolPattern, ...]
    when: Expr | None = None
    unless: Expr | None = None
    because: Message | None = None
    name: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class LimitRule:
    """``limit TOOLS to N [sum(EXPR)] per WINDOW [by KEY] [when COND]``.

    Without ``cost`` it counts calls; with it, it sums the expression's value.
    ``on_error`` says what happens when the store is unreachable.
    """

    tools: tuple[ToolPattern, ...]
    amount: int | float
    window: timedelta
    cost: Expr | None = None
    key: Expr | None = None
    when: Expr | None = None
    name: str | None = None
    on_error: Literal["deny", "allow"] = "deny"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BreakerDecl:
    """``breaker TOOLS after N failures in WINDOW for COOLDOWN``: a circuit breaker.

    Guards count the executor's failures per tool; after N within the window
    calls are denied ``circuit_open`` for the cool-down, then one probe runs.
    """

    tools: tuple[ToolPattern, ...]
    failures: int
    window: timedelta
    cooldown: timedelta
    name: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SessionDecl:
    """``session by KEY [keep N] [for TTL]``: the engine remembers calls per session.

    Conditions then see ``session.calls`` (``{tool, args, effect, at}`` each, oldest
    first) and the macros ``session.called(...)`` / ``session.count(...)``.
    """

    key: Expr
    keep: int = 100
    ttl: timedelta = timedelta(days=1)
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: TypeExpr | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class FunctionDef:
    """``def name(a, b): expr`` — a named predicate, inlined at compile time."""

    name: str
    params: tuple[Param, ...]
    body: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Assertion:
    """``assert always|never EFFECT TOOLS [when COND]`` — checked by ``policylang test``."""

    quantifier: Literal["always", "never"]
    effect: Effect
    tools: tuple[ToolPattern, ...]
    when: Expr | None = None
    name: str | None = None
    because: str | None = None
    span: Span = _span()


Statement = (
    Header
    | DefaultDecl
    | TimezoneDecl
    | ToolDecl
    | ShapeDecl
    | Rule
    | LimitRule
    | FunctionDef
    | Assertion
    | SessionDecl
    | BreakerDecl
)


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """One parsed ``.policy`` file; comments are kept aside for the formatter."""

    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    path: str = field(default="<string>", compare=False)
    span: Span = _span()


def walk(expr: Expr) -> Iterator[Expr]:
    """Yield ``expr`` and every sub-expression, parents first."""
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def children(node: Expr) -> list[Expr]:
    """The direct sub-expressions of a node, in source order."""
    match node:
        case Select(operand=o) | Has(operand=o) | Unary(operand=o):
            return [o]
        case Index(operand=o, index=i):
            return [o, i]
        case Call(args=a, target=t):
            return ([t] if t is not None else []) + list(a)
        case Binary(left=left, right=right):
            return [left, right]
        case Conditional(cond=c, then=t, otherwise=o):
            return [c, t, o]
        case ListExpr(items=items):
            return list(items)
        case MapExpr(entries=entries):
            return [x for kv in entries for x in kv]
        case Comprehension(target=t, body=b, condition=c):
            return [t] + ([c] if c is not None else []) + [b]
    return []
