"""Checked AST: names and types of every condition, all problems at once.

Takes parsed files plus data and gives a :class:`~policylang.language.policy.Policy`
whose rules have named predicates (``def``) inlined, together with every
diagnostic found, sorted by position. :class:`Typer` infers the static type of
each expression; the compiler reuses it to choose native Python operations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from policylang.errors import Diagnostic, PolicyCheckError, Span, sorted_unique
from policylang.language import ast
from policylang.language.builtins import GLOBALS, METHODS, VARIABLES, Signature
from policylang.language.parser import INT64_MAX, MAX_DEPTH
from policylang.language.policy import Assembler, Policy, policy_data_type, suggest
from policylang.language.types import (
    BOOL,
    BYTES,
    DATE,
    DOUBLE,
    DURATION,
    DYN,
    DYN_MAP,
    INT,
    NULL,
    NUMBER,
    STRING,
    TIMESTAMP,
    FieldType,
    Type,
    comparable,
    element_type,
    is_dyn,
    is_numeric,
    join,
    list_of,
    map_of,
    orderable,
)

MACRO_NAMES = ("all", "exists", "exists_one", "filter", "map")


@dataclasses.dataclass
class Scope:
    """What the names in one condition mean: the tool's args, the shapes, data, macro vars."""

    args: Type
    principal: Type
    context: Type
    data: Type
    tool: str | None = None
    locals: dict[str, Type] = dataclasses.field(default_factory=dict)
    session: Type | None = None  # None: the policy declares no session


