"""AST → canonical policy text: the ``policylang fmt`` stage.

Takes a :class:`~policylang.language.ast.PolicyFile` (or source text, which it
parses first) and gives one canonical layout of it. Nothing is reordered and no
comment is dropped; :func:`format_source` re-parses its own output and refuses
(:class:`FormatError`) to hand back text whose AST differs from the input's.

Layout rules
------------
* Statements stay in source order, one per line (blocks and long rules span
  several). Statements of one kind (preamble = ``policy``/``default``/
  ``timezone``; declarations; rules; limits; defs; asserts) follow each other
  without a blank line unless the source had one there; where the source had
  one or more blank lines, exactly one is kept. A blank line always separates
  statements of different kinds and always surrounds a multi-line
  ``tool``/``principal``/``context`` block.
* Declarations: ``tool x {}`` when empty, otherwise one field per line indented
  four spaces, no commas — except that a field with a default ends in a comma
  when another field follows: without it a next field called ``in``,
  ``principal``, ``when``... would be read as part of the default expression.
* Rules, limits and asserts are on one line when it fits in 100 characters;
  otherwise the line breaks before each clause (``when``, ``unless``,
  ``because``; for limits ``by``, ``when``, ``fail``), each indented four
  spaces. A ``def`` that does not fit puts its body on the next line.
  Expressions themselves are never broken.
* Comments: a comment on the line where a statement ends stays there, after
  two spaces. A comment on its own line belongs to the statement after it (or
  to the end of the file). A comment inside a statement moves to just before
  that statement — except inside declaration blocks, where comments keep their
  place among the fields. Trailing white space is stripped from comments.
* Expressions get minimal parentheses from CEL precedence
  (``?:`` < ``||`` < ``&&`` < relations < ``+ -`` < ``* / %`` < unary <
  member), binary operators are left-associative. Literals are printed so they
  re-lex to the same value: strings in double quotes with escapes, doubles via
  ``repr``, durations and windows as the largest-units-first literal
  (``90s`` → ``1m30s``; whole weeks as ``w``).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from policylang.errors import PolicyError, Span
from policylang.language import ast
from policylang.language.parser import parse

__all__ = [
    "MAX_WIDTH",
    "FormatError",
    "format_duration",
    "format_expr",
    "format_file",
    "format_message",
    "format_source",
    "format_type",
]

MAX_WIDTH = 100
INDENT = "    "

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOOL_PATTERN = re.compile(r"(?:[A-Za-z_*][A-Za-z0-9_*\-]*)(?:\.[A-Za-z0-9_*\-]+)*")


class FormatError(PolicyError):
    """The formatter could not produce text that re-parses to the same policy."""

    code = "PL090"


# ---------------------------------------------------------------- public API


def format_source(text: str, path: str = "<string>", *, verify: bool = True) -> str:
    """Parse ``text`` and print it in the canonical layout, comments included.

    Raises :class:`~policylang.errors.PolicySyntaxError` when ``text`` does not
    parse. With ``verify`` (the default) the result is parsed again and
    :class:`FormatError` is raised if its AST or its comments differ — a safety
    net so that ``fmt`` never silently changes a policy; it doubles the cost.
    """
    pf = parse(text, path)
    out = format_file(pf)
    if not verify:
        return out
    try:
        again = parse(out, path)
    except PolicyError as exc:  # pragma: no cover - would be a formatter bug
        raise FormatError(f"{path}: formatted text does not parse: {exc}") from None
    if again != pf:  # pragma: no cover - would be a formatter or parser bug
        for old, new in zip(pf.statements, again.statements, strict=False):
            if old != new:
                raise FormatError(
                    f"{old.span}: formatting would change this statement; "
                    "the file was left as it is"
                )
        raise FormatError(f"{path}: formatting would change the number of statements")
    if sorted(c.text.rstrip() for c in again.comments) != sorted(
        c.text.rstrip() for c in pf.comments
    ):
        raise FormatError(f"{path}: formatting would lose a comment")  # pragma: no cover
    return out


def format_file(pf: ast.PolicyFile) -> str:
    """Print a whole file. ``pf.comments`` are placed by their spans (see module doc)."""
    return _FilePrinter(pf).render()


def format_expr(e: ast.Expr) -> str:
    """Print one expression with the fewest parentheses that keep its shape."""
    return _ExprPrinter().expr(e, 0)


def format_type(t: ast.TypeExpr) -> str:
    """Print a declared type as it goes after ``name:`` (``list<string | null>``)."""
    return _type(t)


def format_message(msg: ast.Message) -> str:
    """Print a ``because`` message as the string literal that parses back to it."""
    return _message(msg)


# ---------------------------------------------------------------- literals


def quote_string(text: str, template: bool = False) -> str:
    """A double-quoted CEL string literal that decodes back to ``text``.

    In ``template`` mode (an expression inside a ``because`` message) a double
    quote is written ``\\x22``, because the parser finds the end of ``{expr}``
    by pairing quote characters without looking at escapes.
    """
    out = ['"']
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append("\\x22" if template else '\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    out.append('"')
    return "".join(out)


_BYTE_ESCAPES = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}


_quote = quote_string  # the formatter's own short name


def _quote_bytes(data: bytes, template: bool = False) -> str:
    out = ['b"']
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif byte == 0x22:
            out.append("\\x22" if template else '\\"')
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        elif byte in _BYTE_ESCAPES:
            out.append(_BYTE_ESCAPES[byte])
        else:
            out.append(f"\\x{byte:02x}")
    out.append('"')
    return "".join(out)


def _double(value: float) -> str:
    text = repr(float(value))
    if not any(c.isdigit() for c in text):
        raise FormatError(f"the number {text} cannot be written as a policy literal")
    if "." not in text and "e" not in text:  # pragma: no cover - repr always has one
        text += ".0"
    return text


def _number(value: object) -> str:
    if isinstance(value, bool):
        raise FormatError(f"{value!r} is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _double(value)
    raise FormatError(f"{value!r} is not a number")


_US = 1
_MS = 1000 * _US
_S = 1000 * _MS
_M = 60 * _S
_H = 60 * _M
_D = 24 * _H
_W = 7 * _D
_DURATION_UNITS = (("d", _D), ("h", _H), ("m", _M), ("s", _S), ("ms", _MS), ("us", _US))


def format_duration(value: timedelta) -> str:
    """``timedelta`` → duration literal, largest unit first: 90s → ``1m30s``, 0 → ``0s``.

    Whole weeks print as ``2w``; any other duration uses days and smaller units.
    A negative duration prints as ``-`` + literal (the parser folds it back).
    """
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros == 0:
        return "0s"
    if micros % _W == 0:
        return f"{sign}{micros // _W}w"
    parts = []
    for unit, size in _DURATION_UNITS:
        count, micros = divmod(micros, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def _name(text: str) -> str:
    """A rule or field name: bare when it is an identifier, else a string."""
    return text if _IDENT.fullmatch(text) else _quote(text)


# ---------------------------------------------------------------- expressions

_PREC_COND, _PREC_OR, _PREC_AND, _PREC_REL, _PREC_ADD, _PREC_MUL = 0, 1, 2, 3, 4, 5
_PREC_UNARY, _PREC_MEMBER, _PREC_PRIMARY = 6, 7, 8
_BINARY_PREC = {
    "||": _PREC_OR,
    "&&": _PREC_AND,
    "==": _PREC_REL,
    "!=": _PREC_REL,
    "<": _PREC_REL,
    "<=": _PREC_REL,
    ">": _PREC_REL,
    ">=": _PREC_REL,
    "in": _PREC_REL,
    "+": _PREC_ADD,
    "-": _PREC_ADD,
    "*": _PREC_MUL,
    "/": _PREC_MUL,
    "%": _PREC_MUL,
}


class _ExprPrinter:
    """One method per node; each returns its text and the precedence it binds at."""

    def __init__(self, template: bool = False):
        self.template = template

    def expr(self, e: ast.Expr, min_prec: int) -> str:
        text, prec = self.raw(e)
        return f"({text})" if prec < min_prec else text

    def args(self, items: Sequence[ast.Expr]) -> str:
        return ", ".join(self.expr(a, _PREC_COND) for a in items)

    def raw(self, e: ast.Expr) -> tuple[str, int]:
        match e:
            case ast.Literal_():
                return self.literal(e)
            case ast.Ident(name=name):
                return name, _PREC_PRIMARY
            case ast.Select(operand=operand, field=name):
                return f"{self.expr(operand, _PREC_MEMBER)}.{name}", _PREC_MEMBER
            case ast.Has(operand=operand, field=name):
                return f"has({self.expr(operand, _PREC_MEMBER)}.{name})", _PREC_PRIMARY
            case ast.Index(operand=operand, index=index):
                return (
                    f"{self.expr(operand, _PREC_MEMBER)}[{self.expr(index, _PREC_COND)}]",
                    _PREC_MEMBER,
                )
            case ast.Call(function=fn, args=args, target=None):
                return f"{fn}({self.args(args)})", _PREC_PRIMARY
            case ast.Call(function=fn, args=args, target=target):
                assert target is not None
                return f"{self.expr(target, _PREC_MEMBER)}.{fn}({self.args(args)})", _PREC_MEMBER
            case ast.Unary(op=op, operand=operand):
                return f"{op}{self.expr(operand, _PREC_UNARY)}", _PREC_UNARY
            case ast.Binary(op=op) if op in ast.LOGIC:  # a chain, however the parser grouped it
                prec = _BINARY_PREC[op]
                return f" {op} ".join(self.expr(x, prec + 1) for x in ast.chain_operands(e)), prec
            case ast.Binary(op=op, left=left, right=right):
                prec = _BINARY_PREC[op]
                return (f"{self.expr(left, prec)} {op} {self.expr(right, prec + 1)}", prec)
            case ast.Conditional(cond=cond, then=then, otherwise=otherwise):
                return (
                    f"{self.expr(cond, _PREC_OR)} ? {self.expr(then, _PREC_OR)} : "
                    f"{self.expr(otherwise, _PREC_COND)}",
                    _PREC_COND,
                )
            case ast.ListExpr(items=items):
                return f"[{self.args(items)}]", _PREC_PRIMARY
            case ast.MapExpr(entries=entries):
                body = ", ".join(
                    f"{self.expr(k, _PREC_OR)}: {self.expr(v, _PREC_COND)}" for k, v in entries
                )
                return f"{{{body}}}", _PREC_PRIMARY
            case ast.Comprehension(kind=kind, target=target, var=var, body=body, condition=cond):
                inner = [var] + ([self.expr(cond, _PREC_COND)] if cond is not None else [])
                inner.append(self.expr(body, _PREC_COND))
                return f"{self.expr(target, _PREC_MEMBER)}.{kind}({', '.join(inner)})", _PREC_MEMBER
        raise FormatError(f"cannot format {type(e).__name__} as an expression")

    def literal(self, e: ast.Literal_) -> tuple[str, int]:
        value = e.value
        match e.kind:
            case "bool":
                return ("true" if value else "false"), _PREC_PRIMARY
            case "null":
                return "null", _PREC_PRIMARY
            case "string":
                assert isinstance(value, str)
                return _quote(value, self.template), _PREC_PRIMARY
            case "bytes":
                assert isinstance(value, bytes)
                return _quote_bytes(value, self.template), _PREC_PRIMARY
            case "duration":
                assert isinstance(value, timedelta)
                text = format_duration(value)
            case "int":
                text = _number(value)
            case "double":
                assert isinstance(value, int | float)
                text = _double(value)
            case _:
                raise FormatError(f"unknown literal kind {e.kind!r}")
        # `-5` is a negative literal to the parser, but it binds like a unary minus:
        # as the operand of `.`, `[` or a method call it needs parentheses.
        return text, (_PREC_UNARY if text.startswith("-") else _PREC_PRIMARY)


def _message(msg: ast.Message) -> str:
    """Rebuild a ``because`` template: ``{expr}`` parts, ``{{``/``}}`` in text."""
    printer = _ExprPrinter(template=True)
    out: list[str] = []
    for part in msg.parts:
        if isinstance(part, str):
            out.append(part.replace("{", "{{").replace("}", "}}"))
        else:
            text = printer.expr(part, _PREC_COND)
            if text.startswith("{"):  # `{{` would read as a literal brace
                text = f"({text})"
            out.append(f"{{{text}}}")
    return _quote("".join(out))


# ---------------------------------------------------------------- types and fields


def _type(t: ast.TypeExpr, top: bool = True) -> str:
    match t:
        case ast.TypeRef(name="nullable", params=(inner,)) if not top:
            return f"{_type(inner, top=False)} | null"
        case ast.TypeRef(name=name, params=params):
            if not params:
                return name
            return f"{name}<{', '.join(_type(p, top=False) for p in params)}>"
        case ast.EnumType(values=values):
            return " | ".join(_enum_value(v) for v in values)
        case ast.ObjectType(fields=fields):
            if not fields:
                return "{}"
            return "{ " + ", ".join(_field(f) for f in fields) + " }"
    raise FormatError(f"cannot format {type(t).__name__} as a type")


def _enum_value(value: object) -> str:
    return _quote(value) if isinstance(value, str) else _number(value)


def _field(f: ast.Field) -> str:
    text = f"{'@secret ' if f.secret else ''}{_name(f.name)}: {_type(f.type)}"
    if f.nullable:
        text += " | null"
    if f.optional:
        text += "?"
    if f.default is not None:
        text += f" = {format_expr(f.default)}"
    return text


# ---------------------------------------------------------------- statements


def _tools(tools: Sequence[ast.ToolPattern]) -> str:
    return ", ".join(t.pattern for t in tools)


def _named(name: str | None) -> str:
    return "" if name is None else f"rule {_name(name)}: "


def _clauses(head: str, clauses: list[str]) -> list[str]:
    one = " ".join([head, *clauses])
    if len(one) <= MAX_WIDTH or not clauses:
        return [one]
    return [head] + [INDENT + c for c in clauses]


def _header_name(name: str) -> str:
    return name if _TOOL_PATTERN.fullmatch(name) and "*" not in name else _quote(name)


def _statement(stmt: ast.Statement) -> list[str]:
    """The lines of one statement other than a declaration block."""
    match stmt:
        case ast.Header(name=name, version=version):
            text = f"policy {_header_name(name)}"
            return [text + (f" version {_quote(version)}" if version is not None else "")]
        case ast.DefaultDecl(effect=effect):
            return [f"default {effect}"]
        case ast.TimezoneDecl(zone=zone):
            return [f"timezone {_quote(zone)}"]
        case ast.Rule():
            clauses = []
            if stmt.when is not None:
                clauses.append(f"when {format_expr(stmt.when)}")
            if stmt.unless is not None:
                clauses.append(f"unless {format_expr(stmt.unless)}")
            if stmt.because is not None:
                clauses.append(f"because {_message(stmt.because)}")
            return _clauses(f"{_named(stmt.name)}{stmt.effect} {_tools(stmt.tools)}", clauses)
        case ast.LimitRule():
            amount = _number(stmt.amount)
            if stmt.cost is not None:
                amount = f"sum({format_expr(stmt.cost)}) {amount}"
            head = (
                f"{_named(stmt.name)}limit {_tools(stmt.tools)} to {amount} "
                f"per {format_duration(stmt.window)}"
            )
            clauses = []
            if stmt.key is not None:
                clauses.append(f"by {format_expr(stmt.key)}")
            if stmt.when is not None:
                clauses.append(f"when {format_expr(stmt.when)}")
            if stmt.on_error == "allow":
                clauses.append("fail open")
            return _clauses(head, clauses)
        case ast.FunctionDef(name=name, params=params, body=body):
            plist = ", ".join(
                p.name if p.type is None else f"{p.name}: {_type(p.type)}" for p in params
            )
            head = f"def {name}({plist}):"
            text = format_expr(body)
            one = f"{head} {text}"
            return [one] if len(one) <= MAX_WIDTH else [head, INDENT + text]
        case ast.Assertion():
            clauses = []
            if stmt.when is not None:
                clauses.append(f"when {format_expr(stmt.when)}")
            if stmt.because is not None:
                clauses.append(f"because {_quote(stmt.because)}")
            head = f"{_named(stmt.name)}assert {stmt.quantifier} {stmt.effect} {_tools(stmt.tools)}"
            return _clauses(head, clauses)
        case ast.BreakerDecl(tools=tools, failures=n, window=window, cooldown=cooldown):
            return [
                f"{_named(stmt.name)}breaker {_tools(tools)} after {n} failures in "
                f"{format_duration(window)} for {format_duration(cooldown)}"
            ]
        case ast.SessionDecl(key=key, keep=keep, ttl=ttl):
            return [f"session by {format_expr(key)} keep {keep} calls for {format_duration(ttl)}"]
    raise FormatError(f"cannot format {type(stmt).__name__} as a statement")


# ---------------------------------------------------------------- comments and layout


@dataclass
class _Placed:
    """Where the comments around a run of nodes go (see :func:`_place`)."""

    leading: list[list[ast.Comment]]  # own-line comments before node i
    moved: list[list[ast.Comment]]  # comments inside node i, printed before it
    trailing: list[ast.Comment | None]  # comment on the line where node i ends
    opener: ast.Comment | None = None  # comment on a block's `{` line
    rest: list[ast.Comment] = field(default_factory=list)  # after the last node


def _place(spans: Sequence[Span], comments: Sequence[ast.Comment], opener_line: int = 0) -> _Placed:
    """Attach comments to nodes (in source order) by offsets and line numbers."""
    n = len(spans)
    starts = [s.start for s in spans]
    placed = _Placed([[] for _ in range(n)], [[] for _ in range(n)], [None] * n)
    for c in sorted(comments, key=lambda c: (c.span.line == 0, c.span.start)):
        if not c.span.line:
            placed.rest.append(c)
            continue
        pos = c.span.start
        i = bisect_left(starts, pos)  # first node starting at or after the comment
        prev = spans[i - 1] if i > 0 else None
        if prev is not None and prev.line and prev.start < pos < prev.end:
            placed.moved[i - 1].append(c)
        elif prev is not None and prev.end_line == c.span.line and placed.trailing[i - 1] is None:
            placed.trailing[i - 1] = c
        elif prev is None and opener_line and c.span.line == opener_line and placed.opener is None:
            placed.opener = c
        elif i < n:
            placed.leading[i].append(c)
        else:
            placed.rest.append(c)
    return placed


def _comment_text(c: ast.Comment) -> str:
    return c.text.rstrip()


class _Lines:
    """Collects output lines; keeps one blank line where the source had any."""

    def __init__(self, indent: str = ""):
        self.lines: list[str] = []
        self.indent = indent
        self.prev_line = 0  # source line of the last item added

    def add(
        self, lines: list[str], start: int, end: int, gap: bool = True, force: bool = False
    ) -> None:
        if self.lines and (
            force or (gap and self.prev_line and start and start - self.prev_line > 1)
        ):
            self.lines.append("")
        self.lines.extend(self.indent + line for line in lines)
        if end:
            self.prev_line = end

    def entry(
        self, placed: _Placed, i: int, span: Span, lines: list[str], force: bool = False
    ) -> None:
        """Node ``i`` with its comments: leading, then moved-in ones, then the node."""
        first = True
        for c in placed.leading[i]:
            self.add([_comment_text(c)], c.span.line, c.span.line, force=force and first)
            first = False
        moved = placed.moved[i]
        for j, c in enumerate(moved):
            self.add(
                [_comment_text(c)], span.line if j == 0 else 0, 0, gap=j == 0, force=force and first
            )
            first = False
        trailing = placed.trailing[i]
        if trailing is not None:
            lines = [*lines[:-1], f"{lines[-1]}  {_comment_text(trailing)}"]
        self.add(lines, span.line, span.end_line, gap=not moved, force=force and first)

    def tail(self, comments: list[ast.Comment]) -> None:
        for c in comments:
            self.add([_comment_text(c)], c.span.line, c.span.line)


_KINDS: dict[type, str] = {
    ast.Header: "preamble",
    ast.DefaultDecl: "preamble",
    ast.TimezoneDecl: "preamble",
    ast.ToolDecl: "declaration",
    ast.ShapeDecl: "declaration",
    ast.Rule: "rule",
    ast.LimitRule: "limit",
    ast.FunctionDef: "def",
    ast.Assertion: "assert",
    ast.SessionDecl: "preamble",
    ast.BreakerDecl: "limit",
}


class _FilePrinter:
    def __init__(self, pf: ast.PolicyFile):
        self.pf = pf

    def render(self) -> str:
        stmts = self.pf.statements
        placed = _place([s.span for s in stmts], self.pf.comments)
        out = _Lines()
        prev_kind, prev_block = "", False
        for i, stmt in enumerate(stmts):
            if isinstance(stmt, ast.ToolDecl | ast.ShapeDecl):
                lines = self._block(stmt, placed.moved[i])
                placed.moved[i] = []
            else:
                lines = _statement(stmt)
            kind = _KINDS[type(stmt)]
            block = isinstance(stmt, ast.ToolDecl | ast.ShapeDecl) and len(lines) > 1
            force = bool(prev_kind) and (kind != prev_kind or block or prev_block)
            out.entry(placed, i, stmt.span, lines, force=force)
            prev_kind, prev_block = kind, block
        out.tail(placed.rest)
        return "\n".join(out.lines) + "\n" if out.lines else ""

    def _block(self, decl: ast.ToolDecl | ast.ShapeDecl, comments: list[ast.Comment]) -> list[str]:
        fields = decl.params if isinstance(decl, ast.ToolDecl) else decl.fields
        head = f"tool {decl.name}" if isinstance(decl, ast.ToolDecl) else decl.kind
        if not fields and not comments:
            return [f"{head} {{}}"]
        placed = _place([f.span for f in fields], comments, opener_line=decl.span.line)
        first = f"{head} {{"
        if placed.opener is not None:
            first += f"  {_comment_text(placed.opener)}"
        body = _Lines(INDENT)
        for i, f in enumerate(fields):
            text = _field(f)
            if f.default is not None and i + 1 < len(fields):
                text += ","  # ends the expression: `= x in: int` would read on into `in`
            body.entry(placed, i, f.span, [text])
        body.tail(placed.rest)
        return [first, *body.lines, "}"]
