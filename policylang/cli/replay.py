"""``policylang replay AUDIT.jsonl --policy NEW``: what a policy change would flip.

Re-decides every recorded request against a candidate policy, at the time it
was recorded, and reports the decisions that would change, grouped by tool,
principal and rule, with examples. ``--fail-on`` says which flips exit 1 so CI
can stop the change: ``open`` (the default: anything that becomes allow),
``loosen`` (any move up the order deny < confirm < allow, so deny -> confirm
counts too) or ``change`` (any flip at all). Loosened and tightened counts are
always reported, in text and in ``--json``.

Nothing it prints holds a ``@secret`` value: examples show the recorded
inputs with the candidate policy's secret fields redacted too, and messages
come from the engine's redaction funnel. An audit record holds its secrets
as the marker, so a record that the candidate refuses only because a secret
is redacted (``invalid_request`` on a marker) is counted as ``unreplayable``,
not as a flip.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policylang.cli.common import EXIT_FINDINGS, EXIT_OK, CliError, load_engine
from policylang.errors import EvalError
from policylang.language.secrets import MARKER
from policylang.runtime import timefuncs
from policylang.runtime.clock import FixedClock

_RANK = {"deny": 0, "confirm": 1, "allow": 2}
FAIL_ON = ("open", "loosen", "change")


def fails(fail_on: str, opened: int, loosened: int, changed: int) -> bool:
    """Does a replay's outcome fail CI under ``--fail-on``? (open: anything became allow;
    loosen: anything moved up deny < confirm < allow; change: anything flipped at all)."""
    if fail_on not in FAIL_ON:
        raise CliError(f"--fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    count = {"open": opened, "loosen": loosened, "change": changed}[fail_on]
    return count > 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="re-decide recorded requests against a candidate policy",
        description="Re-decide every request in an audit log against a candidate policy, with "
        "the recorded time, and report the decisions that would change.",
        epilog="example:\n  policylang replay audit.jsonl --policy rules-next/\n\n"
        "exit codes: 0 nothing fails --fail-on, 1 some call flips as --fail-on names "
        "(open: to allow; loosen: up deny < confirm < allow; change: any flip), 2 usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("audit", help="the audit log (JSON Lines, as written by JsonlSink)")
    p.add_argument("--policy", required=True, help="the candidate policy (file or folder)")
    p.add_argument("--examples", type=int, default=3, help="examples shown per kind of flip")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="open",
        help="which flips exit 1: open (to allow, the default), loosen (any move up "
        "deny < confirm < allow), change (any flip)",
    )
    p.set_defaults(run=run)


def _records(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise CliError(f"{path}: cannot read the audit log ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: the audit log is not UTF-8 text") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # a torn last line from a crash
                continue
            raise CliError(f"{path}:{n}: not a JSON record") from None
        if (
            isinstance(record, dict)
            and "kind" not in record
            and "tool" in record
            and "effect" in record
        ):
            out.append(record)
    return out


def _holds_marker(value: Any, depth: int = 0) -> bool:
    """Does a recorded value hold the redaction marker anywhere (a secret the log did not keep)?"""
    if value == MARKER:
        return True
    if depth > 32:
        return False
    if isinstance(value, dict):
        return any(_holds_marker(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_holds_marker(v, depth + 1) for v in value)
    return False


def _set_clock(clock: FixedClock, at: Any) -> None:
    """Move the replay's clock to a record's time (kept as is if the record has none or a bad one)."""
    if at is None:
        return
    try:
        clock.set(timefuncs.parse_timestamp(at, UTC))
    except (EvalError, TypeError, ValueError):
        return


def run(args: argparse.Namespace) -> int:
    # A Namespace built by a caller (not by the parser) may predate --fail-on: keep its meaning.
    fail_on = getattr(args, "fail_on", "open")
    records = _records(Path(args.audit))
    engine = load_engine(args.policy)
    # Limit windows and session expiry run on the engine's clock, never on context.now: the
    # replay's clock is set to each record's time, so limits see the traffic as it happened.
    clock = FixedClock(datetime.now(UTC))
    engine.clock = clock
    flips: Counter[tuple[str, str, str]] = Counter()
    by_tool: Counter[str] = Counter()
    by_principal: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    examples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    opened = loosened = tightened = unreplayable = 0
    for rec in records:
        context = dict(rec.get("context") or {})
        if rec.get("at") and "now" not in context:
            context["now"] = rec["at"]
        _set_clock(clock, rec.get("at") or context.get("now"))
        principal = rec.get("principal")
        if principal is None and rec.get("principal_id") is not None:
            principal = {"id": rec["principal_id"]}
        new = engine.decide(rec["tool"], args=rec.get("args"), principal=principal, context=context)
        old_effect, new_effect = str(rec["effect"]), new.effect.value
        if old_effect == new_effect:
            continue
        if new.code == "invalid_request" and _holds_marker([rec.get("args"), principal, context]):
            unreplayable += 1  # the log kept only the marker of a secret the candidate type-checks
            continue
        flips[(rec["tool"], old_effect, new_effect)] += 1
        by_tool[rec["tool"]] += 1
        by_principal[str(rec.get("principal_id"))] += 1
        for rid in new.rule_names or [new.code]:
            by_rule[rid] += 1
        # A recorded effect the ranking does not know (a corrupt record) ranks as deny, so a move
        # from it to confirm or allow counts as loosening, never as harmless.
        old_rank, new_rank = _RANK.get(old_effect, 0), _RANK[new_effect]
        if new_rank > old_rank:
            loosened += 1
            if new_effect == "allow":
                opened += 1
        else:
            tightened += 1
        bucket = examples.setdefault((old_effect, new_effect), [])
        if len(bucket) < args.examples:
            shown_args, shown_principal, shown_context = engine.redact_request(
                rec["tool"], rec.get("args"), principal, context
            )
            bucket.append(
                {
                    "tool": rec["tool"],
                    "args": shown_args,
                    "principal": shown_principal,
                    "context": shown_context,
                    "was": old_effect,
                    "now": new_effect,
                    "message": new.message,
                }
            )
    changed = sum(flips.values())
    report = {
        "records": len(records),
        "changed": changed,
        "opened": opened,
        "loosened": loosened,
        "tightened": tightened,
        "fail_on": fail_on,
        "unreplayable": unreplayable,
        "flips": [
            {"tool": t, "from": a, "to": b, "count": n} for (t, a, b), n in flips.most_common()
        ],
        "by_principal": dict(by_principal.most_common(10)),
        "by_rule": dict(by_rule.most_common(10)),
        "examples": {f"{a}->{b}": ex for (a, b), ex in examples.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(
            f"{len(records)} recorded decisions replayed; {report['changed']} would change, "
            f"{opened} of them to allow; {loosened} loosened, {tightened} tightened"
        )
        if unreplayable:
            print(
                f"  {unreplayable} not replayable: the log holds a redacted @secret value the "
                "candidate policy cannot check"
            )
        for (tool, a, b), n in flips.most_common():
            print(f"  {tool}: {a} -> {b}  x{n}")
        if by_rule:
            print(
                "rules behind the new decisions: "
                + ", ".join(f"{r} ({n})" for r, n in by_rule.most_common(5))
            )
        for (a, b), ex in examples.items():
            print(f"examples {a} -> {b}:")
            for e in ex:
                print(f"  {e['tool']} {json.dumps(e['args'], default=str)[:100]}: {e['message']}")
    failed = fails(fail_on, opened, loosened, changed)
    if failed and not args.json:
        print(f"fails --fail-on {fail_on}")
    return EXIT_FINDINGS if failed else EXIT_OK
