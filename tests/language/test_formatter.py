"""Tests for ``policylang.language.formatter``.

Three layers:

* golden pairs in ``format_cases/`` (``NAME.policy`` → ``NAME.expected``); set
  ``POLICYLANG_UPDATE_GOLDENS=1`` to rewrite the ``.expected`` files;
* unit tests for literals, precedence and layout decisions;
* Hypothesis properties over generated ASTs and over messy texts printed from
  them (fully parenthesised, random white space, comments between tokens):
  ``parse(format_source(src)) == parse(src)``, formatting is idempotent, and no
  comment is lost.

The AST generators only produce shapes the parser can produce. In particular
there is no ``Unary("-", Literal_(int|double|duration))``: the parser folds
``-5`` (and ``-(5)``) into ``Literal_(-5)``, so such a node has no text of its
own. Message parts alternate (no two adjacent strings, no empty string), macro
names are never used for plain method calls, and ``true``/``false``/``null``/
``has`` are never identifiers — again because the parser never builds those.
"""

from __future__ import annotations

import contextlib
import os
import random
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang.errors import PolicySyntaxError
from policylang.language import ast
from policylang.language.formatter import (
    FormatError,
    format_duration,
    format_expr,
    format_file,
    format_message,
    format_source,
    format_type,
)
from policylang.language.parser import parse, parse_expr

CASES = Path(__file__).parent / "format_cases"
GOLDEN = sorted(CASES.glob("*.policy"))
UPDATE = os.environ.get("POLICYLANG_UPDATE_GOLDENS") == "1"

# Modest budget: the default 100 examples, no deadline (parsing is not instant).
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def comment_texts(text: str) -> list[str]:
    return sorted(c.text.rstrip() for c in parse(text).comments)


def assert_round_trip(src: str) -> str:
    out = format_source(src)
    assert parse(out) == parse(src)
    assert format_source(out) == out
    assert comment_texts(out) == comment_texts(src)
    return out


# ---------------------------------------------------------------- golden pairs


def test_there_are_enough_golden_cases() -> None:
    assert len(GOLDEN) >= 8
    for case in GOLDEN:
        assert case.with_suffix(".expected").exists(), case.name


@pytest.mark.parametrize("case", GOLDEN, ids=lambda p: p.stem)
def test_golden(case: Path) -> None:
    src = case.read_text("utf-8")
    out = format_source(src, str(case))
    expected_path = case.with_suffix(".expected")
    if UPDATE:
        expected_path.write_text(out, "utf-8")
    assert out == expected_path.read_text("utf-8")


@pytest.mark.parametrize("case", GOLDEN, ids=lambda p: p.stem)
def test_golden_round_trips(case: Path) -> None:
    src = case.read_text("utf-8")
    out = assert_round_trip(src)
    for line in out.splitlines():
        assert line == line.rstrip()
    assert "\n\n\n" not in out
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n"))


