"""IR → Python source: one readable function per tool.

The writer emits plain Python close to what a person would write by hand:
native operators where the static types make Python agree with CEL, checked
helpers from :mod:`policylang.runtime.celops` everywhere else. No text from a
policy is ever pasted into the source: every literal, field name, regex and
rule reference is a module-level constant bound by name (``K3_amount``), and
generated identifiers are ours alone. ``line_map`` maps generated lines back to
the rule they came from.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from policylang.compiler.plan import LimitPlan, RulePlan, ToolPlan
from policylang.errors import Span
from policylang.language import ast
from policylang.language.builtins import GLOBALS, METHODS
from policylang.language.checker import Scope, Typer
from policylang.language.types import BOOL, DYN, Type, is_numeric, same_family

_SAFE_SUFFIX = re.compile(r"[^a-z0-9]+")


def impl_name(call: ast.Call, target: Any = None) -> str | None:
    """Which implementation a call node binds to (shared with the interpreter)."""
    if call.target is None:
        if call.function == "today":
            return "today"
        sigs = GLOBALS.get(call.function)
    else:
        sigs = METHODS.get(call.function)
    return sigs[0].impl if sigs else None


@dataclass
class Module:
    """Generated source plus the constants it is executed with."""

    lines: list[str] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    line_map: dict[int, Span] = field(default_factory=dict)
    tool_ranges: dict[str | None, tuple[int, int]] = field(default_factory=dict)
    messages: dict[tuple[str, int], str] = field(default_factory=dict)  # (fname, rule) -> function
    function_names: dict[str | None, str] = field(default_factory=dict)
    fused_bodies: dict[tuple[str, ...], str] = field(default_factory=dict)  # body lines -> function
    data_clean: bool | None = (
        None  # the policy's data holds no NaN/inf (worked out once, on first use)
    )
    _const_ids: dict[tuple[str, str, Any], str] = field(default_factory=dict)
    _indent: int = 0

    def line(self, text: str = "", span: Span | None = None) -> None:
        self.lines.append("    " * self._indent + text if text else "")
        if span is not None:
            self.line_map[len(self.lines)] = span

    def indent(self) -> None:
        self._indent += 1

    def dedent(self) -> None:
        self._indent -= 1

    def const(self, value: Any, hint: str = "", prefix: str = "K") -> str:
        """Bind ``value`` to a fresh module-level name and return that name."""
        try:
            key: tuple[str, str, Any] = (
                (prefix, type(value).__name__, value)
                if _hashable(value)
                else (prefix, "id", id(value))
            )
        except TypeError:
            key = (prefix, "id", id(value))
        shared = prefix in (
            "K",
            "F",
        )  # values and functions: one name each, so equal code is equal text
        if shared and key in self._const_ids:
            return self._const_ids[key]
        suffix = _SAFE_SUFFIX.sub("_", hint.lower()).strip("_")[:20]
        name = f"{prefix}{len(self.constants)}" + (f"_{suffix}" if suffix else "")
        self.constants[name] = value
        if shared:
            self._const_ids[key] = name
        return name

    @property
    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


def _hashable(value: Any) -> bool:
    if isinstance(value, list | dict | set):
        return False
    try:
        hash(value)
    except TypeError:
        return False
    return True


_NATIVE_CMP = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_HELPER_CMP = {"==": "_eq", "!=": "_ne", "<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_HELPER_ARITH = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "%": "_mod"}


class ExprEmitter:
    """Turns one typed expression into a Python expression string."""

    def __init__(
        self,
        module: Module,
        typer: Typer,
        data: dict[str, Any],
        functions: dict[str, Any] | None = None,
    ):
        self.m = module
        self.typer = typer
        self.data = data
        self.functions = functions or {}
        self.locals: dict[str, str] = {}
        self.clean_locals: set[str] = set()  # macro variables ranging over NaN-free values
        self.counter = 0

    def t(self, e: ast.Expr) -> Type:
        return self.typer.types.get(id(e), DYN)

    def emit(self, e: ast.Expr) -> str:  # noqa: C901 - one case per node kind
        match e:
            case ast.Literal_(value=value, kind=kind):
                if kind == "bool":
                    return "True" if value else "False"
                if kind == "null":
                    return "None"
                if kind == "int" and type(value) is int and 0 <= value < 2**31:
                    return str(value)
                return self.m.const(value, kind)
            case ast.Ident(name=name):
                if name in self.locals:
                    return self.locals[name]
                return {
                    "args": "a",
                    "principal": "p",
                    "context": "c",
                    "now": "now",
                    "tool": "tool",
                    "session": "s",
                    "data": self.m.const(self.data, "data"),
                }.get(name, "_unknown_name()")
            case ast.Select(operand=ast.Ident(name="data"), field=name) if (
                "data" not in self.locals and name in self.data
            ):
                return self.m.const(self.data[name], f"data_{name}")
            case ast.Select(operand=operand, field=name):
                base = self.t(operand)
                key = self.m.const(name, name)
                if base.kind in ("object", "map"):
                    return f"{self.emit(operand)}[{key}]"
                return f"_select({self.emit(operand)}, {key})"
            case ast.Has(operand=operand, field=name):
                return f"_has({self.emit(operand)}, {self.m.const(name, name)})"
            case ast.Index(operand=operand, index=index):
                base, it = self.t(operand), self.t(index)
                if base.kind in ("object", "map") and it.base.kind == "string":
                    return f"{self.emit(operand)}[{self.emit(index)}]"
                return f"_index({self.emit(operand)}, {self.emit(index)})"
            case ast.Unary(op="!", operand=operand):
                inner = self.emit(operand)
                return f"(not {inner})" if self.t(operand) == BOOL else f"_not({inner})"
            case ast.Unary(op="-", operand=operand):
                inner = self.emit(operand)
                return f"(-{inner})" if self.t(operand).base.kind == "double" else f"_neg({inner})"
            case ast.Binary():
                return self._binary(e)
            case ast.Conditional(cond=cond, then=then, otherwise=otherwise):
                c = self.bool_expr(cond)
                return f"({self.emit(then)} if {c} else {self.emit(otherwise)})"
            case ast.ListExpr(items=items):
                if all(isinstance(i, ast.Literal_) for i in items):
                    return self.m.const([i.value for i in items], "list")  # type: ignore[union-attr]
                return "[" + ", ".join(self.emit(i) for i in items) + "]"
            case ast.MapExpr(entries=entries):
                pairs = ", ".join(f"({self.emit(k)}, {self.emit(v)})" for k, v in entries)
                return f"_mkmap(({pairs}{',' if len(entries) == 1 else ''}))"
            case ast.Call():
                return self._call(e)
            case ast.Comprehension():
                return self._comprehension(e)
        raise ValueError(f"cannot compile {type(e).__name__}")  # pragma: no cover

    def bool_expr(self, e: ast.Expr) -> str:
        code = self.emit(e)
        return code if self.t(e) == BOOL else f"_truthy({code})"

    def _binary(self, e: ast.Binary) -> str:
        op = e.op
        lt, rt = self.t(e.left), self.t(e.right)
        if op in ("&&", "||"):
            word = "and" if op == "&&" else "or"
            return f"({self.bool_expr(e.left)} {word} {self.bool_expr(e.right)})"
        if op in _NATIVE_CMP:
            if op in ("==", "!=") and (_is_null(e.left) or _is_null(e.right)):
                other = e.right if _is_null(e.left) else e.left
                return f"({self.emit(other)} {'is' if op == '==' else 'is not'} None)"
            native = same_family(lt, rt) and (op in ("==", "!=") or lt.base.kind != "bool")
            if (
                native
                and op not in ("==", "!=")
                and is_numeric(lt)
                and not (self._clean(e.left) and self._clean(e.right))
            ):
                native = False  # a NaN may turn up here: the helper makes ordering it an error
            if native:
                return f"({self.emit(e.left)} {_NATIVE_CMP[op]} {self.emit(e.right)})"
            return f"{_HELPER_CMP[op]}({self.emit(e.left)}, {self.emit(e.right)})"
        if op == "in":
            return self._in(e, lt, rt)
        lb, rb = lt.base, rt.base
        native = (
            (lb.kind == rb.kind == "double" and op in "+-*/")
            or (lb.kind == rb.kind == "string" and op == "+")
            or (lb.kind == "timestamp" and rb.kind == "duration" and op in "+-")
            or (lb.kind == rb.kind == "duration" and op in "+-")
            or (lb.kind == rb.kind == "timestamp" and op == "-")
        )
        if native:
            return f"({self.emit(e.left)} {op} {self.emit(e.right)})"
        return f"{_HELPER_ARITH[op]}({self.emit(e.left)}, {self.emit(e.right)})"

    def _clean(self, e: ast.Expr) -> bool:
        """Whether ``e``'s value is sure to hold no NaN (or infinity), worked out at load time.

        Python's native ``<`` answers ``False`` for NaN, where policylang errs
        (so that a NaN fails a ``> limit`` deny closed); a native comparison is
        only emitted when neither side can be NaN. Request values are checked
        for NaN and infinity on entry, ints never are, so reads of inputs,
        literals and int or text results are clean; double arithmetic and
        ``double()`` are not.
        """
        if _float_free(self.t(e)):
            return True
        match e:
            case ast.Literal_(value=value):
                return not (type(value) is float and value - value != 0.0)
            case ast.Ident(name=name):
                if name in self.locals:
                    return self.locals[name] in self.clean_locals
                if name == "data":
                    return self._data_clean()
                return name in ("args", "principal", "context", "now", "tool", "session")
            case ast.Select(operand=operand) | ast.Index(operand=operand):
                return self._clean(operand)
            case ast.Unary(op="-", operand=operand):
                return self._clean(operand)
            case ast.Binary(op="+", left=left, right=right) if self.t(e).base.kind == "list":
                return self._clean(left) and self._clean(right)
            case ast.Conditional(then=then, otherwise=otherwise):
                return self._clean(then) and self._clean(otherwise)
            case ast.ListExpr(items=items):
                return all(self._clean(i) for i in items)
            case ast.MapExpr(entries=entries):
                return all(self._clean(k) and self._clean(v) for k, v in entries)
            case ast.Call(function="dyn", target=None, args=(arg,)):
                return self._clean(arg)
            case ast.Comprehension(kind="filter", target=target):
                return self._clean(target)
        return False

    def _data_clean(self) -> bool:
        if self.m.data_clean is None:
            from policylang.runtime.validation import nonfinite_path

            self.m.data_clean = nonfinite_path(self.data) is None
        return self.m.data_clean

    def _in(self, e: ast.Binary, lt: Type, rt: Type) -> str:
        left = self.emit(e.left)
        lb = lt.base
        scalar = lb.kind in ("string", "timestamp", "duration", "date") or is_numeric(lb)
        if (
            isinstance(e.right, ast.ListExpr)
            and scalar
            and e.right.items
            and all(
                isinstance(i, ast.Literal_) and same_family(lb, self.t(i)) for i in e.right.items
            )
        ):
            members = frozenset(i.value for i in e.right.items)  # type: ignore[union-attr]
            return f"({left} in {self.m.const(members, 'set')})"
        if (
            isinstance(e.right, ast.Select)
            and isinstance(e.right.operand, ast.Ident)
            and e.right.operand.name == "data"
            and "data" not in self.locals
            and e.right.field in self.data
            and lb.kind == "string"
        ):
            values = self.data[e.right.field]
            if isinstance(values, list | tuple) and all(type(v) is str for v in values):
                return f"({left} in {self.m.const(frozenset(values), 'set_' + e.right.field)})"
            if isinstance(values, dict) and all(type(k) is str for k in values):
                return f"({left} in {self.emit(e.right)})"
        rb = rt.base
        if rb.kind == "list" and same_family(lb, rb.params[0]) and lb.kind == "string":
            return f"({left} in {self.emit(e.right)})"
        if (
            rb.kind in ("map", "object")
            and lb.kind == "string"
            and (rb.kind == "object" or rb.params[0].base.kind == "string")
        ):
            return f"({left} in {self.emit(e.right)})"
        return f"_in({left}, {self.emit(e.right)})"

    def _call(self, e: ast.Call) -> str:
        impl = impl_name(e)
        if impl is None:
            return "_unknown_function()"
        folded = self._fold(impl, e)
        if folded is not None:
            return folded
        args = [self.emit(a) for a in e.args]
        if impl == "today":
            fn = self.m.const("today", "today", prefix="F")
            return f"{fn}(now{''.join(', ' + a for a in args)})"
        recv_t = self.t(e.target) if e.target is not None else None
        if e.target is not None:
            recv = self.emit(e.target)
            strs = (
                recv_t is not None
                and recv_t.base.kind == "string"
                and all(self.t(a).base.kind == "string" for a in e.args)
            )
            if strs and impl == "starts_with":
                return f"{recv}.startswith({args[0]})"
            if strs and impl == "ends_with":
                return f"{recv}.endswith({args[0]})"
            if strs and impl == "contains":
                return f"({args[0]} in {recv})"
            if impl == "matches" and recv_t is not None and recv_t.base.kind == "string":
                fast = self._regex(e.args[0], recv)
                if fast:
                    return fast
            if (
                impl == "size"
                and recv_t is not None
                and recv_t.base.kind in ("string", "list", "map")
            ):
                return f"len({recv})"
            args = [recv, *args]
        else:
            if impl == "size" and self.t(e.args[0]).base.kind in ("string", "list", "map"):
                return f"len({args[0]})"
            if impl == "matches" and self.t(e.args[0]).base.kind == "string":
                fast = self._regex(e.args[1], args[0])
                if fast:
                    return fast
        fn = self.m.const(impl, impl, prefix="F")
        return f"{fn}({', '.join(args)})"

    _FOLDABLE = frozenset({"to_timestamp", "to_duration", "date"})

    def _fold(self, impl: str, e: ast.Call) -> str | None:
        """``timestamp("2025-01-01T00:00:00Z")`` and friends: computed once, bound as a constant.

        A literal that does not convert stays a run-time call, so it still fails closed
        with CEL's own error message.
        """
        fn = self.functions.get(impl)
        if (
            impl not in self._FOLDABLE
            or fn is None
            or e.target is not None
            or not all(isinstance(a, ast.Literal_) for a in e.args)
        ):
            return None
        try:
            value = fn(*[a.value for a in e.args])  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - leave it to run time
            return None
        return self.m.const(value, impl)

    def _regex(self, pattern: ast.Expr, subject: str) -> str | None:
        if isinstance(pattern, ast.Literal_) and isinstance(pattern.value, str):
            from policylang.runtime.celops import compile_regex

            try:
                compiled = compile_regex(pattern.value)
            except Exception:  # noqa: BLE001 - a bad pattern takes the checked path and errors there
                return None
            return f"({self.m.const(compiled, 're', prefix='R')}.search({subject}) is not None)"
        return None

    def _constant_strings(self, e: ast.Expr) -> list[str] | None:
        """The members of a list known at compile time (a literal or a data list), if all strings."""
        if isinstance(e, ast.ListExpr) and all(isinstance(i, ast.Literal_) for i in e.items):
            values: Any = [i.value for i in e.items]  # type: ignore[union-attr]
        elif (
            isinstance(e, ast.Select)
            and isinstance(e.operand, ast.Ident)
            and e.operand.name == "data"
            and "data" not in self.locals
            and e.field in self.data
        ):
            values = self.data[e.field]
        else:
            return None
        if isinstance(values, list | tuple) and all(type(v) is str for v in values):
            return list(values)
        return None

    def _affix_any(self, e: ast.Comprehension) -> str | None:
        """``L.exists(d, x.endsWith("@" + d))`` over a constant list L: one ``x.endswith(tuple)``.

        Python tests all the affixes in one C call; the comprehension would build
        one string per member on every call. ``x`` must not mention ``d``.
        """
        body = e.body
        if (
            e.kind != "exists"
            or not isinstance(body, ast.Call)
            or body.target is None
            or len(body.args) != 1
            or impl_name(body) not in ("ends_with", "starts_with")
        ):
            return None
        members = self._constant_strings(e.target)
        if (
            members is None
            or _mentions(body.target, e.var)
            or self.t(body.target).base.kind != "string"
        ):
            return None
        arg = body.args[0]
        prefix = suffix = ""
        if isinstance(arg, ast.Binary) and arg.op == "+":
            if isinstance(arg.left, ast.Literal_) and type(arg.left.value) is str:
                prefix, arg = arg.left.value, arg.right
            elif isinstance(arg.right, ast.Literal_) and type(arg.right.value) is str:
                suffix, arg = arg.right.value, arg.left
        if not (isinstance(arg, ast.Ident) and arg.name == e.var):
            return None
        affixes = self.m.const(tuple(prefix + v + suffix for v in members), "affixes")
        method = "endswith" if impl_name(body) == "ends_with" else "startswith"
        return f"{self.emit(body.target)}.{method}({affixes})"

    def _comprehension(self, e: ast.Comprehension) -> str:
        fused = self._affix_any(e)
        if fused is not None:
            return fused
        target_t = self.t(e.target).base
        target = self.emit(e.target)
        if target_t.kind not in ("list", "map", "object"):
            target = f"_iter({target})"
        self.counter += 1
        var = f"v{self.counter}"
        saved = self.locals.get(e.var)
        if self._clean(e.target):
            self.clean_locals.add(var)
        self.locals[e.var] = var
        try:
            body = self.emit(e.body) if e.kind == "map" else self.bool_expr(e.body)
            cond = self.bool_expr(e.condition) if e.condition is not None else None
        finally:
            if saved is None:
                del self.locals[e.var]
            else:
                self.locals[e.var] = saved
        if e.kind == "all":
            return f"all({body} for {var} in {target})"
        if e.kind == "exists":
            return f"any({body} for {var} in {target})"
        if e.kind == "exists_one":
            return f"(sum(1 for {var} in {target} if {body}) == 1)"
        if e.kind == "filter":
            return f"[{var} for {var} in {target} if {body}]"
        if cond is not None:
            return f"[{body} for {var} in {target} if {cond}]"
        return f"[{body} for {var} in {target}]"


def _mentions(e: Any, name: str) -> bool:
    """Whether an expression reads the variable ``name`` (conservative: any Ident of that name)."""
    if isinstance(e, ast.Ident):
        return e.name == name
    if isinstance(e, tuple):
        return any(_mentions(x, name) for x in e)
    if dataclasses.is_dataclass(e):
        return any(_mentions(getattr(e, f.name), name) for f in dataclasses.fields(e))
    return False


_BRACKETS = re.compile(r"[^()\[\]]+")
_BRACKET_STEP = {"(": 1, "[": 1, ")": -1, "]": -1}


def _bracket_depth(code: str) -> int:
    """How deeply brackets nest in generated code (no policy text is in it: constants are names).

    A long balanced chain has thousands of brackets but nests a dozen deep;
    only real nesting needs the trial compile that finds Python's own limit.
    """
    return max(
        itertools.accumulate(map(_BRACKET_STEP.__getitem__, _BRACKETS.sub("", code))), default=0
    )


_FLOAT_FREE_KINDS = frozenset(
    {"int", "string", "bytes", "bool", "null", "timestamp", "duration", "date"}
)


def _float_free(t: Type) -> bool:
    """Values of this static type never are or hold a double (so never a NaN)."""
    k = t.kind
    if k in _FLOAT_FREE_KINDS:
        return True
    if k == "enum":
        return all(type(v) is not float for v in t.values)
    if k in ("nullable", "list", "map"):
        return all(_float_free(p) for p in t.params)
    if k == "object":
        return all(_float_free(f.type) for _, f in t.fields)
    return False


def _is_null(e: ast.Expr) -> bool:
    return isinstance(e, ast.Literal_) and e.kind == "null"


# ---------------------------------------------------------------- whole functions


class ToolWriter:
    """Writes the evaluator function of one tool into a shared module."""

    def __init__(
        self,
        module: Module,
        scope: Scope,
        data: dict[str, Any],
        reference: bool = False,
        functions: dict[str, Any] | None = None,
    ):
        self.m = module
        self.scope = scope
        self.data = data
        self.functions = functions
        self.reference = reference  # every condition goes to the interpreter (the oracle)

    def expression(self, e: ast.Expr, want_bool: bool = True) -> str | None:
        """Python code for ``e``, or None when it cannot be compiled natively."""
        typer = Typer(dataclasses.replace(self.scope, locals={}))
        typer.infer(e)
        emitter = ExprEmitter(self.m, typer, self.data, self.functions)
        try:
            code = emitter.bool_expr(e) if want_bool else emitter.emit(e)
            if code.count("(") + code.count("[") > 150 and _bracket_depth(code) > 150:
                compile(
                    code, "<policy expression>", "eval"
                )  # near Python's own nesting limit (200)
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            return None
        return code

    def write(self, plan: ToolPlan, fname: str) -> None:
        m = self.m
        start = len(m.lines) + 1
        m.line(f"def {fname}(a, p, c, now, tool, s):")
        m.indent()
        m.line("hits = []")
        m.line("errs = None")
        for effect in ("deny", "confirm", "allow"):
            rules: list[RulePlan] = getattr(plan, effect)
            if not rules:
                continue
            for rule in rules:
                self._rule(rule)
            m.line("if hits:")
            m.indent()
            m.line(f"return {effect.upper()}, hits, errs")
            m.dedent()
        m.line("return None, hits, errs")
        m.dedent()
        m.line()
        if plan.limits:
            self._limits(plan.limits, fname)
        if not self.reference:
            for rule in plan.rules():
                self._message(rule, fname)
        m.tool_ranges[plan.tool] = (start, len(m.lines))
        m.function_names[plan.tool] = fname

    def _rule(self, rule: RulePlan) -> None:
        m = self.m
        ref = m.const(rule, f"{rule.effect}_{rule.name or ''}", prefix="R")
        if isinstance(rule.condition, ast.Literal_) and rule.condition.value is True:
            m.line(f"hits.append({ref})", rule.span)
            return
        code = None if self.reference else self.expression(rule.condition)
        if code is None:  # too deep for Python's own parser: the interpreter decides it
            m.line(f"errs = _recover({ref}, hits, errs, a, p, c, now, tool, s)", rule.span)
            return
        m.line("try:", rule.span)
        m.indent()
        m.line(f"if {code}:", rule.span)
        m.indent()
        m.line(f"hits.append({ref})", rule.span)
        m.dedent()
        m.dedent()
        m.line("except Exception:", rule.span)
        m.indent()
        m.line(f"errs = _recover({ref}, hits, errs, a, p, c, now, tool, s)", rule.span)
        m.dedent()

    def _message(self, rule: RulePlan, fname: str) -> None:
        """``<fname>_m<rule>`` returns the values of a because template's ``{...}`` parts."""
        if rule.because is None or rule.because.is_plain:
            return
        codes = [
            self.expression(part, want_bool=False)
            for part in rule.because.parts
            if not isinstance(part, str)
        ]
        if any(code is None for code in codes):
            return  # the interpreter renders this one
        name = f"{fname}_m{rule.index}"
        self.m.line(f"def {name}(a, p, c, now, tool, s):", rule.span)
        self.m.indent()
        self.m.line(f"return ({', '.join(codes)},)", rule.span)  # type: ignore[arg-type]
        self.m.dedent()
        self.m.line()
        self.m.messages[(fname, rule.index)] = name

    def _limits(self, limits: list[LimitPlan], fname: str) -> None:
        """``<fname>_limits`` returns, per limit, (applies, key, cost) — or raises."""
        m = self.m
        m.line(f"def {fname}_limits(a, p, c, now, tool, s):")
        m.indent()
        parts = []
        for lp in limits:
            lim = lp.limit
            when = self.expression(lim.when) if lim.when is not None else "True"
            key = self.expression(lim.key, want_bool=False) if lim.key is not None else "None"
            cost = self.expression(lim.cost, want_bool=False) if lim.cost is not None else "1"
            if when is None or key is None or cost is None or self.reference:
                ref = m.const(lp, "limit", prefix="L")
                parts.append(f"_limit_slow({ref}, a, p, c, now, tool, s)")
            else:
                parts.append(f"((True, {key}, {cost}) if {when} else _SKIP)")
        m.line("return (", limits[0].span)
        m.indent()
        for part in parts:
            m.line(part + ",")
        m.dedent()
        m.line(")")
        m.dedent()
        m.line()


def new_module() -> Module:
    m = Module()
    m.line('"""Generated by policylang: one evaluator per tool. Do not edit."""')
    m.line()
    return m


__all__ = [
    "Module",
    "ToolWriter",
    "ExprEmitter",
    "new_module",
    "impl_name",
    "date",
    "datetime",
    "timedelta",
]
