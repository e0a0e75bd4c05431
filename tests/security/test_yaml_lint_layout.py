"""Lint checks what the loader loads: the same split into policies, the files of each, and a note.

``Engine.from_path(DIR)`` reads ``DIR/*.policy`` and never ``DIR/sub/*.policy``;
lint used to check the subfolder's rules as if they were enforced. Property:
for any generated tree of folders, lint checks one policy per folder holding
``.policy`` files, made of exactly the files the loader reads for that
folder, lists them, and reports every subfolder policy with PL007 naming the
policy folder above it that does not include it. Also: PL212 for data lists
of mixed element types.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.cli.lint import lint_policies
from policylang.cli.main import main

HEADER = "policy p{n}\ndefault deny\ntool send {{ to: string }}\nallow send\n"
DENY = 'deny send when args.to == "b" because "kept in a subfolder"\n'

segment = st.sampled_from(["agents", "sub", "extra", "team_b", "deep"])
trees = st.fixed_dictionaries(
    {
        "root": st.integers(0, 2),  # .policy files directly in DIR
        "subs": st.dictionaries(
            st.lists(segment, min_size=1, max_size=3).map(tuple),
            st.integers(0, 2),
            min_size=1,
            max_size=4,
        ),
        "data": st.booleans(),
    }
)


def build(base: Path, tree: dict) -> dict[Path, int]:
    """Write the tree; returns folder -> number of .policy files in it."""
    counts: dict[Path, int] = {base: tree["root"]}
    for parts, n in tree["subs"].items():
        counts[base.joinpath(*parts)] = max(n, counts.get(base.joinpath(*parts), 0))
    for folder, n in counts.items():
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            text = HEADER.format(n=i) if i == 0 else DENY
            (folder / f"f{i}.policy").write_text(text, encoding="utf-8")
    if tree["data"] and tree["root"]:
        (base / "data").mkdir(exist_ok=True)
        (base / "data" / "names.yaml").write_text("- a\n", encoding="utf-8")
        (base / "extra.yaml").write_text("k: v\n", encoding="utf-8")
    return {f: n for f, n in counts.items() if n}


def lint_text(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["lint", *argv])
    return code, out.getvalue()


@given(trees)
def test_lint_splits_a_folder_as_the_loader_does(tree: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "rules"
        folders = build(base, tree)
        diags, _, policies = lint_policies([str(base)])
        if not folders:  # nothing to load, nothing to lint: the loader's error
            assert not policies and [d.code for d in diags] == ["PL002"]
            assert "no .policy files" in diags[0].message
            return
        assert {p.folder for p in policies} == set(folders)
        for p in policies:
            assert p.folder is not None
            engine = Engine.from_path(p.folder)  # what loading that folder reads
            assert engine.compiled is not None
            assert sorted(map(str, p.policy_files)) == sorted(engine.compiled.policy.sources)
            assert set(p.data_files) == set(engine.compiled.policy.data)
        notes = {d.span.file: d for d in diags if d.code == "PL007"}
        for p in policies:
            assert p.folder is not None
            ancestors = [f for f in folders if f != p.folder and p.folder.is_relative_to(f)]
            note = notes.get(str(p.policy_files[0]))
            if not ancestors:
                assert note is None and p.parent is None
                continue
            nearest = max(ancestors, key=lambda f: len(f.parts))
            assert p.parent == nearest
            assert note is not None and note.severity == "info"
            assert f"loading {nearest}/ does not include it" in note.message
            if nearest == base and folders[base] == 1 and folders[p.folder] > 1:
                # the subfolder's deny rule is checked, but loading DIR does not enforce it
                assert Engine.from_path(base).decide("send", {"to": "b"}).effect.value == "allow"
        code, text = lint_text(str(base))
        assert code == 0, text  # notes are not findings
        assert f"Checked {len(folders)} polic" in text and "All checks passed." in text
        for p in policies:
            assert p.folder is not None
            line = next(x for x in text.splitlines() if x.startswith(f"  {p.folder}/: "))
            assert all(f.name in line for f in p.policy_files)
            if p.parent is not None:
                assert "a policy of its own" in line
            if p.folder == base and tree["data"]:
                assert "data/names.yaml" in line and "extra.yaml" in line


def test_the_shipped_rules_note_the_agents_subfolder() -> None:
    root = Path(__file__).resolve().parents[2] / "rules"
    code, text = lint_text(str(root), "--strict")
    assert code == 0
    assert "rules/agents/ is linted as a policy of its own: loading" in text
    code, out = lint_text(str(root), "--format", "json")
    notes = [d for d in json.loads(out) if d["code"] == "PL007"]
    assert len(notes) == 1 and notes[0]["severity"] == "info"
    code, out = lint_text(str(root), "--ignore", "PL007", "--format", "json")
    assert json.loads(out) == []


kinds = st.sampled_from([["a"], [1], [True], [None], [1.5], [{"k": "v"}], [["x"]]])


@given(st.lists(kinds, min_size=1, max_size=5))
def test_mixed_data_lists_are_reported(parts: list[list[object]]) -> None:
    values = [v for part in parts for v in part]
    kinds_seen = {
        "null"
        if v is None
        else "bool"
        if isinstance(v, bool)
        else "number"
        if isinstance(v, int | float)
        else type(v).__name__
        for v in values
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.policy").write_text(
            HEADER.format(n=0) + 'deny send when args.to in data.blocked because "blocked"\n',
            encoding="utf-8",
        )
        (folder / "blocked.json").write_text(json.dumps(values), encoding="utf-8")
        diags, _, _ = lint_policies([str(folder)])
    mixed = [d for d in diags if d.code == "PL212"]
    if len(kinds_seen) > 1:
        assert mixed and mixed[0].span.file.endswith("blocked.json")
        assert "data.blocked mixes element types" in mixed[0].message
    else:
        assert not mixed


def test_a_tagged_value_in_a_yaml_deny_list_is_reported(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text(
        HEADER.format(n=0) + 'deny send when args.to in data.blocked because "blocked"\n',
        encoding="utf-8",
    )
    (tmp_path / "blocked.yaml").write_text("- NO\n- !!bool true\n- US\n-\n", encoding="utf-8")
    code, text = lint_text(str(tmp_path))
    assert "PL212" in text and "data.blocked mixes element types (string, bool, null)" in text
    assert "item 2 is a bool" in text
