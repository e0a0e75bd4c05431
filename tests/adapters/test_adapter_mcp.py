"""An MCP client session behind the policy: denials are MCP tool errors, the server never sees them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("mcp")
from policylang import Engine  # noqa: E402
from policylang.adapters.mcp import META_KEY, GuardedSession, denial_result  # noqa: E402
from policylang.runtime.guard import decided_args  # noqa: E402

POLICY = """
tool send { amount: number, to: string }
allow send when args.amount <= 100
confirm send when args.amount > 100 && args.amount <= 1000
"""


class FakeSession:
    """Stands in for ClientSession where no MCP server is at hand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def call_tool(self, name: str, arguments: Any = None, *a: Any, **kw: Any) -> str:
        self.calls.append((name, arguments))
        return "forwarded"

    async def list_tools(self) -> list[str]:
        return ["send"]


def dump(result: Any) -> dict:
    return result.model_dump(by_alias=True, mode="json")


def test_guard_with_a_fake_session() -> None:
    engine = Engine.from_string(POLICY)
    inner = FakeSession()
    guard = GuardedSession(inner, engine, principal=lambda: {"id": "u1"})

    async def run() -> None:
        assert await guard.call_tool("send", {"amount": 5, "to": "b"}) == "forwarded"
        denied = dump(await guard.call_tool("send", {"amount": 5000, "to": "b"}))
        assert denied["isError"] is True
        assert denied["content"] == [
            {
                "type": "text",
                "text": guard.last_decision.message,
                **{k: v for k, v in denied["content"][0].items() if k not in ("type", "text")},
            }
        ]
        assert denied["_meta"][META_KEY]["effect"] == "deny"
        confirm = dump(await guard.call_tool("send", {"amount": 500, "to": "b"}))
        assert confirm["isError"] and "approval" in confirm["content"][0]["text"]
        assert await guard.list_tools() == ["send"]  # everything else passes through

        async def approve(decision: Any) -> bool:  # the guard's one approver protocol
            return decided_args(decision)["amount"] < 600

        approving = GuardedSession(inner, engine, approve=approve)
        assert await approving.call_tool("send", {"amount": 500, "to": "b"}) == "forwarded"
        assert dump(await approving.call_tool("send", {"amount": 700, "to": "b"}))["isError"]

    asyncio.run(run())
    assert inner.calls == [("send", {"amount": 5, "to": "b"}), ("send", {"amount": 500, "to": "b"})]


def test_guard_with_the_sdk_in_memory() -> None:
    """The official SDK end to end, when it offers an in-memory client (mcp >= 2)."""
    import mcp

    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError:
        pytest.skip("this mcp version has no in-memory Client(server)")
    server = MCPServer("test")
    ran: list[float] = []

    @server.tool()
    def send(amount: float, to: str) -> str:
        """Send money."""
        ran.append(amount)
        return f"sent {amount} to {to}"

    engine = Engine.from_string(POLICY)

    async def run() -> None:
        async with mcp.Client(server) as client:
            guard = GuardedSession(client, engine)
            ok = dump(await guard.call_tool("send", {"amount": 5, "to": "b"}))
            assert not ok["isError"] and ok["content"][0]["text"] == "sent 5.0 to b"
            no = dump(await guard.call_tool("send", {"amount": 5000, "to": "b"}))
            assert no["isError"] and "send denied" in no["content"][0]["text"]
            assert [t.name for t in (await guard.list_tools()).tools] == ["send"]

    asyncio.run(run())
    assert ran == [5.0]


def test_denial_result_shape() -> None:
    d = Engine.from_string(POLICY).decide("send", args={"amount": "x", "to": "b"})
    out = dump(denial_result(d))
    assert out["isError"] and out["_meta"][META_KEY]["code"] == "invalid_request"
