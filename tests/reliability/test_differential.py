"""Differential: the compiled evaluator against the reference interpreter, on generated
(policy, request) pairs and on a YAML conformance corpus with a positive and a negative case
per language construct (tests/reliability/conformance/*.yaml)."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import THOROUGH, scale

from policylang import Engine
from policylang.runtime.clock import FixedClock

HERE = Path(__file__).resolve().parent
_SPEC = importlib.util.spec_from_file_location(
    "_reliability_property_generators", HERE.parent / "core" / "test_properties.py"
)
props = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(props)

NOW = datetime(2025, 6, 13, 12, 0, tzinfo=UTC)  # a Friday


def outcome(d):
    return (
        d.effect.value,
        d.code,
        sorted(r.id for r in d.rules),
        sorted(str(e.rule) for e in d.errors),
    )


# ---------------------------------------------------------------- generated pairs

REQUESTS_PER_POLICY = 10
POLICIES = scale(2_000, 100_000) // REQUESTS_PER_POLICY


@settings(
    max_examples=POLICIES,
    deadline=None,
    derandomize=not THOROUGH,
    suppress_health_check=list(HealthCheck),
)
@given(
    props.policy(),
    st.lists(props.requests, min_size=REQUESTS_PER_POLICY, max_size=REQUESTS_PER_POLICY),
    st.lists(
        st.sampled_from(["t1", "t2", "u.x"]),
        min_size=REQUESTS_PER_POLICY,
        max_size=REQUESTS_PER_POLICY,
    ),
)
def test_compiled_and_reference_agree_on_generated_pairs(pol, reqs, tools):
    text = props.text_of(*pol)
    compiled = Engine.from_string(text, clock=FixedClock(NOW))
    reference = Engine.from_string(text, reference=True, clock=FixedClock(NOW))
    for args, tool in zip(reqs, tools, strict=True):
        assert outcome(compiled.decide(tool, args)) == outcome(reference.decide(tool, args)), (
            text,
            tool,
            args,
        )


# ---------------------------------------------------------------- conformance corpus


def _load(name: str) -> list[dict]:
    rows = yaml.safe_load((HERE / "conformance" / name).read_text("utf-8"))
    return [{({True: "yes", False: "no"}.get(k, k)): v for k, v in row.items()} for row in rows]


EXPRS = _load("expressions.yaml")
DECLS = _load("declarations.yaml")


def _engines(text: str, data: dict | None = None) -> list[Engine]:
    return [
        Engine.from_string(text, data=data, clock=FixedClock(NOW)),
        Engine.from_string(text, data=data, clock=FixedClock(NOW), reference=True),
    ]


@pytest.mark.parametrize("row", EXPRS, ids=[r["construct"] for r in EXPRS])
def test_conformance_expressions(row):
    text = f"policy conf\ndefault allow\ndeny t when {row['when']}\n"
    checked = 0
    for engine in _engines(text):
        for key, want in (
            ("yes", ("deny", "denied")),
            ("no", ("allow", "default_allow")),
            ("err", ("deny", "evaluation_error")),
        ):
            if key not in row:
                continue
            args = row[key]
            d = engine.decide("t", args)
            assert (d.effect.value, d.code) == want, f"{key}: {d.message}"
            checked += 1
    assert checked >= 4 and len({"yes", "no", "err"} & set(row)) >= 2


@pytest.mark.parametrize("row", DECLS, ids=[r["construct"] for r in DECLS])
def test_conformance_policies(row):
    results = []
    for engine in _engines(row["policy"], row.get("data")):
        got = []
        for case in row["cases"]:
            d = engine.decide(
                case.get("tool", "t"),
                case.get("args", {}),
                case.get("principal", {}),
                case.get("context", {}),
            )
            assert d.effect.value == case["effect"], (case, d.message)
            if "code" in case:
                assert d.code == case["code"], (case, d.message)
            if "rules" in case:
                assert [r.id for r in d.rules] == case["rules"], (case, d.message)
            if "errors" in case:
                assert [e.rule for e in d.errors] == case["errors"], (case, d.message)
            if "reasons" in case:
                assert d.reasons == case["reasons"], (case, d.message)
            got.append(outcome(d))
        results.append(got)
    assert results[0] == results[1]
    effects = {c["effect"] for c in row["cases"]}
    assert len(effects) >= 2, "every construct needs a positive and a negative case"


def test_corpus_covers_the_language():
    text = " ".join(r["when"] for r in EXPRS) + " ".join(r["policy"] for r in DECLS)
    for needle in [
        "+",
        " - ",
        "*",
        " / ",
        "%",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        " in ",
        "&&",
        "||",
        "!",
        "?",
        "has(",
        ".all(",
        ".exists(",
        "exists_one",
        ".filter(",
        ".map(",
        "startsWith",
        "endsWith",
        "contains",
        "matches",
        "lowerAscii",
        "upperAscii",
        "trim",
        "split",
        "replace",
        "indexOf",
        "lastIndexOf",
        "substring",
        "charAt",
        "join",
        "urls(",
        "host(",
        "domain(",
        "emails(",
        "regex_escape",
        "weekday",
        "hour(",
        "minute(",
        "date(",
        "today(",
        "is_holiday",
        "business_hours",
        "getHours",
        "now",
        "limit",
        "sum(",
        "unless",
        "because",
        "{{",
        "*",
        '"USD" | "EUR"',
        "?,",
        "| null",
        "= []",
        "data.",
        "def ",
        "session",
        "timezone",
    ]:
        assert needle in text, needle
