"""Security: hostile literals, names and request values never run code; decision laws hold on
generated policies; regexes are linear (RE2) and non-RE2 features are load errors; the largest
policy terminates on a large request; the audit log detects tampering and holds no secrets."""

from __future__ import annotations

import ast as pyast
import importlib.util
import json
import random
import statistics
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import THOROUGH, scale

from policylang import Engine, PolicyLoadError
from policylang.language.formatter import quote_string
from policylang.runtime.audit import JsonlSink, verify_file

HERE = Path(__file__).resolve().parent
_SPEC = importlib.util.spec_from_file_location(
    "_reliability_security_property_generators", HERE.parent / "core" / "test_properties.py"
)
props = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(props)

# ---------------------------------------------------------------- audit-hook canary

_WATCHED = (
    "exec",
    "compile",
    "import",
    "os.system",
    "subprocess.Popen",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "ctypes.",
    "builtins.input",
    "open",
    "socket.",
)
_STATE = getattr(sys, "_policylang_reliability_canary", None)
if _STATE is None:  # audit hooks cannot be removed: install one per interpreter
    _STATE = {"on": False, "events": []}

    def _hook(event: str, args: tuple) -> None:
        if _STATE["on"] and event.startswith(_WATCHED):
            code = args[0] if args else None
            if event == "exec" and getattr(code, "co_filename", "").startswith("<policylang "):
                return  # the engine's own generated evaluator (compiled lazily for undeclared tools)
            if event == "compile" and len(args) > 1 and str(args[1]).startswith("<policylang "):
                return
            _STATE["events"].append((event, repr(args)[:200]))

    sys.addaudithook(_hook)
    sys._policylang_reliability_canary = _STATE  # type: ignore[attr-defined]


def watched(fn, *a, **kw):
    _STATE["events"].clear()
    _STATE["on"] = True
    try:
        return fn(*a, **kw)
    finally:
        _STATE["on"] = False
        events = list(_STATE["events"])
        _STATE["events"].clear()
        assert not events, f"side effects while deciding: {events}"


def test_the_canary_is_alive():
    with pytest.raises(AssertionError, match="side effects"):
        watched(exec, "1 + 1")
    with pytest.raises(AssertionError, match="side effects"):
        watched(compile, "1", "<x>", "eval")


# ---------------------------------------------------------------- hostile text

PAYLOADS = [
    "__import__('os').system('id')",
    '"); __import__("os").system("id"); ("',
    "'); import os; os.system('id') #",
    '""" + __import__("os").getcwd() + """',
    "'''",
    '"""',
    "{__import__('os')}",
    "{{",
    "}}",
    "{",
    "}",
    "{args.s}",
    "\\",
    "\\\\",
    "\\n",
    '\\"',
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x7f",
    "\u2028",
    "\u0085",
    "＂",
    "＇",
    "ʺ",
    "“",
    "”",
    "‘",
    "\u200b",
    "\ufeff",
    "\u202e",
    "ｅｘｅｃ",
    "ᵉval",
    "#",
    "${x}",
    "%s",
    "{0}",
    "f'{x}'",
    "exec",
    "eval",
    "__builtins__",
    "__class__",
    "__subclasses__()",
    "globals()",
    "lambda: 0",
    "DENY",
    "a",
    "p",
    "c",
    "None",
    "True",
    "😀",
    "é",
    "a" * 200,
]

hostile = st.one_of(
    st.sampled_from(PAYLOADS),
    st.lists(st.sampled_from(PAYLOADS), min_size=1, max_size=4).map("".join),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
)


def assert_generated_code_is_clean(engine: Engine) -> None:
    """Allow-list walk of every generated module: no imports, no dunder access, no exec/eval."""
    compiled = engine.compiled
    sources = [compiled.module.source] + [engine.source_for(t) for t in engine.tools]
    for source in sources:
        for node in pyast.walk(pyast.parse(source)):
            assert not isinstance(
                node, pyast.Import | pyast.ImportFrom | pyast.Global | pyast.Nonlocal
            )
            if isinstance(node, pyast.Attribute):
                assert not node.attr.startswith("__"), node.attr
            if isinstance(node, pyast.Name):
                assert not node.id.startswith("__") or node.id == "__name__", node.id
                assert node.id not in (
                    "exec",
                    "eval",
                    "compile",
                    "open",
                    "getattr",
                    "setattr",
                    "globals",
                    "locals",
                    "vars",
                    "breakpoint",
                    "input",
                ), node.id


