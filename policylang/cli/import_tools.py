"""``policylang import-tools FILE``: tool schemas → ``tool`` declarations (and drift checks).

Reads JSON Schema, OpenAI tool definitions or an MCP ``tools/list`` result
(JSON or YAML) and prints ``tool`` declarations plus ``deny`` rules for ranges,
lengths and patterns. What cannot be mapped is written as ``# not mapped:``
comments and warned about on standard error.

``--check FILE PATH`` compares the schemas with the policy at PATH instead:
rules that read parameters a tool no longer has, changed parameter types, new
parameters no rule constrains. Exit codes: 0 fine, 1 drift, 2 error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from policylang.errors import PolicyLoadError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "import-tools",
        help="write tool declarations from JSON Schema / OpenAI / MCP definitions",
        description="Print policylang tool declarations for tools described by JSON Schema, "
        "OpenAI function/tool definitions or an MCP tools/list result; with --check, "
        "report drift between those tools and a policy (exit 1 on drift).",
    )
    configure(p)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the tool definitions (JSON or YAML; '-' for standard input)")
    p.add_argument("policy", nargs="?", help="with --check: the policy file or folder")
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "jsonschema", "openai", "mcp"],
        help="the kind of document (default: recognise it)",
    )
    p.add_argument("--name", help="tool name for a bare JSON Schema without a title")
    p.add_argument("-o", "--output", metavar="OUT", help="write the declarations to OUT")
    p.add_argument(
        "--check",
        action="store_true",
        help="compare with the policy at PATH instead of printing declarations",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policylang.schema.jsonschema import (
        SchemaImportError,
        load_document,
        specs_from_document,
        tools_to_policy,
    )

    try:
        specs = specs_from_document(load_document(args.file), args.format, args.name)
    except SchemaImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if not args.policy:
            print(
                "error: --check needs the policy to compare with: import-tools --check FILE PATH",
                file=sys.stderr,
            )
            return 2
        from policylang.schema.drift import check_drift, load_policy

        try:
            policy = load_policy(args.policy)
        except PolicyLoadError as exc:
            print(exc.render(), file=sys.stderr)
            return 2
        report = check_drift(specs, policy)
        for w in report.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(report.render())
        return 1 if report.drifted else 0
    if args.policy:
        print("error: a policy PATH is only taken with --check", file=sys.stderr)
        return 2
    result = tools_to_policy(specs, source=Path(args.file).name if args.file != "-" else "stdin")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.output:
        try:
            Path(args.output).write_text(result.text, encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.output}: {exc}", file=sys.stderr)
            return 2
        print(
            f"wrote {len(result.tools)} tool declaration{'s' if len(result.tools) != 1 else ''}"
            f" to {args.output}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(result.text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="policylang import-tools")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
