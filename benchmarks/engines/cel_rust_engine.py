"""common-expression-language (import name `cel`): Python bindings of the Rust `cel` crate.

Load: `cel.compile` every rule's condition once, grouped by tool and effect, and
build one `cel.Context` holding `data` and the domain functions (converting a
list into CEL values costs tens of microseconds, so it is done once, not per
call). Decide: look the tool up, parse timestamp arguments to `datetime` (the
binding maps them to CEL timestamps), `Context.update` the request's `args`,
`principal` and `context` into that shared context (the conversion cost), then
run deny, confirm, allow rules, stopping at the first that fires. Errors fail
closed as in the cel-python adapter. The shared context makes the adapter
single-threaded, which is all the benchmark needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import cel

from benchmarks.domain_funcs import is_holiday, weekday
from benchmarks.workload import TIMESTAMP_PARAMS, Request, Workload

_ORDER = ("deny", "confirm", "allow")

_Compiled = tuple[list[Any], list[Any], list[Any], tuple[str, ...]]


class CelRust:
    name = "cel-rust"

    def __init__(self) -> None:
        self._by_tool: dict[str, _Compiled] = {}
        self._ctx: Any = None

    def load(self, workload: Workload) -> None:
        self._ctx = cel.Context(
            {"data": workload.data}, {"weekday": weekday, "is_holiday": is_holiday}
        )
        self._by_tool = {}
        for tool, rule in workload.rules():
            entry = self._by_tool.setdefault(
                tool.name, ([], [], [], TIMESTAMP_PARAMS.get(tool.kind, ()))
            )
            entry[_ORDER.index(rule.effect)].append(cel.compile(rule.condition))

    def decide(self, request: Request) -> str:
        entry = self._by_tool.get(request.tool)
        if entry is None:
            return "deny"
        deny, confirm, allow, ts_params = entry
        args = request.args
        if ts_params:
            args = dict(args)
            for p in ts_params:
                args[p] = datetime.fromisoformat(args[p])
        ctx = self._ctx
        ctx.update({"args": args, "principal": request.principal, "context": request.context})
        for program in deny:
            if _fires(program, ctx, on_error=True):
                return "deny"
        for program in confirm:
            if _fires(program, ctx, on_error=True):
                return "confirm"
        for program in allow:
            if _fires(program, ctx, on_error=False):
                return "allow"
        return "deny"


def _fires(program: Any, ctx: Any, on_error: bool) -> bool:
    try:
        result = program.execute(ctx)
    except Exception:  # the binding raises KeyError, TypeError, ValueError, RuntimeError
        return on_error
    return result if isinstance(result, bool) else on_error