class Typer:
    """Infers types bottom-up, reporting problems to ``diags`` (or nowhere)."""

    def __init__(
        self, scope: Scope, diags: list[Diagnostic] | None = None, policy: Policy | None = None
    ):
        self.scope = scope
        self.diags = diags if diags is not None else []
        self.types: dict[int, Type] = {}
        self.policy = policy

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> Type:
        self.diags.append(Diagnostic(code, message, span, "error", hint))
        return DYN

    def type_of(self, expr: ast.Expr) -> Type:
        t = self.types.get(id(expr))
        return t if t is not None else self.infer(expr)

    def infer(self, expr: ast.Expr) -> Type:
        t = self._infer(expr)
        self.types[id(expr)] = t
        return t

    def _infer(self, e: ast.Expr) -> Type:  # noqa: C901 - one case per node kind
        match e:
            case ast.Literal_(kind=kind, value=value):
                if kind == "int" and isinstance(value, int) and value > INT64_MAX:
                    return self.error("PL116", "integer literal is out of the 64-bit range", e.span)
                return {
                    "int": INT,
                    "double": DOUBLE,
                    "string": STRING,
                    "bytes": BYTES,
                    "bool": BOOL,
                    "null": NULL,
                    "duration": DURATION,
                }[kind]
            case ast.Ident(name=name):
                return self._ident(name, e.span)
            case ast.Select(operand=operand, field=name):
                return self._select(self.infer(operand), name, e, operand)
            case ast.Has(operand=operand, field=name):
                base = self.infer(operand)
                if base.kind == "object" and base.field(name) is None and not _open_shape(operand):
                    self._unknown_field(base, name, e.span, operand)
                elif base.kind not in ("object", "map", "dyn"):
                    self.error("PL103", f"has() needs a map or an object, not {an(base)}", e.span)
                return BOOL
            case ast.Index(operand=operand, index=index):
                return self._index(self.infer(operand), self.infer(index), e)
            case ast.Call():
                return self._call(e)
            case ast.Unary(op="!", operand=operand):
                self._expect_bool(self.infer(operand), operand.span, "'!'")
                return BOOL
            case ast.Unary(op="-", operand=operand):
                t = self.infer(operand).base
                if not (is_numeric(t) or t.kind in ("duration", "dyn")):
                    return self.error("PL103", f"cannot negate {an(t)}", e.span)
                return t
            case ast.Binary():
                return self._binary(e)
            case ast.Conditional(cond=cond, then=then, otherwise=otherwise):
                self._expect_bool(self.infer(cond), cond.span, "the condition of '?:'")
                return join(self.infer(then), self.infer(otherwise))
            case ast.ListExpr(items=items):
                elem: Type | None = None
                for item in items:
                    t = self.infer(item)
                    elem = t if elem is None else join(elem, t)
                return list_of(elem or DYN)
            case ast.MapExpr(entries=entries):
                key_t: Type | None = None
                val_t: Type | None = None
                for k, v in entries:
                    kt, vt = self.infer(k), self.infer(v)
                    if kt.base.kind not in ("string", "int", "bool", "dyn", "number"):
                        self.error(
                            "PL103", f"map keys must be strings, ints or bools, not {kt}", k.span
                        )
                    key_t = kt if key_t is None else join(key_t, kt)
                    val_t = vt if val_t is None else join(val_t, vt)
                return map_of(key_t or DYN, val_t or DYN)
            case ast.Comprehension():
                return self._comprehension(e)
        return DYN  # pragma: no cover

    # ---- pieces

    def _ident(self, name: str, span: Span) -> Type:
        if name in self.scope.locals:
            return self.scope.locals[name]
        s = self.scope
        if name == "session":
            if s.session is None:
                return self.error(
                    "PL106",
                    "'session' needs a session declaration",
                    span,
                    "declare one, e.g. session by context.session_id keep 100 for 1d",
                )
            return s.session
        fixed = {
            "args": s.args,
            "principal": s.principal,
            "context": s.context,
            "data": s.data,
            "now": TIMESTAMP,
            "tool": STRING,
        }
        if name in fixed:
            return fixed[name]
        return self.error(
            "PL106",
            f"unknown name '{name}'",
            span,
            suggest(name, [*VARIABLES, *self.scope.locals])
            or "conditions can use args, principal, context, data, now and tool",
        )

    def _owner(self, operand: ast.Expr) -> str:
        if isinstance(operand, ast.Ident):
            if operand.name == "args":
                return f"tool '{self.scope.tool}'" if self.scope.tool else "args"
            if operand.name == "data":
                return "data (no data file"
            return f"'{operand.name}'"
        return "this object"

    def _unknown_field(self, base: Type, name: str, span: Span, operand: ast.Expr) -> Type:
        owner = self._owner(operand)
        names = [n for n, _ in base.fields]
        if owner.startswith("data"):
            return self.error(
                "PL114",
                f"there is no data file named '{name}'",
                span,
                suggest(name, names) or f"put {name}.yaml or {name}.json next to the policy files",
            )
        what = "parameter" if owner.startswith("tool") else "field"
        return self.error(
            "PL102",
            f"{owner} has no {what} '{name}'",
            span,
            suggest(name, names)
            or (f"known: {', '.join(names[:8])}" if names else f"{owner} declares none"),
        )

    def _select(self, base: Type, name: str, e: ast.Expr, operand: ast.Expr) -> Type:
        base = base.base if base.kind in ("enum", "nullable") else base
        if base.kind == "object":
            f = base.field(name)
            if f is None:
                return self._unknown_field(base, name, e.span, operand)
            return f.type
        if base.kind == "map":
            return base.params[1]
        if base.kind == "dyn":
            return DYN
        return self.error("PL103", f"cannot read field '{name}' of {an(base)}", e.span)

    def _index(self, base: Type, idx: Type, e: ast.Index) -> Type:
        base = base.base if base.kind == "nullable" else base
        if base.kind == "list":
            if idx.base.kind not in ("int", "dyn", "number"):
                self.error("PL103", f"a list index must be an int, not {idx}", e.index.span)
            return base.params[0]
        if base.kind == "map":
            return base.params[1]
        if base.kind == "object":
            if isinstance(e.index, ast.Literal_) and isinstance(e.index.value, str):
                f = base.field(e.index.value)
                if f is None and _open_shape(e.operand):
                    return DYN
                if f is None:
                    return self._unknown_field(base, e.index.value, e.index.span, e.operand)
                return f.type
            return DYN
        if base.kind == "dyn":
            return DYN
        return self.error("PL103", f"cannot index {an(base)}", e.span)

    def _expect_bool(self, t: Type, span: Span, where: str) -> None:
        if t.base.kind not in ("bool", "dyn"):
            self.error(
                "PL110",
                f"{where} needs a bool, but this is {an(t)}",
                span,
                'compare it with something, e.g. x != "" or size(x) > 0',
            )

    def _binary(self, e: ast.Binary) -> Type:
        op = e.op
        lt, rt = self.infer(e.left), self.infer(e.right)
        if op in ("&&", "||"):
            self._expect_bool(lt, e.left.span, f"'{op}'")
            self._expect_bool(rt, e.right.span, f"'{op}'")
            return BOOL
        if op in ("==", "!="):
            if not comparable(lt, rt):
                self.error(
                    "PL103",
                    f"comparing {an(lt.base)} with {an(rt.base)} is always "
                    f"{'false' if op == '==' else 'true'}",
                    e.span,
                    "convert one side, e.g. string(x) or int(x)",
                )
            self._enum_literal(lt, e.right)
            self._enum_literal(rt, e.left)
            return BOOL
        if op in ("<", "<=", ">", ">="):
            if not orderable(lt, rt):
                self.error(
                    "PL103", f"cannot order {an(lt.base)} against {an(rt.base)} with '{op}'", e.span
                )
            return BOOL
        if op == "in":
            r = rt.base
            if r.kind == "list":
                if not comparable(lt, r.params[0]):
                    self.error(
                        "PL103", f"{an(lt.base)} is never in a list of {r.params[0].base}", e.span
                    )
                elif isinstance(e.right, ast.ListExpr):
                    for item in e.right.items:
                        self._enum_literal(lt, item)
            elif r.kind == "map":
                if not comparable(lt, r.params[0]):
                    self.error(
                        "PL103",
                        f"{an(lt.base)} is never a key of a map with {r.params[0]} keys",
                        e.span,
                    )
            elif r.kind == "object":
                if lt.base.kind not in ("string", "dyn"):
                    self.error("PL103", f"{an(lt.base)} is never a key of an object", e.span)
            elif r.kind != "dyn":
                hint = (
                    "to look for text in a string, use s.contains(x)"
                    if r.kind == "string"
                    else None
                )
                self.error(
                    "PL103", f"'in' needs a list or a map on the right, not {an(r)}", e.span, hint
                )
            return BOOL
        return self._arith(op, lt.base, rt.base, e)

    def _enum_literal(self, t: Type, other: ast.Expr) -> None:
        if (
            t.kind == "enum"
            and isinstance(other, ast.Literal_)
            and other.kind in ("string", "int", "double")
            and other.value not in t.values
        ):
            self.diags.append(
                Diagnostic(
                    "PL103",
                    f"{other.value!r} is not one of the allowed values {t}",
                    other.span,
                    "error",
                    suggest(str(other.value), [str(v) for v in t.values]),
                )
            )

    def _arith(self, op: str, lt: Type, rt: Type, e: ast.Binary) -> Type:
        if is_dyn(lt) or is_dyn(rt):
            if is_dyn(lt) and is_dyn(rt):
                return DYN
            other = rt if is_dyn(lt) else lt
            return other if op != "-" or other.kind != "timestamp" else DYN
        if is_numeric(lt) and is_numeric(rt):
            if op == "%" and (lt.kind == "double" or rt.kind == "double"):
                return self.error("PL103", "'%' works on integers only", e.span)
            if lt.kind == rt.kind == "int":
                return INT
            if lt.kind == rt.kind == "double":
                return DOUBLE
            return NUMBER if "number" in (lt.kind, rt.kind) else DOUBLE
        pair = (lt.kind, op, rt.kind)
        table = {
            ("string", "+", "string"): STRING,
            ("bytes", "+", "bytes"): BYTES,
            ("timestamp", "+", "duration"): TIMESTAMP,
            ("duration", "+", "timestamp"): TIMESTAMP,
            ("duration", "+", "duration"): DURATION,
            ("timestamp", "-", "timestamp"): DURATION,
            ("timestamp", "-", "duration"): TIMESTAMP,
            ("duration", "-", "duration"): DURATION,
            ("date", "+", "duration"): DATE,
            ("date", "-", "date"): DURATION,
            ("date", "-", "duration"): DATE,
        }
        if pair in table:
            return table[pair]
        if op == "+" and lt.kind == "list" and rt.kind == "list":
            return list_of(join(lt.params[0], rt.params[0]))
        return self.error("PL103", f"no '{op}' between {an(lt)} and {an(rt)}", e.span)

    # ---- calls

    def _call(self, e: ast.Call) -> Type:
        if e.target is None:
            if e.function in GLOBALS:
                return self._apply(GLOBALS[e.function], None, e)
            if self.policy is not None and e.function in self.policy.defs:
                return self.error(
                    "PL105", f"'{e.function}' is a predicate here but could not be inlined", e.span
                )  # reported with more detail by the expander
            return self.error(
                "PL104",
                f"unknown function '{e.function}'",
                e.span,
                suggest(e.function, [*GLOBALS, *(self.policy.defs if self.policy else ())]),
            )
        recv = self.infer(e.target)
        if e.function in METHODS:
            return self._apply(METHODS[e.function], recv, e)
        if e.function in MACRO_NAMES:
            return self.error(
                "PL105",
                f"'{e.function}' takes a variable name first, like xs.{e.function}(x, x > 0)",
                e.span,
            )
        return self.error(
            "PL104", f"unknown method '{e.function}'", e.span, suggest(e.function, list(METHODS))
        )

    def _apply(self, sigs: list[Signature], recv: Type | None, e: ast.Call) -> Type:
        arg_types = [self.infer(a) for a in e.args]
        label = f"{e.function}()" if recv is None else f".{e.function}()"
        arity_ok = [
            s for s in sigs if len(s.params) - s.optional <= len(arg_types) <= len(s.params)
        ]
        if not arity_ok:
            s = sigs[0]
            lo, hi = len(s.params) - s.optional, len(s.params)
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            return self.error(
                "PL105",
                f"{label} takes {want} argument{'s' if hi != 1 else ''}, got {len(arg_types)}",
                e.span,
            )
        for s in arity_ok:
            if recv is not None and s.receiver is not None and not _accepts(s.receiver, recv):
                continue
            bad = [
                (i, a)
                for i, (p, a) in enumerate(zip(s.params, arg_types, strict=False))
                if not _accepts(p, a)
            ]
            if bad:
                i, a = bad[0]
                return self.error(
                    "PL103",
                    f"argument {i + 1} of {label} must be {an(s.params[i])}, not {an(a)}",
                    e.args[i].span,
                )
            self._check_constant_args(s, e)
            if s.name == "size":
                target = recv if recv is not None else arg_types[0]
                if target.base.kind not in ("string", "bytes", "list", "map", "object", "dyn"):
                    return self.error(
                        "PL103",
                        f"size() needs a string, bytes, list or map, not a {target}",
                        e.span,
                    )
            return s.result
        assert recv is not None
        return self.error(
            "PL103",
            f"{label} does not apply to {an(recv)}",
            e.span,
            f"it applies to {arity_ok[0].receiver}",
        )

    def _check_constant_args(self, s: Signature, e: ast.Call) -> None:
        """Constant regexes, zones and countries are checked now, not at decision time."""
        from policylang.runtime import celops, timefuncs

        def const(i: int) -> str | None:
            if i < len(e.args) and isinstance(e.args[i], ast.Literal_):
                v = e.args[i].value  # type: ignore[union-attr]
                return v if isinstance(v, str) else None
            return None

        if s.impl == "matches":
            pattern = const(0 if s.receiver is not None else 1)
            if pattern is not None:
                problem = celops.regex_problem(pattern)
                if problem:
                    self.error(
                        "PL111",
                        f"invalid regular expression: {problem}",
                        e.args[0 if s.receiver is not None else 1].span,
                        "patterns use RE2 syntax (no backreferences or look-around)",
                    )
        zone_arg = {
            "weekday": 1,
            "hour": 1,
            "minute": 1,
            "date": 1,
            "today": 0,
            "business_hours": 2,
        }.get(s.impl)
        if s.receiver is not None and s.impl.startswith("get_"):
            zone_arg = 0
        if zone_arg is not None:
            zone = const(zone_arg)
            if zone is not None and not timefuncs.known_zone(zone):
                self.error(
                    "PL112",
                    f"unknown time zone '{zone}'",
                    e.args[zone_arg].span,
                    "use an IANA name such as 'America/New_York' or 'UTC'",
                )
        if s.impl == "business_hours":
            window = const(1)
            if window is not None:
                try:
                    timefuncs.parse_window(window)
                except ValueError as exc:
                    self.error("PL103", f"bad business-hours window: {exc}", e.args[1].span)
        if s.impl in ("to_timestamp", "to_duration", "date") and s.receiver is None:
            text = const(0)
            if text is not None:
                parsers: dict[str, Callable[[str], object]] = {
                    "to_timestamp": timefuncs.parse_timestamp,
                    "to_duration": timefuncs.parse_duration,
                    "date": timefuncs.parse_date,
                }
                parse = parsers[s.impl]
                try:
                    parse(text)
                except Exception as exc:  # noqa: BLE001 - EvalError with a readable message
                    self.error(
                        "PL103",
                        str(getattr(exc, "message", exc)),
                        e.args[0].span,
                        {
                            "to_timestamp": 'e.g. timestamp("2025-06-11T10:00:00Z")',
                            "to_duration": 'e.g. duration("1h30m")',
                            "date": 'e.g. date("2025-06-11")',
                        }[s.impl],
                    )
        if s.impl == "normpath":
            path = const(0)
            if path is not None:
                from policylang.runtime import textfuncs

                try:
                    textfuncs.normpath(path)
                except Exception as exc:  # noqa: BLE001 - EvalError with a readable message
                    self.error(
                        "PL103",
                        str(getattr(exc, "message", exc)),
                        e.args[0].span,
                        "a constant path that normpath refuses would fail every decision",
                    )
        if s.impl == "is_holiday":
            country, sub = const(1), const(2)
            if country is not None and not timefuncs.known_country(country, sub):
                self.error(
                    "PL113",
                    f"is_holiday() does not know the calendar '{country}"
                    f"{'/' + sub if sub else ''}'",
                    e.args[1].span,
                    "use an ISO country code such as 'US', 'GB' or 'DE', or a list of dates",
                )

    def _comprehension(self, e: ast.Comprehension) -> Type:
        target = self.infer(e.target).base
        if target.kind == "list":
            var_t = target.params[0]
        elif target.kind in ("map", "object"):
            var_t = element_type(target) if target.kind == "map" else STRING
        elif target.kind == "dyn":
            var_t = DYN
        else:
            self.error(
                "PL103", f"'{e.kind}' needs a list or a map, not {an(target)}", e.target.span
            )
            var_t = DYN
        if e.var in ("args", "principal", "context", "data", "now", "tool"):
            self.error("PL106", f"'{e.var}' is a reserved name; pick another variable name", e.span)
        saved = self.scope.locals.get(e.var)
        self.scope.locals[e.var] = var_t
        try:
            if e.condition is not None:
                self._expect_bool(
                    self.infer(e.condition), e.condition.span, f"the filter of '{e.kind}'"
                )
            body_t = self.infer(e.body)
        finally:
            if saved is None:
                del self.scope.locals[e.var]
            else:
                self.scope.locals[e.var] = saved
        if e.kind in ("all", "exists", "exists_one"):
            self._expect_bool(body_t, e.body.span, f"the body of '{e.kind}'")
            return BOOL
        if e.kind == "filter":
            self._expect_bool(body_t, e.body.span, "the body of 'filter'")
            return list_of(var_t)
        return list_of(body_t)


