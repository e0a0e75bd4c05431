"""pycasbin: Casbin's ABAC model, rule conditions evaluated with `eval()` in the matcher.

Translation. A policy line is `(tool, effect, condition)`; the condition is a
Casbin/simpleeval expression over the request's `r.sub`, `r.args`, `r.ctx`.
Casbin's effect is binary (`p.eft` is allow or deny), so the three-valued
decision is made by the adapter with up to three `enforce` calls in policylang's
order: is there a matching `deny` rule for this tool, else a `confirm` rule,
else an `allow` rule, else deny. Casbin's own `FastEnforcer` indexes the policy
lines by `(tool, effect)` (`cache_key_order=[0, 1]`), so each call evaluates
only that tool's rules of that effect; a plain `Enforcer` would evaluate (and
re-parse, because of `eval()`) every line of every tool on every call.

Not native in Casbin, and what the adapter does instead:
- weekday / holiday rules: custom functions `weekday()` and `is_holiday()`
  registered with `add_function` (the holiday dates are the shared set);
  `decide` parses the ISO timestamps into `datetime` first (timed).
- "some recipient is outside the trusted domains": the matcher language has no
  quantifier over a list, so it is a custom function `has_untrusted(r.args.to)`.
- data lists (`crm_fields`): Casbin has no data documents, so the list is
  inlined as a literal tuple into the condition at load.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import casbin
from casbin.model import FastModel

from benchmarks.domain_funcs import is_holiday, weekday
from benchmarks.workload import DATA, TIMESTAMP_PARAMS, Request, Workload

MODEL = """
[request_definition]
r = tool, eff, sub, args, ctx

[policy_definition]
p = tool, eff, cond

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.tool == p.tool && r.eff == p.eff && eval(p.cond)
"""

_STAFF = "('employee', 'admin', 'finance', 'sales')"
_CRM_FIELDS = repr(tuple(DATA["crm_fields"]))

# Per base tool: (effect, condition). Same rules as workload.RULES.
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "payments.send": (
        ("allow", "r.sub.role in ('finance', 'admin') && 'payments:write' in r.sub.scopes"),
        ("deny", "r.args.amount <= 0"),
        ("confirm", "r.args.amount > 10000"),
        ("deny", "!(r.args.currency in ('USD', 'EUR', 'GBP'))"),
        ("confirm", "r.ctx.confidence < 0.85"),
    ),
    "calendar.create_event": (
        ("allow", f"r.sub.role in {_STAFF}"),
        ("deny", "r.args.end <= r.args.start"),
        ("deny", "weekday(r.args.start, 'America/New_York') in ('Sat', 'Sun')"),
        ("deny", "is_holiday(r.args.start, 'US')"),
    ),
    "email.send": (
        ("allow", f"r.sub.role in {_STAFF}"),
        ("deny", "has_untrusted(r.args.to)"),
    ),
    "crm.update": (("allow", f"r.sub.role == 'sales' && r.args.field in {_CRM_FIELDS}"),),
    "files.delete": (
        ("confirm", "True"),
        ("deny", "r.args.path.startswith('/etc')"),
        ("deny", "r.args.path.startswith('/secrets')"),
    ),
}


def _has_untrusted_factory(trusted: frozenset[str]) -> Any:
    def has_untrusted(recipients: list[str]) -> bool:
        return any(r.rpartition("@")[2] not in trusted for r in recipients)

    return has_untrusted


def _effects(kind: str) -> tuple[str, ...]:
    # Only effects the tool has rules for: enforce() with eval() raises on an empty policy set.
    present = {effect for effect, _ in TEMPLATES[kind]}
    return tuple(e for e in ("deny", "confirm", "allow") if e in present)


class Casbin:
    name = "pycasbin"

    def __init__(self) -> None:
        self._enforcer: Any = None
        # per tool: its timestamp params and the effects it has rules for, in decision order
        self._tools: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def load(self, workload: Workload) -> None:
        model = FastModel([0, 1])
        model.load_model_from_text(MODEL)
        enforcer = casbin.FastEnforcer(model, cache_key_order=[0, 1])
        enforcer.add_function("weekday", weekday)
        enforcer.add_function("is_holiday", is_holiday)
        enforcer.add_function(
            "has_untrusted", _has_untrusted_factory(frozenset(workload.data["trusted_domains"]))
        )
        enforcer.add_policies(
            [[t.name, effect, cond] for t in workload.tools for effect, cond in TEMPLATES[t.kind]]
        )
        self._enforcer = enforcer
        self._tools = {
            t.name: (TIMESTAMP_PARAMS.get(t.kind, ()), _effects(t.kind)) for t in workload.tools
        }

    def decide(self, request: Request) -> str:
        entry = self._tools.get(request.tool)
        if entry is None:
            return "deny"
        ts_params, effects = entry
        args = request.args
        if ts_params:
            args = dict(args)
            for p in ts_params:
                args[p] = datetime.fromisoformat(args[p])
        enforce = self._enforcer.enforce
        tool, sub, ctx = request.tool, request.principal, request.context
        for effect in effects:
            try:
                fired = enforce(tool, effect, sub, args, ctx)
            except Exception:  # a failing condition fails closed
                return "deny"
            if fired:
                return effect
        return "deny"
