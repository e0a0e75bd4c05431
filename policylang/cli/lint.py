"""``policylang lint PATH...``: every problem in one run, as text, JSON, SARIF or GitHub lines.

Takes files and folders (a folder: its ``*.policy`` files with the data files
beside them, and each subfolder holding ``.policy`` files as a policy of its
own); gives parse errors, checker diagnostics and lints (PL2xx), sorted by
file and position. Exit 0 clean, 1 on errors (or warnings with ``--strict``),
2 on a usage error.

A folder is split into policies exactly as ``Engine.from_path`` reads it (one
:func:`~policylang.runtime.loader.discover`), the text report lists the files
of each policy, and a subfolder gets a PL007 note that loading its parent does
not include it: a rule kept there is checked but never enforced by the parent.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policylang.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    CliError,
    Painter,
    render_diagnostic,
    use_colour,
)
from policylang.errors import Diagnostic, PolicyLoadError, PolicySyntaxError, Span, sorted_unique

FORMATS = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

EPILOG = """\
examples:
  policylang lint rules/                        all policies under rules/
  policylang lint rules/ --strict               warnings fail the run too
  policylang lint rules/ --select PL1,PL203     only type errors and PL203
  policylang lint rules/ --ignore PL209         everything but PL209
  policylang lint rules/ --format sarif > lint.sarif
  policylang lint --explain PL201               what PL201 means

Silence one finding with a comment on its line or the line above:
  # policylang: ignore[PL209]

