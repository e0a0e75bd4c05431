"""Untrusted YAML: alias bombs and deep nesting are refused fast; a data file means what it says.

Every YAML read goes through policylang.yamlsafe. Properties: any alias bomb
(generated width, depth, style) is refused in well under a second with a
line and column, wherever the file is read (data file, cases file, eval
request, tool definitions); bounded sharing still works; YAML 1.1 traps in
data files stay strings and decide on both the fused and the ordinary path;
generated string lists round-trip; errors never quote the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from policylang import Engine
from policylang.errors import PolicyLoadError
from policylang.runtime.loader import load_data_file
from policylang.testing.cases import CaseFileError, load_cases
from policylang.yamlsafe import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    StructuredTextError,
    dump_yaml,
    load_json,
    load_yaml,
)

ANCHOR = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)


def _bomb(width: int, depth: int, names: list[str], flow: bool, leaf: str) -> str:
    """``depth`` levels, each a list (or map) of ``width`` aliases of the level below."""
    lines = [f"{names[0]}: &{names[0]} {leaf}"]
    for i in range(1, depth + 1):
        ref = f"*{names[i - 1]}"
        if flow:
            body = "[" + ", ".join([ref] * width) + "]"
        else:
            body = "{" + ", ".join(f"k{j}: {ref}" for j in range(width)) + "}"
        lines.append(f"{names[i]}: &{names[i]} {body}")
    return "\n".join(lines) + "\n"


def _deep_enough(width: int) -> int:
    """The fewest levels at which ``width`` aliases per level repeat over 4x the budget."""
    depth = 1
    while width**depth <= 4 * MAX_ALIAS_NODES:
        depth += 1
    return depth


bombs = st.builds(
    lambda w, extra, prefix, flow, leaf: (
        w,
        _bomb(w, _deep_enough(w) + extra, [f"{prefix}{i}" for i in range(25)], flow, leaf),
    ),
    st.integers(2, 12),
    st.integers(0, 3),
    ANCHOR,
    st.booleans(),
    st.sampled_from(['"lol"', "[lol, lol]", "{a: lol}", "x"]),
)


@given(bombs, st.sampled_from(["core", "data"]))
def test_alias_bombs_are_refused_fast(bomb: tuple[int, str], schema: str) -> None:
    _, text = bomb
    with pytest.raises(StructuredTextError) as err:
        load_yaml(text, schema)  # type: ignore[arg-type]
    # the refusal is the proof of the bound: an unbounded reader would expand the bomb instead
    assert "alias" in err.value.message and err.value.line >= 2 and err.value.column >= 1


@given(st.integers(1, 4), st.integers(1, 3), ANCHOR)
def test_bounded_sharing_still_reads_as_written(width: int, depth: int, prefix: str) -> None:
    names = [f"{prefix}{i}" for i in range(4)]
    text = _bomb(width, depth, names, True, "[lol]")
    value = load_yaml(text)
    expected: Any = ["lol"]
    for i in range(1, depth + 1):
        expected = [expected] * width
        assert value[names[i]] == expected
    assert value == yaml.safe_load(text)  # the same values PyYAML builds, bounded


def test_the_493_byte_file_from_the_report(tmp_path: Path) -> None:
    """The billion-laughs cases file: refused as cases, as data, as an eval request."""
    text = _bomb(9, 9, [f"l{i}" for i in range(10)], True, '"lol"')
    assert len(text) < 600
    cases = tmp_path / "p.cases.yaml"
    cases.write_text(text, encoding="utf-8")
    with pytest.raises(CaseFileError, match=r"line \d+, column \d+: aliases repeat"):
        load_cases(cases)
    data = tmp_path / "blocked.yaml"
    data.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyLoadError) as err:
        load_data_file(data)
    d = err.value.diagnostics[0]
    assert d.code == "PL004" and d.span.line > 1 and "alias" in d.message
    from policylang.cli.common import CliError, parse_structured
    from policylang.schema.jsonschema import SchemaImportError, parse_document

    with pytest.raises(CliError, match="alias"):
        parse_structured(text, "the request")
    with pytest.raises(SchemaImportError):
        parse_document(text)


@given(ANCHOR, st.booleans())
def test_an_alias_inside_its_own_anchor_is_refused(name: str, mapping: bool) -> None:
    text = f"&{name} {{k: *{name}}}" if mapping else f"&{name} [x, *{name}]"
    with pytest.raises(StructuredTextError, match="contains it"):
        load_yaml(text)


@given(st.integers(1, MAX_DEPTH + 40), st.booleans())
@example(MAX_DEPTH, False)
@example(MAX_DEPTH, True)
@example(MAX_DEPTH + 1, False)
def test_nesting_is_bounded(depth: int, flow_map: bool) -> None:
    opener, closer = ("{k: ", "}") if flow_map else ("[", "]")
    text = opener * depth + "x" + closer * depth
    if depth <= MAX_DEPTH:
        value = load_yaml(text)
        for _ in range(depth):
            value = value["k"] if flow_map else value[0]
        assert value == "x"
    else:
        with pytest.raises(StructuredTextError, match="nest more than"):
            load_yaml(text)


# ---- meaning: YAML 1.1 traps stay strings in data files

_TRAPS_11 = st.one_of(
    st.sampled_from(
        [
            "y",
            "Y",
            "n",
            "N",
            "yes",
            "Yes",
            "YES",
            "no",
            "No",
            "NO",
            "on",
            "On",
            "ON",
            "off",
            "Off",
            "OFF",
            "true",
            "True",
            "TRUE",
            "false",
            "False",
            "FALSE",
            "~",
            "null",
            "Null",
            "NULL",
            ".inf",
            "-.inf",
            "+.INF",
            ".nan",
            ".NaN",
            "0b1010",
            "1_000",
            "<<",
            "=",
        ]
    ),
    st.from_regex(r"0[0-7]{1,5}", fullmatch=True),  # octal in 1.1
    st.from_regex(r"[1-9][0-9]?(:[0-5][0-9]){1,2}", fullmatch=True),  # base 60 in 1.1
    st.from_regex(r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])", fullmatch=True),
    st.from_regex(r"20[0-9]{2}-0[1-9]-1[0-9][T ]1[0-9]:[0-5][0-9]:[0-5][0-9]Z?", fullmatch=True),
    st.from_regex(r"0x[0-9a-fA-F]{1,6}", fullmatch=True),
    st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,3})?([eE][-+]?[0-9]{1,2})?", fullmatch=True),
)


@given(st.lists(_TRAPS_11, min_size=1, max_size=12))
def test_plain_scalars_in_data_files_stay_strings(values: list[str]) -> None:
    text = "".join(f"- {v}\n" for v in values)
    assert load_yaml(text, "data") == values
    as_map = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))
    assert load_yaml(as_map, "data") == {f"k{i}": v for i, v in enumerate(values)}


POLICY = """
policy blocklist
default allow
tool ship { country: string }
deny ship when args.country in data.blocked because "blocked destination"
"""


@pytest.mark.parametrize("fused", [True, False])
@given(data=st.data())
def test_a_deny_list_of_trap_values_denies_them(fused: bool, data: st.DataObject) -> None:
    """`NO`, `off`, `0644` in a deny-list deny exactly those strings, on both paths."""
    import tempfile

    values = data.draw(st.lists(_TRAPS_11, min_size=1, max_size=6, unique=True))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.policy").write_text(POLICY, encoding="utf-8")
        (folder / "blocked.yaml").write_text("".join(f"- {v}\n" for v in values), encoding="utf-8")
        engine = Engine.from_path(folder)
    if not fused:
        assert engine._prepared is not None
        engine._prepared.fused.clear()
    for v in values:
        d = engine.decide("ship", {"country": v})
        assert d.effect.value == "deny", (v, d.code, d.reasons)
    other = data.draw(st.text(min_size=1, max_size=5).filter(lambda s: s not in values))
    assert engine.decide("ship", {"country": other}).effect.value == "allow"


def test_explicit_tags_type_data_values() -> None:
    text = (
        "- !!int 0644\n- !!int 0x1F\n- !!bool true\n- !!float 1.5\n- !!null ''\n"
        "- !!str 5\n- !!timestamp 2025-12-24\n- ''\n-\n"
    )
    from datetime import date

    assert load_yaml(text, "data") == [644, 31, True, 1.5, None, "5", date(2025, 12, 24), "", None]
    for bad, why in [
        ("!!bool yes", "true or false"),
        ("!!int 1_000", "!!int"),
        ("!!float x", "!!float"),
        ("!!null x", "!!null"),
        ("!!timestamp x", "date"),
    ]:
        with pytest.raises(StructuredTextError, match=why):
            load_yaml(f"- {bad}\n", "data")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("500", 500),
        ("-3", -3),
        ("0644", 644),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".inf", math.inf),
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("yes", "yes"),
        ("off", "off"),
        ("NO", "NO"),
        ("1:20:30", "1:20:30"),
        ("2001-01-01", "2001-01-01"),
        ("2025-06-11T10:00:00Z", "2025-06-11T10:00:00Z"),
        ("1_000", "1_000"),
        ("0b11", "0b11"),
        ("'500'", "500"),
    ],
)
def test_cases_and_requests_use_the_yaml_12_core_schema(text: str, want: Any) -> None:
    assert load_yaml(f"v: {text}\n")["v"] == want


def test_cases_file_values_follow_yaml_12(tmp_path: Path) -> None:
    f = tmp_path / "p.cases.yaml"
    f.write_text(
        "- name: n\n  request: {tool: t, args: {amount: 500, country: NO, on: yes, "
        "mode: 0644}}\n  want: allow\n",
        encoding="utf-8",
    )
    (case,) = load_cases(f)
    assert case.spec["request"]["args"] == {
        "amount": 500,
        "country": "NO",
        "on": "yes",
        "mode": 644,
    }


@given(st.lists(st.text(max_size=20), max_size=10))
def test_generated_string_lists_round_trip(values: list[str]) -> None:
    text = dump_yaml(values, allow_unicode=True)
    assert load_yaml(text, "data") == values
    assert load_yaml(text, "core") == values
    assert yaml.safe_load(text) == values  # YAML 1.1 readers agree


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(10**12), 10**12)
        | st.text(max_size=8)
        | st.floats(allow_nan=False),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_dumped_cases_read_back_as_the_same_values(value: Any) -> None:
    """What `policylang test` prints as a counterexample pastes back as the same request."""
    assert load_yaml(dump_yaml(value, allow_unicode=True)) == value


@given(st.sampled_from(["a", "k", "tool"]), st.booleans())
def test_a_key_twice_is_an_error(key: str, as_json: bool) -> None:
    if as_json:
        with pytest.raises(StructuredTextError, match="twice"):
            load_json(json.dumps({key: 1})[:-1] + f', "{key}": 2}}')
    else:
        with pytest.raises(
            StructuredTextError, match=r"twice in this map \(first on line 1\)"
        ) as err:
            load_yaml(f"{key}: 1\n{key}: 2\n")
        assert err.value.line == 2


@pytest.mark.parametrize(
    "text",
    [
        "- !!set {a: null}",
        "- !!omap [a: 1]",
        "- !!python/object:os.system x",
        "- !custom x",
        "- !!pairs [a: 1]",
    ],
)
def test_non_json_tags_are_refused(text: str) -> None:
    with pytest.raises(StructuredTextError, match="not supported"):
        load_yaml(text, "data")


@given(
    st.from_regex(r"SECRET-[A-Za-z0-9]{8,16}", fullmatch=True),
    st.sampled_from(
        [
            "{token: {SECRET}",
            "- [{SECRET}",
            "a: b\n{SECRET}: [\n",
            "k: '{SECRET}\n",
            "k: \x07{SECRET}",
            "k: 1\nk: {SECRET}\n",
        ]
    ),
)
def test_errors_never_quote_the_file(secret: str, template: str) -> None:
    text = template.replace("{SECRET}", secret)
    with pytest.raises(StructuredTextError) as err:
        load_yaml(text, "data")
    assert "SECRET-" not in str(err.value)


def test_json_is_strict() -> None:
    for text in ["[NaN]", "[Infinity]", '{"a": -Infinity}']:
        with pytest.raises(StructuredTextError, match="not JSON"):
            load_json(text)
    with pytest.raises(StructuredTextError, match="nest too deeply"):
        load_json("[" * 100_000)


LIMITS = """
policy limits
default deny
tool pay { amount: number }
allow pay when args.amount <= data.limits.max
"""


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.booleans())
def test_a_number_in_a_data_file_is_typed_only_when_tagged(
    limit: int, amount: int, fused: bool
) -> None:
    """`max: 5000` is the string "5000": a load error that says why; `!!int 5000` is a number."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.policy").write_text(LIMITS, encoding="utf-8")
        (folder / "limits.yaml").write_text(f"max: {limit}\n", encoding="utf-8")
        with pytest.raises(PolicyLoadError) as err:
            Engine.from_path(folder)
        (d,) = err.value.diagnostics
        assert d.code == "PL103" and d.hint is not None and "!!int" in d.hint
        (folder / "limits.yaml").write_text(f"max: !!int {limit}\n", encoding="utf-8")
        engine = Engine.from_path(folder)
    if not fused:
        assert engine._prepared is not None
        engine._prepared.fused.clear()
    want = "allow" if amount <= limit else "deny"
    assert engine.decide("pay", {"amount": amount}).effect.value == want


@given(st.integers(4_400, 20_000), st.sampled_from(["core", "data"]))
def test_an_integer_too_long_to_convert_is_an_error_with_a_position(
    digits: int, schema: str
) -> None:
    tag = "!!int " if schema == "data" else ""
    with pytest.raises(StructuredTextError, match="too many digits") as err:
        load_yaml(f"k: v\nn: {tag}{'9' * digits}\n", schema)  # type: ignore[arg-type]
    assert (err.value.line, err.value.column) == (2, 4)
