"""Guards around tool functions: run only on allow, approvals with signed tokens, shadow mode,
circuit breakers, outcome records, and failing closed."""

from __future__ import annotations

import asyncio
import json

import pytest

from policylang import Engine
from policylang.errors import StoreUnavailable
from policylang.runtime.audit import CallbackSink
from policylang.runtime.guard import (
    ApprovalTokens,
    Breaker,
    ConfirmationRequired,
    Guard,
    PolicyDenied,
)

POLICY = """
policy crm
default deny
tool crm.update { id: int
                  field: string
                  value: string? }
tool pay { amount: number
           to: string }
allow crm.update when principal.role == "agent"
deny crm.update when args.field == "owner" because "owner cannot be changed"
allow pay
confirm pay when args.amount > 100 because "large payment"
limit pay to 2 per 1m by principal.id
"""

AGENT = {"id": "a1", "role": "agent"}


@pytest.fixture
def records():
    return []


@pytest.fixture
def engine(records):
    return Engine.from_string(POLICY, audit=CallbackSink(records.append))


def test_sync_guard_runs_on_allow_and_raises_on_deny(engine, records):
    calls = []

    @engine.protect("crm.update", principal=AGENT)
    def update(id, field, value=None):
        calls.append((id, field, value))
        return "done"

    assert update(7, "name") == "done"  # positional args bound by name
    assert update(id=8, field="name", value="y") == "done"
    with pytest.raises(PolicyDenied) as info:
        update(9, "owner")
    assert info.value.decision.code == "denied" and "owner cannot be changed" in info.value.reason
    with pytest.raises(PolicyDenied) as info:  # identity never comes from the call's arguments
        update(10, "name", _principal={"id": "x", "role": "visitor"})
    assert info.value.decision.code == "invalid_request" and "_principal" in info.value.reason
    with pytest.raises(PolicyDenied):  # the explicit override is a separate API
        update.call_as(principal={"id": "x", "role": "visitor"})(10, "name")
    assert calls == [(7, "name", None), (8, "name", "y")]
    decisions = [r for r in records if "kind" not in r]
    outcomes = [r for r in records if r.get("kind") == "outcome"]
    assert decisions[0]["args"] == {"id": 7, "field": "name", "value": None}
    assert [o["decision_id"] for o in outcomes] == [d["decision_id"] for d in decisions[:2]]
    assert outcomes[0]["ok"] is True and outcomes[0]["duration_ms"] >= 0


def test_context_provider_and_bad_binding(engine):
    who = {"p": AGENT}
    update = engine.guard(lambda id, field: field, tool="crm.update", principal=lambda: who["p"])
    assert update(1, "name") == "name"
    who["p"] = {"id": "v", "role": "visitor"}
    with pytest.raises(PolicyDenied):
        update(1, "name")
    with pytest.raises(PolicyDenied) as info:
        update(1, 2, 3)
    assert info.value.decision.code == "invalid_request"


def test_async_guard(engine):
    ran = []

    @engine.protect("crm.update", principal=AGENT)
    async def update(id: int, field: str) -> str:
        await asyncio.sleep(0)
        ran.append(id)
        return field

    assert asyncio.run(update(1, "name")) == "name"
    with pytest.raises(PolicyDenied):
        asyncio.run(update(2, "owner"))
    assert ran == [1]


