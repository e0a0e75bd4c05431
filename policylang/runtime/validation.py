"""Declared types → fast argument validators that also normalise values.

Before any rule runs, a tool's arguments are checked against its declaration:
a missing required argument, an argument the tool does not declare, or a
value of the wrong type denies the call with a reason naming the parameter.
Timestamps, durations and dates arrive as text and leave as values. The
pydantic models in :func:`pydantic_model` are the reference these closures are
tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from policylang.errors import EvalError, RequestError
from policylang.language.types import FieldType, Type
from policylang.runtime import celops, timefuncs

Check = Callable[[Any, str], Any]  # (value, path) -> normalised value
MISSING = object()
MAX_DEPTH = 64


_CONTAINERS = (list, tuple, set, frozenset)
_SCALARS = frozenset({str, int, bool, type(None), bytes})


def all_finite(v: Any) -> bool:
    """True when no float anywhere in ``v`` (at any depth, map keys included) is NaN or ±inf.

    The fused path's quick test (see :func:`shape_check_lines`): the common
    request holds only strings, ints and bools and costs one type test per
    value. Deep or odd input (nesting past the recursion limit, values outside
    the model) raises, which the fused function turns into "take the ordinary
    path", where :func:`nonfinite_path` gives the exact answer.
    """
    t = type(v)
    if t in _SCALARS:
        return True
    if t is dict:
        for k, x in v.items():
            tx = type(x)
            if tx is str or tx is int or tx is bool or x is None:
                if type(k) is str:
                    continue
            elif tx is float:
                if x - x != 0.0:
                    return False
                if type(k) is str:
                    continue
            elif not all_finite(x):
                return False
            if type(k) is not str and not all_finite(k):
                return False
        return True
    if t is list or t is tuple:
        for x in v:
            tx = type(x)
            if tx is str or tx is int or tx is bool:
                continue
            if tx is float:
                if x - x != 0.0:
                    return False
            elif not all_finite(x):
                return False
        return True
    if isinstance(v, float):  # float subclasses (numpy.float64) are floats too
        return math.isfinite(v)
    if isinstance(v, dict | _CONTAINERS):
        return nonfinite_path(v, "") is None
    return True


def nonfinite_path(v: Any, root: str = "") -> tuple[str, float] | None:
    """Where (``root.a[2].b``) the first NaN or ±inf inside ``v`` is, and what it is; or None.

    Iterative, so input nested deeper than Python's recursion limit is walked
    too; every value is visited once. A non-finite map key is reported at the
    map's path. Why: a NaN compares false with everything, so one that slips
    into an untyped position (a ``dyn`` argument, an undeclared ``principal``
    map) passes every ``> limit`` deny. Every value that enters a decision is
    checked here once, before any rule runs.
    """
    stack: list[tuple[Any, str]] = [(v, root)]
    while stack:
        x, path = stack.pop()
        if isinstance(x, float):
            if not math.isfinite(x):
                return path, x
        elif isinstance(x, dict):
            items = list(x.items())
            for k, _ in items:
                if isinstance(k, float) and not math.isfinite(k):
                    return path, k
            prefix = f"{path}." if path else ""
            stack.extend((val, f"{prefix}{key}") for key, val in reversed(items))
        elif isinstance(x, _CONTAINERS):
            stack.extend((val, f"{path}[{i}]") for i, val in reversed(list(enumerate(x))))
    return None


def show_nonfinite(x: float) -> str:
    """``NaN``, ``+inf`` or ``-inf``, as a request error names it."""
    return "NaN" if math.isnan(x) else ("+inf" if x > 0 else "-inf")


def check_finite(v: Any, what: str) -> None:
    """Raise RequestError naming the place when ``v`` holds a NaN or ±inf anywhere.

    ``what`` is "argument", "principal field" or "context field", as in the
    other request errors. No declared type admits NaN or infinity, so this is
    the one check for every position, declared or not.
    """
    found = nonfinite_path(v)
    if found is None:
        return
    path, x = found
    if not path:
        raise RequestError(f"a {what.split()[0]} must be a finite number, got {show_nonfinite(x)}")
    raise RequestError(f"{what} '{path}' must be a finite number, got {show_nonfinite(x)}", path)


def _kind(v: Any) -> str:
    return celops.type_name(v) if not isinstance(v, set | frozenset) else "set"


def _bad(path: str, want: str, v: Any) -> RequestError:
    return RequestError(f"argument '{path}' must be {want}, got {_kind(v)}", path)


def checker_for(t: Type, zone: tzinfo, strict_objects: bool = True, depth: int = 0) -> Check:
    """A closure that validates and normalises one value of type ``t``."""
    k = t.kind
    if k == "string":

        def check_str(v: Any, path: str) -> Any:
            if isinstance(v, str):
                return v
            raise _bad(path, "a string", v)

        return check_str
    if k == "int":

        def check_int(v: Any, path: str) -> Any:
            if type(v) is int:
                if -(2**63) <= v < 2**63:
                    return v
                raise RequestError(f"argument '{path}' is out of the 64-bit integer range", path)
            if type(v) is float and v.is_integer() and abs(v) < 2**63:
                return int(v)
            raise _bad(path, "an integer", v)

        return check_int
    if k in ("double", "number"):
        as_float = k == "double"

        def check_num(v: Any, path: str) -> Any:
            tv = type(v)
            if tv is float:
                if math.isfinite(v):
                    return v
                raise RequestError(f"argument '{path}' must be a finite number", path)
            if tv is int:
                if -(2**63) <= v < 2**63:
                    return float(v) if as_float else v
                raise RequestError(f"argument '{path}' is out of range", path)
            raise _bad(path, "a number", v)

        return check_num
    if k == "bool":

        def check_bool(v: Any, path: str) -> Any:
            if type(v) is bool:
                return v
            raise _bad(path, "true or false", v)

        return check_bool
    if k in ("timestamp", "duration", "date"):
        parse: Callable[[Any], Any] = {
            "timestamp": lambda v: timefuncs.parse_timestamp(v, zone),
            "duration": timefuncs.parse_duration,
            "date": lambda v: timefuncs.parse_date(v, zone),
        }[k]
        py_type = {"timestamp": datetime, "duration": timedelta, "date": date}[k]

        def check_time(v: Any, path: str) -> Any:
            if type(v) is bool:
                raise _bad(path, f"a {k}", v)
            if (
                k == "date"
                and type(v) is date
                or k != "date"
                and isinstance(v, py_type)
                and not (k == "timestamp" and getattr(v, "tzinfo", None) is None)
            ):
                return v
            try:
                return parse(v)
            except EvalError as exc:
                raise RequestError(f"argument '{path}': {exc.message}", path) from None
            except (
                ValueError,
                ArithmeticError,
                TypeError,
            ) as exc:  # a bad value is the caller's error
                raise RequestError(
                    f"argument '{path}': cannot read {celops.format_value(v)!r} as a {k} ({exc})",
                    path,
                ) from None

        return check_time
    if k == "bytes":

        def check_bytes(v: Any, path: str) -> Any:
            if isinstance(v, bytes):
                return v
            if isinstance(v, str):
                return v.encode("utf-8", "surrogatepass")
            raise _bad(path, "bytes", v)

        return check_bytes
    if k == "enum":
        allowed = t.values
        shown = ", ".join(
            celops.format_value(x) if not isinstance(x, str) else f'"{x}"' for x in allowed
        )

        def check_enum(v: Any, path: str) -> Any:
            for a in allowed:
                if type(v) is not bool and celops.eq(v, a):
                    return v
            raise RequestError(
                f"argument '{path}' must be one of {shown}, got {celops.format_value(v)!r}", path
            )

        return check_enum
    if k == "nullable":
        inner = checker_for(t.params[0], zone, strict_objects, depth + 1)

        def check_nullable(v: Any, path: str) -> Any:
            return None if v is None else inner(v, path)

        return check_nullable
    if depth > MAX_DEPTH:
        return lambda v, path: v
    if k == "list":
        item = checker_for(t.params[0], zone, strict_objects, depth + 1)
        elem_dyn = t.params[0].kind == "dyn"

        def check_list(v: Any, path: str) -> Any:
            if not isinstance(v, list | tuple):
                raise _bad(path, "a list", v)
            if elem_dyn:
                return list(v)
            return [item(x, f"{path}[{i}]") for i, x in enumerate(v)]

        return check_list
    if k == "map":
        value = checker_for(t.params[1], zone, strict_objects, depth + 1)
        key_kind = t.params[0].kind

        def check_map(v: Any, path: str) -> Any:
            if not isinstance(v, dict):
                raise _bad(path, "a map", v)
            out = {}
            for key, x in v.items():
                if key_kind == "string" and not isinstance(key, str):
                    raise RequestError(f"argument '{path}' must have string keys", path)
                out[key] = value(x, f"{path}.{key}")
            return out

        return check_map
    if k == "object":
        return object_checker(t, zone, strict=strict_objects, depth=depth + 1)
    return lambda v, path: v  # dyn


def object_checker(
    t: Type, zone: tzinfo, strict: bool = True, depth: int = 0, what: str = "argument"
) -> Check:
    """Validate a map against declared fields; fill defaults; optionally refuse extras."""
    fields: list[tuple[str, FieldType, Check]] = [
        (name, f, checker_for(f.type, zone, strict, depth)) for name, f in t.fields
    ]
    known = frozenset(name for name, _ in t.fields)

    def check_object(v: Any, path: str) -> Any:
        if not isinstance(v, dict):
            if path:
                raise _bad(path, "an object", v)
            raise RequestError(
                f"{what}s must be an object (a map of names to values), got {_kind(v)}"
            )
        out: dict[str, Any] = {}
        prefix = f"{path}." if path else ""
        found = 0
        for name, f, check in fields:
            value = v.get(name, MISSING)
            if value is not MISSING:
                found += 1
            if value is MISSING or (value is None and not f.nullable):
                if f.has_default:
                    out[name] = f.default
                elif not f.optional:
                    if value is None:
                        raise RequestError(
                            f"{what} '{prefix}{name}' must not be null", prefix + name
                        )
                    raise RequestError(f"missing required {what} '{prefix}{name}'", prefix + name)
                continue
            out[name] = None if value is None else check(value, prefix + name)
        if found != len(v):
            extras = [key for key in v if key not in known]
            if extras and strict:
                shown = ", ".join(f"'{prefix}{e}'" for e in extras[:3])
                raise RequestError(
                    f"unexpected {what}{'s' if len(extras) > 1 else ''} {shown}",
                    f"{prefix}{extras[0]}",
                )
            for key in extras:
                out[key] = v[key]
        return out

    return check_object


def pydantic_model(t: Type, name: str = "Args") -> Any:
    """The reference model of a declared object type (used by tests and tooling)."""
    from typing import Literal, Optional

    from pydantic import ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, create_model

    def py(tt: Type, n: str) -> Any:
        k = tt.kind
        simple = {
            "string": StrictStr,
            "int": StrictInt,
            "double": StrictFloat | StrictInt,
            "number": StrictInt | StrictFloat,
            "bool": StrictBool,
            "timestamp": datetime,
            "duration": timedelta,
            "date": date,
            "bytes": bytes,
            "dyn": Any,
        }
        if k in simple:
            return simple[k]
        if k == "enum":
            return Literal[tt.values]
        if k == "list":
            return list[py(tt.params[0], n)]  # type: ignore[misc]
        if k == "map":
            return dict[str, py(tt.params[1], n)]  # type: ignore[misc]
        if k == "object":
            return pydantic_model(tt, n + "_obj")
        return Any

    spec: dict[str, Any] = {}
    for fname, f in t.fields:
        typ = py(f.type, f"{name}_{fname}")
        if f.nullable:
            typ = Optional[typ]  # noqa: UP045
        if f.optional or f.has_default:
            spec[fname] = (Optional[typ], f.default if f.has_default else None)  # noqa: UP045
        else:
            spec[fname] = (typ, ...)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **spec)


# ---------------------------------------------------------------- generated fast path


def _fast_test(t: Type, var: str, bind: Bind) -> str | None:
    """A Python test that holds only for values needing no conversion (None: no fast test)."""
    k = t.kind
    if k == "string":
        return f"type({var}) is str"
    if k == "int":
        return f"(type({var}) is int and -9223372036854775808 <= {var} <= 9223372036854775807)"
    if k == "number":
        return (
            f"((type({var}) is int and -9223372036854775808 <= {var} <= 9223372036854775807)"
            f" or (type({var}) is float and {var} - {var} == 0.0))"
        )
    if k == "double":
        return f"(type({var}) is float and {var} - {var} == 0.0)"
    if k == "bool":
        return f"type({var}) is bool"
    if k == "dyn":
        return "True"
    if k == "enum" and all(type(v) is str for v in t.values):
        return f"(type({var}) is str and {var} in {bind(frozenset(t.values), 'enum')})"
    if k == "list" and t.params[0].kind in ("string", "dyn"):
        if t.params[0].kind == "dyn":
            return f"type({var}) is list"
        return f"(type({var}) is list and all(type(i) is str for i in {var}))"
    return None


def _may_hold_float(t: Type) -> bool:
    """Whether a value passing ``t``'s fast test could still be or hold a non-finite float."""
    k = t.base.kind if t.kind != "nullable" else t.params[0].base.kind
    if k == "dyn":
        return True
    return k == "list" and t.base.params[0].kind == "dyn"


