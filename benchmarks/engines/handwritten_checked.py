"""The same rules hand-written with the guarantees policylang gives, the fair floor.

`handwritten.py` is the bare floor: it trusts its input (a string amount
raises TypeError, an extra argument passes unnoticed) and answers with an
effect string. A guard in front of real tools cannot do that. This version is
what a careful person writes when held to policylang's contract:

- the request's shape is checked before any rule: every declared argument
  present, none undeclared, each of its declared type (bool is not a number,
  NaN is not an amount), timestamps read strictly as RFC 3339 with an offset,
  the principal and context fields the rules read of the right type;
- anything malformed or unexpected fails closed (deny, with a reason);
- the answer says why: the effect, the reasons and the names of the rules
  that decided it (deny stage first, then confirm, then allow, else default
  deny), in a small slotted object.

It is still plain Python with no framework, no audit and no ids or timing:
the practical floor for "the same work".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from benchmarks.domain_funcs import US_HOLIDAYS, zone
from benchmarks.workload import DATA, Request, Workload

Args = dict[str, Any]

_NY = zone("America/New_York")
_CURRENCIES = frozenset(("USD", "EUR", "GBP"))
_PAY_ROLES = frozenset(("finance", "admin"))
_STAFF = frozenset(("employee", "admin", "finance", "sales"))
_TRUSTED = tuple("@" + d for d in DATA["trusted_domains"])
_CRM_FIELDS = frozenset(DATA["crm_fields"])
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)


class Verdict:
    __slots__ = ("effect", "reasons", "rules")

    def __init__(self, effect: str, reasons: list[str], rules: list[str]) -> None:
        self.effect, self.reasons, self.rules = effect, reasons, rules


class BadRequest(Exception):
    pass


def _is_number(v: Any) -> bool:
    return (type(v) is int or type(v) is float) and math.isfinite(v)


def _timestamp(v: Any) -> datetime:
    if type(v) is str and _RFC3339.fullmatch(v):
        return datetime.fromisoformat(v)
    raise BadRequest("must be an RFC 3339 timestamp")


def _role(p: Any, c: Any) -> str:
    """The principal's role, after checking the principal and context fields the policy declares."""
    if type(p) is not dict or type(c) is not dict:
        raise BadRequest("principal and context must be objects")
    role, scopes = p["role"], p["scopes"]
    if type(p["id"]) is not str or type(role) is not str or type(scopes) is not list:
        raise BadRequest("malformed principal")
    for s in scopes:
        if type(s) is not str:
            raise BadRequest("principal.scopes must be a list of strings")
    if not _is_number(c["confidence"]) or type(c["session_id"]) is not str:
        raise BadRequest("malformed context")
    return role


def _args(args: Any, names: frozenset[str]) -> Args:
    if type(args) is not dict or args.keys() != names:
        raise BadRequest("arguments do not match the declaration")
    return args


_DEFAULT_DENY = ("no rule allows this call (default deny)",)
_PAY_ARGS = frozenset(("amount", "currency", "to"))


def payments_send(args: Any, principal: Any, context: Any) -> Verdict:
    a = _args(args, _PAY_ARGS)
    amount, currency = a["amount"], a["currency"]
    if not _is_number(amount) or type(currency) is not str or type(a["to"]) is not str:
        raise BadRequest("malformed arguments")
    role = _role(principal, context)
    reasons, rules = [], []
    if amount <= 0:
        reasons.append("amount must be positive")
        rules.append("payments_positive")
    if currency not in _CURRENCIES:
        reasons.append("unsupported currency")
        rules.append("payments_currency")
    if rules:
        return Verdict("deny", reasons, rules)
    if amount > 10000:
        reasons.append("large payment needs approval")
        rules.append("payments_large")
    if context["confidence"] < 0.85:
        reasons.append("low confidence in the intent parse")
        rules.append("payments_confidence")
    if rules:
        return Verdict("confirm", reasons, rules)
    if role in _PAY_ROLES and "payments:write" in principal["scopes"]:
        return Verdict(
            "allow", ["finance staff with the payments scope may pay"], ["payments_staff"]
        )
    return Verdict("deny", list(_DEFAULT_DENY), [])