class Nasty(str):
    """A str subclass whose dunders would run code if anything called them."""

    def __repr__(self):
        raise AssertionError("__repr__ of a request value was called")

    def __format__(self, spec):
        raise AssertionError("__format__ of a request value was called")


BATCH = 100
BATCHES = scale(2_000, 100_000) // BATCH


@settings(
    max_examples=BATCHES,
    deadline=None,
    derandomize=not THOROUGH,
    suppress_health_check=list(HealthCheck),
)
@given(
    st.lists(hostile, min_size=BATCH, max_size=BATCH), st.lists(hostile, min_size=10, max_size=10)
)
def test_hostile_literals_and_names_never_run_code(literals, names):
    rules = [
        f'rule "r{k}": deny t when args.s == {quote_string(lit)} because "hit {k}"'
        for k, lit in enumerate(literals)
    ]
    seen = set()
    for k, name in enumerate(names):
        unique = f"{name}#{k}"
        if unique in seen or not unique.strip():
            continue
        seen.add(unique)
        reason = quote_string(name.replace("{", "{{").replace("}", "}}"))
        rules.append(
            f"rule {quote_string(unique)}: deny t when args.s == {quote_string(f'{name}-{k}')} "
            f"because {reason}"
        )
    text = "policy sec\ndefault deny\ntool t { s: string }\nallow t\n" + "\n".join(rules) + "\n"
    for reference in (False, True):
        engine = Engine.from_string(text, reference=reference)
        if not reference:
            assert_generated_code_is_clean(engine)
        for lit in literals[:10]:
            d = watched(engine.decide, "t", {"s": lit})
            assert d.effect.value == "deny" and f"r{literals.index(lit)}" in d.rule_names
        d = watched(engine.decide, "t", {"s": Nasty("__import__('os').system('id')")})
        assert d.effect.value in ("allow", "deny")
        d = watched(
            engine.decide, "t", {"s": Nasty("benign\x00")}, {"id": Nasty("x")}, {"k": Nasty("y")}
        )
        assert d.effect.value == "allow"


def test_hostile_values_in_an_open_policy():
    engine = Engine.from_string(
        'policy p\ndefault allow\ndeny * when args.x == "__import__"\n'
        'confirm * when has(args.y) && args.y.contains("{")\n'
    )
    for tool in ["__import__", "os.system", "a'b", 'a"b', "x\ny", "😀", Nasty("t")]:
        assert watched(engine.decide, tool, {"x": Nasty("__import__")}).effect.value == "deny"
        assert (
            watched(engine.decide, tool, {"x": "ok", "y": Nasty("{__import__('os')}")}).effect.value
            == "confirm"
        )


# ---------------------------------------------------------------- decision laws

LAW_REQUESTS = 10
LAW_POLICIES = scale(2_000, 100_000) // LAW_REQUESTS
LAWS = settings(
    max_examples=LAW_POLICIES,
    deadline=None,
    derandomize=not THOROUGH,
    suppress_health_check=list(HealthCheck),
)
reqs = st.lists(
    st.tuples(props.requests, st.sampled_from(["t1", "t2", "u.x"])),
    min_size=LAW_REQUESTS,
    max_size=LAW_REQUESTS,
)
RANK = {"deny": 0, "confirm": 1, "allow": 2}


def _eng(default, rules):
    return Engine.from_string(props.text_of(default, rules))


