"""A @secret value never reaches any sink: decisions, audit, explain, replay, guard, server, sessions.

The property tests generate secret values of every declared type (strings with
quotes, braces and non-ASCII, large ints, doubles, lists and maps of them) and
send them through a policy whose templates, conditions, errors, limit keys and
session history all touch the secret. For each decision, on the fused and on
the ordinary path, no text form of the value may appear in the decision's JSON,
``str``/``repr``, the audit file, ``eval --explain``, ``replay``, a guard's
exception, the server's response or the stored session history.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang import Engine
from policylang.cli import eval as eval_cli
from policylang.cli import replay as replay_cli
from policylang.runtime.audit import JsonlSink
from policylang.runtime.celops import format_value
from policylang.runtime.guard import CallBlocked
from policylang.runtime.redact import MARKER, Scrubber
from policylang.runtime.session_stores import SQLiteSessionStore

ROOT = Path(__file__).resolve().parents[2]

# Secret leaves that cannot occur in any text by accident: no hex digits (ids and hashes
# are hex), no spaces (indentation), at least 8 characters.
_ALPHABET = st.sampled_from(list("ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ'\"\\{}$%!#é€😀ß\n\t"))
SECRET_STR = st.text(_ALPHABET, min_size=8, max_size=24).filter(
    lambda s: sum(c.isalpha() for c in s) >= 4
)
SECRET_INT = st.integers(10**12, 2**62) | st.integers(-(2**62), -(10**12))
SECRET_DOUBLE = st.floats(1e6, 1e12).filter(lambda f: not f.is_integer() and "e" not in repr(f))

SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "string": SECRET_STR,
    "int": SECRET_INT,
    "double": SECRET_DOUBLE,
}
TYPES: dict[str, st.SearchStrategy[Any]] = {
    **SCALARS,
    "list<string>": st.lists(SECRET_STR, min_size=1, max_size=3),
    "map<string, int>": st.dictionaries(SECRET_STR, SECRET_INT, min_size=1, max_size=3),
    "list<double>": st.lists(SECRET_DOUBLE, min_size=1, max_size=3),
    "dyn": st.dictionaries(
        SECRET_STR, st.lists(SECRET_STR | SECRET_INT, max_size=2), min_size=1, max_size=2
    ),
}

# amount picks the rule that matches: every kind of outcome touches the secret somewhere
AMOUNTS = {
    "allowed with a templated reason": 1,
    "an error quoting the secret": 13,
    "a type error on the secret": 14,
    "history compared": 15,
    "confirm through a def and whole objects": 600,
    "denied with the secret in the reason": 2000,
}


def policy_text(card_type: str, session: bool = True) -> str:
    """The policy; without a session declaration the tool gets a fused function."""
    text = f"""
policy sec
principal {{ id: string, @secret pin: string = "" }}
context {{ @secret token: string = "", session_id: string = "s1" }}
session by context.session_id
tool pay {{ amount: number, to: string, @secret card: {card_type},
           owner: {{name: string, @secret ssn: string}}? }}
def shown(x): string(dyn(x))
rule direct: deny pay when args.amount > 1000 because "card {{args.card}} refused for {{args.to}}"
rule derived: confirm pay when args.amount > 500
    because "def {{shown(args.card)}} whole {{args}} owner {{args.owner}} pin {{principal.pin}} token {{context.token}} to {{args.to}}"
rule boom: deny pay when args.amount == 13 && int(string(dyn(args.card)) + "!") > 0 because "never"
rule cmp: deny pay when args.amount == 14 && dyn(args.card) < 1 because "never"
rule hist: deny pay when args.amount == 15 && session.calls.exists(c, c.args.card == args.card) because "seen"
allow pay when args.amount <= 500 because "ok {{args.to}} {{args.card}} {{args.card == args.card}}"
limit pay to 1000 per 1h by args.card
"""
    if not session:
        text = "\n".join(
            line for line in text.splitlines() if not line.startswith(("session", "rule hist"))
        )
    return text


def needles(value: Any) -> set[str]:
    """Text forms of a secret that must appear nowhere (leaves too, for lists and maps)."""
    out: set[str] = set()
    if isinstance(value, str):
        out |= {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        out.add(str(value))
    elif isinstance(value, float):
        out |= {repr(value), format_value(value)}
    elif isinstance(value, list):
        for x in value:
            out |= needles(x)
    elif isinstance(value, dict):
        for k, v in value.items():
            out |= needles(k) | needles(v)
    return out


def assert_hidden(text: str | bytes, secrets: set[str], where: str) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for n in secrets:
        assert n not in text, f"a secret ({n!r}) appears in {where}:\n{text[:2000]}"


@functools.cache
def _compiled(card_type: str, session: bool) -> Any:
    """Compiling is most of an example's cost: once per declared type (engines share it)."""
    return Engine.from_string(policy_text(card_type, session)).compiled


