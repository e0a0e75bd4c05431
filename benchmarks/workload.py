"""The benchmark workload: tools, rules, data, the policylang text and the requests.

Takes a size N (number of tools) and gives a `Workload`: the five base tools
replicated until there are N of them (`payments.send`, ..., then
`payments.send_1`, ..., `payments.send_199`), every replica carrying the same
rules. Every engine loads all N tools' rules; each request targets one tool.

The rules exist once here as CEL conditions (`RULES`), which the CEL engines
and the policylang text use verbatim; Cedar, Casbin and Rego adapters carry
their own translation of the same five rule templates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.domain_funcs import US_HOLIDAYS

KINDS: tuple[str, ...] = (
    "payments.send",
    "calendar.create_event",
    "email.send",
    "crm.update",
    "files.delete",
)

# Parameter declarations per base tool, in policylang's type syntax.
PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "payments.send": (("amount", "number"), ("currency", "string"), ("to", "string")),
    "calendar.create_event": (("title", "string"), ("start", "timestamp"), ("end", "timestamp")),
    "email.send": (("to", "list<string>"), ("subject", "string"), ("body", "string")),
    "crm.update": (("record_id", "string"), ("field", "string"), ("value", "string")),
    "files.delete": (("path", "string"),),
}

# Timestamp parameters: engines without a timestamp type get them converted in decide().
TIMESTAMP_PARAMS: dict[str, tuple[str, ...]] = {"calendar.create_event": ("start", "end")}

DATA: dict[str, list[str]] = {
    "trusted_domains": [
        "example.com",
        "corp.example.com",
        "partner.io",
        "acme.org",
        "globex.net",
        "initech.com",
        "umbrella.co",
        "hooli.xyz",
        "stark.io",
        "wayne.org",
    ],
    "crm_fields": ["name", "email", "phone", "stage", "notes", "owner"],
}


@dataclass(frozen=True, slots=True)
class Rule:
    effect: str  # "allow" | "deny" | "confirm"
    condition: str  # CEL; "true" means the rule always applies to its tool
    reason: str


# The rules of one replica of each base tool, as CEL over `args`, `principal`,
# `context` and `data`. Numeric literals are doubles so every CEL engine agrees.
RULES: dict[str, tuple[Rule, ...]] = {
    "payments.send": (
        Rule(
            "allow",
            'principal.role in ["finance", "admin"] && "payments:write" in principal.scopes',
            "finance staff with the payments scope may pay",
        ),
        Rule("deny", "args.amount <= 0.0", "amount must be positive"),
        Rule("confirm", "args.amount > 10000.0", "large payment needs approval"),
        Rule("deny", '!(args.currency in ["USD", "EUR", "GBP"])', "unsupported currency"),
        Rule("confirm", "context.confidence < 0.85", "low confidence in the intent parse"),
    ),
    "calendar.create_event": (
        Rule(
            "allow",
            'principal.role in ["employee", "admin", "finance", "sales"]',
            "staff may create events",
        ),
        Rule("deny", "args.end <= args.start", "negative duration"),
        Rule(
            "deny",
            'weekday(args.start, "America/New_York") in ["Sat", "Sun"]',
            "no meetings at weekends",
        ),
        Rule("deny", 'is_holiday(args.start, "US")', "no meetings on holidays"),
    ),
    "email.send": (
        Rule(
            "allow",
            'principal.role in ["employee", "admin", "finance", "sales"]',
            "staff may send mail",
        ),
        Rule(
            "deny",
            'args.to.exists(r, !data.trusted_domains.exists(d, r.endsWith("@" + d)))',
            "recipient outside the trusted domains",
        ),
    ),
    "crm.update": (
        Rule(
            "allow",
            'principal.role == "sales" && args.field in data.crm_fields',
            "sales may edit the allowed fields",
        ),
    ),
    "files.delete": (
        Rule("confirm", "true", "deleting a file needs a human"),
        Rule("deny", 'args.path.startsWith("/etc")', "system files are off limits"),
        Rule("deny", 'args.path.startsWith("/secrets")', "secrets are off limits"),
    ),
}


@dataclass(frozen=True, slots=True)
class Tool:
    name: str  # e.g. "payments.send_17"
    kind: str  # e.g. "payments.send"


@dataclass(frozen=True, slots=True)
class Request:
    tool: str
    args: dict[str, Any]
    principal: dict[str, Any]
    context: dict[str, Any]


@dataclass(slots=True)
class Workload:
    size: int
    tools: list[Tool]
    data: dict[str, list[str]] = field(default_factory=lambda: DATA)
    holidays: frozenset[date] = US_HOLIDAYS

    @property
    def rule_count(self) -> int:
        return sum(len(RULES[t.kind]) for t in self.tools)

    def rules(self) -> list[tuple[Tool, Rule]]:
        return [(t, r) for t in self.tools for r in RULES[t.kind]]

    def policylang_text(self) -> str:
        return policylang_text(self.tools)


def tool_name(kind: str, replica: int) -> str:
    return kind if replica == 0 else f"{kind}_{replica}"


def build_workload(size: int) -> Workload:
    tools = [
        Tool(tool_name(KINDS[i % len(KINDS)], i // len(KINDS)), KINDS[i % len(KINDS)])
        for i in range(size)
    ]
    return Workload(size=size, tools=tools)


# ---------------------------------------------------------------- policylang text

_HEADER = """\
policy bench version "1.0"
default deny

