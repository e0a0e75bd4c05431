"""OpenAI tool calls → decisions; only allowed calls run."""

from __future__ import annotations

import json
from types import SimpleNamespace

from policylang import Engine
from policylang.adapters.openai import decide_tool_calls, execute_tool_calls, parse_tool_call

POLICY = """
tool payments.send { amount: number, to: string }
tool weather.get { city: string }
allow weather.get
allow payments.send when args.amount <= 100
confirm payments.send when args.amount > 100 && args.amount <= 1000
"""


def chat_call(i: int, name: str, args: object) -> dict:
    return {
        "id": f"call_{i}",
        "type": "function",
        "function": {
            "name": name,
            "arguments": args if isinstance(args, str) else json.dumps(args),
        },
    }


def test_shapes() -> None:
    assert parse_tool_call(chat_call(1, "a", {"x": 1})) == parse_tool_call(
        {"type": "function_call", "call_id": "call_1", "name": "a", "arguments": '{"x": 1}'}
    )
    sdk = SimpleNamespace(
        id="call_2", type="function", function=SimpleNamespace(name="a", arguments='{"x": 2}')
    )
    assert parse_tool_call(sdk).arguments == {"x": 2} and parse_tool_call(sdk).call_id == "call_2"
    assert parse_tool_call({"name": "a", "arguments": {"x": 3}}).arguments == {"x": 3}
    assert parse_tool_call({"name": "a", "arguments": ""}).arguments == {}
    assert parse_tool_call({"name": "a", "arguments": "{oops"}).error
    assert parse_tool_call({"name": "a", "arguments": "[1]"}).error
    assert parse_tool_call({"arguments": "{}"}).error


def test_decide_and_execute_only_allowed() -> None:
    engine = Engine.from_string(POLICY)
    ran: list[tuple[str, dict]] = []
    functions = {
        "payments.send": lambda **kw: ran.append(("pay", kw)) or "paid",
        "weather.get": lambda city: {"city": city, "temp": 21},
    }
    calls = [
        chat_call(1, "weather.get", {"city": "Oslo"}),
        chat_call(2, "payments.send", {"amount": 50, "to": "bob"}),
        chat_call(3, "payments.send", {"amount": 500, "to": "bob"}),
        chat_call(4, "payments.send", {"amount": 5000, "to": "bob"}),
        chat_call(5, "payments.send", "{not json"),
        chat_call(6, "files.delete", {"path": "/"}),
    ]
    decisions = decide_tool_calls(engine, calls)
    assert [d.effect.value for _, d in decisions] == [
        "allow",
        "allow",
        "confirm",
        "deny",
        "deny",
        "deny",
    ]
    assert decisions[4][1].code == "invalid_request"
    results = execute_tool_calls(engine, calls, functions)
    assert [r.executed for r in results] == [True, True, False, False, False, False]
    assert ran == [("pay", {"amount": 50, "to": "bob"})]
    assert results[0].as_chat_message() == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"city": "Oslo", "temp": 21}',
    }
    refused = json.loads(results[3].as_response_item()["output"])
    assert refused["effect"] == "deny" and refused["code"] == "default_deny"
    assert "payments.send denied" in refused["error"]
    approved = execute_tool_calls(engine, calls[2:3], functions, approve=lambda d: True)
    assert approved[0].executed and ran[-1] == ("pay", {"amount": 500, "to": "bob"})


def test_function_errors_and_dispatcher() -> None:
    engine = Engine.from_string(POLICY)

    def boom(city: str) -> str:
        raise RuntimeError("down")

    r = execute_tool_calls(
        engine, [chat_call(1, "weather.get", {"city": "X"})], {"weather.get": boom}
    )[0]
    assert (
        r.executed
        and r.error == "RuntimeError: down"
        and r.output == {"error": "RuntimeError: down"}
    )
    r = execute_tool_calls(engine, [chat_call(1, "weather.get", {"city": "X"})], {})[0]
    assert not r.executed and "no function" in r.output["error"]
    seen = []
    r = execute_tool_calls(
        engine,
        [chat_call(1, "weather.get", {"city": "X"})],
        lambda name, args: seen.append((name, args)) or "ok",
    )[0]
    assert r.text == "ok" and seen == [("weather.get", {"city": "X"})]
