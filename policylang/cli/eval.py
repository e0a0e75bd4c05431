"""``policylang eval PATH --request FILE|-``: decide one tool call and say why.

Takes a policy path and a request (``{tool, args, principal, context}`` as
JSON or YAML, or ``--tool/--args/--principal/--context``); gives the
decision as text or JSON. ``--explain`` re-evaluates every rule that applies
to the tool with the reference interpreter and shows whether it matched, the
values its condition read, and how the effects were combined.
Exit 0 allow, 1 deny, 3 confirm, 2 usage or load error.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from policylang.cli.common import (
    CliError,
    Painter,
    load_engine,
    parse_structured,
    read_input,
    short,
    use_colour,
)
from policylang.errors import RequestError
from policylang.language import ast
from policylang.runtime.timefuncs import format_duration

EXIT_ALLOW, EXIT_DENY, EXIT_CONFIRM = 0, 1, 3
ENV_NAMES = frozenset({"args", "principal", "context", "data", "now", "tool", "session"})

EPILOG = """\
examples:
  policylang eval rules/ --request rules/requests/payment_large.json
  policylang eval rules/ --request - < call.yaml
  policylang eval rules/ --tool payments.send --args '{"amount": 50, "currency": "USD", "to": "Acme"}' \\
      --principal '{"id": "u1", "role": "finance", "scopes": ["payments:write"]}'
  policylang eval rules/ --request call.json --explain      every rule, matched or not, and why
  policylang eval rules/ --request call.json --json         the Decision as JSON

