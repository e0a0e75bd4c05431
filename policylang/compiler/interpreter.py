"""The reference interpreter: walks checked expressions with exact CEL semantics.

It is deliberately simple. It serves as the oracle the compiled evaluators are
tested against, and as their slow path: when generated code raises, the
engine re-evaluates that one condition here to get CEL's exact answer (errors
are values, absorbed by ``&&``, ``||``, ``?:`` and the macros as CEL requires).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from policylang.errors import EvalError
from policylang.language import ast
from policylang.runtime import celops


class Err:
    """An evaluation error carried as a value."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message

    def __repr__(self) -> str:
        return f"Err({self.message!r})"


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": celops.eq,
    "!=": celops.ne,
    "<": celops.lt,
    "<=": celops.le,
    ">": celops.gt,
    ">=": celops.ge,
    "+": celops.add,
    "-": celops.sub,
    "*": celops.mul,
    "/": celops.div,
    "%": celops.mod,
    "in": celops.in_,
}


class Interpreter:
    """Evaluates expressions against one request's variables."""

    def __init__(
        self,
        functions: dict[str, Callable[..., Any]],
        impl_of: Callable[[ast.Call, Any], str | None],
    ):
        self.functions = functions
        self.impl_of = impl_of  # resolves a call node to an implementation name

    def evaluate(self, expr: ast.Expr, env: dict[str, Any]) -> Any:
        """The value of ``expr``, or raise EvalError."""
        out = self.eval(expr, env)
        if isinstance(out, Err):
            raise EvalError(out.message)
        return out

    def eval(self, e: ast.Expr, env: dict[str, Any]) -> Any:  # noqa: C901 - one case per node
        try:
            match e:
                case ast.Literal_(value=value):
                    return value
                case ast.Ident(name=name):
                    if name in env:
                        return env[name]
                    return Err(f"unknown name '{name}'")
                case ast.Select(operand=operand, field=name):
                    base = self.eval(operand, env)
                    return base if isinstance(base, Err) else celops.select(base, name)
                case ast.Has(operand=operand, field=name):
                    base = self.eval(operand, env)
                    if isinstance(base, Err):
                        return base
                    if not isinstance(base, dict):
                        return Err(f"has() needs a map, not a {celops.type_name(base)}")
                    return celops.has(base, name)
                case ast.Index(operand=operand, index=index):
                    base, key = self.eval(operand, env), self.eval(index, env)
                    return _first_err(base, key) or celops.index(base, key)
                case ast.Unary(op=op, operand=operand):
                    v = self.eval(operand, env)
                    if isinstance(v, Err):
                        return v
                    return celops.not_(v) if op == "!" else celops.neg(v)
                case ast.Binary(op="&&", left=left, right=right):
                    return self._logic(left, right, env, stop=False)
                case ast.Binary(op="||", left=left, right=right):
                    return self._logic(left, right, env, stop=True)
                case ast.Binary(op=op, left=left, right=right):
                    a, b = self.eval(left, env), self.eval(right, env)
                    return _first_err(a, b) or _BINARY[op](a, b)
                case ast.Conditional(cond=cond, then=then, otherwise=otherwise):
                    c = self.eval(cond, env)
                    if isinstance(c, Err):
                        return c
                    return self.eval(then if celops.truthy(c) else otherwise, env)
                case ast.ListExpr(items=items):
                    values = [self.eval(i, env) for i in items]
                    return next((v for v in values if isinstance(v, Err)), None) or values
                case ast.MapExpr(entries=entries):
                    out: dict[Any, Any] = {}
                    for k, v in entries:
                        kv, vv = self.eval(k, env), self.eval(v, env)
                        err = _first_err(kv, vv)
                        if err:
                            return err
                        if type(kv) not in (str, int, bool):
                            return Err(
                                f"a map key must be a string, int or bool, not {celops.type_name(kv)}"
                            )
                        if any(celops.eq(kv, existing) for existing in out):
                            return Err(f"duplicate map key {celops.format_value(kv)}")
                        out[kv] = vv
                    return out
                case ast.Call():
                    return self._call(e, env)
                case ast.Comprehension():
                    return self._comprehension(e, env)
        except EvalError as exc:
            return Err(exc.message)
        except RecursionError:
            return Err("expression too deep to evaluate")
        except (
            _VALUE_ERRORS
        ) as exc:  # a builtin's bad value must stay a CEL error, absorbable by ||/&&
            return Err(_value_error(e, exc))
        return Err(f"cannot evaluate {type(e).__name__}")  # pragma: no cover

    def _logic(self, left: ast.Expr, right: ast.Expr, env: dict[str, Any], stop: bool) -> Any:
        """``&&`` (stop on false) and ``||`` (stop on true), commutative over errors."""
        a = self.eval(left, env)
        if a is stop:
            return stop
        if not isinstance(a, Err) and type(a) is not bool:
            a = Err(f"expected a bool, got {celops.type_name(a)}")
        b = self.eval(right, env)
        if b is stop:
            return stop
        if not isinstance(b, Err) and type(b) is not bool:
            b = Err(f"expected a bool, got {celops.type_name(b)}")
        if isinstance(a, Err):
            return a
        if isinstance(b, Err):
            return b
        return not stop

    def _call(self, e: ast.Call, env: dict[str, Any]) -> Any:
        target = self.eval(e.target, env) if e.target is not None else None
        args = [self.eval(a, env) for a in e.args]
        err = _first_err(target, *args)
        if err:
            return err
        impl = self.impl_of(e, target)
        if impl is None:
            return Err(f"unknown function '{e.function}'")
        if impl == "today":
            return self.functions["today"](env["now"], *args)
        fn = self.functions[impl]
        return fn(target, *args) if e.target is not None else fn(*args)

    def _comprehension(self, e: ast.Comprehension, env: dict[str, Any]) -> Any:
        target = self.eval(e.target, env)
        if isinstance(target, Err):
            return target
        if isinstance(target, list | tuple):
            items = list(target)
        elif isinstance(target, dict):
            items = list(target.keys())
        else:
            return Err(f"'{e.kind}' needs a list or a map, not a {celops.type_name(target)}")
        saved = env.get(e.var, _MISSING)
        try:
            return self._loop(e, items, env)
        finally:
            if saved is _MISSING:
                env.pop(e.var, None)
            else:
                env[e.var] = saved

    def _loop(self, e: ast.Comprehension, items: list[Any], env: dict[str, Any]) -> Any:
        results: list[Any] = []
        error: Err | None = None
        count = 0
        for item in items:
            env[e.var] = item
            if e.kind == "map":
                if e.condition is not None:
                    keep = self.eval(e.condition, env)
                    if isinstance(keep, Err):
                        return keep
                    if not celops.truthy(keep):
                        continue
                v = self.eval(e.body, env)
                if isinstance(v, Err):
                    return v
                results.append(v)
                continue
            v = self.eval(e.body, env)
            if not isinstance(v, Err) and type(v) is not bool:
                v = Err(f"the body of '{e.kind}' must be a bool, got {celops.type_name(v)}")
            if e.kind == "filter":
                if isinstance(v, Err):
                    return v
                if v:
                    results.append(item)
            elif isinstance(v, Err):
                if e.kind == "exists_one":
                    return v
                error = error or v
            elif e.kind == "all" and v is False:
                return False
            elif e.kind == "exists" and v is True:
                return True
            elif e.kind == "exists_one" and v is True:
                count += 1
        if e.kind == "all":
            return error if error else True
        if e.kind == "exists":
            return error if error else False
        if e.kind == "exists_one":
            return count == 1
        return results


