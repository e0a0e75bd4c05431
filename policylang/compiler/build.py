"""Checked policy → :class:`CompiledPolicy`: executable evaluators indexed by tool.

Runs the plan passes, writes one Python module with an evaluator per declared
tool, executes it in a namespace that holds only our helpers and the module's
constants (a bare-bones ``__builtins__``: generated code cannot import), and
wires in the reference interpreter as the exact slow path for any condition
whose fast code raised. Undeclared tools (open policies, ``default allow``)
get evaluators compiled on first use and cached by the set of rules that
apply, so the cache stays small however many tool names callers invent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policylang.compiler import plan as planner
from policylang.compiler.codegen import Module, ToolWriter, impl_name, new_module
from policylang.compiler.fused import FUSED_HELPERS, FusedPlan, write_fused
from policylang.compiler.interpreter import Err, Interpreter, run_condition
from policylang.compiler.plan import LimitPlan, RulePlan, ToolPlan
from policylang.errors import EvalError
from policylang.language.checker import scope_for
from policylang.language.policy import Policy, ToolInfo, tool_matches
from policylang.runtime import caches, celops, library, timefuncs

Evaluator = Callable[..., tuple[str | None, list[RulePlan], list[tuple[RulePlan, str]] | None]]

_SAFE_BUILTINS = {
    "all": all,
    "any": any,
    "sum": sum,
    "len": len,
    "Exception": Exception,
    # for the fused functions' shape checks (`type(x) is str`, `dict(a)`)
    "type": type,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
}
_UNDECLARED_CACHE = 512


@dataclass
class ToolEvaluator:
    tool: str | None
    run: Evaluator
    limits: list[LimitPlan]
    limits_fn: Callable[..., tuple[Any, ...]] | None
    info: ToolInfo | None
    plan: ToolPlan
    messages: dict[int, Callable[..., tuple[Any, ...]]] = field(default_factory=dict)
    fused: Callable[..., int | None] | None = None  # see policylang.compiler.fused
    fused_plan: FusedPlan | None = None


def _iter(x: Any) -> Any:
    if isinstance(x, list | tuple | dict):
        return x
    raise EvalError(f"expected a list or a map to iterate, got {celops.type_name(x)}")


def _mkmap(pairs: tuple[tuple[Any, Any], ...]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k, v in pairs:
        if type(k) not in (str, int, bool):
            raise EvalError(f"a map key must be a string, int or bool, not {celops.type_name(k)}")
        if any(celops.eq(k, existing) for existing in out):
            raise EvalError(f"duplicate map key {celops.format_value(k)}")
        out[k] = v
    return out


def _unknown() -> Any:
    raise EvalError("unknown name")


class CompiledPolicy:
    """The executable form of one policy. Immutable once built; safe to share."""

    def __init__(self, policy: Policy, reference: bool = False):
        self.policy = policy
        self.reference = reference
        self.zone = timefuncs.get_zone(policy.timezone)
        self.functions = library.bind(self.zone, declared=policy.timezone_declared)
        self.interpreter = Interpreter(self.functions, impl_name)
        self.plans = planner.build(policy)
        self.module = new_module()
        self._ns: dict[str, Any] = self._namespace(self.module)
        self.evaluators: dict[str, ToolEvaluator] = {}
        for i, p in enumerate(self.plans):
            assert p.tool is not None
            self.evaluators[p.tool] = self._compile(p, f"tool_{i}", self.module)
        self._undeclared: OrderedDict[tuple[int, ...], ToolEvaluator] = OrderedDict()
        self._undeclared_names: OrderedDict[str, ToolEvaluator] = OrderedDict()
        self._lock = threading.Lock()

    # ---- building

    def _namespace(self, module: Module) -> dict[str, Any]:
        ns: dict[str, Any] = {
            "__builtins__": _SAFE_BUILTINS,
            "__name__": "policylang_generated",
            "DENY": "deny",
            "CONFIRM": "confirm",
            "ALLOW": "allow",
            "_eq": celops.eq,
            "_ne": celops.ne,
            "_lt": celops.lt,
            "_le": celops.le,
            "_gt": celops.gt,
            "_ge": celops.ge,
            "_add": celops.add,
            "_sub": celops.sub,
            "_mul": celops.mul,
            "_div": celops.div,
            "_mod": celops.mod,
            "_neg": celops.neg,
            "_not": celops.not_,
            "_truthy": celops.truthy,
            "_in": celops.in_,
            "_select": celops.select,
            "_has": celops.has,
            "_index": celops.index,
            "_iter": _iter,
            "_mkmap": _mkmap,
            "_unknown_name": _unknown,
            "_unknown_function": _unknown,
            "_recover": self._recover,
            "_limit_slow": self._limit_slow,
            "_SKIP": (False, None, 0),
            **FUSED_HELPERS,
            "_conv_timestamp": timefuncs.timestamp_reader(self.zone),
            "_conv_duration": timefuncs.parse_duration,
            "_conv_date": lambda v: timefuncs.parse_date(v, self.zone),
        }
        for name, value in module.constants.items():
            ns[name] = self.functions[value] if name.startswith("F") else value
        return ns

    def _compile(self, p: ToolPlan, fname: str, module: Module) -> ToolEvaluator:
        writer = ToolWriter(
            module, scope_for(self.policy, p.tool), self.policy.data, self.reference, self.functions
        )
        start = len(module.lines)
        writer.write(p, fname)
        fused = write_fused(writer, p, fname, self.policy) if module is self.module else None
        if fused is not None and p.tool in module.tool_ranges:  # source_for() shows both functions
            module.tool_ranges[p.tool] = (module.tool_ranges[p.tool][0], len(module.lines))
        source = "\n".join(module.lines[start:]) + "\n"
        code = compile(source, f"<policylang {self.policy.name}:{fname}>", "exec")
        if module is self.module:  # one shared namespace: loading stays linear in tools
            ns = self._ns
            for name, value in module.constants.items():
                if name not in ns:
                    ns[name] = self.functions[value] if name.startswith("F") else value
        else:
            ns = self._namespace(module)
        exec(code, ns)  # noqa: S102 - our own generated source; user text only as bound constants
        info = self.policy.tools.get(p.tool) if p.tool else None
        messages = {
            index: ns[name] for (owner, index), name in module.messages.items() if owner == fname
        }
        return ToolEvaluator(
            p.tool,
            ns[fname],
            p.limits,
            ns.get(f"{fname}_limits"),
            info,
            p,
            messages,
            ns[fused.name] if fused is not None else None,
            fused,
        )

    # ---- slow paths

    def env(self, a: Any, p: Any, c: Any, now: Any, tool: Any, s: Any) -> dict[str, Any]:
        return {
            "args": a,
            "principal": p,
            "context": c,
            "data": self.policy.data,
            "now": now,
            "tool": tool,
            "session": s,
        }

    def _recover(
        self,
        rule: RulePlan,
        hits: list[RulePlan],
        errs: list[tuple[RulePlan, str]] | None,
        a: Any,
        p: Any,
        c: Any,
        now: Any,
        tool: Any,
        s: Any,
    ) -> Any:
        """Exact CEL outcome of one condition whose fast code raised; fails closed."""
        out = run_condition(self.interpreter, rule.condition, self.env(a, p, c, now, tool, s))
        if isinstance(out, Err):
            errs = [*(errs or []), (rule, out.message)]
            if rule.effect != "allow":
                hits.append(rule)
        elif out:
            hits.append(rule)
        return errs

    def _limit_slow(
        self, lp: LimitPlan, a: Any, p: Any, c: Any, now: Any, tool: Any, s: Any
    ) -> tuple[Any, Any, Any]:
        env = self.env(a, p, c, now, tool, s)
        lim = lp.limit
        applies = self.interpreter.evaluate(lim.when, env) if lim.when is not None else True
        if applies is not True:
            return applies, None, 0
        key = self.interpreter.evaluate(lim.key, env) if lim.key is not None else None
        cost = self.interpreter.evaluate(lim.cost, env) if lim.cost is not None else 1
        return applies, key, cost

    def limit_values(
        self, ev: ToolEvaluator, a: Any, p: Any, c: Any, now: Any, tool: Any, s: Any
    ) -> tuple[tuple[Any, Any, Any], ...]:
        """Per limit (applies, key, cost); raises EvalError with CEL's message on failure."""
        if ev.limits_fn is not None:
            try:
                return ev.limits_fn(a, p, c, now, tool, s)
            except Exception:  # noqa: BLE001 - re-run exactly to get CEL's answer or error
                pass
        return tuple(self._limit_slow(lp, a, p, c, now, tool, s) for lp in ev.limits)

    # ---- lookup

    def evaluator_for(self, tool: str) -> ToolEvaluator:
        """The evaluator for a declared tool, or one built for an undeclared tool."""
        ev = self.evaluators.get(tool)
        if ev is not None:
            return ev
        ev = self._undeclared_names.get(tool)
        if ev is not None:
            return ev
        return self._build_undeclared(tool)

    def undeclared_count(self) -> int:
        """Evaluators built for undeclared tools and kept (at most ``_UNDECLARED_CACHE``)."""
        return len(self._undeclared)

    def _build_undeclared(self, tool: str) -> ToolEvaluator:
        p = planner.run_passes([planner.plan_for_tool(self.policy, None, tool)])[0]
        key = tuple(r.index for r in p.rules()) + (-1,) + tuple(lp.index for lp in p.limits)
        with self._lock:
            ev = self._undeclared.get(key)
            if ev is None:
                ev = self._compile(p, f"undeclared_{len(self._undeclared)}", new_module())
                self._undeclared[key] = ev
                if len(self._undeclared) > _UNDECLARED_CACHE:
                    self._undeclared.popitem(last=False)
                    caches.dropped("undeclared")
            self._undeclared_names[tool] = ev
            if len(self._undeclared_names) > 4 * _UNDECLARED_CACHE:
                self._undeclared_names.popitem(last=False)
        return ev

    def source_for(self, tool: str) -> str:
        """The generated Python of one tool's evaluator (for people and `--emit python`)."""
        if tool not in self.module.tool_ranges:
            ev = (
                self.evaluator_for(tool)
                if self.policy.open_tools or self.policy.default == "allow"
                else None
            )
            if ev is None:
                raise KeyError(f"no evaluator for tool '{tool}'")
            module = new_module()
            ToolWriter(module, scope_for(self.policy, None), self.policy.data).write(
                ev.plan, "undeclared"
            )
            return module.source
        start, end = self.module.tool_ranges[tool]
        lines = self.module.lines[start - 1 : end]
        consts = sorted(
            {name for name in self.module.constants if any(name in line for line in lines)}
        )
        header = [f"# constants bound by name: {', '.join(consts)}"] if consts else []
        return "\n".join(header + lines) + "\n"

    def rules_for(self, tool: str) -> list[RulePlan]:
        ev = self.evaluator_for(tool)
        return ev.plan.rules() if ev is not None else []

    def matches_any(self, tool: str) -> bool:
        return any(tool_matches(p.pattern, tool) for r in self.policy.rules for p in r.tools)


__all__ = ["CompiledPolicy", "ToolEvaluator"]
