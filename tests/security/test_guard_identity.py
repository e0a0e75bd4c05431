"""Identity never comes from the model: configured providers win, overrides are a separate API.

Agent loops call tools as ``fn(**json.loads(tool_call.arguments))``, so anything in the
arguments is the model's to choose. A reserved name there (``_principal``, ``_context``,
``_approval`` in dispatch arguments) is an unexpected argument: the call is denied.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from guard_support import PATHS, make_path
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.audit import CallbackSink
from policylang.runtime.guard import RESERVED, Guard, GuardError, PolicyDenied

POLICY = """
policy ident
default deny
principal { id: string, role: string, scopes: list<string> = [] }
context { session_id: string = "none", confidence: number = 0, user_request: string = "" }
tool pay { amount: number, to: string }
allow pay when principal.role == "admin" && "pay" in principal.scopes && context.confidence > 0.9
"""

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_claims = (
    st.fixed_dictionaries(
        {"id": st.text(max_size=4), "role": st.just("admin"), "scopes": st.just(["pay"])}
    )
    | st.just({"confidence": 1.0})
    | _json
)
_principals = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=6), "role": st.sampled_from(["admin", "visitor", "agent"])},
    optional={
        "scopes": st.lists(st.sampled_from(["pay", "read"]), max_size=2),
        "tenant": st.text(max_size=4),
    },
)
_contexts = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.text(max_size=5),
        "confidence": st.sampled_from([0.0, 0.5, 0.95, 1.0]),
        "user_request": st.text(max_size=10),
    },
)


def _expected(principal: dict[str, Any], context: dict[str, Any]) -> bool:
    return (
        principal["role"] == "admin"
        and "pay" in principal.get("scopes", [])
        and context.get("confidence", 0) > 0.9
    )


@pytest.mark.parametrize("path", PATHS)
@given(
    principal=_principals,
    context=_contexts,
    injected=st.dictionaries(st.sampled_from(sorted(RESERVED)), _claims, max_size=2),
)
def test_the_policy_sees_only_the_providers_principal_and_context(
    path: str, principal: dict[str, Any], context: dict[str, Any], injected: dict[str, Any]
) -> None:
    records: list[dict[str, Any]] = []
    engine = Engine.from_string(POLICY, audit=CallbackSink(records.append))
    run = make_path(
        path,
        engine,
        "pay",
        lambda amount, to: "paid",
        principal=lambda: principal,
        context=lambda: context,
    )
    outcome = run({"amount": 5, "to": "bob", **injected})
    for record in (r for r in records if "kind" not in r and r.get("principal") is not None):
        assert record["principal"] == principal  # never the model's claim
    if injected and path != "langchain":
        assert not outcome.ran and outcome.code in ("invalid_request", "invalid_approval")
    elif (
        not injected or path == "langchain"
    ):  # LangChain's schema drops unknown keys before the guard
        assert outcome.ran == _expected(principal, context)


@pytest.mark.parametrize("key", sorted(RESERVED))
@given(value=_claims)
def test_reserved_names_in_dispatch_arguments_are_unexpected(key: str, value: Any) -> None:
    ran: list[int] = []
    engine = Engine.from_string(POLICY)
    guard = Guard(
        engine,
        {"pay": lambda amount, to: ran.append(1)},
        principal={"id": "u", "role": "admin", "scopes": ["pay"]},
        context={"confidence": 1.0},
    )
    with pytest.raises(PolicyDenied) as info:
        guard.call("pay", json.dumps({"amount": 5, "to": "b", key: value}, default=str))
    assert info.value.decision.code == "invalid_request" and key in info.value.reason and ran == []
    assert guard.call("pay", {"amount": 5, "to": "b"}) is None and ran == [
        1
    ]  # the same call, clean


@pytest.mark.parametrize("key", ["_principal", "_context"])
def test_identity_keywords_deny_on_wrapped_functions_even_with_var_keywords(key: str) -> None:
    engine = Engine.from_string("policy open\ndefault allow\n")
    ran: list[Any] = []
    guarded = engine.guard(
        lambda **kw: ran.append(kw), "anything", principal={"id": "u", "role": "x"}
    )
    with pytest.raises(PolicyDenied) as info:
        guarded(x=1, **{key: {"role": "admin"}})
    assert info.value.decision.code == "invalid_request" and ran == []


def test_the_explicit_override_is_a_separate_api() -> None:
    records: list[dict[str, Any]] = []
    engine = Engine.from_string(POLICY, audit=CallbackSink(records.append))
    admin = {"id": "root", "role": "admin", "scopes": ["pay"]}
    sure = {"confidence": 1.0}

    def pay(amount: float, to: str) -> str:
        return "paid"

    visitor = {"id": "v", "role": "visitor"}
    guarded = engine.guard(pay, "pay", principal=visitor, context=sure)
    with pytest.raises(PolicyDenied):
        guarded(amount=5, to="b")
    assert guarded.call_as(principal=admin)(amount=5, to="b") == "paid"
    assert records[-2]["principal"] == admin
    guard = Guard(engine, {"pay": pay}, principal=visitor, context=sure)
    assert guard.call("pay", {"amount": 5, "to": "b"}, principal=admin) == "paid"

    async def apay(amount: float, to: str) -> str:
        return "paid"

    aguarded = engine.guard(apay, "pay", principal=visitor, context=sure)
    assert asyncio.run(aguarded.call_as(principal=admin)(amount=5, to="b")) == "paid"
    with pytest.raises(PolicyDenied):
        asyncio.run(aguarded(amount=5, to="b"))


def test_misuse_fails_at_construction() -> None:
    engine = Engine.from_string(POLICY)
    with pytest.raises(GuardError, match="_principal"):
        engine.guard(lambda amount, _principal=None: 1, "pay")
    with pytest.raises(TypeError):
        Guard(engine, approver="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Guard(engine, principal=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Guard(engine, {"pay": "not a function"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        Guard(engine, breakers={"pay": 5})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        Guard("not an engine")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Guard(engine, max_breakers=0)
    with pytest.raises(ValueError):
        Guard(engine, secret=b"short")