@pytest.mark.parametrize("case", GOLDEN, ids=lambda p: p.stem)
def test_golden_expected_is_canonical(case: Path) -> None:
    expected = case.with_suffix(".expected").read_text("utf-8")
    assert format_source(expected) == expected


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("src", "want"),
    [
        ("(a - b) - c", "a - b - c"),
        ("a - (b - c)", "a - (b - c)"),
        ("a + (b + c)", "a + (b + c)"),
        ("(a * b) + c", "a * b + c"),
        ("a * (b + c)", "a * (b + c)"),
        ("(a || b) && c", "(a || b) && c"),
        ("a || (b && c)", "a || b && c"),
        ("(a && b) || c", "a && b || c"),
        ("!(a && b)", "!(a && b)"),
        ("-(a + b)", "-(a + b)"),
        ("(!a).b", "(!a).b"),
        ("(a.b).c", "a.b.c"),
        ("(a < b) < c", "a < b < c"),
        ("a < (b < c)", "a < (b < c)"),
        ("(a in b) == c", "a in b == c"),
        ("(a ? b : c) ? d : e", "(a ? b : c) ? d : e"),
        ("a ? (b ? c : d) : (e ? f : g)", "a ? (b ? c : d) : e ? f : g"),
        ("(a || b) ? c : d", "a || b ? c : d"),
        ("(-5).abs()", "(-5).abs()"),
        ("-(5)", "-5"),
        ("-5.abs()", "-5.abs()"),
        ("(-1.5).x", "(-1.5).x"),
        ("(-1h)[0]", "(-1h)[0]"),
        ("a - -5", "a - -5"),
        ("{(a ? b : c): d}", "{(a ? b : c): d}"),
        ("[(a ? b : c)]", "[a ? b : c]"),
        ("f((a), b)", "f(a, b)"),
        ("has((a + b).c)", "has((a + b).c)"),
        ("xs.existsOne(x, x)", "xs.exists_one(x, x)"),
        ("xs.map(x, x > 1, x + 1)", "xs.map(x, x > 1, x + 1)"),
        ("(a + b).exists(x, x)", "(a + b).exists(x, x)"),
    ],
)
def test_minimal_parentheses(src: str, want: str) -> None:
    assert format_expr(parse_expr(src)) == want
    assert parse_expr(want) == parse_expr(src)


@pytest.mark.parametrize(
    ("value", "kind", "want"),
    [
        (5, "int", "5"),
        (-5, "int", "-5"),
        (-(2**63), "int", "-9223372036854775808"),
        (1.0, "double", "1.0"),
        (1e100, "double", "1e+100"),
        (1.5e-7, "double", "1.5e-07"),
        (-2.5, "double", "-2.5"),
        (True, "bool", "true"),
        (False, "bool", "false"),
        (None, "null", "null"),
        ("", "string", '""'),
        ('a"b\\c', "string", '"a\\"b\\\\c"'),
        ("line\nnext\ttab\rcr", "string", '"line\\nnext\\ttab\\rcr"'),
        ("\x00\x1b\x7f", "string", '"\\x00\\x1b\\x7f"'),
        ("\u2028\u00a0", "string", '"\\u2028\\xa0"'),
        ("\U000e0001", "string", '"\\U000e0001"'),
        ("ü ✓ 😀 {x}", "string", '"ü ✓ 😀 {x}"'),
        (b"", "bytes", 'b""'),
        (b'a"\\\x00\xff\n', "bytes", 'b"a\\"\\\\\\x00\\xff\\n"'),
        (timedelta(0), "duration", "0s"),
        (timedelta(seconds=90), "duration", "1m30s"),
        (timedelta(hours=1, minutes=30), "duration", "1h30m"),
        (timedelta(milliseconds=500), "duration", "500ms"),
        (timedelta(microseconds=1500), "duration", "1ms500us"),
        (timedelta(hours=-1), "duration", "-1h"),
        (timedelta(days=14), "duration", "2w"),
        (timedelta(days=8), "duration", "8d"),
    ],
)
def test_literals(value: object, kind: str, want: str) -> None:
    lit = ast.Literal_(value, kind)  # type: ignore[arg-type]
    assert format_expr(lit) == want
    back = parse_expr(want)
    assert back == lit
    assert isinstance(back, ast.Literal_) and type(back.value) is type(lit.value)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_doubles_are_refused(value: float) -> None:
    with pytest.raises(FormatError):
        format_expr(ast.Literal_(value, "double"))


