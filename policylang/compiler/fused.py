"""One fused function per tool: shape checks and every rule in a single call.

The ordinary evaluator (:mod:`policylang.compiler.codegen`) takes validated
input and returns the matching rules; the engine then builds the outcome. For
the common call that is well-formed and raises nowhere, that is several
calls and allocations too many. The fused function does it all in one frame:

- it checks the request's shape inline (the same tests as the generated
  validators in :mod:`policylang.runtime.validation`), parsing timestamp,
  duration and date text on the way, and that no NaN or infinity hides in an
  untyped position (a ``dyn`` field, an undeclared principal or context key);
- it evaluates the tool's rules stage by stage (deny, confirm, allow) with the
  same Python expressions as the ordinary evaluator, setting one bit per
  matching rule, and returns that bitmask: the engine maps it to a prebuilt
  outcome;
- anything unusual (a shape that needs the validator's conversions or error
  messages, a pinned ``context.now`` that a rule reads as a field, any
  exception) returns ``None`` and the
  engine takes the ordinary path, which gives the exact answer. The fused path
  is an accelerator only; it never decides differently.

A tool with rate limits has one too: a deny needs no limit, so denies are
answered from the bitmask, and the engine sends the rest down the ordinary
path, which books the limits.

Tools whose declarations and conditions are the same (one rule set applied to
many tools, replicated services) share one function: the code is generated as
text with every value bound by name, so equal text means equal behaviour, and
each tool keeps its own rules-by-bit and outcome table. Policies with sessions
and reference mode have no fused functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policylang.compiler.codegen import Module, ToolWriter
from policylang.compiler.plan import RulePlan, ToolPlan
from policylang.language import ast
from policylang.language.policy import Policy
from policylang.language.types import Type
from policylang.runtime.validation import MISSING, all_finite, shape_check_lines

_NOW = re.compile(r"\bnow\b")
_SESSION = re.compile(r"\bs\b")
_CONVERTERS = {"timestamp": "_conv_timestamp", "duration": "_conv_duration", "date": "_conv_date"}
FUSED_HELPERS = {
    "MISSING": MISSING,
    "_finite": all_finite,
}  # plus the converters, bound per policy zone by the builder


@dataclass(frozen=True)
class FusedPlan:
    """What the engine needs to use a fused function: its name, rules by bit, and whether it reads now."""

    name: str
    rules: tuple[RulePlan, ...]  # rules[i] matched when bit i of the result is set
    uses_now: bool


def write_fused(writer: ToolWriter, plan: ToolPlan, fname: str, policy: Policy) -> FusedPlan | None:
    """Write ``<fname>_fused(a, p, c, now, tool)`` into the writer's module; None when not eligible."""
    if policy.session is not None or writer.reference or plan.tool is None:
        return None
    info = policy.tools.get(plan.tool)
    if info is None:
        return None
    m: Module = writer.m
    rules: list[RulePlan] = []
    body: list[str] = []
    stages = [effect for effect in ("deny", "confirm", "allow") if getattr(plan, effect)]
    for effect in stages:
        stage: list[RulePlan] = getattr(plan, effect)
        for rule in stage:
            bit = 1 << len(rules)
            rules.append(rule)
            if isinstance(rule.condition, ast.Literal_) and rule.condition.value is True:
                body.append(f"m |= {bit}")
                continue
            code = writer.expression(rule.condition)
            if code is None or _SESSION.search(code):
                return None
            body += [f"if {code}:", f"    m |= {bit}"]
        if effect != stages[-1]:
            body += ["if m:", "    return m"]
    body.append("return m")
    uses_now = any(_NOW.search(line) for line in body)

    def bind(value: object, hint: str) -> str:
        return m.const(value, hint)

    shapes = shape_check_lines(
        info.args,
        "a",
        bind,
        "return None",
        strict=True,
        converters=_CONVERTERS,
        raising=True,
        fill_defaults=True,
        finite=True,
    )
    shapes += _open_shape(policy.principal, "p", bind)
    context = policy.context
    if context is not None:
        context = Type("object", fields=tuple(f for f in context.fields if f[0] != "now"))
    shapes += _open_shape(context, "c", bind)
    copies = [f"{v}_conv" for v in "apc" if f"{v}_conv = None" in shapes]
    if copies:  # the engine finishes such a decision from these copies, not the caller's dicts
        shapes.append(f"cv = {' is not None or '.join(copies)} is not None")
        body = [line.replace("return m", "return (m, a, p, c) if cv else m") for line in body]
    now_key = bind("now", "now")  # the same name wherever the code reads a field called now
    start, end = m.tool_ranges.get(plan.tool, (1, 0))  # the tool's evaluator, limits and templates
    if any(re.search(rf"\b{now_key}\b", line) for line in [*body, *m.lines[start - 1 : end]]):
        # a rule reads context.now, which the ordinary path turns into a timestamp first
        shapes += [f"if {now_key} in c:", "    return None"]
    lines = tuple([*shapes, "m = 0", *body])
    shared = m.fused_bodies.get(lines)
    if shared is not None:  # tools with the same declarations and conditions share one function
        return FusedPlan(shared, tuple(rules), uses_now)
    name = m.fused_bodies[lines] = f"{fname}_fused"
    m.line(f"def {name}(a, p, c, now, tool):")
    m.indent()
    m.line("try:")
    m.indent()
    for line in lines:
        m.line(line)
    m.dedent()
    m.line("except Exception:")
    m.line("    return None")
    m.dedent()
    m.line()
    return FusedPlan(name, tuple(rules), uses_now)


def _open_shape(t: Type | None, var: str, bind: object) -> list[str]:
    """Principal and context: declared fields checked, extra keys allowed; undeclared: any map."""
    if t is None:  # any map, but never a NaN in it (the ordinary path says where)
        return [f"if type({var}) is not dict or not _finite({var}):", "    return None"]
    return shape_check_lines(
        t,
        var,
        bind,  # type: ignore[arg-type]
        "return None",
        strict=False,
        raising=True,
        fill_defaults=True,
        finite=True,
    )


__all__ = ["FusedPlan", "write_fused", "FUSED_HELPERS"]
