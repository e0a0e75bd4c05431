"""CEL value semantics for compiled policies and the reference interpreter.

Takes plain Python values in the runtime's value model (``int`` within int64,
``float``, ``bool``, ``str``, ``bytes``, ``None``, ``list``/``tuple``, ``dict``,
aware ``datetime``, ``timedelta``, ``date``) and gives CEL's operators and
standard functions over them: heterogeneous equality, ordering, checked int64
arithmetic, membership, indexing, field selection, ``size``, the string
functions of CEL and cel-go's strings extension, conversions, RE2 regexes and a
human formatter for decision messages.

Every failure raises :class:`policylang.errors.EvalError` with a message for a
person; the engine turns it into a fail-closed decision. No raw Python
exception escapes a public function.

Deliberate deviations from cel-python (the reference interpreter), each
following the current CEL specification or cel-go instead:

* int and double compare and test equal by numeric value (``1 == 1.0``,
  ``50 < 10000.0``); cel-python raises "no matching overload". Extension: an
  int mixed with a double in ``+ - * /`` gives a double.
* NaN is never equal to anything (cel-python says ``NaN == NaN``); ``x / 0.0``
  is IEEE (``-1.0 / 0.0`` is ``-inf``, ``0.0 / 0.0`` NaN; cel-python gives +inf).
* ordering NaN (``<``, ``<=``, ``>``, ``>=``) is an error, where CEL answers
  ``false``: a ``false`` would let a NaN pass both ``amount > 100.0`` and
  ``amount <= 0.0`` denies, an error fails them closed.
* bools have no arithmetic (cel-python computes ``false * true`` as ``0``).
* ``string(double)`` prints like cel-go's ``%g`` (``12000.0`` -> ``"12000"``,
  ``1e6`` -> ``"1e+06"``); cel-python prints Python's repr (``"12000.0"``).
* ``string(duration)`` and ``string(timestamp)`` keep fractional seconds
  (``"1.5s"``); cel-python drops them.
* ``int("...")``/``double("...")`` reject spaces and ``_`` as cel-go does;
  cel-python accepts whatever Python's ``int()`` accepts.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import re2

from policylang.errors import EvalError
from policylang.runtime import caches as _caches
from policylang.runtime import timefuncs as _tf

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
REGEX_CACHE_SIZE = 4096
REGEX_CACHEABLE = 4096  # longer patterns are compiled per use, not cached

# google-re2 never falls back to ``re``; other 're2' modules (pyre2) silently do: refuse them.
if not (hasattr(re2, "Options") and hasattr(re2, "_re2")):  # pragma: no cover
    raise ImportError("policylang needs the google-re2 package for its 're2' module")

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are reported as EvalError, not on stderr

_KIND_BY_TYPE: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "double",
    str: "string",
    bytes: "bytes",
    type(None): "null_type",
    list: "list",
    tuple: "list",
    dict: "map",
    datetime: "timestamp",
    timedelta: "duration",
    date: "date",
}
_NUM = (int, float)  # exact types: bool is deliberately not a number
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}
# Unicode White_Space, what Go's strings.TrimSpace removes (str.strip also takes \x1c-\x1f).
_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_INT_RE = re.compile(r"[+-]?[0-9]+")
# Go's ParseFloat: a sign may precede digits and "inf"/"infinity", never "nan" (so no "-nan").
_FLOAT_RE = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    r"|inf|infinity)|nan",
    re.IGNORECASE,
)
_BOOL_SPELLINGS = {
    w: w[0] in "1tT"
    for w in ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- types


def _kind(v: object) -> str:
    """CEL type name, or the Python type name for values outside the model (messages only)."""
    k = _KIND_BY_TYPE.get(type(v))
    if k is not None:
        return k
    for cls, name in _KIND_BY_TYPE.items():  # subclasses; bool before int by dict order
        if isinstance(v, cls):
            return name
    return type(v).__name__


def type_name(v: object) -> str:
    """The CEL type name of a runtime value ("int", "double", ..., "date")."""
    if (k := _kind(v)) in _KIND_BY_TYPE.values():
        return k
    raise EvalError(f"unsupported value of Python type {k}")


def _overload(op: str, *args: object) -> EvalError:
    return EvalError(f"no matching overload for '{op}' on {' and '.join(_kind(a) for a in args)}")


def _check_int(result: int, op: str, a: object, b: object | None = None) -> int:
    if INT64_MIN <= result <= INT64_MAX:
        return result
    raise EvalError(f"integer overflow in {f'{op}{a}' if b is None else f'{a} {op} {b}'}")


# --------------------------------------------------------------------------- equality


def _map_lookup(m: dict[Any, Any], key: object) -> tuple[bool, Any]:
    """Find key in a map with CEL semantics: 1 and 1.0 are the same key, True is not 1."""
    tk = type(key)
    try:
        if key not in m:
            return False, None
    except TypeError:  # unhashable key: CEL maps only have scalar keys
        return False, None
    if tk is bool or (tk in _NUM and key in (0, 1)):
        # Python mixes True with 1 in dict keys; find a key of the right kind.
        want_bool = tk is bool
        for k, val in m.items():
            if (type(k) is bool) == want_bool and k == key:
                return True, val
        return False, None
    return True, m[key]


def eq(a: object, b: object) -> bool:
    """CEL heterogeneous equality: numbers by value, other kinds never equal each other."""
    ta, tb = type(a), type(b)
    if ta is tb and (ta is str or ta is int or ta is float or ta is bool or ta is bytes):
        return a == b
    if ta in _NUM and tb in _NUM:
        return a == b
    if ta is bool or tb is bool or a is None or b is None:
        return a is b
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        return ka in ("int", "double") and kb in ("int", "double") and a == b
    if ka == "list":
        assert isinstance(a, Sequence) and isinstance(b, Sequence)
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))
    if ka == "map":
        assert isinstance(a, dict) and isinstance(b, dict)
        return len(a) == len(b) and all(
            (hit := _map_lookup(b, k))[0] and eq(v, hit[1]) for k, v in a.items()
        )
    try:
        return bool(a == b)
    except Exception:  # exotic values outside the model are simply unequal
        return False


def ne(a: object, b: object) -> bool:
    """Negation of :func:`eq` (so values of different kinds are never an error)."""
    return not eq(a, b)


# --------------------------------------------------------------------------- ordering

_ORDERED = {"string", "bytes", "bool", "timestamp", "duration", "date"}


def _order(op: str, a: Any, b: Any, fn: Callable[[Any, Any], bool]) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb and (ta is int or ta is str):
        return fn(a, b)
    if ta in _NUM and tb in _NUM:
        if fn(a, b):  # Python compares int with float exactly
            return True
        if a != a or b != b:  # NaN: true is never an answer, false would pass a `> limit` deny
            raise EvalError(f"NaN cannot be ordered: {format_value(a)} {op} {format_value(b)}")
        return False
    ka = _kind(a)
    if ka != _kind(b) or ka not in _ORDERED:
        raise _overload(op, a, b)
    try:
        return fn(a, b)
    except (TypeError, OverflowError):  # naive vs aware datetimes, offsets at year 9999
        raise EvalError(f"cannot compare {format_value(a)} {op} {format_value(b)}") from None


def lt(a: object, b: object) -> bool:
    """``a < b`` for numbers, strings, bytes, bools, timestamps, durations, dates."""
    return _order("<", a, b, operator.lt)


def le(a: object, b: object) -> bool:
    """``a <= b``; see :func:`lt`."""
    return _order("<=", a, b, operator.le)


def gt(a: object, b: object) -> bool:
    """``a > b``; see :func:`lt`."""
    return _order(">", a, b, operator.gt)


def ge(a: object, b: object) -> bool:
    """``a >= b``; see :func:`lt`."""
    return _order(">=", a, b, operator.ge)


# --------------------------------------------------------------------------- arithmetic


def _time_result(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except OverflowError:
        raise EvalError(f"{what} is out of range") from None
    except TypeError:
        raise EvalError(f"cannot compute {what}") from None


def _whole_days(d: timedelta, op: str) -> timedelta:
    if d.seconds or d.microseconds:  # a calendar day plus 36h has no meaning
        raise EvalError(f"a date can only {op} whole days, not {_tf.format_duration(d)}")
    return d


def add(a: Any, b: Any) -> Any:
    """``a + b``: checked int64, IEEE doubles, concatenation, time plus duration."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _check_int(a + b, "+", a, b)
    if ta in _NUM and tb in _NUM:
        return float(a) + float(b)
    if (ta is str and tb is str) or (ta is bytes and tb is bytes):
        return a + b
    ka, kb = _kind(a), _kind(b)
    if ka == "list" and kb == "list":
        return [*a, *b]
    if (ka == "duration" and kb == "duration") or {ka, kb} == {"timestamp", "duration"}:
        return _time_result(lambda: a + b, f"{format_value(a)} + {format_value(b)}")
    if ka == "date" and kb == "duration":
        return _time_result(lambda: a + _whole_days(b, "add"), f"date {a} + {format_value(b)}")
    if ka == "duration" and kb == "date":
        return _time_result(lambda: b + _whole_days(a, "add"), f"date {b} + {format_value(a)}")
    raise _overload("+", a, b)