@LAWS
@given(props.policy(named=False), reqs, st.randoms(use_true_random=False))
def test_decision_laws(pol, requests, rnd):
    default, rules = pol
    base = _eng(default, rules)
    shuffled = list(rules) + [rnd.choice(rules) for _ in range(rnd.randint(0, 3))]
    rnd.shuffle(shuffled)
    reordered = _eng(default, shuffled)
    no_rules_deny = Engine.from_string(props.text_of("deny", []))
    plus_allow = _eng(default, rules + ["allow t1, t2, u.x"])
    plus_deny = _eng(default, rules + ["deny t1 when args.b"])
    for args, tool in requests:
        d = base.decide(tool, args)
        # default deny: nothing matches → deny
        assert no_rules_deny.decide(tool, args).effect.value == "deny"
        # any matching deny denies
        if any(r.effect.value == "deny" for r in d.rules):
            assert d.effect.value == "deny"
        # rule order and duplicates never matter
        assert reordered.decide(tool, args).effect == d.effect
        # adding an allow never turns allow into deny (nor lowers any effect)
        a = plus_allow.decide(tool, args)
        if d.effect.value == "allow":
            assert a.effect.value == "allow"
        assert RANK[a.effect.value] >= RANK[d.effect.value] or d.code == "default_deny"
        # adding a deny never turns deny into allow
        if d.effect.value == "deny":
            assert plus_deny.decide(tool, args).effect.value == "deny"


# ---------------------------------------------------------------- RE2


def test_catastrophic_regex_is_linear(figure):
    text = 'policy r\ndefault allow\ntool t { s: string }\ndeny t when args.s.matches("(a+)+$")\n'
    engine = Engine.from_string(text)
    engine.decide("t", {"s": "warm"})
    runs = []
    for i in range(7):
        payload = "b" * i + "a" * 100_000 + "!"  # a new string each run: no cached match result
        t0 = time.perf_counter()
        d = engine.decide("t", {"s": payload})
        runs.append(time.perf_counter() - t0)
        assert d.effect.value == "allow"
    median = statistics.median(runs)
    figure("(a+)+$ against 100,000 chars: median decision time", round(median * 1000, 2), "ms")
    assert median < (0.010 if THOROUGH else 0.050)


@pytest.mark.parametrize(
    "pattern", ["(a)\\\\1", "a(?=b)", "a(?!b)", "(?<=a)b", "(?<!a)b", "(?P<x>a)(?P=x)"]
)
def test_non_re2_patterns_are_load_errors(pattern):
    with pytest.raises(PolicyLoadError) as exc:
        Engine.from_string(
            f'policy r\ntool t {{ s: string }}\ndeny t when args.s.matches("{pattern}")\n'
        )
    assert exc.value.code == "PL111"


# ---------------------------------------------------------------- termination


def test_large_policy_against_a_1mb_request_terminates_within_budget(figure):
    rules = scale(2_000, 49_000)
    budget = 30.0  # a hang check, not a speed target (it took 6 s on a loaded 2-core machine)
    lines = [
        "policy big",
        "default deny",
        "tool t { s: string, xs: list<string>, m: map<string, string> }",
    ]
    for k in range(rules):
        kind = k % 4
        if kind == 0:
            lines.append(f'deny t when args.s.contains("needle{k}")')
        elif kind == 1:
            lines.append(f'confirm t when args.xs.exists(x, x.matches("^z{k}[0-9]+$"))')
        elif kind == 2:
            lines.append(
                f'deny t when size(args.m) > {k + 100_000} && args.m.all(k, k.startsWith("q"))'
            )
        else:
            lines.append(
                f'allow t when args.s.endsWith("{k}") || args.xs.all(x, size(x) < {k + 50})'
            )
    text = "\n".join(lines) + "\n"
    t0 = time.perf_counter()
    engine = Engine.from_string(text)
    load = time.perf_counter() - t0
    request = {
        "s": "y" * 1_000_000,
        "xs": ["w" * 100] * 1_000,
        "m": {f"k{i}": "v" for i in range(1_000)},
    }
    t0 = time.perf_counter()
    d = engine.decide("t", request)
    took = time.perf_counter() - t0
    figure(f"{rules:,}-rule policy: load time", round(load, 1), "s")
    figure(
        f"{rules:,}-rule policy vs a ~1.1 MB request: decision time",
        round(took, 2),
        f"s (budget {budget:.0f} s)",
    )
    assert d.effect.value in ("allow", "deny", "confirm") and d.code != "internal_error", d.message[
        :200
    ]
    assert took < budget


# ---------------------------------------------------------------- audit tampering and secrets

