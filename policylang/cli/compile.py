"""``policylang compile PATH --emit python|ast|ir|cel``: print any stage of the pipeline.

Takes a policy path and optionally one tool; gives the generated Python of the
evaluators (``python``), the parsed AST (``ast``), the per-tool IR after the
compiler passes (``ir``) or each rule's condition as plain CEL (``cel``).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from policylang.cli.common import EXIT_OK, CliError, load_engine
from policylang.language import ast

EMITS = ("python", "ast", "ir", "cel")

EPILOG = """\
examples:
  policylang compile rules/ --emit python --tool payments.send
  policylang compile rules/ --emit ir
  policylang compile rules/payments.policy --emit ast
  policylang compile rules/ --emit cel --tool email.send"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compile",
        help="print the generated Python, AST, IR or CEL of a policy",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="a .policy file or a policy folder")
    p.add_argument("--tool", "-t", help="only this tool (default: every declared tool)")
    p.add_argument(
        "--emit", choices=EMITS, default="python", help="what to print (default: python)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.emit == "ast":
        print(emit_ast(args.path, args.tool))
        return EXIT_OK
    engine = load_engine(args.path)
    policy = engine.compiled.policy
    tools = [args.tool] if args.tool else list(engine.tools)
    if (
        args.tool
        and args.tool not in policy.tools
        and not (policy.open_tools or policy.default == "allow")
    ):
        from policylang.language.policy import suggest

        raise CliError(
            f"'{args.tool}' is not a tool this policy declares"
            + (
                f"; {suggest(args.tool, policy.tools)}"
                if suggest(args.tool, policy.tools)
                else f" (tools: {', '.join(policy.tools) or 'none'})"
            )
        )
    if not tools:
        raise CliError("this policy declares no tools; pass --tool NAME to see the code for one")
    if args.emit == "python":
        chunks = []
        for tool in tools:
            try:
                chunks.append(f"# ---- tool {tool}\n{engine.source_for(tool)}")
            except KeyError as exc:
                raise CliError(
                    str(exc.args[0]) if exc.args else f"no evaluator for '{tool}'"
                ) from None
        print("\n".join(chunks), end="")
    elif args.emit == "ir":
        from policylang.compiler.plan import describe

        plans = (
            engine.compiled.plans
            if not args.tool
            else [engine.compiled.evaluator_for(args.tool).plan]
        )
        print(describe(plans))
    else:
        print(emit_cel(policy, args.tool))
    return EXIT_OK


def emit_cel(policy: Any, tool: str | None) -> str:
    from policylang.compiler.plan import condition_of
    from policylang.language.policy import tool_matches

    lines = []
    for rule in policy.rules:
        if tool and not any(tool_matches(p.pattern, tool) for p in rule.tools):
            continue
        tools = ", ".join(p.pattern for p in rule.tools)
        lines.append(
            f"# {policy.rule_id(rule)} ({rule.span})\n{rule.effect} {tools}: "
            f"{cel(condition_of(rule))}"
        )
    for lim in policy.limits:
        if tool and not any(tool_matches(p.pattern, tool) for p in lim.tools):
            continue
        if lim.when is not None:
            lines.append(
                f"# {policy.rule_id(lim)} ({lim.span})\nlimit "
                f"{', '.join(p.pattern for p in lim.tools)} when: {cel(lim.when)}"
            )
    return "\n".join(lines) if lines else "# no rules apply"


def cel(e: ast.Expr) -> str:
    """Plain CEL for one expression: the formatter's printer, or a fully parenthesised fallback."""
    try:
        from policylang.language.formatter import format_expr
    except ImportError:  # pragma: no cover - the formatter is being written alongside
        return _cel(e)
    try:
        return format_expr(e)
    except Exception:  # noqa: BLE001 - fall back rather than fail a debugging aid
        return _cel(e)


def _cel(e: ast.Expr) -> str:  # noqa: C901 - one case per node
    import json

    match e:
        case ast.Literal_(value=v, kind=kind):
            if kind == "string":
                return json.dumps(v, ensure_ascii=False)
            if kind == "bool":
                return "true" if v else "false"
            if kind == "null":
                return "null"
            return repr(v) if kind != "duration" else f"duration({str(v)!r})"
        case ast.Ident(name=name):
            return name
        case ast.Select(operand=o, field=f):
            return f"{_cel(o)}.{f}"
        case ast.Has(operand=o, field=f):
            return f"has({_cel(o)}.{f})"
        case ast.Index(operand=o, index=i):
            return f"{_cel(o)}[{_cel(i)}]"
        case ast.Call(function=fn, args=a, target=t):
            inner = ", ".join(_cel(x) for x in a)
            return f"{_cel(t)}.{fn}({inner})" if t is not None else f"{fn}({inner})"
        case ast.Unary(op=op, operand=o):
            return f"{op}({_cel(o)})"
        case ast.Binary(op=op, left=left, right=right):
            return f"({_cel(left)} {op} {_cel(right)})"
        case ast.Conditional(cond=c, then=t, otherwise=o):
            return f"({_cel(c)} ? {_cel(t)} : {_cel(o)})"
        case ast.ListExpr(items=items):
            return "[" + ", ".join(_cel(i) for i in items) + "]"
        case ast.MapExpr(entries=entries):
            return "{" + ", ".join(f"{_cel(k)}: {_cel(v)}" for k, v in entries) + "}"
        case ast.Comprehension(kind=kind, target=t, var=var, body=body, condition=cond):
            mid = f"{_cel(cond)}, " if cond is not None else ""
            return f"{_cel(t)}.{kind}({var}, {mid}{_cel(body)})"
    return repr(e)  # pragma: no cover


def emit_ast(path: str, tool: str | None) -> str:
    """The parsed AST of every file (no checking), optionally only statements about ``tool``."""
    from pathlib import Path

    from policylang.cli.common import print_load_error
    from policylang.errors import PolicyLoadError
    from policylang.language.parser import parse
    from policylang.language.policy import tool_matches
    from policylang.runtime.loader import discover, read_text

    try:
        files, _ = discover(Path(path))
        parsed = [parse(read_text(f), str(f)) for f in files]
    except PolicyLoadError as exc:
        print_load_error(exc)
        raise CliError(f"could not parse the policy at {path}") from None
    out = []
    for pf in parsed:
        stmts = [s for s in pf.statements if tool is None or _mentions(s, tool, tool_matches)]
        out.append(f"# {pf.path}")
        out.extend(pretty(s) for s in stmts)
    return "\n".join(out)


def _mentions(stmt: Any, tool: str, matches: Any) -> bool:
    if isinstance(stmt, ast.ToolDecl):
        return bool(stmt.name == tool)
    pats: tuple[ast.ToolPattern, ...] = getattr(stmt, "tools", None) or ()
    return any(matches(p.pattern, tool) for p in pats)


def pretty(node: Any, indent: int = 0) -> str:
    """An indented dataclass repr (spans left out: they do not take part in equality)."""
    pad = "  " * (indent + 1)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        fields = [f for f in dataclasses.fields(node) if f.name != "span"]
        simple = all(not _nested(getattr(node, f.name)) for f in fields)
        parts = [f"{f.name}={pretty(getattr(node, f.name), indent + 1)}" for f in fields]
        if simple and sum(len(p) for p in parts) < 70:
            return f"{type(node).__name__}({', '.join(parts)})"
        return (
            f"{type(node).__name__}(\n" + ",\n".join(pad + p for p in parts) + f"\n{'  ' * indent})"
        )
    if isinstance(node, tuple | list):
        if not node:
            return "()" if isinstance(node, tuple) else "[]"
        if not any(_nested(x) for x in node):
            return repr(tuple(node)) if isinstance(node, tuple) else repr(node)
        return (
            "(\n" + ",\n".join(pad + pretty(x, indent + 1) for x in node) + f",\n{'  ' * indent})"
        )
    return repr(node)


def _nested(value: Any) -> bool:
    if dataclasses.is_dataclass(value):
        return True
    return isinstance(value, tuple | list) and any(_nested(x) for x in value)