def engine_for(card_type: str, session: bool = True, fused: bool = True, **options: Any) -> Engine:
    engine = Engine(_compiled(card_type, session), **options)
    assert engine._prepared is not None
    if not fused:
        engine._prepared.fused.clear()
    return engine


def engines(card_type: str, audit_dir: str | None = None) -> tuple[Engine, Engine]:
    """The same policy twice: fused functions on, and off (the ordinary path)."""
    sinks = [
        JsonlSink(os.path.join(audit_dir, f"{n}.jsonl")) if audit_dir else None
        for n in ("fused", "ordinary")
    ]
    fused = engine_for(card_type, session=False, audit=sinks[0])
    ordinary = engine_for(card_type, session=False, fused=False, audit=sinks[1])
    assert fused._prepared is not None and "pay" in fused._prepared.fused, (
        "the tool should have a fused function"
    )
    return fused, ordinary


def decision_texts(d: Any) -> str:
    return "\n".join(
        [
            d.model_dump_json(),
            json.dumps(d.model_dump(mode="json")),
            str(d),
            repr(d),
            d.message,
            *d.reasons,
        ]
        + [r.reason or "" for r in d.rules]
        + [e.message for e in d.errors]
        + [s.key or "" for s in d.limits]
    )


@st.composite
def secret_requests(
    draw: Any,
) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], set[str]]:
    card_type = draw(st.sampled_from(sorted(TYPES)))
    card = draw(TYPES[card_type])
    ssn, pin, token = draw(SECRET_STR), draw(SECRET_STR), draw(SECRET_STR)
    amount = draw(st.sampled_from(sorted(AMOUNTS.values())))
    args = {"amount": amount, "to": "bob", "card": card, "owner": {"name": "n", "ssn": ssn}}
    hidden = needles(card) | needles(ssn) | needles(pin) | needles(token)
    return card_type, args, {"id": "u1", "pin": pin}, {"token": token}, hidden


_SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@_SETTINGS
@given(secret_requests())
def test_no_secret_in_decisions_or_audit_on_both_paths(req: Any) -> None:
    card_type, args, principal, context, hidden = req
    with tempfile.TemporaryDirectory() as tmp:
        fused, ordinary = engines(card_type, tmp)
        for engine, where in ((fused, "the fused path"), (ordinary, "the ordinary path")):
            for _ in range(2):  # the second call sees the first in its session history
                d = engine.decide("pay", args, principal, context)
                assert_hidden(decision_texts(d), hidden, f"a decision on {where} ({d.code})")
        a, b = (
            fused.decide("pay", args, principal, context),
            ordinary.decide("pay", args, principal, context),
        )
        assert (a.effect, a.code, a.reasons, a.message) == (b.effect, b.code, b.reasons, b.message)
        for engine in (fused, ordinary):
            engine.audit.close()  # type: ignore[union-attr]
        for name in ("fused.jsonl", "ordinary.jsonl"):
            data = Path(tmp, name).read_bytes()
            assert MARKER.encode() in data
            assert_hidden(data, hidden, f"the audit file {name}")


@_SETTINGS
@given(secret_requests())
def test_no_secret_in_explain(req: Any) -> None:
    card_type, args, principal, context, hidden = req
    engine = engine_for(card_type)
    explanation = eval_cli.explain(engine, "pay", args, principal, context)
    decision = engine.decide("pay", args, principal, context)
    explanation["combined"] = eval_cli._combined(explanation, decision)
    text = eval_cli.text_report(decision, explanation, eval_cli.Painter(False))
    assert "args.card = [redacted]" in text
    assert_hidden(text, hidden, "eval --explain")
    assert_hidden(
        json.dumps(explanation, ensure_ascii=False, default=str), hidden, "eval --explain --json"
    )


@_SETTINGS
@given(secret_requests())
def test_no_secret_in_guard_exceptions(req: Any) -> None:
    card_type, args, principal, context, hidden = req
    engine = engine_for(card_type)

    def pay(**kw: Any) -> str:
        return "paid"

    guarded = engine.guard(pay, "pay", principal=principal, context=context)
    try:
        guarded(**args)
    except CallBlocked as exc:
        assert_hidden(
            f"{exc}\n{exc!r}\n{exc.decision.model_dump_json()}", hidden, "a guard exception"
        )


