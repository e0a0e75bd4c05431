"""Guard an MCP client session: calls the policy denies never reach the server.

Wraps anything with an ``async call_tool(name, arguments, ...)`` — the official
SDK's ``ClientSession``, ``mcp.Client``, a ``ClientSessionGroup`` or a proxy
built on them. Every call goes through one
:class:`~policylang.runtime.guard.Guard`: limits are consumed, the session
history, refunds, outcome records and breakers apply. An allowed call is
forwarded with the arguments the engine decided on (validated, defaults
filled in; timestamps, durations and dates written back as text); a denied
one (and a confirm nobody approved) comes back as an MCP tool error,
``CallToolResult(isError=True, content=[TextContent(text=<reason>)])``, with
the decision under ``_meta["policylang/decision"]``, so the model reads why.
Every other attribute is passed through to the wrapped session. Needs the
``mcp`` extra (``pip install 'policylang[mcp]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from policylang.runtime import celops
from policylang.runtime.decision import Decision
from policylang.runtime.guard import Approver, Attempt, Guard

META_KEY = "policylang/decision"


def _types() -> Any:
    try:
        import mcp.types as types
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "policylang.adapters.mcp needs the MCP SDK: pip install 'policylang[mcp]'", name="mcp"
        ) from None
    return types


def denial_result(decision: Decision) -> Any:
    """The MCP tool error a model sees for a call the policy did not let through."""
    types = _types()
    text = decision.message or f"{decision.tool} {decision.effect.value}"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        isError=True,
        _meta={META_KEY: decision.model_dump(mode="json")},
    )


def wire(value: Any) -> Any:
    """Decided arguments as JSON for the server: converted values back to their text."""
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [wire(v) for v in value]
    if isinstance(value, datetime | date | timedelta):
        return celops.format_value(value)
    return value


class GuardedSession:
    """An MCP session whose ``call_tool`` asks the policy first, through a Guard.

    ``principal`` and ``context`` are dicts or callables returning them (asked
    on every call, so they can follow the conversation). ``approve(decision)``
    — the guard's one protocol, sync or async, only ``True`` approves — is
    asked for each confirm; without it a confirm is refused and
    ``last_token`` holds its pending approval token: once a person approved it
    (``session.guard.approve(token, approver=...)``), ``call_tool(...,
    approval=token)`` runs it. ``tool_name(name)`` maps MCP tool names to
    policy tool names (e.g. to add a server prefix). Or pass a configured
    ``guard=``.
    """

    def __init__(
        self,
        session: Any,
        engine: Any = None,
        *,
        principal: Any = None,
        context: Any = None,
        approve: Approver | None = None,
        tool_name: Callable[[str], str] | None = None,
        guard: Guard | None = None,
    ):
        _types()
        if guard is None:
            if engine is None:
                raise TypeError("GuardedSession needs an engine or a guard")
            guard = Guard(engine, approver=approve, principal=principal, context=context)
        elif principal is not None or context is not None or approve is not None:
            raise TypeError(
                "configure the Guard itself (principal, context, approver), not GuardedSession"
            )
        if tool_name is not None and not callable(tool_name):
            raise TypeError("tool_name must be a function (mcp name) -> policy tool name")
        self._session, self.guard, self._tool_name = session, guard, tool_name
        self._engine = guard.engine
        self.last_decision: Decision | None = None
        self.last_token: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def __aenter__(self) -> GuardedSession:
        if hasattr(self._session, "__aenter__"):
            await self._session.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        if hasattr(self._session, "__aexit__"):
            return await self._session.__aexit__(*exc)
        return None

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *args: Any,
        approval: str | None = None,
        **kwargs: Any,
    ) -> Any:
        tool = self._tool_name(name) if self._tool_name else name

        def forward(decided: dict[str, Any]) -> Any:
            return self._session.call_tool(name, wire(decided), *args, **kwargs)

        attempt: Attempt = await self.guard.aattempt(
            tool, arguments or {}, approval=approval, fn=forward
        )
        self.last_decision, self.last_token = attempt.decision, attempt.token
        if attempt.blocked is not None:
            return denial_result(attempt.decision)
        return attempt.result()


def guard_session(session: Any, engine: Any, **options: Any) -> GuardedSession:
    """``GuardedSession(session, engine, **options)``."""
    return GuardedSession(session, engine, **options)
