"""The shipped policy (`rules/`) on payments requests, side by side with a hand-written
function and with cel-python; plus how flat policylang stays as unrelated tools are added.

    python benchmarks/shipped_rules.py            # quick (the default): well under 2 minutes
    python benchmarks/shipped_rules.py --full     # more rounds, no time budget

1. ~500 seeded `payments.send` / `payments.refund` requests (amounts around every
   threshold, currencies, known / unknown / user-named payees, roles, scopes,
   confidence values, a few requests with wrong argument types), every one with a
   pinned `context.now`.
2. Agreement first: the hand-written function and the cel-python adapter must give
   policylang's effect on every request; an engine that disagrees is reported
   (first differences on stderr) and not timed.
3. Latency: per-call `perf_counter_ns` pairs, gc disabled within a round.
4. Flatness: policylang on the same `rules/` sources plus 10 vs 1,000 extra declared
   dummy tools (`tool dummy_N { x: int }`, `allow dummy_N when args.x > 0`), timed
   in alternating rounds on the same requests.

Rate limits are set aside by giving every request a principal id of its own in every
timed round (`u-<round>-<i>`), so no limit is ever reached; policylang still evaluates
the shipped limits and books them in its MemoryStore (one store per engine).
The table is printed and written to `benchmarks/results-shipped.md` (`--out`).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    ROOT = Path(__file__).resolve().parent.parent
    sys.path[0] = str(ROOT)
else:
    ROOT = Path(__file__).resolve().parent.parent

from benchmarks.report import num, ratio, stats  # noqa: E402
from policylang import Engine  # noqa: E402
from policylang.runtime.limits import MemoryStore  # noqa: E402
from policylang.runtime.loader import read_path  # noqa: E402

RULES_DIR = ROOT / "rules"
QUICK = {"repeat": 10, "budget": 10.0, "flat_repeat": 10}
FULL = {"repeat": 60, "budget": 600.0, "flat_repeat": 60}
NOWS = ("2025-06-11T10:00:00-04:00", "2025-12-24T16:30:00-05:00", "2026-02-02T09:15:00-05:00")

Request = tuple[str, Any, Any, Any]  # tool, args, principal, context


# ---------------------------------------------------------------- requests


def generate(n: int, seed: int, payees: list[str]) -> list[Request]:
    rng = random.Random(seed)
    thresholds = [
        -5,
        -0.01,
        0,
        0.0,
        0.01,
        1,
        9999,
        9999.99,
        10000,
        10000.0,
        10000.01,
        10001,
        49999.99,
        50000,
        50000.0,
        50000.01,
        50001,
        75000,
    ]
    unknown = ["ACCT-999001", "ACCT-555123", "Evil Corp Ltd", "Northwind Traders", "ACCT-100235"]
    roles = ["finance", "admin", "employee", "sales", "support", "", "Finance"]
    scope_sets = [
        ["payments:write"],
        ["payments:write"],
        ["payments:read", "payments:write"],
        [],
        ["payments:read"],
        ["PAYMENTS:WRITE"],
    ]
    confidences = [None, 1.0, 1, 0.99, 0.9, 0.85, 0.8499, 0.84, 0.5, 0]
    memos = [
        None,
        "invoice 4471",
        "June rent",
        "card 4111 1111 1111 1111",
        "ref 4111-1111-1111-1111",
        "order 123456789012",
        "acct 12345678901234",
    ]
    out: list[Request] = []
    for i in range(n):
        tool = "payments.send" if rng.random() < 0.8 else "payments.refund"
        if rng.random() < 0.3:
            amount: Any = rng.choice(thresholds)
        else:
            amount = 10 ** rng.uniform(0, 4.8)  # 1 .. ~63,000, log-uniform
            amount = int(amount) if rng.random() < 0.5 else round(amount, 2)
        role = rng.choice(roles) if rng.random() < 0.2 else rng.choice(["finance", "admin"])
        principal: dict[str, Any] = {"id": "u", "role": role}
        r = rng.random()
        if r < 0.85:
            principal["scopes"] = list(
                rng.choice(scope_sets) if rng.random() < 0.3 else scope_sets[0]
            )
        elif r < 0.9:
            principal["scopes"] = None  # null: the declared default [] applies
        elif r < 0.95:
            principal["team"] = "ops"  # an undeclared principal field: allowed
        if rng.random() < 0.03:
            principal["id"] = rng.choice(["", "   "])  # known_caller denies
        user_words = "please pay the invoice"
        if tool == "payments.send":
            kind = rng.random()
            if kind < 0.55:
                to = rng.choice(payees)
            elif kind < 0.7:
                to = rng.choice(unknown)
            elif kind < 0.95:
                to = rng.choice(unknown)
                shown = to.upper() if rng.random() < 0.3 else to
                user_words = f"please send the money to {shown} today"
            else:
                to = rng.choice(["", " "])
            args: dict[str, Any] = {
                "amount": amount,
                "currency": rng.choice(["USD", "EUR", "GBP"]),
                "to": to,
            }
            memo = rng.choice(memos) if rng.random() < 0.3 else None
            if memo is not None or rng.random() < 0.3:
                args["memo"] = memo
            if rng.random() < 0.1:
                args["account_number"] = "DE89370400440532013000"
        else:
            args = {"payment_id": f"pay-{rng.randint(1000, 9999)}", "amount": amount}
            if rng.random() < 0.5:
                args["reason"] = rng.choice(["duplicate", "customer request", None])
        context: dict[str, Any] = {
            "now": rng.choice(NOWS),
            "user_request": user_words,
            "session_id": f"s-{i % 17}",
        }
        conf = rng.choice(confidences)
        if conf is not None:
            context["confidence"] = conf
        if rng.random() < 0.06:  # wrong types / shapes: validation must deny them
            bad = rng.randrange(9)
            if bad == 0:
                args["amount"] = str(args["amount"])
            elif bad == 1:
                args["amount"] = True
            elif bad == 2:
                args["amount"] = float("nan")
            elif bad == 3 and tool == "payments.send":
                args["currency"] = rng.choice(["JPY", "usd", 1])
            elif bad == 4 and tool == "payments.send":
                args["to"] = 100234
            elif bad == 5:
                args["extra"] = 1
            elif bad == 6:
                principal["scopes"] = "payments:write"
            elif bad == 7:
                context["confidence"] = rng.choice(["high", True])
            else:
                args.pop("amount")
        out.append((tool, args, principal, context))
    return out


def per_round(requests: list[Request], round_no: int) -> list[Request]:
    """The same requests with a principal id of their own (rate limits never bind)."""
    out = []
    for i, (tool, args, principal, context) in enumerate(requests):
        p = dict(principal)
        if isinstance(p.get("id"), str) and p["id"].strip():
            p["id"] = f"u-{round_no}-{i}"
        out.append((tool, args, p, dict(context)))
    return out


# ---------------------------------------------------------------- hand-written

_ROLES = frozenset({"finance", "admin"})
_CURRENCIES = ("USD", "EUR", "GBP")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b", re.ASCII)  # the engine uses RE2: ASCII \d and \b
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SEND_KEYS = frozenset({"amount", "currency", "to", "memo", "account_number"})
_REFUND_KEYS = frozenset({"payment_id", "amount", "reason"})


class Invalid(Exception):
    pass


def _number(v: Any) -> Any:
    t = type(v)
    if t is float:
        if math.isfinite(v):
            return v
        raise Invalid
    if t is int and -(2**63) <= v < 2**63:
        return v
    raise Invalid


def _opt_str(d: dict[str, Any], k: str) -> None:
    v = d.get(k)
    if v is not None and not isinstance(v, str):
        raise Invalid


def check_request(tool: str, args: Any, principal: Any, context: Any) -> tuple[Any, list[str], Any]:
    """What policylang's validators check for these two tools; raises Invalid."""
    if not isinstance(args, dict):
        raise Invalid
    amount = _number(args.get("amount"))
    if tool == "payments.send":
        if not _SEND_KEYS.issuperset(args):
            raise Invalid
        if not isinstance(args.get("currency"), str) or args["currency"] not in _CURRENCIES:
            raise Invalid
        if not isinstance(args.get("to"), str):
            raise Invalid
        _opt_str(args, "memo")
        _opt_str(args, "account_number")
    else:
        if not _REFUND_KEYS.issuperset(args):
            raise Invalid
        if not isinstance(args.get("payment_id"), str):
            raise Invalid
        _opt_str(args, "reason")
    if not isinstance(principal, dict):
        raise Invalid
    if not isinstance(principal.get("id"), str) or not isinstance(principal.get("role"), str):
        raise Invalid
    scopes = principal.get("scopes")
    if scopes is None:
        scopes = []
    elif not isinstance(scopes, list | tuple) or not all(isinstance(s, str) for s in scopes):
        raise Invalid
    if context is None:
        context = {}
    elif not isinstance(context, dict):
        raise Invalid
    conf = context.get("confidence")
    conf = 1.0 if conf is None else _number(conf)
    for k in ("session_id", "user_request"):
        _opt_str(context, k)
    return amount, scopes, conf


