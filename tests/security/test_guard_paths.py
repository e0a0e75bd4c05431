"""Every adapter goes through the guard: limits hold, denied calls never run, the decided arguments run.

Each test runs on every path a call can take (Guard.call/acall, engine.guard on sync and
async functions, @engine.protect, and the OpenAI, LangChain and MCP adapters).
"""

from __future__ import annotations

from typing import Any

import pytest
from guard_support import PATHS, make_path
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.audit import CallbackSink
from policylang.runtime.decision import Effect
from policylang.runtime.guard import Guard, GuardError, decided_args

POLICY = """
policy sec
default deny
principal { id: string, role: string }
tool pay { amount: number, to: string }
tool wipe { path: string, permanent: bool = false }
allow pay when principal.role == "agent"
confirm pay when args.amount > 100 because "large payment"
limit pay to 2 per 1h by principal.id
allow wipe when principal.role == "agent"
confirm wipe when args.permanent because "permanent deletion"
deny wipe when args.path.startsWith("/etc") because "system files"
"""

AGENT = {"id": "a1", "role": "agent"}


def pay(amount: float, to: str) -> str:
    return f"paid {amount} to {to}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("amount, approver", [(5, None), (500, lambda d: True)])
def test_n_per_window_runs_exactly_n(path: str, amount: int, approver: Any) -> None:
    """`limit pay to 2 per 1h`: through any path, five attempts run exactly two (approved or not)."""
    engine = Engine.from_string(POLICY)
    run = make_path(path, engine, "pay", pay, principal=AGENT, approver=approver)
    outcomes = [run({"amount": amount, "to": "bob"}) for _ in range(5)]
    assert [o.ran for o in outcomes] == [True, True, False, False, False]
    assert {o.code for o in outcomes[2:]} == {"rate_limited"}


@pytest.mark.parametrize("path", PATHS)
def test_approved_confirms_enter_the_session_history(path: str) -> None:
    src = (
        "policy s\ncontext { session_id: string }\nsession by context.session_id\n"
        "tool pay { amount: number, to: string }\nallow pay\nconfirm pay when args.amount > 100\n"
        'deny pay when session.count("pay") >= 1 because "one payment per session"\n'
    )
    engine = Engine.from_string(src)
    run = make_path(path, engine, "pay", pay, context={"session_id": "s1"}, approver=lambda d: True)
    assert run({"amount": 500, "to": "bob"}).ran  # approved: the history counts it as allowed
    second = run({"amount": 5, "to": "bob"})
    assert not second.ran and second.code == "denied"


@pytest.mark.parametrize("path", PATHS)
def test_outcomes_are_audited_on_every_path(path: str) -> None:
    records: list[dict[str, Any]] = []
    engine = Engine.from_string(POLICY, audit=CallbackSink(records.append))
    run = make_path(path, engine, "pay", pay, principal=AGENT)
    assert run({"amount": 5, "to": "bob"}).ran
    decision = next(r for r in records if "kind" not in r)
    outcome = next(r for r in records if r.get("kind") == "outcome")
    assert outcome["decision_id"] == decision["decision_id"] and outcome["ok"] is True


_path_text = st.sampled_from(["/etc/passwd", "/etc", "/tmp/x", "/home/a/b", "", "etc"])
_permanent = st.sampled_from([True, False, None, "yes", 1, 0])
_extra = st.dictionaries(
    st.sampled_from(["_principal", "_context", "_approval", "force", "principal"]),
    st.sampled_from([{"role": "admin"}, "admin", True, None]),
    max_size=2,
)


@pytest.mark.parametrize("path", PATHS)
@given(
    where=_path_text,
    permanent=_permanent | st.just("absent"),
    extra=_extra,
    role=st.sampled_from(["agent", "visitor"]),
)
def test_only_allowed_calls_run_and_with_the_decided_arguments(
    path: str, where: str, permanent: Any, extra: dict[str, Any], role: str
) -> None:
    """A call runs only when the policy allows what it saw, and the function gets exactly those arguments."""
    records: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []

    def wipe(path: str, permanent: bool = False) -> None:
        seen.append({"path": path, "permanent": permanent})

    engine = Engine.from_string(POLICY, audit=CallbackSink(records.append))
    principal = {"id": "p", "role": role}
    run = make_path(path, engine, "wipe", wipe, principal=principal)
    args: dict[str, Any] = {"path": where, **extra}
    if permanent != "absent":
        args["permanent"] = permanent
    outcome = run(args)
    decisions = [r for r in records if "kind" not in r]
    if outcome.ran:
        assert decisions[-1]["effect"] == "allow" and decisions[-1]["principal"] == principal
        assert seen[0]["permanent"] is False and not seen[0]["path"].startswith("/etc")
    else:
        assert seen == []
    if (
        path != "langchain"
    ):  # LangChain's own schema coerces and drops keys before the guard sees them
        expected = Engine.from_string(POLICY).decide("wipe", dict(args), principal)
        assert outcome.ran == (expected.effect is Effect.ALLOW and not extra)
        if outcome.ran:  # exactly the arguments decided on, the policy's default filled in
            assert seen == [decided_args(expected)] == [{"path": where, "permanent": False}]


