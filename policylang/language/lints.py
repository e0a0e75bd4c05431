"""Lints: problems beyond syntax and types, found on a checked policy.

Takes the checked :class:`~policylang.language.policy.Policy` (rules with
predicates inlined), the parsed files and their sources; gives a list of
:class:`~policylang.errors.Diagnostic` with codes PL2xx (documented in
:mod:`policylang.language.codes`). Lints never raise on odd input and never
change the policy.

Conditions are reasoned about with small abstract domains, not by matching
text: each comparison of an operand with a literal (``args.amount > 100``,
``x == "a"``, ``x in ["a", "b"]``, and their negations) becomes the set of
values it admits — a union of numeric intervals, a finite or co-finite set of
strings, and whether other values pass. Intersecting the sets of one operand
along an ``&&`` chain finds conditions that can never hold (PL201); the union
along an ``||`` chain finds ones that always hold (PL202); inclusion finds an
allow whose every match is also matched by a deny (PL203).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from policylang.errors import Diagnostic, Span
from policylang.language import ast
from policylang.language.policy import Policy, condition_of, tool_matches

__all__ = ["lint", "Domain"]

INF = math.inf

# ---------------------------------------------------------------- value domains

Interval = tuple[float, bool, float, bool]  # (low, low closed, high, high closed)
_ALL_NUMBERS: tuple[Interval, ...] = ((-INF, False, INF, False),)


def _iv_empty(iv: Interval) -> bool:
    lo, lc, hi, hc = iv
    return lo > hi or (lo == hi and not (lc and hc))


def _iv_intersect(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out = []
    for alo, alc, ahi, ahc in a:
        for blo, blc, bhi, bhc in b:
            if alo > blo or (alo == blo and not alc):
                lo, lc = alo, alc
            else:
                lo, lc = blo, blc
            if ahi < bhi or (ahi == bhi and not ahc):
                hi, hc = ahi, ahc
            else:
                hi, hc = bhi, bhc
            iv = (lo, lc, hi, hc)
            if not _iv_empty(iv):
                out.append(iv)
    return _iv_normal(out)


def _iv_normal(ivs: list[Interval]) -> tuple[Interval, ...]:
    """Sorted, merged, without empty intervals."""
    items = sorted((iv for iv in ivs if not _iv_empty(iv)), key=lambda iv: (iv[0], not iv[1]))
    out: list[Interval] = []
    for iv in items:
        if out:
            lo, lc, hi, hc = out[-1]
            if iv[0] < hi or (iv[0] == hi and (hc or iv[1])):
                if iv[2] > hi or (iv[2] == hi and iv[3]):
                    hi, hc = iv[2], iv[3] or (iv[2] == hi and hc)
                out[-1] = (lo, lc, hi, hc)
                continue
        out.append(iv)
    return tuple(out)


def _iv_complement(a: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    lo, lc = -INF, False
    for ilo, ilc, ihi, ihc in a:
        out.append((lo, lc, ilo, not ilc))
        lo, lc = ihi, not ihc
    out.append((lo, lc, INF, False))
    return _iv_normal(out)


@dataclass(frozen=True, slots=True)
class Domain:
    """The values one operand may take: numbers, strings, and anything else."""

    nums: tuple[Interval, ...] = ()
    strs: frozenset[str] = frozenset()
    strs_cofinite: bool = False  # True: every string except ``strs``
    other: bool = False  # values that are neither numbers nor strings

    def __and__(self, o: Domain) -> Domain:
        if self.strs_cofinite and o.strs_cofinite:
            strs, co = self.strs | o.strs, True
        elif self.strs_cofinite:
            strs, co = o.strs - self.strs, False
        elif o.strs_cofinite:
            strs, co = self.strs - o.strs, False
        else:
            strs, co = self.strs & o.strs, False
        return Domain(_iv_intersect(self.nums, o.nums), frozenset(strs), co, self.other and o.other)

    def __invert__(self) -> Domain:
        return Domain(_iv_complement(self.nums), self.strs, not self.strs_cofinite, not self.other)

    def __or__(self, o: Domain) -> Domain:
        return ~(~self & ~o)

    def is_empty(self, sort: str) -> bool:
        if sort == "number":
            return not self.nums
        if sort == "string":
            return not self.strs_cofinite and not self.strs
        return not self.nums and not self.strs_cofinite and not self.strs and not self.other

    def is_full(self, sort: str) -> bool:
        nums_full = self.nums == _ALL_NUMBERS
        strs_full = self.strs_cofinite and not self.strs
        if sort == "number":
            return nums_full
        if sort == "string":
            return strs_full
        return nums_full and strs_full and self.other

    def within(self, o: Domain, sort: str) -> bool:
        return (self & ~o).is_empty(sort)


_NOTHING = Domain()


def _point(v: Any) -> Domain:
    if isinstance(v, str):
        return Domain(strs=frozenset([v]))
    return Domain(nums=((v, True, v, True),))


def _literal(e: ast.Expr) -> tuple[str, Any] | None:
    """('number'|'string', value) for a number or string constant, else None."""
    if isinstance(e, ast.Literal_):
        if (
            e.kind in ("int", "double")
            and isinstance(e.value, int | float)
            and not isinstance(e.value, bool)
            and e.value == e.value
        ):
            return "number", e.value
        if e.kind == "string" and isinstance(e.value, str):
            return "string", e.value
        return None
    if isinstance(e, ast.Unary) and e.op == "-":
        inner = _literal(e.operand)
        if inner is not None and inner[0] == "number":
            return "number", -inner[1]
    return None


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


@dataclass(frozen=True, slots=True)
class Atom:
    """``operand`` admits exactly the values in ``domain`` (``sort``: number, string or mixed)."""

    operand: ast.Expr
    domain: Domain
    sort: str
    expr: ast.Expr


def atom(e: ast.Expr) -> Atom | None:
    """The constraint one comparison puts on its operand, or None if it is not one."""
    if isinstance(e, ast.Unary) and e.op == "!":
        inner = atom(e.operand)
        if inner is None:
            return None
        return Atom(inner.operand, ~inner.domain, inner.sort, e)
    if not isinstance(e, ast.Binary):
        return None
    if e.op == "in" and isinstance(e.right, ast.ListExpr) and _literal(e.left) is None:
        lits = [_literal(i) for i in e.right.items]
        if any(x is None for x in lits):
            return None
        sorts = {x[0] for x in lits if x is not None}
        dom = _NOTHING
        for x in lits:
            if x is not None:
                dom = dom | _point(x[1])
        sort = sorts.pop() if len(sorts) == 1 else "mixed"
        return Atom(e.left, dom, sort, e)
    if e.op not in _FLIP:
        return None
    op, lit, operand = e.op, _literal(e.right), e.left
    if lit is None:
        op, lit, operand = _FLIP[e.op], _literal(e.left), e.right
        if lit is None or _literal(operand) is not None:
            return None
    elif _literal(operand) is not None:
        return None
    sort, v = lit
    if op == "==":
        return Atom(operand, _point(v), sort, e)
    if op == "!=":
        return Atom(operand, ~_point(v), sort, e)
    if sort != "number":
        return None  # string ordering is not modelled
    iv = {
        "<": (-INF, False, v, False),
        "<=": (-INF, False, v, True),
        ">": (v, False, INF, False),
        ">=": (v, True, INF, False),
    }[op]
    return Atom(operand, Domain(nums=(iv,)), sort, e)


def flatten(e: ast.Expr, op: str) -> list[ast.Expr]:
    """The operands of a chain of one operator (``a && (b && c)`` → [a, b, c])."""
    out: list[ast.Expr] = []
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Binary) and node.op == op:
            stack.append(node.right)
            stack.append(node.left)
        else:
            out.append(node)
    return out


def _merge_sort(a: str, b: str) -> str:
    return a if a == b else "mixed"


# ---------------------------------------------------------------- the linter


def _expr_text(e: ast.Expr) -> str:
    """An expression as policy text (a template part's span covers the whole string)."""
    try:
        from policylang.language.formatter import format_expr

        return format_expr(e)
    except Exception:  # noqa: BLE001 - the formatter is optional here
        return type(e).__name__


class _Linter:
    def __init__(
        self,
        policy: Policy,
        files: list[ast.PolicyFile],
        sources: dict[str, str],
        data_paths: dict[str, str] | None = None,
    ):
        self.policy = policy
        self.files = files
        self.sources = sources
        self.data_paths = data_paths or {}
        self.out: list[Diagnostic] = []

    def warn(
        self,
        code: str,
        message: str,
        span: Span,
        hint: str | None = None,
        related: tuple[tuple[str, Span], ...] = (),
        severity: str = "warning",
    ) -> None:
        self.out.append(Diagnostic(code, message, span, severity, hint, related))  # type: ignore[arg-type]

    def text(self, e: ast.Expr) -> str:
        src = self.sources.get(e.span.file)
        if src is not None and 0 <= e.span.start < e.span.end <= len(src) and e.span.line:
            snippet = " ".join(src[e.span.start : e.span.end].split())
            if snippet:
                return snippet
        try:
            from policylang.language.formatter import format_expr

            return format_expr(e)
        except Exception:  # noqa: BLE001 - the formatter is optional here
            return type(e).__name__

    def shown(self, e: ast.Expr) -> str:
        """Like :meth:`text`, but a negation built from ``unless`` is shown as one."""
        text = self.text(e)
        if isinstance(e, ast.Unary) and e.op == "!" and not text.startswith("!"):
            return f"!({text})"
        return text

    def run(self) -> list[Diagnostic]:

        for rule in self.policy.rules:
            self.conditions(condition_of(rule), rule.span)
            if rule.effect != "allow" and rule.because is None:
                self.warn(
                    "PL209",
                    f"{rule.effect} rule {self.policy.rule_id(rule)} has no 'because'",
                    rule.span,
                    f'say why, e.g. {rule.effect} ... because "..."; the reason '
                    "is shown to the user and the model",
                )
        for lim in self.policy.limits:
            if lim.when is not None:
                self.conditions(lim.when, lim.span)
            if lim.amount == 0:
                self.warn(
                    "PL208",
                    f"limit {self.policy.rule_id(lim)} allows zero calls, so it "
                    "denies every call it applies to",
                    lim.span,
                    "write a deny rule with a reason instead, or raise the limit",
                )
        self.session_history()
        self.secret_reasons()
        self.data_regexes()
        self.regex_escapes()
        self.mixed_data_lists()
        self.shadowed_allows()
        self.duplicates()
        self.tools()
        if (
            not any(isinstance(s, ast.Header) for f in self.files for s in f.statements)
            and self.files
        ):
            first = min(self.files, key=lambda f: f.path)
            many = len(self.files) > 1
            self.warn(
                "PL210",
                "the policy has no 'policy NAME' header"
                + (f" in any of its {len(self.files)} files" if many else ""),
                Span(first.path, 1, 1, 1, 1),
                "add 'policy NAME version \"1.0.0\"'"
                + (" to one file, e.g. main.policy" if many else " at the top"),
            )
        seen: set[tuple[str, Span, str]] = set()
        unique = []
        for d in sorted(self.out, key=Diagnostic.sort_key):
            key = (d.code, d.span, d.message)
            if key not in seen:
                seen.add(key)
                unique.append(d)
        return unique

    # ---- PL201 / PL202

    def conditions(self, cond: ast.Expr, where: Span) -> None:
        if (
            isinstance(cond, ast.Literal_)
            and cond.kind == "bool"
            and cond.value is False
            and self.text(cond) == "false"
        ):
            self.warn(
                "PL201",
                "this condition is the constant false: the rule never applies",
                cond.span or where,
                "delete the rule, or write the intended condition",
            )
        self.visit(cond, where)

    def visit(self, e: ast.Expr, where: Span) -> None:
        stack: list[tuple[ast.Expr, str | None]] = [(e, None)]
        while stack:
            node, parent_op = stack.pop()
            if isinstance(node, ast.Binary) and node.op in ("&&", "||"):
                if node.op != parent_op:
                    self.chain(node, node.op, where)
                stack.extend((c, node.op) for c in (node.left, node.right))
                continue
            a = atom(node)
            if a is not None:
                span = node.span if node.span.line else where
                if a.domain.is_empty(a.sort):
                    self.warn(
                        "PL201",
                        f"'{self.text(node)}' is never true",
                        span,
                        "an empty list matches nothing"
                        if _has_empty_list(node)
                        else "check the value and the operator",
                    )
                elif a.domain.is_full(a.sort):
                    self.warn(
                        "PL202",
                        f"'{self.text(node)}' is always true",
                        span,
                        "check the value and the operator",
                    )
                # the operand itself may hold conditions (e.g. a macro)
                stack.extend((c, None) for c in ast.children(a.operand))
                continue
            stack.extend((c, None) for c in ast.children(node))

    def chain(self, node: ast.Binary, op: str, where: Span) -> None:
        parts = flatten(node, op)
        span = node.span if node.span.line else where
        for p in parts:
            if (
                isinstance(p, ast.Literal_)
                and p.kind == "bool"
                and p.value is (op == "||")
                and self.text(p) in ("true", "false")
            ):
                code = "PL202" if op == "||" else "PL201"
                what = "always true" if op == "||" else "never true"
                self.warn(
                    code,
                    f"this condition is {what}: it has '{self.text(p)}' as an operand of '{op}'",
                    span,
                    "remove the constant",
                )
                return
        groups: dict[ast.Expr, list[Atom]] = {}
        for p in parts:
            a = atom(p)
            if a is not None:
                groups.setdefault(a.operand, []).append(a)
        for operand, atoms in groups.items():
            if len(atoms) < 2:
                continue
            dom, sort = atoms[0].domain, atoms[0].sort
            for a in atoms[1:]:
                dom = (dom & a.domain) if op == "&&" else (dom | a.domain)
                sort = _merge_sort(sort, a.sort)
            shown = " and ".join(f"'{self.shown(a.expr)}'" for a in atoms)
            if op == "&&" and dom.is_empty(sort):
                self.warn(
                    "PL201",
                    f"this condition can never be true: {shown} cannot all hold "
                    f"for the same {self.text(operand)}",
                    span,
                    "check the bounds; maybe '||' was meant",
                )
                return
            if op == "||" and dom.is_full(sort):
                self.warn(
                    "PL202",
                    f"this condition is always true: every "
                    f"{self.text(operand)} satisfies {shown.replace(' and ', ' or ')}",
                    span,
                    "check the bounds; maybe '&&' was meant",
                )
                return

    # ---- PL203

    def shadowed_allows(self) -> None:

        policy = self.policy
        denies = [(r, _Conj.of(condition_of(r))) for r in policy.rules if r.effect == "deny"]
        if not denies:
            return
        undeclared = policy.open_tools or policy.default == "allow"
        by_tool: dict[str, list[tuple[ast.Rule, _Conj]]] = {}  # declared tool → denies covering it
        for rule in policy.rules:
            if rule.effect != "allow":
                continue
            conj = _Conj.of(condition_of(rule))
            if any(dom.is_empty(sort) for dom, sort in conj.groups.values()):
                continue  # never true at all: PL201 says so
            targets: list[tuple[str, bool]] = []  # (tool or pattern, is a pattern)
            for p in rule.tools:
                if policy.open_tools or (p.is_glob and undeclared):
                    targets.append((p.pattern, True))
                if not policy.open_tools:
                    targets.extend((t, False) for t in policy.tools_matching(p.pattern))
            if not targets:
                continue
            witness: ast.Rule | None = None
            for target, is_pattern in targets:
                found = None
                if is_pattern:
                    candidates = [(d, c) for d, c in denies if _covers(d, target, True)]
                else:
                    if target not in by_tool:
                        by_tool[target] = [(d, c) for d, c in denies if _covers(d, target, False)]
                    candidates = by_tool[target]
                for d, dconj in candidates:
                    if dconj.implied_by(conj):
                        found = d
                        break
                if found is None:
                    witness = None
                    break
                witness = witness or found
            if witness is not None:
                how = (
                    "an unconditional deny"
                    if witness.when is None and witness.unless is None
                    else "a deny whose condition holds whenever this one does"
                )
                self.warn(
                    "PL203",
                    f"allow rule {policy.rule_id(rule)} can never take effect: "
                    f"{how} ({policy.rule_id(witness)}) covers the same tools",
                    rule.span,
                    "deny overrides allow; narrow the deny or remove this rule",
                    (("the deny is here", witness.span),),
                )

    # ---- PL204

    def duplicates(self) -> None:
        seen: dict[Any, ast.Statement] = {}
        for f in self.files:
            for stmt in f.statements:
                if not isinstance(stmt, ast.Rule | ast.LimitRule):
                    continue
                try:
                    key = (type(stmt), dataclasses.replace(stmt, name=None))
                    hash(key)
                except TypeError:
                    continue
                first = seen.get(key)
                if first is None:
                    seen[key] = stmt
                    continue
                what = "rule" if isinstance(stmt, ast.Rule) else "limit"
                self.warn(
                    "PL204",
                    f"this {what} is an exact copy of the one at {first.span}",
                    stmt.span,
                    "delete one of them",
                    (("the first copy is here", first.span),),
                )

    # ---- PL205 / PL206

    def tools(self) -> None:
        policy = self.policy
        patterns = [(r, p.pattern) for r in policy.rules for p in r.tools]
        limit_patterns = [p.pattern for lim in policy.limits for p in lim.tools]
        for name, info in policy.tools.items():
            span = info.decl.span if info.decl is not None else Span()
            mentioned = any(pat != "*" and tool_matches(pat, name) for _, pat in patterns) or any(
                pat != "*" and tool_matches(pat, name) for pat in limit_patterns
            )
            if not mentioned:
                self.warn(
                    "PL206",
                    f"tool '{name}' is declared but no rule mentions it",
                    span,
                    f"its calls are decided by 'default {policy.default}' alone; write rules "
                    "for it or remove the declaration",
                )
                continue
            # A confirm needs no allow to take effect: a tool with a confirm rule is reachable.
            if policy.default == "deny" and not any(
                r.effect in ("allow", "confirm") and tool_matches(pat, name) for r, pat in patterns
            ):
                self.warn(
                    "PL205",
                    f"tool '{name}' can never be allowed: no allow (or confirm) rule "
                    "applies to it under 'default deny'",
                    span,
                    "add an allow rule for it, or remove the declaration",
                )

    # ---- PL207

    def session_history(self) -> None:
        """PL211: a rule counts more earlier calls than the session remembers."""
        session = self.policy.session
        if session is None:
            return
        for rule in self.policy.rules:
            for needed, node in session_needs(condition_of(rule)):
                if needed > session.keep:
                    self.warn(
                        "PL211",
                        f"rule {self.policy.rule_id(rule)} counts {needed} earlier calls, "
                        f"but the session keeps only {session.keep}",
                        node.span if node.span.line else rule.span,
                        f"raise it: session by ... keep {needed} calls",
                    )

    def secret_reasons(self) -> None:
        """PL213: a because template interpolates a secret (the engine redacts it anyway)."""
        from policylang.language.checker import rule_tools
        from policylang.language.secrets import secret_parts, secret_scope

        scopes: dict[str | None, Any] = {}
        for rule in self.policy.rules:
            if rule.because is None or rule.because.is_plain:
                continue
            reported: set[int] = set()
            for tool in rule_tools(self.policy, rule.tools):
                scope = scopes.get(tool)
                if scope is None:
                    scope = scopes[tool] = secret_scope(self.policy, tool)
                for part in secret_parts(rule.because, scope):
                    if id(part) in reported:
                        continue
                    reported.add(id(part))
                    self.warn(
                        "PL213",
                        f"the reason of rule {self.policy.rule_id(rule)} shows "
                        f"{{{_expr_text(part)}}}, which reads a @secret value; it is shown "
                        "as [redacted]",
                        rule.because.span,
                        "say what is wrong without the secret value",
                    )

    def data_regexes(self) -> None:
        from policylang.runtime.celops import regex_problem

        for root in self._rule_exprs():
            for call, pattern_expr, values in _matches_calls(root, self.policy.data):
                for value in values:
                    problem = regex_problem(value)
                    if problem:
                        self.warn(
                            "PL207",
                            f"the pattern {value!r} from {self.text(pattern_expr)} "
                            f"is not a valid RE2 regular expression: {problem}",
                            pattern_expr.span if pattern_expr.span.line else call.span,
                            "fix the pattern in the data file; RE2 has no back-references "
                            "or look-around",
                            severity="error",
                        )

    def regex_escapes(self) -> None:
        """A constant pattern holding a control character that only an escape can have made.

        In a non-raw string ``"\\b"`` is a backspace, not RE2's word boundary, so
        ``matches("(?i)\\bpassword\\b")`` never matches and the rule that should
        stop a leak does nothing. Tab, newline and carriage return mean the same
        to RE2 whether written as the character or as its escape, so they pass.
        """
        for root in self._rule_exprs():
            for node in ast.walk(root):
                if not (isinstance(node, ast.Call) and node.function == "matches"):
                    continue
                pat = (
                    node.args[0]
                    if node.target is not None and node.args
                    else (node.args[1] if node.target is None and len(node.args) > 1 else None)
                )
                if not (isinstance(pat, ast.Literal_) and isinstance(pat.value, str)):
                    continue
                bad = sorted({ch for ch in pat.value if ch in _SUSPECT_CONTROLS})
                if not bad:
                    continue
                names = ", ".join(_SUSPECT_CONTROLS[ch] for ch in bad)
                self.warn(
                    "PL214",
                    f"the pattern {self.text(pat)} holds {names}: in a non-raw string "
                    "the escape made a control character, not a regex escape",
                    pat.span if pat.span.line else node.span,
                    'write the pattern as a raw string, e.g. r"\\bword\\b", so RE2 sees the '
                    "backslash",
                )

    def _rule_exprs(self) -> list[ast.Expr]:
        exprs: list[ast.Expr] = []
        for r in self.policy.rules:
            exprs.extend(x for x in (r.when, r.unless) if x is not None)
        for lim in self.policy.limits:
            exprs.extend(x for x in (lim.when, lim.key, lim.cost) if x is not None)
        return exprs

    # ---- PL212

    def mixed_data_lists(self) -> None:
        """A data list whose elements are of several kinds: ``in`` never matches the odd ones."""
        for name, value in self.policy.data.items():
            path = self.data_paths.get(name)
            if path is None:
                continue
            for where, kinds, index, odd in _mixed_lists(value, f"data.{name}"):
                shown = ", ".join(kinds)
                self.warn(
                    "PL212",
                    f"{where} mixes element types ({shown}); item {index + 1} is a "
                    f"{_kind(odd)}, and 'in' only matches an "
                    "element of the request value's own type",
                    Span(path, 1, 1, 1, 2),
                    "write every element the same way: plain values in a data file are "
                    "strings; a tag such as !!int or an empty entry (null) makes it another type",
                )


# Control characters a string escape can put into a pattern where a regex escape was meant.
_SUSPECT_CONTROLS = {
    "\b": 'a backspace (\\b; a word boundary is r"\\b")',
    "\a": "a bell character (\\a)",
    "\f": "a form feed (\\f)",
    "\v": "a vertical tab (\\v)",
    "\x00": "a NUL character (\\0)",
    **{chr(c): f"the control character U+{c:04X}" for c in (*range(1, 7), *range(14, 32), 127)},
}


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


def _mixed_lists(
    value: Any, where: str, depth: int = 0
) -> Iterator[tuple[str, list[str], int, Any]]:
    """(path, kinds, index and value of the first element of a minority kind) per mixed list."""
    if depth > 6:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                yield from _mixed_lists(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list | tuple):
        kinds = [_kind(v) for v in value]
        counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
        if len(counts) > 1:
            main = max(counts, key=lambda k: counts[k])
            index = next(i for i, k in enumerate(kinds) if k != main)
            yield where, list(counts), index, value[index]
        for i, v in enumerate(value[:1000]):
            yield from _mixed_lists(v, f"{where}[{i}]", depth + 1)


def _has_empty_list(e: ast.Expr) -> bool:
    return any(isinstance(n, ast.ListExpr) and not n.items for n in ast.walk(e))


def _covers(deny: ast.Rule, target: str, is_pattern: bool) -> bool:
    for p in deny.tools:
        if p.pattern == "*" or p.pattern == target:
            return True
        if not is_pattern and tool_matches(p.pattern, target):
            return True
        if is_pattern and "*" not in target and tool_matches(p.pattern, target):
            return True
    return False


@dataclass
class _Conj:
    """A condition as a conjunction: plain conjuncts plus per-operand domains."""

    parts: frozenset[ast.Expr]
    plain: frozenset[ast.Expr]
    groups: dict[ast.Expr, tuple[Domain, str]]
    atoms: list[Atom]

    @classmethod
    def of(cls, cond: ast.Expr) -> _Conj:
        parts = [
            p for p in flatten(cond, "&&") if not (isinstance(p, ast.Literal_) and p.value is True)
        ]
        groups: dict[ast.Expr, tuple[Domain, str]] = {}
        atoms = []
        plain = []
        for p in parts:
            a = atom(p)
            if a is None:
                plain.append(p)
                continue
            atoms.append(a)
            if a.operand in groups:
                dom, sort = groups[a.operand]
                groups[a.operand] = (dom & a.domain, _merge_sort(sort, a.sort))
            else:
                groups[a.operand] = (a.domain, a.sort)
        try:
            return cls(frozenset(parts), frozenset(plain), groups, atoms)
        except TypeError:  # an unhashable constant: give up on this rule
            return cls(frozenset(), frozenset([ast.Literal_(False, "bool")]), {}, [])

    def implied_by(self, other: _Conj) -> bool:
        """Whenever ``other`` holds, this holds too (a sound, incomplete test)."""
        if not self.plain <= other.parts:
            return False
        for a in self.atoms:
            if a.expr in other.parts:
                continue
            got = other.groups.get(a.operand)
            if got is None or not got[0].within(a.domain, _merge_sort(got[1], a.sort)):
                return False
        return True


def _data_value(e: ast.Expr, data: dict[str, Any], local: dict[str, list[Any]]) -> list[Any] | None:
    """The possible constant values of ``e`` if it reads only data (or a macro var over data)."""
    if isinstance(e, ast.Ident):
        return local.get(e.name)
    if isinstance(e, ast.Select):
        if isinstance(e.operand, ast.Ident) and e.operand.name == "data" and "data" not in local:
            return [data[e.field]] if e.field in data else None
        base = _data_value(e.operand, data, local)
        if base is None:
            return None
        return [b[e.field] for b in base if isinstance(b, dict) and e.field in b]
    return None


def _matches_calls(
    root: ast.Expr, data: dict[str, Any]
) -> Iterator[tuple[ast.Call, ast.Expr, list[str]]]:
    stack: list[tuple[ast.Expr, dict[str, list[Any]]]] = [(root, {})]
    while stack:
        node, local = stack.pop()
        if (
            isinstance(node, ast.Call)
            and node.function == "matches"
            and not (node.target is None and len(node.args) < 2)
        ):
            pat = (
                node.args[0]
                if node.target is not None and node.args
                else (node.args[1] if len(node.args) > 1 else None)
            )
            if pat is not None and not isinstance(pat, ast.Literal_):
                values = _data_value(pat, data, local)
                if values:
                    yield node, pat, [v for v in values if isinstance(v, str)]
        if isinstance(node, ast.Comprehension):
            items = _data_value(node.target, data, local)
            inner = dict(local)
            if items is not None:
                elems: list[Any] = []
                for it in items:
                    if isinstance(it, list):
                        elems.extend(it)
                    elif isinstance(it, dict):
                        elems.extend(it.keys())
                inner[node.var] = elems
            else:
                inner.pop(node.var, None)
            stack.append((node.target, local))
            stack.extend(
                (c, inner) for c in ([node.condition] if node.condition else []) + [node.body]
            )
            continue
        stack.extend((c, local) for c in ast.children(node))


def _counts_session_calls(e: ast.Expr) -> bool:
    """``size(session.calls...)``, as ``session.count(...)`` expands."""
    if not (isinstance(e, ast.Call) and e.function == "size" and len(e.args) == 1):
        return False
    arg = e.args[0]
    if isinstance(arg, ast.Comprehension):
        arg = arg.target
    return (
        isinstance(arg, ast.Select)
        and arg.field == "calls"
        and isinstance(arg.operand, ast.Ident)
        and arg.operand.name == "session"
    )


def session_needs(expr: ast.Expr) -> Iterator[tuple[int, ast.Expr]]:
    """How many remembered calls each session count in ``expr`` needs to be able to hold."""
    flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
    for node in ast.walk(expr):
        if not isinstance(node, ast.Binary) or node.op not in flip:
            continue
        for count, other, op in (
            (node.left, node.right, node.op),
            (node.right, node.left, flip[node.op]),
        ):
            if (
                _counts_session_calls(count)
                and isinstance(other, ast.Literal_)
                and type(other.value) is int
            ):
                n = other.value
                yield (n + 1 if op in (">", "<=") else n), node


def lint(
    policy: Policy,
    files: list[ast.PolicyFile],
    sources: dict[str, str],
    data_paths: dict[str, str] | None = None,
) -> list[Diagnostic]:
    """Every lint finding (PL2xx) for one checked policy, sorted by position.

    ``data_paths`` (data name -> file) lets the data lints point at the file.
    """
    return _Linter(policy, files, sources, data_paths).run()