def handwritten(tool: str, args: Any, principal: Any, context: Any) -> str:
    if tool != "payments.send" and tool != "payments.refund":
        return "deny"
    try:
        amount, scopes, conf = check_request(tool, args, principal, context)
    except Invalid:
        return "deny"
    permitted = principal["role"] in _ROLES and "payments:write" in scopes
    if not principal["id"].strip() or not permitted or amount <= 0:
        return "deny"
    if tool == "payments.refund":
        return "confirm" if conf < 0.85 else "allow"
    if amount > 50000:
        return "deny"
    to = args["to"]
    new_payee = to not in PAYEES
    named = False
    if new_payee:
        said = (context.get("user_request") or "").translate(_ASCII_LOWER)
        named = to.strip() != "" and to.translate(_ASCII_LOWER) in said
        if not named:
            return "deny"
    memo = args.get("memo")
    if memo is not None and _CARD.search(memo):
        return "deny"
    if conf < 0.85 or amount > 10000 or named:
        return "confirm"
    return "allow"


PAYEES: frozenset[str] = frozenset()


# ---------------------------------------------------------------- cel-python

NAMED = '(args.to.trim() != "" && context.user_request.lowerAscii().contains(args.to.lowerAscii()))'
PERMITTED = '(principal.role in ["finance", "admin"] && "payments:write" in principal.scopes)'
CEL_RULES: dict[str, list[tuple[str, str]]] = {
    "payments.send": [
        ("deny", 'principal.id.trim() == ""'),
        ("deny", f"!{PERMITTED}"),
        ("deny", "args.amount <= 0.0"),
        ("deny", "args.amount > 50000.0"),
        ("deny", f"!(args.to in data.payees) && !{NAMED}"),
        ("deny", r'has(args.memo) && args.memo.matches(r"\b(?:\d[ -]?){13,19}\b")'),
        ("confirm", "context.confidence < 0.85"),
        ("confirm", "args.amount > 10000.0"),
        ("confirm", f"!(args.to in data.payees) && {NAMED}"),
        ("allow", PERMITTED),
    ],
    "payments.refund": [
        ("deny", 'principal.id.trim() == ""'),
        ("deny", f"!{PERMITTED}"),
        ("deny", "args.amount <= 0.0"),
        ("confirm", "context.confidence < 0.85"),
        ("allow", PERMITTED),
    ],
}