@_SETTINGS
@given(secret_requests())
def test_no_secret_in_the_stored_session_history(req: Any) -> None:
    card_type, args, principal, context, hidden = req
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sessions.db")
        engine = engine_for(card_type, sessions=SQLiteSessionStore(path))
        engine.decide("pay", {**args, "amount": 1}, principal, context)
        engine.decide("pay", args, principal, context)
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT key, call FROM policylang_session_calls").fetchall()
        assert rows
        assert_hidden("\n".join(f"{k}\t{c}" for k, c in rows), hidden, "the session store")
        assert all(json.loads(c)["args"]["card"] == MARKER for _, c in rows)


@settings(_SETTINGS, max_examples=20)  # each example loads the candidate policy from a file
@given(secret_requests())
def test_no_secret_in_replay_output(req: Any) -> None:
    """Even an audit log holding secrets in clear (an old log) replays without printing them."""
    card_type, args, principal, context, hidden = req
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp, "audit.jsonl")
        record = {
            "effect": "allow",
            "tool": "pay",
            "code": "allowed",
            "args": args,
            "principal": principal,
            "principal_id": "u1",
            "context": context,
            "at": "2025-01-01T00:00:00Z",
        }
        log.write_text(json.dumps(record) + "\n", "utf-8")
        candidate = Path(tmp, "next.policy")
        candidate.write_text(
            policy_text(card_type) + '\ndeny pay because "now {args.card} is refused"\n', "utf-8"
        )
        for as_json in (False, True):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                replay_cli.run(
                    argparse.Namespace(
                        audit=str(log), policy=str(candidate), examples=3, json=as_json
                    )
                )
            assert "deny" in out.getvalue()
            assert_hidden(out.getvalue(), hidden, "replay output")


def test_no_secret_in_server_responses() -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from policylang.server import create_app

    engine = Engine.from_string(policy_text("string"))
    client = TestClient(create_app(engine))
    secret = "Zq'4111\"{x}-zzzz"
    for amount in AMOUNTS.values():
        body = {
            "tool": "pay",
            "args": {"amount": amount, "to": "bob", "card": secret},
            "principal": {"id": "u1", "pin": "pinpinpinpin"},
            "context": {"token": "toktoktoktok"},
        }
        r = client.post("/v1/decide", json=body)
        assert r.status_code == 200
        assert_hidden(
            r.text, needles(secret) | {"pinpinpinpin", "toktoktoktok"}, "a server response"
        )
        r = client.post("/v1/decide/batch", json={"requests": [body, body]})
        assert_hidden(r.text, needles(secret), "a batch response")
    metrics = client.get("/metrics").text
    assert_hidden(metrics, needles(secret), "the metrics")


def test_the_readme_example_card_is_refused_without_printing_it() -> None:
    """The issue's example: ``because "card {args.card} is refused"``."""
    src = """
tool payments.send { amount: number, @secret card: string }
deny payments.send when args.card.startsWith("4111") because "card {args.card} is refused"
allow payments.send
"""
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.from_string(src, audit=JsonlSink(os.path.join(tmp, "a.jsonl")))
        d = engine.decide("payments.send", {"amount": 5, "card": "4111111111111111"})
        assert d.denied and d.reasons == ["card [redacted] is refused"]
        assert d.message == "payments.send denied: card [redacted] is refused"
        engine.audit.close()  # type: ignore[union-attr]
        assert b"4111111111111111" not in Path(tmp, "a.jsonl").read_bytes()


