"""Files on disk → compiled policy, or a load error that names file, line and column.

Takes a ``.policy`` file or a folder (its ``*.policy`` files plus data files
``*.yaml``/``*.yml``/``*.json`` beside them or in a ``data/`` subfolder, each
available as ``data.<file stem>``; ``*.cases.yaml`` files are test cases, not
data). Every failure — missing path, invalid UTF-8, bad YAML, syntax or type
errors — becomes one :class:`PolicyLoadError` listing all problems found.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from policylang.errors import Diagnostic, PolicyLoadError, PolicySyntaxError, Span
from policylang.language import ast
from policylang.language.checker import check_or_raise
from policylang.language.parser import MAX_SOURCE_CHARS, parse

DATA_SUFFIXES = (".yaml", ".yml", ".json")
TEST_SUFFIXES = (".cases.yaml", ".cases.yml", ".cases.json")


def _problem(
    code: str, message: str, path: str, line: int = 1, column: int = 1, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(code, message, Span(path, line, column, line, column + 1), "error", hint)


def read_text(path: Path) -> str:
    """Read a file as UTF-8, turning every failure into a load error."""
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_CHARS * 4:
            raise PolicyLoadError(
                [_problem("PL006", f"file is too large ({size:,} bytes)", str(path))]
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyLoadError([_problem("PL002", "no such file or folder", str(path))]) from None
    except IsADirectoryError:
        raise PolicyLoadError(
            [_problem("PL002", "expected a file, found a folder", str(path))]
        ) from None
    except PermissionError:
        raise PolicyLoadError([_problem("PL002", "permission denied", str(path))]) from None
    except OSError as exc:
        raise PolicyLoadError(
            [_problem("PL002", f"cannot read the file: {exc.strerror}", str(path))]
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PolicyLoadError(
            [
                _problem(
                    "PL003",
                    f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                    str(path),
                    line,
                    col,
                    "save the file as UTF-8",
                )
            ]
        ) from None


def load_data_file(path: Path) -> Any:
    text = read_text(path)
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise PolicyLoadError(
            [_problem("PL004", f"invalid JSON: {exc.msg}", str(path), exc.lineno, exc.colno)]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyLoadError(
            [
                _problem(
                    "PL004",
                    f"invalid YAML: {problem}",
                    str(path),
                    (mark.line + 1) if mark else 1,
                    (mark.column + 1) if mark else 1,
                )
            ]
        ) from None


def discover(path: str | Path) -> tuple[list[Path], dict[str, Path]]:
    """The policy files and data files that make up one policy."""
    root = Path(path)
    if not root.exists():
        raise PolicyLoadError([_problem("PL002", "no such file or folder", str(root))])
    if root.is_file():
        return [root], {}
    policies = sorted(p for p in root.glob("*.policy") if p.is_file())
    if not policies:
        raise PolicyLoadError(
            [
                _problem(
                    "PL002",
                    "this folder has no .policy files",
                    str(root),
                    hint="policy files end in .policy",
                )
            ]
        )
    data: dict[str, Path] = {}
    for folder in (root, root / "data"):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix in DATA_SUFFIXES and not p.name.endswith(TEST_SUFFIXES):
                stem = p.name[: -len(p.suffix)]
                if stem in data:
                    raise PolicyLoadError(
                        [
                            _problem(
                                "PL004",
                                f"two data files are both named '{stem}'",
                                str(p),
                                hint=f"the other one is {data[stem]}",
                            )
                        ]
                    )
                data[stem] = p
    return policies, data


def parse_sources(sources: dict[str, str]) -> list[ast.PolicyFile]:
    """Parse every file, collecting the syntax errors of all files, not just the first."""
    files: list[ast.PolicyFile] = []
    problems: list[Diagnostic] = []
    for path, text in sources.items():
        try:
            files.append(parse(text, path))
        except PolicySyntaxError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise PolicySyntaxError(problems, sources)
    return files


def load_sources(
    sources: dict[str, str], data: dict[str, Any] | None = None, reference: bool = False
) -> Any:
    """Parse, check and compile; returns (CompiledPolicy, warnings).

    ``reference=True`` builds evaluators that send every condition to the
    reference interpreter: the oracle the compiled evaluators are tested against.
    """
    from policylang.compiler.build import CompiledPolicy

    files = parse_sources(sources)
    policy, diags = check_or_raise(files, data or {}, sources)
    return CompiledPolicy(policy, reference), [d for d in diags if d.severity != "error"]


def read_path(
    path: str | Path, data: dict[str, Any] | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    policy_files, data_files = discover(path)
    sources = {str(p): read_text(p) for p in policy_files}
    loaded: dict[str, Any] = {}
    problems: list[Diagnostic] = []
    for stem, p in data_files.items():
        try:
            loaded[stem] = load_data_file(p)
        except PolicyLoadError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise PolicyLoadError(problems)
    loaded.update(data or {})
    return sources, loaded