@pytest.mark.parametrize(
    ("seconds", "want"),
    [
        (60, "1m"),
        (3600, "1h"),
        (86400, "1d"),
        (90, "1m30s"),
        (604800, "1w"),
        (691200, "8d"),
        (5400, "1h30m"),
        (1.5, "1s500ms"),
        (90061.001001, "1d1h1m1s1ms1us"),
    ],
)
def test_windows(seconds: float, want: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == want
    src = f"limit a to 1 per {want}"
    stmt = parse(src).statements[0]
    assert isinstance(stmt, ast.LimitRule)
    assert stmt.window == timedelta(seconds=seconds)
    assert (
        format_source(f"limit a to 1 per {seconds} seconds" if seconds == int(seconds) else src)
        == src + "\n"
    )


def test_fail_open_only_when_allowing() -> None:
    assert format_source("limit a to 1 per 1m fail closed") == "limit a to 1 per 1m\n"
    assert format_source("limit a to 1 per 1m fail open") == "limit a to 1 per 1m fail open\n"


# ---------------------------------------------------------------- messages and types


@pytest.mark.parametrize(
    "template",
    [
        '"plain"',
        '"{a}"',
        '"{{}}"',
        '"x {a} y {{z}} {b.c}"',
        '"{ {\\"k\\": \\"}\\"}[\\"k\\"] }"',
        '"{\'a\\"b\' + \\"c\'d\\"}"',
        '"{[1, 2].size()}}}{{"',
        '"{x}{y}"',
    ],
)
def test_messages_round_trip(template: str) -> None:
    rule = parse(f"deny a because {template}").statements[0]
    assert isinstance(rule, ast.Rule) and rule.because is not None
    printed = format_message(rule.because)
    again = parse(f"deny a because {printed}").statements[0]
    assert again == rule


def test_message_with_map_first_is_parenthesised() -> None:
    msg = ast.Message(
        (
            ast.Index(
                ast.MapExpr(((ast.Literal_(1, "int"), ast.Literal_(2, "int")),)),
                ast.Literal_(1, "int"),
            ),
        )
    )
    assert format_message(msg) == '"{({1: 2}[1])}"'


@pytest.mark.parametrize(
    ("src", "want"),
    [
        ("string", "string"),
        ("list<string|null>", "list<string | null>"),
        ("map<string,int>", "map<string, int>"),
        ('"a"|"b"', '"a" | "b"'),
        ("-1|2.5", "-1 | 2.5"),
        ("{a: int, b: string?}", "{ a: int, b: string? }"),
        ("{}", "{}"),
        ("nullable<string>", "nullable<string>"),
        ('list<"a" | "b" | null>', 'list<"a" | "b" | null>'),
    ],
)
def test_types(src: str, want: str) -> None:
    tool = parse(f"tool t {{ f: {src} }}").statements[0]
    assert isinstance(tool, ast.ToolDecl)
    assert format_type(tool.params[0].type) == want


# ---------------------------------------------------------------- layout and comments


def test_short_rule_on_one_line_long_rule_broken() -> None:
    assert format_source("deny  a\n  when x\n  because 'm'") == 'deny a when x because "m"\n'
    cond = " && ".join(f"args.field_{i} > {i}" for i in range(8))
    out = format_source(f"deny a when {cond} because 'm'")
    assert out == f'deny a\n    when {cond}\n    because "m"\n'


def test_every_line_fits_when_expressions_do() -> None:
    out = format_source(CASES.joinpath("02_long_rules.policy").read_text("utf-8"))
    for line in out.splitlines():
        assert len(line) <= 100 or line.startswith("    when ")


def test_trailing_comment_stays_on_its_line() -> None:
    assert format_source("deny a when x   # why\nallow b") == "deny a when x  # why\nallow b\n"


def test_comment_inside_a_statement_moves_before_it() -> None:
    src = "deny a\n  # inner\n  when x\n"
    assert format_source(src) == "# inner\ndeny a when x\n"


def test_comments_inside_blocks_stay_with_fields() -> None:
    src = "tool t { # opener\n  # about a\n  a: int # a!\n\n  b: {x: int, # in b\n y: int}\n  # closing\n}  # after\n"
    assert format_source(src) == (
        "tool t {  # opener\n"
        "    # about a\n"
        "    a: int  # a!\n"
        "\n"
        "    # in b\n"
        "    b: { x: int, y: int }\n"
        "    # closing\n"
        "}  # after\n"
    )


def test_empty_block_with_a_comment_is_not_collapsed() -> None:
    assert format_source("principal {\n# none yet\n}") == "principal {\n    # none yet\n}\n"
    assert format_source("principal { }") == "principal {}\n"


def test_a_default_followed_by_a_field_ends_in_a_comma() -> None:
    out = format_source("tool t { a: int = 1, in: int, b: int = 2, principal: int, c: int = 3 }")
    assert out == (
        "tool t {\n    a: int = 1,\n    in: int\n    b: int = 2,\n    principal: int\n"
        "    c: int = 3\n}\n"
    )


def test_empty_file() -> None:
    assert format_source("") == ""
    assert format_source("\n\n   \n") == ""


def test_format_file_without_spans_puts_comments_last() -> None:
    pf = ast.PolicyFile(
        (ast.Rule("deny", (ast.ToolPattern("a"),)),), comments=(ast.Comment("# note"),)
    )
    assert format_file(pf) == "deny a\n# note\n"


def test_syntax_errors_propagate() -> None:
    with pytest.raises(PolicySyntaxError):
        format_source("deny a when (")


# ---------------------------------------------------------------- Hypothesis: ASTs

KEYWORDS = {
    "true",
    "false",
    "null",
    "in",
    "has",
    "allow",
    "deny",
    "confirm",
    "when",
    "unless",
    "because",
    "limit",
    "to",
    "per",
    "by",
    "fail",
    "open",
    "closed",
    "sum",
    "rule",
    "def",
    "assert",
    "always",
    "never",
    "policy",
    "version",
    "default",
    "timezone",
    "tool",
}
MACROS = {"all", "exists", "exists_one", "existsOne", "filter", "map"}
SAFE_NAMES = ["args", "principal", "context", "data", "now", "x", "y", "_", "a1", "camelCase"]

idents = st.one_of(
    st.sampled_from(SAFE_NAMES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
        lambda s: s not in KEYWORDS and s != "nullable" and s not in MACROS
    ),
)
# After `.` any identifier is a field name, keywords included.
field_names = st.one_of(idents, st.sampled_from(["in", "to", "when", "true", "null", "map"]))
method_names = idents.filter(lambda s: s not in MACROS)
call_names = idents.filter(lambda s: s != "has")

TRICKY = [
    "",
    '"',
    "'",
    "\\",
    "\\n",
    "\n",
    "\t",
    "{",
    "}",
    "{{",
    "}}",
    "{x}",
    "#",
    "'\"",
    '"""',
    "\x00",
    "\x7f",
    "\u00a0",
    "\u2028",
    "é",
    "😀",
    "\U000e0001",
    "}{",
]
texts = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.lists(st.sampled_from(TRICKY), max_size=4).map("".join),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
durations = st.integers(-(10**12), 10**12).map(lambda us: timedelta(microseconds=us))

literals = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(lambda v: ast.Literal_(v, "int")),
    finite.map(lambda v: ast.Literal_(v, "double")),
    texts.map(lambda v: ast.Literal_(v, "string")),
    st.binary(max_size=8).map(lambda v: ast.Literal_(v, "bytes")),
    st.booleans().map(lambda v: ast.Literal_(v, "bool")),
    st.just(ast.Literal_(None, "null")),
    durations.map(lambda v: ast.Literal_(v, "duration")),
)
BINARY_OPS = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in", "&&", "||"]