def test_confirmation_token_flow(engine, records):
    sent = []
    clock = {"t": 1000.0}
    guard = Guard(
        engine,
        {"pay": lambda amount, to: sent.append((amount, to)) or "sent"},
        tokens=ApprovalTokens(b"s" * 32, ttl=300, clock=lambda: clock["t"]),
    )
    args = {"amount": 500, "to": "bob"}
    with pytest.raises(ConfirmationRequired) as info:
        guard.call("pay", args, principal=AGENT)
    token = info.value.token
    assert sent == [] and info.value.decision.code == "confirm"
    with pytest.raises(
        PolicyDenied, match="not been approved"
    ):  # worthless until a person approves
        guard.call("pay", args, principal=AGENT, approval=token)
    guard.approve(token, approver="alice")
    with pytest.raises(PolicyDenied, match="different arguments"):
        guard.call("pay", {"amount": 501, "to": "bob"}, principal=AGENT, approval=token)
    with pytest.raises(PolicyDenied, match="different principal"):
        guard.call("pay", args, principal={"id": "other"}, approval=token)
    with pytest.raises(PolicyDenied, match="signature"):
        guard.call("pay", args, principal=AGENT, approval=token[:-2] + "AA")
    assert guard.call("pay", args, principal=AGENT, approval=token) == "sent"
    assert sent == [(500, "bob")]
    with pytest.raises(PolicyDenied, match="already been used") as info:
        guard.call("pay", args, principal=AGENT, approval=token)
    assert info.value.decision.code == "invalid_approval"
    # expiry
    with pytest.raises(ConfirmationRequired) as info:
        guard.call("pay", args, principal=AGENT)
    guard.approve(info.value.token, approver="alice")
    clock["t"] += 301
    with pytest.raises(PolicyDenied, match="expired"):
        guard.call("pay", args, principal=AGENT, approval=info.value.token)
    used = [
        r for r in records if r.get("kind") == "approval" and r.get("token_id") and "stage" not in r
    ]
    assert len(used) == 1 and used[0]["by"] == "alice" and used[0]["approved"] is True


def test_approved_confirmations_consume_limits(engine):
    guard = Guard(engine, {"pay": lambda amount, to: "ok"}, approver=lambda d: True)
    assert guard.call("pay", {"amount": 500, "to": "b"}, principal=AGENT) == "ok"
    assert guard.call("pay", {"amount": 5, "to": "b"}, principal=AGENT) == "ok"
    with pytest.raises(PolicyDenied) as info:  # 2 per minute: the approved call counted
        guard.call("pay", {"amount": 5, "to": "b"}, principal=AGENT)
    assert info.value.decision.code == "rate_limited"


@pytest.mark.parametrize("answer", [False, None, "yes", RuntimeError("approver crashed")])
def test_anything_but_true_from_the_approver_denies(engine, answer):
    ran = []

    def approver(decision):
        if isinstance(answer, Exception):
            raise answer
        return answer

    guard = Guard(engine, {"pay": lambda amount, to: ran.append(1)}, approver=approver)
    with pytest.raises(PolicyDenied) as info:
        guard.call("pay", {"amount": 500, "to": "b"}, principal=AGENT)
    assert ran == []
    expected = "approver_error" if isinstance(answer, Exception) else "not_approved"
    assert info.value.decision.code == expected


def test_async_approver(engine):
    async def approver(decision):
        await asyncio.sleep(0)
        return decision.tool == "pay"

    guard = Guard(engine, {"pay": lambda amount, to: "ok"}, approver=approver)
    assert guard.call("pay", {"amount": 500, "to": "b"}, principal=AGENT) == "ok"
    assert (
        asyncio.run(guard.acall("pay", {"amount": 500, "to": "c"}, principal={"id": "z"})) == "ok"
    )


def test_dispatch_with_json_args(engine):
    guard = Guard(engine, {"crm.update": lambda id, field: f"{id}:{field}"})
    assert guard.call("crm.update", '{"id": 3, "field": "name"}', principal=AGENT) == "3:name"
    for bad in ['{"id": 3,', "[1, 2]", "42"]:
        with pytest.raises(PolicyDenied) as info:
            guard.call("crm.update", bad, principal=AGENT)
        assert info.value.decision.code == "invalid_request"
        assert info.value.decision.effect == "deny" and info.value.decision.decision_id
    with pytest.raises(PolicyDenied) as info:
        guard.call("crm.delete", {}, principal=AGENT)
    assert info.value.decision.code == "unknown_tool"


