"""Wrap a LangChain tool so that the policy decides before it runs.

``guard_tool(tool, engine, principal=..., context=...)`` gives a ``BaseTool``
with the same name, description and argument schema. When the policy allows a
call the wrapped tool runs; otherwise the tool returns the decision's message
(``on_deny="message"``, what an agent loop shows the model) or raises
``ToolException`` (``on_deny="raise"``). Needs the ``langchain`` extra
(``pip install 'policylang[langchain]'``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from policylang.runtime.decision import Decision, Effect

try:
    from langchain_core.tools import BaseTool, ToolException
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "policylang.adapters.langchain needs langchain-core: pip install 'policylang[langchain]'",
        name=exc.name,
    ) from None

Approver = Callable[[str, dict[str, Any], Decision], bool]


class PolicyGuardedTool(BaseTool):
    """A tool that asks a policylang engine before running the tool it wraps."""

    inner: BaseTool
    engine: Any
    policy_tool: str
    principal: Any = None
    context: Any = None
    on_deny: str = "message"
    approve: Any = None
    last_decision: Any = None

    def _decide(self, arguments: dict[str, Any]) -> Decision:
        principal = self.principal() if callable(self.principal) else self.principal
        context = self.context() if callable(self.context) else self.context
        return self.engine.decide(
            self.policy_tool, args=arguments, principal=principal, context=context
        )

    def _allowed(self, arguments: dict[str, Any]) -> tuple[bool, Decision]:
        decision = self._decide(arguments)
        object.__setattr__(self, "last_decision", decision)
        if decision.effect is Effect.ALLOW:
            return True, decision
        if decision.effect is Effect.CONFIRM and self.approve is not None:
            return bool(self.approve(self.policy_tool, dict(arguments), decision)), decision
        return False, decision

    def _refuse(self, decision: Decision) -> str:
        text = decision.message or f"{decision.tool} {decision.effect.value}"
        if self.on_deny == "raise":
            raise ToolException(text)
        return text

    @staticmethod
    def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("run_manager", "callbacks")}
        if args and not kwargs and len(args) == 1:
            first = args[0]
            return dict(first) if isinstance(first, dict) else {"input": first}
        return kwargs

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        arguments = self._arguments(args, kwargs)
        ok, decision = self._allowed(arguments)
        if not ok:
            return self._refuse(decision)
        return self.inner.invoke(arguments)

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        arguments = self._arguments(args, kwargs)
        ok, decision = self._allowed(arguments)
        if not ok:
            return self._refuse(decision)
        result = self.inner.ainvoke(arguments)
        return await result if inspect.isawaitable(result) else result


def guard_tool(
    tool: BaseTool,
    engine: Any,
    *,
    principal: Any = None,
    context: Any = None,
    policy_tool: str | None = None,
    on_deny: str = "message",
    approve: Approver | None = None,
) -> PolicyGuardedTool:
    """Wrap ``tool``; ``policy_tool`` is its name in the policy (default: ``tool.name``)."""
    if on_deny not in ("message", "raise"):
        raise ValueError("on_deny must be 'message' or 'raise'")
    return PolicyGuardedTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        handle_tool_error=True,
        inner=tool,
        engine=engine,
        policy_tool=policy_tool or tool.name,
        principal=principal,
        context=context,
        on_deny=on_deny,
        approve=approve,
    )


def guard_tools(tools: Sequence[BaseTool], engine: Any, **options: Any) -> list[PolicyGuardedTool]:
    return [guard_tool(t, engine, **options) for t in tools]