class CelPython:
    """Each condition compiled once; per call: the same Python type checks as the
    hand-written function (CEL has no tool declarations), an activation built with
    `celpy.json_to_cel` (amount and confidence as doubles, null optionals dropped),
    then deny, confirm, allow rules, stopping at the first that fires; errors fail closed."""

    def __init__(self, payees: list[str]) -> None:
        import celpy
        from celpy import celtypes

        self.celpy, self.celtypes = celpy, celtypes

        def lower_ascii(s: Any) -> Any:
            return celtypes.StringType(str(s).translate(_ASCII_LOWER))

        def trim(s: Any) -> Any:
            return celtypes.StringType(str(s).strip())

        env = celpy.Environment()
        funcs = {"lowerAscii": lower_ascii, "trim": trim}
        self.by_tool: dict[str, tuple[list[Any], list[Any], list[Any]]] = {}
        for tool, rules in CEL_RULES.items():
            groups: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
            for effect, text in rules:
                groups[("deny", "confirm", "allow").index(effect)].append(
                    env.program(env.compile(text), functions=funcs)
                )
            self.by_tool[tool] = groups
        self.data = celpy.json_to_cel({"payees": payees})

    def decide(self, tool: str, args: Any, principal: Any, context: Any) -> str:
        groups = self.by_tool.get(tool)
        if groups is None:
            return "deny"
        try:
            amount, scopes, conf = check_request(tool, args, principal, context)
        except Invalid:
            return "deny"
        celpy, ct = self.celpy, self.celtypes
        a = celpy.json_to_cel({k: v for k, v in args.items() if v is not None})
        a[ct.StringType("amount")] = ct.DoubleType(amount)
        ctx = context or {}
        act = {
            "args": a,
            "principal": celpy.json_to_cel(
                {"id": principal["id"], "role": principal["role"], "scopes": scopes}
            ),
            "context": celpy.json_to_cel(
                {
                    "confidence": float(conf),
                    "user_request": ctx.get("user_request") or "",
                    "session_id": ctx.get("session_id") or "",
                }
            ),
            "data": self.data,
        }
        deny, confirm, allow = groups
        for prog in deny:
            if _fires(prog, act, True):
                return "deny"
        for prog in confirm:
            if _fires(prog, act, True):
                return "confirm"
        for prog in allow:
            if _fires(prog, act, False):
                return "allow"
        return "deny"


