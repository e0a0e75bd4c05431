"""Wrap a LangChain tool so that the policy decides before it runs, through a Guard.

``guard_tool(tool, engine, principal=..., context=...)`` gives a ``BaseTool``
with the same name, description and argument schema. Every call goes through
one :class:`~policylang.runtime.guard.Guard` (built once per wrapped tool, or
pass ``guard=``): limits are consumed, the session history, refunds, outcome
records and breakers apply, and the wrapped tool runs with exactly the
arguments the engine decided on. When the policy does not let a call through,
the tool returns the decision's message (``on_deny="message"``, what an agent
loop shows the model) or raises ``ToolException`` (``on_deny="raise"``).
``approve(decision)`` follows the guard's one protocol: sync or async, only
``True`` approves. A tool whose schema gives an argument a default other than
the policy's is refused when it is wrapped. Needs the ``langchain`` extra
(``pip install 'policylang[langchain]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policylang.runtime.decision import Decision
from policylang.runtime.guard import Approver, Attempt, Guard, check_defaults

try:
    from langchain_core.tools import BaseTool, ToolException
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "policylang.adapters.langchain needs langchain-core: pip install 'policylang[langchain]'",
        name=exc.name,
    ) from None


class PolicyGuardedTool(BaseTool):
    """A tool that asks a policylang guard before running the tool it wraps."""

    inner: BaseTool
    guard: Any
    policy_tool: str
    on_deny: str = "message"
    last_decision: Any = None
    last_token: Any = None  # the pending approval token of the last confirm nobody approved

    @property
    def engine(self) -> Any:
        return self.guard.engine

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

    def _settle(self, attempt: Attempt) -> Any:
        object.__setattr__(self, "last_decision", attempt.decision)
        object.__setattr__(self, "last_token", attempt.token)
        if attempt.blocked is not None:
            return self._refuse(attempt.decision)
        return attempt.result()

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        return self._settle(
            self.guard.attempt(
                self.policy_tool, self._arguments(args, kwargs), fn=self.inner.invoke
            )
        )

    def invoke_approved(self, arguments: dict[str, Any], token: str) -> Any:
        """Run a confirmed call once a person approved its token (``guard.approve(token, ...)``).

        Trusted code only: the agent loop's ``invoke`` never takes a token from the model.
        """
        return self._settle(
            self.guard.attempt(
                self.policy_tool, dict(arguments), approval=token, fn=self.inner.invoke
            )
        )

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        return self._settle(
            await self.guard.aattempt(
                self.policy_tool, self._arguments(args, kwargs), fn=self.inner.ainvoke
            )
        )


def schema_defaults(tool: BaseTool) -> dict[str, Any]:
    """The defaults a LangChain tool's argument schema gives (pydantic model or JSON Schema)."""
    schema = tool.args_schema
    fields = getattr(schema, "model_fields", None)
    if isinstance(fields, dict):
        return {
            name: f.default
            for name, f in fields.items()
            if not f.is_required() and f.default_factory is None
        }
    if isinstance(schema, dict):
        props = schema.get("properties") or {}
        return {
            name: p["default"]
            for name, p in props.items()
            if isinstance(p, dict) and "default" in p
        }
    return {}


def guard_tool(
    tool: BaseTool,
    engine: Any,
    *,
    principal: Any = None,
    context: Any = None,
    policy_tool: str | None = None,
    on_deny: str = "message",
    approve: Approver | None = None,
    guard: Guard | None = None,
) -> PolicyGuardedTool:
    """Wrap ``tool``; ``policy_tool`` is its name in the policy (default: ``tool.name``)."""
    if on_deny not in ("message", "raise"):
        raise ValueError("on_deny must be 'message' or 'raise'")
    name = policy_tool or tool.name
    if guard is None:
        guard = Guard(engine, approver=approve, principal=principal, context=context)
    elif principal is not None or context is not None or approve is not None:
        raise TypeError("configure the Guard itself (principal, context, approver), not guard_tool")
    check_defaults(guard.engine, name, schema_defaults(tool), f"the LangChain tool '{tool.name}'")
    return PolicyGuardedTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        handle_tool_error=True,
        inner=tool,
        guard=guard,
        policy_tool=name,
        on_deny=on_deny,
    )


def guard_tools(tools: Sequence[BaseTool], engine: Any, **options: Any) -> list[PolicyGuardedTool]:
    """Wrap each tool; they share one Guard (so one set of breakers and approval tokens)."""
    if "guard" not in options:
        options["guard"] = Guard(
            engine,
            approver=options.pop("approve", None),
            principal=options.pop("principal", None),
            context=options.pop("context", None),
        )
    return [guard_tool(t, engine, **options) for t in tools]