def an(t: object) -> str:
    """'a string', 'an int': messages read as sentences."""
    text = str(t)
    return f"{'an' if text[:1] in 'aeiou' else 'a'} {text}"


def _open_shape(operand: ast.Expr) -> bool:
    """principal and context pass undeclared keys through: has() and [] may read them."""
    return isinstance(operand, ast.Ident) and operand.name in ("principal", "context")


def _accepts(param: Type, arg: Type) -> bool:
    if param.kind == "dyn" or arg.kind == "dyn":
        return True
    a = arg.base
    if a.kind == "null":
        return False
    if is_numeric(param) and is_numeric(a):
        return True
    if param.kind == "list" and a.kind == "list":
        return _accepts(param.params[0], a.params[0])
    return param.kind == a.kind


# ---------------------------------------------------------------- defs


class Expander:
    """Inlines ``def`` predicates at their call sites; reports cycles and arity errors.

    Inlining is hygienic: every variable a predicate's body binds (a macro's
    ``x`` in ``xs.exists(x, ...)``, a history macro's call variable) gets a
    fresh name that occurs nowhere in the policy, so an argument that names a
    variable of the call site (``args.to.exists(c, !is_contact(c))`` with
    ``def is_contact(v): data.contacts.exists(c, c == v)``) is never captured
    by the body's own ``c``. Without it the inlined rule reads ``c == c``
    and silently never fires.
    """

    def __init__(self, defs: dict[str, ast.FunctionDef], diags: list[Diagnostic]):
        self.defs = defs
        self.diags = diags
        self._taken: set[str] = set()
        for d in defs.values():
            self._taken.update(p.name for p in d.params)
            self._taken.update(_names(d.body))
        self._fresh = 0

    def expand(self, expr: ast.Expr, stack: tuple[str, ...] = ()) -> ast.Expr:
        self._taken.update(_names(expr))
        return self._expand(expr, {}, stack, bool(stack))

    def _rename(self, var: str) -> str:
        while True:
            self._fresh += 1
            name = f"{var}_{self._fresh}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def _expand(
        self, e: ast.Expr, subst: dict[str, ast.Expr], stack: tuple[str, ...], hygienic: bool
    ) -> ast.Expr:
        if isinstance(e, ast.Ident) and e.name in subst:
            return subst[e.name]
        if (
            isinstance(e, ast.Call)
            and e.target is not None
            and e.function in ("called", "count")
            and len(e.args) in (1, 3)
            and (len(e.args) == 1 or isinstance(e.args[1], ast.Ident))
        ):
            expanded = _history_macro(e.function, e.target, e.args, e.span)
            return self._expand(expanded, subst, stack, hygienic)
        if isinstance(e, ast.Comprehension):
            # The target is read outside the variable's scope; the body and filter inside it.
            target = self._expand(e.target, subst, stack, hygienic)
            inner = {k: v for k, v in subst.items() if k != e.var}
            var = e.var
            if hygienic:  # a body's bound variable: fresh, so no argument can be captured
                var = self._rename(e.var)
                inner[e.var] = ast.Ident(var, span=e.span)
            return dataclasses.replace(
                e,
                target=target,
                var=var,
                body=self._expand(e.body, inner, stack, hygienic),
                condition=self._expand(e.condition, inner, stack, hygienic)
                if e.condition is not None
                else None,
            )
        if isinstance(e, ast.Call) and e.target is None and e.function in self.defs:
            d = self.defs[e.function]
            args = [self._expand(a, subst, stack, hygienic) for a in e.args]
            if e.function in stack:
                cycle = " → ".join([*stack[stack.index(e.function) :], e.function])
                self.diags.append(
                    Diagnostic(
                        "PL115",
                        f"predicates call each other in a cycle: {cycle}",
                        e.span,
                        "error",
                        "predicates cannot be recursive",
                    )
                )
                return ast.Literal_(False, "bool", span=e.span)
            if len(args) != len(d.params):
                self.diags.append(
                    Diagnostic(
                        "PL105",
                        f"{d.name}() takes {len(d.params)} argument"
                        f"{'s' if len(d.params) != 1 else ''}, got {len(args)}",
                        e.span,
                        "error",
                        hint=f"defined at {d.span}",
                    )
                )
                return ast.Literal_(False, "bool", span=e.span)
            inner = {p.name: a for p, a in zip(d.params, args, strict=True)}
            return self._expand(d.body, inner, (*stack, e.function), True)
        return ast.map_children(e, lambda c: self._expand(c, subst, stack, hygienic))


