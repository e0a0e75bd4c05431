"""Example cases: ``*.cases.yaml`` files next to the policies.

A file holds a list of cases (or ``{cases: [...]}``). A single case::

    - name: small payment by finance is allowed
      request: {tool: payments.send, args: {...}, principal: {...}, context: {...}}
      want: allow                     # or deny / confirm, or a list of acceptable effects
      want_rules: [payments_staff]    # optional: these rule ids/names are in decision.rules
      want_reason: "finance staff"    # optional: a substring of a reason or the message
      want_code: allowed              # optional: decision.code
      given:                          # optional
        now: "2025-06-11T10:00:00-04:00"
        timezone: America/New_York    # zone for zone-less times in this case
        history:                      # replayed through decide() before the request
          - {tool: ..., args: ..., principal: ..., context: ..., at: "2025-06-11T09:00:00"}
        counters:                     # pre-filled rate-limit usage
          - {limit: payments_per_hour, key: u-1, used: 9}

A sequence replays several steps on one engine (one clock, one rate-limit store)::

    - name: fourth payment in an hour is refused
      given: {now: "2025-06-11T10:00:00Z"}
      steps:
        - {request: {...}, want: allow}
        - {advance: 30s, request: {...}, want: allow}
        - {now: "2025-06-11T10:59:00Z", request: {...}, want: deny, want_code: rate_limited}

Every case and sequence gets a fresh engine (sharing the compiled policy) with
a :class:`FixedClock` and an empty :class:`MemoryStore`. The engine's windows and
session expiry run on that clock, never on a request's ``context.now``; so the
clock is set from ``given.now``, a step's ``now`` / ``advance``, a history
entry's ``at``, or else the ``context.now`` the step's (or entry's) request pins.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from policylang.compiler.plan import limit_identities
from policylang.errors import EvalError, PolicyLoadError
from policylang.runtime import timefuncs
from policylang.runtime.clock import FixedClock
from policylang.runtime.decision import Decision
from policylang.runtime.engine import Engine, limit_key
from policylang.runtime.limits import LimitRequest, MemoryStore, canonical_key
from policylang.runtime.loader import boundary_of, check_inside, read_text
from policylang.runtime.validation import show_nonfinite
from policylang.yamlsafe import (
    CoreLoader,
    StructuredTextError,
    add_constructor,
    load_json,
    load_yaml,
)

CASE_SUFFIXES = (".cases.yaml", ".cases.yml", ".cases.json")
DEFAULT_NOW = "2025-06-11T10:00:00"  # read in the policy's zone when a case names no time
EFFECTS = {"allow", "deny", "confirm"}


class CaseFileError(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass
class Case:
    name: str
    path: str
    index: int
    spec: dict[str, Any]
    line: int = 0

    @property
    def is_sequence(self) -> bool:
        return "steps" in self.spec

    @property
    def id(self) -> str:
        return f"{Path(self.path).name}::{self.name}"


@dataclass
class StepResult:
    index: int
    ok: bool
    request: dict[str, Any]
    want: Any
    got: str
    code: str
    rules: list[str]
    reasons: list[str]
    problems: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    case: Case
    ok: bool
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None
    rules_seen: set[str] = field(default_factory=set)
    seconds: float = 0.0

    def report(self) -> str:
        """A readable failure report: request, want, got, rules, message."""
        if self.ok:
            return f"PASS {self.case.id}"
        lines = [f"FAIL {self.case.id}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        for s in self.steps:
            if s.ok:
                continue
            where = f" step {s.index + 1}" if self.case.is_sequence else ""
            lines.append(f"  request{where}: {json.dumps(s.request, default=str, sort_keys=False)}")
            lines.append(f"  want: {_show_want(s.want)}")
            lines.append(f"  got:  {s.got} ({s.code})")
            lines.append(f"  rules: {', '.join(s.rules) or '-'}")
            for p in s.problems:
                lines.append(f"  problem: {p}")
            if s.reasons:
                lines.append(f"  message: {'; '.join(s.reasons)}")
        return "\n".join(lines)


def _show_want(want: Any) -> str:
    return " or ".join(want) if isinstance(want, list) else str(want)


# ---------------------------------------------------------------- loading


def find_case_files(path: str | Path) -> list[Path]:
    """The case files for PATH: a cases file, the cases of a ``.policy`` file, or a folder's."""
    p = Path(path)
    if p.is_file():
        if p.name.endswith(CASE_SUFFIXES):
            return [p]
        stem = p.name[: -len(".policy")] if p.name.endswith(".policy") else p.stem
        return [
            p.parent / f"{stem}{s}" for s in CASE_SUFFIXES if (p.parent / f"{stem}{s}").exists()
        ]
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(CASE_SUFFIXES))
    return []


class _LineLoader(CoreLoader):
    """The YAML 1.2 core schema, each map remembering the line it starts on."""