SECRET_POLICY = """
policy audited
default deny
tool pay { amount: number, to: string, @secret card: string, @secret pin: string? }
allow pay when args.amount < 100 && args.card.startsWith("4")
"""
CARD = "4929384756102938"
PIN = "SECRET-PIN-7731"


def _filled(path: Path, n: int = 40) -> None:
    engine = Engine.from_string(SECRET_POLICY, audit=JsonlSink(path))
    for i in range(n):
        engine.decide("pay", {"amount": i * 7, "to": f"acct{i}", "card": CARD, "pin": PIN})
    engine.audit.close()


def _tamper(data: bytes, rnd: random.Random) -> bytes:
    lines = data.split(b"\n")[:-1]
    kind = rnd.choice(["flip", "delete", "insert", "swap", "rewrite", "truncate", "duplicate"])
    i = rnd.randrange(
        1, len(lines) - 1
    )  # head and tail cuts: see test_cutting_the_ends_needs_an_anchor
    if kind == "flip":
        pos = rnd.randrange(len(data) - 1)  # not the final newline
        mutated = bytes([data[pos] ^ (1 << rnd.randrange(8))])
        if mutated == b"\n" or data[pos : pos + 1] == b"\n":
            mutated = b"X"
        return data[:pos] + mutated + data[pos + 1 :]
    if kind == "delete":
        del lines[i]
    elif kind == "insert":
        lines.insert(i, lines[rnd.randrange(len(lines))])
    elif kind == "swap":
        j = (i + 1 + rnd.randrange(len(lines) - 1)) % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "duplicate":
        lines.insert(i + 1, lines[i])
    elif kind == "truncate":
        return (
            b"\n".join(lines[:i])
            + (b"\n" if i else b"")
            + lines[i][: rnd.randrange(1, len(lines[i]))]
            + b"\n"
        )
    else:  # rewrite a middle record consistently with its own hash (no key): the chain still breaks
        import hashlib

        rec = json.loads(lines[i])
        rec["effect"] = "allow" if rec["effect"] != "allow" else "deny"
        body = dict(rec)
        body.pop("hash")
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        lines[i] = f'{text[:-1]},"hash":"{digest}"}}'.encode()
        if i == len(lines) - 1:  # the last record can be rewritten undetectably without a key:
            lines[i - 1], lines[i] = lines[i], lines[i - 1]  # make it a middle one instead
    return b"\n".join(lines) + b"\n"


def test_random_tampering_is_always_detected(tmp_path, figure):
    n = scale(200, 1_000)
    path = tmp_path / "audit.jsonl"
    _filled(path)
    original = path.read_bytes()
    assert verify_file(path).ok
    rnd = random.Random(99)
    detected = 0
    for _ in range(n):
        tampered = _tamper(original, rnd)
        if tampered == original:
            continue
        path.write_bytes(tampered)
        r = verify_file(path)
        assert not r.ok, "tampering went unnoticed"
        detected += 1
    path.write_bytes(original)
    assert verify_file(path).ok
    figure("random audit-log tamperings detected by verify_file", f"{detected} / {detected}")


def test_cutting_the_ends_needs_an_anchor(tmp_path):
    """Dropping the first or last records looks like rotation / an earlier stop; verify_file
    catches it once told where the chain starts (expect_seq=0) and what its last hash was."""
    path = tmp_path / "audit.jsonl"
    _filled(path)
    original = path.read_bytes()
    full = verify_file(path)
    lines = original.split(b"\n")[:-1]
    path.write_bytes(b"\n".join(lines[1:]) + b"\n")
    assert verify_file(path).ok  # accepted as a rotated file...
    assert not verify_file(
        path, expect_seq=0, expect_prev="0" * 64
    ).ok  # ...but not as the chain's start
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    r = verify_file(path)
    assert r.ok and r.last_hash != full.last_hash  # a kept last hash exposes the cut


def test_secrets_never_reach_the_audit_file(tmp_path):
    path = tmp_path / "audit.jsonl"
    _filled(path)
    data = path.read_bytes()
    assert CARD.encode() not in data and PIN.encode() not in data
    assert b"[redacted]" in data
