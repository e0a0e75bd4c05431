"""Checked policy → IR: rules grouped by tool, in named passes.

Each :class:`ToolPlan` holds the rules that can apply to one tool, split by
effect, with ``when``/``unless`` folded into one condition. The passes are
listed in :data:`PASSES`; each takes and returns the list of plans, so each
can be tested and printed alone (``policylang compile --emit ir``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from policylang.errors import Span
from policylang.language import ast
from policylang.language.checker import rule_tools
from policylang.language.policy import TRUE, Policy, condition_of, tool_matches
from policylang.language.secrets import reads_secret, redact_message, secret_scope


@dataclass(frozen=True, slots=True)
class RulePlan:
    """One rule as the evaluator sees it. ``index`` is its position in the policy."""

    index: int
    id: str
    name: str | None
    effect: str
    condition: ast.Expr
    because: ast.Message | None
    span: Span
    secret_condition: bool = (
        False  # the condition reads a @secret value: its error texts are withheld
    )

    @property
    def location(self) -> str:
        return str(self.span)


@dataclass(frozen=True, slots=True)
class LimitPlan:
    """One limit as the engine books it.

    ``id`` is what people see (its name, or ``file:line``); ``store_id`` is
    what its counters are kept under: its name, or a hash of its content (see
    :func:`limit_identities`), so moving it in the file keeps its counters.
    ``limit`` is the statement with a ``by`` that adds several strings
    (``principal.id + "/" + args.to``) split into a list of the added parts;
    ``by_parts`` then holds the positions of the non-constant parts and
    ``by_whole`` the original expression, which the engine evaluates instead
    when some part is not a string (so numbers still add up exactly as CEL does).
    """

    index: int
    id: str
    limit: ast.LimitRule
    span: Span
    store_id: str = ""
    by_parts: tuple[int, ...] | None = None
    by_whole: ast.Expr | None = None
    key_secret: bool = False  # its `by` key reads a @secret value: shown redacted, stored hashed
    secret_exprs: bool = (
        False  # its when/by/sum reads a @secret value: its error texts are withheld
    )


def _added(e: ast.Expr) -> list[ast.Expr]:
    """The operands of a chain of ``+`` (``a + "/" + b`` → a, "/", b), in order."""
    if isinstance(e, ast.Binary) and e.op == "+":
        return _added(e.left) + _added(e.right)
    return [e]


def limit_plan(index: int, lim: ast.LimitRule, policy_id: str, store_id: str) -> LimitPlan:
    """The plan of one limit; a ``by`` adding two or more non-constant parts is split."""
    if lim.key is not None:
        parts = _added(lim.key)
        variable = tuple(i for i, e in enumerate(parts) if not isinstance(e, ast.Literal_))
        if len(variable) >= 2:
            split = dataclasses.replace(lim, key=ast.ListExpr(tuple(parts), span=lim.key.span))
            return LimitPlan(index, policy_id, split, lim.span, store_id, variable, lim.key)
    return LimitPlan(index, policy_id, lim, lim.span, store_id)


def _canon(node: Any) -> Any:
    """An AST value as plain JSON data, without source positions (layout never matters)."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [type(node).__name__] + [
            _canon(getattr(node, f.name))
            for f in dataclasses.fields(node)
            if f.name != "span" and f.compare
        ]
    if isinstance(node, tuple | list):
        return ["()"] + [_canon(x) for x in node]
    if isinstance(node, timedelta):
        return ["td", repr(node.total_seconds())]
    if isinstance(node, bytes):
        return ["b", node.hex()]
    if isinstance(node, bool) or node is None or isinstance(node, str):
        return node
    if isinstance(node, int | float):
        return ["n", type(node).__name__, repr(node)]
    return ["?", type(node).__name__, repr(node)]