def sub(a: Any, b: Any) -> Any:
    """``a - b``: checked int64, doubles, timestamp/duration/date differences."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _check_int(a - b, "-", a, b)
    if ta in _NUM and tb in _NUM:
        return float(a) - float(b)
    ka, kb = _kind(a), _kind(b)
    what = f"{format_value(a)} - {format_value(b)}"
    if (ka, kb) in (
        ("timestamp", "timestamp"),
        ("duration", "duration"),
        ("timestamp", "duration"),
        ("date", "date"),
    ):
        return _time_result(lambda: a - b, what)
    if ka == "date" and kb == "duration":
        return _time_result(lambda: a - _whole_days(b, "subtract"), what)
    raise _overload("-", a, b)


def mul(a: Any, b: Any) -> Any:
    """``a * b``: checked int64 or IEEE doubles."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _check_int(a * b, "*", a, b)
    if ta in _NUM and tb in _NUM:
        return float(a) * float(b)
    raise _overload("*", a, b)


def div(a: Any, b: Any) -> Any:
    """``a / b``: ints truncate toward zero (Go/CEL), doubles follow IEEE (x/0.0 is inf or nan)."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        if b == 0:
            raise EvalError("division by zero")
        q = abs(a) // abs(b)  # truncation toward zero, not Python's floor
        return _check_int(-q if (a < 0) != (b < 0) else q, "/", a, b)
    if ta in _NUM and tb in _NUM:
        x, y = float(a), float(b)
        if y == 0.0:
            if x == 0.0 or math.isnan(x):
                return math.nan
            return math.copysign(math.inf, x) * math.copysign(1.0, y)
        return x / y
    raise _overload("/", a, b)


def mod(a: Any, b: Any) -> int:
    """``a % b`` on ints; the result has the dividend's sign (Go/CEL), unlike Python's ``%``."""
    if type(a) is int and type(b) is int:
        if b == 0:
            raise EvalError("modulo by zero")
        return -(abs(a) % abs(b)) if a < 0 else a % abs(b)
    raise _overload("%", a, b)


def neg(a: Any) -> Any:
    """Unary minus on int (checked), double or duration."""
    if type(a) is int:
        return _check_int(-a, "-", a)
    if type(a) is float:
        return -a
    if _kind(a) == "duration":
        return _time_result(lambda: -a, f"-{format_value(a)}")
    raise _overload("-", a)


# --------------------------------------------------------------------------- logic


def not_(a: object) -> bool:
    """Logical not; CEL has no truthiness, so only a bool is accepted."""
    if type(a) is not bool:
        raise _overload("!", a)
    return not a


def truthy(a: object) -> bool:
    """The bool itself, for && || ?: operands whose type is only known at run time."""
    if type(a) is bool:
        return a
    raise EvalError(f"expected a bool, got {_kind(a)}")


# --------------------------------------------------------------------------- containers


def in_(elem: object, container: object) -> bool:
    """``elem in container``: list membership by CEL equality, or map key membership."""
    if isinstance(container, list | tuple | set | frozenset):
        if (
            type(elem) is str or type(elem) is bytes
        ):  # str only ever equals str: Python's fast path is exact
            return elem in container
        return any(eq(elem, x) for x in container)
    if isinstance(container, dict):
        return _map_lookup(container, elem)[0]
    raise _overload("in", elem, container)


def _quote(v: object) -> str:
    return "'" + v.replace("'", "\\'") + "'" if isinstance(v, str) else format_value(v)


def index(container: Any, key: Any) -> Any:
    """``container[key]``: list by int (or integral double) index, map by key."""
    if isinstance(container, list | tuple):
        tk = type(key)
        if tk is float and key.is_integer():
            key = int(key)
        elif tk is not int:
            raise _overload("[]", container, key)
        if 0 <= key < len(container):
            return container[key]
        raise EvalError(f"index {key} out of range for list of size {len(container)}")
    if isinstance(container, dict):
        hit = _map_lookup(container, key)
        if hit[0]:
            return hit[1]
        raise EvalError(f"no such key: {_quote(key)}")
    raise _overload("[]", container, key)


def _a(kind: str) -> str:
    return "null" if kind == "null_type" else ("an " if kind[0] in "aeiou" else "a ") + kind


def select(obj: Any, field: str) -> Any:
    """``obj.field`` on a map; a missing field is an error (use :func:`has` to test)."""
    if isinstance(obj, dict):
        try:
            return obj[field]
        except (KeyError, TypeError):
            raise EvalError(f"no such key: {_quote(field)}") from None
    raise EvalError(f"cannot read field {_quote(field)} of {_a(_kind(obj))}")


def has(obj: object, field: str) -> bool:
    """CEL ``has(obj.field)``: present and not null (JSON callers send null for "absent")."""
    return isinstance(obj, dict) and type(field) is str and obj.get(field) is not None


def size(v: object) -> int:
    """Length of a string (code points), bytes, list or map."""
    if isinstance(v, str | bytes | list | tuple | dict):
        return len(v)
    raise _overload("size", v)


# --------------------------------------------------------------------------- strings


def _strs(fn: str, *args: object) -> None:
    if any(type(x) is not str for x in args):
        raise _overload(fn, *args)


def _int_arg(fn: str, v: object) -> int:
    if type(v) is not int:
        raise EvalError(f"{fn} expects an int, got {_kind(v)}")
    return v


def starts_with(s: str, p: str) -> bool:
    """CEL ``startsWith``."""
    _strs("startsWith", s, p)
    return s.startswith(p)


def ends_with(s: str, p: str) -> bool:
    """CEL ``endsWith``."""
    _strs("endsWith", s, p)
    return s.endswith(p)


def contains(s: str, sub: str) -> bool:
    """CEL ``contains`` on strings."""
    _strs("contains", s, sub)
    return sub in s


def matches(s: str, pattern: str) -> bool:
    """CEL ``matches``: RE2 syntax, an unanchored search (use ^...$ to anchor)."""
    _strs("matches", s, pattern)
    try:
        return compile_regex(pattern).search(s) is not None
    except UnicodeEncodeError:  # a lone surrogate cannot be handed to RE2 as UTF-8
        raise EvalError("matches: the string is not valid Unicode text") from None


def lower_ascii(s: str) -> str:
    """cel-go ``lowerAscii``: only A-Z change, so non-ASCII text compares byte-stably."""
    _strs("lowerAscii", s)
    return s.translate(_ASCII_LOWER)


def upper_ascii(s: str) -> str:
    """cel-go ``upperAscii``: only a-z change."""
    _strs("upperAscii", s)
    return s.translate(_ASCII_UPPER)


def trim(s: str) -> str:
    """cel-go ``trim``: Unicode White_Space removed from both ends."""
    _strs("trim", s)
    return s.strip(_WHITESPACE)


def split(s: str, sep: str, n: int = -1) -> list[str]:
    """cel-go ``split`` (Go's strings.SplitN): n<0 all parts, n==0 none, n>0 at most n."""
    _strs("split", s, sep)
    n = _int_arg("split", n)
    if n == 0:
        return []
    if sep == "":
        parts = list(s)
        if 0 < n < len(parts):
            parts = parts[: n - 1] + ["".join(parts[n - 1 :])]
        return parts
    return s.split(sep, n - 1 if n > 0 else -1)


def replace(s: str, old: str, new: str, n: int = -1) -> str:
    """cel-go ``replace``: at most n replacements, all when n < 0."""
    _strs("replace", s, old, new)
    n = _int_arg("replace", n)
    return s.replace(old, new) if n < 0 else s.replace(old, new, n)


def _offset(fn: str, s: str, offset: object) -> int:
    off = _int_arg(fn, offset)
    if not 0 <= off <= len(s):
        raise EvalError(f"{fn}: offset {off} out of range for string of length {len(s)}")
    return off


def index_of(s: str, sub: str, offset: int = 0) -> int:
    """cel-go ``indexOf``: code point index of the first match at or after offset, or -1."""
    _strs("indexOf", s, sub)
    return s.find(sub, _offset("indexOf", s, offset))


def last_index_of(s: str, sub: str, offset: int | None = None) -> int:
    """cel-go ``lastIndexOf``: last match starting at or before offset, or -1."""
    _strs("lastIndexOf", s, sub)
    if offset is None:
        return s.rfind(sub)
    return s.rfind(sub, 0, _offset("lastIndexOf", s, offset) + len(sub))


def substring(s: str, start: int, end: int | None = None) -> str:
    """cel-go ``substring``: code point range [start, end), bounds checked rather than clamped."""
    _strs("substring", s)
    start = _int_arg("substring", start)
    stop = len(s) if end is None else _int_arg("substring", end)
    if not 0 <= start <= stop <= len(s):
        raise EvalError(f"substring({start}, {stop}) out of range for string of length {len(s)}")
    return s[start:stop]


def char_at(s: str, i: int) -> str:
    """cel-go ``charAt``: the code point at i; i == size gives ""."""
    _strs("charAt", s)
    i = _int_arg("charAt", i)
    if not 0 <= i <= len(s):
        raise EvalError(f"charAt: index {i} out of range for string of length {len(s)}")
    return s[i : i + 1]


def join(items: Sequence[str], sep: str = "") -> str:
    """cel-go ``join`` on a list of strings."""
    if not isinstance(items, list | tuple) or type(sep) is not str:
        raise _overload("join", items, sep)
    for x in items:
        if type(x) is not str:
            raise EvalError(f"join: list element {format_value(x)} is {_a(_kind(x))}, not a string")
    return sep.join(items)


# --------------------------------------------------------------------------- regexes


def _regex_error_text(pattern: str, err: BaseException) -> str:
    """Turn RE2's terse "missing ): a(" into a sentence, naming unsupported Perl features."""
    raw = err.args[0] if err.args else str(err)
    msg = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    what, _, where = msg.partition(": ")
    if what == "invalid escape sequence" and re.fullmatch(r"\\[1-9]", where):
        return f"backreferences like {where} are not supported by RE2 (regexes must run in linear time)"
    if where.startswith(("(?=", "(?!", "(?<=", "(?<!")):
        return f"look-around {where} is not supported by RE2 (regexes must run in linear time)"
    for token in (")", "]"):
        what = what.replace(f"missing {token}", f"missing '{token}'")
        what = what.replace(f"unexpected {token}", f"unexpected '{token}'")
    return f"{what} at '{where}'" if where and where != pattern else what


@functools.lru_cache(maxsize=REGEX_CACHE_SIZE)
def _compile(pattern: str) -> Any:
    try:
        compiled = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as err:
        raise EvalError(
            f"invalid regex {_quote(pattern)}: {_regex_error_text(pattern, err)}"
        ) from None
    except Exception as err:  # e.g. a lone surrogate that cannot be UTF-8 encoded
        raise EvalError(f"invalid regex {_quote(pattern)}: {err}") from None
    if isinstance(compiled, re.Pattern):  # pragma: no cover - guard against a fallback build
        raise EvalError("regex engine is not RE2; refusing to run a backtracking regex")
    return compiled


def compile_regex(pattern: str) -> Any:
    """A compiled RE2 pattern from a bounded LRU cache (4096 patterns of at most 4096 characters).

    The cache is keyed by request data (``args.x.matches(args.pattern)``), so
    it is bounded in entries and in each entry's size; drops are counted (see
    :mod:`policylang.runtime.caches`).

    RE2 runs in time linear in the input, so no policy regex can be turned into
    a denial of service by crafted tool arguments.
    """
    if type(pattern) is not str:
        raise EvalError(f"a regex must be a string, got {_kind(pattern)}")
    if len(pattern) > REGEX_CACHEABLE:  # built from a large argument: compiled, never kept
        _caches.dropped("regex.uncached")
        return _compile.__wrapped__(pattern)
    return _compile(pattern)


_caches.register_lru("regex", _compile)


def regex_problem(pattern: str) -> str | None:
    """None when the pattern compiles under RE2, else a message for the linter."""
    try:
        compile_regex(pattern)
    except EvalError as err:
        return err.message
    return None


# --------------------------------------------------------------------------- conversions


def to_int(v: object) -> int:
    """CEL ``int()``: from int, double (truncated), decimal string, or timestamp (epoch seconds)."""
    if type(v) is int:
        return v
    if type(v) is float:
        if not math.isfinite(v) or not -(2.0**63) <= v < 2.0**63:
            raise EvalError(f"cannot convert {format_value(v)} to int: out of range")
        return int(v)
    if type(v) is str:
        if not _INT_RE.fullmatch(v):
            raise EvalError(f"cannot convert {_quote(v)} to int")
        n = int(v)
        if not INT64_MIN <= n <= INT64_MAX:
            raise EvalError(f"cannot convert {_quote(v)} to int: out of range")
        return n
    if isinstance(v, datetime):
        try:
            return (v - _EPOCH) // timedelta(seconds=1)
        except TypeError:
            raise EvalError("cannot convert a timestamp without a time zone to int") from None
    raise EvalError(f"cannot convert {_a(_kind(v))} to int")


def to_double(v: object) -> float:
    """CEL ``double()``: from int, double or a numeric string (Go's ParseFloat forms)."""
    if type(v) is float:
        return v
    if type(v) is int:
        return float(v)
    if type(v) is str and _FLOAT_RE.fullmatch(v):
        return float(v)
    raise EvalError(f"cannot convert {_quote(v) if type(v) is str else _a(_kind(v))} to double")


def _go_g(x: float) -> str:
    """Go's ``%g`` for a float64, the format cel-go uses in ``string(double)``.

    Shortest round-trip digits (as Python's repr); scientific form, with an
    exponent of at least two digits, when the decimal exponent is below -4 or
    at least 6: ``12000.0`` -> ``"12000"``, ``1e6`` -> ``"1e+06"``,
    ``0.0001`` -> ``"0.0001"``, ``1e-05`` -> ``"1e-05"``.
    """
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")
    if x == 0:  # Go prints negative zero as "-0"
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    point = len(ds) + exp  # position of the decimal point from the left of ds
    e10 = point - 1
    neg = "-" if sign else ""
    if e10 < -4 or e10 >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if e10 < 0 else '+'}{abs(e10):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{ds}"
    if point >= len(ds):
        return f"{neg}{ds}{'0' * (point - len(ds))}"
    return f"{neg}{ds[:point]}.{ds[point:]}"


_EXACT = 2.0**53  # every whole double below this is exactly one int


def to_string(v: object) -> str:
    """CEL ``string()``: canonical text for scalars, timestamps, durations and dates."""
    if type(v) is str:
        return v
    if type(v) is int:
        return str(v)
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is float:
        if v.is_integer() and -_EXACT < v < _EXACT:
            # A whole number prints as one, however JSON spelled it: 1234567 and 1234567.0
            # must give one key and one deny-list entry (cel-go prints "1.234567e+06").
            return str(int(v))
        return _go_g(v)
    if type(v) is bytes:
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            raise EvalError("cannot convert bytes to string: invalid UTF-8") from None
    if isinstance(v, datetime):
        return _tf.timestamp_to_string(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, timedelta):
        return _tf.duration_to_cel_string(v)
    raise EvalError(f"cannot convert {_a(_kind(v))} to string")


def to_bool(v: object) -> bool:
    """CEL ``bool()``: a bool, or a string spelled as Go's ParseBool accepts ("true", "t", "1", ...)."""
    if type(v) is bool:
        return v
    if type(v) is str and v in _BOOL_SPELLINGS:  # Go's strconv.ParseBool spellings
        return _BOOL_SPELLINGS[v]
    raise EvalError(f"cannot convert {_quote(v) if type(v) is str else _a(_kind(v))} to bool")


def to_bytes(v: object) -> bytes:
    """CEL ``bytes()``: bytes unchanged, strings as UTF-8."""
    if type(v) is bytes:
        return v
    if type(v) is str:
        try:
            return v.encode("utf-8")
        except UnicodeEncodeError:
            raise EvalError("cannot convert string to bytes: invalid code point") from None
    raise EvalError(f"cannot convert {_a(_kind(v))} to bytes")


# --------------------------------------------------------------------------- messages


def format_value(v: object) -> str:
    """Render a value for a human-readable decision message; never raises.

    Integral doubles below 1e16 print without ".0"; larger ones (inexact) use repr.
    """
    try:
        return _format(v, 0)
    except Exception:  # pragma: no cover - a broken __repr__ must not break a decision
        return f"<{type(v).__name__}>"


def _format(v: object, depth: int) -> str:
    if v is None:
        return "null"
    if type(v) is bool:
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    if depth > 20:
        return "..."
    if isinstance(v, date):  # datetime too
        return v.isoformat()
    if isinstance(v, timedelta):
        return _tf.format_duration(v)
    if isinstance(v, list | tuple | set | frozenset):
        return "[" + ", ".join(_format(x, depth + 1) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{"
            + ", ".join(f"{_format(k, depth + 1)}: {_format(x, depth + 1)}" for k, x in v.items())
            + "}"
        )
    return repr(v)  # bytes and values outside the model