def _fires(prog: Any, activation: dict[str, Any], on_error: bool) -> bool:
    try:
        result = prog.evaluate(activation)
    except Exception:  # noqa: BLE001
        return on_error
    if isinstance(result, Exception):  # celpy returns CELEvalError values
        return on_error
    return result is True or (type(result).__name__ == "BoolType" and bool(result))


# ---------------------------------------------------------------- policylang


def policylang_decider(engine: Engine) -> Callable[..., str]:
    def decide(tool: str, args: Any, principal: Any, context: Any) -> str:
        return engine.decide(tool, args=args, principal=principal, context=context).effect.value

    return decide


def read_sources() -> tuple[dict[str, str], dict[str, Any]]:
    """rules/ as `Engine.from_path` reads it: the *.policy texts and the data files."""
    return read_path(RULES_DIR)


def dummy_tools(n: int) -> str:
    return (
        "\n".join(f"tool dummy_{i} {{ x: int }}\nallow dummy_{i} when args.x > 0" for i in range(n))
        + "\n"
    )


# ---------------------------------------------------------------- timing


def timed_round(decide: Callable[..., str], requests: list[Request], samples: list[int]) -> None:
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for tool, args, principal, context in requests:
            t0 = clock()
            decide(tool, args, principal, context)
            samples.append(clock() - t0)
    finally:
        gc.enable()


