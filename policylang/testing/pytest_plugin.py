"""pytest plugin: policy cases and assertions as pytest items.

* every ``*.cases.yaml`` / ``*.cases.yml`` / ``*.cases.json`` file becomes a
  collector with one item per case or sequence;
* every folder holding ``.policy`` files with ``assert`` statements gets one
  item per assertion (collected from the folder's first ``.policy`` file).

Enable it with the ``pytest11`` entry point (``policylang =
"policylang.testing.pytest_plugin"``) or ``-p policylang.testing.pytest_plugin``.
Options: ``--policylang-max-examples N`` (default 200), ``--policylang-seed S``,
``--no-policylang`` to switch collection off, ``--policylang-follow-links`` to
read policy, data and cases files that are links out of their folder (refused
by default); ini ``policylang_max_examples``.
Keep deliberately broken fixtures out with pytest's own ``collect_ignore``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from policylang.testing.cases import CASE_SUFFIXES, Case, CaseFileError, load_cases, run_case
from policylang.testing.runner import DEFAULT_MAX_EXAMPLES, policy_path


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("policylang")
    group.addoption(
        "--policylang-max-examples",
        type=int,
        default=None,
        help="Hypothesis examples per assertion search (default 200)",
    )
    group.addoption("--policylang-seed", type=int, default=None, help="seed for assertion searches")
    group.addoption(
        "--no-policylang", action="store_true", help="do not collect policy cases/assertions"
    )
    group.addoption(
        "--policylang-follow-links",
        action="store_true",
        help="read policy files that are symbolic links out of their folder",
    )
    parser.addini(
        "policylang_max_examples",
        "examples per assertion search",
        default=str(DEFAULT_MAX_EXAMPLES),
    )


def _enabled(config: Any) -> bool:
    return not config.getoption("--no-policylang", default=False)


def pytest_collect_file(file_path: Path, parent: Any) -> Any:
    if not _enabled(parent.config):
        return None
    name = file_path.name
    if name.endswith(CASE_SUFFIXES):
        return CasesFile.from_parent(parent, path=file_path)
    if name.endswith(".policy"):
        files = sorted(file_path.parent.glob("*.policy"))
        if files and files[0].name == name and any(_has_assertions(f) for f in files):
            return PolicyFolder.from_parent(parent, path=file_path)
    return None


_ASSERT = re.compile(r"(?m)^\s*(?:rule\s+\S+?\s*:\s*)?assert\s+(?:always|never)\b")


def _has_assertions(path: Path) -> bool:
    """Cheap text check, so folders without assertions are never loaded just to look."""
    try:
        return _ASSERT.search(path.read_text("utf-8", errors="replace")) is not None
    except OSError:
        return False


_ENGINES: dict[str, Any] = {}


def _follow_links(config: Any) -> bool:
    return bool(config.getoption("--policylang-follow-links", default=False))


def _engine(folder: Path, follow_links: bool = False) -> Any:
    from policylang.runtime.engine import Engine

    key = f"{folder.resolve()}\0{follow_links}"
    if key not in _ENGINES:
        _ENGINES[key] = Engine.from_path(folder, follow_links=follow_links)
    return _ENGINES[key]


class PolicyTestFailure(Exception):
    pass


class CasesFile(pytest.File):
    def collect(self) -> Any:
        try:
            cases = load_cases(self.path, follow_links=_follow_links(self.config))
        except CaseFileError as exc:
            raise self.CollectError(str(exc)) from None
        for case in cases:
            yield CaseItem.from_parent(self, name=case.name, case=case)


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, **kw: Any):
        super().__init__(**kw)
        self.case = case

    def runtest(self) -> None:
        engine = _engine(policy_path(self.path), _follow_links(self.config))
        result = run_case(engine, self.case)
        if not result.ok:
            raise PolicyTestFailure(result.report())

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, PolicyTestFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, max(self.case.line - 1, 0), f"case: {self.case.name}"


class PolicyFolder(pytest.File):
    """The assertions of the policy in this file's folder."""

    def collect(self) -> Any:
        from policylang.errors import PolicyError

        try:
            engine = _engine(self.path.parent, _follow_links(self.config))
        except PolicyError as exc:
            raise self.CollectError(str(exc)) from None
        policy = engine.compiled.policy
        self._exploration: Any = None
        for i, a in enumerate(policy.assertions):
            yield AssertionItem.from_parent(self, name=f"assert {policy.rule_id(a)}", index=i)

    def exploration(self) -> Any:
        if self._exploration is None:
            from policylang.testing.properties import Harness, explore

            h = Harness(_engine(self.path.parent, _follow_links(self.config)))
            self._exploration = (h, explore(h, _max_examples(self.config), _seed(self.config)))
        return self._exploration


def _max_examples(config: Any) -> int:
    n = config.getoption("--policylang-max-examples", default=None)
    return (
        int(n)
        if n is not None
        else int(config.getini("policylang_max_examples") or DEFAULT_MAX_EXAMPLES)
    )


def _seed(config: Any) -> int | None:
    return config.getoption("--policylang-seed", default=None)


class AssertionItem(pytest.Item):
    def __init__(self, *, index: int, **kw: Any):
        super().__init__(**kw)
        self.index = index

    def runtest(self) -> None:
        from policylang.testing.properties import check_assertion

        folder: PolicyFolder = self.parent  # type: ignore[assignment]
        h, ex = folder.exploration()
        a = h.policy.assertions[self.index]
        result = check_assertion(h, a, ex, _max_examples(self.config), _seed(self.config))
        if result.failed:
            text = result.message
            if result.case_yaml:
                text += "\n  minimal counterexample, ready to paste into a cases file:\n" + "".join(
                    "    " + line + "\n" for line in result.case_yaml.rstrip().splitlines()
                )
            raise PolicyTestFailure(text)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, PolicyTestFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        a = self.parent.path  # type: ignore[union-attr]
        return a, 0, self.name
