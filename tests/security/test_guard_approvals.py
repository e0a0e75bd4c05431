"""Approvals: a token is worthless until a person approves it, approves exactly one call, once, anywhere.

A token binds the whole canonical principal, the session, the tool, the canonical decided
arguments, the ids of the rules that asked, and the policy hash; used tokens are recorded in
the shared store (memory per engine, or SQLite across processes). The approver callback
follows one protocol on every path: only ``True`` approves; awaitables are awaited.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from guard_support import PATHS, make_path
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.approvals import (
    ApprovalTokens,
    MemoryApprovalStore,
    SQLiteApprovalStore,
    TokenError,
)
from policylang.runtime.audit import CallbackSink
from policylang.runtime.guard import Breaker, ConfirmationRequired, Guard, PolicyDenied

POLICY = """
policy appr
principal { id: string?, role: string = "user", tenant: string = "t1" }
context { session_id: string = "s0" }
tool pay { amount: number, to: string }
tool refund { amount: number, to: string }
allow pay
rule big_payment: confirm pay when args.amount > 100 because "large payment"
allow refund
rule big_refund: confirm refund when args.amount > 100 because "large refund"
"""
RENAMED_RULE = POLICY.replace("rule big_payment:", "rule big_payment_v2:")
OTHER_HASH = POLICY + "deny refund when args.amount < 0\n"

BASE = {
    "tool": "pay",
    "args": {"amount": 500, "to": "bob"},
    "principal": {"id": "a1", "tenant": "t1"},
    "context": {"session_id": "s1"},
}


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _setup(
    store: Any = None, records: list[dict[str, Any]] | None = None
) -> tuple[Engine, Guard, list[Any], Clock]:
    engine = Engine.from_string(
        POLICY, audit=CallbackSink(records.append) if records is not None else None
    )
    ran: list[Any] = []
    clock = Clock()
    tokens = ApprovalTokens(b"k" * 32, ttl=300, clock=clock, store=store)
    fns = {
        "pay": lambda amount, to: ran.append(("pay", amount, to)) or "paid",
        "refund": lambda amount, to: ran.append(("refund", amount, to)) or "refunded",
    }
    return engine, Guard(engine, fns, tokens=tokens), ran, clock


def _call(guard: Guard, call: dict[str, Any], token: str | None) -> Any:
    return guard.call(
        call["tool"],
        call["args"],
        principal=call["principal"],
        context=call["context"],
        approval=token,
    )


def _ask(guard: Guard, call: dict[str, Any] = BASE) -> str:
    with pytest.raises(ConfirmationRequired) as info:
        _call(guard, call, None)
    return info.value.token


_mutations = st.one_of(
    st.tuples(
        st.just("principal"),
        st.sampled_from(
            [
                {"id": "a1", "tenant": "t2"},  # same id, another tenant: the old bug
                {"id": "a2", "tenant": "t1"},
                {"tenant": "t1"},
                {"id": "a1", "tenant": "t1", "role": "admin"},
                {"id": "a1", "tenant": "t1", "extra": 1},
                {},
            ]
        ),
    ),
    st.tuples(st.just("session"), st.text(min_size=1, max_size=4).filter(lambda s: s != "s1")),
    st.tuples(st.just("tool"), st.just("refund")),
    st.tuples(
        st.just("args"),
        st.sampled_from(
            [
                {"amount": 501, "to": "bob"},
                {"amount": 500, "to": "eve"},
                {"amount": 500.5, "to": "bob"},
            ]
        ),
    ),
    st.tuples(st.just("rules"), st.just(RENAMED_RULE)),
    st.tuples(st.just("policy"), st.just(OTHER_HASH)),
)


@given(mutation=_mutations)
def test_a_token_approves_only_the_call_it_was_issued_for(mutation: tuple[str, Any]) -> None:
    """Change any one of principal / session / tool / args / rules / policy hash: rejected."""
    engine, guard, ran, _ = _setup()
    token = _ask(guard)
    guard.approve(token, approver="alice")
    what, value = mutation
    call = {**BASE}
    if what in ("rules", "policy"):
        engine.reload_string(value)
    elif what == "session":
        call["context"] = {"session_id": value}
    else:
        call[what] = value
    with pytest.raises(PolicyDenied) as info:
        _call(guard, call, token)
    assert info.value.decision.code == "invalid_approval" and ran == []
    if what not in (
        "rules",
        "policy",
    ):  # a rejected attempt does not spend it: the approved call runs once
        assert _call(guard, BASE, token) == "paid" and len(ran) == 1
        with pytest.raises(PolicyDenied, match="already been used"):
            _call(guard, BASE, token)


def test_a_token_is_worthless_until_a_person_approves_it() -> None:
    records: list[dict[str, Any]] = []
    _, guard, ran, clock = _setup(records=records)
    token = _ask(guard)
    with pytest.raises(PolicyDenied, match="not been approved"):
        _call(guard, BASE, token)
    with pytest.raises(ValueError):
        guard.approve(token, approver="")  # say who approves
    guard.approve(token, approver="alice")
    with pytest.raises(TokenError):
        guard.approve(token, approver="bob")  # answered once
    assert _call(guard, BASE, token) == "paid" and len(ran) == 1
    used = [r for r in records if r.get("kind") == "approval" and "stage" not in r]
    assert [(r["by"], r["approved"]) for r in used] == [("alice", True)]
    assert used[0]["token_id"] and used[0]["token_id"] in {
        r.get("token_id") for r in records if r.get("stage") == "answered"
    }
    declined = _ask(guard)
    guard.decline(declined, approver="bob")
    with pytest.raises(PolicyDenied, match="declined"):
        _call(guard, BASE, declined)
    expiring = _ask(guard)
    guard.approve(expiring, approver="alice")
    clock.t += 301
    with pytest.raises(PolicyDenied, match="expired"):
        _call(guard, BASE, expiring)
    for forged in ["", "abc", "a.b", _ask(guard)[:-3] + "xyz", 42]:
        with pytest.raises(PolicyDenied) as info:
            _call(guard, BASE, forged)  # type: ignore[arg-type]
        assert info.value.decision.code == "invalid_approval"
    assert len(ran) == 1


def test_a_token_from_another_store_approves_nothing() -> None:
    _, issuing, _, _ = _setup()
    _, other, ran, _ = _setup()  # same secret, its own store
    token = _ask(issuing)
    issuing.approve(token, approver="alice")
    with pytest.raises(PolicyDenied, match="unknown here"):
        _call(other, BASE, token)
    assert ran == []


def test_replay_across_two_guards_of_one_engine_is_rejected() -> None:
    engine = Engine.from_string(POLICY)
    ran: list[int] = []
    first = Guard(engine, {"pay": lambda amount, to: ran.append(1)})
    second = Guard(engine, {"pay": lambda amount, to: ran.append(2)})
    token = _ask(first)
    second.approve(token, approver="alice")  # every guard of an engine shares its tokens by default
    _call(first, BASE, token)
    with pytest.raises(PolicyDenied, match="already been used"):
        _call(second, BASE, token)
    assert ran == [1]


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_replay_across_guards_sharing_a_store_is_rejected(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _, first, ran1, _ = _setup(_store(kind, request, tmp_path))
    _, second, ran2, _ = _setup(_store(kind, request, tmp_path))  # another worker, the same store
    token = _ask(first)
    with pytest.raises(PolicyDenied, match="not been approved"):
        _call(second, BASE, token)
    second.approve(token, approver="alice")
    with pytest.raises(TokenError, match="already been approved"):
        first.approve(token, approver="bob")
    assert _call(second, BASE, token) == "paid"
    with pytest.raises(PolicyDenied, match="already been used"):
        _call(first, BASE, token)
    assert (ran1, len(ran2)) == ([], 1)


_WORKER = """
import sys
from policylang import Engine
from policylang.runtime.approvals import ApprovalTokens, SQLiteApprovalStore
from policylang.runtime.guard import Guard, PolicyDenied
policy, db, token = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
guard = Guard(Engine.from_string(policy), {"pay": lambda amount, to: "ran"},
              tokens=ApprovalTokens(b"k" * 32, store=SQLiteApprovalStore(db)))
