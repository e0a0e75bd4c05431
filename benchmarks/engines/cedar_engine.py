"""cedarpy: Cedar (the Rust authorizer behind Amazon Verified Permissions).

Translation. Each tool is a Cedar action (`Action::"payments.send_17"`); the
principal is a `User` entity with `role` and `scopes`. Cedar decides only
Allow/Deny, so every rule becomes a `permit` whose `@id` names its effect
(`@id("deny:payments.send_17:1")`), and one `is_authorized` call tells which
rules fired (`diagnostics.reasons`); the adapter then combines them as
policylang does: deny, then confirm, then allow, else deny. (A plain
permit/forbid set could not tell "a deny rule fired" from "nothing allowed",
nor express confirm.) A policy that errors is skipped by Cedar, so any
evaluation error is treated as deny.

Cedar has no floats, quantifiers, time zones or calendars, so `decide` converts:
numbers to `decimal` (4 places), ISO timestamps to `datetime`, and adds derived
context that Cedar cannot compute: the start's New York weekday and date, and
the set of recipient domains (checked with `containsAll`). The holiday dates and
the workload's data lists live in entities parsed once at load
(`Calendar::"US".holidays`, `Data::"bench"`); each call adds its principal to
that base with `Entities.with_added_json_str`. Policies are parsed once into a
`PolicySet` handle. All of that per-call conversion is timed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import cedarpy

from benchmarks.domain_funcs import US_HOLIDAY_STRINGS, local_date, weekday
from benchmarks.workload import Request, Workload

_STAFF = '["employee", "admin", "finance", "sales"]'

# Per base tool: (effect, Cedar condition or "" for none). Same order as workload.RULES.
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "payments.send": (
        (
            "allow",
            '["finance", "admin"].contains(principal.role)'
            ' && principal.scopes.contains("payments:write")',
        ),
        ("deny", 'context.args.amount.lessThanOrEqual(decimal("0.0"))'),
        ("confirm", 'context.args.amount.greaterThan(decimal("10000.0"))'),
        ("deny", '!["USD", "EUR", "GBP"].contains(context.args.currency)'),
        ("confirm", 'context.confidence.lessThan(decimal("0.85"))'),
    ),
    "calendar.create_event": (
        ("allow", f"{_STAFF}.contains(principal.role)"),
        ("deny", "context.args.end <= context.args.start"),
        ("deny", '["Sat", "Sun"].contains(context.start_weekday_ny)'),
        ("deny", 'Calendar::"US".holidays.contains(context.start_date_ny)'),
    ),
    "email.send": (
        ("allow", f"{_STAFF}.contains(principal.role)"),
        ("deny", '!Data::"bench".trusted_domains.containsAll(context.recipient_domains)'),
    ),
    "crm.update": (
        (
            "allow",
            'principal.role == "sales" && Data::"bench".crm_fields.contains(context.args.field)',
        ),
    ),
    "files.delete": (
        ("confirm", ""),
        ("deny", 'context.args.path like "/etc*"'),
        ("deny", 'context.args.path like "/secrets*"'),
    ),
}


def cedar_policies(workload: Workload) -> tuple[str, list[str]]:
    """The Cedar text of the workload and the effect of each policy, by position."""
    parts, effects = [], []
    for tool in workload.tools:
        for n, (effect, cond) in enumerate(TEMPLATES[tool.kind]):
            when = f"\nwhen {{ {cond} }}" if cond else ""
            parts.append(
                f'@id("{effect}:{tool.name}:{n}")\n'
                f'permit(principal, action == Action::"{tool.name}", resource){when};'
            )
            effects.append(effect)
    return "\n".join(parts), effects


def _decimal(x: float) -> dict[str, Any]:
    return {"__extn": {"fn": "decimal", "arg": f"{x:.4f}"}}


def _datetime(iso: str) -> dict[str, Any]:
    # Cedar wants "+hhmm" offsets: "2025-12-25T10:00:00-05:00" -> "...-0500"
    return {"__extn": {"fn": "datetime", "arg": iso[:-3] + iso[-2:]}}


def _payments(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    a = dict(args, amount=_decimal(args["amount"]))
    return {"args": a, "confidence": _decimal(context["confidence"])}


def _calendar(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    start = datetime.fromisoformat(args["start"])
    a = dict(args, start=_datetime(args["start"]), end=_datetime(args["end"]))
    return {
        "args": a,
        "start_weekday_ny": weekday(start, "America/New_York"),
        "start_date_ny": local_date(start, "America/New_York").isoformat(),
    }


def _email(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"args": args, "recipient_domains": [r.rpartition("@")[2] for r in args["to"]]}


def _plain(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"args": args}


_CONTEXT = {
    "payments.send": _payments,
    "calendar.create_event": _calendar,
    "email.send": _email,
    "crm.update": _plain,
    "files.delete": _plain,
}


class Cedar:
    name = "cedarpy"

    def __init__(self) -> None:
        self._policies: Any = None
        self._entities: Any = None
        self._effects: dict[str, str] = {}
        self._kind: dict[str, str] = {}

    def load(self, workload: Workload) -> None:
        text, effects = cedar_policies(workload)
        self._policies = cedarpy.PolicySet.from_str(text)
        self._effects = {f"policy{i}": e for i, e in enumerate(effects)}
        self._kind = {t.name: t.kind for t in workload.tools}
        base = [
            {
                "uid": {"type": "Calendar", "id": "US"},
                "attrs": {"holidays": sorted(US_HOLIDAY_STRINGS)},
                "parents": [],
            },
            {"uid": {"type": "Data", "id": "bench"}, "attrs": dict(workload.data), "parents": []},
        ]
        self._entities = cedarpy.Entities.from_json_str(json.dumps(base))

    def decide(self, request: Request) -> str:
        kind = self._kind.get(request.tool)
        if kind is None:
            return "deny"
        p = request.principal
        user = {
            "uid": {"type": "User", "id": p["id"]},
            "attrs": {"role": p["role"], "scopes": p["scopes"]},
            "parents": [],
        }
        entities = self._entities.with_added_json_str(json.dumps([user]))
        result = cedarpy.is_authorized(
            {
                "principal": {"type": "User", "id": p["id"]},
                "action": {"type": "Action", "id": request.tool},
                "resource": {"type": "Tool", "id": request.tool},
                "context": _CONTEXT[kind](request.args, request.context),
            },
            self._policies,
            entities,
        )
        diagnostics = result.diagnostics
        if diagnostics.errors:
            return "deny"
        fired = {self._effects[r] for r in diagnostics.reasons}
        if "deny" in fired:
            return "deny"
        if "confirm" in fired:
            return "confirm"
        return "allow" if "allow" in fired else "deny"
