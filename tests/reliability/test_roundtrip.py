"""Round trip of the formatter over generated ASTs and messy texts: parse(format(t)) == parse(t),
formatting is idempotent, and every comment survives. Reuses the generators of
tests/language/test_formatter.py (loaded by path, so its tests are not collected twice)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import THOROUGH, scale

from policylang.language.formatter import format_file, format_source
from policylang.language.parser import parse

_SPEC = importlib.util.spec_from_file_location(
    "_reliability_formatter_generators",
    Path(__file__).resolve().parents[1] / "language" / "test_formatter.py",
)
gens = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(gens)

EXAMPLES = scale(500, 10_000)  # 2,000 in CI costs ~30 s of Lark parsing on 2 cores
BUDGET = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not THOROUGH,
    suppress_health_check=list(HealthCheck),
)


def _comments(text: str) -> list[str]:
    return sorted(c.text.rstrip() for c in parse(text).comments)


@BUDGET
@given(gens.files)
def test_generated_asts_round_trip(pf):
    text = format_file(pf)
    assert parse(text) == pf
    again = format_source(text)
    assert again == text
    assert parse(again) == pf


@settings(
    max_examples=max(EXAMPLES // 4, 100),
    deadline=None,
    derandomize=not THOROUGH,
    suppress_health_check=list(HealthCheck),
)
@given(gens.files, st.randoms(use_true_random=False))
def test_messy_texts_with_comments_round_trip(pf, rnd: random.Random):
    src = gens.Messy(rnd).file(pf)
    out = format_source(src)
    assert parse(out) == parse(src) == pf
    assert format_source(out) == out
    assert _comments(out) == _comments(src)


def test_shipped_rules_round_trip():
    for path in sorted((Path(__file__).resolve().parents[2] / "rules").glob("*.policy")):
        src = path.read_text("utf-8")
        out = format_source(src, str(path))
        assert parse(out) == parse(src), path
        assert format_source(out) == out, path
        assert _comments(out) == _comments(src), path
