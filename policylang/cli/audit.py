"""``policylang audit verify FILE``: check an audit log's hash chain.

Reports the first edited, deleted, inserted, reordered or torn record, with
its line number; ``--repair`` cuts off a torn last line (a crash mid-write).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from policylang.cli.common import EXIT_FINDINGS, EXIT_OK, CliError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="work with audit logs (verify the hash chain)",
        description="Work with policylang audit logs (JSON Lines, hash-chained).",
        epilog="examples:\n  policylang audit verify audit.jsonl\n"
        "  policylang audit verify audit.jsonl --chain      # with its rotated files\n"
        "  policylang audit verify audit.jsonl --repair     # cut a torn last line",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="audit_command", metavar="ACTION")
    v = actions.add_parser(
        "verify",
        help="verify the hash chain of an audit file",
        description="Verify every record's hash and its link to the previous one.",
    )
    v.add_argument("file", help="the audit file (JSON Lines)")
    v.add_argument(
        "--chain", action="store_true", help="also verify the rotated files (.1, .2, ...)"
    )
    v.add_argument("--repair", action="store_true", help="cut off a torn last line")
    v.add_argument("--key-file", help="file holding the HMAC key the log was written with")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policylang.runtime.audit import verify_chain, verify_file

    if getattr(args, "audit_command", None) != "verify":
        raise CliError("say what to do: policylang audit verify FILE")
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file}: no such file", EXIT_FINDINGS)
    key = None
    if args.key_file:
        try:
            key = Path(args.key_file).read_bytes().strip()
        except OSError as exc:
            raise CliError(f"{args.key_file}: cannot read the key ({exc.strerror})") from None
    result = (
        verify_chain(path, key=key)
        if args.chain
        else verify_file(path, key=key, repair=args.repair)
    )
    print(result.message)
    return EXIT_OK if result.ok else EXIT_FINDINGS