def _names(expr: ast.Expr) -> set[str]:
    """Every identifier and bound variable an expression spells (fresh names avoid them all)."""
    out: set[str] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Ident):
            out.add(node.name)
        elif isinstance(node, ast.Comprehension):
            out.add(node.var)
        elif (
            isinstance(node, ast.Call)
            and node.function in ("called", "count")
            and len(node.args) == 3
            and isinstance(node.args[1], ast.Ident)
        ):
            out.add(node.args[1].name)
        stack.extend(ast.children(node))
    return out


def free_names(expr: ast.Expr) -> list[tuple[str, Span]]:
    """Identifiers an expression reads that no macro inside it binds, in source order."""
    out: list[tuple[str, Span]] = []

    def walk(node: ast.Expr, bound: frozenset[str]) -> None:
        if isinstance(node, ast.Ident):
            if node.name not in bound:
                out.append((node.name, node.span))
            return
        if isinstance(node, ast.Comprehension):
            walk(node.target, bound)
            inner = bound | {node.var}
            if node.condition is not None:
                walk(node.condition, inner)
            walk(node.body, inner)
            return
        if (
            isinstance(node, ast.Call)
            and node.target is not None
            and node.function in ("called", "count")
            and len(node.args) == 3
            and isinstance(node.args[1], ast.Ident)
        ):
            walk(node.target, bound)
            walk(node.args[0], bound)
            walk(node.args[2], bound | {node.args[1].name})
            return
        for c in ast.children(node):
            walk(c, bound)

    walk(expr, frozenset())
    return out


