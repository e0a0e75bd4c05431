"""Helpers shared by the commands: colour, diagnostics on a terminal, loading, requests.

Takes raw command-line values; gives loaded engines, parsed requests and
rendered text. Failures become :class:`CliError` (a message and an exit
code), which :func:`policylang.cli.main.main` prints to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from policylang.errors import Diagnostic, PolicyError, PolicyLoadError, render_snippet

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem to report in one line (or a few) on stderr, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.message = message
        self.code = code


# ---------------------------------------------------------------- colour


def use_colour(stream: IO[str] | None = None) -> bool:
    """ANSI colour only on a terminal, and never when NO_COLOR is set."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("NO_COLOR") is not None:
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


_STYLES = {
    "bold": "1",
    "red": "31",
    "yellow": "33",
    "cyan": "36",
    "green": "32",
    "dim": "2",
    "blue": "34",
    "magenta": "35",
}


class Painter:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        codes = ";".join(_STYLES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


def render_diagnostic(d: Diagnostic, source: str | None, paint: Painter) -> str:
    """``file:line:col: CODE severity: message``, the snippet with carets, notes and help."""
    where = str(d.span) if d.span.line else d.span.file
    head = (
        f"{paint(where, 'bold')}: {paint(d.code, 'bold', SEVERITY_STYLE.get(d.severity, 'red'))} "
        f"{paint(d.severity, SEVERITY_STYLE.get(d.severity, 'red'))}: {d.message}"
    )
    lines = [head]
    snippet = render_snippet(source, d.span) if source is not None else ""
    if snippet:
        lines.append(paint(snippet, "blue") if paint.enabled else snippet)
    for note, span in d.related:
        lines.append(f"  {paint('note', 'bold')}: {note} ({span})")
    if d.hint:
        lines.append(f"  {paint('help', 'bold', 'cyan')}: {d.hint}")
    return "\n".join(lines)


def print_load_error(exc: PolicyLoadError, stream: IO[str] | None = None) -> None:
    stream = stream if stream is not None else sys.stderr
    paint = Painter(use_colour(stream))
    shown = [d for d in exc.diagnostics if d.severity == "error"] or list(exc.diagnostics)
    for d in shown:
        print(render_diagnostic(d, exc.sources.get(d.span.file), paint), file=stream)
    if not shown:
        print(f"error: {exc}", file=stream)


def error(message: str) -> None:
    """One line on stderr: ``error: message``."""
    paint = Painter(use_colour(sys.stderr))
    print(f"{paint('error', 'bold', 'red')}: {message}", file=sys.stderr)


# ---------------------------------------------------------------- loading


def load_engine(path: str, **options: Any) -> Any:
    """Engine.from_path, with load errors printed and turned into exit code 2."""
    from policylang.runtime.engine import Engine

    try:
        return Engine.from_path(path, **options)
    except PolicyLoadError as exc:
        print_load_error(exc)
        raise CliError(f"could not load the policy at {path}", EXIT_USAGE) from None


def parse_structured(text: str, what: str) -> Any:
    """JSON, or YAML (the 1.2 core schema, bounded) when it is not JSON; a clear error otherwise."""
    from policylang.yamlsafe import StructuredTextError, load_json, load_yaml

    try:
        return load_json(text)
    except StructuredTextError as json_exc:
        if text.lstrip().startswith(("{", "[")):
            raise CliError(
                f"{what} is not valid JSON: {json_exc.message} (line {json_exc.line}, "
                f"column {json_exc.column})"
            ) from None
    try:
        return load_yaml(text)
    except StructuredTextError as exc:
        raise CliError(
            f"{what} is neither JSON nor valid YAML: {exc.message} "
            f"(line {exc.line}, column {exc.column})"
        ) from None


def read_input(name: str, what: str) -> str:
    """The text of a file, or of stdin for ``-``; every failure becomes a CliError."""
    if name == "-":
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise CliError(f"{what} on stdin is not valid UTF-8") from None
    from policylang.runtime.loader import read_text

    try:
        return read_text(Path(name))
    except PolicyLoadError as exc:
        d = exc.diagnostics[0]
        raise CliError(f"{what} {name}: {d.message}") from None


def policy_files(paths: Iterable[str], follow_links: bool = False) -> list[Path]:
    """Every ``.policy`` file named or found (recursively) under the given folders.

    A file found in a folder that is a symbolic link resolving outside it is an
    error (``fmt --write`` would otherwise rewrite, and a diff show, a file
    elsewhere), unless ``follow_links``.
    """
    from policylang.runtime.loader import boundary_of, check_inside

    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*.policy")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                raise CliError(f"{raw}: this folder has no .policy files", EXIT_FINDINGS)
            boundary = boundary_of(p)
            for f in found:
                try:
                    check_inside(f, boundary, follow_links)
                except PolicyLoadError as exc:
                    raise CliError(f"{f}: {exc.diagnostics[0].message}", EXIT_FINDINGS) from None
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise CliError(f"{raw}: no such file or folder", EXIT_FINDINGS)
    return list(dict.fromkeys(out))


def short(value: Any, limit: int = 80) -> str:
    from policylang.runtime import celops

    try:
        text = celops.format_value(value)
    except Exception:  # noqa: BLE001 - show something rather than fail an explanation
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "CliError",
    "Painter",
    "use_colour",
    "render_diagnostic",
    "print_load_error",
    "load_engine",
    "parse_structured",
    "read_input",
    "policy_files",
    "error",
    "short",
    "PolicyError",
    "EXIT_OK",
    "EXIT_FINDINGS",
    "EXIT_USAGE",
]