Load problems (PL001-PL006) are always reported unless --ignore names them."""

_IGNORE_RE = re.compile(r"#\s*policylang:\s*ignore(?:\[([^\]]*)\])?", re.IGNORECASE)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "lint",
        help="check policies: syntax, types and lints",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help=".policy files or folders")
    p.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default: text)"
    )
    p.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="CODES",
        help="only report these codes (comma-separated prefixes, e.g. PL1,PL203)",
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="CODES",
        help="do not report these codes (comma-separated prefixes)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument("--explain", metavar="CODE", help="print the documentation of a code and exit")
    p.add_argument(
        "--follow-links",
        action="store_true",
        help="read files that are symbolic links out of the folder (refused by default)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policylang.language import codes

    if args.explain:
        entry = codes.get(args.explain)
        if entry is None:
            close = codes.suggest_code(args.explain)
            raise CliError(
                f"unknown code '{args.explain}'"
                + (f"; did you mean {close}?" if close else "; codes look like PL203")
            )
        print(entry.explain())
        return EXIT_OK
    if not args.paths:
        raise CliError("give at least one PATH to lint (a .policy file or a folder)")
    select = _prefixes(args.select, "--select")
    ignore = _prefixes(args.ignore, "--ignore")
    diags, sources, policies = lint_policies(args.paths, follow_links=args.follow_links)
    diags = [
        d
        for d in diags
        if _wanted(d.code, select, ignore) and not _suppressed(d, sources.get(d.span.file))
    ]
    render(diags, sources, args.format, policies)
    errors = sum(d.severity == "error" for d in diags)
    warnings = sum(d.severity == "warning" for d in diags)
    return EXIT_FINDINGS if errors or (args.strict and warnings) else EXIT_OK


# ---------------------------------------------------------------- finding things


@dataclass
class LintedPolicy:
    """One policy lint checked: its folder (None for a single file) and the files that make it up."""

    folder: Path | None
    policy_files: list[Path]
    data_files: dict[str, Path] = field(default_factory=dict)
    parent: Path | None = None  # the policy folder above it that does not include it


def lint_paths(
    paths: Iterable[str], follow_links: bool = False
) -> tuple[list[Diagnostic], dict[str, str]]:
    """Every diagnostic for the given paths, sorted and without duplicates, plus the sources."""
    diags, sources, _ = lint_policies(paths, follow_links=follow_links)
    return diags, sources


def lint_policies(
    paths: Iterable[str], follow_links: bool = False
) -> tuple[list[Diagnostic], dict[str, str], list[LintedPolicy]]:
    """Like :func:`lint_paths`, plus the policies found (in the order they were checked)."""
    diags: list[Diagnostic] = []
    sources: dict[str, str] = {}
    policies: list[LintedPolicy] = []
    for raw in paths:
        for group in _groups(Path(raw), diags, follow_links):
            policies.append(group)
            found, texts = lint_group(group.policy_files, group.data_files)
            diags.extend(found)
            sources.update(texts)
            if group.parent is not None and group.folder is not None:
                diags.append(_separate_note(group.folder, group.parent, group.policy_files[0]))
    return sorted_unique(diags), sources, policies


def _separate_note(folder: Path, parent: Path, first: Path) -> Diagnostic:
    return Diagnostic(
        "PL007",
        f"{_dir(folder)} is linted as a policy of its own: loading {_dir(parent)} "
        "does not include it (Engine.from_path reads only the .policy files directly in a folder)",
        Span(str(first), 0, 0, 0, 0),
        "info",  # about the folder, not a line: no snippet
        f"load {_dir(folder)} separately, or move its files into {_dir(parent)} if its rules "
        "belong to that policy",
    )


def _dir(p: Path) -> str:
    return str(p).rstrip("/") + "/"


def _groups(root: Path, diags: list[Diagnostic], follow_links: bool = False) -> list[LintedPolicy]:
    """One group per policy, split as the loader splits: a file, or each folder with policies."""
    from policylang.runtime.loader import boundary_of, discover

    try:
        if not root.is_dir():
            files, data = discover(root, follow_links=follow_links)
            return [LintedPolicy(None, files, data)]
        boundary = boundary_of(root)
        folders = [root] + sorted(
            d
            for d in root.rglob("*")
            if d.is_dir()
            and not any(
                part.startswith(".") or part == "__pycache__" for part in d.relative_to(root).parts
            )
        )
        groups: list[LintedPolicy] = []
        for folder in folders:
            if not any(p.name.endswith(".policy") for p in folder.iterdir()):
                continue
            try:
                files, data = discover(folder, follow_links=follow_links, boundary=boundary)
            except PolicyLoadError as exc:
                diags.extend(exc.diagnostics)
                continue
            parent = next(
                (
                    g.folder
                    for g in reversed(groups)
                    if g.folder is not None and folder.is_relative_to(g.folder)
                ),
                None,
            )
            groups.append(LintedPolicy(folder, files, data, parent))
        if not groups and not diags:
            discover(root, follow_links=follow_links)  # raises "no .policy files"
        return groups
    except PolicyLoadError as exc:
        diags.extend(exc.diagnostics)
        return []


def lint_group(
    policy_paths: list[Path], data_paths: dict[str, Path]
) -> tuple[list[Diagnostic], dict[str, str]]:
    """Parse, check and lint one policy (the files of one folder, or one file)."""
    from policylang.language.checker import check
    from policylang.language.lints import lint
    from policylang.language.parser import parse
    from policylang.runtime.loader import explain_data_strings, load_data_file, read_text

    diags: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for p in policy_paths:
        try:
            sources[str(p)] = read_text(p)
        except PolicyLoadError as exc:
            diags.extend(exc.diagnostics)
    data: dict[str, Any] = {}
    failed_data: list[str] = []
    for stem, p in data_paths.items():
        try:
            data[stem] = load_data_file(p)
        except PolicyLoadError as exc:
            diags.extend(exc.diagnostics)
            failed_data.append(stem)
    files = []
    for path, text in sources.items():
        try:
            files.append(parse(text, path))
        except PolicySyntaxError as exc:
            diags.extend(exc.diagnostics)
    if len(files) != len(policy_paths):
        return diags, sources  # checking a policy with a file missing would only add noise
    policy, found = check(files, data, sources)
    found = explain_data_strings(found, sources)
    diags.extend(
        d
        for d in found
        if not (d.code == "PL114" and any(f"'{stem}'" in d.message for stem in failed_data))
    )
    try:
        diags.extend(lint(policy, files, sources, {stem: str(p) for stem, p in data_paths.items()}))
    except Exception as exc:  # noqa: BLE001 - keep every other finding; say what broke
        print(
            f"warning: the lints stopped early on {policy_paths[0]}: {type(exc).__name__}: {exc} "
            "(internal error, please report it)",
            file=sys.stderr,
        )
    return diags, sources


# ---------------------------------------------------------------- filtering


def _prefixes(values: list[str], option: str) -> list[str]:
    from policylang.language.codes import CODES

    out = []
    for value in values:
        for item in value.split(","):
            item = item.strip().upper()
            if not item:
                continue
            if not any(code.startswith(item) for code in CODES):
                raise CliError(
                    f"{option}: no diagnostic code starts with '{item}' "
                    "(codes look like PL203; see `policylang lint --explain CODE`)"
                )
            out.append(item)
    return out


def _wanted(code: str, select: list[str], ignore: list[str]) -> bool:
    from policylang.language.codes import LOAD_CODES

    if any(code.startswith(p) for p in ignore):
        return False
    if select and code not in LOAD_CODES:
        return any(code.startswith(p) for p in select)
    return True


def _suppressed(d: Diagnostic, source: str | None) -> bool:
    """``# policylang: ignore[CODE]`` on the diagnostic's line or the line above."""
    if source is None or not d.span.line:
        return False
    lines = source.splitlines()
    for n in (d.span.line, d.span.line - 1):
        if 1 <= n <= len(lines):
            m = _IGNORE_RE.search(lines[n - 1])
            if m is None:
                continue
            if m.group(1) is None:
                return True
            wanted = [c.strip().upper() for c in m.group(1).split(",") if c.strip()]
            if any(d.code.startswith(c) for c in wanted):
                return True
    return False


# ---------------------------------------------------------------- output


