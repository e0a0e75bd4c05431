"""`policylang replay --fail-on {open,loosen,change}`: CI can fail on any loosening, not only on allow.

The candidate policy below gives each amount a known effect (deny < 10 <= confirm < 100 <=
allow); the audit records carry any recorded effect, so every kind of flip is generated and
the counts and exit code are checked against the order deny < confirm < allow.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from policylang.cli.main import main

CANDIDATE = (
    "tool pay { amount: number }\nprincipal { id: string }\n"
    'allow pay when args.amount >= 10 because "small enough"\n'
    'confirm pay when args.amount >= 10 && args.amount < 100 because "check it"\n'
    'deny pay when args.amount < 10 because "dust"\n'
)
RANK = {"deny": 0, "confirm": 1, "allow": 2}
EFFECTS = list(RANK)


def candidate_effect(amount: int) -> str:
    return "deny" if amount < 10 else "confirm" if amount < 100 else "allow"


def _write(tmp: Path, records: list[tuple[int, str]]) -> tuple[Path, Path]:
    policy = tmp / "new.policy"
    policy.write_text(CANDIDATE)
    log = tmp / "audit.jsonl"
    lines = [
        json.dumps(
            {
                "at": "2025-06-11T10:00:00Z",
                "tool": "pay",
                "args": {"amount": amount},
                "principal_id": "u1",
                "principal": {"id": "u1"},
                "context": {},
                "effect": effect,
            }
        )
        for amount, effect in records
    ]
    log.write_text("\n".join(lines) + "\n")
    return log, policy


def _replay(log: Path, policy: Path, *extra: str) -> int:
    return main(["replay", str(log), "--policy", str(policy), *extra])


def test_candidate_effects_are_what_the_model_says(tmp_path, capsys):
    # Guards the model the property relies on: recorded == candidate means nothing changes.
    log, policy = _write(tmp_path, [(a, candidate_effect(a)) for a in (1, 9, 10, 99, 100, 5000)])
    assert _replay(log, policy, "--json", "--fail-on", "change") == 0
    assert json.loads(capsys.readouterr().out)["changed"] == 0


def test_deny_to_confirm_passes_by_default_but_fails_on_loosen(tmp_path, capsys):
    log, policy = _write(tmp_path, [(50, "deny")])
    assert _replay(log, policy) == 0
    out = capsys.readouterr().out
    assert "1 loosened, 0 tightened" in out
    assert _replay(log, policy, "--fail-on", "loosen") == 1
    assert "fails --fail-on loosen" in capsys.readouterr().out
    assert _replay(log, policy, "--fail-on", "loosen", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["loosened"], report["tightened"], report["opened"]) == (1, 0, 0)
    assert report["fail_on"] == "loosen"


def test_tightening_fails_only_on_change(tmp_path, capsys):
    log, policy = _write(tmp_path, [(5, "confirm"), (50, "allow")])
    assert _replay(log, policy) == 0
    assert _replay(log, policy, "--fail-on", "loosen") == 0
    assert _replay(log, policy, "--fail-on", "change") == 1
    capsys.readouterr()
    assert _replay(log, policy, "--fail-on", "change", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["loosened"], report["tightened"]) == (0, 2)


def test_unknown_fail_on_is_a_usage_error(tmp_path, capsys):
    log, policy = _write(tmp_path, [(5, "deny")])
    assert _replay(log, policy, "--fail-on", "sometimes") == 2
    assert "--fail-on" in capsys.readouterr().err


def test_a_corrupt_recorded_effect_moving_to_confirm_counts_as_loosening(tmp_path, capsys):
    log, policy = _write(tmp_path, [(50, "maybe")])
    assert _replay(log, policy, "--fail-on", "loosen") == 1


@given(
    records=st.lists(
        st.tuples(st.sampled_from([1, 9, 10, 50, 99, 100, 5000]), st.sampled_from(EFFECTS)),
        max_size=8,
    ),
    fail_on=st.sampled_from(["open", "loosen", "change"]),
)
def test_exit_code_and_counts_follow_the_order(tmp_path_factory, records, fail_on):
    tmp = tmp_path_factory.mktemp("replay")
    log, policy = _write(tmp, records)
    moves = [(RANK[old], RANK[candidate_effect(a)]) for a, old in records]
    loosened = sum(new > old for old, new in moves)
    tightened = sum(new < old for old, new in moves)
    opened = sum(new > old and new == RANK["allow"] for old, new in moves)
    expected_fail = {
        "open": opened,
        "loosen": loosened,
        "change": loosened + tightened,
    }[fail_on] > 0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = _replay(log, policy, "--json", "--fail-on", fail_on)
    report = json.loads(buf.getvalue())
    assert code == (1 if expected_fail else 0)
    assert (report["loosened"], report["tightened"], report["opened"]) == (
        loosened,
        tightened,
        opened,
    )
    assert report["changed"] == loosened + tightened