def _construct_mapping(loader: CoreLoader, node: Any) -> dict[Any, Any]:
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


add_constructor(_LineLoader, "tag:yaml.org,2002:map", _construct_mapping)


def _strip_lines(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_lines(x) for k, x in v.items() if k != "__line__"}
    if isinstance(v, list):
        return [_strip_lines(x) for x in v]
    return v


def load_cases(path: str | Path, *, follow_links: bool = False) -> list[Case]:
    """The cases of one file; a :class:`CaseFileError` for anything unreadable.

    A cases file that is a link out of its folder is refused unless
    ``follow_links``; errors give a line and column, never the file's text.
    """
    p = Path(path)
    try:
        check_inside(p, boundary_of(p), follow_links)
        text = read_text(p)
    except PolicyLoadError as exc:
        d = exc.diagnostics[0]
        raise CaseFileError(str(p), d.message + (f" ({d.hint})" if d.hint else "")) from None
    try:
        raw = load_json(text) if p.suffix == ".json" else load_yaml(text, loader=_LineLoader)
    except StructuredTextError as exc:
        raise CaseFileError(str(p), f"cannot read the file: {exc}") from None
    if raw is None:
        return []
    if isinstance(raw, dict) and "cases" in raw:
        raw = raw["cases"]
    if not isinstance(raw, list):
        raise CaseFileError(str(p), "expected a list of cases (or a map with a 'cases' list)")
    cases = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise CaseFileError(str(p), f"case {i + 1} is not a map")
        line = item.get("__line__", 0)
        spec = _strip_lines(item)
        name = str(spec.get("name") or f"case {i + 1}")
        if name in names:
            name = f"{name} #{i + 1}"
        names.add(name)
        if "steps" not in spec and "request" not in spec:
            raise CaseFileError(str(p), f"line {line}: case '{name}' needs a 'request' or 'steps'")
        cases.append(Case(name, str(p), i, spec, line))
    return cases


# ---------------------------------------------------------------- running


def _zone(engine: Engine, given: dict[str, Any]) -> Any:
    return timefuncs.get_zone(given.get("timezone") or _compiled(engine).policy.timezone)


def _compiled(engine: Engine) -> Any:
    if engine.compiled is None:
        raise ValueError("the engine has no policy loaded")
    return engine.compiled


def _ts(value: Any, zone: Any) -> datetime:
    return timefuncs.parse_timestamp(value, zone).astimezone(UTC)


