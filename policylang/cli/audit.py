"""``policylang audit verify FILE``: check an audit log's hash chain.

Reports the first edited, deleted, inserted, reordered or torn record, with
its line number; ``--repair`` cuts off a torn last line (a crash mid-write),
and only that. The chain alone cannot show records cut from the end of the
log: an anchor can — ``--expect-seq N`` (the log must reach record N),
``--expect-head HASH`` (that record, or some record, has this hash) or
``--head-file`` (both, from the head file ``JsonlSink(head=True)`` publishes;
``FILE.head`` is read by default when it exists, ``--no-head`` skips it).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from policylang.cli.common import EXIT_FINDINGS, EXIT_OK, CliError


def _seq(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a record number (1 or more), got {text!r}")
    return int(text)


def _hash(text: str) -> str:
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise argparse.ArgumentTypeError(f"expected a record hash (64 hex digits), got {text!r}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="work with audit logs (verify the hash chain)",
        description="Work with policylang audit logs (JSON Lines, hash-chained).",
        epilog="examples:\n  policylang audit verify audit.jsonl\n"
        "  policylang audit verify audit.jsonl --chain      # with its rotated files\n"
        "  policylang audit verify audit.jsonl --repair     # cut a torn last line\n"
        "  policylang audit verify audit.jsonl --expect-seq 1200 --expect-head 3f0c...\n"
        "  policylang audit verify audit.jsonl --head-file /elsewhere/audit.jsonl.head",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="audit_command", metavar="ACTION")
    v = actions.add_parser(
        "verify",
        help="verify the hash chain of an audit file",
        description="Verify every record's hash and its link to the previous one. Records cut "
        "from the end are found only against an anchor kept elsewhere: "
        "--expect-seq, --expect-head or a head file.",
    )
    v.add_argument("file", help="the audit file (JSON Lines)")
    v.add_argument(
        "--chain", action="store_true", help="also verify the rotated files (.1, .2, ...)"
    )
    v.add_argument(
        "--repair",
        action="store_true",
        help="cut off a torn last line (only a torn record of this chain)",
    )
    v.add_argument("--key-file", help="file holding the HMAC key the log was written with")
    v.add_argument(
        "--expect-seq",
        type=_seq,
        metavar="N",
        help="the log must reach record N (finds records cut from the end)",
    )
    v.add_argument(
        "--expect-head",
        type=_hash,
        metavar="HASH",
        help="record N (with --expect-seq), or some record, must have this hash",
    )
    v.add_argument(
        "--from-start",
        action="store_true",
        help="the oldest file must begin the chain (seq 1): finds records dropped from "
        "the start (else a later start is taken as rotated-away files, and said)",
    )
    head = v.add_mutually_exclusive_group()
    head.add_argument(
        "--head-file",
        metavar="FILE",
        help="check against the (seq, hash) in this head file (default: FILE.head if it exists)",
    )
    head.add_argument("--no-head", action="store_true", help="do not read FILE.head")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policylang.runtime.audit import GENESIS, VerifyResult, read_head, verify_chain, verify_file

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
    anchors: list[tuple[int | None, str | None, str]] = []
    if args.expect_seq is not None or args.expect_head is not None:
        flags = [
            f
            for f, v in (("--expect-seq", args.expect_seq), ("--expect-head", args.expect_head))
            if v is not None
        ]
        anchors.append((args.expect_seq, args.expect_head, "/".join(flags)))
    head_file = Path(args.head_file) if args.head_file else None
    if head_file is None and not args.no_head:
        default = path.with_name(path.name + ".head")
        head_file = default if default.is_file() else None
    if head_file is not None:
        try:
            seq, digest = read_head(head_file, key=key)
        except FileNotFoundError:
            raise CliError(f"{head_file}: no such head file", EXIT_FINDINGS) from None
        except ValueError as exc:
            raise CliError(str(exc), EXIT_FINDINGS) from None
        anchors.append((seq, digest, f"the head file {head_file.name} (seq {seq})"))
    results: list[VerifyResult] = []
    for seq_, digest_, origin in anchors or [(None, None, "")]:
        first, before = (0, GENESIS) if args.from_start else (None, None)
        if args.chain:
            r = verify_chain(
                path,
                key=key,
                head_seq=seq_,
                head_hash=digest_,
                head_origin=origin,
                expect_seq=first,
                expect_prev=before,
            )
        else:
            r = verify_file(
                path,
                key=key,
                repair=args.repair and not results,
                head_seq=seq_,
                head_hash=digest_,
                head_origin=origin,
                expect_seq=first,
                expect_prev=before,
            )
        results.append(r)
        if not r.ok:
            break
    for r in results:
        print(r.message)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FINDINGS
