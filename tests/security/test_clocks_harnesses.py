"""The trusted harnesses give the engine its clock from the time they replay.

Windows no longer follow ``context.now``, so ``policylang replay`` sets the
engine's clock to each audit record's time, and example cases set it from the
case's time (``given.now``, a step's ``now`` / ``advance``, or the
``context.now`` a step pins). Also: a call refused after booking because the
session store failed gives its slot back.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.cli.main import main
from policylang.runtime.audit import JsonlSink
from policylang.runtime.clock import FixedClock
from policylang.runtime.decision import Effect
from policylang.runtime.sessions import MemorySessionStore
from policylang.testing.cases import Case, run_case

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
POLICY = "policy h\ntool pay { amount: number }\nprincipal { id: string }\nallow pay\nlimit pay to 2 per 1h by principal.id\n"


def _record(tmp_path: Path, gaps: list[float]) -> tuple[Path, list[str]]:
    (tmp_path / "p.policy").write_text(POLICY)
    log = tmp_path / "audit.jsonl"
    clock = FixedClock(T0)
    engine = Engine.from_path(tmp_path / "p.policy", audit=JsonlSink(log), clock=clock)
    effects = []
    for gap in gaps:
        clock.advance(gap)
        effects.append(engine.decide("pay", args={"amount": 1}, principal={"id": "u"}).effect.value)
    return log, effects


@given(st.lists(st.sampled_from([0.0, 60.0, 1800.0, 3601.0]), min_size=1, max_size=8))
def test_replay_of_the_same_policy_changes_nothing_whatever_the_spacing(gaps: list[float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log, _ = _record(Path(tmp), gaps)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert (
                main(["replay", str(log), "--policy", str(Path(tmp) / "p.policy"), "--json"]) == 0
            )
        report = json.loads(out.getvalue())
        assert report["records"] == len(gaps) and report["changed"] == 0, report


def test_replay_sees_calls_an_hour_apart_as_an_hour_apart(tmp_path: Path, capsys: Any) -> None:
    log, effects = _record(tmp_path, [3601.0] * 4)
    assert effects == ["allow"] * 4
    assert main(["replay", str(log), "--policy", str(tmp_path / "p.policy")]) == 0
    assert "0 would change" in capsys.readouterr().out


def _case(spec: dict[str, Any]) -> Case:
    return Case("seq", "c.cases.yaml", 0, spec)


def _req(now: str | None = None) -> dict[str, Any]:
    req: dict[str, Any] = {"tool": "pay", "args": {"amount": 1}, "principal": {"id": "u"}}
    if now is not None:
        req["context"] = {"now": now}
    return req


def test_case_steps_that_pin_context_now_move_the_case_clock() -> None:
    engine = Engine.from_string(POLICY)
    apart = [{"request": _req(f"2026-03-04T{10 + i}:00:00Z"), "want": "allow"} for i in range(4)]
    assert run_case(engine, _case({"steps": apart})).ok
    together = [{"request": _req("2026-03-04T10:00:00Z"), "want": "allow"} for _ in range(2)]
    together.append(
        {"request": _req("2026-03-04T10:00:00Z"), "want": "deny", "want_code": "rate_limited"}
    )
    assert run_case(engine, _case({"steps": together})).ok
    advanced = [
        {"request": _req(), "want": "allow"},
        {"request": _req(), "want": "allow"},
        {"advance": "1h1s", "request": _req(), "want": "allow"},
    ]
    assert run_case(engine, _case({"given": {"now": "2026-03-04T10:00:00Z"}, "steps": advanced})).ok


def test_counters_given_to_a_case_fill_the_limit_the_engine_books() -> None:
    engine = Engine.from_string(POLICY.replace("limit pay", "rule per_user: limit pay"))
    spec = {
        "given": {"counters": [{"limit": "per_user", "key": " U ", "used": 2}]},
        "request": _req(),
        "want": "deny",
        "want_code": "rate_limited",
    }
    assert run_case(engine, _case(spec)).ok
    unnamed = Engine.from_string(POLICY, path="p.policy")
    spec["given"] = {"counters": {"p.policy:5": {"u": 2}}}
    assert run_case(unnamed, _case(spec)).ok


class _BrokenAppend(MemorySessionStore):
    def append(self, *args: Any) -> None:
        raise OSError("session disk full")


def test_a_call_refused_because_the_session_store_failed_gives_its_slot_back() -> None:
    text = POLICY.replace(
        "policy h\n", "policy h\ncontext { sid: string }\nsession by context.sid\n"
    )
    engine = Engine.from_string(text, clock=FixedClock(T0), sessions=_BrokenAppend())
    call = {"args": {"amount": 1}, "principal": {"id": "u"}, "context": {"sid": "s"}}
    for _ in range(4):
        assert engine.decide("pay", **call).code == "store_unavailable"
    engine.sessions = MemorySessionStore()
    assert [engine.decide("pay", **call).effect for _ in range(3)] == [
        Effect.ALLOW,
        Effect.ALLOW,
        Effect.DENY,
    ]


def test_counters_for_a_joined_key_are_given_as_its_parts() -> None:
    text = POLICY.replace("by principal.id", 'by principal.id + "/" + args.to').replace(
        "amount: number", 'amount: number, to: string = ""'
    )
    engine = Engine.from_string(text)
    request = {"tool": "pay", "args": {"amount": 1, "to": "b/c"}, "principal": {"id": "a"}}
    spec: dict[str, Any] = {
        "given": {"counters": [{"limit": "<string>:5", "key": ["A", "b/c"], "used": 2}]},
        "request": request,
        "want": "deny",
    }
    assert run_case(engine, _case(spec)).ok
    spec["given"] = {"counters": [{"limit": "<string>:5", "key": ["a/b", "c"], "used": 2}]}
    spec["want"] = "allow"  # another key: the parts differ, though they join to the same text
    assert run_case(engine, _case(spec)).ok
