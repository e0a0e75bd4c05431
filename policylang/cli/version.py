"""``policylang version``: the package version and the Python running it."""

from __future__ import annotations

import argparse
import platform
from typing import Any

from policylang.cli.common import EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "version",
        help="print the version",
        description="Print the policylang version and the Python it runs on.",
        epilog="example:\n  policylang version",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policylang import __version__

    print(f"policylang {__version__} (Python {platform.python_version()})")
    return EXIT_OK