def _folds(e: ast.Expr) -> bool:
    """``-e`` would be read back as a negative literal, not as ``Unary``."""
    return isinstance(e, ast.Literal_) and e.kind in ("int", "double", "duration")


def _extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    args = st.lists(children, max_size=3).map(tuple)
    return st.one_of(
        st.builds(ast.Select, children, field_names),
        st.builds(ast.Has, children, field_names),
        st.builds(ast.Index, children, children),
        st.builds(ast.Call, call_names, args),
        st.builds(ast.Call, method_names, args, children),
        st.builds(ast.Unary, st.just("!"), children),
        st.builds(ast.Unary, st.just("-"), children.filter(lambda e: not _folds(e))),
        st.builds(ast.Binary, st.sampled_from(BINARY_OPS), children, children),
        st.builds(ast.Conditional, children, children, children),
        st.builds(ast.ListExpr, args),
        st.builds(ast.MapExpr, st.lists(st.tuples(children, children), max_size=2).map(tuple)),
        st.builds(
            ast.Comprehension,
            st.sampled_from(["all", "exists", "exists_one", "filter", "map"]),
            children,
            idents,
            children,
        ),
        st.builds(ast.Comprehension, st.just("map"), children, idents, children, children),
    )


exprs: st.SearchStrategy[ast.Expr] = st.recursive(
    st.one_of(literals, idents.map(ast.Ident)), _extend, max_leaves=10
)


