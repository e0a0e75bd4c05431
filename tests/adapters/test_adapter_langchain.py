"""A LangChain tool wrapped by the policy."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_core")
from langchain_core.tools import ToolException, tool  # noqa: E402

from policylang import Engine  # noqa: E402
from policylang.adapters.langchain import guard_tool, guard_tools  # noqa: E402

POLICY = """
tool send { amount: number, to: string }
allow send when args.amount <= 100
confirm send when args.amount > 100 && args.amount <= 1000
"""

ran: list[float] = []


@tool
def send(amount: float, to: str) -> str:
    """Send money to someone."""
    ran.append(amount)
    return f"sent {amount} to {to}"


def test_guarded_tool_runs_only_when_allowed() -> None:
    ran.clear()
    engine = Engine.from_string(POLICY)
    g = guard_tool(send, engine, principal={"id": "u"})
    assert (g.name, g.description, g.args_schema) == (send.name, send.description, send.args_schema)
    assert g.invoke({"amount": 5, "to": "bob"}) == "sent 5.0 to bob"
    assert g.invoke({"amount": 5000, "to": "bob"}).startswith("send denied")
    assert g.last_decision.effect == "deny"
    assert "approval" in g.invoke({"amount": 500, "to": "bob"})
    assert ran == [5.0]
    assert asyncio.run(g.ainvoke({"amount": 7, "to": "x"})) == "sent 7.0 to x"
    approving = guard_tool(send, engine, approve=lambda d: True)
    assert approving.invoke({"amount": 500, "to": "bob"}) == "sent 500.0 to bob"
    raising = guard_tools([send], engine, on_deny="raise")[0]
    # handle_tool_error turns the ToolException into the text the agent sees
    assert raising.invoke({"amount": 5000, "to": "bob"}).startswith("send denied")
    raising.handle_tool_error = False
    with pytest.raises(ToolException):
        raising.invoke({"amount": 5000, "to": "bob"})
    with pytest.raises(ValueError):
        guard_tool(send, engine, on_deny="ignore")
