"""Every example in the documentation parses with the real parser.

Fenced blocks tagged ``policy`` in ``docs/*.md`` and ``README.md`` are complete
files (statement lists) and must parse with :func:`parse`; blocks tagged
``cel`` are single expressions and must parse with :func:`parse_expr`. Other
blocks (``text``, ``python``, ``json``, ...) are not checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from policylang.errors import PolicySyntaxError
from policylang.language.parser import parse, parse_expr

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


def _doc_files() -> list[Path]:
    files = sorted((ROOT / "docs").glob("*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        files.append(readme)
    return files


def _blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for path in _doc_files():
        text = path.read_text("utf-8")
        for m in FENCE.finditer(text):
            if m.group("lang") != lang:
                continue
            line = text.count("\n", 0, m.start()) + 2  # first line of the body
            indent = m.group("indent")
            body = "\n".join(
                ln[len(indent) :] if ln.startswith(indent) else ln
                for ln in m.group("body").splitlines()
            )
            out.append((f"{path.relative_to(ROOT)}:{line}", body))
    return out


POLICY_BLOCKS = _blocks("policy")
CEL_BLOCKS = _blocks("cel")


def test_the_docs_have_examples() -> None:
    assert len(POLICY_BLOCKS) >= 10


@pytest.mark.parametrize(("where", "body"), POLICY_BLOCKS, ids=[w for w, _ in POLICY_BLOCKS])
def test_policy_example_parses(where: str, body: str) -> None:
    try:
        parse(body, where)
    except PolicySyntaxError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"example at {where} does not parse:\n{exc}")


@pytest.mark.parametrize(("where", "body"), CEL_BLOCKS, ids=[w for w, _ in CEL_BLOCKS])
def test_cel_example_parses(where: str, body: str) -> None:
    try:
        parse_expr(body, where)
    except PolicySyntaxError as exc:  # pragma: no cover
        pytest.fail(f"expression at {where} does not parse:\n{exc}")


def test_diagnostic_code_table_matches_the_registry():
    """docs/language.md lists exactly the codes policylang can report, with their summaries."""
    from policylang.language.codes import CODES

    text = (ROOT / "docs" / "language.md").read_text("utf-8")
    for code, c in CODES.items():
        assert f"| `{code}` | {c.name} | {c.severity} | {c.summary} |" in text, code
