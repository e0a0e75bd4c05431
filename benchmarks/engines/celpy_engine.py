"""cel-python (`celpy`): the pure-Python CEL interpreter policylang treats as its reference.

Load: compile every rule's condition once into a celpy `Runner` (the default
interpreted runner), grouped by tool and by effect; `data` is converted to CEL
values once. Decide: look the tool up (CEL has no notion of tools, so the
adapter provides the index a careful integrator would), build the activation
from the request with `celpy.json_to_cel` (timestamp arguments become
`TimestampType`), then run deny rules, confirm rules, allow rules, stopping at
the first that fires. A rule that errors counts as fired for deny/confirm and
as not fired for allow, i.e. it fails closed.
"""

from __future__ import annotations

from typing import Any

import celpy
from celpy import celtypes

from benchmarks.domain_funcs import is_holiday, weekday
from benchmarks.workload import TIMESTAMP_PARAMS, Request, Workload

_ORDER = ("deny", "confirm", "allow")


def _weekday(ts: celtypes.TimestampType, tz: celtypes.StringType) -> celtypes.StringType:
    return celtypes.StringType(weekday(ts, str(tz)))


def _is_holiday(ts: celtypes.TimestampType, country: celtypes.StringType) -> celtypes.BoolType:
    return celtypes.BoolType(is_holiday(ts, str(country)))


_FUNCTIONS = {"weekday": _weekday, "is_holiday": _is_holiday}

# per tool: (runners of deny rules, of confirm rules, of allow rules, timestamp params)
_Compiled = tuple[list[Any], list[Any], list[Any], tuple[str, ...]]


class CelPython:
    name = "cel-python"

    def __init__(self) -> None:
        self._by_tool: dict[str, _Compiled] = {}
        self._data: Any = None

    def load(self, workload: Workload) -> None:
        env = celpy.Environment()
        self._data = celpy.json_to_cel(workload.data)
        self._by_tool = {}
        for tool, rule in workload.rules():
            entry = self._by_tool.setdefault(
                tool.name, ([], [], [], TIMESTAMP_PARAMS.get(tool.kind, ()))
            )
            runner = env.program(env.compile(rule.condition), functions=_FUNCTIONS)
            entry[_ORDER.index(rule.effect)].append(runner)

    def decide(self, request: Request) -> str:
        entry = self._by_tool.get(request.tool)
        if entry is None:
            return "deny"
        deny, confirm, allow, ts_params = entry
        args = celpy.json_to_cel(request.args)
        for p in ts_params:
            args[celtypes.StringType(p)] = celtypes.TimestampType(request.args[p])
        activation = {
            "args": args,
            "principal": celpy.json_to_cel(request.principal),
            "context": celpy.json_to_cel(request.context),
            "data": self._data,
        }
        for runner in deny:
            if _fires(runner, activation, on_error=True):
                return "deny"
        for runner in confirm:
            if _fires(runner, activation, on_error=True):
                return "confirm"
        for runner in allow:
            if _fires(runner, activation, on_error=False):
                return "allow"
        return "deny"


def _fires(runner: Any, activation: dict[str, Any], on_error: bool) -> bool:
    try:
        result = runner.evaluate(activation)
    except celpy.CELEvalError:
        return on_error
    if isinstance(result, celtypes.BoolType):
        return bool(result)
    return on_error
