"""One exception tree for everything policylang raises on purpose.

Every user-facing error carries a source span and a stable code so that the CLI,
the engine and the tests print it the same way: ``file:line:col: CODE message``.
Only :mod:`policylang.language.parser` touches Lark's own exceptions; they are
turned into :class:`PolicySyntaxError` there and never leak further.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of policy text, 1-based lines and columns, end exclusive.

    Spans never take part in equality of the nodes that carry them: two ASTs
    that differ only in layout compare equal.
    """

    file: str = "<string>"
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0
    start: int = 0
    end: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def merge(self, other: Span) -> Span:
        """The smallest span covering both (used for composite nodes)."""
        if not self.line:
            return other
        if not other.line:
            return self
        first, last = (self, other) if self.start <= other.start else (other, self)
        return Span(
            self.file,
            first.line,
            first.column,
            last.end_line,
            last.end_column,
            first.start,
            max(self.end, other.end),
        )


NO_SPAN = Span()


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a policy: what, where, how bad, and how to fix it."""

    code: str
    message: str
    span: Span = NO_SPAN
    severity: Severity = "error"
    hint: str | None = None
    related: tuple[tuple[str, Span], ...] = field(default=())

    def format(self, source: str | None = None) -> str:
        """Render as ``file:line:col: CODE message`` plus caret snippet and hint."""
        head = f"{self.span}: {self.code} {self.message}"
        lines = [head]
        snippet = render_snippet(source, self.span) if source is not None else ""
        if snippet:
            lines.append(snippet)
        for note, where in self.related:
            lines.append(f"  note: {note} ({where})")
        if self.hint:
            lines.append(f"  help: {self.hint}")
        return "\n".join(lines)

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.file, self.span.line, self.span.column, self.code)


def sorted_unique(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics in source order, each (code, message, place) once: passes may find one twice."""
    seen: set[tuple[str, str, Span]] = set()
    out = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = (d.code, d.message, d.span)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def render_snippet(source: str, span: Span) -> str:
    """The offending source line with a caret run under the span."""
    if not span.line:
        return ""
    text_lines = source.splitlines()
    if span.line - 1 >= len(text_lines):
        return ""
    text = text_lines[span.line - 1].replace("\t", " ")
    start = max(span.column, 1)
    if span.end_line == span.line and span.end_column > start:
        width = span.end_column - start
    else:
        width = max(len(text) - start + 1, 1)
    gutter = f"{span.line:>4} | "
    return f"{gutter}{text}\n{' ' * (len(gutter) - 2)}| {' ' * (start - 1)}{'^' * width}"


class PolicyError(Exception):
    """Root of every error policylang raises deliberately."""

    code = "PL000"


class PolicyLoadError(PolicyError):
    """A policy could not be loaded: bad syntax, failed checks, unreadable files.

    Holds every diagnostic found (not just the first) plus the source texts so
    the message can show snippets. The running engine is never touched when
    this is raised.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
        self.sources = dict(sources or {})
        super().__init__(self.render())

    @property
    def code(self) -> str:  # type: ignore[override]
        return self.diagnostics[0].code if self.diagnostics else "PL000"

    @property
    def span(self) -> Span:
        return self.diagnostics[0].span if self.diagnostics else NO_SPAN

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column

    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    def render(self) -> str:
        parts = [
            d.format(self.sources.get(d.span.file))
            for d in self.diagnostics
            if d.severity == "error"
        ] or [d.format(self.sources.get(d.span.file)) for d in self.diagnostics]
        return "\n".join(parts)


class PolicySyntaxError(PolicyLoadError):
    """The text is not valid policy syntax."""


class PolicyCheckError(PolicyLoadError):
    """The text parses but names, types or limits are wrong."""


class EvalError(PolicyError):
    """An expression failed while deciding (missing key, type error, overflow...).

    Raised by the runtime functions; the engine catches it and fails closed.
    """

    code = "evaluation_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class RequestError(PolicyError):
    """A request is malformed (wrong argument types, missing required fields)."""

    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class StoreUnavailable(PolicyError):
    """The rate-limit or session store could not be reached in time."""

    code = "store_unavailable"


def load_error(
    diags: Iterable[Diagnostic], sources: dict[str, str] | None = None, syntax: bool = False
) -> PolicyLoadError:
    cls = PolicySyntaxError if syntax else PolicyCheckError
    return cls(list(diags), sources)