def _history_macro(name: str, target: ast.Expr, args: tuple[ast.Expr, ...], span: Span) -> ast.Expr:
    """``session.called(T[, c, P])`` → ``session.calls.exists(c, <allowed call to T> && P)``.

    Only calls that were allowed (and so ran) count; ``session.calls`` keeps all.
    """
    var = args[1].name if len(args) == 3 else "__call"  # type: ignore[union-attr]
    call = ast.Ident(var, span=span)
    cond: ast.Expr = ast.Binary(
        "&&",
        ast.Binary(
            "==",
            ast.Select(call, "effect", span=span),
            ast.Literal_("allow", "string", span=span),
            span=span,
        ),
        ast.Call("tool_matches", (ast.Select(call, "tool", span=span), args[0]), span=span),
        span=span,
    )
    if len(args) == 3:
        cond = ast.Binary("&&", cond, args[2], span=span)
    calls = ast.Select(target, "calls", span=span)
    if name == "called":
        return ast.Comprehension("exists", calls, var, cond, span=span)
    return ast.Call("size", (ast.Comprehension("filter", calls, var, cond, span=span),), span=span)


def depth(expr: ast.Expr) -> int:
    """The real nesting of ``expr``: a chain of ``&&`` or ``||`` counts as one level, however long."""
    return ast.nesting(expr)[0]


