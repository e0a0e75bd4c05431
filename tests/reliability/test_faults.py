"""Faults: a store that dies or stalls, a locked or read-only SQLite file, conditions that
error, no policy, a broken reload, an audit log that cannot be written, and SIGKILL while
writing the audit log. Every one of them ends in a deny that says why, never an exception
and never an allow."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from reliability_support import REPO, scale

from policylang import Engine, PolicyLoadError
from policylang.runtime.audit import (
    CallbackSink,
    JsonlSink,
    rotated_files,
    verify_chain,
    verify_file,
)
from policylang.runtime.clock import FixedClock
from policylang.runtime.stores import RedisStore, SQLiteStore

T0 = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)

POLICY = """
policy faults
default allow
tool t { n: int }
tool free { n: int }
limit t to 100 per 1h
"""


# ---------------------------------------------------------------- Redis killed / stalled


def test_redis_killed_mid_run_denies_fast_audits_everything_and_recovers(redis_server, figure):
    total = scale(2_000, 10_000)
    kill_at, restart_at = total // 2, 3 * total // 4
    records: list[dict] = []
    store = RedisStore(redis_server.url, timeout=0.25)
    engine = Engine.from_string(POLICY, store=store, audit=CallbackSink(records.append))
    outcomes: list[tuple[str, str]] = []
    outage_latencies: list[float] = []
    for i in range(total):
        if i == kill_at:
            redis_server.kill()
        if i == restart_at:
            redis_server.start()
        t0 = time.perf_counter()
        d = engine.decide("t", {"n": i})  # must not raise
        took = time.perf_counter() - t0
        outcomes.append((d.effect.value, d.code))
        if kill_at <= i < restart_at:
            outage_latencies.append(took)
    before, during, after = outcomes[:kill_at], outcomes[kill_at:restart_at], outcomes[restart_at:]
    assert before[:100] == [("allow", "default_allow")] * 100
    assert set(before[100:]) == {("deny", "rate_limited")}
    assert set(during) == {("deny", "store_unavailable")}
    # the restarted server has no state (no persistence): the lost epoch keeps denying (the
    # window has not passed) until an operator resets it; then exactly 100 are admitted again
    assert set(after) == {("deny", "store_unavailable")}
    assert len(records) == total
    assert sum(1 for r in records if r["code"] == "store_unavailable") == total - kill_at
    store.reset_lost()
    again = [engine.decide("t", {"n": i}) for i in range(150)]
    assert [(d.effect.value, d.code) for d in again[:100]] == [("allow", "default_allow")] * 100
    assert {(d.effect.value, d.code) for d in again[100:]} == {("deny", "rate_limited")}
    worst = max(outage_latencies)
    figure(
        f"Redis killed for {restart_at - kill_at:,} of {total:,} calls: worst decision latency",
        round(worst * 1000, 1),
        "ms (deny store_unavailable)",
    )
    assert worst <= 0.25 + 0.15  # the client's timeout, plus scheduling slack on a loaded machine


def test_redis_stalled_with_sigstop_denies_within_the_timeout(redis_server, figure):
    timeout = 0.25
    engine = Engine.from_string(
        POLICY,
        store=RedisStore(redis_server.url, timeout=timeout),
        audit=CallbackSink(lambda r: None),
    )
    assert engine.decide("t", {"n": 0}).effect == "allow"
    redis_server.signal(signal.SIGSTOP)
    times = []
    try:
        for i in range(scale(6, 20)):
            t0 = time.perf_counter()
            d = engine.decide("t", {"n": i})
            times.append(time.perf_counter() - t0)
            assert (d.effect.value, d.code) == ("deny", "store_unavailable")
        assert (
            engine.decide("free", {"n": 1}).effect == "allow"
        )  # tools without a limit are unaffected
    finally:
        redis_server.signal(signal.SIGCONT)
    figure(
        "Redis stalled (SIGSTOP), timeout 250 ms: worst decision latency",
        round(max(times) * 1000, 1),
        "ms",
    )
    assert max(times) < timeout + 0.15
    time.sleep(0.05)
    assert engine.decide("t", {"n": 99}).effect == "allow"


# ---------------------------------------------------------------- SQLite read-only / locked


def test_sqlite_read_only_and_locked_deny_store_unavailable(tmp_path):
    path = tmp_path / "limits.db"
    SQLiteStore(path).ping()
    ro = Engine.from_string(POLICY, store=SQLiteStore(f"file:{path}?mode=ro"))
    for i in range(3):
        d = ro.decide("t", {"n": i})
        assert (d.effect.value, d.code) == ("deny", "store_unavailable")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        locked = Engine.from_string(POLICY, store=SQLiteStore(path, busy_timeout=0.1))
        t0 = time.perf_counter()
        d = locked.decide("t", {"n": 1})
        assert (d.effect.value, d.code) == ("deny", "store_unavailable")
        assert time.perf_counter() - t0 < 1.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.decide("t", {"n": 2}).effect == "allow"


# ---------------------------------------------------------------- conditions that error

ERRORS = """
policy errs
default deny
tool t { n: int, d: int, s: string }
rule div_zero:   deny t when args.n / args.d > 1
rule type_error: deny t when principal.level + 1 > 3
rule missing:    deny t when principal.team.name == "x"
rule lets_in:    allow t when args.n / args.d >= 0 || principal.missing == 1
"""


@pytest.mark.parametrize("reference", [False, True], ids=["compiled", "reference"])
@pytest.mark.parametrize(
    ("args", "principal", "failing"),
    [
        ({"n": 5, "d": 0, "s": ""}, {"level": 1, "team": {"name": "y"}}, "div_zero"),
        ({"n": 1, "d": 1, "s": ""}, {"level": "high", "team": {"name": "y"}}, "type_error"),
        ({"n": 0, "d": 1, "s": ""}, {"level": 1, "team": {}}, "missing"),
        ({"n": 0, "d": 1, "s": ""}, {"level": 1}, "missing"),
    ],
    ids=["division-by-zero", "type-error", "missing-attribute", "missing-parent"],
)
def test_erroring_deny_is_deny_evaluation_error_naming_the_rule(
    reference, args, principal, failing
):
    engine = Engine.from_string(ERRORS, reference=reference)
    d = engine.decide("t", args, principal)
    assert (d.effect.value, d.code) == ("deny", "evaluation_error"), d.message
    assert failing in {e.rule for e in d.errors}
    assert failing in d.message


@pytest.mark.parametrize("reference", [False, True], ids=["compiled", "reference"])
def test_erroring_allow_never_allows(reference):
    text = (
        "policy e\ndefault deny\ntool t { n: int, d: int }\n"
        "rule a: allow t when args.n / args.d >= 0\n"
        "rule b: allow t when principal.level + 1 > 0\n"
        "rule c: allow t when principal.x.y == 1\n"
    )
    engine = Engine.from_string(text, reference=reference)
    for args, principal in [({"n": 1, "d": 0}, {"level": "x", "x": {}}), ({"n": 1, "d": 0}, {})]:
        d = engine.decide("t", args, principal)
        assert d.effect.value == "deny", d.message
        assert {"a", "b", "c"} <= {e.rule for e in d.errors}
    # under default allow, an erroring allow is not a reason to allow either: only the default is
    deny_all = text.replace("default deny", "default allow") + "deny t when principal.x.y == 2\n"
    d = Engine.from_string(deny_all, reference=reference).decide(
        "t", {"n": 1, "d": 0}, {"level": 1}
    )
    assert d.effect.value == "deny"


def test_no_policy_is_deny_no_policy():
    records: list[dict] = []
    engine = Engine.empty(audit=CallbackSink(records.append))
    for tool, args in [("t", {"n": 1}), ("", None), (None, []), ("x" * 10_000, {"a": object()})]:
        d = engine.decide(tool, args)
        assert (d.effect.value, d.code) == ("deny", "no_policy")
    assert len(records) == 4


# ---------------------------------------------------------------- reload with a syntax error


def _requests(n: int, seed: int = 7):
    rnd = random.Random(seed)
    roles = ["finance", "admin", "guest", "employee", ""]
    for _ in range(n):
        yield (
            "payments.send",
            {
                "amount": rnd.choice([-5, 0, 1, 50, 9999.5, 10_001, 60_000]),
                "currency": rnd.choice(["USD", "EUR", "XXX"]),
                "to": rnd.choice(["a", "b"]),
            },
            {
                "id": f"p{rnd.randint(0, 20)}",
                "role": rnd.choice(roles),
                "scopes": rnd.choice([[], ["payments:write"]]),
            },
        )


GOOD = """
policy payments version "1"
default deny
tool payments.send { amount: number, currency: string, to: string }
rule pay: allow payments.send when principal.role in ["finance", "admin"] && "payments:write" in principal.scopes
deny payments.send when args.amount <= 0 because "amount must be positive"
confirm payments.send when args.amount > 10000 because "amount {args.amount} needs approval"
deny payments.send when !(args.currency in ["USD", "EUR"])
limit payments.send to 10 per 1m by principal.id
"""


def _shape(d):
    return (
        d.effect.value,
        d.code,
        d.reasons,
        [(r.id, r.reason) for r in d.rules],
        [(lim.id, lim.used, lim.exceeded) for lim in d.limits],
        d.policy_hash,
    )


@pytest.mark.parametrize(
    "broken",
    [
        GOOD.replace("when args.amount <= 0", "when args.amount = 0"),
        GOOD + "\ndeny payments.send when (",
        GOOD.replace('"1"', '"1'),
        GOOD + "\nallow payments.send when args.nope > 1\n",  # a check error, not syntax
        GOOD + "\x00",
    ],
    ids=["single-equals", "open-paren", "unterminated-string", "unknown-field", "nul"],
)
def test_broken_reload_keeps_the_last_good_policy(broken):
    engine = Engine.from_string(GOOD, clock=FixedClock(T0))
    twin = Engine.from_string(GOOD, clock=FixedClock(T0))  # same history, never reloaded
    n = 1_000
    before = [_shape(engine.decide(*r)) for r in _requests(n)]
    assert before == [_shape(twin.decide(*r)) for r in _requests(n)]
    with pytest.raises(PolicyLoadError) as exc:
        engine.reload_string(broken)
    assert exc.value.line >= 1 and exc.value.column >= 1
    after = [_shape(engine.decide(*r)) for r in _requests(n, seed=8)]
    assert after == [_shape(twin.decide(*r)) for r in _requests(n, seed=8)]
    assert {s[0] for s in before} == {"allow", "deny", "confirm"}


# ---------------------------------------------------------------- audit write failures

AUDITED = "policy a\ndefault allow\ntool t { n: int }\ndeny t when args.n < 0\n"


def _audit_failure_cases(tmp_path: Path):
    calls = {"n": 0}

    def raising(record):
        calls["n"] += 1
        raise OSError("disk full")

    yield "raising-callback", CallbackSink(raising), calls
    closed = JsonlSink(tmp_path / "closed.jsonl")
    closed.close()
    yield "closed-jsonl", closed, None
    if os.path.exists("/dev/full"):
        yield "dev-full-jsonl", JsonlSink("/dev/full"), None

    class NotSerialisable:
        def write(self, record):
            calls["n"] += 1
            json.dumps(record, allow_nan=False)
            raise ValueError("cannot serialise")

    yield "value-error", NotSerialisable(), calls


def test_audit_write_failure_denies_audit_unavailable_without_retrying(tmp_path):
    for name, sink, calls in _audit_failure_cases(tmp_path):
        engine = Engine.from_string(AUDITED, audit=sink)
        for i in range(50):
            t0 = time.perf_counter()
            d = engine.decide("t", {"n": i})
            assert time.perf_counter() - t0 < 0.5, name
            assert (d.effect.value, d.code) == ("deny", "audit_unavailable"), (name, d.message)
            d = engine.decide("t", {"n": -1})
            assert d.effect.value == "deny" and d.code == "denied", name  # a deny stays what it was
        if calls is not None:
            assert calls["n"] == 100, name  # one attempt per decision, no retry loop
            calls["n"] = 0


# ---------------------------------------------------------------- SIGKILL while auditing

ZYGOTE = textwrap.dedent("""
    import os, sys, random, signal
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sys.path.insert(0, {repo!r})
    from policylang import Engine
    from policylang.runtime.audit import JsonlSink
    POLICY = {policy!r}
    base = Engine.from_string(POLICY)
    engine_text = POLICY
    for line in sys.stdin:
        audit, ids, max_bytes, seed = line.split()
        pid = os.fork()
        if pid == 0:
            fd = os.open(ids, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            sink = JsonlSink(audit, max_bytes=int(max_bytes), backups=2_000)
            engine = Engine.from_string(engine_text, audit=sink)
            rnd = random.Random(int(seed))
            os.write(1, b"ready\\n")
            i = 0
            while True:
                i += 1
                d = engine.decide("pay", {{"amount": rnd.randint(-5, 200), "card": "4111111111111111",
                                           "memo": "x" * rnd.randint(0, 400)}}, {{"id": "p%d" % (i % 7)}})
                os.write(1, (d.decision_id + "\\n").encode())
        print(pid, flush=True)
""")

CRASH_POLICY = """
policy crash
default deny
tool pay { amount: int, @secret card: string, memo: string }
allow pay when args.amount >= 0 && args.amount < 150
confirm pay when args.amount >= 150
"""


def test_sigkill_at_random_points_loses_no_returned_decision(tmp_path, figure):
    runs = scale(50, 200)
    script = tmp_path / "zygote.py"
    script.write_text(ZYGOTE.format(repo=str(REPO), policy=CRASH_POLICY))
    zygote = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    rnd = random.Random(2025)
    torn = rotations = total_ids = mid_rotation = 0
    try:
        for run in range(runs):
            d = tmp_path / f"run{run}"
            d.mkdir()
            audit, ids = d / "audit.jsonl", d / "ids.txt"
            max_bytes = rnd.choice([8_192, 16_384, 65_536])
            zygote.stdin.write(f"{audit} {ids} {max_bytes} {run}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (
                not ids.exists() or not ids.read_bytes().startswith(b"ready")
            ):
                time.sleep(0.001)
            time.sleep(rnd.uniform(0, 0.06))
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
            printed = ids.read_text().split("\n")
            assert printed[0] == "ready", f"run {run}: the writer never started"
            returned = [x for x in printed[1:-1] if x]  # the last piece may be cut mid-line
            files = rotated_files(audit)
            rotations += max(len(files) - 1, 0)
            if not audit.exists():  # killed between renaming the full file and opening a new one
                mid_rotation += 1
            head = verify_file(audit) if audit.exists() else None
            if head is not None and not head.ok:
                assert "torn" in head.message, head.message
                torn += 1
                # only the last line of the newest file can be torn: every other line verifies
                lines = audit.read_bytes().split(b"\n")
                assert lines[-1] and head.first_error_line == len(lines)
                assert verify_file(audit, repair=True).ok
                assert verify_file(audit).ok
            for f in files[:-1] if audit.exists() else files:
                assert f.read_bytes().endswith(b"\n"), f
            chain = verify_chain(audit)
            assert chain.ok, f"run {run}: {chain.message}"
            logged = set()
            for f in rotated_files(audit):
                for line in f.read_bytes().splitlines():
                    rec = json.loads(line)
                    logged.add(rec["decision_id"])
                    assert "4111111111111111" not in line.decode()
            missing = [x for x in returned if x not in logged]
            assert not missing, (
                f"run {run}: {len(missing)} returned decision ids are not in the log"
            )
            assert chain.records == len(logged) >= len(returned)
            total_ids += len(returned)
            # the chain carries on after the crash
            with JsonlSink(audit, max_bytes=max_bytes, backups=2_000) as sink:
                sink.write({"kind": "restart", "run": run})
            assert verify_chain(audit).ok
    finally:
        zygote.stdin.close()
        zygote.kill()
        zygote.wait()
    figure(
        f"SIGKILL at random points, {runs} runs: returned decision ids missing from the log",
        0,
        f"(of {total_ids:,}; {torn} torn last lines repaired; {rotations} rotations; "
        f"{mid_rotation} kills mid-rotation)",
    )


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    return
        except (FileNotFoundError, ProcessLookupError):  # already reaped
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not die")
