"""`policylang audit verify` and `policylang replay`, end to end on real files."""

from __future__ import annotations

import json
from pathlib import Path

from policylang import Engine
from policylang.cli.main import main
from policylang.runtime.audit import JsonlSink

OLD = "tool pay { amount: number }\nprincipal { id: string }\nallow pay when args.amount < 100\n"
NEW_LOOSER = OLD.replace("< 100", "< 1000")
NEW_STRICTER = OLD.replace("< 100", "< 10")


def _log(tmp_path: Path) -> Path:
    (tmp_path / "old.policy").write_text(OLD)
    log = tmp_path / "audit.jsonl"
    engine = Engine.from_path(tmp_path / "old.policy", audit=JsonlSink(log))
    for amount in (5, 50, 500, 5000):
        engine.decide(
            "pay",
            args={"amount": amount},
            principal={"id": "u1"},
            context={"now": "2025-06-11T10:00:00Z"},
        )
    return log


def test_verify_accepts_an_untouched_log_and_rejects_an_edit(tmp_path, capsys):
    log = _log(tmp_path)
    assert main(["audit", "verify", str(log)]) == 0
    assert "4 records verified" in capsys.readouterr().out
    lines = log.read_text().splitlines()
    lines[2] = lines[2].replace('"effect":"deny"', '"effect":"allow"')
    log.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", str(log)]) == 1
    assert "line 3" in capsys.readouterr().out


def test_verify_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["audit", "verify", str(tmp_path / "nope.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_replay_flags_a_change_that_opens_a_door(tmp_path, capsys):
    log = _log(tmp_path)
    (tmp_path / "new.policy").write_text(NEW_LOOSER)
    assert main(["replay", str(log), "--policy", str(tmp_path / "new.policy"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == 4
    assert report["opened"] == 1
    assert report["flips"] == [{"tool": "pay", "from": "deny", "to": "allow", "count": 1}]
    assert report["examples"]["deny->allow"][0]["args"] == {"amount": 500}


def test_replay_of_a_stricter_policy_reports_but_passes(tmp_path, capsys):
    log = _log(tmp_path)
    (tmp_path / "new.policy").write_text(NEW_STRICTER)
    assert main(["replay", str(log), "--policy", str(tmp_path / "new.policy")]) == 0
    out = capsys.readouterr().out
    assert "1 would change, 0 of them to allow" in out
    assert "allow -> deny" in out


def test_replay_uses_the_recorded_time(tmp_path, capsys):
    policy = (
        "tool pay { amount: number }\nprincipal { id: string }\n"
        'allow pay when now < timestamp("2025-07-01T00:00:00Z")\n'
    )
    (tmp_path / "p.policy").write_text(policy)
    log = tmp_path / "a.jsonl"
    engine = Engine.from_path(tmp_path / "p.policy", audit=JsonlSink(log))
    engine.decide(
        "pay", args={"amount": 1}, principal={"id": "u"}, context={"now": "2025-06-11T10:00:00Z"}
    )
    # Replayed today, the rule would deny; replayed at the recorded time, nothing changes.
    assert main(["replay", str(log), "--policy", str(tmp_path / "p.policy")]) == 0
    assert "0 would change" in capsys.readouterr().out
