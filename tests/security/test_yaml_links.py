"""Symbolic links out of the policy folder are not followed, and nothing of their target is shown.

A link planted in a policy folder (a policy file, a data file, a file in
``data/``, a cases file, the ``data/`` folder itself, a policy subfolder)
that resolves outside it is refused by the loader, ``policylang test``,
``policylang lint`` and the pytest plugin, with an error naming the link;
the target's bytes never reach an error message. ``follow_links=True`` /
``--follow-links`` reads them. Links that stay inside the folder still work.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.cli.main import main
from policylang.errors import PolicyLoadError
from policylang.testing.cases import CaseFileError, load_cases
from policylang.testing.runner import render, run_path

pytest_plugins = ["pytester"]

POLICY = """policy linked
default deny
tool send { to: string }
allow send when args.to in data.allowed because "listed"
"""
CASES = "- name: listed\n  request: {tool: send, args: {to: a}}\n  want: allow\n"
KINDS = ["policy", "data", "data_subfolder", "cases", "data_folder", "policy_subfolder"]


@contextlib.contextmanager
def planted(kind: str, secret: str) -> Iterator[tuple[Path, Path]]:
    """A policy folder with a link of ``kind`` to a file outside it holding ``secret``.

    The target is written so that reading it would fail and quote it: a
    policy line that does not parse, YAML that does not close.
    """
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        outside = base / "outside"
        outside.mkdir()
        folder = base / "rules"
        folder.mkdir()
        (folder / "main.policy").write_text(POLICY, encoding="utf-8")
        (folder / "allowed.yaml").write_text("- a\n", encoding="utf-8")
        (folder / "main.cases.yaml").write_text(CASES, encoding="utf-8")
        secret_policy = outside / "secrets.txt"
        secret_policy.write_text(f"allow send when {secret} ==\n", encoding="utf-8")
        secret_yaml = outside / "secrets.yaml"
        secret_yaml.write_text(f"- [{secret}\n", encoding="utf-8")
        if kind == "policy":
            link = folder / "extra.policy"
            link.symlink_to(secret_policy)
        elif kind == "data":
            link = folder / "extra.yaml"
            link.symlink_to(secret_yaml)
        elif kind == "data_subfolder":
            (folder / "data").mkdir()
            link = folder / "data" / "extra.yaml"
            link.symlink_to(secret_yaml)
        elif kind == "cases":
            link = folder / "extra.cases.yaml"
            link.symlink_to(secret_yaml)
        elif kind == "data_folder":
            link = folder / "data"
            link.symlink_to(outside, target_is_directory=True)
        else:  # a policy subfolder, as lint sees it
            (outside / "p.policy").write_text(f"allow send when {secret} ==\n", encoding="utf-8")
            link = folder / "sub"
            link.symlink_to(outside, target_is_directory=True)
        yield folder, link


def cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


secrets = st.from_regex(r"SECRET_[A-Za-z0-9]{6,12}", fullmatch=True)


@given(st.sampled_from(KINDS), secrets)
def test_a_link_out_of_the_folder_is_refused_everywhere(kind: str, secret: str) -> None:
    with planted(kind, secret) as (folder, link):
        outputs: list[str] = []
        if kind != "policy_subfolder":  # the loader never reads subfolders at all
            if kind == "cases":
                with pytest.raises(CaseFileError) as case_err:
                    load_cases(link)
                outputs.append(str(case_err.value))
            else:
                with pytest.raises(PolicyLoadError) as err:
                    Engine.from_path(folder)
                message = err.value.render()
                assert link.name in message and "outside the policy folder" in message
                outputs.append(message)
            report = run_path(folder, auto=False, properties=False)
            assert report.failed
            text = io.StringIO()
            render(report, text)
            outputs.append(text.getvalue() + "\n".join(report.errors))
            code, shown = cli("test", str(folder), "--no-auto", "-q")
            assert code == 1
            outputs.append(shown)
        code, shown = cli("lint", str(folder))
        if kind != "cases":  # lint does not read cases files
            assert code == 1 and "outside the policy folder" in shown and link.name in shown
        outputs.append(shown)
        for text in outputs:
            assert secret not in text, text


@given(st.sampled_from(["policy", "data", "data_subfolder", "data_folder"]), secrets)
def test_follow_links_reads_them(kind: str, secret: str) -> None:
    """Asked to, the loader reads the target (its broken text is then reported as usual)."""
    with planted(kind, secret) as (folder, _):
        with pytest.raises(PolicyLoadError) as err:
            Engine.from_path(folder, follow_links=True)
        assert "outside the policy folder" not in err.value.render()
        assert err.value.diagnostics[0].code in ("PL001", "PL004")
        code, shown = cli("lint", str(folder), "--follow-links")
        assert code == 1 and "outside the policy folder" not in shown


def test_follow_links_for_cases_and_reload(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "allowed.yaml").write_text("- a\n", encoding="utf-8")
    (shared / "main.cases.yaml").write_text(CASES, encoding="utf-8")
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "main.policy").write_text(POLICY, encoding="utf-8")
    (folder / "allowed.yaml").symlink_to(shared / "allowed.yaml")
    (folder / "main.cases.yaml").symlink_to(shared / "main.cases.yaml")
    with pytest.raises(PolicyLoadError):
        Engine.from_path(folder)
    engine = Engine.from_path(folder, follow_links=True)
    assert engine.decide("send", {"to": "a"}).effect.value == "allow"
    engine.reload()  # keeps following
    assert load_cases(folder / "main.cases.yaml", follow_links=True)[0].name == "listed"
    report = run_path(folder, auto=False, properties=False, follow_links=True)
    assert not report.failed and len(report.cases) == 1
    assert cli("test", str(folder), "--no-auto", "-q", "--follow-links")[0] == 0


def test_links_inside_the_folder_are_fine(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    (folder / "lists").mkdir(parents=True)
    (folder / "main.policy").write_text(POLICY, encoding="utf-8")
    (folder / "lists" / "allowed.yaml").write_text("- a\n", encoding="utf-8")
    (folder / "allowed.yaml").symlink_to(Path("lists") / "allowed.yaml")
    assert Engine.from_path(folder).decide("send", {"to": "a"}).effect.value == "allow"
    # a folder that is itself a link is the policy folder: its own files are inside it
    alias = tmp_path / "current"
    alias.symlink_to(folder, target_is_directory=True)
    assert Engine.from_path(alias).decide("send", {"to": "a"}).effect.value == "allow"


def test_a_broken_link_is_an_error_not_a_missing_rule(tmp_path: Path) -> None:
    (tmp_path / "main.policy").write_text(POLICY, encoding="utf-8")
    (tmp_path / "allowed.yaml").write_text("- a\n", encoding="utf-8")
    (tmp_path / "deny.policy").symlink_to(tmp_path / "gone.policy")
    with pytest.raises(PolicyLoadError, match="broken symbolic link"):
        Engine.from_path(tmp_path)


def test_a_single_file_that_links_out_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.policy"
    outside.write_text(POLICY.replace("in data.allowed", '== "a"'), encoding="utf-8")
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "p.policy").symlink_to(outside)
    with pytest.raises(PolicyLoadError, match="outside the policy folder"):
        Engine.from_path(folder / "p.policy")
    assert Engine.from_path(folder / "p.policy", follow_links=True).policy_name == "linked"


def test_pytest_plugin_refuses_linked_cases(tmp_path: Path, pytester: pytest.Pytester) -> None:
    """The plugin (registered by the pytest11 entry point) refuses a linked cases file."""
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("- [SECRET_pytest_plugin\n", encoding="utf-8")
    folder = pytester.path / "rules"
    folder.mkdir()
    (folder / "main.policy").write_text(POLICY, encoding="utf-8")
    (folder / "allowed.yaml").write_text("- a\n", encoding="utf-8")
    (folder / "x.cases.yaml").symlink_to(outside)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", str(folder))
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret != 0 and "outside the policy folder" in text, text
    assert "SECRET_pytest_plugin" not in text
    os.remove(folder / "x.cases.yaml")
    (folder / "x.cases.yaml").write_text(CASES, encoding="utf-8")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", str(folder))
    assert result.ret == 0, "\n".join(result.outlines)
    result.assert_outcomes(passed=1)


@given(secrets, st.sampled_from([[], ["--check"], ["--diff"]]))
def test_fmt_neither_shows_nor_rewrites_a_linked_file(secret: str, mode: list[str]) -> None:
    with planted("policy", secret) as (folder, link):
        target = link.resolve()
        before = target.read_text(encoding="utf-8")
        code, shown = cli("fmt", *mode, str(folder))
        assert code != 0 and link.name in shown and "outside the policy folder" in shown
        assert secret not in shown
        assert target.read_text(encoding="utf-8") == before
