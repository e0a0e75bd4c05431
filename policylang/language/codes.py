"""The registry of diagnostic codes: one short doc per code, in one place.

Every code policylang reports (loader PL00x, checker PL1xx, lints PL2xx) is
listed here with what it means, why it matters and an example. The same text
feeds ``policylang lint --explain CODE``, the SARIF rule table and the docs.
Codes are stable: a code is never reused for a different problem.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from policylang.errors import Severity


@dataclass(frozen=True, slots=True)
class Code:
    """One diagnostic code. ``severity`` is the level it is reported at by default."""

    code: str
    name: str  # a short kebab-case name, used as the SARIF rule name
    severity: Severity
    summary: str  # one line: what it reports
    why: str  # why it matters
    example: str  # a snippet that triggers it
    fix: str = ""

    def explain(self) -> str:
        """The text ``policylang lint --explain CODE`` prints."""
        parts = [
            f"{self.code} ({self.name}) — {self.severity}",
            "",
            self.summary,
            "",
            "Why it matters:",
            f"  {self.why}",
            "",
            "Example:",
        ]
        parts.extend(f"  {line}" for line in self.example.splitlines())
        if self.fix:
            parts += ["", "How to fix it:", f"  {self.fix}"]
        return "\n".join(parts)


_ALL: list[Code] = [
    # ---- loading: the policy could not be read at all
    Code(
        "PL001",
        "syntax-error",
        "error",
        "The text is not valid policy syntax.",
        "Nothing in a file that does not parse can be checked or enforced.",
        "allow payments.send when args.amount = 5",
        "use '==' to compare; fix the syntax at the caret",
    ),
    Code(
        "PL002",
        "unreadable-path",
        "error",
        "A path does not exist, cannot be read, or is a folder without .policy files.",
        "A policy that silently loads nothing would decide every call by its default.",
        "policylang lint rules/typo/",
        "check the path; policy files end in .policy",
    ),
    Code(
        "PL003",
        "not-utf8",
        "error",
        "A policy or data file is not valid UTF-8.",
        "Policy text is read as UTF-8; other encodings would change names and strings.",
        "a file saved as Latin-1 containing 'é'",
        "save the file as UTF-8",
    ),
    Code(
        "PL004",
        "bad-data-file",
        "error",
        "A data file (YAML or JSON next to the policies) is invalid, or two share a name.",
        "Rules that read data.<name> need the data to load exactly as written.",
        "contacts.yaml:  - [unclosed",
        "fix the YAML/JSON at the reported line",
    ),
    Code(
        "PL005",
        "too-deep",
        "error",
        "An expression nests too deeply (also after predicates are inlined).",
        "Deep nesting is a sign of generated or hostile input and would exhaust the stack.",
        "deny x when ((((((...))))))",
        "split the condition into named predicates (def)",
    ),
    Code(
        "PL006",
        "too-large",
        "error",
        "A file or a policy is larger than the limits allow.",
        "Limits keep loading time and memory bounded.",
        "a 50 MB .policy file",
        "split the policy or generate fewer rules",
    ),
    Code(
        "PL007",
        "separate-policy",
        "info",
        "A subfolder holds .policy files of its own: lint checks it as a separate policy, and "
        "loading the parent folder does not include it.",
        "Engine.from_path(DIR) loads only DIR/*.policy; a deny rule kept in DIR/sub/ passes lint "
        "and CI but is never enforced by an engine loaded from DIR.",
        "rules/main.policy, rules/extra/deny.policy   # policylang lint rules/",
        "load the subfolder separately, or move its files into the parent folder",
    ),
    Code(
        "PL090",
        "format-failed",
        "error",
        "The formatter could not produce text that parses back to the same policy.",
        "fmt never changes what a policy means; it refuses instead.",
        "(a formatter bug)",
        "leave the file as it is and report the bug",
    ),
    # ---- checker: names and types
    Code(
        "PL101",
        "unknown-tool",
        "error",
        "A rule names a tool that is not declared (a glob that matches none is a warning).",
        "A rule for a misspelt tool never applies, so the protection it was meant to give is missing.",
        "tool payments.send { amount: number }\ndeny payment.send when args.amount > 100",
        "declare the tool or correct its name",
    ),
    Code(
        "PL102",
        "unknown-field",
        "error",
        "A condition reads a parameter or field that is not declared.",
        "Reading an undeclared field fails at decision time; the rule would always error.",
        "tool payments.send { amount: number }\ndeny payments.send when args.amout > 100",
        "use a declared name, or declare the field",
    ),
    Code(
        "PL103",
        "type-error",
        "error",
        "Operands or arguments have types that do not fit the operation.",
        "A comparison between different types is always false (or always true) in CEL.",
        'deny payments.send when args.amount > "100"',
        "convert one side, e.g. int(x) or string(x)",
    ),
    Code(
        "PL104",
        "unknown-function",
        "error",
        "A condition calls a function or method that does not exist.",
        "The call would fail at decision time.",
        'deny email.send when args.to.startswith("x")',
        "use a built-in (startsWith) or a def",
    ),
    Code(
        "PL105",
        "bad-arguments",
        "error",
        "A function, macro or predicate gets the wrong number or kind of arguments.",
        "The call cannot be evaluated.",
        "deny email.send when args.to.exists(size(args.to) > 3)",
        "e.g. xs.exists(x, x > 0)",
    ),
    Code(
        "PL106",
        "unknown-name",
        "error",
        "A condition uses a name that is not a variable.",
        "Conditions can only read args, principal, context, data, now, tool and macro variables.",
        'deny x when user.role == "guest"',
        "use principal.role",
    ),
    Code(
        "PL107",
        "declared-twice",
        "error",
        "A tool, shape or field is declared twice.",
        "Two declarations could disagree; the policy must say one thing.",
        "tool a { x: int }\ntool a { y: int }",
        "merge the declarations",
    ),
    Code(
        "PL108",
        "second-header",
        "error",
        "A second policy header, default or timezone.",
        "A policy has exactly one of each; two would make the outcome depend on file order.",
        "default deny\ndefault allow",
        "keep one, in the main file",
    ),
    Code(
        "PL109",
        "unknown-type",
        "error",
        "A declared type is unknown or has the wrong parameters.",
        "Arguments are validated against declared types before any rule runs.",
        "tool a { n: integer }",
        "types: string, int, double, number, bool, timestamp, duration, "
        "date, bytes, dyn, list<T>, map<K, V>",
    ),
    Code(
        "PL110",
        "not-bool",
        "error",
        "A condition (or an operand of &&, ||, !) is not a bool.",
        "CEL does not treat strings or numbers as true/false.",
        "deny email.send when args.subject",
        'compare it: args.subject != ""',
    ),
    Code(
        "PL111",
        "bad-regex",
        "error",
        "A constant regular expression is invalid or not RE2.",
        "Patterns use RE2 (linear time); back-references and look-around are not available.",
        'deny x when args.s.matches("(a)\\\\1")',
        "rewrite the pattern without RE2-unsupported syntax",
    ),
    Code(
        "PL112",
        "unknown-zone",
        "error",
        "An unknown IANA time zone name.",
        "Time functions would fail at decision time.",
        'timezone "Europe/Berln"',
        "use a name such as 'Europe/Berlin' or 'UTC'",
    ),
    Code(
        "PL113",
        "unknown-calendar",
        "error",
        "is_holiday() names a calendar it does not know.",
        "Holiday checks would fail at decision time.",
        'deny x when is_holiday(now, "XX")',
        "use an ISO country code such as 'US' or 'DE'",
    ),
    Code(
        "PL114",
        "unknown-data",
        "error",
        "A condition reads data.<name> but no such data file exists.",
        "The rule would fail at decision time.",
        "deny email.send when !(args.to in data.contact)",
        "add contact.yaml or fix the name",
    ),
    Code(
        "PL115",
        "bad-predicate",
        "error",
        "A predicate (def) is defined twice, is recursive, or shadows a built-in.",
        "Predicates are inlined; recursion or ambiguity cannot be compiled.",
        "def a(): b()\ndef b(): a()",
        "remove the cycle or rename the predicate",
    ),
    Code(
        "PL116",
        "int-overflow",
        "error",
        "An integer literal is outside the 64-bit range.",
        "CEL integers are 64-bit.",
        "deny x when args.n > 99999999999999999999",
        "use a double (1e20) or a smaller number",
    ),
    Code(
        "PL117",
        "duplicate-name",
        "error",
        "Two rules have the same name.",
        "Decisions, audit records and tests refer to rules by name.",
        "rule a: deny x\nrule a: allow x",
        "rename one of them",
    ),
    # ---- lints
    Code(
        "PL201",
        "never-true",
        "warning",
        "A condition (or part of it) can never be true.",
        "A rule that can never match protects nothing; usually a typo in a bound or an operator.",
        "deny payments.send when args.amount > 100 && args.amount < 50",
        "check the bounds; maybe '||' was meant",
    ),
    Code(
        "PL202",
        "always-true",
        "warning",
        "A condition (or part of it) is always true.",
        "The condition does not restrict anything; the rule applies to every call.",
        "deny payments.send when args.amount > 5 || args.amount <= 5",
        "check the bounds, or drop the condition if the rule is meant to be unconditional",
    ),
    Code(
        "PL203",
        "shadowed-allow",
        "warning",
        "An allow rule can never take effect: a deny on the same tools matches whenever it does.",
        "Deny overrides allow, so the allow rule is dead; often the deny is broader than intended.",
        'deny files.delete\nallow files.delete when principal.role == "admin"',
        "narrow the deny (when/unless), or remove the allow",
    ),
    Code(
        "PL204",
        "duplicate-rule",
        "warning",
        "Two rules (or limits) are exactly the same.",
        "The copy adds nothing and the two drift apart when one is edited.",
        "deny email.send when size(args.to) == 0\ndeny email.send when size(args.to) == 0",
        "delete one of them",
    ),
    Code(
        "PL205",
        "never-allowed",
        "warning",
        "Under 'default deny', a declared tool has no allow rule, so it can never be allowed.",
        "Every call to the tool is denied (or at best needs confirmation).",
        'default deny\ntool files.read { path: string }\ndeny files.read when args.path == "/etc"',
        "add an allow rule for the tool, or remove the declaration",
    ),
    Code(
        "PL206",
        "unused-tool",
        "warning",
        "A declared tool that no rule or limit mentions.",
        "The tool is decided by the default alone, which is rarely what the author meant.",
        "tool files.read { path: string }",
        "write rules for it, or remove the declaration",
    ),
    Code(
        "PL207",
        "bad-data-regex",
        "error",
        "A regular expression taken from a data file is invalid or not RE2.",
        "The rule fails (closed) on every call that reaches the pattern.",
        "deny email.send when data.patterns.exists(p, args.body.matches(p))   # patterns.yaml: ['(a)\\\\1']",
        "fix the pattern in the data file",
    ),
    Code(
        "PL208",
        "zero-limit",
        "warning",
        "A rate limit of zero.",
        "A limit of 0 denies every call it applies to; a deny rule says so more clearly.",
        "limit email.send to 0 per 1h",
        "write 'deny email.send' with a reason, or raise the limit",
    ),
    Code(
        "PL209",
        "no-reason",
        "warning",
        "A deny or confirm rule without 'because'.",
        "The decision is handed back to the model and the user; without a reason they cannot "
        "tell why the call was stopped.",
        'deny files.delete when args.path == "/"',
        'add: because "deleting / is never allowed"',
    ),
    Code(
        "PL210",
        "no-header",
        "warning",
        "The policy has no 'policy NAME' header.",
        "The header names the policy in decisions and audit records; without it the name is 'policy'. "
        "In a folder, put it in one file (e.g. main.policy).",
        "default deny\nallow x",
        'add: policy payments version "1.0.0"',
    ),
    Code(
        "PL211",
        "session-too-short",
        "warning",
        "A rule counts more earlier calls than the session declaration keeps.",
        "The engine remembers at most 'keep' calls per session; a count above that can never be "
        "reached, so the rule silently stops working.",
        'session by context.session_id keep 10\ndeny t when session.count("t") > 20',
        "raise keep, or count over a shorter history",
    ),
    Code(
        "PL214",
        "regex-control-char",
        "warning",
        "A constant regular expression holds a control character made by a string escape.",
        'In a non-raw string "\\b" is a backspace, not a word boundary: the pattern never matches '
        "what it reads as, and a rule meant to catch a leak silently does nothing.",
        'deny email.send when args.body.matches("(?i)\\bpassword\\b")',
        'use a raw string: r"(?i)\\bpassword\\b"',
    ),
    Code(
        "PL213",
        "secret-in-reason",
        "warning",
        "A 'because' text interpolates a value read from a @secret field (or derived from one).",
        "A secret never leaves the engine: the engine shows such a part as [redacted] in every "
        "decision, audit record and explanation, so the reason does not say what the author meant.",
        'tool pay { @secret card: string }\ndeny pay when args.card.startsWith("9") '
        'because "card {args.card} is refused"',
        'say what is wrong without the value: because "this card is refused"',
    ),
    Code(
        "PL212",
        "mixed-data-list",
        "warning",
        "A list in a data file holds elements of different types (e.g. strings and a bool).",
        "'args.x in data.list' only matches an element of the request value's own type, so an "
        "odd element never matches: a deny-list entry that silently denies nothing.",
        "blocked.yaml:  [US, !!bool true, ~]",
        "write every element the same way (plain values are strings)",
    ),
]

CODES: dict[str, Code] = {c.code: c for c in _ALL}

LOAD_CODES = frozenset(c for c in CODES if c.startswith("PL0"))


def get(code: str) -> Code | None:
    return CODES.get(code.strip().upper())


def suggest_code(code: str) -> str | None:
    close = difflib.get_close_matches(code.strip().upper(), list(CODES), n=1, cutoff=0.6)
    return close[0] if close else None


def explain(code: str) -> str:
    """The documentation of ``code``; raises KeyError for an unknown code."""
    entry = get(code)
    if entry is None:
        raise KeyError(code)
    return entry.explain()


__all__ = ["Code", "CODES", "LOAD_CODES", "get", "explain", "suggest_code"]