Bind = Callable[[Any, str], str]  # (value, hint) -> the name it is bound to in generated code


def shape_check_lines(
    t: Type,
    var: str,
    bind: Bind,
    fail: str,
    strict: bool = True,
    converters: dict[str, str] | None = None,
    raising: bool = False,
    fill_defaults: bool = False,
    finite: bool = False,
) -> list[str]:
    """Python lines that run ``fail`` unless ``var`` is a well-formed object of type ``t``.

    Well-formed: a dict with every required field present, every value already
    of its canonical type, no default to fill in and, when ``strict``, no
    undeclared key. With ``converters`` (kind -> bound parser), text values of
    those kinds are parsed into a copy of ``var`` instead of failing; a parser
    that raises is the caller's to catch. ``raising``: the caller catches
    exceptions anyway, so a required key is read with ``[]`` (a KeyError fails
    the check) instead of the slower ``.get``. ``fill_defaults``: an absent
    field with a default gets it in the copy (as the full checker does). Used
    by the validators below and by the compiler's fused per-tool functions;
    when a copy was made it is in ``<var>_conv`` (None otherwise). ``finite``:
    no NaN or ±inf anywhere, also in ``dyn`` fields and (not ``strict``) in
    undeclared keys, tested with ``_finite`` (:func:`all_finite`); declared
    numbers are finite by their own type test. Only keys the declaration does
    not list are scanned, and only when the counts show there are some.
    """
    lines = [f"if type({var}) is not dict:", f"    {fail}"]
    copy = f"{var}_conv"
    converters = converters or {}
    required = 0  # present in every well-formed input: counted statically
    counting: list[str] = []  # optional fields found: counted at run time
    converting = False
    for name, f in t.fields:
        key = bind(name, name)
        convert = converters.get(f.type.kind) if not f.nullable else None
        test = "type(x) is str" if convert is not None else _fast_test(f.type, "x", bind)
        if finite and test is not None and _may_hold_float(f.type):
            test = "_finite(x)" if test == "True" else f"({test} and _finite(x))"
        if test is None:
            check = [fail]
        elif f.type.kind == "list" and f.type.params[0].kind == "string" and not f.nullable:
            check = [
                "if type(x) is not list:",
                f"    {fail}",
                "for i in x:",
                "    if type(i) is not str:",
                f"        {fail}",
            ]  # a loop: several times cheaper than all(<generator>)
        else:
            check = [
                f"if not ({test} or x is None):" if f.nullable else f"if not ({test}):",
                f"    {fail}",
            ]
        if convert is not None:
            converting = True
            check += [
                f"if {copy} is None:",
                f"    {copy} = dict({var})",
                f"{copy}[{key}] = {convert}(x)",
            ]
        if (
            not f.optional
            and not f.has_default
            and not f.nullable
            and test is not None
            and not test.startswith(("True", "_finite"))
        ):
            required += 1  # a missing key reads as MISSING (or raises), which fails every type test
            lines += [f"x = {var}[{key}]" if raising else f"x = {var}.get({key}, MISSING)", *check]
            continue
        lines.append(f"x = {var}.get({key}, MISSING)")
        absent = ["pass" if f.optional and not f.has_default else fail]
        if fill_defaults and f.has_default:
            converting = True
            absent = [
                f"if {copy} is None:",
                f"    {copy} = dict({var})",
                f"{copy}[{key}] = {bind(f.default, name)}",
            ]
        counted = strict or finite  # finite: the count shows whether there are undeclared keys
        present = ["n += 1", *check] if counted else check
        if counted:
            counting.append(name)
        lines += [
            "if x is MISSING:",
            *("    " + line for line in absent),
            "else:",
            *("    " + line for line in present),
        ]
    if converting:
        lines.insert(2, f"{copy} = None")
    if counting:
        lines.insert(2, "n = 0")
    total = f"{required} + n" if counting else str(required)
    if strict:
        lines += [f"if len({var}) != {total}:", f"    {fail}"]
    elif finite:  # undeclared keys pass through unchecked: but never a NaN
        lines += [f"if len({var}) != {total} and not _finite({var}):", f"    {fail}"]
    if converting:
        lines += [f"if {copy} is not None:", f"    {var} = {copy}"]
    return lines


def fast_object_checker(t: Type, slow: Check, copy: bool, strict: bool = True) -> Check:
    """Compile a checker that returns well-formed input as is and defers the rest to ``slow``.

    Well-formed is what :func:`shape_check_lines` tests; ``slow`` converts, fills
    defaults and raises the precise error: both paths agree.
    """
    consts: dict[str, Any] = {"_slow": slow, "MISSING": MISSING}

    def bind(value: Any, hint: str) -> str:
        name = f"K{len(consts)}"
        consts[name] = value
        return name

    body = shape_check_lines(t, "v", bind, "return _slow(v, path)", strict)
    lines = [
        "def check(v, path):",
        *("    " + line for line in body),
        f"    return {'dict(v)' if copy else 'v'}",
    ]
    source = "\n".join(lines) + "\n"
    ns: dict[str, Any] = {
        "__builtins__": {
            "type": type,
            "str": str,
            "int": int,
            "float": float,
            "bool": bool,
            "list": list,
            "dict": dict,
            "all": all,
            "len": len,
        },
        **consts,
    }
    exec(compile(source, "<policylang validator>", "exec"), ns)  # noqa: S102 - our own source
    return ns["check"]
