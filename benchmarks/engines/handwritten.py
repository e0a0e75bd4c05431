"""The floor: the workload's rules as plain Python, written the way a careful person would.

Per call it does what policylang does: look the tool up, parse timestamp
arguments, check the rules (deny first, then confirm, then allow) and return
the effect. It builds no result object. It is also the oracle the other
engines must agree with.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from benchmarks.domain_funcs import US_HOLIDAYS, zone
from benchmarks.workload import DATA, Request, Workload

Args = dict[str, Any]
Check = Callable[[Args, Args, Args], str]

_NY = zone("America/New_York")
_CURRENCIES = frozenset(("USD", "EUR", "GBP"))
_PAY_ROLES = frozenset(("finance", "admin"))
_STAFF = frozenset(("employee", "admin", "finance", "sales"))
_TRUSTED = frozenset(DATA["trusted_domains"])
_CRM_FIELDS = frozenset(DATA["crm_fields"])


def payments_send(args: Args, principal: Args, context: Args) -> str:
    amount = args["amount"]
    if amount <= 0 or args["currency"] not in _CURRENCIES:
        return "deny"
    if amount > 10000 or context["confidence"] < 0.85:
        return "confirm"
    if principal["role"] in _PAY_ROLES and "payments:write" in principal["scopes"]:
        return "allow"
    return "deny"


def calendar_create_event(args: Args, principal: Args, context: Args) -> str:
    start = datetime.fromisoformat(args["start"])
    if datetime.fromisoformat(args["end"]) <= start:
        return "deny"
    local = start.astimezone(_NY)
    if local.weekday() >= 5 or local.date() in US_HOLIDAYS:
        return "deny"
    return "allow" if principal["role"] in _STAFF else "deny"


def email_send(args: Args, principal: Args, context: Args) -> str:
    for recipient in args["to"]:
        if recipient.rpartition("@")[2] not in _TRUSTED:
            return "deny"
    return "allow" if principal["role"] in _STAFF else "deny"


def crm_update(args: Args, principal: Args, context: Args) -> str:
    if principal["role"] == "sales" and args["field"] in _CRM_FIELDS:
        return "allow"
    return "deny"


def files_delete(args: Args, principal: Args, context: Args) -> str:
    if args["path"].startswith(("/etc", "/secrets")):
        return "deny"
    return "confirm"


CHECKS: dict[str, Check] = {
    "payments.send": payments_send,
    "calendar.create_event": calendar_create_event,
    "email.send": email_send,
    "crm.update": crm_update,
    "files.delete": files_delete,
}


class Handwritten:
    name = "handwritten"

    def __init__(self) -> None:
        self._by_tool: dict[str, Check] = {}

    def load(self, workload: Workload) -> None:
        self._by_tool = {t.name: CHECKS[t.kind] for t in workload.tools}

    def decide(self, request: Request) -> str:
        check = self._by_tool.get(request.tool)
        if check is None:
            return "deny"
        return check(request.args, request.principal, request.context)
