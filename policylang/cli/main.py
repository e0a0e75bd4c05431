"""``policylang`` entry point: argv → the chosen command → an exit code.

Each command lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``. :func:`main` never raises and never prints a
traceback: policy errors, bad input and even internal errors become a
message on stderr and a non-zero exit code (0 ok, 1 findings/deny,
2 usage or load error, 3 confirm for ``eval``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from policylang.cli import common

COMMANDS = ("lint", "fmt", "eval", "compile", "version", "completion")

EPILOG = """\
examples:
  policylang lint rules/                       check a policy folder
  policylang fmt rules/ --check                would formatting change anything?
  policylang eval rules/ --request call.json   decide one tool call
  policylang compile rules/ --emit python --tool payments.send
  policylang lint --explain PL203              what a diagnostic code means

exit codes: 0 ok, 1 findings (lint/fmt) or deny (eval), 2 usage or load error,
3 confirm (eval)."""


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module

    from policylang import __version__

    parser = argparse.ArgumentParser(
        prog="policylang",
        description="Policy-as-code for AI agents' tool calls: lint, format, "
        "evaluate and compile .policy files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"policylang {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"policylang.cli.{name}").add_parser(sub)
    for name in _other_commands():  # commands other issues add (serve, test, ...)
        try:
            module = import_module(f"policylang.cli.{name}")
        except Exception:  # noqa: BLE001 - a broken optional command must not break the others
            continue
        if not hasattr(module, "add_parser"):
            continue
        before = set(sub.choices)
        module.add_parser(sub)
        for added in set(sub.choices) - before:
            sp = sub.choices[added]
            if sp.get_default("run") is None and hasattr(module, "run"):
                sp.set_defaults(run=module.run)
    return parser


def _other_commands() -> list[str]:
    """Modules in this package with an ``add_parser`` that are not in :data:`COMMANDS`."""
    import pkgutil

    import policylang.cli as package

    skip = {*COMMANDS, "main", "common"}
    return sorted(
        m.name
        for m in pkgutil.iter_modules(package.__path__)
        if m.name not in skip and not m.name.startswith("_")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (never raises, never prints a traceback)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # --help, --version, or a usage error (already printed)
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            return common.EXIT_USAGE
        return int(args.run(args))
    except common.CliError as exc:
        common.error(exc.message)
        return exc.code
    except common.PolicyError as exc:
        common.error(str(exc) or type(exc).__name__)
        return common.EXIT_USAGE
    except KeyboardInterrupt:
        common.error("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `policylang compile ... | head`
        _silence_stdout()
        return 1
    except RecursionError:
        common.error("the input is nested too deeply to process")
        return common.EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the last resort: never a traceback
        common.error(
            f"internal error: {type(exc).__name__}: {exc}; please report it at "
            "https://github.com/policylang/policylang/issues"
        )
        return common.EXIT_USAGE


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the flush at exit is quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stdout is not a real file
        pass


def run() -> None:
    """The console-script entry point."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover
    run()
