"""Lint snapshots: each ``lint_cases/*.policy`` linted as text must match its ``.expected``.

Regenerate after an intended change with ``POLICYLANG_UPDATE_SNAPSHOTS=1 pytest tests/cli``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from policylang.cli.main import main

CASES = Path(__file__).parent / "lint_cases"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("*.policy")))
def test_lint_snapshot(
    case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CASES)  # the printed path is the bare file name
    monkeypatch.setenv("NO_COLOR", "1")
    code = main(["lint", case])
    out = capsys.readouterr().out
    expected = CASES / case.replace(".policy", ".expected")
    if os.environ.get("POLICYLANG_UPDATE_SNAPSHOTS"):
        expected.write_text(out, encoding="utf-8")
    assert out == expected.read_text(encoding="utf-8")
    assert code == (1 if "error:" in out else 0)
