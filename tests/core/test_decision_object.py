"""The Decision keeps the pydantic surface users rely on, though it is a slotted class."""

from __future__ import annotations

import json

import pydantic
import pytest

from policylang import Decision, Effect, Engine

POLICY = """
policy d
tool pay { amount: int }
deny pay when args.amount < 0 because "no negative amounts"
allow pay when args.amount < 100
"""


def test_keyword_construction_validates_like_a_model() -> None:
    d = Decision(effect="allow", tool="t", code="allowed", reasons=["ok"])
    assert d.effect is Effect.ALLOW and d.reasons == ["ok"] and d.rules == [] and d.message == ""
    with pytest.raises(pydantic.ValidationError):
        Decision(effect="maybe", tool="t", code="x")


def test_engine_decisions_serialise_and_validate_back() -> None:
    engine = Engine.from_string(POLICY)
    for amount in (-1, 5, 500):
        d = engine.decide("pay", args={"amount": amount})
        data = json.loads(d.model_dump_json())
        assert data == d.model_dump(mode="json")
        assert data["message"] == d.message and data["decision_id"] == d.decision_id
        back = Decision.model_validate(data)
        assert back == d and Decision.model_validate(d) == d
        assert d.model_copy(update={"code": "other"}).code == "other" and d.code != "other"


def test_a_decision_is_a_field_of_other_models() -> None:
    class Envelope(pydantic.BaseModel):
        decision: Decision

    d = Engine.from_string(POLICY).decide("pay", args={"amount": -3})
    env = Envelope(decision=d)
    again = Envelope.model_validate_json(env.model_dump_json())
    assert again.decision == d
    assert "Decision" in json.dumps(Envelope.model_json_schema()) or "effect" in json.dumps(
        Envelope.model_json_schema()
    )


def test_fields_are_writable_and_lists_are_the_callers_own() -> None:
    engine = Engine.from_string(POLICY)
    d = engine.decide("pay", args={"amount": -1})
    assert d.message == "pay denied: no negative amounts"
    d.reasons.append("noted by the caller")
    d.message = "custom"
    d.policy = "renamed"
    e = engine.decide("pay", args={"amount": -1})
    assert e.reasons == ["no negative amounts"] and e.message == "pay denied: no negative amounts"
    assert e.policy == "d" and d.policy == "renamed" and d.message == "custom"
    assert "renamed" in repr(d) and str(e) == e.message


def test_decisions_pickle_and_copy() -> None:
    import copy
    import pickle

    d = Engine.from_string(POLICY).decide("pay", args={"amount": -1})
    for clone in (pickle.loads(pickle.dumps(d)), copy.copy(d), copy.deepcopy(d)):
        assert clone == d and clone.message == d.message and clone.decision_id == d.decision_id