def _normalise_parts(parts: list[str | ast.Expr]) -> tuple[str | ast.Expr, ...]:
    out: list[str | ast.Expr] = []
    for p in parts:
        if isinstance(p, str):
            if not p:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += p
                continue
        out.append(p)
    return tuple(out)


messages = st.lists(st.one_of(texts, exprs), max_size=4).map(
    lambda parts: ast.Message(_normalise_parts(parts))
)

int64 = st.integers(-(2**63), 2**63 - 1)
enum_values = st.one_of(texts, int64, finite)


def _types(depth: int) -> st.SearchStrategy[ast.TypeExpr]:
    names = idents.filter(lambda s: s != "null")
    if depth <= 0:
        return st.one_of(
            st.builds(ast.TypeRef, names),
            st.lists(enum_values, min_size=1, max_size=3).map(lambda v: ast.EnumType(tuple(v))),
        )
    inner = _types(depth - 1)
    param = st.one_of(inner, inner.map(lambda t: ast.TypeRef("nullable", (t,))))
    return st.one_of(
        inner,
        st.builds(ast.TypeRef, names, st.lists(param, min_size=1, max_size=2).map(tuple)),
        st.lists(_fields(depth - 1), max_size=2).map(lambda fs: ast.ObjectType(tuple(fs))),
    )


def _fields(depth: int) -> st.SearchStrategy[ast.Field]:
    return st.builds(
        ast.Field,
        st.one_of(field_names, texts),
        _types(depth),
        optional=st.booleans(),
        nullable=st.booleans(),
        secret=st.booleans(),
        default=st.one_of(st.none(), exprs),
    )


fields = _fields(1)
# A statement keyword cannot be the first tool of a rule (`allow deny` does not parse:
# after an effect the LALR state also expects the next statement), so keep them out.
STATEMENT_KEYWORDS = {
    "allow",
    "deny",
    "confirm",
    "policy",
    "default",
    "timezone",
    "tool",
    "principal",
    "context",
    "rule",
    "limit",
    "def",
    "assert",
}
tool_names = st.one_of(
    st.sampled_from(["payments.send", "email-x.send", "a", "when", "to", "in", "unless"]),
    st.from_regex(r"[a-z_][a-z0-9_\-]{0,5}(\.[a-z0-9_\-]{1,5}){0,2}", fullmatch=True),
).filter(lambda s: s not in STATEMENT_KEYWORDS)
tool_patterns = st.one_of(
    tool_names, st.sampled_from(["*", "payments.*", "*.delete_*", "a*b.c-*"])
).map(ast.ToolPattern)
tool_lists = st.lists(tool_patterns, min_size=1, max_size=3).map(tuple)
effects = st.sampled_from(["allow", "deny", "confirm"])
rule_names = st.one_of(st.none(), idents, texts.filter(lambda s: s.strip() != ""))
opt_expr = st.one_of(st.none(), exprs)
amounts = st.one_of(st.integers(0, 10**9), st.floats(0, 1e300, allow_nan=False))
windows = st.integers(1, 10**12).map(lambda us: timedelta(microseconds=us))

