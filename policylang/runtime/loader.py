"""Files on disk → compiled policy, or a load error that names file, line and column.

Takes a ``.policy`` file or a folder (its ``*.policy`` files plus data files
``*.yaml``/``*.yml``/``*.json`` beside them or in a ``data/`` subfolder, each
available as ``data.<file stem>``; ``*.cases.yaml`` files are test cases, not
data). Every failure — missing path, invalid UTF-8, bad YAML, syntax or type
errors — becomes one :class:`PolicyLoadError` listing all problems found.

Data files are read by :mod:`policylang.yamlsafe` (bounded; a plain YAML
scalar is a string). A file that is a symbolic link resolving outside the
policy folder is refused unless ``follow_links=True``: a link planted in the
folder must not make the engine (or an error message) read another file.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policylang.errors import Diagnostic, PolicyCheckError, PolicyLoadError, PolicySyntaxError, Span
from policylang.language import ast
from policylang.language.checker import check_or_raise
from policylang.language.parser import MAX_SOURCE_CHARS, parse
from policylang.language.policy import canonical_data
from policylang.yamlsafe import StructuredTextError, load_json, load_yaml

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
    """A data file's value: JSON, or YAML read with the strings-only data schema."""
    text = read_text(path)
    try:
        return load_json(text) if path.suffix == ".json" else load_yaml(text, "data")
    except StructuredTextError as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        message = (
            exc.message if exc.message.startswith("invalid") else f"invalid {kind}: {exc.message}"
        )
        raise PolicyLoadError(
            [_problem("PL004", message, str(path), exc.line, exc.column)]
        ) from None


def boundary_of(path: str | Path) -> Path:
    """The policy folder of a path: the folder itself, or the folder a file is in."""
    p = Path(path)
    return (p if p.is_dir() else p.parent).resolve()


def check_inside(path: Path, boundary: Path, follow_links: bool = False) -> None:
    """Refuse a file that is (or is reached through) a link resolving outside ``boundary``.

    The error names the link only: nothing of the target is read or shown.
    """
    if follow_links:
        return
    try:
        inside = path.resolve().is_relative_to(boundary)
    except (OSError, RuntimeError):  # a link loop
        inside = False
    if not inside:
        raise PolicyLoadError(
            [
                _problem(
                    "PL002",
                    "this is a symbolic link to a file outside the policy folder "
                    f"{boundary}; it is not read",
                    str(path),
                    hint="copy the file into the folder, or pass follow_links=True (--follow-links) "
                    "to read links that leave it",
                )
            ]
        )


def _files(
    folder: Path, keep: Any, boundary: Path, follow_links: bool, problems: list[Diagnostic]
) -> list[Path]:
    """The files of one folder whose names ``keep`` accepts, links checked; broken links are errors."""
    out = []
    for p in sorted(folder.iterdir()):
        if not keep(p.name):
            continue
        if p.is_symlink() and not p.exists():
            problems.append(
                _problem(
                    "PL002",
                    "this is a broken symbolic link",
                    str(p),
                    hint="remove the link or point it at a file",
                )
            )
            continue
        if not p.is_file():
            continue
        try:
            check_inside(p, boundary, follow_links)
        except PolicyLoadError as exc:
            problems.extend(exc.diagnostics)
            continue
        out.append(p)
    return out


def _is_data_name(name: str) -> bool:
    return name.endswith(DATA_SUFFIXES) and not name.endswith(TEST_SUFFIXES)