try:
    print(guard.call("pay", {"amount": 500, "to": "bob"}, principal={"id": "a1", "tenant": "t1"},
                     context={"session_id": "s1"}, approval=token))
except PolicyDenied as exc:
    print(exc.decision.code)
"""


def test_a_token_runs_once_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "approvals.db"
    (tmp_path / "p.policy").write_text(POLICY)
    guard = Guard(
        Engine.from_string(POLICY),
        {"pay": lambda amount, to: "ran"},
        tokens=ApprovalTokens(b"k" * 32, store=SQLiteApprovalStore(db)),
    )
    token = _ask(guard)
    guard.approve(token, approver="alice")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tmp_path / "p.policy"), str(db), token],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    outputs = sorted(w.communicate(timeout=120)[0].strip() for w in workers)
    assert outputs == ["invalid_approval", "invalid_approval", "ran"]


_answers = st.one_of(
    st.just(True),
    st.booleans(),
    st.none(),
    st.integers(-2, 2),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.sampled_from(["yes", "True", "true", 1, 1.0, [True], (True,), {"ok": True}]),
)


@pytest.mark.parametrize("path", PATHS)
@given(answer=_answers, mode=st.sampled_from(["sync", "async", "raises"]))
def test_only_true_approves_on_every_path(path: str, answer: Any, mode: str) -> None:
    asked: list[Any] = []

    def sync(decision: Any) -> Any:
        asked.append(decision)
        if mode == "raises":
            raise RuntimeError("the approver crashed")
        return answer

    async def async_(decision: Any) -> Any:
        await asyncio.sleep(0)
        return sync(decision)

    engine = Engine.from_string(POLICY)
    run = make_path(
        path,
        engine,
        "pay",
        lambda amount, to: "paid",
        principal={"id": "a1"},
        approver=async_ if mode == "async" else sync,
    )
    outcome = run({"amount": 500, "to": "bob"})
    assert len(asked) == 1 and asked[0].effect == "confirm"
    assert outcome.ran == (answer is True and mode != "raises")
    if not outcome.ran:
        assert outcome.code == ("approver_error" if mode == "raises" else "not_approved")


@pytest.mark.parametrize("path", PATHS)
def test_the_token_flow_on_every_path(path: str) -> None:
    engine = Engine.from_string(POLICY)
    run = make_path(path, engine, "pay", lambda amount, to: "paid", principal={"id": "a1"})
    asked = run({"amount": 500, "to": "bob"})
    assert not asked.ran and asked.code == "confirm" and asked.token
    early = run({"amount": 500, "to": "bob"}, approval=asked.token)
    assert not early.ran and early.code == "invalid_approval"
    run.guard.approve(asked.token, approver="alice")
    assert not run({"amount": 501, "to": "bob"}, approval=asked.token).ran
    assert run({"amount": 500, "to": "bob"}, approval=asked.token).ran
    assert not run({"amount": 500, "to": "bob"}, approval=asked.token).ran


def _store(kind: str, request: pytest.FixtureRequest, tmp_path: Path, **options: Any) -> Any:
    if kind == "memory":
        return MemoryApprovalStore(**options)
    if kind == "sqlite":
        return SQLiteApprovalStore(tmp_path / "a.db", **options)
    from policylang.runtime.approvals import RedisApprovalStore

    return RedisApprovalStore(request.getfixturevalue("redis_server").url, **options)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_approval_stores_are_bounded_and_count_refusals(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = _store(kind, request, tmp_path, max_tokens=3)
    _, guard, ran, clock = _setup(store)
    for _ in range(3):
        _ask(guard)
    with pytest.raises(PolicyDenied) as info:
        _call(guard, BASE, None)
    assert info.value.decision.code == "approval_unavailable" and "full" in info.value.reason
    assert store.stats["refused_full"] == 1
    clock.t += 301  # expired tokens make room (used ones are never evicted early)
    _ask(guard)
    assert store.stats["expired_swept"] == 3 and ran == []


def test_breaker_state_is_bounded_and_counted() -> None:
    engine = Engine.from_string("policy open\ndefault allow\n")

    def fail(name: str, args: dict[str, Any]) -> None:  # one dispatch(name, args) function
        raise ConnectionError("down")

    guard = Guard(
        engine, fail, breakers={"*": Breaker(failures=1, window=60, cooldown=300)}, max_breakers=2
    )
    for tool in ("a", "b"):
        with pytest.raises(ConnectionError):
            guard.call(tool, {})
    with pytest.raises(
        PolicyDenied
    ) as info:  # both slots hold open breakers: a new tool is refused
        guard.call("c", {})
    assert info.value.decision.code == "breaker_capacity" and guard.stats["breakers_full"] == 1
    ok = Guard(engine, lambda name, args: "ok", breakers={"*": Breaker(1, 60, 300)}, max_breakers=2)
    for tool in "abcdef":  # idle (closed, no failures) breakers are dropped instead
        assert ok.call(tool, {}) == "ok"
    assert ok.stats["breakers_dropped"] >= 2 and ok.stats["breakers_full"] == 0


def test_an_approved_confirm_enters_the_history_even_after_the_pending_table_overflowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import policylang.runtime.engine as engine_module

    # the bound, reached at once: as if 10,000 other confirms were decided before this one is approved
    monkeypatch.setattr(engine_module, "_PENDING_CONFIRMS", 0)
    src = (
        "policy s\ncontext { session_id: string }\nsession by context.session_id\n"
        "tool pay { amount: number, to: string }\nallow pay\nconfirm pay when args.amount > 100\n"
        'deny pay when session.count("pay") >= 1 because "one payment per session"\n'
    )
    engine = Engine.from_string(src)
    guard = Guard(engine, {"pay": lambda amount, to: "paid"}, context={"session_id": "s1"})
    first = _ask(guard, {**BASE, "context": None})
    guard.approve(first, approver="alice")
    assert guard.call("pay", BASE["args"], principal=BASE["principal"], approval=first) == "paid"
    with pytest.raises(PolicyDenied, match="one payment per session"):
        guard.call("pay", {"amount": 5, "to": "bob"}, principal=BASE["principal"])
