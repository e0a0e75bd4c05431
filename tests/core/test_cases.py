"""Decision cases kept as data (tests/core/cases/*.yaml), run on both evaluators.

Each file: ``note``, ``policy``, optional ``data``, and ``requests`` with
``tool``, ``args``, ``principal``, ``context``, ``want`` (allow|deny|confirm) and
optionally ``want_code`` and ``want_rules`` (the ids of the rules behind it).
Every request runs through the compiled engine and the reference interpreter;
both must give the wanted effect, and the same rule ids and errored rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from policylang import Engine

CASES = Path(__file__).parent / "cases"
FILES = sorted(CASES.glob("*.yaml"))


def _requests():
    for path in FILES:
        spec = yaml.safe_load(path.read_text("utf-8"))
        assert {"note", "policy", "requests"} <= set(spec), path.name
        for i, req in enumerate(spec["requests"]):
            yield pytest.param(spec, req, id=f"{path.stem}[{i}]")


def test_there_are_enough_cases():
    assert len(FILES) >= 12
    assert sum(len(yaml.safe_load(p.read_text("utf-8"))["requests"]) for p in FILES) >= 40


_engines: dict[tuple[str, bool], Engine] = {}


def _engine(spec: dict, reference: bool) -> Engine:
    key = (spec["policy"], reference)
    if key not in _engines:  # fresh per file is enough: the cases have no limits
        _engines[key] = Engine.from_string(
            spec["policy"],
            data=spec.get("data") or {},
            reference=reference,
            path=f"{spec['note'][:20]}.policy",
        )
    return _engines[key]


@pytest.mark.parametrize(("spec", "req"), list(_requests()))
def test_case(spec, req):
    assert req["want"] in ("allow", "deny", "confirm")
    outcomes = []
    for reference in (False, True):
        d = _engine(spec, reference).decide(
            req["tool"],
            args=req.get("args"),
            principal=req.get("principal"),
            context=req.get("context"),
        )
        label = "reference" if reference else "compiled"
        assert d.effect.value == req["want"], f"{label}: {d.message}"
        if "want_code" in req:
            assert d.code == req["want_code"], f"{label}: {d.code}: {d.message}"
        ids = sorted(r.id for r in d.rules)
        if "want_rules" in req:
            assert ids == sorted(req["want_rules"]), f"{label}: {ids}"
        outcomes.append((d.effect, d.code, ids, sorted(str(e.rule) for e in d.errors)))
    assert outcomes[0] == outcomes[1]
