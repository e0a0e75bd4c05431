"""``policylang fmt PATH... [--check] [--diff]``: rewrite policy files in the canonical layout.

Takes files and folders (every ``*.policy`` below them); gives files rewritten
in place by :func:`policylang.language.formatter.format_source`, or with
``--check``/``--diff`` a unified diff and exit 1 when a file would change.
A file that does not parse is reported and never written.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from policylang.cli.common import EXIT_FINDINGS, EXIT_OK, policy_files, print_load_error
from policylang.errors import PolicyError, PolicyLoadError

EPILOG = """\
examples:
  policylang fmt rules/                 rewrite every .policy file under rules/
  policylang fmt rules/ --check         exit 1 (and show the diff) if any file would change
  policylang fmt payments.policy --diff show what would change, write nothing"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "fmt",
        help="format policy files in place",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help=".policy files or folders")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and show a diff if a file would change",
    )
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policylang.language.formatter import format_source  # being extended concurrently
    from policylang.runtime.loader import read_text

    dry = args.check or args.diff
    changed = unchanged = failed = 0
    for path in policy_files(args.paths):
        name = str(path)
        try:
            old = read_text(path)
            new = format_source(old, name)
        except PolicyLoadError as exc:
            print_load_error(exc)
            failed += 1
            continue
        except PolicyError as exc:  # FormatError: the formatter refused to change meaning
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if new == old:
            unchanged += 1
            continue
        changed += 1
        if dry:
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"{name} (original)",
                    tofile=f"{name} (formatted)",
                )
            )
            if not new.endswith("\n") or not old.endswith("\n"):
                print()
            if args.check:
                print(f"would reformat {name}", file=sys.stderr)
        else:
            _write(path, new)
            print(f"reformatted {name}", file=sys.stderr)
    verb = "would be reformatted" if dry else "reformatted"
    summary = [
        f"{changed} file{'s' if changed != 1 else ''} {verb}",
        f"{unchanged} file{'s' if unchanged != 1 else ''} left unchanged",
    ]
    if failed:
        summary.append(f"{failed} file{'s' if failed != 1 else ''} could not be formatted")
    print(", ".join(summary), file=sys.stderr)
    if failed or (dry and changed):
        return EXIT_FINDINGS
    return EXIT_OK


def _write(path: Path, text: str) -> None:
    """Replace the file atomically, keeping its permissions."""
    mode = path.stat().st_mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