principal {
    id: string
    role: string
    scopes: list<string>
}

context {
    confidence: number
    session_id: string
}
"""


def policylang_text(tools: list[Tool]) -> str:
    """The whole workload in the policylang language (one place to adjust syntax)."""
    out = [_HEADER]
    for t in tools:
        params = "\n".join(f"    {name}: {typ}" for name, typ in PARAMS[t.kind])
        out.append(f"tool {t.name} {{\n{params}\n}}")
        for r in RULES[t.kind]:
            when = "" if r.condition == "true" else f"\n    when {r.condition}"
            out.append(f'{r.effect} {t.name}{when}\n    because "{r.reason}"')
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- requests

_NY = ZoneInfo("America/New_York")
_ROLES = ("finance", "admin", "employee", "sales", "guest")
_SCOPES = ("payments:write", "calendar:write", "email:send")
_UNTRUSTED = ("evil.com", "gmail.com", "example.com.attacker.net", "partner.io.xyz")
_OTHER_FIELDS = ("ssn", "salary", "password")
_PATHS = (
    "/home/ana/report.pdf",
    "/tmp/cache.bin",
    "/var/log/app.log",
    "/srv/data/old.csv",
    "/etc/passwd",
    "/etc/ssh/sshd_config",
    "/secrets/api.key",
    "/secrets/db/password",
)
_FIRST_DAY = date(2024, 1, 1)
_DAYS = (date(2026, 12, 31) - _FIRST_DAY).days
_HOLIDAYS_IN_RANGE = sorted(d for d in US_HOLIDAYS if 2024 <= d.year <= 2026)


def _payments(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.10:
        amount = rng.choice((0.0, -1.0, -250.5))
    elif roll < 0.25:
        amount = round(rng.uniform(10000.01, 90000.0), 2)
    else:
        amount = round(rng.uniform(1.0, 9999.99), 2)
    currency = (
        rng.choice(("USD", "EUR", "GBP")) if rng.random() < 0.85 else rng.choice(("JPY", "BTC"))
    )
    return {"amount": amount, "currency": currency, "to": f"acct-{rng.randrange(10**6):06d}"}


def _calendar(rng: random.Random) -> dict[str, Any]:
    day = (
        rng.choice(_HOLIDAYS_IN_RANGE)
        if rng.random() < 0.25
        else _FIRST_DAY + timedelta(rng.randrange(_DAYS))
    )
    # Working hours in New York, so the date is the same in New York and in UTC
    # whichever way an engine reads is_holiday()'s date.
    start = datetime(
        day.year, day.month, day.day, rng.randrange(8, 17), rng.choice((0, 15, 30, 45)), tzinfo=_NY
    )
    minutes = rng.choice((30, 60, 90)) if rng.random() < 0.9 else rng.choice((0, -30))
    end = start + timedelta(minutes=minutes)
    return {
        "title": f"sync #{rng.randrange(1000)}",
        "start": start.isoformat(),
        "end": end.isoformat(),
    }


def _email(rng: random.Random) -> dict[str, Any]:
    to = []
    for _ in range(rng.randint(1, 3)):
        domains = DATA["trusted_domains"] if rng.random() < 0.85 else _UNTRUSTED
        to.append(f"user{rng.randrange(100)}@{rng.choice(domains)}")
    return {"to": to, "subject": "status", "body": "See the notes from today's meeting."}


def _crm(rng: random.Random) -> dict[str, Any]:
    fields = DATA["crm_fields"] if rng.random() < 0.75 else _OTHER_FIELDS
    return {"record_id": f"rec-{rng.randrange(10**5)}", "field": rng.choice(fields), "value": "x"}


def _files(rng: random.Random) -> dict[str, Any]:
    return {"path": rng.choice(_PATHS)}


_ARGS = {
    "payments.send": _payments,
    "calendar.create_event": _calendar,
    "email.send": _email,
    "crm.update": _crm,
    "files.delete": _files,
}


def generate_requests(workload: Workload, count: int, seed: int = 42) -> list[Request]:
    """`count` requests spread uniformly over the workload's tools."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        tool = rng.choice(workload.tools)
        role = rng.choices(_ROLES, weights=(3, 2, 4, 2, 1))[0]
        scopes = [s for s in _SCOPES if rng.random() < 0.6]
        principal = {"id": f"u{rng.randrange(500)}", "role": role, "scopes": scopes}
        context = {"confidence": round(rng.uniform(0.6, 1.0), 3), "session_id": f"s{i}"}
        out.append(Request(tool.name, _ARGS[tool.kind](rng), principal, context))
    return out
