"""Every way a tool call reaches a function through policylang, behind one interface.

``make_path(kind, engine, tool, fn, ...)`` returns ``run(args, approval=None) -> Outcome``
for each entry point: ``Guard.call``/``acall``, ``engine.guard`` on a sync and an async
function, ``@engine.protect``, and the OpenAI, LangChain and MCP adapters. The tests in
this folder hold each guarantee on every path.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from dataclasses import dataclass
from typing import Any

import pytest

from policylang.runtime.guard import CallBlocked, ConfirmationRequired, Guard

PATHS = ["call", "acall", "wrap", "awrap", "protect", "openai", "langchain", "mcp"]


@dataclass
class Outcome:
    ran: bool
    code: str | None = None  # the decision's code when blocked
    token: str | None = None  # a pending approval token


def _sync_twin(fn: Any) -> Any:
    """An ``async def`` with fn's signature that calls fn (for the async wrapper path)."""
    sig = inspect.signature(fn)

    async def twin(*a: Any, **kw: Any) -> Any:
        await asyncio.sleep(0)
        return fn(*a, **kw)

    twin.__signature__ = sig  # type: ignore[attr-defined]
    twin.__name__ = fn.__name__
    return twin


def make_path(
    kind: str,
    engine: Any,
    tool: str,
    fn: Any,
    *,
    principal: Any = None,
    context: Any = None,
    approver: Any = None,
    **guard_options: Any,
) -> Any:
    """``run(args: dict, approval=None) -> Outcome`` calling ``fn`` through the path ``kind``."""
    options = {"principal": principal, "context": context, "approver": approver, **guard_options}
    runs: list[int] = []

    @functools.wraps(fn)
    def counted(*a: Any, **kw: Any) -> Any:
        runs.append(1)
        return fn(*a, **kw)

    run = _make(kind, engine, tool, counted, approver, options)

    def counting(args: dict[str, Any], approval: str | None = None) -> Outcome:
        before = len(runs)
        out = run(args, approval)
        out.ran = len(runs) > before
        return out

    counting.guard = run.guard  # type: ignore[attr-defined]
    return counting


def _make(
    kind: str, engine: Any, tool: str, fn: Any, approver: Any, options: dict[str, Any]
) -> Any:
    if kind in ("call", "acall"):
        guard = Guard(engine, {tool: fn}, **options)

        def run(args: dict[str, Any], approval: str | None = None) -> Outcome:
            try:
                if kind == "call":
                    guard.call(tool, args, approval=approval)
                else:
                    asyncio.run(guard.acall(tool, args, approval=approval))
            except CallBlocked as exc:
                return Outcome(False, exc.decision.code, getattr(exc, "token", None))
            return Outcome(False)

        run.guard = guard  # type: ignore[attr-defined]
        return run
    if kind in ("wrap", "awrap", "protect"):
        if kind == "wrap":
            wrapped = engine.guard(fn, tool, **options)
        elif kind == "protect":
            wrapped = engine.protect(tool, **options)(fn)
        else:
            wrapped = engine.guard(_sync_twin(fn), tool, **options)

        def run(args: dict[str, Any], approval: str | None = None) -> Outcome:
            kw = dict(args)
            if approval is not None:
                kw["_approval"] = approval
            try:  # an agent loop: fn(**json.loads(tool_call.arguments))
                out = wrapped(**kw)
                if inspect.isawaitable(out):
                    asyncio.run(out)
            except ConfirmationRequired as exc:
                return Outcome(False, exc.decision.code, exc.token)
            except CallBlocked as exc:
                return Outcome(False, exc.decision.code)
            return Outcome(False)

        run.guard = wrapped.guard  # type: ignore[attr-defined]
        return run
    if kind == "openai":
        from policylang.adapters.openai import execute_tool_calls

        guard = Guard(engine, {tool: fn}, **options)

        def run(args: dict[str, Any], approval: str | None = None) -> Outcome:
            import json

            call = {
                "id": "c1",
                "type": "function",
                "function": {"name": tool, "arguments": json.dumps(args)},
            }
            result = execute_tool_calls(
                guard, [call], approvals={"c1": approval} if approval else None, catch_errors=False
            )[0]
            return Outcome(False, result.decision.code, result.token)

        run.guard = guard  # type: ignore[attr-defined]
        return run
    if kind == "langchain":
        pytest.importorskip("langchain_core")
        from langchain_core.tools import StructuredTool

        from policylang.adapters.langchain import guard_tool

        guard = Guard(engine, **options)
        lc = guard_tool(
            StructuredTool.from_function(func=fn, name=tool, description="a tool"),
            engine,
            guard=guard,
        )

        def run(args: dict[str, Any], approval: str | None = None) -> Outcome:
            object.__setattr__(lc, "last_decision", None)
            try:
                lc.invoke(dict(args)) if approval is None else lc.invoke_approved(args, approval)
            except Exception:  # noqa: BLE001 - LangChain's own schema refused the input
                return Outcome(False, "schema")
            d = lc.last_decision
            return Outcome(False, d.code if d is not None else None, lc.last_token)

        run.guard = guard  # type: ignore[attr-defined]
        return run
    if kind == "mcp":
        pytest.importorskip("mcp")
        from policylang.adapters.mcp import GuardedSession

        class Session:
            async def call_tool(self, name: str, arguments: Any = None, *a: Any, **kw: Any) -> str:
                fn(**arguments)
                return "forwarded"

        guard = Guard(engine, **options)
        session = GuardedSession(Session(), guard=guard)

        def run(args: dict[str, Any], approval: str | None = None) -> Outcome:
            out = asyncio.run(session.call_tool(tool, dict(args), approval=approval))
            if out == "forwarded":
                return Outcome(False)
            return Outcome(
                False,
                session.last_decision.code if session.last_decision else None,
                session.last_token,
            )

        run.guard = guard  # type: ignore[attr-defined]
        return run
    raise ValueError(kind)
