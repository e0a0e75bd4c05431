"""The policy AST: frozen dataclasses produced by the parser.

Every node carries a ``span`` that is excluded from equality and hashing, so
``parse(fmt(src)) == parse(src)`` holds whenever the two differ only in layout.
The Lark tree never leaves the parser; everything after it works on these nodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

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


def map_children(e: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """``e`` with ``fn`` applied to each direct sub-expression (``e`` itself when it has none)."""
    match e:
        case Select() | Has() | Unary():
            return dataclasses.replace(e, operand=fn(e.operand))
        case Index():
            return dataclasses.replace(e, operand=fn(e.operand), index=fn(e.index))
        case Call():
            return dataclasses.replace(
                e,
                args=tuple(fn(a) for a in e.args),
                target=fn(e.target) if e.target is not None else None,
            )
        case Binary():
            return dataclasses.replace(e, left=fn(e.left), right=fn(e.right))
        case Conditional():
            return dataclasses.replace(
                e, cond=fn(e.cond), then=fn(e.then), otherwise=fn(e.otherwise)
            )
        case ListExpr():
            return dataclasses.replace(e, items=tuple(fn(i) for i in e.items))
        case MapExpr():
            return dataclasses.replace(e, entries=tuple((fn(k), fn(v)) for k, v in e.entries))
        case Comprehension():
            return dataclasses.replace(
                e,
                target=fn(e.target),
                body=fn(e.body),
                condition=fn(e.condition) if e.condition is not None else None,
            )
    return e


LOGIC = ("&&", "||")  # associative: a chain of one of them may be grouped any way (see balance)


def chain_operands(e: Expr) -> list[Expr]:
    """The operands of the ``&&``/``||`` chain rooted at ``e``, in order, through any grouping."""
    if not (isinstance(e, Binary) and e.op in LOGIC):
        return [e]
    op = e.op
    out: list[Expr] = []
    stack: list[Expr] = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, Binary) and node.op == op:
            stack.append(node.right)
            stack.append(node.left)
        else:
            out.append(node)
    return out


def balanced(op: str, operands: list[Expr], span: Any) -> Expr:
    """One ``&&``/``||`` chain as a balanced tree: depth log2(n), not n.

    Exact: CEL's ``&&`` and ``||`` are associative, error absorption included
    (the result is decided by whether any operand is false/true, else by any
    error), and evaluation still runs left to right. cel-go's parser balances
    these chains for the same reason. Splits are left-heavy, so chains of up to
    three operands keep the left-leaning shape the grammar gives.
    """
    if len(operands) == 1:
        return operands[0]
    # iterative: a stack of (lo, hi) ranges to build, results combined bottom-up
    built: dict[tuple[int, int], Expr] = {}
    stack: list[tuple[int, int, bool]] = [(0, len(operands), False)]
    while stack:
        lo, hi, ready = stack.pop()
        if hi - lo == 1:
            built[(lo, hi)] = operands[lo]
            continue
        mid = lo + (hi - lo + 1) // 2
        if not ready:
            stack += [(lo, hi, True), (mid, hi, False), (lo, mid, False)]
            continue
        left, right = built.pop((lo, mid)), built.pop((mid, hi))
        where = span if (lo, hi) == (0, len(operands)) else left.span.merge(right.span)
        built[(lo, hi)] = Binary(op, left, right, span=where)
    return built[(0, len(operands))]


def nesting(expr: Expr) -> tuple[int, int, Expr]:
    """(real depth, tree depth, deepest node) of ``expr``, iteratively.

    Real depth is what the 100-level limit counts: every node is a level,
    except that an ``&&``/``||`` directly under the same operator continues its
    parent's chain, so a 10,000-term allow-list is one level. Tree depth is
    the height of the tree itself (a balanced chain adds about log2 of its
    length), bounded separately so recursive stages stay within Python's limits.
    """
    best_real, best_tree, deepest = 0, 0, expr
    stack: list[tuple[Expr, int, int, str | None]] = [(expr, 1, 1, None)]
    while stack:
        node, real, tree, parent_op = stack.pop()
        if real > best_real:
            best_real, deepest = real, node
        best_tree = max(best_tree, tree)
        op = node.op if isinstance(node, Binary) and node.op in LOGIC else None
        for child in children(node):
            same = op is not None and isinstance(child, Binary) and child.op == op
            stack.append((child, real if same else real + 1, tree + 1, op))
    return best_real, best_tree, deepest


def balance(expr: Expr) -> Expr:
    """``expr`` with every ``&&``/``||`` chain rebuilt balanced (see :func:`balanced`), iteratively.

    A chain is the maximal run of one operator, through parentheses (which
    cannot change its meaning), so equal chains always get the same tree:
    ``parse(fmt(x)) == parse(x)`` holds for any grouping. Nodes without
    chains below them are returned as they are.
    """
    if not _unbalanced(expr):  # the common case: no chain longer than three, no grouping to undo
        return expr
    done: dict[int, Expr] = {}
    stack: list[tuple[Expr, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        kids = (
            chain_operands(node)
            if isinstance(node, Binary) and node.op in LOGIC
            else children(node)
        )
        if not ready:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in done)
            continue
        new_kids = [done[id(k)] for k in kids]
        if isinstance(node, Binary) and node.op in LOGIC:
            out = balanced(node.op, new_kids, node.span)
            if _same_tree(out, node):
                out = node
        elif all(a is b for a, b in zip(new_kids, kids, strict=True)):
            out = node
        else:
            out = map_children(node, lambda c: done[id(c)])
        done[id(node)] = out
    return done[id(expr)]


def _unbalanced(expr: Expr) -> bool:
    """Whether :func:`balance` would change anything: a chain of four or more, or a grouped one.

    The grammar leans chains left, and balancing keeps chains of two or three
    as they are; so a same-operator right operand, or a left operand that is
    itself a chain of three, is the sign of work to do.
    """
    for node in walk(expr):
        if isinstance(node, Binary) and node.op in LOGIC:
            left, right = node.left, node.right
            if isinstance(right, Binary) and right.op == node.op:
                return True
            if (
                isinstance(left, Binary)
                and left.op == node.op
                and isinstance(left.left, Binary)
                and left.left.op == node.op
            ):
                return True
    return False


def _same_tree(a: Expr, b: Expr) -> bool:
    """Whether two chain trees are the same objects shape for shape (no rebuild needed)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if not (isinstance(x, Binary) and isinstance(y, Binary) and x.op == y.op):
            return False
        stack += [(x.left, y.left), (x.right, y.right)]
    return True