def limit_identity(lim: ast.LimitRule) -> str:
    """What a limit's counters are kept under: its name, else a hash of what it says.

    The hash covers the normalised statement — the tool patterns (sorted, each
    once), the amount and the window as numbers, and the ``sum``, ``by`` and
    ``when`` expressions as syntax trees — and nothing else: not its file or
    line, comments, layout, parentheses, or ``fail open``. Editing any of the
    covered parts starts fresh counters; moving the statement does not.
    """
    if lim.name:
        return lim.name
    statement = {
        "tools": sorted({p.pattern for p in lim.tools}),
        "amount": repr(float(lim.amount)),
        "window": repr(lim.window.total_seconds()),
        "sum": _canon(lim.cost),
        "by": _canon(lim.key),
        "when": _canon(lim.when),
    }
    text = json.dumps(statement, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return "#" + hashlib.sha256(text.encode("ascii")).hexdigest()[:24]


def limit_identities(policy: Policy) -> list[str]:
    """:func:`limit_identity` of each of the policy's limits, in order.

    Identical unnamed statements (which would otherwise share, and double-book,
    one counter) are told apart by their rank among their twins: ``#…~2``.
    """
    out = []
    seen: dict[str, int] = {}
    for lim in policy.limits:
        ident = limit_identity(lim)
        n = seen[ident] = seen.get(ident, 0) + 1
        out.append(ident if n == 1 else f"{ident}~{n}")
    return out


@dataclass
class ToolPlan:
    tool: str | None  # None: a tool the policy does not declare
    deny: list[RulePlan] = field(default_factory=list)
    confirm: list[RulePlan] = field(default_factory=list)
    allow: list[RulePlan] = field(default_factory=list)
    limits: list[LimitPlan] = field(default_factory=list)

    def rules(self) -> list[RulePlan]:
        return [*self.deny, *self.confirm, *self.allow]


def rule_plans(policy: Policy) -> list[RulePlan]:
    return [
        RulePlan(i, policy.rule_id(r), r.name, r.effect, condition_of(r), r.because, r.span)
        for i, r in enumerate(policy.rules)
    ]


def plan_for_tool(policy: Policy, tool: str | None, name: str | None = None) -> ToolPlan:
    """The plan for a declared tool, or (tool=None) for an undeclared tool ``name``."""
    plans = rule_plans(policy)
    out = ToolPlan(tool)
    probe = tool if tool is not None else name
    for plan, rule in zip(plans, policy.rules, strict=True):
        if probe is None or any(tool_matches(p.pattern, probe) for p in rule.tools):
            if tool is None and probe is not None and None not in rule_tools(policy, rule.tools):
                continue
            getattr(out, plan.effect).append(plan)
    idents = limit_identities(policy)
    for i, lim in enumerate(policy.limits):
        if probe is None or any(tool_matches(p.pattern, probe) for p in lim.tools):
            out.limits.append(limit_plan(i, lim, policy.rule_id(lim), idents[i]))
    return redact_secrets(policy, out)


def redact_secrets(policy: Policy, plan: ToolPlan) -> ToolPlan:
    """Per tool: a because ``{part}`` that reads a @secret value becomes the redaction marker.

    Done on the plan, before any code is written, so the ordinary path, the
    fused path and the reference interpreter all get the same redacted text
    and never evaluate the secret part at all. Rules whose condition, and
    limits whose ``when``/``by``/``sum``, read a secret are flagged: the text of
    an error there could quote a value derived from the secret, so the engine
    withholds it. A limit whose ``by`` key reads a secret is shown redacted and
    stored hashed.
    """
    scope = secret_scope(policy, plan.tool)
    if not (scope.active or scope.session):
        return plan
    for effect in ("deny", "confirm", "allow"):
        rules = []
        for r in getattr(plan, effect):
            because = redact_message(r.because, scope) if r.because is not None else None
            secret_condition = reads_secret(r.condition, scope)
            if because is not r.because or secret_condition:
                r = dataclasses.replace(r, because=because, secret_condition=secret_condition)
            rules.append(r)
        setattr(plan, effect, rules)
    limits = []
    for lp in plan.limits:
        key_secret = lp.limit.key is not None and reads_secret(lp.limit.key, scope)
        exprs = [x for x in (lp.limit.when, lp.limit.key, lp.limit.cost) if x is not None]
        secret_exprs = any(reads_secret(x, scope) for x in exprs)
        if key_secret or secret_exprs:
            lp = dataclasses.replace(lp, key_secret=key_secret, secret_exprs=secret_exprs)
        limits.append(lp)
    plan.limits = limits
    return plan


def drop_duplicates(plans: list[ToolPlan]) -> list[ToolPlan]:
    """Identical rules (same effect and condition) decide the same: keep the first.

    Its reasons are kept too, so the decision still names every distinct message.
    """
    for p in plans:
        for effect in ("deny", "confirm", "allow"):
            seen: set[tuple[ast.Expr, ast.Message | None]] = set()
            kept = []
            for r in getattr(p, effect):
                key = (r.condition, r.because)
                if key in seen:
                    continue
                seen.add(key)
                kept.append(r)
            setattr(p, effect, kept)
    return plans


def unconditional_first(plans: list[ToolPlan]) -> list[ToolPlan]:
    """Cheapest first: rules with no condition need no evaluation at all."""
    for p in plans:
        for effect in ("deny", "confirm", "allow"):
            rules = getattr(p, effect)
            setattr(p, effect, sorted(rules, key=lambda r: r.condition != TRUE))
    return plans


PASSES: list[tuple[str, Callable[[list[ToolPlan]], list[ToolPlan]]]] = [
    ("drop_duplicates", drop_duplicates),
    ("unconditional_first", unconditional_first),
]


def build(policy: Policy) -> list[ToolPlan]:
    """One plan per declared tool, in time linear in rules × the tools each names."""
    plans = {name: ToolPlan(name) for name in policy.tools}
    for plan, rule in zip(rule_plans(policy), policy.rules, strict=True):
        for name in _targets(policy, rule.tools):
            getattr(plans[name], plan.effect).append(plan)
    idents = limit_identities(policy)
    for i, lim in enumerate(policy.limits):
        lp = limit_plan(i, lim, policy.rule_id(lim), idents[i])
        for name in _targets(policy, lim.tools):
            plans[name].limits.append(lp)
    return run_passes([redact_secrets(policy, p) for p in plans.values()])


def _targets(policy: Policy, patterns: tuple[ast.ToolPattern, ...]) -> list[str]:
    """Declared tools named by a comma list, each once, in declaration order if globbed."""
    names: dict[str, None] = {}
    for p in patterns:
        for name in policy.tools_matching(p.pattern):
            names[name] = None
    return list(names)


def run_passes(plans: list[ToolPlan]) -> list[ToolPlan]:
    for _, run in PASSES:
        plans = run(plans)
    return plans


def describe(plans: list[ToolPlan]) -> str:
    """A readable dump of the IR (``--emit ir``)."""
    lines = []
    for p in plans:
        lines.append(f"tool {p.tool or '<undeclared>'}")
        for effect in ("deny", "confirm", "allow"):
            for r in getattr(p, effect):
                lines.append(f"  {effect:<8}{r.id}")
        for lim in p.limits:
            lines.append(f"  limit   {lim.id}")
    return "\n".join(lines)


__all__ = [
    "RulePlan",
    "LimitPlan",
    "ToolPlan",
    "build",
    "plan_for_tool",
    "describe",
    "dataclasses",
    "limit_identity",
    "limit_identities",
    "limit_plan",
]