def render(
    diags: list[Diagnostic],
    sources: dict[str, str],
    fmt: str,
    policies: list[LintedPolicy] | None = None,
) -> None:
    if fmt == "json":
        print(json.dumps([_as_json(d) for d in diags], indent=2, ensure_ascii=False))
    elif fmt == "sarif":
        print(json.dumps(sarif(diags), indent=2, ensure_ascii=False))
    elif fmt == "github":
        for d in diags:
            print(github_line(d))
    else:
        print(text_report(diags, sources, Painter(use_colour()), policies), end="")


def policies_report(policies: list[LintedPolicy], paint: Painter) -> str:
    """Per folder policy checked, the files that make it up (what Engine.from_path loads)."""
    folders = [p for p in policies if p.folder is not None]
    if not folders:
        return ""
    lines = [paint(f"Checked {len(folders)} polic{'y' if len(folders) == 1 else 'ies'}:", "bold")]
    for p in folders:
        assert p.folder is not None
        names = [f.name for f in p.policy_files]
        data = [
            str(f.relative_to(p.folder)) if f.is_relative_to(p.folder) else str(f)
            for f in p.data_files.values()
        ]
        line = f"  {_dir(p.folder)}: {', '.join(names)}" + (
            f"; data: {', '.join(data)}" if data else ""
        )
        if p.parent is not None:
            line += f" (a policy of its own: loading {_dir(p.parent)} does not include it)"
        lines.append(line)
    return "\n".join(lines) + "\n"


def text_report(
    diags: list[Diagnostic],
    sources: dict[str, str],
    paint: Painter,
    policies: list[LintedPolicy] | None = None,
) -> str:
    parts = [render_diagnostic(d, sources.get(d.span.file), paint) + "\n" for d in diags]
    header = policies_report(policies or [], paint)
    if header:
        parts.insert(0, header)
    counts = {sev: sum(d.severity == sev for d in diags) for sev in ("error", "warning", "info")}
    if not counts["error"] and not counts["warning"]:  # notes (info) are not findings
        notes = counts["info"]
        parts.append(
            paint("All checks passed.", "green")
            + (f" ({notes} note{'s' if notes != 1 else ''} above)" if notes else "")
            + "\n"
        )
    else:
        words = [f"{n} {sev}{'s' if n != 1 else ''}" for sev, n in counts.items() if n]
        summary = (
            "Found "
            + (", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0])
            + "."
        )
        parts.append(paint(summary, "bold") + "\n")
    return "\n".join(parts)


def _location(span: Span) -> dict[str, Any]:
    return {
        "file": span.file,
        "line": span.line or None,
        "column": span.column or None,
        "end_line": span.end_line or None,
        "end_column": span.end_column or None,
    }


def _as_json(d: Diagnostic) -> dict[str, Any]:
    return {
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        **_location(d.span),
        "hint": d.hint,
        "related": [{"message": note, **_location(span)} for note, span in d.related],
    }


_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _uri(path: str) -> str:
    return path.replace("\\", "/")


def _region(span: Span) -> dict[str, int]:
    region = {"startLine": max(span.line, 1), "startColumn": max(span.column, 1)}
    if span.end_line >= span.line and span.end_line:
        region["endLine"] = span.end_line
        if span.end_column:
            region["endColumn"] = span.end_column
    return region


def sarif(diags: list[Diagnostic]) -> dict[str, Any]:
    """A SARIF 2.1.0 log; the rule table is the whole code registry."""
    from policylang import __version__
    from policylang.language.codes import CODES

    index = {code: i for i, code in enumerate(CODES)}
    rules = [
        {
            "id": c.code,
            "name": c.name,
            "shortDescription": {"text": c.summary},
            "fullDescription": {"text": f"{c.summary} {c.why}"},
            "help": {"text": c.explain()},
            "defaultConfiguration": {"level": _SARIF_LEVEL[c.severity]},
        }
        for c in CODES.values()
    ]
    results = []
    for d in diags:
        result: dict[str, Any] = {
            "ruleId": d.code,
            "level": _SARIF_LEVEL.get(d.severity, "error"),
            "message": {"text": d.message + (f"\nhelp: {d.hint}" if d.hint else "")},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(d.span.file)},
                        "region": _region(d.span),
                    }
                }
            ],
        }
        if d.code in index:
            result["ruleIndex"] = index[d.code]
        if d.related:
            result["relatedLocations"] = [
                {
                    "id": i,
                    "message": {"text": note},
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(span.file)},
                        "region": _region(span),
                    },
                }
                for i, (note, span) in enumerate(d.related)
            ]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "policylang",
                        "version": __version__,
                        "informationUri": "https://github.com/policylang/policylang",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def github_line(d: Diagnostic) -> str:
    """A GitHub Actions workflow command: ``::error file=F,line=L,col=C::CODE message``."""
    level = {"error": "error", "warning": "warning"}.get(d.severity, "notice")
    return (
        f"::{level} file={_gh_escape(d.span.file, True)},line={max(d.span.line, 1)},"
        f"col={max(d.span.column, 1)}::{_gh_escape(f'{d.code} {d.message}')}"
    )
