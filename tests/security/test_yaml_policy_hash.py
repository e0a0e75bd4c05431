"""The policy hash covers the data: it changes exactly when the data's values change.

Before, an edited allow-list flipped decisions under an unchanged hash. The
hash is now over the sources plus the canonical JSON of the data (files and
``data=`` alike), so it changes iff the data changes as typed values (a
re-indented file or a reordered map is the same data; ``1``, ``1.0``,
``true`` and ``"1"`` are not). The engine keeps its own copy of ``data=``.
"""

from __future__ import annotations

import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from policylang import Engine
from policylang.errors import PolicyLoadError
from policylang.yamlsafe import dump_yaml

POLICY = """
policy lists version "1.0"
default deny
tool send { to: string }
allow send when args.to in data.allowed because "on the list"
"""

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.dates()
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def typed(v: Any) -> Any:
    """An independent oracle: the value with every type spelled out, maps order-free."""
    if isinstance(v, dict):
        return ("map", frozenset((typed(k), typed(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return ("list", tuple(typed(x) for x in v))
    if isinstance(v, float):
        return ("float", repr(v))
    return (type(v).__name__, v)


def hash_of(data: dict[str, Any]) -> str:
    return Engine.from_string(POLICY, data={"allowed": ["a"], **data}).policy_hash


names = st.text(min_size=1, max_size=5).filter(lambda k: k != "allowed")


@given(st.dictionaries(names, values, max_size=4), st.dictionaries(names, values, max_size=4))
def test_hash_changes_iff_data_changes(first: dict[str, Any], second: dict[str, Any]) -> None:
    same = typed({"allowed": ["a"], **first}) == typed({"allowed": ["a"], **second})
    assert (hash_of(first) == hash_of(second)) == same


_edits = st.sampled_from(["replace", "append", "drop", "retype", "reorder"])


@given(
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=8, unique=True),
    _edits,
    st.data(),
)
def test_an_edited_data_file_changes_the_hash(
    names: list[str], edit: str, data: st.DataObject
) -> None:
    """Edit the allow-list on disk: the hash changes with the values, not with the layout."""
    edited: list[Any] = list(names)
    if edit == "replace":
        i = data.draw(st.integers(0, len(names) - 1))
        edited[i] = data.draw(st.text(min_size=1, max_size=8).filter(lambda s: s != names[i]))
    elif edit == "append":
        edited.append(data.draw(st.text(max_size=8)))
    elif edit == "drop":
        edited.pop(data.draw(st.integers(0, len(names) - 1)))
    elif edit == "retype":  # "5" -> !!int 5 would be an explicit typed value: a different value
        assume(len(names) > 1)  # a list of only ints fails to load (a string is never in it)
        edited[0] = data.draw(st.integers(0, 99))
        edited_text = dump_yaml(edited, allow_unicode=True).replace(
            f"- {edited[0]}\n", f"- !!int {edited[0]}\n", 1
        )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.policy").write_text(POLICY, encoding="utf-8")
        allowed = folder / "allowed.yaml"
        allowed.write_text(dump_yaml(names, allow_unicode=True), encoding="utf-8")
        engine = Engine.from_path(folder)
        before = engine.policy_hash
        if edit == "reorder":  # same values, other layout: flow style, a comment
            allowed.write_text(
                "# the same list\n" + dump_yaml(names, allow_unicode=True, default_flow_style=True),
                encoding="utf-8",
            )
        else:
            allowed.write_text(
                edited_text if edit == "retype" else dump_yaml(edited, allow_unicode=True),
                encoding="utf-8",
            )
        engine.reload()
        after = engine.policy_hash
    assert (before == after) == (edit == "reorder")
    if edit != "reorder":
        d = engine.decide("send", {"to": names[0]})
        assert d.policy_hash == after


def test_hash_is_stable_and_seen_everywhere() -> None:
    data = {"allowed": ["a", "b"], "when": [date(2025, 12, 24)], "n": {"x": 1, "y": [1.5, None]}}
    one, two = (
        Engine.from_string(POLICY, data=data),
        Engine.from_string(POLICY, data=dict(reversed(data.items()))),
    )
    assert one.policy_hash == two.policy_hash
    assert Engine.from_string(POLICY, data={"allowed": ["a", "b"]}).policy_hash != one.policy_hash
    records: list[dict[str, Any]] = []
    audited = Engine.from_string(POLICY, data=data, audit=records.append)
    audited.decide("send", {"to": "a"})
    assert records[0]["policy_hash"] == one.policy_hash
    assert audited.decide("send", {"to": "a"}).policy_hash == one.policy_hash


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (1, True),
        ("1", 1),
        (0, False),
        (None, "null"),
        ("2025-12-24", date(2025, 12, 24)),
        (datetime(2025, 1, 1), date(2025, 1, 1)),
        ([1], (1, 2)),
        ({"k": 1}, {"k": 1, "j": 1}),
        (float("inf"), "inf"),
    ],
)
def test_values_of_different_types_hash_apart(a: Any, b: Any) -> None:
    assert hash_of({"v": [a]}) != hash_of({"v": [b]})


def test_data_passed_in_code_is_copied() -> None:
    """Changing the caller's list after loading changes neither decisions nor the hash."""
    allowed = ["alice"]
    engine = Engine.from_string(POLICY, data={"allowed": allowed})
    before = engine.policy_hash
    allowed.append("mallory")
    assert engine.decide("send", {"to": "mallory"}).effect.value == "deny"
    assert engine._prepared is not None
    engine._prepared.fused.clear()  # the ordinary path too
    assert engine.decide("send", {"to": "mallory"}).effect.value == "deny"
    assert engine.policy_hash == before


def test_unusable_data_is_a_load_error() -> None:
    deep: Any = "x"
    for _ in range(150):
        deep = [deep]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    for bad in (deep, cyclic):
        with pytest.raises(PolicyLoadError) as err:
            Engine.from_string(POLICY, data={"allowed": ["a"], "bad": bad})
        assert (
            err.value.diagnostics[0].code == "PL006"
            and "data.bad" in err.value.diagnostics[0].message
        )


def test_server_and_metrics_show_the_data_hash() -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from policylang.server import create_app

    engine = Engine.from_string(POLICY, data={"allowed": ["a"]})
    client = TestClient(create_app(engine))
    assert client.get("/v1/policies").json()["policies"][0]["hash"] == engine.policy_hash
    assert f'hash="{engine.policy_hash}"' in client.get("/metrics").text
    assert engine.policy_hash != Engine.from_string(POLICY, data={"allowed": ["b"]}).policy_hash