exit codes: 0 allow, 1 deny, 3 confirm, 2 usage or load error."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="decide one tool call against a policy",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="a .policy file or a policy folder")
    p.add_argument(
        "--request",
        "-r",
        metavar="FILE",
        help="the request as JSON or YAML: {tool, args, principal, context}; '-' reads stdin",
    )
    p.add_argument("--tool", help="the tool name (overrides the request's)")
    p.add_argument("--args", metavar="JSON", help="the tool's arguments (JSON or YAML object)")
    p.add_argument("--principal", metavar="JSON", help="who is calling (JSON or YAML object)")
    p.add_argument("--context", metavar="JSON", help="signals about the call (JSON or YAML object)")
    p.add_argument(
        "--now",
        metavar="TIMESTAMP",
        help="decide as of this time (sets context.now), e.g. 2025-06-11T10:00:00Z",
    )
    p.add_argument("--json", action="store_true", help="print the Decision as JSON")
    p.add_argument(
        "--explain",
        action="store_true",
        help="show every rule for the tool, whether it matched and the values it saw",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    request = _request(args)
    engine = load_engine(args.path)
    tool, a, p, c = (
        request["tool"],
        request.get("args"),
        request.get("principal"),
        request.get("context"),
    )
    explanation = explain(engine, tool, a, p, c) if args.explain else None
    decision = engine.decide(tool, args=a, principal=p, context=c)
    if explanation is not None:
        explanation["combined"] = _combined(explanation, decision)
    if args.json:
        out = decision.model_dump(mode="json")
        if explanation is not None:
            out["explanation"] = explanation
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
    else:
        print(text_report(decision, explanation, Painter(use_colour())))
    return {"allow": EXIT_ALLOW, "confirm": EXIT_CONFIRM}.get(decision.effect.value, EXIT_DENY)


# ---------------------------------------------------------------- the request


def _object(text: str, what: str) -> dict[str, Any]:
    value = parse_structured(text, what)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CliError(f"{what} must be an object (a mapping), not {type(value).__name__}")
    return value


def _request(args: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {}
    if args.request is not None:
        request = _object(read_input(args.request, "the request"), "the request")
    for key in ("args", "principal", "context"):
        value = getattr(args, key)
        if value is not None:
            request[key] = _object(value, f"--{key}")
    if args.tool is not None:
        request["tool"] = args.tool
    if args.now is not None:
        context = request.get("context")
        request["context"] = {**(context if isinstance(context, dict) else {}), "now": args.now}
    if args.request is None and args.tool is None:
        raise CliError("give the call to decide: --request FILE (or -) or --tool NAME")
    tool = request.get("tool")
    if not isinstance(tool, str) or not tool:
        raise CliError('the request has no tool name: add "tool": "..." or pass --tool NAME')
    for key in ("args", "principal", "context"):
        if request.get(key) is not None and not isinstance(request[key], dict):
            raise CliError(
                f"the request's '{key}' must be an object, not {type(request[key]).__name__}"
            )
    return request


# ---------------------------------------------------------------- --explain


def explain(engine: Any, tool: str, a: Any, p: Any, c: Any) -> dict[str, Any]:
    """Every rule for ``tool``: matched or not (reference interpreter) and the values it read."""
    from policylang.compiler.interpreter import Err, run_condition
    from policylang.language.secrets import MARKER, WITHHELD, reads_secret, secret_scope

    prepared = engine._prepared
    compiled = engine.compiled
    out: dict[str, Any] = {"tool": tool, "rules": [], "note": None}
    ev = compiled.evaluators.get(tool)
    if ev is None and prepared.undeclared_open:
        ev = compiled.evaluator_for(tool)
    if ev is None:
        out["note"] = f"'{tool}' is not a tool this policy declares; no rule was evaluated"
        return out
    try:
        validator = prepared.validators.get(tool)
        args = validator(a if a is not None else {}, "") if validator else dict(a or {})
        principal = (
            prepared.principal_check(p if p is not None else {}, "")
            if prepared.principal_check
            else dict(p or {})
        )
        context = (
            prepared.context_check(c if c is not None else {}, "")
            if prepared.context_check
            else dict(c or {})
        )
        now = engine._now(prepared, context)
    except RequestError as exc:
        raw = engine.redactor(tool, a, p, c)  # a validation error may quote a secret's value
        out["note"] = raw(f"the request is invalid ({exc.message}); no rule was evaluated")
        return out
    env = compiled.env(args, principal, context, now, tool, None)
    policy = compiled.policy
    # values read from a @secret field (or derived from one) are shown as the marker; error texts
    # are scrubbed of the request's secret values, raw and checked
    scope = secret_scope(policy, tool if tool in policy.tools else None)
    raw_scrub, checked_scrub = (
        engine.redactor(tool, a, p, c),
        engine.redactor(tool, args, principal, context),
    )

    def scrub(text: str) -> str:
        return checked_scrub(raw_scrub(text))

    sources = policy.sources
    for rule in sorted(ev.plan.rules(), key=lambda r: r.index):
        outcome = run_condition(compiled.interpreter, rule.condition, dict(env))
        seen: dict[str, str] = {}
        for ref in _refs(rule.condition):
            name = _text(ref, sources)
            if name in seen:
                continue
            if reads_secret(ref, scope):
                seen[name] = MARKER
                continue
            value = compiled.interpreter.eval(ref, dict(env))
            seen[name] = scrub(
                f"<error: {value.message}>" if isinstance(value, Err) else show(value)
            )
        source_rule = policy.rules[rule.index] if rule.index < len(policy.rules) else None
        clauses = []
        if source_rule is not None:
            clauses = [
                f"{word} {_text(x, sources)}"
                for word, x in (("when", source_rule.when), ("unless", source_rule.unless))
                if x is not None
            ]
        out["rules"].append(
            {
                "id": rule.id,
                "effect": rule.effect,
                "location": rule.location,
                "matched": outcome is True,
                "error": (
                    WITHHELD if reads_secret(rule.condition, scope) else scrub(outcome.message)
                )
                if isinstance(outcome, Err)
                else None,
                "condition": " ".join(clauses) or "(no condition: always applies)",
                "values": seen,
            }
        )
    return out


def show(value: Any, limit: int = 80) -> str:
    """A value as CEL would write it (strings quoted), cut to ``limit`` characters."""

    def fmt(v: Any, depth: int) -> str:
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if depth > 3:
            return "..."
        if isinstance(v, list | tuple):
            return (
                "["
                + ", ".join(fmt(x, depth + 1) for x in v[:20])
                + (", ..." if len(v) > 20 else "")
                + "]"
            )
        if isinstance(v, dict):
            items = list(v.items())[:20]
            return (
                "{"
                + ", ".join(f"{fmt(k, depth + 1)}: {fmt(x, depth + 1)}" for k, x in items)
                + (", ..." if len(v) > 20 else "")
                + "}"
            )
        return short(v, limit)

    text = fmt(value, 0)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refs(expr: ast.Expr) -> list[ast.Expr]:
    """The outermost ``a.b.c`` / ``name`` / ``has(...)`` reads of request data, in source order."""
    found: list[ast.Expr] = []
    stack: list[tuple[ast.Expr, frozenset[str]]] = [(expr, frozenset())]
    while stack:
        node, bound = stack.pop()
        if isinstance(node, ast.Ident | ast.Select | ast.Has):
            root = node.operand if isinstance(node, ast.Has) else node
            while isinstance(root, ast.Select):
                root = root.operand
            if isinstance(root, ast.Ident) and root.name in ENV_NAMES and root.name not in bound:
                found.append(node)
            elif not isinstance(node, ast.Ident):
                stack.append((node.operand, bound))
            continue
        if isinstance(node, ast.Comprehension):
            inner = bound | {node.var}
            stack.append((node.target, bound))
            stack.extend(
                (c, inner) for c in ([node.condition] if node.condition else []) + [node.body]
            )
            continue
        stack.extend((c, bound) for c in ast.children(node))
    return sorted(found, key=lambda e: (e.span.file, e.span.start))


def _text(e: ast.Expr, sources: dict[str, str]) -> str:
    src = sources.get(e.span.file)
    if src is not None and e.span.line and 0 <= e.span.start < e.span.end <= len(src):
        return " ".join(src[e.span.start : e.span.end].split())
    try:
        from policylang.language.formatter import format_expr

        return format_expr(e)
    except Exception:  # noqa: BLE001 - fall back to the AST's own repr
        return repr(e)


def _combined(explanation: dict[str, Any], decision: Any) -> str:
    rules = explanation["rules"]

    def hit(effect: str, errors_count: bool) -> list[str]:
        return [
            r["id"]
            for r in rules
            if r["effect"] == effect and (r["matched"] or (errors_count and r["error"] is not None))
        ]

    deny, confirm, allow = hit("deny", True), hit("confirm", True), hit("allow", False)
    effect = decision.effect.value
    if decision.code in (
        "invalid_request",
        "unknown_tool",
        "internal_error",
        "no_policy",
        "store_unavailable",
    ):
        return f"{effect}: {decision.code} before any rule could decide"
    if decision.code == "rate_limited":
        return "deny: no deny rule matched, but a rate limit is exhausted (limits come right after denies)"
    if deny:
        return f"deny: deny overrides everything; deny rule(s) matched or failed closed: {', '.join(deny)}"
    if confirm:
        return f"confirm: no deny matched; confirm rule(s) matched: {', '.join(confirm)}"
    if allow:
        return f"allow: no deny or confirm matched; allow rule(s) matched: {', '.join(allow)}"
    return f"{effect}: no rule matched, so the policy default decides (default {effect})"


# ---------------------------------------------------------------- text output


def text_report(decision: Any, explanation: dict[str, Any] | None, paint: Painter) -> str:
    style = {"allow": "green", "deny": "red", "confirm": "yellow"}[decision.effect.value]
    lines = [
        f"{paint(decision.effect.value.upper(), 'bold', style)} {decision.tool} ({decision.code})",
        f"  {decision.message}",
    ]
    if decision.rules:
        lines.append("rules:")
        for r in decision.rules:
            reason = f" — {r.reason}" if r.reason else ""
            lines.append(f"  {r.effect.value:<8}{r.id}  {paint(r.location, 'dim')}{reason}")
    if decision.reasons:
        lines.append("reasons:")
        lines.extend(f"  - {reason}" for reason in decision.reasons)
    if decision.limits:
        lines.append("limits:")
        for lim in decision.limits:
            state = "exceeded" if lim.exceeded else "ok"
            window = format_duration(timedelta(seconds=lim.window_seconds))
            lines.append(f"  {lim.id}: {short(lim.used)}/{short(lim.limit)} per {window} {state}")
    if decision.errors:
        lines.append("errors:")
        lines.extend(f"  - {e.rule or '-'}: {e.message}" for e in decision.errors)
    if explanation is not None:
        lines.append("")
        rules = explanation["rules"]
        lines.append(
            f"explanation: {len(rules)} rule{'s' if len(rules) != 1 else ''} apply to "
            f"{explanation['tool']}"
        )
        if explanation.get("note"):
            lines.append(f"  {explanation['note']}")
        for r in rules:
            if r["error"] is not None:
                status = paint(f"error ({r['error']})", "red")
            else:
                status = paint("matched", "bold") if r["matched"] else paint("no match", "dim")
            lines.append(f"  {r['effect']:<8}{r['id']}  {paint(r['location'], 'dim')}  {status}")
            lines.append(f"      {r['condition']}")
            for name, value in r["values"].items():
                lines.append(f"        {name} = {value}")
        lines.append(f"combined: {explanation['combined']}")
    return "\n".join(lines)
