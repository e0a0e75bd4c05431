"""Guard an MCP client session: calls the policy denies never reach the server.

Wraps anything with an ``async call_tool(name, arguments, ...)`` — the official
SDK's ``ClientSession``, ``mcp.Client``, a ``ClientSessionGroup`` or a proxy
built on them. An allowed call is forwarded unchanged; a denied one (and a
confirm nobody approved) comes back as an MCP tool error,
``CallToolResult(isError=True, content=[TextContent(text=<reason>)])``, with
the decision under ``_meta["policylang/decision"]``, so the model reads why.
Every other attribute is passed through to the wrapped session. Needs the
``mcp`` extra (``pip install 'policylang[mcp]'``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from policylang.runtime.decision import Decision, Effect

META_KEY = "policylang/decision"
Approver = Callable[[str, dict[str, Any], Decision], bool | Awaitable[bool]]


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


class GuardedSession:
    """An MCP session whose ``call_tool`` asks the policy first.

    ``principal`` and ``context`` are dicts or callables returning them (asked
    on every call, so they can follow the conversation). ``approve(name, args,
    decision)`` — sync or async — is asked for each confirm; without it a
    confirm is refused. ``tool_name(name)`` maps MCP tool names to policy tool
    names (e.g. to add a server prefix).
    """

    def __init__(
        self,
        session: Any,
        engine: Any,
        *,
        principal: Any = None,
        context: Any = None,
        approve: Approver | None = None,
        tool_name: Callable[[str], str] | None = None,
    ):
        _types()
        self._session, self._engine = session, engine
        self._principal, self._context = principal, context
        self._approve, self._tool_name = approve, tool_name
        self.last_decision: Decision | None = None

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

    async def decide(self, name: str, arguments: dict[str, Any] | None = None) -> Decision:
        principal = self._principal() if callable(self._principal) else self._principal
        context = self._context() if callable(self._context) else self._context
        tool = self._tool_name(name) if self._tool_name else name
        return self._engine.decide(tool, args=arguments or {}, principal=principal, context=context)

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        decision = await self.decide(name, arguments)
        self.last_decision = decision
        allowed = decision.effect is Effect.ALLOW
        if decision.effect is Effect.CONFIRM and self._approve is not None:
            verdict = self._approve(name, dict(arguments or {}), decision)
            allowed = bool(await verdict) if inspect.isawaitable(verdict) else bool(verdict)
        if not allowed:
            return denial_result(decision)
        return await self._session.call_tool(name, arguments, *args, **kwargs)


def guard_session(session: Any, engine: Any, **options: Any) -> GuardedSession:
    """``GuardedSession(session, engine, **options)``."""
    return GuardedSession(session, engine, **options)