# ---------------------------------------------------------------- the check


SESSION_CALL = Type(
    "object",
    fields=(
        ("tool", FieldType(STRING)),
        ("args", FieldType(DYN_MAP)),
        ("effect", FieldType(STRING)),
        ("at", FieldType(TIMESTAMP)),
    ),
)
SESSION = Type(
    "object", fields=(("id", FieldType(STRING)), ("calls", FieldType(list_of(SESSION_CALL))))
)


def scope_for(policy: Policy, tool: str | None) -> Scope:
    info = policy.tools.get(tool) if tool else None
    args = info.args if info is not None else DYN_MAP
    return Scope(
        args=args,
        principal=policy.principal or DYN_MAP,
        context=policy.context or DYN_MAP,
        data=policy_data_type(policy),
        tool=tool,
        session=SESSION if policy.session is not None else None,
    )


def rule_tools(policy: Policy, patterns: Iterable[ast.ToolPattern]) -> list[str | None]:
    """The declared tools a rule applies to (None: undeclared tools, untyped args)."""
    names: list[str | None] = []
    for p in patterns:
        for name in policy.tools_matching(p.pattern):
            if name not in names:
                names.append(name)
    if policy.open_tools or any(p.is_glob for p in patterns):
        names.append(None)
    return names


def check(
    files: list[ast.PolicyFile],
    data: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
) -> tuple[Policy, list[Diagnostic]]:
    """Assemble and check; returns the policy and every diagnostic, sorted."""
    diags: list[Diagnostic] = []
    policy = Assembler(diags).assemble(files, data or {}, sources or {})
    expander = Expander(policy.defs, diags)
    _check_defs(policy, expander, diags)
    policy.rules = [_expand_rule(r, expander, diags) for r in policy.rules]
    policy.limits = [_expand_limit(r, expander, diags) for r in policy.limits]
    policy.assertions = [
        dataclasses.replace(a, when=_expand_checked(a.when, expander, diags))
        for a in policy.assertions
    ]
    if policy.session is not None:
        key = _expand_checked(policy.session.key, expander, diags)
        policy.session = dataclasses.replace(policy.session, key=key or policy.session.key)
    for rule in policy.rules:
        _check_patterns(policy, rule.tools, diags)
        for tool in rule_tools(policy, rule.tools):
            typer = Typer(scope_for(policy, tool), diags, policy)
            for clause, where in ((rule.when, "'when'"), (rule.unless, "'unless'")):
                if clause is not None:
                    typer._expect_bool(typer.infer(clause), clause.span, f"the {where} condition")
            if rule.because is not None:
                for part in rule.because.parts:
                    if not isinstance(part, str):
                        typer.infer(part)
    for breaker in policy.breakers:
        _check_patterns(policy, breaker.tools, diags)
    for limit in policy.limits:
        _check_patterns(policy, limit.tools, diags)
        for tool in rule_tools(policy, limit.tools):
            typer = Typer(scope_for(policy, tool), diags, policy)
            if limit.cost is not None:
                t = typer.infer(limit.cost)
                if not (is_numeric(t) or t.kind == "dyn"):
                    typer.error("PL103", f"sum() needs a number, not {an(t)}", limit.cost.span)
            if limit.key is not None:
                typer.infer(limit.key)
            if limit.when is not None:
                typer._expect_bool(typer.infer(limit.when), limit.when.span, "the limit's 'when'")
    if policy.session is not None:
        typer = Typer(scope_for(policy, None), diags, policy)
        key_t = typer.infer(policy.session.key)
        if key_t.base.kind not in ("string", "int", "dyn"):
            typer.error(
                "PL103",
                f"a session key must be a string or an int, not {an(key_t)}",
                policy.session.key.span,
            )
    for a in policy.assertions:
        for tool in rule_tools(policy, a.tools):
            if a.when is not None:
                typer = Typer(scope_for(policy, tool), diags, policy)
                typer._expect_bool(typer.infer(a.when), a.when.span, "an assertion's 'when'")
    return policy, sorted_unique(diags)


