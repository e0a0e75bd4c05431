"""OpenAI tool calls → decisions, and running only the allowed ones.

Takes the tool calls a model asked for, in any of the shapes the OpenAI APIs
and SDK produce — chat completions (``{"id", "type": "function", "function":
{"name", "arguments"}}``), the responses API (``{"type": "function_call",
"call_id", "name", "arguments"}``), or a plain ``{"name", "arguments"}`` —
as dicts or SDK objects, with ``arguments`` as a JSON string or a dict. Gives
one :class:`ToolCallResult` per call, whose output can go straight back to the
model (:meth:`ToolCallResult.as_chat_message`, :meth:`as_response_item`).
Needs no OpenAI package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policylang.runtime.decision import Decision, Effect

Approver = Callable[["ToolCall", Decision], bool]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Any  # a dict once parsed; the raw value when it could not be
    call_id: str | None = None
    error: str | None = None  # why the arguments could not be read


@dataclass
class ToolCallResult:
    call: ToolCall
    decision: Decision
    executed: bool = False
    output: Any = None  # the function's return value, or an error payload
    error: str | None = None  # the function raised

    @property
    def text(self) -> str:
        """The output as text for the model (JSON for anything but a string)."""
        if isinstance(self.output, str):
            return self.output
        return json.dumps(self.output, default=str)

    def as_chat_message(self) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": self.call.call_id or "", "content": self.text}

    def as_response_item(self) -> dict[str, Any]:
        return {
            "type": "function_call_output",
            "call_id": self.call.call_id or "",
            "output": self.text,
        }


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def parse_tool_call(raw: Any) -> ToolCall:
    """One tool call in any of the OpenAI shapes (dict or SDK object)."""
    fn = _get(raw, "function")
    src = fn if fn is not None else raw
    name = _get(src, "name")
    arguments = _get(src, "arguments")
    call_id = _get(raw, "call_id") or _get(raw, "id")
    if not isinstance(name, str) or not name:
        return ToolCall(str(name or ""), arguments, call_id, "the tool call has no function name")
    if arguments is None or arguments == "":
        return ToolCall(name, {}, call_id)
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            return ToolCall(name, arguments, call_id, f"the arguments are not valid JSON ({exc})")
    if not isinstance(arguments, Mapping):
        return ToolCall(
            name,
            arguments,
            call_id,
            f"the arguments must be a JSON object, got {type(arguments).__name__}",
        )
    return ToolCall(name, dict(arguments), call_id)


def _invalid(call: ToolCall) -> Decision:
    reason = call.error or "the tool call could not be read"
    return Decision(
        effect=Effect.DENY,
        tool=call.name or "(none)",
        code="invalid_request",
        reasons=[reason],
        message=f"{call.name or 'the tool call'} denied: {reason}; fix the arguments and try again",
    )


def decide_tool_calls(
    engine: Any, tool_calls: Iterable[Any], *, principal: Any = None, context: Any = None
) -> list[tuple[ToolCall, Decision]]:
    """A decision for each tool call, in order; unreadable calls are denied invalid_request."""
    out = []
    for raw in tool_calls:
        call = raw if isinstance(raw, ToolCall) else parse_tool_call(raw)
        decision = (
            _invalid(call)
            if call.error
            else engine.decide(call.name, args=call.arguments, principal=principal, context=context)
        )
        out.append((call, decision))
    return out


def refusal(decision: Decision) -> dict[str, Any]:
    """What the model is told instead of the tool's output."""
    return {
        "error": decision.message or f"{decision.effect.value} {decision.tool}",
        "effect": decision.effect.value,
        "code": decision.code,
    }


def execute_tool_calls(
    engine: Any,
    tool_calls: Iterable[Any],
    functions: Mapping[str, Callable[..., Any]] | Callable[[str, dict[str, Any]], Any],
    *,
    principal: Any = None,
    context: Any = None,
    approve: Approver | None = None,
    catch_errors: bool = True,
) -> list[ToolCallResult]:
    """Decide every call, then run only those allowed (or confirmed and approved).

    ``functions`` maps tool names to callables taking the arguments as keywords,
    or is one callable ``f(name, arguments)``. ``approve(call, decision)`` is
    asked for each confirm; without it a confirm is not run. A denied or
    unapproved call gets a refusal payload as its output; a function that
    raises gets ``{"error": ...}`` unless ``catch_errors`` is false.
    """
    results = []
    for call, decision in decide_tool_calls(
        engine, tool_calls, principal=principal, context=context
    ):
        run = decision.effect is Effect.ALLOW or (
            decision.effect is Effect.CONFIRM and approve is not None and approve(call, decision)
        )
        if not run:
            results.append(ToolCallResult(call, decision, output=refusal(decision)))
            continue
        fn: Callable[..., Any] | None = None
        if isinstance(functions, Mapping):
            fn = functions.get(call.name)
            if fn is None:
                results.append(
                    ToolCallResult(
                        call,
                        decision,
                        output={"error": f"no function is registered for the tool '{call.name}'"},
                        error="unregistered",
                    )
                )
                continue
        try:
            output = (
                fn(**call.arguments) if fn is not None else functions(call.name, call.arguments)  # type: ignore[operator]
            )
        except Exception as exc:
            if not catch_errors:
                raise
            results.append(
                ToolCallResult(
                    call,
                    decision,
                    executed=True,
                    output={"error": f"{type(exc).__name__}: {exc}"},
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
            continue
        results.append(ToolCallResult(call, decision, executed=True, output=output))
    return results
