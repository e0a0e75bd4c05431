"""regorus: Microsoft's Rego interpreter (OPA's language) in Rust, through its Python binding.

NOT RUN HERE: `pip install regorus` finds no distribution for this machine, so
the table shows "not installable". The adapter is written against the
binding's documented API (`Engine.add_policy`, `add_data_json`,
`set_input_json`, `eval_rule`) so it runs wherever the package installs; the
agreement check guards it before any timing.

Translation. One Rego package; per tool, `deny` / `confirm` / `allow` partial
rules guarded by `input.tool == "<tool>"` (OPA indexes such equality guards;
whether regorus does is part of what the sizes show). `decision` combines them
as policylang does. Rego has time zones and quantifiers, so weekday, holiday
(`time.date` against `data.holidays` as [y, m, d] triples) and the recipient
check are native. The request goes in as JSON each call (timed).
"""

from __future__ import annotations

import json
from typing import Any

import regorus

from benchmarks.domain_funcs import US_HOLIDAYS
from benchmarks.workload import Request, Workload

_HEADER = """\
package bench

import rego.v1

default decision := "deny"

decision := "deny" if deny
decision := "confirm" if { not deny; confirm }
decision := "allow" if { not deny; not confirm; allow }

staff := {"employee", "admin", "finance", "sales"}

start_ns := time.parse_rfc3339_ns(input.args.start)

trusted(r) if {
    some d in data.trusted_domains
    endswith(r, concat("", ["@", d]))
}
"""

_NY = '"America/New_York"'

# Per base tool: (effect, Rego body). Same rules as workload.RULES.
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "payments.send": (
        (
            "allow",
            'input.principal.role in {"finance", "admin"}; '
            '"payments:write" in input.principal.scopes',
        ),
        ("deny", "input.args.amount <= 0"),
        ("confirm", "input.args.amount > 10000"),
        ("deny", 'not input.args.currency in {"USD", "EUR", "GBP"}'),
        ("confirm", "input.context.confidence < 0.85"),
    ),
    "calendar.create_event": (
        ("allow", "input.principal.role in staff"),
        ("deny", "time.parse_rfc3339_ns(input.args.end) <= start_ns"),
        ("deny", f'time.weekday([start_ns, {_NY}]) in {{"Saturday", "Sunday"}}'),
        ("deny", f"time.date([start_ns, {_NY}]) in data.holidays"),
    ),
    "email.send": (
        ("allow", "input.principal.role in staff"),
        ("deny", "some r in input.args.to; not trusted(r)"),
    ),
    "crm.update": (
        ("allow", 'input.principal.role == "sales"; input.args.field in data.crm_fields'),
    ),
    "files.delete": (
        ("confirm", "true"),
        ("deny", 'startswith(input.args.path, "/etc")'),
        ("deny", 'startswith(input.args.path, "/secrets")'),
    ),
}


def rego_policy(workload: Workload) -> str:
    lines = [_HEADER]
    for tool in workload.tools:
        for effect, body in TEMPLATES[tool.kind]:
            lines.append(f'{effect} if {{ input.tool == "{tool.name}"; {body} }}')
    return "\n".join(lines) + "\n"


class Regorus:
    name = "regorus"

    def __init__(self) -> None:
        self._engine: Any = None

    def load(self, workload: Workload) -> None:
        engine = regorus.Engine()
        engine.add_policy("bench.rego", rego_policy(workload))
        data = dict(workload.data, holidays=[[d.year, d.month, d.day] for d in sorted(US_HOLIDAYS)])
        engine.add_data_json(json.dumps(data))
        self._engine = engine

    def decide(self, request: Request) -> str:
        self._engine.set_input_json(
            json.dumps(
                {
                    "tool": request.tool,
                    "args": request.args,
                    "principal": request.principal,
                    "context": request.context,
                }
            )
        )
        result = self._engine.eval_rule("data.bench.decision")
        return result if result in ("allow", "deny", "confirm") else "deny"
