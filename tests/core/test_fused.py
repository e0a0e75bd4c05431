"""The fused per-tool path (policylang.compiler.fused) decides exactly like the ordinary path.

The fused function is an accelerator: for any request, well-formed or not, the
decision must be the same as with fused functions switched off. The ordinary
path is itself checked against the reference interpreter elsewhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.clock import FixedClock
from policylang.testing.strategies import requests

NOW = datetime(2025, 7, 3, 15, 30, tzinfo=UTC)  # a Thursday, the day before a US holiday

RICH = """
policy fusedcheck
timezone "America/New_York"
default deny

principal { id: string, role: "admin" | "staff" | "guest", scopes: list<string>, level: int? }
context { confidence: number, channel: string = "chat" }

tool pay { amount: number, currency: string, to: string, memo: string? }
tool meet { title: string, start: timestamp, end: timestamp, room: string = "any" }
tool wait { for: duration, on: date }
tool note { text: string, tags: list<string>, meta: map<string, dyn>? }

deny pay when args.amount <= 0 because "amount must be positive"
deny pay when !(args.currency in ["USD", "EUR"]) because "currency {args.currency} is not allowed"
confirm pay when args.amount > 1000 || context.confidence < 0.8 because "a person checks large payments"
allow pay when principal.role in ["admin", "staff"] && "pay" in principal.scopes

deny meet when args.end <= args.start because "a meeting ends after it starts"
deny meet when weekday(args.start) in ["Sat", "Sun"] || is_holiday(args.start, "US")
    because "no meetings on weekends or holidays"
deny meet when args.start < now because "no meetings in the past"
allow meet when principal.role != "guest" && hour(args.start) >= 9 && hour(args.start) < 17

allow wait when args.for <= duration("2h") && args.on >= today()
limit pay to 40 per 1h by principal.id
limit meet to sum(1) 30 per 1d
limit note to 50 per 1h by context.channel
deny meet when args.room == "closet" because "room {args.room} is too small, asked by {context.channel}"
confirm pay when context.channel == "email" && args.amount > 100 because "{context.channel}: {args.amount}"
confirm note when size(args.tags) > 3 because "{size(args.tags)} tags"
allow note when args.text.startsWith("ok") && (principal.level == null || principal.level > 2)
"""


MAIL = """
policy mail
principal { role: string }
tool email.send { to: list<string>, subject: string, cc: list<string> = [] }
tool crm.update { field: string, value: dyn }
deny email.send when args.to.exists(r, !data.trusted.exists(d, r.endsWith("@" + d)))
    because "recipient outside the trusted domains"
