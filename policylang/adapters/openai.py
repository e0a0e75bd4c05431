"""OpenAI tool calls → decisions, and running only the allowed ones, through a Guard.

Takes the tool calls a model asked for, in any of the shapes the OpenAI APIs
and SDK produce — chat completions (``{"id", "type": "function", "function":
{"name", "arguments"}}``), the responses API (``{"type": "function_call",
"call_id", "name", "arguments"}``), or a plain ``{"name", "arguments"}`` —
as dicts or SDK objects, with ``arguments`` as a JSON string or a dict. Gives
one :class:`ToolCallResult` per call, whose output can go straight back to the
model (:meth:`ToolCallResult.as_chat_message`, :meth:`as_response_item`).
Needs no OpenAI package.

:func:`execute_tool_calls` runs every call through a
:class:`~policylang.runtime.guard.Guard` (pass one, or an engine and the
functions to build one), so limits are consumed, the session history, refunds,
outcome records and breakers apply, the function gets exactly the arguments
that were decided on, and the approver follows the guard's one protocol:
``approve(decision)``, sync or async, approves only by returning ``True``.
Principal and context come from the caller (trusted code), never from the
model's arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policylang.runtime.decision import Decision
from policylang.runtime.guard import Approver, Guard


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
    token: str | None = (
        None  # a confirm nobody approved yet: approve it (guard.approve), then retry with it
    )

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


def decide_tool_calls(
    engine: Any, tool_calls: Iterable[Any], *, principal: Any = None, context: Any = None
) -> list[tuple[ToolCall, Decision]]:
    """A decision for each tool call, in order, without running anything; unreadable calls are denied
    invalid_request. Like ``engine.decide``, an allowed call books its limits: to run calls, use
    :func:`execute_tool_calls`, which decides each exactly once."""
    out = []
    for raw in tool_calls:
        call = raw if isinstance(raw, ToolCall) else parse_tool_call(raw)
        if call.error:
            decision = engine.reject(call.name or "(none)", "invalid_request", call.error)
        else:
            decision = engine.decide(
                call.name, args=call.arguments, principal=principal, context=context
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
    functions: Mapping[str, Callable[..., Any]]
    | Callable[[str, dict[str, Any]], Any]
    | None = None,
    *,
    principal: Any = None,
    context: Any = None,
    approve: Approver | None = None,
    approvals: Mapping[str, str] | None = None,
    catch_errors: bool = True,
) -> list[ToolCallResult]:
    """Decide every call through a Guard, and run only those allowed (or confirmed and approved).

    ``engine`` is a :class:`~policylang.runtime.guard.Guard` (configured with
    its tools, providers and approver: keep one for breakers to remember) or
    an engine, with ``functions`` mapping tool names to callables taking the
    arguments as keywords, or one callable ``f(name, arguments)``; a Guard is
    built for it with ``principal``, ``context`` and ``approve``.
    ``approve(decision)`` is asked for each confirm; without it a confirm is
    not run and its result carries a pending ``token``: once a person has
    approved it (``guard.approve(token, approver=...)``), pass
    ``approvals={call_id: token}`` with the same call to run it. A denied or
    unapproved call gets a refusal payload as its output; a function that
    raises gets ``{"error": ...}`` unless ``catch_errors`` is false.
    """
    if isinstance(engine, Guard):
        if (
            functions is not None
            or principal is not None
            or context is not None
            or approve is not None
        ):
            raise TypeError(
                "configure the Guard itself (tools, principal, context, approver), "
                "not execute_tool_calls"
            )
        guard = engine
    else:
        guard = Guard(
            engine, functions or {}, approver=approve, principal=principal, context=context
        )
    approvals = approvals or {}
    results = []
    for raw in tool_calls:
        call = raw if isinstance(raw, ToolCall) else parse_tool_call(raw)
        attempt = guard.attempt(
            call.name or "(none)",
            call.arguments if not call.error else None,
            approval=approvals.get(call.call_id or ""),
            invalid=call.error,
        )
        if attempt.blocked is not None:
            results.append(
                ToolCallResult(
                    call, attempt.decision, output=refusal(attempt.decision), token=attempt.token
                )
            )
        elif attempt.error is not None:
            if not catch_errors:
                raise attempt.error
            text = f"{type(attempt.error).__name__}: {attempt.error}"
            results.append(
                ToolCallResult(
                    call, attempt.decision, executed=True, output={"error": text}, error=text
                )
            )
        else:
            results.append(
                ToolCallResult(call, attempt.decision, executed=True, output=attempt.value)
            )
    return results
