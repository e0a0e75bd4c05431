"""``policylang test PATH``: run cases, assertion properties and automatic checks.

Registered by ``policylang/cli/main.py``::

    from policylang.cli import test
    test.add_parser(subparsers)
    ...
    return args.func(args)      # or: test.run(args)
"""

from __future__ import annotations

import argparse
from typing import Any

from policylang.testing import runner


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "test",
        help="run example cases, assertions and automatic checks",
        description="Run *.cases.yaml example cases, search for counterexamples to assert "
        "statements (Hypothesis), and check that every rule can fire, every tool "
        "can be allowed and decisions are deterministic. Exit 1 on any failure.",
    )
    runner.add_arguments(parser)
    parser.set_defaults(func=run, command="test")
    return parser


def run(args: argparse.Namespace) -> int:
    return runner.run(args)


__all__ = ["add_parser", "run"]
