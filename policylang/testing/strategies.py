"""Hypothesis strategies for requests, derived from a policy's declarations and rules.

Two sources of values feed every field:

* the **declarations**: types, optional/nullable fields, enums, nested objects,
  lists and maps, so that generated requests pass argument validation;
* the **constants in the rules**: every condition of every rule, limit and
  assertion is walked, and the literals compared against each field path
  (``args.amount``, ``principal.role``, ``context.confidence``,
  ``args.recipients[]`` for list elements) are collected. Numbers give the
  value, value±1, value±0.01, 0 and the negation; strings give themselves and
  the prefixes/suffixes/substrings tested; ``in [...]`` lists and ``in data.X``
  give their members. Time functions give timestamps on weekends, on the
  holidays of the countries named in ``is_holiday``, at the edges of
  ``business_hours`` windows, at the hours compared against, and across the DST
  changes of every zone named in the policy.

Every request carries a pinned ``context.now`` so decisions are reproducible.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from hypothesis import strategies as st

from policylang.compiler.plan import condition_of
from policylang.language import ast
from policylang.language.checker import rule_tools
from policylang.language.policy import Policy
from policylang.language.types import FieldType, Type
from policylang.runtime import timefuncs

ROOTS = ("args", "principal", "context")
DEFAULT_NOW_LOCAL = datetime(2025, 6, 11, 10, 0, 0)  # a Wednesday morning, no holiday anywhere much
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_TRANSPARENT_METHODS = {"lowerAscii", "upperAscii", "trim"}
_TRANSPARENT_GLOBALS = {"string", "int", "double", "timestamp", "date", "dyn", "normpath"}
_STD_OFFSETS = [
    timedelta(0),
    timedelta(seconds=1),
    timedelta(minutes=1),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=7),
]


# ---------------------------------------------------------------- constants from the rules


@dataclass
class PathConsts:
    numbers: list[int | float] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    regexes: list[str] = field(default_factory=list)
    bools: list[bool] = field(default_factory=list)

    def add(self, bucket: str, value: Any) -> None:
        items = getattr(self, bucket)
        if value not in items or (
            bucket == "numbers" and not any(type(v) is type(value) and v == value for v in items)
        ):
            items.append(value)


@dataclass
class Constants:
    """What the rules talk about, per field path and globally."""

    paths: dict[str, PathConsts] = field(default_factory=dict)
    strings: list[str] = field(default_factory=list)
    numbers: list[int | float] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    countries: list[tuple[str, str | None]] = field(default_factory=list)
    calendars: list[date] = field(default_factory=list)
    windows: list[tuple[str, str | None]] = field(default_factory=list)
    durations: list[timedelta] = field(default_factory=list)
    hours: list[int] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)

    def at(self, path: str) -> PathConsts:
        pc = self.paths.get(path)
        if pc is None:
            pc = self.paths[path] = PathConsts()
        return pc

    def get(self, path: str) -> PathConsts | None:
        return self.paths.get(path)


def _add_unique(items: list[Any], value: Any) -> None:
    if value not in items:
        items.append(value)


def _number_variants(v: int | float) -> list[int | float]:
    out: list[int | float] = [v, v + 1, v - 1]
    out += [round(v + 0.01, 6), round(v - 0.01, 6)]
    out += [0, -v if v else -1]
    if isinstance(v, int):
        out.append(float(v))
    return out


class _Collector:
    def __init__(self, policy: Policy):
        self.policy = policy
        self.c = Constants()

    # ---- paths an expression reads
    def paths(self, e: ast.Expr, vars_: dict[str, list[str]]) -> list[str]:
        match e:
            case ast.Ident(name=name):
                if name in vars_:
                    return vars_[name]
                if name in ROOTS:
                    return [name]
                if name == "now":
                    return ["context.now"]
                return []
            case ast.Select(operand=o, field=f):
                return [f"{p}.{f}" for p in self.paths(o, vars_)]
            case ast.Index(operand=o, index=ast.Literal_(value=v)):
                suffix = f".{v}" if isinstance(v, str) else "[]"
                return [p + suffix for p in self.paths(o, vars_)]
            case ast.Call(function=fn, target=t) if t is not None and fn in _TRANSPARENT_METHODS:
                return self.paths(t, vars_)
            case ast.Call(function=fn, target=None, args=args) if (
                fn in _TRANSPARENT_GLOBALS and args
            ):
                return self.paths(args[0], vars_)
            case ast.Binary(op="+", left=left, right=right):
                return self.paths(left, vars_) + self.paths(right, vars_)
            case ast.Conditional(then=t, otherwise=o):
                return self.paths(t, vars_) + self.paths(o, vars_)
        return []

    def data_members(self, e: ast.Expr) -> list[Any] | None:
        """Members of ``data.X`` (list items or map keys), if ``e`` is a data reference."""
        if (
            isinstance(e, ast.Select)
            and isinstance(e.operand, ast.Ident)
            and e.operand.name == "data"
        ):
            value = self.policy.data.get(e.field)
            if isinstance(value, dict):
                return list(value)[:40]
            if isinstance(value, list | tuple):
                return list(value)[:40]
        return None

    @staticmethod
    def literal(e: ast.Expr) -> tuple[bool, Any]:
        match e:
            case ast.Literal_(value=v, kind=kind) if kind != "null":
                return True, v
            case ast.Unary(op="-", operand=ast.Literal_(value=v)) if isinstance(
                v, int | float
            ) and not isinstance(v, bool):
                return True, -v
        return False, None

    def add_value(self, paths: list[str], v: Any) -> None:
        for p in paths:
            pc = self.c.at(p)
            if isinstance(v, bool):
                pc.add("bools", v)
            elif isinstance(v, int | float):
                for x in _number_variants(v):
                    pc.add("numbers", x)
            elif isinstance(v, str):
                pc.add("strings", v)
            elif isinstance(v, timedelta):
                _add_unique(self.c.durations, v)
            if p == "principal.role" and isinstance(v, str):
                _add_unique(self.c.roles, v)
            if p == "principal.scopes[]" and isinstance(v, str):
                _add_unique(self.c.scopes, v)

    def visit(self, e: ast.Expr | None, vars_: dict[str, list[str]]) -> None:
        if e is None:
            return
        match e:
            case ast.Literal_(value=v, kind=kind):
                if kind == "string" and isinstance(v, str):
                    _add_unique(self.c.strings, v)
                    if timefuncs.known_zone(v) and "/" in v or v == "UTC":
                        _add_unique(self.c.zones, v)
                elif kind in ("int", "double"):
                    _add_unique(self.c.numbers, v)
                elif kind == "duration":
                    _add_unique(self.c.durations, v)
            case ast.Comprehension(target=t, var=var, body=body, condition=cond):
                self.visit(t, vars_)
                inner = dict(vars_)
                inner[var] = [p + "[]" for p in self.paths(t, vars_)]
                self.visit(cond, inner)
                self.visit(body, inner)
                return
            case ast.Binary(op=op, left=left, right=right) if op in _COMPARE:
                for x, y in ((left, right), (right, left)):
                    ok, v = self.literal(y)
                    if not ok:
                        continue
                    self.add_value(self.paths(x, vars_), v)
                    self._special_compare(x, v, vars_)
            case ast.Binary(op="in", left=left, right=right):
                ok, v = self.literal(left)
                if ok:
                    self.add_value([p + "[]" for p in self.paths(right, vars_)], v)
                lpaths = self.paths(left, vars_)
                if isinstance(right, ast.ListExpr):
                    for item in right.items:
                        ok, v = self.literal(item)
                        if ok:
                            self.add_value(lpaths, v)
                members = self.data_members(right)
                if members is not None:
                    for m in members:
                        if isinstance(m, str | int | float | bool):
                            self.add_value(lpaths, m)
            case ast.Call(function=fn, target=t, args=args):
                self._call(fn, t, args, vars_)
        for child in ast.children(e):
            self.visit(child, vars_)

    def _special_compare(self, x: ast.Expr, v: Any, vars_: dict[str, list[str]]) -> None:
        match x:
            case (
                ast.Call(function="size", target=None, args=(arg,))
                | ast.Call(function="size", target=arg, args=())
            ):
                if isinstance(v, int) and not isinstance(v, bool):
                    for p in self.paths(arg, vars_) if arg is not None else []:
                        for n in (v - 1, v, v + 1):
                            if 0 <= n <= 50:
                                self.c.at(p).add("sizes", n)
            case ast.Call(function="hour" | "getHours", args=_):
                if isinstance(v, int) and not isinstance(v, bool):
                    for h in (v - 1, v, v + 1):
                        if 0 <= h <= 23:
                            _add_unique(self.c.hours, h)
            case ast.Binary(op="-"):
                if isinstance(v, timedelta):
                    _add_unique(self.c.durations, v)

    def _call(
        self, fn: str, t: ast.Expr | None, args: tuple[ast.Expr, ...], vars_: dict[str, list[str]]
    ) -> None:
        lits = [self.literal(a) for a in args]
        if t is not None and args and lits[0][0] and isinstance(lits[0][1], str):
            s = lits[0][1]
            paths = self.paths(t, vars_)
            variants = {
                "startsWith": [s, s + "x", s + "/tmp/report.txt", s[:-1]],
                "endsWith": [s, "x" + s, "report" + s, s[1:]],
                "contains": [s, "a" + s + "b", s.upper()],
            }.get(fn)
            if variants is not None:
                for p in paths:
                    for x in variants:
                        self.c.at(p).add("strings", x)
            elif fn == "matches":
                for p in paths:
                    self.c.at(p).add("regexes", s)
        if t is None and fn == "matches" and len(args) == 2 and lits[1][0]:
            for p in self.paths(args[0], vars_):
                self.c.at(p).add("regexes", lits[1][1])
        if t is None and fn == "is_holiday" and len(args) >= 2:
            ok, country = lits[1]
            if ok and isinstance(country, str):
                sub = lits[2][1] if len(args) > 2 and lits[2][0] else None
                _add_unique(self.c.countries, (country, sub))
            members = self.data_members(args[1])
            for m in members or []:
                with contextlib.suppress(Exception):  # a data entry that is not a date
                    _add_unique(self.c.calendars, timefuncs.parse_date(m))
        if t is None and fn == "business_hours":
            window = lits[1][1] if len(args) > 1 and lits[1][0] else "09:00-17:00"
            zone = lits[2][1] if len(args) > 2 and lits[2][0] else None
            _add_unique(self.c.windows, (window, zone))
        if fn in (
            "weekday",
            "hour",
            "minute",
            "date",
            "today",
            "is_holiday",
            "business_hours",
            "getHours",
            "getDayOfWeek",
            "getFullYear",
            "getMonth",
            "getDate",
            "getDayOfMonth",
        ):
            for ok, v in lits:
                if ok and isinstance(v, str) and timefuncs.known_zone(v):
                    _add_unique(self.c.zones, v)


def conditions(policy: Policy) -> Iterable[ast.Expr]:
    """Every condition, key, cost and message part of every rule, limit and assertion."""
    for r in policy.rules:
        yield condition_of(r)
        if r.because is not None:
            yield from (p for p in r.because.parts if not isinstance(p, str))
    for lim in policy.limits:
        yield from (x for x in (lim.when, lim.key, lim.cost) if x is not None)
    for a in policy.assertions:
        if a.when is not None:
            yield a.when


def collect_constants(policy: Policy) -> Constants:
    """Walk every condition AST and gather the constants compared against each field path."""
    col = _Collector(policy)
    for expr in conditions(policy):
        col.visit(expr, {})
    c = col.c
    if policy.timezone not in c.zones:
        c.zones.insert(0, policy.timezone)
    if "UTC" not in c.zones:
        c.zones.append("UTC")
    for _w, z in c.windows:
        if z and z not in c.zones:
            c.zones.append(z)
    return c


def expr_paths(policy: Policy, expr: ast.Expr | None) -> list[str]:
    """The field paths an expression reads (``args.amount``, ``principal.role`` ...)."""
    if expr is None:
        return []
    col = _Collector(policy)
    out: list[str] = []

    def go(e: ast.Expr, vars_: dict[str, list[str]]) -> None:
        for p in col.paths(e, vars_):
            _add_unique(out, p)
        if isinstance(e, ast.Comprehension):
            go(e.target, vars_)
            inner = dict(vars_)
            inner[e.var] = [p + "[]" for p in col.paths(e.target, vars_)]
            for x in (e.condition, e.body):
                if x is not None:
                    go(x, inner)
            return
        for ch in ast.children(e):
            go(ch, vars_)

    go(expr, {})
    return out


# ---------------------------------------------------------------- interesting instants


def _holiday_dates(country: str, sub: str | None, years: list[int]) -> list[date]:
    import holidays

    try:
        cal = holidays.country_holidays(country, subdiv=sub, years=years)
    except Exception:  # noqa: BLE001 - unknown country: the checker already said so
        return []
    return sorted(cal)


def _dst_transitions(zone: tzinfo, year: int) -> list[datetime]:
    out = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    prev = t.astimezone(zone).utcoffset()
    step = timedelta(hours=1)
    while t.year == year:
        t2 = t + step
        off = t2.astimezone(zone).utcoffset()
        if off != prev:
            out.append(t2)
            prev = off
        t = t2
    return out


def instant_pool(policy: Policy, c: Constants, now: datetime) -> list[datetime]:
    """Timestamps worth trying: weekends, holidays, window edges, DST changes."""
    zones = [timefuncs.get_zone(z) for z in c.zones]
    pz = timefuncs.get_zone(policy.timezone)
    out: list[datetime] = []

    def at(d: date, t: time, z: tzinfo) -> datetime:
        return datetime.combine(d, t, z)

    base = now.astimezone(pz).date()
    # weekends and their edges, in every zone
    sat = base + timedelta(days=(5 - base.weekday()) % 7)
    for z in zones:
        out += [
            at(sat, time(10), z),
            at(sat + timedelta(days=1), time(15), z),
            at(sat - timedelta(days=1), time(23, 59, 59), z),
            at(sat, time(0), z),
            at(sat + timedelta(days=2), time(0), z),
        ]
    # holidays
    years = [base.year, base.year + 1]
    days: list[date] = []
    for country, sub in c.countries:
        days += _holiday_dates(country, sub, years)
    days += c.calendars
    for d in days[:60]:
        for z in zones:
            out += [
                at(d, time(10), z),
                at(d, time(0), z),
                at(d, time(23, 30), z),
                at(d - timedelta(days=1), time(20), z),
                at(d - timedelta(days=1), time(23, 30), z),
            ]
    # business-hours windows
    for window, zname in c.windows:
        z = timefuncs.get_zone(zname) if zname else pz
        try:
            start, end = timefuncs.parse_window(window)
        except ValueError:
            continue
        monday = base - timedelta(days=base.weekday()) + timedelta(days=7)
        for d in (base, monday, monday + timedelta(days=4)):
            for t in (start, end):
                if t == time.max:
                    t = time(23, 59, 59)
                dt = at(d, t, z)
                out += [
                    dt,
                    dt - timedelta(seconds=1),
                    dt + timedelta(seconds=1),
                    dt - timedelta(hours=1),
                    dt + timedelta(hours=1),
                ]
    # hours compared against
    for h in c.hours:
        for z in zones:
            out.append(at(base, time(h), z))
            out.append(at(base, time(h, 59, 59), z))
    # DST changes
    for z in zones:
        for tr in _dst_transitions(z, base.year):
            for delta in (
                timedelta(0),
                timedelta(seconds=-1),
                timedelta(minutes=30),
                timedelta(hours=-1),
                timedelta(hours=1),
            ):
                out.append((tr + delta).astimezone(z))
    seen: set[tuple[datetime, str]] = set()
    uniq = []
    for dt in out:
        key = (dt, str(dt.utcoffset()))
        if key not in seen:
            seen.add(key)
            uniq.append(dt)
    return uniq


def dst_local_strings(c: Constants, year: int) -> list[str]:
    """Zone-less local times inside DST gaps and overlaps (read in the policy zone)."""
    out = []
    for zname in c.zones:
        for tr in _dst_transitions(timefuncs.get_zone(zname), year):
            local = tr.astimezone(timefuncs.get_zone(zname))
            for d in (timedelta(minutes=-30), timedelta(minutes=30)):
                out.append((local.replace(tzinfo=None) + d).strftime("%Y-%m-%d %H:%M:%S"))
    return out


def format_ts(dt: datetime) -> str:
    return dt.isoformat()


# ---------------------------------------------------------------- the request space


def _declared_tools(policy: Policy) -> list[str]:
    if policy.tools:
        return list(policy.tools)
    names: list[str] = []
    stmts: list[Any] = [*policy.rules, *policy.limits, *policy.assertions]
    for stmt in stmts:
        for p in stmt.tools:
            if not p.is_glob and p.pattern not in names:
                names.append(p.pattern)
    return names


def _synth_type(c: Constants, root: str) -> Type:
    """An object type for an undeclared shape, from the paths the rules read."""
    fields: dict[str, FieldType] = {}
    prefix = root + "."
    for path, pc in c.paths.items():
        if not path.startswith(prefix):
            continue
        name = path[len(prefix) :]
        head = name.split(".", 1)[0].split("[", 1)[0]
        if not head or head in fields:
            continue
        if name.startswith(head + "[]"):
            fields[head] = FieldType(Type("list", (Type("dyn"),)))
        elif pc.numbers and not pc.strings:
            fields[head] = FieldType(Type("number"))
        elif pc.bools and not pc.strings:
            fields[head] = FieldType(Type("bool"))
        else:
            fields[head] = FieldType(Type("dyn"))
    return Type("object", fields=tuple(fields.items()))


Draw = Callable[[st.SearchStrategy[Any]], Any]


class UniformDraw:
    """A ``draw`` whose small choices come from a seeded ``random.Random``.

    Hypothesis deliberately correlates the choices inside one example (to find
    bugs faster); for the coverage-guided exploration, uniform independent
    choices find combinations of constants far more often. Strings, floats and
    regex matches still come from Hypothesis.
    """

    def __init__(self, draw: Draw, rnd: Any):
        self.draw = draw
        self.rnd = rnd

    def __call__(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.draw(strategy)


def _int(draw: Draw, lo: int, hi: int) -> int:
    if isinstance(draw, UniformDraw):
        return draw.rnd.randint(lo, hi)
    return draw(st.integers(lo, hi))


def _pick(draw: Draw, items: Any) -> Any:
    items = list(items)
    if isinstance(draw, UniformDraw):
        return draw.rnd.choice(items)
    return draw(st.sampled_from(items))


def _coin(draw: Draw) -> bool:
    if isinstance(draw, UniformDraw):
        return draw.rnd.random() < 0.5
    return draw(st.booleans())


_ALPHABET = st.characters(min_codepoint=32, max_codepoint=126)


class RequestSpace:
    """Builds request strategies for one policy; shared by properties and auto checks."""

    def __init__(self, policy: Policy, now: datetime | None = None):
        self.policy = policy
        self.zone = timefuncs.get_zone(policy.timezone)
        self.consts = collect_constants(policy)
        self.now = now or DEFAULT_NOW_LOCAL.replace(tzinfo=self.zone)
        pool = instant_pool(policy, self.consts, self.now)
        self.instants = pool
        self.local_strings = dst_local_strings(self.consts, self.now.year)
        # candidates for the pinned now: the base first (what shrinking goes to)
        self.nows = [self.now] + pool[:: max(1, len(pool) // 12)][:12]
        self.offsets = sorted(
            set(_STD_OFFSETS) | set(self.consts.durations), key=lambda d: abs(d.total_seconds())
        )
        self.tools = _declared_tools(policy)
        self.principal_type = policy.principal or _synth_type(self.consts, "principal")
        ctx = policy.context or _synth_type(self.consts, "context")
        self.context_type = Type(
            "object", fields=tuple((n, f) for n, f in ctx.fields if n != "now")
        )
        self._regex_cache: dict[str, st.SearchStrategy[str] | None] = {}

    # ---- argument types
    def args_type(self, tool: str) -> Type:
        info = self.policy.tools.get(tool)
        if info is not None:
            return info.args
        return _synth_type(self.consts, "args")

    def slots(self, tool: str) -> list[tuple[str, str, FieldType]]:
        """(section, field, type) of every top-level field a request of ``tool`` has."""
        out = []
        for section, t in (
            ("args", self.args_type(tool)),
            ("principal", self.principal_type),
            ("context", self.context_type),
        ):
            for name, f in t.fields:
                out.append((section, name, f))
        out.append(("context", "now", FieldType(Type("timestamp"))))
        return out

    # ---- value generators (called inside a composite with its draw)
    def value(
        self, draw: Draw, path: str, t: Type, now: datetime, sibling: dict[str, Any], depth: int = 0
    ) -> Any:
        pc = self.consts.get(path)
        kind = t.kind
        if kind == "enum":
            return _pick(draw, list(t.values))
        if kind in ("int", "double", "number"):
            return self._number(draw, pc, kind)
        if kind == "string":
            return self._string(draw, pc)
        if kind == "bool":
            return _coin(draw)
        if kind == "bytes":
            return self._string(draw, pc)
        if kind == "timestamp":
            return self._timestamp(draw, now, sibling)
        if kind == "duration":
            d = _pick(draw, self.offsets + [timedelta(seconds=-1)])
            return f"{int(d.total_seconds())}s"
        if kind == "date":
            return self._timestamp(draw, now, sibling)[:10]
        if kind == "list":
            elem = t.params[0] if t.params else Type("dyn")
            sizes = sorted(set((pc.sizes if pc else []) + [1, 2, 0, 3]), key=lambda n: (n == 0, n))
            n = _pick(draw, sizes) if depth < 3 else 0
            return [self.value(draw, path + "[]", elem, now, {}, depth + 1) for _ in range(n)]
        if kind == "map":
            n = _int(draw, 0, 2) if depth < 3 else 0
            vt = t.params[1] if len(t.params) > 1 else Type("dyn")
            return {
                self._string(draw, None): self.value(draw, path + "[]", vt, now, {}, depth + 1)
                for _ in range(n)
            }
        if kind == "object":
            return self.object(draw, path, t, now, depth + 1)
        # dyn: whatever the rules compare it with
        return self._dyn(draw, pc)

    def object(
        self, draw: Draw, path: str, t: Type, now: datetime, depth: int = 0
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, f in t.fields:
            if f.optional and not _coin(draw):
                continue
            if f.nullable and _int(draw, 0, 5) == 5:
                out[name] = None
                continue
            out[name] = self.value(draw, f"{path}.{name}", f.type, now, out, depth)
        return out

    def _number(self, draw: Draw, pc: PathConsts | None, kind: str) -> int | float:
        consts = list(pc.numbers) if pc and pc.numbers else []
        if kind == "int":
            consts = [
                int(math.floor(x)) for x in consts if isinstance(x, int) or float(x).is_integer()
            ]
        if consts and _int(draw, 0, 4) < 4:
            return _pick(draw, consts)
        if kind == "int" or _coin(draw):
            pool = [
                n for n in self.consts.numbers if isinstance(n, int) and not isinstance(n, bool)
            ]
            if pool and _coin(draw):
                return _pick(draw, pool)
            return _int(draw, -1000, 100_000)
        return round(draw(st.floats(-1000, 100_000, allow_nan=False, allow_infinity=False)), 2)

    def _regex(self, pattern: str) -> st.SearchStrategy[str] | None:
        if pattern not in self._regex_cache:
            try:
                re.compile(pattern)
                self._regex_cache[pattern] = st.from_regex(pattern, alphabet=_ALPHABET)
            except Exception:  # noqa: BLE001 - RE2-only syntax: skip it
                self._regex_cache[pattern] = None
        return self._regex_cache[pattern]

    def _string(self, draw: Draw, pc: PathConsts | None) -> str:
        consts = list(pc.strings) if pc and pc.strings else []
        regexes = [r for r in (pc.regexes if pc else []) if self._regex(r) is not None]
        choice = _int(draw, 0, 9)
        if consts and choice < 5:
            return _pick(draw, consts)
        if regexes and 5 <= choice < 7:
            s = draw(self._regex(_pick(draw, regexes)))  # type: ignore[arg-type]
            return s[:200]
        if self.consts.strings and choice == 7:
            return _pick(draw, self.consts.strings)
        return draw(st.text(_ALPHABET, max_size=12))

    def _dyn(self, draw: Draw, pc: PathConsts | None) -> Any:
        if pc and pc.numbers and (not pc.strings or _coin(draw)):
            return self._number(draw, pc, "number")
        if pc and pc.bools and not pc.strings:
            return _coin(draw)
        return self._string(draw, pc)

    def _timestamp(self, draw: Draw, now: datetime, sibling: dict[str, Any]) -> str:
        choice = _int(draw, 0, 9)
        if choice < 3:  # relative to now
            d = _pick(draw, self.offsets)
            sign = _pick(draw, [1, -1])
            return format_ts(
                now
                + sign * d
                + _pick(draw, [timedelta(0), timedelta(seconds=1), timedelta(seconds=-1)])
            )
        earlier = [
            v for v in sibling.values() if isinstance(v, str) and len(v) >= 19 and v[4] == "-"
        ]
        if earlier and choice < 6:  # relative to a timestamp drawn just before (end after start)
            try:
                base = timefuncs.parse_timestamp(_pick(draw, earlier), self.zone)
            except Exception:  # noqa: BLE001
                base = now
            d = _pick(draw, self.offsets)
            sign = _pick(draw, [1, 1, -1])
            return format_ts(
                base
                + sign * d
                + _pick(draw, [timedelta(0), timedelta(seconds=1), timedelta(seconds=-1)])
            )
        if choice < 9 and self.instants:
            return format_ts(_pick(draw, self.instants))
        if self.local_strings and _coin(draw):
            return _pick(draw, self.local_strings)
        secs = _int(draw, -400 * 86400, 400 * 86400)
        return format_ts(now + timedelta(seconds=secs))

    # ---- whole requests
    def fresh(self, tool: str, uniform: bool = False) -> st.SearchStrategy[dict[str, Any]]:
        @st.composite
        def build(draw: Draw) -> dict[str, Any]:
            if uniform:
                draw = UniformDraw(draw, draw(st.randoms(use_true_random=True)))
            now = _pick(draw, self.nows)
            args = self.object(draw, "args", self.args_type(tool), now)
            principal = self.object(draw, "principal", self.principal_type, now)
            context = self.object(draw, "context", self.context_type, now)
            context["now"] = format_ts(now)
            return {"tool": tool, "args": args, "principal": principal, "context": context}

        return build()

    def mutate(
        self,
        tool: str,
        pool: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]],
        focus: Iterable[str] = (),
        uniform: bool = False,
    ) -> st.SearchStrategy[dict[str, Any]]:
        """Take a known request (a seed) and redraw one to three of its fields.

        ``focus`` paths (those an assertion or rule reads) are picked first.
        ``pool`` may be a callable, so the pool can grow during a search.
        """
        slots = self.slots(tool)
        focus = list(focus)

        def hot_for(paths: Iterable[str]) -> list[tuple[str, str, FieldType]]:
            paths = list(paths)
            return [
                s
                for s in slots
                if any(
                    f == f"{s[0]}.{s[1]}"
                    or f.startswith(f"{s[0]}.{s[1]}.")
                    or f.startswith(f"{s[0]}.{s[1]}[")
                    for f in paths
                )
            ]

        hot_default = hot_for(focus)

        @st.composite
        def build(draw: Draw) -> dict[str, Any]:
            if uniform:
                draw = UniformDraw(draw, draw(st.randoms(use_true_random=True)))
            seeds = pool() if callable(pool) else pool
            # half the time the first seed (explore keeps its best request there)
            seed = seeds[0] if _coin(draw) else seeds[_int(draw, 0, len(seeds) - 1)]
            req: dict[str, Any] = {
                "tool": tool,
                "args": dict(seed["args"]),
                "principal": dict(seed["principal"]),
                "context": dict(seed["context"]),
            }
            hot = hot_for(seed.get("_focus") or ()) if seed.get("_focus") else hot_default
            try:
                now = timefuncs.parse_timestamp(req["context"].get("now"), self.zone)
            except Exception:  # noqa: BLE001
                now = self.now
            chosen = [slot for slot in hot if _coin(draw)]
            if not chosen or _coin(draw):
                chosen.append(_pick(draw, slots))
            for section, name, f in chosen:
                target = req[section]
                if section == "context" and name == "now":
                    now = _pick(draw, self.nows + self.instants[:40])
                    target["now"] = format_ts(now)
                    continue
                if f.optional and _int(draw, 0, 4) == 0:
                    target.pop(name, None)
                    continue
                others = {k: v for k, v in target.items() if k != name}
                target[name] = self.value(draw, f"{section}.{name}", f.type, now, others)
            return req

        return build()

    def requests(
        self,
        tool: str | None = None,
        seeds: list[dict[str, Any]] | None = None,
        focus: Iterable[str] = (),
    ) -> st.SearchStrategy[dict[str, Any]]:
        tools = [tool] if tool is not None else self.tools
        if not tools:
            return st.nothing()
        parts: list[st.SearchStrategy[dict[str, Any]]] = []
        for name in tools:
            parts.append(self.fresh(name))
            mine = [s for s in (seeds or []) if s.get("tool") == name]
            if mine:
                parts.append(self.mutate(name, mine, focus))
        return st.one_of(*parts)


def space_for(engine_or_policy: Any) -> RequestSpace:
    policy = _policy_of(engine_or_policy)
    cache = getattr(policy, "_policylang_space", None)
    if cache is None:
        cache = RequestSpace(policy)
        with contextlib.suppress(AttributeError):
            policy._policylang_space = cache  # type: ignore[attr-defined]
    return cache


def _policy_of(x: Any) -> Policy:
    if isinstance(x, Policy):
        return x
    compiled = getattr(x, "compiled", None)
    if compiled is not None:
        return compiled.policy
    if hasattr(x, "policy") and isinstance(x.policy, Policy):
        return x.policy
    raise TypeError("expected an Engine, a CompiledPolicy or a Policy")


def requests(engine: Any, tool: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A Hypothesis strategy of ``{tool, args, principal, context}`` request dicts.

    Values come from the declarations and from the constants the rules compare
    against; ``context.now`` is always pinned. ``tool=None`` draws from every
    declared tool.

    >>> from hypothesis import given
    >>> @given(requests(engine, "payments.send"))
    ... def test_never_raises(req):
    ...     engine.decide(**req)
    """
    return space_for(engine).requests(tool)


def tools_of(policy: Policy, patterns: Iterable[ast.ToolPattern]) -> list[str]:
    """Concrete tool names for a list of patterns (declared tools, or the literal names)."""
    out: list[str] = []
    for name in rule_tools(policy, tuple(patterns)):
        if name is not None and name not in out:
            out.append(name)
    if not policy.tools:
        for p in patterns:
            if not p.is_glob and p.pattern not in out:
                out.append(p.pattern)
    return out


__all__ = [
    "requests",
    "RequestSpace",
    "Constants",
    "collect_constants",
    "expr_paths",
    "space_for",
    "tools_of",
    "format_ts",
]