def discover(
    path: str | Path, *, follow_links: bool = False, boundary: Path | None = None
) -> tuple[list[Path], dict[str, Path]]:
    """The policy files and data files that make up one policy.

    ``boundary`` is the folder no link may lead out of (default: the policy's
    own folder; lint passes the folder it was asked to lint).
    """
    root = Path(path)
    if not root.exists():
        if root.is_symlink():
            raise PolicyLoadError([_problem("PL002", "this is a broken symbolic link", str(root))])
        raise PolicyLoadError([_problem("PL002", "no such file or folder", str(root))])
    limit = boundary if boundary is not None else boundary_of(root)
    if root.is_file():
        check_inside(root, limit, follow_links)
        return [root], {}
    if not follow_links and not root.resolve().is_relative_to(limit):
        raise PolicyLoadError(
            [
                _problem(
                    "PL002",
                    "this folder is a symbolic link to a folder outside "
                    f"the policy folder {limit}; it is not read",
                    str(root),
                    hint="pass follow_links=True (--follow-links) to read it",
                )
            ]
        )
    problems: list[Diagnostic] = []
    policies = _files(root, lambda n: n.endswith(".policy"), limit, follow_links, problems)
    if not policies and not problems:
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
        for p in _files(folder, _is_data_name, limit, follow_links, problems):
            stem = p.name[: -len(p.suffix)]
            if stem in data:
                problems.append(
                    _problem(
                        "PL004",
                        f"two data files are both named '{stem}'",
                        str(p),
                        hint=f"the other one is {data[stem]}",
                    )
                )
                continue
            data[stem] = p
    if problems:
        raise PolicyLoadError(problems)
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


def own_data(data: dict[str, Any] | None, copy_data: bool = True) -> tuple[dict[str, Any], bytes]:
    """A policy's own copy of its data and that copy's canonical JSON (for the policy hash).

    The copy is why the hash stays true: a caller who changes the dict passed
    as ``data=`` after loading changes nothing the engine decides with.
    """
    data = dict(data or {})
    try:
        if copy_data:
            data = copy.deepcopy(data)
        return data, canonical_data(data) if data else b""
    except (ValueError, TypeError, RecursionError) as exc:
        name = next((k for k in data if not _encodes(data[k])), None)
        where = f"data.{name}" if name is not None else "the data"
        reason = (
            str(exc) if isinstance(exc, ValueError) else "it nests too deeply or cannot be copied"
        )
        raise PolicyLoadError(
            [_problem("PL006", f"{where} cannot be used: {reason}", "<data>")]
        ) from None


def _encodes(value: Any) -> bool:
    try:
        canonical_data({"v": value})
    except (ValueError, TypeError, RecursionError):
        return False
    return True


DATA_STRING_HINT = (
    "a plain value in a YAML data file is a string; write a typed value there "
    "explicitly, e.g. !!int 5000, !!float 0.5 or !!bool true"
)


def explain_data_strings(diags: Sequence[Diagnostic], sources: dict[str, str]) -> list[Diagnostic]:
    """Give a type error about a string read from ``data`` the hint why it is a string.

    Data files are strings-only (see policylang.yamlsafe): ``max: 5000`` is the
    text "5000", and "cannot order a number against a string" alone would
    leave the author guessing.
    """
    out = []
    for d in diags:
        text = sources.get(d.span.file, "")
        if (
            d.code == "PL103"
            and d.hint is None
            and "string" in d.message
            and 0 <= d.span.start < d.span.end <= len(text)
            and "data." in text[d.span.start : d.span.end]
        ):
            d = dataclasses.replace(d, hint=DATA_STRING_HINT)
        out.append(d)
    return out


def load_sources(
    sources: dict[str, str],
    data: dict[str, Any] | None = None,
    reference: bool = False,
    *,
    copy_data: bool = True,
) -> Any:
    """Parse, check and compile; returns (CompiledPolicy, warnings).

    ``reference=True`` builds evaluators that send every condition to the
    reference interpreter: the oracle the compiled evaluators are tested against.
    ``copy_data=False`` when the caller hands over data nobody else holds.
    """
    from policylang.compiler.build import CompiledPolicy

    files = parse_sources(sources)
    data, encoded = own_data(data, copy_data)
    try:
        policy, diags = check_or_raise(files, data, sources)
    except PolicyCheckError as exc:
        raise PolicyCheckError(explain_data_strings(exc.diagnostics, sources), sources) from None
    policy.__dict__["_data_json"] = encoded  # what content_hash covers, computed once
    return CompiledPolicy(policy, reference), [d for d in diags if d.severity != "error"]


def read_path(
    path: str | Path, data: dict[str, Any] | None = None, *, follow_links: bool = False
) -> tuple[dict[str, str], dict[str, Any]]:
    """The sources and data of the policy at ``path`` (see :func:`discover` for ``follow_links``)."""
    policy_files, data_files = discover(path, follow_links=follow_links)
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
    if data:
        loaded.update(own_data(data)[0])  # the files' data is ours already; the caller's is copied
    return sources, loaded