_MISSING = object()
# What Python raises on a bad value (an impossible date, a huge number, odd text). The runtime
# raises EvalError itself wherever it knows of one; this is the net under every builtin, so
# that no such value escapes as an internal error and CEL's error absorption still holds.
_VALUE_ERRORS = (ValueError, ArithmeticError, TypeError, LookupError, AttributeError)


def _value_error(e: ast.Expr, exc: Exception) -> str:
    """An evaluation error's message for a raw Python exception: what failed, and where."""
    what = f"{e.function}()" if isinstance(e, ast.Call) else type(e).__name__.lower().rstrip("_")
    where = f" at {e.span.line}:{e.span.column}" if e.span.line else ""
    return f"{what} failed{where}: {exc or type(exc).__name__}"


def _first_err(*values: Any) -> Err | None:
    for v in values:
        if isinstance(v, Err):
            return v
    return None


def run_condition(interp: Interpreter, expr: ast.Expr, env: dict[str, Any]) -> bool | Err:
    """A rule condition's outcome: True, False, or the error that stopped it."""
    v = interp.eval(expr, env)
    if isinstance(v, Err):
        return v
    if type(v) is not bool:
        return Err(f"the condition gave a {celops.type_name(v)}, not a bool")
    return v


__all__ = ["Interpreter", "Err", "run_condition", "datetime"]