statements: st.SearchStrategy[ast.Statement] = st.one_of(
    st.builds(
        ast.Header,
        st.one_of(tool_names, texts, st.sampled_from(sorted(KEYWORDS))),
        st.one_of(st.none(), texts),
    ),
    st.builds(ast.DefaultDecl, st.sampled_from(["allow", "deny"])),
    st.builds(ast.TimezoneDecl, texts),
    st.builds(
        ast.ToolDecl,
        tool_names.filter(lambda s: "*" not in s),
        st.lists(fields, max_size=3).map(tuple),
    ),
    st.builds(
        ast.ShapeDecl,
        st.sampled_from(["principal", "context"]),
        st.lists(fields, max_size=3).map(tuple),
    ),
    st.builds(
        ast.Rule,
        effects,
        tool_lists,
        when=opt_expr,
        unless=opt_expr,
        because=st.one_of(st.none(), messages),
        name=rule_names,
    ),
    st.builds(
        ast.LimitRule,
        tool_lists,
        amounts,
        windows,
        cost=opt_expr,
        key=opt_expr,
        when=opt_expr,
        name=rule_names,
        on_error=st.sampled_from(["deny", "allow"]),
    ),
    st.builds(
        ast.FunctionDef,
        idents,
        st.lists(st.builds(ast.Param, idents, st.one_of(st.none(), _types(1))), max_size=3).map(
            tuple
        ),
        exprs,
    ),
    st.builds(
        ast.Assertion,
        st.sampled_from(["always", "never"]),
        effects,
        tool_lists,
        when=opt_expr,
        name=rule_names,
    ),
)
files = st.lists(statements, min_size=1, max_size=5).map(lambda stmts: ast.PolicyFile(tuple(stmts)))


@PROPERTY
@given(exprs)
def test_expressions_round_trip(e: ast.Expr) -> None:
    text = format_expr(e)
    assert parse_expr(text) == e
    assert format_expr(parse_expr(text)) == text


@PROPERTY
@given(files)
def test_files_round_trip(pf: ast.PolicyFile) -> None:
    text = format_file(pf)
    assert parse(text) == pf
    assert format_source(text) == text


# ---- minimal parentheses: removing any pair the formatter wrote changes the meaning

_op_leaves = st.one_of(
    idents.map(ast.Ident), st.integers(-9, 9).map(lambda v: ast.Literal_(v, "int"))
)


def _op_extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        st.builds(ast.Binary, st.sampled_from(BINARY_OPS), children, children),
        st.builds(ast.Unary, st.sampled_from(["!", "-"]), children.filter(lambda e: not _folds(e))),
        st.builds(ast.Conditional, children, children, children),
        st.builds(ast.Select, children, idents),
        st.builds(ast.Index, children, children),
    )


@PROPERTY
@given(st.recursive(_op_leaves, _op_extend, max_leaves=8))
def test_parentheses_are_minimal(e: ast.Expr) -> None:
    text = format_expr(e)
    assert parse_expr(text) == e
    stack: list[int] = []
    pairs: list[tuple[int, int]] = []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            pairs.append((stack.pop(), i))
    for start, end in pairs:
        stripped = text[:start] + " " + text[start + 1 : end] + " " + text[end + 1 :]
        with contextlib.suppress(PolicySyntaxError):  # not parsing at all is fine too
            assert parse_expr(stripped) != e, f"needless parentheses in {text!r}"


# ---------------------------------------------------------------- Hypothesis: messy texts