def test_eval_explain_cli_in_a_subprocess(tmp_path: Path) -> None:
    policy = tmp_path / "p.policy"
    policy.write_text(policy_text("string"), "utf-8")
    secret = "Zqsecret-4111222233334444"
    request = {
        "tool": "pay",
        "args": {"amount": 13, "to": "bob", "card": secret},
        "principal": {"id": "u1", "pin": "pinpinpinpin"},
    }
    hidden = {secret, secret[:12], "4111222233334444", "pinpinpinpin"}
    out = subprocess.run(
        [sys.executable, "-m", "policylang", "eval", str(policy), "--request", "-", "--explain"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert out.returncode == 1, out.stderr
    assert "args.card = [redacted]" in out.stdout
    assert_hidden(out.stdout + out.stderr, hidden, "policylang eval --explain")
    (tmp_path / "req.json").write_text(json.dumps(request), "utf-8")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):  # the same command with --json, in this process
        code = eval_cli.run(
            argparse.Namespace(
                path=str(policy),
                request=str(tmp_path / "req.json"),
                tool=None,
                args=None,
                principal=None,
                context=None,
                now=None,
                json=True,
                explain=True,
            )
        )
    assert code == 1 and json.loads(buffer.getvalue())["explanation"]["rules"]
    assert_hidden(buffer.getvalue(), hidden, "policylang eval --explain --json")


def test_validation_errors_do_not_quote_a_secret() -> None:
    """An invalid secret argument is refused with a reason that names the field, not the value."""
    src = """
tool t { @secret level: "gold" | "silver", @secret code: int, note: string? }
allow t
"""
    engine = Engine.from_string(src)
    d = engine.decide("t", {"level": "platinum-ZZZZ-9999", "code": 5})
    assert d.code == "invalid_request" and "level" in d.message
    assert_hidden(decision_texts(d), {"platinum-ZZZZ-9999", "platinum"}, "a validation error")
    d = engine.decide("t", {"level": "gold", "code": "Zq-not-a-number"})
    assert d.code == "invalid_request"
    assert_hidden(decision_texts(d), {"Zq-not-a-number"}, "a validation error")


def test_a_limit_keyed_by_a_secret_counts_each_value_but_shows_a_digest() -> None:
    src = """
tool pay { @secret card: string }
limit pay to 1 per 1h by args.card
allow pay
"""
    engine = Engine.from_string(src)
    first = engine.decide("pay", {"card": "Zq-card-one-1111"})
    assert first.allowed and first.limits[0].key is not None
    assert first.limits[0].key.startswith(MARKER + ":")
    again = engine.decide("pay", {"card": "Zq-card-one-1111"})
    other = engine.decide("pay", {"card": "Zq-card-two-2222"})
    assert again.code == "rate_limited" and other.allowed
    assert "Zq-card-one" not in again.message + again.model_dump_json()
    stored = json.dumps(engine.store.__dict__, default=str)
    assert "Zq-card" not in stored


def test_session_rules_see_the_marker_for_earlier_secret_arguments() -> None:
    src = """
context { session_id: string = "s" }
session by context.session_id
tool pay { @secret card: string, to: string }
deny pay when session.calls.exists(c, c.args.card == "[redacted]" && c.args.to == args.to)
    because "paid {args.to} already"
allow pay
"""
    engine = Engine.from_string(src)
    assert engine.decide("pay", {"card": "Zq-card-1111", "to": "bob"}).allowed
    again = engine.decide("pay", {"card": "Zq-card-2222", "to": "bob"})
    assert again.denied and again.reasons == ["paid bob already"]


def test_a_session_keyed_by_a_secret_stores_a_digest(tmp_path: Path) -> None:
    src = """
principal { @secret api_key: string }
session by principal.api_key
tool t { x: int }
deny t when session.count("t") >= 1 because "once per key, not {session.id}"
allow t
"""
    path = str(tmp_path / "s.db")
    engine = Engine.from_string(src, sessions=SQLiteSessionStore(path))
    assert engine.decide("t", {"x": 1}, {"api_key": "Zq-api-key-123456"}).allowed
    d = engine.decide("t", {"x": 1}, {"api_key": "Zq-api-key-123456"})
    assert d.denied and d.reasons == ["once per key, not [redacted]"]
    assert engine.decide("t", {"x": 1}, {"api_key": "Zq-other-key-99999"}).allowed
    with sqlite3.connect(path) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM policylang_session_calls")]
    assert keys and not any("Zq-" in k for k in keys)


def test_a_secret_that_is_the_marker_or_empty_is_harmless() -> None:
    scrub = Scrubber(["", MARKER, None, True])
    assert scrub("a [redacted] b") == "a [redacted] b"


@given(
    SECRET_STR | SECRET_INT | SECRET_DOUBLE,
    st.integers(8, 40),
    st.sampled_from(["'", '"', " ", "(", ""]),
)
def test_scrubber_removes_whole_and_truncated_quotes(value: Any, cut: int, quote: str) -> None:
    """Every text form, and any quote of its first 8+ characters (a truncated error text)."""
    scrub = Scrubber([value])
    for form in needles(value):
        for text in (f"error: {quote}{form}{quote} x", f"cut {quote}{form[:cut]}...", form):
            assert_hidden(
                scrub(text), {form[: max(cut, 8)]} if len(form) >= 8 else {form}, "a scrubbed text"
            )


@given(st.integers(0, 999))
def test_short_secrets_are_scrubbed_only_as_whole_tokens(value: int) -> None:
    scrub = Scrubber([value])
    assert scrub(f"value {value} is bad") == f"value {MARKER} is bad"
    assert scrub(f"PL{value}x") == f"PL{value}x"  # inside a word: left alone


def test_bools_and_none_are_not_scrubbed() -> None:
    assert not Scrubber([True, False, None])


@given(SECRET_DOUBLE)
def test_doubles_are_scrubbed_in_every_rendering(value: float) -> None:
    scrub = Scrubber([value])
    for text in (repr(value), format_value(value), f"{value:g}"):
        assert MARKER in scrub(f"got {text}")
    assert not math.isnan(value)
