"""Text → AST. The only module that touches Lark.

Takes policy source text and gives a :class:`~policylang.language.ast.PolicyFile`
(or one expression, for ``because`` templates and tests). Every Lark exception
is turned here into a :class:`~policylang.errors.PolicySyntaxError` with file,
line, column and a message written for a person; nothing else ever sees a Lark
tree or a Lark error. Resource bounds (file size, literal size, nesting depth)
are enforced here so later, recursive stages can rely on them.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer_NonRecursive, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.lexer import PatternStr

from policylang.errors import Diagnostic, PolicySyntaxError, Span
from policylang.language import ast

MAX_SOURCE_CHARS = 2_000_000
MAX_DEPTH = 100
MAX_STRING_LITERAL = 100_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_WINDOW_WORDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}

_state = threading.local()


def _on_comment(token: Token) -> None:
    sink = getattr(_state, "comments", None)
    if sink is not None:
        sink.append(token)


@cache
def _lark() -> Lark:
    grammar = resources.files("policylang.language").joinpath("grammar.lark").read_text("utf-8")
    options: dict[str, Any] = dict(
        parser="lalr",
        lexer="contextual",
        start=["start", "expr"],
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _on_comment},
    )
    try:  # the LALR tables take ~0.3 s to build; Lark caches them in the temp folder
        return Lark(grammar, cache=True, **options)
    except OSError:  # a read-only temp folder: build them every time
        return Lark(grammar, **options)


# ---------------------------------------------------------------- public API


def parse(text: str, path: str = "<string>") -> ast.PolicyFile:
    """Parse one policy file. Raises :class:`PolicySyntaxError` on any problem."""
    text = _prepare(text, path)
    _state.comments = []
    try:
        tree = _parse_tree(text, path, "start")
        comments = tuple(ast.Comment(t.value, span=_tok_span(t, path)) for t in _state.comments)
    finally:
        _state.comments = None
    node = _transform(tree, text, path)
    assert isinstance(node, ast.PolicyFile)
    return ast.PolicyFile(node.statements, comments=comments, path=path, span=node.span)


def parse_expr(text: str, path: str = "<expr>") -> ast.Expr:
    """Parse one CEL expression (used for templates, the REPL and tests)."""
    text = _prepare(text, path)
    tree = _parse_tree(text, path, "expr")
    return _transform(tree, text, path)


# ---------------------------------------------------------------- internals


def _fail(
    message: str,
    span: Span,
    hint: str | None = None,
    code: str = "PL001",
    source: str | None = None,
) -> PolicySyntaxError:
    sources = {span.file: source} if source is not None else {}
    return PolicySyntaxError([Diagnostic(code, message, span, "error", hint)], sources)


def _prepare(text: str, path: str) -> str:
    if not isinstance(text, str):
        raise _fail(f"policy text must be a str, not {type(text).__name__}", Span(path, 1, 1, 1, 1))
    if len(text) > MAX_SOURCE_CHARS:
        raise _fail(
            f"policy file is too large ({len(text):,} characters; the limit is "
            f"{MAX_SOURCE_CHARS:,})",
            Span(path, 1, 1, 1, 2),
            code="PL006",
        )
    if text.startswith("\ufeff"):
        text = " " + text[1:]  # keep offsets, drop the BOM
    bad = next((i for i, ch in enumerate(text) if ch == "\x00" or 0xD800 <= ord(ch) <= 0xDFFF), -1)
    if bad >= 0:
        line = text.count("\n", 0, bad) + 1
        col = bad - (text.rfind("\n", 0, bad) + 1) + 1
        what = "a NUL character" if text[bad] == "\x00" else "an unpaired surrogate character"
        raise _fail(
            f"the file contains {what}, which is not allowed in policy text",
            Span(path, line, col, line, col + 1, bad, bad + 1),
            source=text,
        )
    return text


def _tok_span(tok: Token, path: str) -> Span:
    return Span(
        path,
        tok.line or 0,
        tok.column or 0,
        tok.end_line or 0,
        tok.end_column or 0,
        tok.start_pos or 0,
        tok.end_pos or 0,
    )


def _meta_span(meta: Any, path: str) -> Span:
    if getattr(meta, "empty", True):
        return Span(path)
    return Span(
        path, meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos
    )


def _parse_tree(text: str, path: str, start: str) -> Tree:
    try:
        return _lark().parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, path) from None
    except RecursionError:  # pragma: no cover - LALR is iterative; belt and braces
        raise _fail(
            "the text is nested too deeply to parse", Span(path, 1, 1, 1, 2), code="PL005"
        ) from None


_FRIENDLY = {
    "TOOL_PATTERN": "a tool name",
    "IDENT": "a name",
    "STRING": "a string",
    "INT": "a number",
    "DOUBLE": "a number",
    "UINT": "a number",
    "DURATION": "a duration such as 1m",
    "BYTES": "a bytes literal",
    "REL_OP": "a comparison",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/' or '%'",
    "SECRET": "'@secret'",
    "$END": "the end of the file",
    "OPTIONAL": "'?'",
    "NEG": "'-'",
}
_STATEMENT_STARTS = {
    "ALLOW",
    "DENY",
    "CONFIRM",
    "LIMIT",
    "TOOL",
    "RULE",
    "DEF",
    "ASSERT",
    "POLICY",
    "DEFAULT",
    "TIMEZONE",
    "PRINCIPAL",
    "CONTEXT",
    "SESSION",
    "BREAKER",
}
_OPERATORS = {"REL_OP", "IN", "ADD_OP", "MUL_OP", "AMPAMP", "OROR", "QMARK", "DOT", "LSQB", "LPAR"}


def _describe_expected(names: set[str]) -> str:
    lark = _lark()
    by_name = {t.name: t for t in lark.terminals}
    statement = names & _STATEMENT_STARTS
    rest = names - _STATEMENT_STARTS
    words: list[str] = []
    ops = {
        n
        for n in rest
        if n in _OPERATORS
        or (
            n in by_name
            and isinstance(by_name[n].pattern, PatternStr)
            and by_name[n].pattern.value in {"&&", "||", "?", ".", "[", "("}
        )
    }
    if len(ops) >= 3:
        words.append("an operator")
        rest -= ops
    for name in sorted(rest):
        if name in _FRIENDLY:
            words.append(_FRIENDLY[name])
        elif name in by_name and isinstance(by_name[name].pattern, PatternStr):
            words.append(f"'{by_name[name].pattern.value}'")
        else:
            words.append(name.lower())
    if statement:
        words.append(
            "the start of a new statement (allow, deny, confirm, limit, tool, ...)"
            if len(statement) > 3
            else " or ".join(f"'{by_name[s].pattern.value}'" for s in sorted(statement))
        )
    words = list(dict.fromkeys(words))
    if not words:
        return "something else"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_error(exc: UnexpectedInput, text: str, path: str) -> PolicySyntaxError:
    line = getattr(exc, "line", 1) or 1
    col = getattr(exc, "column", 1) or 1
    pos = getattr(exc, "pos_in_stream", None) or 0
    hint = None
    if (
        isinstance(exc, UnexpectedToken)
        and exc.token.type == "$END"
        or isinstance(exc, UnexpectedEOF)
    ):
        expected = getattr(exc, "expected", None) or set()
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        pos = len(text)
        message = f"the file ends too early: expected {_describe_expected(set(expected))}"
        span = Span(path, line, col, line, col + 1, pos, pos)
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = set(exc.accepts or exc.expected or ())
        found = tok.value if len(tok.value) <= 30 else tok.value[:27] + "..."
        message = f"unexpected '{found}': expected {_describe_expected(expected)}"
        span = _tok_span(tok, path)
        if tok.type == "IDENT" and {"ALLOW", "DENY", "CONFIRM"} & expected:
            hint = "rules start with allow, deny or confirm; is a keyword misspelt?"
        elif tok.type == "EQUAL" or tok.value == "=":
            hint = "use '==' to compare values"
        elif tok.value == "|":
            hint = "CEL writes 'or' as '||'"
    elif isinstance(exc, UnexpectedCharacters):
        ch = text[pos] if pos < len(text) else ""
        allowed = set(getattr(exc, "allowed", None) or ())
        shown = (
            repr(ch)[1:-1]
            if ch.isprintable() and ch != "'"
            else f"U+{ord(ch):04X}"
            if ch
            else "end"
        )
        message = f"unexpected character '{shown}'"
        if allowed:
            message += f": expected {_describe_expected(allowed)}"
        span = Span(path, line, col, line, col + 1, pos, pos + 1)
        if ch == "=":
            hint = "use '==' to compare values"
        elif ch in "\"'":
            hint = "this string is not closed before the end of the line"
        elif ch == "&":
            hint = "CEL writes 'and' as '&&'"
        elif ch == "|":
            hint = "CEL writes 'or' as '||'"
    else:  # pragma: no cover - other UnexpectedInput kinds
        message = "syntax error"
        span = Span(path, line, col, line, col + 1, pos, pos + 1)
    return _fail(message, span, hint, source=text)


def _transform(tree: Tree, text: str, path: str) -> Any:
    try:
        node = _ToAst(path, text).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, PolicySyntaxError):
            raise exc.orig_exc from None
        raise  # pragma: no cover - a bug in the transformer itself
    node = _balance_chains(node)
    _check_depth(node, path, text)
    return node


def _balance_chains(node: Any) -> Any:
    """Every ``&&``/``||`` chain as a balanced tree (:func:`ast.balance`), so no chain is deep.

    The grammar builds ``a || b || ... || z`` leaning left, one level per
    operator: a generated 10,000-name allow-list would be 10,000 levels for
    every recursive stage after this one. Balanced, it is about 14.
    """
    if isinstance(node, ast.PolicyFile):
        statements = tuple(_map_statement_exprs(s, ast.balance) for s in node.statements)
        if all(a is b for a, b in zip(statements, node.statements, strict=True)):
            return node
        return dataclasses.replace(node, statements=statements)
    return ast.balance(node)


def _map_statement_exprs(stmt: ast.Statement, fn: Any) -> ast.Statement:
    """``stmt`` with ``fn`` applied to its expressions (the ones :func:`_statement_exprs` lists)."""
    changes: dict[str, Any] = {}
    match stmt:
        case ast.Rule(when=w, unless=u, because=b):
            changes = {
                "when": fn(w) if w is not None else None,
                "unless": fn(u) if u is not None else None,
            }
            if b is not None and not b.is_plain:
                changes["because"] = dataclasses.replace(
                    b, parts=tuple(p if isinstance(p, str) else fn(p) for p in b.parts)
                )
        case ast.LimitRule(cost=c, key=k, when=w):
            changes = {
                name: fn(e) if e is not None else None
                for name, e in (("cost", c), ("key", k), ("when", w))
            }
        case ast.FunctionDef(body=body):
            changes = {"body": fn(body)}
        case ast.Assertion(when=w) if w is not None:
            changes = {"when": fn(w)}
        case ast.SessionDecl(key=k):
            changes = {"key": fn(k)}
    if all(getattr(stmt, name) is value for name, value in changes.items()):
        return stmt
    return dataclasses.replace(stmt, **changes)


MAX_TREE_DEPTH = 2 * MAX_DEPTH  # the tree itself, chains included: what recursive stages can take


def _check_depth(node: Any, path: str, text: str) -> None:
    """Reject expressions nested deeper than MAX_DEPTH before any recursive stage.

    Real nesting is counted (a chain of ``&&`` or ``||`` is one level, however
    long); the tree's own height is bounded too, which only many long chains
    nested in each other can reach.
    """
    roots: list[ast.Expr] = []
    if isinstance(node, ast.PolicyFile):
        for stmt in node.statements:
            roots.extend(_statement_exprs(stmt))
    else:
        roots.append(node)
    for root in roots:
        real, tree, deepest = ast.nesting(root)
        if real > MAX_DEPTH or tree > MAX_TREE_DEPTH:
            what = (
                f"it nests more than {MAX_DEPTH} levels"
                if real > MAX_DEPTH
                else f"its chains of && and || nested in each other make it more than "
                f"{MAX_TREE_DEPTH} levels deep"
            )
            raise _fail(
                f"expression too deep: {what}",
                deepest.span if deepest.span.line else root.span,
                "split it into named predicates (def) or simpler rules",
                code="PL005",
                source=text,
            )


def _statement_exprs(stmt: ast.Statement) -> list[ast.Expr]:
    out: list[ast.Expr] = []
    match stmt:
        case ast.Rule(when=w, unless=u, because=b):
            out += [e for e in (w, u) if e is not None]
            if b is not None:
                out += [p for p in b.parts if not isinstance(p, str)]
        case ast.LimitRule(cost=c, key=k, when=w):
            out += [e for e in (c, k, w) if e is not None]
        case ast.FunctionDef(body=body):
            out.append(body)
        case ast.Assertion(when=w):
            out += [w] if w is not None else []
        case ast.SessionDecl(key=k):
            out.append(k)
        case ast.ToolDecl(params=fields) | ast.ShapeDecl(fields=fields):
            out += [f.default for f in fields if f.default is not None]
    return out


# ---------------------------------------------------------------- literals


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}


def unescape(body: str, raw: bool, as_bytes: bool = False) -> str:
    """Decode a CEL string body (quotes removed). Raises ValueError with a reason."""
    if raw:
        return body
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("a string cannot end with a lone backslash")
        esc = body[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc in "xX":
            digits = body[i + 2 : i + 4]
            if len(digits) != 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("\\x must be followed by two hex digits")
            out.append(chr(int(digits, 16)))
            i += 4
        elif esc in "uU":
            width = 4 if esc == "u" else 8
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(f"\\{esc} must be followed by {width} hex digits")
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError(f"\\{esc}{digits} is not a valid Unicode code point")
            out.append(chr(code))
            i += 2 + width
        elif esc in "0123":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits):
                raise ValueError("octal escapes take three digits, like \\101")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape sequence '\\{esc}'")
    return "".join(out)


def _string_value(tok: Token) -> tuple[str, bool]:
    raw_text = tok.value
    is_bytes = raw_text[:1] in "bB"
    if is_bytes:
        raw_text = raw_text[1:]
    raw = raw_text[:1] in "rR"
    if raw:
        raw_text = raw_text[1:]
    quote = 3 if raw_text[:3] in ('"""', "'''") else 1
    return unescape(raw_text[quote:-quote], raw), is_bytes