class Messy:
    """Prints an AST as valid but untidy text: every sub-expression in parentheses,
    random white space and ``# cN`` comments between tokens, clause order shuffled
    where the grammar allows it, alternative spellings (``existsOne``, ``fail closed``,
    ``per 90 seconds``, quoted names). Independent of the formatter's layout code."""

    SEPARATORS = [" ", "  ", "\n", "\t", "\n    ", None]  # None: a comment

    def __init__(self, rnd: random.Random):
        self.rnd = rnd
        self.n = 0

    def sep(self, between_statements: bool = False) -> str:
        choice = self.rnd.choice(
            self.SEPARATORS + (["\n\n", "\n\n\n"] if between_statements else [])
        )
        if choice is None:
            self.n += 1
            return (
                f"{self.rnd.choice([' ', '', '   '])}# c{self.n:04d} {self.rnd.choice(TRICKY)!r}\n"
            )
        return choice

    def join(self, tokens: list[str]) -> str:
        out = [tokens[0]]
        for tok in tokens[1:]:
            out.append(self.sep())
            out.append(tok)
        return "".join(out)

    def expr(self, e: ast.Expr) -> list[str]:
        p = self.paren
        match e:
            case ast.Literal_() | ast.Ident():
                return [format_expr(e)]
            case ast.Select(operand=o, field=f):
                return [*p(o), ".", f]
            case ast.Has(operand=o, field=f):
                return ["has", "(", *p(o), ".", f, ")"]
            case ast.Index(operand=o, index=i):
                return [*p(o), "[", *self.expr(i), "]"]
            case ast.Call(function=fn, args=args, target=None):
                return [fn, "(", *self.commas(args), ")"]
            case ast.Call(function=fn, args=args, target=t):
                assert t is not None
                return [*p(t), ".", fn, "(", *self.commas(args), ")"]
            case ast.Unary(op=op, operand=o):
                return [op, *p(o)]
            case ast.Binary(op=op, left=left, right=right):
                return [*p(left), op, *p(right)]
            case ast.Conditional(cond=c, then=t, otherwise=o):
                return [*p(c), "?", *p(t), ":", *p(o)]
            case ast.ListExpr(items=items):
                trailing = [","] if items and self.rnd.random() < 0.5 else []
                return ["[", *self.commas(items), *trailing, "]"]
            case ast.MapExpr(entries=entries):
                toks: list[str] = ["{"]
                for j, (k, v) in enumerate(entries):
                    toks += ([","] if j else []) + [*p(k), ":", *p(v)]
                return toks + ["}"]
            case ast.Comprehension(kind=kind, target=t, var=var, body=b, condition=c):
                name = "existsOne" if kind == "exists_one" and self.rnd.random() < 0.5 else kind
                cond = [*p(c), ","] if c is not None else []
                return [*p(t), ".", name, "(", var, ",", *cond, *p(b), ")"]
        raise AssertionError(e)

    def paren(self, e: ast.Expr) -> list[str]:
        return ["(", *self.expr(e), ")"]

    def commas(self, items: tuple[ast.Expr, ...]) -> list[str]:
        toks: list[str] = []
        for j, item in enumerate(items):
            toks += ([","] if j else []) + self.expr(item)
        return toks

    def fields(self, fs: tuple[ast.Field, ...]) -> list[str]:
        toks: list[str] = []
        for j, f in enumerate(fs):
            toks += ["@secret"] * f.secret + [
                format_expr(ast.Literal_(f.name, "string")),
                ":",
                format_type(f.type),
            ]
            toks += ["|", "null"] * f.nullable + ["?"] * f.optional
            if f.default is not None:
                toks += ["=", *self.expr(f.default)]
            needs_comma = f.default is not None and j + 1 < len(fs)
            if needs_comma or self.rnd.random() < 0.3:
                toks.append(",")
        return toks

    def name(self, name: str | None) -> list[str]:
        return [] if name is None else ["rule", format_expr(ast.Literal_(name, "string")), ":"]

    def tools(self, tools: tuple[ast.ToolPattern, ...]) -> list[str]:
        return self.commas_raw([t.pattern for t in tools])

    @staticmethod
    def commas_raw(items: list[str]) -> list[str]:
        toks: list[str] = []
        for j, item in enumerate(items):
            toks += ([","] if j else []) + [item]
        return toks

    def statement(self, s: ast.Statement) -> list[str]:
        q = lambda text: format_expr(ast.Literal_(text, "string"))  # noqa: E731
        match s:
            case ast.Header(name=name, version=version):
                return ["policy", q(name)] + (
                    ["version", q(version)] if version is not None else []
                )
            case ast.DefaultDecl(effect=effect):
                return ["default", effect]
            case ast.TimezoneDecl(zone=zone):
                return ["timezone", q(zone)]
            case ast.ToolDecl(name=name, params=fs):
                return ["tool", name, "{", *self.fields(fs), "}"]
            case ast.ShapeDecl(kind=kind, fields=fs):
                return [kind, "{", *self.fields(fs), "}"]
            case ast.Rule():
                toks = [*self.name(s.name), s.effect, *self.tools(s.tools)]
                if s.when is not None:
                    toks += ["when", *self.expr(s.when)]
                if s.unless is not None:
                    toks += ["unless", *self.expr(s.unless)]
                if s.because is not None:
                    toks += ["because", format_message(s.because)]
                return toks
            case ast.LimitRule():
                amount = format_expr(
                    ast.Literal_(s.amount, "int" if isinstance(s.amount, int) else "double")
                )
                cost = ["sum", "(", *self.expr(s.cost), ")"] if s.cost is not None else []
                seconds = s.window.total_seconds()
                window = (
                    [str(int(seconds)), "seconds"]
                    if seconds == int(seconds) and self.rnd.random() < 0.5
                    else [format_duration(s.window)]
                )
                options: list[list[str]] = []
                if s.key is not None:
                    options.append(["by", *self.expr(s.key)])
                if s.when is not None:
                    options.append(["when", *self.expr(s.when)])
                if s.on_error == "allow":
                    options.append(["fail", "open"])
                elif self.rnd.random() < 0.3:
                    options.append(["fail", "closed"])
                self.rnd.shuffle(options)
                return [
                    *self.name(s.name),
                    "limit",
                    *self.tools(s.tools),
                    "to",
                    *cost,
                    amount,
                    "per",
                    *window,
                    *(t for o in options for t in o),
                ]
            case ast.FunctionDef(name=name, params=params, body=body):
                ptoks: list[str] = []
                for j, prm in enumerate(params):
                    ptoks += ([","] if j else []) + [prm.name]
                    if prm.type is not None:
                        ptoks += [":", format_type(prm.type)]
                return ["def", name, "(", *ptoks, ")", ":", *self.expr(body)]
            case ast.Assertion():
                toks = [*self.name(s.name), "assert", s.quantifier, s.effect, *self.tools(s.tools)]
                if s.when is not None:
                    toks += ["when", *self.expr(s.when)]
                return toks
        raise AssertionError(s)

    def file(self, pf: ast.PolicyFile) -> str:
        parts = [self.sep(between_statements=True)]
        for s in pf.statements:
            parts.append(self.join(self.statement(s)))
            parts.append(self.sep(between_statements=True))
        return "".join(parts)