def _version(pkg: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: few rounds, a time budget")
    mode.add_argument("--full", action="store_true", help="more rounds, no budget")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--repeat", type=int, help="timed rounds per engine (quick 10, full 60)")
    p.add_argument(
        "--budget", type=float, help="seconds of timed rounds per engine (quick 10, full 600)"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results-shipped.md"))
    a = p.parse_args(argv)
    preset = FULL if a.full else QUICK
    repeat = a.repeat or int(preset["repeat"])
    budget = a.budget if a.budget is not None else float(preset["budget"])
    flat_repeat = a.repeat or int(preset["flat_repeat"])
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    global PAYEES
    sources, data = read_sources()
    PAYEES = frozenset(data["payees"])
    t0 = time.perf_counter()
    engine = Engine.from_sources(sources, data=data, store=MemoryStore())
    load_ms = (time.perf_counter() - t0) * 1000
    requests = generate(a.requests, a.seed, list(data["payees"]))

    # agreement, before any timing (this pass is also the warm-up)
    pl = policylang_decider(engine)
    check = per_round(requests, -1)
    expected = [pl(*r) for r in check]
    mix = Counter(f"{r[0].split('.')[1]}:{e}" for r, e in zip(check, expected, strict=True))
    engines: list[tuple[str, str, Callable[..., str] | None, str]] = [
        (
            "policylang",
            "shipped rules/ via `Engine.from_sources`; limits evaluated and booked in a MemoryStore",
            pl,
            "ok (reference)",
        )
    ]
    cel_status = ""
    try:
        cel: Any = CelPython(list(data["payees"]))
        cel_decide: Callable[..., str] | None = cel.decide
    except Exception as exc:  # noqa: BLE001
        cel_decide, cel_status = None, f"unavailable: {type(exc).__name__}: {exc}"
    candidates = [
        (
            "hand-written",
            "plain function, same type checks as the engine's validators (args, principal, "
            "context), frozenset payees, early returns; no limits",
            handwritten,
        ),
        (
            "cel-python",
            "10+5 conditions as CEL, compiled once; same Python type checks, activation via "
            "json_to_cel per call; no limits",
            cel_decide,
        ),
    ]
    for name, what, fn in candidates:
        if fn is None:
            engines.append((name, what, None, cel_status))
            continue
        got = [fn(*r) for r in check]
        diffs = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
        if diffs:
            for i, g, e in diffs[:3]:
                print(
                    f"{name} disagrees on request {i}: {check[i]!r}: got {g}, policylang {e}",
                    file=sys.stderr,
                )
            engines.append((name, what, None, f"disagrees ({len(diffs)}/{len(check)})"))
        else:
            engines.append((name, what, fn, "ok (agrees on all)"))
    log(f"agreement checked: {dict(sorted(mix.items()))}")

    results: dict[str, tuple[float, float, int]] = {}
    for name, _what, fn, _status in engines:
        if fn is None:
            continue
        samples: list[int] = []
        spent = time.perf_counter()
        for rnd in range(repeat):
            reqs = per_round(requests, rnd)
            timed_round(fn, reqs, samples)
            if time.perf_counter() - spent > budget:
                break
        med, p99 = stats(samples)
        results[name] = (med, p99, len(samples))
        log(f"{name}: median {med:.2f} µs, p99 {p99:.2f} µs over {len(samples)} calls")

    # flatness: the same rules plus 10 vs 1000 dummy tools, alternating rounds
    flat: dict[int, list[int]] = {10: [], 1000: []}
    flat_load: dict[int, float] = {}
    flat_engines = {}
    for n in flat:
        t0 = time.perf_counter()
        flat_engines[n] = Engine.from_sources(
            {**sources, "rules/dummies.policy": dummy_tools(n)}, data=data, store=MemoryStore()
        )
        flat_load[n] = (time.perf_counter() - t0) * 1000
        fn = policylang_decider(flat_engines[n])
        got = [fn(*r) for r in check]  # warm-up, and the extra tools must change nothing
        if got != expected:
            log(
                f"+{n} dummy tools changes {sum(g != e for g, e in zip(got, expected, strict=True))} effects!"
            )
    for rnd in range(flat_repeat):
        reqs = per_round(requests, rnd)
        for n in flat if rnd % 2 == 0 else reversed(list(flat)):
            timed_round(policylang_decider(flat_engines[n]), reqs, flat[n])
    f10, f10p = stats(flat[10])
    f1000, f1000p = stats(flat[1000])
    flat_ratio = f1000 / f10
    log(f"flatness: +10 {f10:.2f} µs, +1000 {f1000:.2f} µs ({flat_ratio:.2f}x)")

    base = results.get("hand-written", (None, None, 0))
    settings = " ".join(sys.argv[1:] if argv is None else argv) or "(defaults: --quick)"
    lines = [
        "# policylang on the shipped rules: payments.send / payments.refund",
        "",
        f"- run: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, `python benchmarks/shipped_rules.py {settings}`",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"cel-python {_version('cel-python')}",
        f"- requests: {len(requests)} (seed {a.seed}), every one with a pinned `context.now`; effects "
        + ", ".join(f"{k} {v}" for k, v in sorted(mix.items())),
        "- rate limits set aside: each request gets a principal id of its own in every round, "
        "so no limit binds (policylang still evaluates the 3 shipped limits on payments.send and "
        "the global one on refunds, and books allowed calls in its MemoryStore; the others have no limits)",
        f"- shipped policy load: {load_ms:.0f} ms; ratios: engine / hand-written",
        "",
        "| engine | status | what it does per call | median µs | p99 µs | calls | median × | p99 × |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, what, _fn, status in engines:
        med, p99, calls = results.get(name, (None, None, 0))
        lines.append(
            f"| {name} | {status} | {what} | {num(med)} | {num(p99)} | {calls} | "
            f"{ratio(med, base[0])} | {ratio(p99, base[1])} |"
        )
    verdict = "within" if flat_ratio <= 1.2 else "NOT within"
    lines += [
        "",
        "### Flatness: the same rules plus N unrelated declared tools (policylang)",
        "",
        "| extra tools | load ms | median µs | p99 µs | calls |",
        "|---:|---:|---:|---:|---:|",
        f"| 10 | {flat_load[10]:,.0f} | {num(f10)} | {num(f10p)} | {len(flat[10])} |",
        f"| 1,000 | {flat_load[1000]:,.0f} | {num(f1000)} | {num(f1000p)} | {len(flat[1000])} |",
        "",
        f"Median ratio +1,000 / +10: **{flat_ratio:.2f}x** ({verdict} the 20% target; rounds alternate "
        "between the two engines on the same requests).",
        "",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    out = Path(a.out)
    out.write_text(text, encoding="utf-8")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