def _jsonish(v: Any) -> Any:
    """YAML reads unquoted timestamps as datetimes; send them as the engine would receive them."""
    if isinstance(v, dict):
        return {k: _jsonish(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonish(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat() if v.tzinfo else v.isoformat(sep=" ")
    return v


def _request(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or not isinstance(spec.get("tool"), str):
        raise ValueError("a request needs a 'tool' name")
    return {
        "tool": spec["tool"],
        "args": _jsonish(spec.get("args") or {}),
        "principal": _jsonish(spec.get("principal") or {}),
        "context": _jsonish(spec.get("context") or {}),
    }


def _pinned(req: dict[str, Any]) -> Any:
    """The ``context.now`` a case's request pins, if any."""
    context = req["context"]
    return context.get("now") if isinstance(context, dict) else None


def _decide(engine: Engine, req: dict[str, Any]) -> Decision:
    return engine.decide(
        req["tool"], args=req["args"], principal=req["principal"], context=req["context"]
    )


def _fill_counters(engine: Engine, counters: Any, now: datetime) -> None:
    """Pre-fill rate-limit usage: ``[{limit, key, used}]`` or ``{limit: {key: used}}``."""
    policy = _compiled(engine).policy
    items: list[tuple[str, Any, float]] = []
    if isinstance(counters, dict):
        for lid, per_key in counters.items():
            if isinstance(per_key, dict):
                items += [(lid, k, float(v)) for k, v in per_key.items()]
            else:
                items.append((lid, None, float(per_key)))
    elif isinstance(counters, list):
        for c in counters:
            items.append((c["limit"], c.get("key"), float(c.get("used", 0))))
    else:
        raise ValueError("given.counters must be a list of {limit, key, used} or a map")
    by_id = {
        policy.rule_id(lim): (lim, ident)
        for lim, ident in zip(policy.limits, limit_identities(policy), strict=True)
    }
    for lid, key, used in items:
        if not math.isfinite(used):  # a NaN would poison the store's totals: say so, here
            raise ValueError(
                f"given.counters: the count used by limit '{lid}' must be a finite number, "
                f"got {show_nonfinite(used)}"
            )
        found = by_id.get(lid)
        if found is None:
            raise ValueError(
                f"given.counters names unknown limit '{lid}' (known: {', '.join(by_id) or 'none'})"
            )
        lim, ident = found
        # the key as the engine books it: canonical, under the limit's content identity
        key_text = "" if key is None else canonical_key(key)
        req = LimitRequest(
            limit_key(policy.name, ident, key_text),
            float(lim.amount),
            lim.window.total_seconds(),
            used,
        )
        engine.store.acquire([req], now.timestamp(), True)


def _check(d: Decision, step: dict[str, Any]) -> list[str]:
    problems = []
    want = step.get("want")
    wants = want if isinstance(want, list) else [want]
    if want is not None and d.effect.value not in wants:
        problems.append(f"want {_show_want(want)}, got {d.effect.value}")
    ids = (
        {r.id for r in d.rules}
        | {r.name for r in d.rules if r.name}
        | {lim.id for lim in d.limits if lim.exceeded}
    )
    for r in step.get("want_rules") or []:
        if r not in ids:
            problems.append(f"rule {r} is not among the decision's rules")
    reason = step.get("want_reason")
    if reason and not any(reason in x for x in [*d.reasons, d.message]):
        problems.append(f"no reason contains {reason!r}")
    code = step.get("want_code")
    if code and d.code != code:
        problems.append(f"want code {code}, got {d.code}")
    return problems


def _validate_want(step: dict[str, Any]) -> None:
    want = step.get("want")
    wants = want if isinstance(want, list) else [want]
    if want is None or not all(w in EFFECTS for w in wants):
        raise ValueError(f"'want' must be allow, deny or confirm (or a list of them), got {want!r}")


def run_case(engine: Engine, case: Case) -> CaseResult:
    """Run one case or sequence on a fresh engine sharing ``engine``'s compiled policy."""
    import time

    started = time.perf_counter()
    result = CaseResult(case, True)
    try:
        spec = case.spec
        given = spec.get("given") or {}
        if not isinstance(given, dict):
            raise ValueError("'given' must be a map")
        zone = _zone(engine, given)
        steps = spec["steps"] if case.is_sequence else [spec]
        if not isinstance(steps, list) or not steps:
            raise ValueError("'steps' must be a non-empty list")
        first_now = given.get("now")
        if first_now is None and not case.is_sequence:
            first_now = ((spec.get("request") or {}).get("context") or {}).get("now")
        clock = FixedClock(_ts(first_now if first_now is not None else DEFAULT_NOW, zone))
        eng = Engine(engine.compiled, clock=clock, store=MemoryStore())
        start_at = clock.now()
        for h in given.get("history") or []:
            req = _request(h)
            at = h.get("at") if h.get("at") is not None else _pinned(req)
            if at is not None:
                clock.set(_ts(_jsonish(at), zone))
            _decide(eng, req)
        clock.set(start_at)
        if given.get("counters"):
            _fill_counters(eng, given["counters"], clock.now())
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                raise ValueError(f"step {i + 1} is not a map")
            _validate_want(step)
            req = _request(step.get("request"))
            if step.get("now") is not None:
                clock.set(_ts(_jsonish(step["now"]), zone))
            elif step.get("advance") is None and _pinned(req) is not None:
                # the engine's windows never read a request's context.now; a case that pins
                # it per step means that time, so the case's clock follows it
                clock.set(_ts(_pinned(req), zone))
            if step.get("advance") is not None:
                clock.advance(_duration(step["advance"]))
            d = _decide(eng, req)
            problems = _check(d, step)
            result.rules_seen |= {r.id for r in d.rules}
            result.rules_seen |= {lim.id for lim in d.limits if lim.exceeded}
            sr = StepResult(
                i,
                not problems,
                req,
                step.get("want"),
                d.effect.value,
                d.code,
                [r.id for r in d.rules],
                list(d.reasons),
                problems,
            )
            result.steps.append(sr)
            if problems:
                result.ok = False
    except (ValueError, KeyError, TypeError, EvalError) as exc:
        result.ok = False
        msg = getattr(exc, "message", None) or str(exc)
        result.error = f"{case.path}:{case.line}: {msg}"
    result.seconds = time.perf_counter() - started
    return result


def _duration(v: Any) -> timedelta:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return timedelta(seconds=v)
    return timefuncs.parse_duration(v)


def coverage(engine: Engine, results: list[CaseResult]) -> tuple[list[str], list[str]]:
    """(covered, uncovered) rule ids: rules some case was decided by, and the rest."""
    policy = _compiled(engine).policy
    seen: set[str] = set()
    for r in results:
        seen |= r.rules_seen
    ids = [policy.rule_id(r) for r in policy.rules] + [policy.rule_id(lim) for lim in policy.limits]
    return [i for i in ids if i in seen], [i for i in ids if i not in seen]


__all__ = [
    "Case",
    "CaseResult",
    "StepResult",
    "CaseFileError",
    "find_case_files",
    "load_cases",
    "run_case",
    "coverage",
    "CASE_SUFFIXES",
]