def test_shadow_mode_always_runs_and_audits(engine, records):
    ran = []
    guard = Guard(engine, {"crm.update": lambda id, field: ran.append(field)}, shadow=True)
    guard.call("crm.update", {"id": 1, "field": "owner"}, principal=AGENT)
    guard.call("crm.update", {"id": 1, "field": "name"}, principal={"id": "v", "role": "visitor"})
    assert ran == ["owner", "name"]
    decisions = [r for r in records if "kind" not in r]
    assert [d["effect"] for d in decisions] == ["deny", "deny"]
    outcomes = [r for r in records if r.get("kind") == "outcome"]
    assert all(o["shadow"] for o in outcomes) and len(outcomes) == 2


def test_circuit_breaker(engine, records):
    now = {"t": 0.0}
    fail = {"on": True}

    def update(id, field):
        if fail["on"]:
            raise ConnectionError("crm down")
        return "ok"

    guard = Guard(
        engine,
        {"crm.update": update},
        principal=AGENT,
        monotonic=lambda: now["t"],
        breakers={"crm.*": Breaker(failures=3, window=60, cooldown=300)},
    )
    args = {"id": 1, "field": "name"}
    for _ in range(3):
        with pytest.raises(ConnectionError):
            guard.call("crm.update", args)
        now["t"] += 1
    assert guard.breaker_state("crm.update") == "open"
    with pytest.raises(PolicyDenied) as info:
        guard.call("crm.update", args)
    assert info.value.decision.code == "circuit_open" and "retry in" in info.value.reason
    now["t"] += 300
    with pytest.raises(ConnectionError):  # the half-open probe fails: open again
        guard.call("crm.update", args)
    with pytest.raises(PolicyDenied):
        guard.call("crm.update", args)
    now["t"] += 301
    fail["on"] = False
    assert guard.call("crm.update", args) == "ok"  # the probe succeeds: closed
    assert guard.breaker_state("crm.update") == "closed"
    assert guard.call("crm.update", args) == "ok"
    errors = [r["error"] for r in records if r.get("kind") == "outcome" and not r["ok"]]
    assert errors == ["ConnectionError"] * 4
    # failures spread wider than the window do not open it
    fail["on"] = True
    for _ in range(5):
        with pytest.raises(ConnectionError):
            guard.call("crm.update", args)
        now["t"] += 61
    assert guard.breaker_state("crm.update") == "closed"


def test_probe_slot_released_when_policy_denies(engine):
    now = {"t": 0.0}
    guard = Guard(
        engine,
        {"crm.update": lambda id, field: 1 / 0},
        principal=AGENT,
        monotonic=lambda: now["t"],
        breakers={"crm.update": Breaker(1, 60, 10)},
    )
    with pytest.raises(ZeroDivisionError):
        guard.call("crm.update", {"id": 1, "field": "name"})
    now["t"] += 11
    with pytest.raises(PolicyDenied) as info:  # denied by policy: the probe never ran
        guard.call("crm.update", {"id": 1, "field": "owner"})
    assert info.value.decision.code == "denied"
    with pytest.raises(ZeroDivisionError):  # so the next call may still probe
        guard.call("crm.update", {"id": 1, "field": "name"})