_EVENT_ARGS = frozenset(("title", "start", "end"))


def calendar_create_event(args: Any, principal: Any, context: Any) -> Verdict:
    a = _args(args, _EVENT_ARGS)
    if type(a["title"]) is not str:
        raise BadRequest("malformed arguments")
    start, end = _timestamp(a["start"]), _timestamp(a["end"])
    role = _role(principal, context)
    reasons, rules = [], []
    if end <= start:
        reasons.append("negative duration")
        rules.append("calendar_duration")
    if start.astimezone(_NY).weekday() >= 5:
        reasons.append("no meetings at weekends")
        rules.append("calendar_weekend")
    if (
        start.date() in US_HOLIDAYS
    ):  # the timestamp's own offset, like policylang without a timezone
        reasons.append("no meetings on holidays")
        rules.append("calendar_holiday")
    if rules:
        return Verdict("deny", reasons, rules)
    if role in _STAFF:
        return Verdict("allow", ["staff may create events"], ["calendar_staff"])
    return Verdict("deny", list(_DEFAULT_DENY), [])


_MAIL_ARGS = frozenset(("to", "subject", "body"))


def email_send(args: Any, principal: Any, context: Any) -> Verdict:
    a = _args(args, _MAIL_ARGS)
    to = a["to"]
    if type(to) is not list or type(a["subject"]) is not str or type(a["body"]) is not str:
        raise BadRequest("malformed arguments")
    for r in to:
        if type(r) is not str:
            raise BadRequest("to must be a list of strings")
    role = _role(principal, context)
    for r in to:
        if not r.endswith(_TRUSTED):
            return Verdict("deny", ["recipient outside the trusted domains"], ["email_domains"])
    if role in _STAFF:
        return Verdict("allow", ["staff may send mail"], ["email_staff"])
    return Verdict("deny", list(_DEFAULT_DENY), [])


_CRM_ARGS = frozenset(("record_id", "field", "value"))


def crm_update(args: Any, principal: Any, context: Any) -> Verdict:
    a = _args(args, _CRM_ARGS)
    field = a["field"]
    if type(a["record_id"]) is not str or type(field) is not str or type(a["value"]) is not str:
        raise BadRequest("malformed arguments")
    if _role(principal, context) == "sales" and field in _CRM_FIELDS:
        return Verdict("allow", ["sales may edit the allowed fields"], ["crm_sales"])
    return Verdict("deny", list(_DEFAULT_DENY), [])


_FILE_ARGS = frozenset(("path",))


def files_delete(args: Any, principal: Any, context: Any) -> Verdict:
    path = _args(args, _FILE_ARGS)["path"]
    if type(path) is not str:
        raise BadRequest("malformed arguments")
    _role(principal, context)
    reasons, rules = [], []
    if path.startswith("/etc"):
        reasons.append("system files are off limits")
        rules.append("files_system")
    if path.startswith("/secrets"):
        reasons.append("secrets are off limits")
        rules.append("files_secrets")
    if rules:
        return Verdict("deny", reasons, rules)
    return Verdict("confirm", ["deleting a file needs a human"], ["files_human"])


class HandwrittenChecked:
    name = "handwritten-checked"

    def __init__(self) -> None:
        self._by_tool: dict[str, Callable[[Any, Any, Any], Verdict]] = {}

    def load(self, workload: Workload) -> None:
        checks = {
            f.__name__: f
            for f in (payments_send, calendar_create_event, email_send, crm_update, files_delete)
        }
        self._by_tool = {t.name: checks[t.kind.replace(".", "_")] for t in workload.tools}

    def decide(self, request: Request) -> str:
        check = self._by_tool.get(request.tool)
        if check is None:
            return "deny"
        try:
            return check(request.args, request.principal, request.context).effect
        except Exception:  # noqa: BLE001 - malformed or unexpected input fails closed
            return "deny"