_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
    "w": 604800 * 10**9,
}


def parse_duration_literal(text: str) -> timedelta:
    """``1h30m`` → timedelta, summed exactly (in nanoseconds, not floats).

    Raises ValueError when the total does not fit a duration (about 2.7 million years).
    """
    import re
    from decimal import Decimal

    total_ns = Decimal(0)
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|s|m|h|d|w)", text):
        total_ns += Decimal(number) * _UNIT_NS[unit]
    micros = int(total_ns / 1000)
    if micros > timedelta.max // timedelta(microseconds=1):
        raise ValueError("duration is too large")
    return timedelta(microseconds=micros)


# ---------------------------------------------------------------- transformer


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """One short method per grammar rule; shapes come from the grammar."""

    def __init__(self, path: str, text: str):
        super().__init__()
        self.path = path
        self.text = text

    def _span(self, meta: Any) -> Span:
        return _meta_span(meta, self.path)

    def _tspan(self, tok: Token) -> Span:
        return _tok_span(tok, self.path)

    def _error(self, message: str, span: Span, hint: str | None = None) -> PolicySyntaxError:
        return _fail(message, span, hint, source=self.text)

    # ---- file and statements

    def start(self, meta: Any, items: list[Any]) -> ast.PolicyFile:
        return ast.PolicyFile(tuple(items), path=self.path, span=self._span(meta))

    def header(self, meta: Any, items: list[Any]) -> ast.Header:
        name_tok, version_tok = items[0], items[1] if len(items) > 1 else None
        name = self._string(name_tok) if name_tok.type == "STRING" else name_tok.value
        if name_tok.type != "STRING" and "*" in name:
            raise self._error("a policy name cannot contain '*'", self._tspan(name_tok))
        version = self._string(version_tok) if version_tok is not None else None
        return ast.Header(name, version, span=self._span(meta))

    def default_decl(self, meta: Any, items: list[Any]) -> ast.DefaultDecl:
        effect, espan = items[0]
        if effect not in ("allow", "deny"):
            raise self._error(f"the default can be 'allow' or 'deny', not '{effect}'", espan)
        return ast.DefaultDecl(effect, span=self._span(meta))

    def timezone_decl(self, meta: Any, items: list[Any]) -> ast.TimezoneDecl:
        return ast.TimezoneDecl(self._string(items[0]), span=self._span(meta))

    def effect(self, meta: Any, items: list[Token]) -> tuple[str, Span]:
        return items[0].value, self._tspan(items[0])

    def tool_decl(self, meta: Any, items: list[Any]) -> ast.ToolDecl:
        name_tok, *fields = items
        if "*" in name_tok.value:
            raise self._error(
                "a declared tool needs a full name; '*' only goes in rule patterns",
                self._tspan(name_tok),
            )
        return ast.ToolDecl(name_tok.value, tuple(fields), span=self._span(meta))

    def shape_decl(self, meta: Any, items: list[Any]) -> ast.ShapeDecl:
        kind_tok, *fields = items
        return ast.ShapeDecl(kind_tok.value, tuple(fields), span=self._span(meta))

    def field(self, meta: Any, items: list[Any]) -> ast.Field:
        secret = False
        if isinstance(items[0], Token) and items[0].type == "SECRET":
            secret = True
            items = items[1:]
        name_tok, (typ, optional, nullable), *rest = items
        name = self._string(name_tok) if name_tok.type == "STRING" else name_tok.value
        default = rest[0] if rest else None
        return ast.Field(
            name,
            typ,
            optional=optional,
            nullable=nullable,
            secret=secret,
            default=default,
            span=self._span(meta),
        )

    def type_expr(self, meta: Any, items: list[Any]) -> tuple[ast.TypeExpr, bool, bool]:
        optional = bool(items) and isinstance(items[-1], Token) and items[-1].type == "OPTIONAL"
        alts = items[:-1] if optional else items
        nullable = False
        named: list[ast.TypeExpr] = []
        literals: list[object] = []
        for alt in alts:
            if isinstance(alt, ast.TypeRef) and alt.name == "null" and not alt.params:
                nullable = True
            elif isinstance(alt, tuple) and alt and alt[0] == "literal":
                literals.append(alt[1])
            else:
                named.append(alt)
        span = self._span(meta)
        if literals and named:
            raise self._error(
                "a type can be a list of literal values (an enum) or one type, not both",
                span,
                'write e.g. "low" | "high", or string',
            )
        if len(named) > 1:
            raise self._error(
                "union types are not supported; only 'T | null' and enums of literals",
                span,
                "use 'dyn' for a value of any type",
            )
        if literals:
            typ: ast.TypeExpr = ast.EnumType(tuple(literals), span=span)
        elif named:
            typ = named[0]
        else:
            raise self._error("'null' alone is not a type", span)
        return typ, optional, nullable

    def named_type(self, meta: Any, items: list[Any]) -> ast.TypeRef:
        name_tok, *params = items
        return ast.TypeRef(
            name_tok.value,
            tuple(
                p[0] if p[1] is False and not p[2] else self._param_type(p, meta) for p in params
            ),
            span=self._span(meta),
        )

    def _param_type(self, p: tuple[ast.TypeExpr, bool, bool], meta: Any) -> ast.TypeExpr:
        typ, optional, nullable = p
        if optional:
            raise self._error(
                "'?' (optional) belongs to fields, not to type parameters",
                self._span(meta),
                "use 'T | null' for elements that may be null",
            )
        if nullable:
            return ast.TypeRef("nullable", (typ,), span=typ.span)
        return typ

    def type_literal(self, meta: Any, items: list[Token]) -> tuple[str, object]:
        neg = items[0].type == "NEG"
        tok = items[-1]
        if tok.type == "STRING":
            return ("literal", self._string(tok))
        value = self._number(tok)
        return ("literal", -value if neg else value)

    def object_type(self, meta: Any, items: list[Any]) -> ast.ObjectType:
        return ast.ObjectType(tuple(items), span=self._span(meta))

    def tool_list(self, meta: Any, items: list[Token]) -> tuple[ast.ToolPattern, ...]:
        return tuple(ast.ToolPattern(t.value, span=self._tspan(t)) for t in items)

    def when_clause(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("when", items[0])

    def unless_clause(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("unless", items[0])

    def because_clause(self, meta: Any, items: list[Token]) -> tuple[str, Any]:
        return ("because", self._message(items[0]))

    def rule_stmt(self, meta: Any, items: list[Any]) -> ast.Rule:
        (effect, _), tools, *clauses = items
        parts = {k: v for c in clauses if c is not None for k, v in [c]}
        return ast.Rule(
            effect,
            tools,
            when=parts.get("when"),
            unless=parts.get("unless"),
            because=parts.get("because"),
            span=self._span(meta),
        )

    def named_stmt(self, meta: Any, items: list[Any]) -> Any:
        name_tok, stmt = items
        name = self._string(name_tok) if name_tok.type == "STRING" else name_tok.value
        if not name.strip():
            raise self._error("a rule name cannot be empty", self._tspan(name_tok))
        from dataclasses import replace

        return replace(stmt, name=name, span=self._span(meta))

    def limit_stmt(self, meta: Any, items: list[Any]) -> ast.LimitRule:
        tools, (amount, cost), window, *opts = items
        span = self._span(meta)
        options: dict[str, Any] = {}
        for key, value in opts:
            if key in options:
                raise self._error(f"'{key}' is given twice in this limit", span)
            options[key] = value
        if window.total_seconds() <= 0:
            raise self._error("a limit window must be longer than zero", span, "e.g. per 1m")
        if amount < 0:
            raise self._error("a limit cannot be negative", span)
        return ast.LimitRule(
            tools,
            amount,
            window,
            cost=cost,
            key=options.get("by"),
            when=options.get("when"),
            on_error=options.get("fail", "deny"),
            span=span,
        )

    def limit_count(self, meta: Any, items: list[Any]) -> tuple[int | float, None]:
        return items[0], None

    def limit_sum(self, meta: Any, items: list[Any]) -> tuple[int | float, ast.Expr]:
        return items[1], items[0]

    def number(self, meta: Any, items: list[Token]) -> int | float:
        return self._number(items[0])

    def window(self, meta: Any, items: list[Token]) -> timedelta:
        span = self._span(meta)
        if len(items) == 2:  # `per 5 minutes`
            count, unit = self._number(items[0]), items[1].value.rstrip("s")
        elif items[0].type == "DURATION":
            try:
                return parse_duration_literal(items[0].value)
            except ValueError as exc:
                raise self._error(str(exc), span) from None
        else:
            count, unit = 1, items[0].value
        if unit not in _WINDOW_WORDS:
            raise self._error(
                f"'{items[-1].value}' is not a time window",
                span,
                "write a duration such as 1m, 1h or 1d, or minute, hour, day",
            )
        try:
            return timedelta(seconds=count * _WINDOW_WORDS[unit])
        except OverflowError:
            raise self._error("the window is too long", span) from None

    def limit_by(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("by", items[0])

    def limit_when(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("when", items[0])

    def limit_fail(self, meta: Any, items: list[Token]) -> tuple[str, str]:
        return ("fail", "allow" if items[0].value == "open" else "deny")

    def breaker_stmt(self, meta: Any, items: list[Any]) -> ast.BreakerDecl:
        tools, count_tok, _in, window, cooldown = items
        span = self._span(meta)
        count = int(self._number(count_tok))
        if count < 1:
            raise self._error("a breaker opens after at least 1 failure", span)
        if cooldown.total_seconds() <= 0:
            raise self._error("a breaker's cool-down must be longer than zero", span)
        return ast.BreakerDecl(tools, count, window, cooldown, span=span)

    def session_decl(self, meta: Any, items: list[Any]) -> ast.SessionDecl:
        key, *opts = items
        span = self._span(meta)
        options: dict[str, Any] = {}
        for name, value in opts:
            if name in options:
                raise self._error(f"'{name}' is given twice in the session declaration", span)
            options[name] = value
        keep = options.get("keep", 100)
        if not 1 <= keep <= 100_000:
            raise self._error("a session keeps between 1 and 100,000 calls", span)
        ttl = options.get("for", timedelta(days=1))
        if ttl.total_seconds() <= 0:
            raise self._error("a session must be kept for longer than zero", span)
        return ast.SessionDecl(key, keep, ttl, span=span)

    def session_keep(self, meta: Any, items: list[Any]) -> tuple[str, int]:
        return ("keep", int(self._number(items[0])))

    def session_ttl(self, meta: Any, items: list[Any]) -> tuple[str, timedelta]:
        return ("for", items[0])

    def def_stmt(self, meta: Any, items: list[Any]) -> ast.FunctionDef:
        name_tok, params, body = items
        return ast.FunctionDef(name_tok.value, tuple(params or ()), body, span=self._span(meta))

    def def_params(self, meta: Any, items: list[Any]) -> list[ast.Param]:
        return items

    def def_param(self, meta: Any, items: list[Any]) -> ast.Param:
        typ = None
        if len(items) > 1 and items[1] is not None:
            typ = self._param_type(items[1], meta)
        return ast.Param(items[0].value, typ, span=self._span(meta))

    def assert_stmt(self, meta: Any, items: list[Any]) -> ast.Assertion:
        quant, (effect, _), tools, *clauses = items
        parts = {k: v for c in clauses if c is not None for k, v in [c]}
        because = parts.get("because")
        text = None
        if because is not None:
            text = "".join(x if isinstance(x, str) else "{...}" for x in because.parts)
            if not because.is_plain:
                raise self._error(
                    "an assertion's message cannot contain {expressions}", because.span
                )
        return ast.Assertion(
            quant.value,
            effect,
            tools,
            when=parts.get("when"),
            name=None,
            because=text,
            span=self._span(meta),
        )

    # ---- expressions

    def conditional(self, meta: Any, items: list[Any]) -> ast.Conditional:
        return ast.Conditional(items[0], items[1], items[2], span=self._span(meta))

    def or_(self, meta: Any, items: list[Any]) -> ast.Binary:
        return ast.Binary("||", items[0], items[1], span=self._span(meta))

    def and_(self, meta: Any, items: list[Any]) -> ast.Binary:
        return ast.Binary("&&", items[0], items[1], span=self._span(meta))

    def binop(self, meta: Any, items: list[Any]) -> ast.Binary:
        return ast.Binary(str(items[1]), items[0], items[2], span=self._span(meta))

    def not_(self, meta: Any, items: list[Any]) -> ast.Unary:
        return ast.Unary("!", items[0], span=self._span(meta))

    def neg(self, meta: Any, items: list[Any]) -> ast.Expr:
        operand = items[0]
        span = self._span(meta)
        if (
            isinstance(operand, ast.Literal_)
            and operand.kind in ("int", "double", "duration")
            and not getattr(operand, "_negated", False)
        ):
            value = -operand.value  # type: ignore[operator]
            if operand.kind == "int" and value < INT64_MIN:
                raise self._error("integer literal is out of the 64-bit range", span)
            return ast.Literal_(value, operand.kind, span=span)
        return ast.Unary("-", operand, span=span)

    def select(self, meta: Any, items: list[Any]) -> ast.Select:
        return ast.Select(items[0], items[1].value, span=self._span(meta))

    def method_call(self, meta: Any, items: list[Any]) -> ast.Expr:
        target, name_tok, args = items
        args = tuple(args or ())
        span = self._span(meta)
        name = name_tok.value
        macro = {
            "all": "all",
            "exists": "exists",
            "exists_one": "exists_one",
            "existsOne": "exists_one",
            "filter": "filter",
            "map": "map",
        }.get(name)
        if macro is not None and args and isinstance(args[0], ast.Ident):
            if macro == "map" and len(args) == 3:
                return ast.Comprehension("map", target, args[0].name, args[2], args[1], span=span)
            if len(args) != 2:
                raise self._error(
                    f"'{name}' takes a variable and an expression, like xs.{name}(x, x > 0)", span
                )
            return ast.Comprehension(macro, target, args[0].name, args[1], span=span)  # type: ignore[arg-type]
        return ast.Call(name, args, target, span=span)

    def index(self, meta: Any, items: list[Any]) -> ast.Index:
        return ast.Index(items[0], items[1], span=self._span(meta))

    def ident(self, meta: Any, items: list[Token]) -> ast.Expr:
        name = items[0].value
        span = self._span(meta)
        if name == "true":
            return ast.Literal_(True, "bool", span=span)
        if name == "false":
            return ast.Literal_(False, "bool", span=span)
        if name == "null":
            return ast.Literal_(None, "null", span=span)
        return ast.Ident(name, span=span)

    def call(self, meta: Any, items: list[Any]) -> ast.Expr:
        name_tok, args = items
        args = tuple(args or ())
        span = self._span(meta)
        if name_tok.value == "has":
            if len(args) != 1 or not isinstance(args[0], ast.Select):
                raise self._error("has() takes one field selection, like has(args.memo)", span)
            return ast.Has(args[0].operand, args[0].field, span=span)
        return ast.Call(name_tok.value, args, None, span=span)

    def args(self, meta: Any, items: list[Any]) -> list[Any]:
        return items

    def items(self, meta: Any, items: list[Any]) -> list[Any]:
        return items[0] + [items[1]] if len(items) == 2 else items

    def map_entries(self, meta: Any, items: list[Any]) -> list[Any]:
        return items[0] + [items[1]] if len(items) == 2 else items

    def map_entry(self, meta: Any, items: list[Any]) -> tuple[Any, Any]:
        return items[0], items[1]

    def empty_list(self, meta: Any, items: list[Any]) -> ast.ListExpr:
        return ast.ListExpr((), span=self._span(meta))

    def list_(self, meta: Any, items: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(tuple(items[0]), span=self._span(meta))

    def empty_map(self, meta: Any, items: list[Any]) -> ast.MapExpr:
        return ast.MapExpr((), span=self._span(meta))

    def map_(self, meta: Any, items: list[Any]) -> ast.MapExpr:
        return ast.MapExpr(tuple(items[0]), span=self._span(meta))

    def int_lit(self, meta: Any, items: list[Token]) -> ast.Literal_:
        return ast.Literal_(self._number(items[0]), "int", span=self._span(meta))

    def double_lit(self, meta: Any, items: list[Token]) -> ast.Literal_:
        return ast.Literal_(self._number(items[0]), "double", span=self._span(meta))

    def uint_lit(self, meta: Any, items: list[Token]) -> ast.Literal_:
        raise self._error(
            "unsigned integers (the 'u' suffix) are not supported",
            self._span(meta),
            "write a plain integer",
        )

    def string_lit(self, meta: Any, items: list[Token]) -> ast.Literal_:
        return ast.Literal_(self._string(items[0]), "string", span=self._span(meta))

    def bytes_lit(self, meta: Any, items: list[Token]) -> ast.Literal_:
        value, _ = self._decode(items[0])
        try:
            data = value.encode("latin-1") if all(ord(c) < 256 for c in value) else value.encode()
        except UnicodeEncodeError:  # pragma: no cover
            data = value.encode("utf-8", "surrogatepass")
        return ast.Literal_(data, "bytes", span=self._span(meta))

    def duration_lit(self, meta: Any, items: list[Token]) -> ast.Literal_:
        try:
            value = parse_duration_literal(items[0].value)
        except ValueError as exc:
            raise self._error(str(exc), self._span(meta)) from None
        return ast.Literal_(value, "duration", span=self._span(meta))

    # ---- helpers

    def _decode(self, tok: Token) -> tuple[str, bool]:
        if len(tok.value) > MAX_STRING_LITERAL:
            raise self._error(
                f"string literal is too long (the limit is {MAX_STRING_LITERAL:,} "
                "characters); put large values in a data file",
                self._tspan(tok),
            )
        try:
            return _string_value(tok)
        except ValueError as exc:
            raise self._error(f"bad string literal: {exc}", self._tspan(tok)) from None

    def _string(self, tok: Token) -> str:
        value, is_bytes = self._decode(tok)
        if is_bytes:
            raise self._error("expected a string, not bytes", self._tspan(tok))
        return value

    def _number(self, tok: Token) -> int | float:
        text = tok.value
        if tok.type == "INT":
            digits = text[2:] if text[:2] in ("0x", "0X") else text
            if len(digits) > 20:
                raise self._error("integer literal is out of the 64-bit range", self._tspan(tok))
            value = int(text, 0) if text[:2] in ("0x", "0X") else int(text)
            if value > INT64_MAX + 1:  # +1: -9223372036854775808 is negated by neg()
                raise self._error("integer literal is out of the 64-bit range", self._tspan(tok))
            return value
        if len(text) > 400:
            raise self._error("number literal is too long", self._tspan(tok))
        value_f = float(text)
        if value_f in (float("inf"), float("-inf")):
            raise self._error("number literal is out of range", self._tspan(tok))
        return value_f

    def _message(self, tok: Token) -> ast.Message:
        """Split ``because "amount {args.amount} too high"`` into text and expressions."""
        text = self._string(tok)
        span = self._tspan(tok)
        parts: list[str | ast.Expr] = []
        buf: list[str] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "{" and text[i + 1 : i + 2] == "{":
                buf.append("{")
                i += 2
            elif ch == "}" and text[i + 1 : i + 2] == "}":
                buf.append("}")
                i += 2
            elif ch == "{":
                end = _closing_brace(text, i)
                if end < 0:
                    raise self._error(
                        "a '{' in a because message is not closed",
                        span,
                        "write '{{' for a literal brace",
                    )
                source = text[i + 1 : end]
                try:
                    expr = parse_expr(source, self.path)
                except PolicySyntaxError as exc:
                    raise _fail(
                        f"bad expression {{{source}}} in because message: "
                        f"{exc.diagnostics[0].message}",
                        span,
                        code=exc.diagnostics[0].code,
                        source=self.text,
                    ) from None
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(_respan(expr, span))
                i = end + 1
            else:
                buf.append(ch)
                i += 1
        if buf:
            parts.append("".join(buf))
        return ast.Message(tuple(parts), span=span)


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    quote = ""
    escaped = False
    for j in range(start, len(text)):
        ch = text[j]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _respan(expr: ast.Expr, span: Span) -> ast.Expr:
    """Template expressions point at their message (their own offsets are local)."""
    from dataclasses import fields, replace

    changes: dict[str, Any] = {"span": span}
    for f in fields(expr):
        value = getattr(expr, f.name)
        if isinstance(value, tuple) and value and not isinstance(value[0], str | int | float):
            items: list[Any] = []
            for v in value:
                if isinstance(v, tuple):
                    items.append(tuple(_respan(x, span) for x in v))
                elif hasattr(v, "span") and not isinstance(v, ast.ToolPattern):
                    items.append(_respan(v, span))
                else:
                    items.append(v)
            changes[f.name] = tuple(items)
        elif hasattr(value, "span") and f.name != "span":
            changes[f.name] = _respan(value, span)
    return replace(expr, **changes)