def test_errors_anywhere_before_running_deny(engine, monkeypatch):
    ran = []
    guard = Guard(engine, {"crm.update": lambda id, field: ran.append(1)})

    def boom():
        raise KeyError("no session")

    with pytest.raises(PolicyDenied) as info:
        Guard(engine, {"crm.update": lambda id, field: ran.append(1)}, principal=boom).call(
            "crm.update", {"id": 1, "field": "name"}
        )
    assert info.value.decision.code == "internal_error"
    monkeypatch.setattr(engine, "decide", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(PolicyDenied):
        guard.call("crm.update", {"id": 1, "field": "name"}, principal=AGENT)
    assert ran == []


def test_broken_store_denies_and_audit_failure_blocks_approval():
    class Down:
        def acquire(self, *a):
            raise StoreUnavailable("down")

        def refund(self, *a):
            pass

    ran = []
    engine = Engine.from_string(POLICY, store=Down())
    guard = Guard(engine, {"pay": lambda amount, to: ran.append(1)}, approver=lambda d: True)
    with pytest.raises(PolicyDenied) as info:
        guard.call("pay", {"amount": 5, "to": "b"}, principal=AGENT)
    assert info.value.decision.code == "store_unavailable"

    def sink(record):
        if record.get("kind") == "approval":
            raise OSError("audit disk full")

    engine = Engine.from_string(POLICY, audit=sink)
    guard = Guard(engine, {"pay": lambda amount, to: ran.append(1)}, approver=lambda d: True)
    with pytest.raises(PolicyDenied) as info:
        guard.call("pay", {"amount": 500, "to": "b"}, principal=AGENT)
    assert info.value.decision.code == "audit_unavailable"
    assert ran == []


def test_refund_on_error(engine):
    guard = Guard(engine, {"pay": lambda amount, to: 1 / 0}, refund_on_error=True)
    for _ in range(4):  # limit is 2 per minute, but failed calls give their allowance back
        with pytest.raises(ZeroDivisionError):
            guard.call("pay", {"amount": 1, "to": "b"}, principal=AGENT)


def test_outcome_records_are_json(engine, records):
    guard = Guard(engine, {"pay": lambda amount, to: "ok"})
    guard.call("pay", {"amount": 1, "to": "b"}, principal=AGENT)
    json.dumps(records)


def test_breaker_declared_in_the_policy_opens_after_failures():
    from policylang import Engine
    from policylang.runtime.guard import Guard, PolicyDenied

    src = (
        "tool crm.update { id: string }\nallow crm.update\n"
        "rule crm_breaker: breaker crm.* after 2 failures in 1m for 5m\n"
    )
    engine = Engine.from_string(src)
    ran: list[str] = []

    def update(id: str) -> None:
        ran.append(id)
        raise RuntimeError("crm is down")

    guard = Guard(engine, tools={"crm.update": update})
    for i in range(2):
        with pytest.raises(RuntimeError):
            guard.call("crm.update", {"id": str(i)})
    with pytest.raises(PolicyDenied) as info:
        guard.call("crm.update", {"id": "2"})
    assert info.value.decision.code == "circuit_open"
    assert ran == ["0", "1"]  # the third call never reached the executor


# ---------------------------------------------------------------- binding a call's arguments

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _reference_binding(fn, a, kw):
    import inspect

    bound = inspect.signature(fn).bind(*a, **kw)
    bound.apply_defaults()
    return dict(bound.arguments)


def _book(title, when, room="any", *, seats=2, note=None):
    return title


_value = st.integers(0, 3) | st.text(max_size=3)


@example(kw={"title": "t", "when": "w"}, positional=0)  # the keyword fast path, defaults filled in
@example(kw={"title": "t", "when": "w", "seats": 5, "room": "r"}, positional=0)
@example(kw={"when": "w"}, positional=0)  # a required argument missing: refused
@given(
    kw=st.fixed_dictionaries(
        {"title": _value, "when": _value},
        optional={"room": _value, "seats": _value, "note": _value, "other": _value},
    )
    | st.dictionaries(
        st.sampled_from(["title", "when", "room", "seats", "note", "other"]), _value, max_size=5
    ),
    positional=st.integers(0, 2),
)
def test_guarded_calls_bind_arguments_like_the_signature_does(kw, positional) -> None:
    """The keyword fast path and inspect's binding give the policy the same arguments (or both refuse)."""
    seen = []
    engine = Engine.from_string("policy b\nallow *\n", audit=CallbackSink(seen.append))
    guarded = engine.guard(_book, "book")
    a = tuple(kw.pop(n) for n in ("title", "when")[:positional] if n in kw)
    try:
        expected = _reference_binding(_book, a, kw)
    except TypeError:
        expected = None
    try:
        guarded(*a, **kw)
    except Exception:  # noqa: BLE001 - a refused call: the binding failed
        assert expected is None
        return
    decision = next(r for r in seen if r.get("kind") is None)
    assert decision["args"] == expected