def _wipe_true_default(path: str, permanent: bool = True) -> str:
    return "wiped"


def test_a_function_default_that_differs_from_the_policys_fails_when_the_guard_is_built() -> None:
    engine = Engine.from_string(POLICY)
    with pytest.raises(GuardError, match="permanent"):
        Guard(engine, {"wipe": _wipe_true_default})
    with pytest.raises(GuardError, match="permanent"):
        engine.guard(_wipe_true_default, "wipe")
    with pytest.raises(GuardError, match="permanent"):
        engine.protect("wipe")(_wipe_true_default)
    from policylang.adapters.openai import execute_tool_calls

    with pytest.raises(GuardError, match="permanent"):
        execute_tool_calls(engine, [], {"wipe": _wipe_true_default})
    # an optional argument without a default reads as absent: the function's default must be None
    e2 = Engine.from_string("tool t { note: string? }\nallow t\n")
    with pytest.raises(GuardError, match="note"):
        e2.guard(lambda note="hello": note, "t")
    e2.guard(lambda note=None: note, "t")


def test_a_langchain_schema_default_that_differs_fails_when_wrapped() -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.tools import StructuredTool

    from policylang.adapters.langchain import guard_tool

    tool = StructuredTool.from_function(func=_wipe_true_default, name="wipe", description="wipe")
    with pytest.raises(GuardError, match="permanent"):
        guard_tool(tool, Engine.from_string(POLICY))


@pytest.mark.parametrize("path", PATHS)
def test_the_policy_default_reaches_the_function_not_its_own(path: str) -> None:
    """Decided with `permanent: bool = false`: the function is called with permanent=False, always."""
    got: list[Any] = []

    def wipe(path: str, permanent: bool) -> None:  # no default of its own: it must be given one
        got.append(permanent)

    engine = Engine.from_string(POLICY)
    run = make_path(path, engine, "wipe", wipe, principal=AGENT)
    if path == "langchain":  # the tool's own schema (from the function) requires it: nothing runs
        assert not run({"path": "/tmp/x"}).ran and got == []
        assert run({"path": "/tmp/x", "permanent": False}).ran and got == [False]
    else:
        assert run({"path": "/tmp/x"}).ran and got == [False]
    confirm = run({"path": "/tmp/x", "permanent": True})
    assert not confirm.ran and confirm.code == "confirm" and got == [False]


def test_mcp_forwards_the_decided_arguments_as_json() -> None:
    pytest.importorskip("mcp")
    import asyncio

    from policylang.adapters.mcp import GuardedSession

    sent: list[Any] = []

    class Session:
        async def call_tool(self, name: str, arguments: Any = None) -> str:
            sent.append(arguments)
            return "ok"

    engine = Engine.from_string(
        "tool t { at: timestamp, wait: duration = 90s, n: int = 3 }\nallow t\n"
    )
    session = GuardedSession(Session(), engine)
    assert asyncio.run(session.call_tool("t", {"at": "2026-01-02T03:04:05Z"})) == "ok"
    assert sent == [{"at": "2026-01-02T03:04:05+00:00", "wait": "1m30s", "n": 3}]  # canonical text


def test_a_denied_call_never_reaches_the_function_on_errors_either() -> None:
    """A provider, approver or engine that fails denies: nothing runs by accident."""
    ran: list[int] = []

    def boom() -> dict[str, Any]:
        raise RuntimeError("no session")

    engine = Engine.from_string(POLICY)
    for path in PATHS:
        run = make_path(path, engine, "pay", lambda amount, to: ran.append(1), principal=boom)
        out = run({"amount": 5, "to": "b"})
        assert not out.ran and out.code == "internal_error", path
    assert ran == []


def test_an_async_tool_behind_a_sync_dispatch_call_really_runs() -> None:
    """Guard.call on an ``async def`` tool awaits it: the outcome is its result, not a coroutine."""
    ran: list[float] = []

    async def send(amount: float, to: str) -> str:
        ran.append(amount)
        return "sent"

    guard = Guard(Engine.from_string(POLICY), {"pay": send}, principal=AGENT)
    assert guard.call("pay", {"amount": 5, "to": "b"}) == "sent" and ran == [5]