def _check_defs(policy: Policy, expander: Expander, diags: list[Diagnostic]) -> None:
    for d in policy.defs.values():
        if d.name in GLOBALS or d.name in VARIABLES or d.name == "has":
            diags.append(
                Diagnostic(
                    "PL115",
                    f"'{d.name}' is a built-in name; a predicate cannot replace it",
                    d.span,
                    "error",
                )
            )
        params = {p.name for p in d.params}
        for name, span in free_names(d.body):
            if name in params or name in VARIABLES:
                continue
            diags.append(
                Diagnostic(
                    "PL106",
                    f"'{name}' is not a parameter of {d.name}() nor a variable it binds",
                    span,
                    "error",
                    hint=f"a predicate sees only its parameters ({', '.join(sorted(params)) or 'none'}) "
                    "and args, principal, context, data, now, tool and session; pass the value in as "
                    "an argument",
                )
            )
        expander.expand(d.body, (d.name,))


def _expand_checked(
    e: ast.Expr | None, expander: Expander, diags: list[Diagnostic]
) -> ast.Expr | None:
    if e is None:
        return None
    out = expander.expand(e)
    if out is not e and depth(out) > MAX_DEPTH:
        diags.append(
            Diagnostic(
                "PL005",
                f"expression too deep once predicates are inlined (more than {MAX_DEPTH} levels)",
                e.span,
                "error",
            )
        )
        return ast.Literal_(False, "bool", span=e.span)
    return out