deny email.send when args.cc.exists(r, r.endsWith("@evil.example"))
allow email.send when principal.role in data.staff
allow crm.update when args.field in data.fields && principal.role == "sales"
"""
MAIL_DATA = {
    "trusted": ["example.com", "corp.example.com", "partner.io"],
    "staff": ["sales", "admin"],
    "fields": ["name", "stage"],
}


def _engines(text: str, data: dict[str, Any] | None = None) -> tuple[Engine, Engine]:
    def make() -> Engine:
        return Engine.from_string(text, data=data, clock=FixedClock(NOW))

    fused, ordinary = make(), make()
    assert fused._prepared is not None and ordinary._prepared is not None
    assert fused._prepared.fused, "no tool got a fused function"
    ordinary._prepared.fused.clear()
    return fused, ordinary


def _same(d1: Any, d2: Any) -> None:
    a, b = d1.model_dump(mode="json"), d2.model_dump(mode="json")
    for key in ("decision_id", "elapsed_us"):
        a.pop(key)
        b.pop(key)
    assert a == b


def _unpinned(req: dict[str, Any]) -> dict[str, Any]:
    context = dict(req.get("context") or {})
    context.pop("now", None)  # a pinned now always takes the ordinary path
    return {**req, "context": context}


RICH_PAIR = _engines(RICH)
MAIL_PAIR = _engines(MAIL, MAIL_DATA)


@pytest.mark.parametrize("pair", [RICH_PAIR, MAIL_PAIR], ids=["rich", "mail"])
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fused_and_ordinary_paths_agree_on_generated_requests(
    pair: tuple[Engine, Engine], data: Any
) -> None:
    fused, ordinary = pair
    req = _unpinned(data.draw(requests(fused)))
    _same(fused.decide(**req), ordinary.decide(**req))


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    req=st.builds(
        dict,
        tool=st.sampled_from(["pay", "meet", "wait", "note"]),
        args=st.none()
        | st.dictionaries(
            st.sampled_from(
                [
                    "amount",
                    "currency",
                    "to",
                    "memo",
                    "title",
                    "start",
                    "end",
                    "room",
                    "for",
                    "on",
                    "text",
                    "tags",
                    "meta",
                    "x",
                ]
            ),
            junk,
            max_size=5,
        )
        | junk,
        principal=st.none()
        | st.fixed_dictionaries(
            {"id": junk, "role": st.sampled_from(["admin", "staff", "guest", "x"]), "scopes": junk}
        )
        | junk,
        context=st.none()
        | st.dictionaries(st.sampled_from(["confidence", "channel", "now"]), junk, max_size=3)
        | st.fixed_dictionaries(
            {"confidence": st.sampled_from([0.5, 0.9, 1])},
            optional={"channel": st.sampled_from(["chat", "email"])},
        ),
    )
)
def test_fused_and_ordinary_paths_agree_on_malformed_requests(req: dict[str, Any]) -> None:
    fused, ordinary = RICH_PAIR
    _same(fused.decide(**req), ordinary.decide(**req))


def _good_pay(**args: Any) -> dict[str, Any]:
    return {
        "tool": "pay",
        "args": {"amount": 10, "currency": "USD", "to": "bob", **args},
        "principal": {"id": "u1", "role": "staff", "scopes": ["pay"]},
        "context": {"confidence": 0.9},
    }


def test_the_fused_path_is_taken_for_well_formed_requests() -> None:
    fused, _ = _engines(RICH)
    prepared = fused._prepared
    assert prepared is not None
    table = prepared.fused["pay"][2]
    assert fused.decide(**_good_pay()).code == "allowed"
    assert table, "the well-formed call did not go through the fused function"
    assert (
        "meet" in prepared.fused and "wait" in prepared.fused
    )  # converters: timestamp, duration, date


def test_templated_reasons_are_filled_per_request() -> None:
    fused, _ = _engines(RICH)
    table = fused._prepared.fused["pay"][2]  # type: ignore[union-attr]
    for currency in ("CHF", "JPY"):
        d = fused.decide(**_good_pay(currency=currency))
        assert d.reasons == [f"currency {currency} is not allowed"]
    assert any(type(out) is list for out in table.values()), (
        "the templated deny did not use the fused path"
    )


def test_limited_tools_take_the_fused_path_and_book_their_limits() -> None:
    fused, _ = _engines(RICH)
    table = fused._prepared.fused["pay"][2]  # type: ignore[union-attr]
    assert fused.decide(**_good_pay(amount=-5)).code == "denied"
    allowed = [fused.decide(**_good_pay()) for _ in range(41)]
    assert [d.code for d in allowed].count("allowed") == 40 and allowed[-1].code == "rate_limited"
    assert allowed[1].limits and allowed[1].limits[0].used == 1  # used before this call
    assert any(
        type(out) is list for out in table.values()
    )  # allows are finished with their limits booked


def test_decisions_from_the_fused_path_are_independent_objects() -> None:
    fused, _ = _engines(RICH)
    first = fused.decide(**_good_pay(amount=-1))
    first.reasons.append("mutated by the caller")
    second = fused.decide(**_good_pay(amount=-1))
    assert second.reasons == ["amount must be positive"]
    assert first.decision_id != second.decision_id


def test_lazy_time_and_id_read_like_eager_ones() -> None:
    engine = Engine.from_string(RICH)  # the system clock: `at` is filled on first read
    before = datetime.now(UTC)
    d = engine.decide(**_good_pay())
    after = datetime.now(UTC)
    assert d.at is not None and before <= d.at <= after
    assert d.at.utcoffset() == d.at.astimezone(engine._prepared.zone).utcoffset()  # type: ignore[union-attr]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", d.decision_id)
    slow = engine.decide("pay", args={"amount": "ten"})  # the ordinary path
    assert (
        re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", slow.decision_id)
        and slow.decision_id != d.decision_id
    )
    assert d.model_dump(mode="json")["at"] is not None


def test_defaults_filled_on_the_fused_path_reach_templates_and_limit_keys() -> None:
    fused, ordinary = _engines(RICH)
    meet = {
        "tool": "meet",
        "args": {
            "title": "t",
            "start": "2025-07-08T10:00:00-04:00",
            "end": "2025-07-08T11:00:00-04:00",
            "room": "closet",
        },
        "principal": {"id": "u", "role": "staff", "scopes": []},
        "context": {"confidence": 1},
    }
    d = fused.decide(**meet)
    assert d.reasons == ["room closet is too small, asked by chat"]  # context.channel's default
    _same(d, ordinary.decide(**meet))
    note = {
        "tool": "note",
        "args": {"text": "ok", "tags": []},
        "principal": {"id": "u", "role": "staff", "scopes": [], "level": 5},
        "context": {"confidence": 1},
    }
    first = fused.decide(**note)
    assert first.code == "allowed" and first.limits[0].key == "chat"
    _same(first, ordinary.decide(**note))


def test_a_pinned_now_and_the_policy_clock_agree() -> None:
    fused, _ = _engines(RICH)
    req = {
        "tool": "meet",
        "args": {
            "title": "t",
            "start": "2025-07-02T10:00:00-04:00",
            "end": "2025-07-02T11:00:00-04:00",
        },
        "principal": {"id": "u", "role": "staff", "scopes": []},
        "context": {"confidence": 1},
    }
    pinned = {**req, "context": {"confidence": 1, "now": NOW.isoformat()}}
    assert fused.decide(**req).effect == fused.decide(**pinned).effect


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    to=st.lists(
        st.sampled_from(
            [
                "a@example.com",
                "b@corp.example.com",
                "c@evil.example",
                "x@partner.io.evil",
                "@example.com",
                "example.com",
                "a@sub.example.com",
                "",
            ]
        ),
        max_size=4,
    ),
    cc=st.lists(st.sampled_from(["a@evil.example", "a@example.com"]), max_size=2),
)
def test_constant_affix_lists_compile_to_one_endswith_and_agree_with_the_reference(
    to: list[str], cc: list[str]
) -> None:
    """`L.exists(d, x.endsWith("@" + d))` over a data list becomes `x.endswith(tuple)`: same answers."""
    fused, _ = MAIL_PAIR
    assert "endswith(K" in fused.source_for("email.send")
    reference = Engine.from_string(MAIL, data=MAIL_DATA, clock=FixedClock(NOW), reference=True)
    req = {
        "tool": "email.send",
        "args": {"to": to, "subject": "s", "cc": cc},
        "principal": {"role": "sales"},
    }
    _same(fused.decide(**req), reference.decide(**req))


def test_a_pinned_now_read_by_a_template_is_a_timestamp_on_both_paths() -> None:
    text = (
        "policy n\ntool t { x: int }\ncontext { now: timestamp? }\n"
        'deny t when args.x > 1 because "too late at {context.now}"\nallow t\n'
    )
    fused, ordinary = _engines(text)
    req = {"tool": "t", "args": {"x": 5}, "context": {"now": "2025-01-02T03:04:05Z"}}
    _same(fused.decide(**req), ordinary.decide(**req))
    assert fused.decide(**req).reasons == [
        "too late at 2025-01-02T03:04:05+00:00"
    ]  # the timestamp, not the text


def test_audit_records_of_fused_decisions_match_the_decisions() -> None:
    from policylang.runtime.audit import CallbackSink

    records: list[dict[str, Any]] = []
    engine = Engine.from_string(RICH, clock=FixedClock(NOW), audit=CallbackSink(records.append))
    decisions = [
        engine.decide(**_good_pay(amount=a, currency=c))
        for a, c in ((10, "USD"), (-1, "USD"), (5, "CHF"), (5000, "EUR"))
    ]
    assert engine._prepared is not None and engine._prepared.fused["pay"][2]  # the fused path ran
    for d, record in zip(decisions, records, strict=True):
        for key, value in d.model_dump(mode="json").items():
            assert record[key] == value, key


def test_an_error_after_limits_are_booked_denies_once_instead_of_deciding_again(
    monkeypatch,
) -> None:
    fused, _ = _engines(RICH)

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(fused, "_build", broken)
    d = fused.decide(**_good_pay())
    assert (d.effect, d.code) == ("deny", "internal_error") and "boom" in d.reasons[0]
    monkeypatch.undo()
    after = fused.decide(**_good_pay())
    assert (
        after.code == "allowed" and after.limits[0].used == 1
    )  # booked once by the failed call, not twice


_wrong = st.sampled_from(
    [
        None,
        True,
        0,
        1.5,
        float("nan"),
        "text",
        "2025-13-45T00:00:00Z",
        [],
        ["x", 1],
        {},
        {"k": "v"},
        2**70,
    ]
)


@pytest.mark.parametrize("pair", [RICH_PAIR, MAIL_PAIR], ids=["rich", "mail"])
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), value=_wrong)
def test_one_wrong_value_in_a_well_formed_request_is_judged_alike(
    pair: tuple[Engine, Engine], data: Any, value: Any
) -> None:
    """The near misses: every field right but one, which has a wrong type or an unreadable value."""
    fused, ordinary = pair
    req = _unpinned(data.draw(requests(fused)))
    part = data.draw(st.sampled_from([k for k in ("args", "principal", "context") if req.get(k)]))
    target = dict(req[part])
    target[data.draw(st.sampled_from(sorted(target)))] = value
    req = {**req, part: target}
    _same(fused.decide(**req), ordinary.decide(**req))
