"""Property checks: ``assert`` statements, and the automatic checks every policy gets.

* :func:`check_assertion` — Hypothesis searches for a request to the matching
  tool(s) that satisfies the assertion's ``when`` and whose effect breaks it
  (``never allow X``: effect is allow; ``always confirm X``: effect is not
  confirm). The minimal counterexample comes back as a case ready to paste.
* :func:`explore` and :func:`auto_checks` — every rule can fire, every declared
  tool can be allowed, the same request twice gets the same decision, and
  deciding never raises.

Searches run on a private engine that shares the compiled policy, with a fresh
in-memory rate-limit store per decision, so nothing leaks from one example
into the next.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st

from policylang.compiler.interpreter import run_condition
from policylang.errors import EvalError, RequestError
from policylang.language import ast
from policylang.language.formatter import format_expr
from policylang.runtime import timefuncs
from policylang.runtime.clock import FixedClock
from policylang.runtime.decision import Decision
from policylang.runtime.engine import Engine
from policylang.runtime.limits import MemoryStore
from policylang.runtime.sessions import MemorySessionStore
from policylang.runtime.validation import object_checker
from policylang.testing.strategies import RequestSpace, expr_paths, format_ts, space_for, tools_of
from policylang.yamlsafe import dump_yaml

EFFECTS = ("allow", "deny", "confirm")
POOL_MAX = 40


class _Found(Exception):
    """Stops a search as soon as it found what it looked for."""


class Violation(AssertionError):
    pass


# ---------------------------------------------------------------- a harness around the engine


class Harness:
    """Validates, evaluates conditions and decides, each decision on a fresh store."""

    def __init__(self, engine: Engine, space: RequestSpace | None = None):
        compiled = engine.compiled
        if compiled is None:
            raise ValueError("the engine has no policy loaded")
        self.compiled = compiled
        self.policy = compiled.policy
        self.space = space or space_for(compiled.policy)
        self.zone = compiled.zone
        self.engine = Engine(compiled, clock=FixedClock(self.space.now), store=MemoryStore())
        self._validators = {
            name: object_checker(info.args, self.zone, strict=True)
            for name, info in self.policy.tools.items()
        }
        p, c = self.policy.principal, self.policy.context
        self._pcheck = (
            object_checker(p, self.zone, strict=False, what="principal field") if p else None
        )
        self._ccheck = (
            object_checker(c, self.zone, strict=False, what="context field") if c else None
        )

    def env(self, req: dict[str, Any]) -> dict[str, Any] | None:
        """The evaluation environment of a request, or None when the request is invalid."""
        try:
            tool = req["tool"]
            v = self._validators.get(tool)
            a = v(req.get("args") or {}, "") if v else dict(req.get("args") or {})
            p = (
                self._pcheck(req.get("principal") or {}, "")
                if self._pcheck
                else dict(req.get("principal") or {})
            )
            c = (
                self._ccheck(req.get("context") or {}, "")
                if self._ccheck
                else dict(req.get("context") or {})
            )
            pinned = c.get("now")
            now = (
                timefuncs.parse_timestamp(pinned, self.zone)
                if pinned is not None
                else self.space.now
            )
        except (RequestError, EvalError, TypeError, ValueError):
            return None
        session = {"id": "", "calls": []} if self.policy.session is not None else None
        return self.compiled.env(a, p, c, now, tool, session)

    def decide(self, req: dict[str, Any]) -> Decision:
        """Decide one request as if it were the first: no limit state, no session history."""
        self.engine.store = MemoryStore()
        self.engine.sessions = MemorySessionStore()
        return self.engine.decide(
            req["tool"],
            args=copy.deepcopy(req.get("args")),
            principal=copy.deepcopy(req.get("principal")),
            context=copy.deepcopy(req.get("context")),
        )

    def holds(self, expr: ast.Expr | None, env: dict[str, Any]) -> bool:
        if expr is None:
            return True
        return run_condition(self.compiled.interpreter, expr, env) is True


def run_search(
    strategy: st.SearchStrategy[Any],
    fn: Callable[[Any], None],
    max_examples: int,
    seed: int | None,
    label: str,
    shrink: bool = False,
) -> BaseException | None:
    """Run ``fn`` over ``strategy`` with Hypothesis; return the exception it ended with.

    Reproducible: the Hypothesis seed is derived from ``seed`` and ``label``.
    """
    mixed = (int(seed or 0) * 1_000_003 + zlib.crc32(label.encode())) & 0xFFFFFFFF
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])

    @settings(
        max_examples=max(1, max_examples),
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
        derandomize=False,
    )
    @given(strategy)
    def search(req: Any) -> None:
        fn(req)

    try:
        hseed(mixed)(search)()
    except _Found:
        return None
    except BaseException as exc:  # noqa: BLE001 - the caller decides what the failure means
        if isinstance(exc, KeyboardInterrupt):
            raise
        return exc
    return None


# ---------------------------------------------------------------- exploration and auto checks


@dataclass
class CheckResult:
    kind: str  # "rule-fires", "tool-allowed", "deterministic", "no-crash", "assertion"
    name: str
    ok: bool
    severity: str = "error"  # "error" fails the run; "warning" does not
    message: str = ""
    request: dict[str, Any] | None = None
    case_yaml: str | None = None
    examples: int = 0

    @property
    def failed(self) -> bool:
        return not self.ok and self.severity == "error"


@dataclass
class Exploration:
    pools: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fired: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule id -> request
    allowed: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool -> request
    confirmed: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool -> request
    problems: list[CheckResult] = field(default_factory=list)
    examples: int = 0


def _rules_for(h: Harness, tool: str) -> list[Any]:
    try:
        return h.compiled.rules_for(tool)
    except Exception:  # noqa: BLE001
        return []


def explore(
    h: Harness,
    max_examples: int = 200,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
    tools: list[str] | None = None,
) -> Exploration:
    """Coverage-guided search per tool: grows a pool of interesting requests (seeds).

    A request joins the pool when it makes a rule fire for the first time, is
    the first allowed request of its tool, or gives a new (effect, code). Along
    the way every request is decided twice (determinism) and checked for
    internal errors.
    """
    ex = Exploration()
    space = h.space
    for tool in space.tools if tools is None else tools:
        if progress:
            progress(f"exploring {tool}")
        pool: list[dict[str, Any]] = []
        ex.pools[tool] = pool
        rules = _rules_for(h, tool)
        seen: set[tuple[str, str]] = set()
        best = [10**9]  # fewest deny rules hit so far: the pool hill-climbs towards allow
        blocker_sets: set[frozenset[str]] = set()
        conds = {r.id: r.condition for r in rules}
        rounds = 10
        for rnd in range(rounds):
            # each round mutates a frozen snapshot of the pool (Hypothesis needs a fixed strategy)
            snapshot = list(pool)
            # seeds carry their own focus: the paths their blocking rules read
            parts = [space.fresh(tool, uniform=True)] + (
                [space.mutate(tool, snapshot, (), uniform=True)] if snapshot else []
            )

            def fn(
                req: dict[str, Any],
                tool: str = tool,
                rules: list[Any] = rules,
                pool: list[dict[str, Any]] = pool,
                seen: set[tuple[str, str]] = seen,
                best: list[int] = best,
                blocker_sets: set[Any] = blocker_sets,
                conds: dict[str, Any] = conds,
            ) -> None:
                ex.examples += 1
                new = _observe(h, ex, tool, req, rules)
                d = h.decide(req)
                key = (d.effect.value, d.code)
                if key not in seen and d.code != "invalid_request":
                    seen.add(key)
                    new = True
                if d.code != "invalid_request" and d.effect.value != "allow":
                    blockers = frozenset(r.id for r in d.rules if r.effect.value != "allow")
                    score = sum(
                        10 if r.effect.value == "deny" else 1
                        for r in d.rules
                        if r.effect.value != "allow"
                    )
                    if blockers not in blocker_sets or score < best[0]:
                        blocker_sets.add(blockers)
                        # mutate what blocks this request: the paths its deny/confirm rules read
                        req = dict(
                            req,
                            _focus=[
                                p for rid in blockers for p in expr_paths(h.policy, conds.get(rid))
                            ],
                        )
                        if score < best[0]:
                            best[0] = score
                            if len(pool) < POOL_MAX:
                                pool.insert(0, req)  # the best so far goes first: mutated most
                            return
                        new = True
                if new and len(pool) < POOL_MAX:
                    pool.append(req)

            run_search(
                st.one_of(*parts), fn, max(1, max_examples // rounds), seed, f"explore:{tool}:{rnd}"
            )
    return ex


def _observe(h: Harness, ex: Exploration, tool: str, req: dict[str, Any], rules: list[Any]) -> bool:
    """Decide twice, note crashes, nondeterminism, fired rules and allows; True if new."""
    new = False
    d1 = h.decide(req)
    d2 = h.decide(req)
    if d1.code == "internal_error" and not any(p.kind == "no-crash" for p in ex.problems):
        ex.problems.append(
            CheckResult(
                "no-crash",
                tool,
                False,
                "error",
                f"deciding raised: {'; '.join(d1.reasons)}",
                req,
                case_yaml(req, d1.effect.value, "internal error"),
            )
        )
    if (d1.effect, [r.id for r in d1.rules], d1.code) != (
        d2.effect,
        [r.id for r in d2.rules],
        d2.code,
    ) and not any(p.kind == "deterministic" for p in ex.problems):
        ex.problems.append(
            CheckResult(
                "deterministic",
                tool,
                False,
                "error",
                f"the same request got {d1.effect.value} ({d1.code}) then {d2.effect.value} ({d2.code})",
                req,
            )
        )
    if d1.effect.value == "confirm" and tool not in ex.confirmed:
        ex.confirmed[tool] = req
    if d1.effect.value == "allow" and tool not in ex.allowed:
        ex.allowed[tool] = req
        new = True
    pending = [r for r in rules if r.id not in ex.fired]
    if pending:
        env = h.env(req)
        if env is not None:
            for r in pending:
                if h.holds(r.condition, env):
                    ex.fired[r.id] = req
                    new = True
    return new


def auto_checks(
    h: Harness,
    ex: Exploration,
    max_examples: int = 200,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[CheckResult]:
    """Every rule can fire; every declared tool can be allowed; plus what exploring found."""
    policy = h.policy
    results: list[CheckResult] = list(ex.problems)
    for kind in ("no-crash", "deterministic"):
        if not any(p.kind == kind for p in ex.problems):
            results.append(
                CheckResult(
                    kind,
                    "all tools",
                    True,
                    examples=ex.examples,
                    message=f"{ex.examples} requests decided twice",
                )
            )
    # every rule can fire
    for rule in policy.rules:
        rid = policy.rule_id(rule)
        if rid not in ex.fired:
            tools = tools_of(policy, rule.tools)
            cond = None
            for tool in tools:
                plans = [r for r in _rules_for(h, tool) if r.id == rid]
                if not plans:
                    continue
                cond = plans[0].condition
                if progress:
                    progress(f"searching for a request that fires {rid}")
                focus = expr_paths(policy, cond)
                _focused(
                    h, ex, tool, focus, max_examples, seed, f"fire:{rid}:{tool}", _fires(h, cond)
                )
                if rid in ex.fired:
                    break
        ok = rid in ex.fired
        results.append(
            CheckResult(
                "rule-fires",
                rid,
                ok,
                "warning",
                ""
                if ok
                else f"rule {rid} never fires (no request found that makes its condition true)",
            )
        )
    # every declared tool can be allowed
    if policy.default != "allow":
        for tool in list(policy.tools):
            if tool not in ex.allowed:
                allow_conds = [r.condition for r in _rules_for(h, tool) if r.effect == "allow"]
                if allow_conds:
                    if progress:
                        progress(f"searching for a request that {tool} allows")
                    focus = [p for c in allow_conds for p in expr_paths(policy, c)]
                    _focused(
                        h,
                        ex,
                        tool,
                        focus,
                        max_examples,
                        seed,
                        f"allow:{tool}",
                        lambda req, env, d: d is not None and d.effect.value == "allow",
                    )
            ok = tool in ex.allowed
            if ok:
                msg = ""
            elif tool in ex.confirmed:
                msg = f"tool {tool} is never allowed outright: at best a person must confirm it"
            else:
                msg = (
                    f"tool {tool} is never allowed (no request found that any allow rule lets "
                    "through under default deny)"
                )
            results.append(CheckResult("tool-allowed", tool, ok, "warning", msg))
    return results


def _fires(
    h: Harness, cond: Any
) -> Callable[[dict[str, Any], dict[str, Any] | None, Decision | None], bool]:
    def goal(req: dict[str, Any], env: dict[str, Any] | None, d: Decision | None) -> bool:
        return env is not None and h.holds(cond, env)

    return goal


def _focused(
    h: Harness,
    ex: Exploration,
    tool: str,
    focus: list[str],
    max_examples: int,
    seed: int | None,
    label: str,
    goal: Callable[[dict[str, Any], dict[str, Any] | None, Decision | None], bool],
) -> None:
    space = h.space
    pool = ex.pools.setdefault(tool, [])
    rules = _rules_for(h, tool)
    parts = [space.fresh(tool, uniform=True)] + (
        [space.mutate(tool, list(pool), focus, uniform=True)] if pool else []
    )
    strat = st.one_of(*parts)

    def fn(req: dict[str, Any]) -> None:
        ex.examples += 1
        if _observe(h, ex, tool, req, rules) and len(pool) < POOL_MAX:
            pool.append(req)
        env = h.env(req)
        d = h.decide(req)
        if goal(req, env, d):
            raise _Found()

    run_search(strat, fn, max_examples, seed, label)


# ---------------------------------------------------------------- assertions


def assertion_text(policy: Any, a: ast.Assertion) -> str:
    src = policy.sources.get(a.span.file)
    if src and a.span.end > a.span.start:
        text = " ".join(src[a.span.start : a.span.end].split())
        if text:
            return text
    tools = ", ".join(p.pattern for p in a.tools)
    when = f" when {format_expr(a.when)}" if a.when is not None else ""
    return f"assert {a.quantifier} {a.effect} {tools}{when}"


def violates(a: ast.Assertion, effect: str) -> bool:
    return effect == a.effect if a.quantifier == "never" else effect != a.effect


def wanted(a: ast.Assertion) -> str | list[str]:
    if a.quantifier == "always":
        return a.effect
    return [e for e in ("deny", "confirm", "allow") if e != a.effect]


def case_yaml(
    req: dict[str, Any], want: str | list[str], name: str, rules: list[str] | None = None
) -> str:
    case: dict[str, Any] = {
        "name": name,
        "request": {
            "tool": req["tool"],
            "args": req.get("args") or {},
            "principal": req.get("principal") or {},
            "context": req.get("context") or {},
        },
    }
    case["want"] = want
    # quoted wherever YAML 1.1 or 1.2 would read a string as another type: pastes back as written
    text = dump_yaml(
        [case], sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return text


def check_assertion(
    h: Harness,
    a: ast.Assertion,
    ex: Exploration | None = None,
    max_examples: int = 200,
    seed: int | None = None,
    sweep: bool = True,
) -> CheckResult:
    """Search for a request that satisfies ``when`` and breaks the assertion."""
    policy = h.policy
    aid = policy.rule_id(a)
    text = assertion_text(policy, a)
    tools = tools_of(policy, a.tools)
    focus = expr_paths(policy, a.when)
    checked = 0
    failing: list[tuple[dict[str, Any], Decision]] = []

    def fn(req: dict[str, Any]) -> None:
        nonlocal checked
        env = h.env(req)
        if env is None or not h.holds(a.when, env):
            return
        checked += 1
        d = h.decide(req)
        if violates(a, d.effect.value):
            failing.append((req, d))
            raise Violation(f"{d.effect.value}")

    for tool in tools:
        pool = list(ex.pools.get(tool, [])) if ex else []
        if sweep and pool:
            for req in _sweep(h.space, tool, pool, focus):
                try:
                    fn(req)
                except Violation:
                    break
            if failing:
                break
        parts = [h.space.fresh(tool)]
        if pool:
            parts += [
                h.space.mutate(tool, pool, focus),
                h.space.mutate(tool, pool, focus, uniform=True),
            ]
        run_search(st.one_of(*parts), fn, max_examples, seed, f"assert:{aid}:{tool}", shrink=True)
        if failing:
            break
    if not failing:
        if checked == 0:
            return CheckResult(
                "assertion",
                aid,
                True,
                "warning",
                f"{text}: no request satisfying its 'when' was found; the assertion "
                "was not exercised",
                examples=checked,
            )
        return CheckResult("assertion", aid, True, message=text, examples=checked)
    req, d = failing[-1]
    rules = [r.id for r in d.rules]
    want = wanted(a)
    want_text = want if isinstance(want, str) else " or ".join(want)
    why = ", ".join(rules) if rules else d.code
    msg = (
        f"{text}\n  counterexample got {d.effect.value} ({why}); the assertion wants {want_text}\n"
        f"  reasons: {'; '.join(d.reasons) or '-'}"
    )
    return CheckResult(
        "assertion",
        aid,
        False,
        "error",
        msg,
        req,
        case_yaml(req, want, f"counterexample to {aid}"),
        examples=checked,
    )


def _sweep(
    space: RequestSpace, tool: str, pool: list[dict[str, Any]], focus: list[str]
) -> list[dict[str, Any]]:
    """Each known seed with one focused field set to each constant the rules mention."""
    out: list[dict[str, Any]] = []
    slots = {f"{s}.{n}": (s, n) for s, n, _ in space.slots(tool)}
    for path in focus:
        if path not in slots:
            continue
        section, name = slots[path]
        pc = space.consts.get(path)
        if pc is None:
            continue
        values: list[Any] = [*pc.numbers[:30], *pc.strings[:30], *pc.bools]
        for seed_req in pool[:12]:
            for v in values:
                req: dict[str, Any] = {
                    "tool": tool,
                    "args": dict(seed_req["args"]),
                    "principal": dict(seed_req["principal"]),
                    "context": dict(seed_req["context"]),
                }
                req[section][name] = v
                out.append(req)
    return out[:2000]


__all__ = [
    "Harness",
    "Exploration",
    "CheckResult",
    "explore",
    "auto_checks",
    "check_assertion",
    "run_search",
    "case_yaml",
    "assertion_text",
    "format_ts",
]