def _expand_rule(r: ast.Rule, expander: Expander, diags: list[Diagnostic]) -> ast.Rule:
    because = r.because
    if because is not None and not because.is_plain:
        because = dataclasses.replace(
            because,
            parts=tuple(
                p if isinstance(p, str) else (_expand_checked(p, expander, diags) or p)
                for p in because.parts
            ),
        )
    return dataclasses.replace(
        r,
        when=_expand_checked(r.when, expander, diags),
        unless=_expand_checked(r.unless, expander, diags),
        because=because,
    )


def _expand_limit(r: ast.LimitRule, expander: Expander, diags: list[Diagnostic]) -> ast.LimitRule:
    return dataclasses.replace(
        r,
        cost=_expand_checked(r.cost, expander, diags),
        key=_expand_checked(r.key, expander, diags),
        when=_expand_checked(r.when, expander, diags),
    )


def _check_patterns(
    policy: Policy, patterns: tuple[ast.ToolPattern, ...], diags: list[Diagnostic]
) -> None:
    if policy.open_tools:
        return
    for p in patterns:
        if policy.tools_matching(p.pattern):
            continue
        if p.is_glob:
            diags.append(
                Diagnostic(
                    "PL101",
                    f"no declared tool matches '{p.pattern}'",
                    p.span,
                    "warning",
                    "the rule still applies to undeclared tools under 'default allow'",
                )
            )
        else:
            diags.append(
                Diagnostic(
                    "PL101",
                    f"tool '{p.pattern}' is not declared",
                    p.span,
                    "error",
                    suggest(p.pattern, policy.tools) or f"declare it: tool {p.pattern} {{ ... }}",
                )
            )


def check_or_raise(
    files: list[ast.PolicyFile],
    data: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
) -> tuple[Policy, list[Diagnostic]]:
    policy, diags = check(files, data, sources)
    if any(d.severity == "error" for d in diags):
        raise PolicyCheckError(diags, sources)
    return policy, diags