@PROPERTY
@given(files, st.randoms(use_true_random=False))
def test_messy_texts_round_trip(pf: ast.PolicyFile, rnd: random.Random) -> None:
    src = Messy(rnd).file(pf)
    assert parse(src) == pf  # the messy printer itself is right
    out = assert_round_trip(src)
    assert parse(out) == pf


@PROPERTY
@given(exprs, st.randoms(use_true_random=False))
def test_messy_expressions_round_trip(e: ast.Expr, rnd: random.Random) -> None:
    messy = Messy(rnd)
    src = messy.join(messy.expr(e))
    assert parse_expr(src) == e
    assert format_expr(parse_expr(src)) == format_expr(e)


@PROPERTY
@given(
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\n\x00"), max_size=20),
        min_size=1,
        max_size=5,
    ),
    st.randoms(use_true_random=False),
)
def test_arbitrary_comment_text_survives(bodies: list[str], rnd: random.Random) -> None:
    stmts = ["policy p", "deny a when x", "tool t { a: int }", "limit a to 1 per 1m"]
    lines: list[str] = []
    for body in bodies:
        lines.append(rnd.choice(stmts) + rnd.choice(["", "  "]) + "#" + body)
        if rnd.random() < 0.3:
            lines.append("")
    src = "\n".join(lines)
    out = assert_round_trip(src)
    for body in bodies:
        assert ("#" + body).rstrip() in out


def test_tool_named_like_a_keyword() -> None:
    assert_round_trip("deny when when x\nlimit to, in to 1 per 1m\ntool deny {}\nallow a, deny")
