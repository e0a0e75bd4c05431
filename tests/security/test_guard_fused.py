"""The arguments a guard runs a tool with are the same on the fused and the ordinary path.

The engine's fused fast path (policylang.compiler.fused) returns the validated,
defaults-filled, converted arguments it decided on, just as the ordinary path does; the
guard runs the function with exactly those, so the two paths must agree on them (and on
whether the function runs) for every request, well-formed or not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.clock import FixedClock
from policylang.runtime.guard import CallBlocked, Guard, decided_args
from policylang.testing.strategies import requests

POLICY = """
policy fusedargs
default deny
principal { id: string, role: string = "user" }
context { channel: string = "chat" }
tool book { title: string, start: timestamp, wait: duration = 15m, room: string = "any", seats: int = 2,
            note: string? }
tool pay { amount: number, to: string, permanent: bool = false }
allow book when args.seats <= 10
confirm book when args.room == "hall" because "the hall needs a person"
allow pay when principal.role == "agent"
deny pay when args.permanent && args.amount > 100 because "no large permanent payments"
limit pay to 1000 per 1h by principal.id
"""
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def _pair() -> tuple[Engine, Engine]:
    fused, ordinary = (Engine.from_string(POLICY, clock=FixedClock(NOW)) for _ in range(2))
    assert fused._prepared is not None and fused._prepared.fused, "no tool got a fused function"
    ordinary._prepared.fused.clear()  # type: ignore[union-attr]
    return fused, ordinary


FUSED, ORDINARY = _pair()
_junk = (
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.text(max_size=6)
    | st.sampled_from(["2026-01-05T12:00:00Z", "90s", "1h", "hall"])
)


def _run(engine: Engine, req: dict[str, Any]) -> tuple[bool, Any, str]:
    seen: list[dict[str, Any]] = []
    guard = Guard(engine, {req["tool"]: lambda **kw: seen.append(kw)}, approver=lambda d: True)
    try:
        guard.call(
            req["tool"], req.get("args"), principal=req.get("principal"), context=req.get("context")
        )
    except CallBlocked as exc:
        return False, None, exc.decision.code
    return True, seen[0], ""


@given(
    req=st.one_of(
        st.builds(
            dict,
            tool=st.just("book"),
            args=st.dictionaries(
                st.sampled_from(["title", "start", "wait", "room", "seats", "note"]),
                _junk,
                max_size=6,
            ),
            principal=st.just({"id": "u"}),
        ),
        st.builds(
            dict,
            tool=st.just("pay"),
            args=st.dictionaries(
                st.sampled_from(["amount", "to", "permanent", "x"]), _junk, max_size=4
            ),
            principal=st.fixed_dictionaries(
                {"id": st.sampled_from(["a", "b"]), "role": st.sampled_from(["agent", "user"])}
            ),
        ),
    )
)
def test_guarded_calls_run_with_the_same_arguments_on_both_paths(req: dict[str, Any]) -> None:
    assert _run(FUSED, req) == _run(ORDINARY, req)


@given(data=st.data())
def test_decided_arguments_agree_on_generated_requests(data: Any) -> None:
    req = data.draw(requests(FUSED))
    context = dict(req.get("context") or {})
    context.pop("now", None)  # a pinned now always takes the ordinary path
    req = {**req, "context": context}
    a, b = FUSED.decide(**req), ORDINARY.decide(**req)
    assert a.effect == b.effect
    if a.effect != "deny":
        assert decided_args(a) == decided_args(b) is not None


def test_well_formed_requests_take_the_fused_path_and_fill_defaults() -> None:
    d = FUSED.decide("pay", {"amount": 5, "to": "b"}, {"id": "a", "role": "agent"})
    assert d.effect == "allow" and decided_args(d) == {"amount": 5, "to": "b", "permanent": False}
    assert type(d._id) is int  # a fused decision (the ordinary path names its id at once)
    d = FUSED.decide("book", {"title": "t", "start": "2026-01-05T12:00:00Z"}, {"id": "u"})
    assert type(d._id) is int and d._out is not None  # the fused path, with converted copies
    args = decided_args(d)
    assert args is not None and args["start"] == datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert (args["room"], args["seats"], args["wait"].total_seconds()) == ("any", 2, 900)
