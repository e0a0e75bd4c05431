"""Load: exactly N admitted under concurrency (threads, processes, skewed clocks), for every
store; generated arrival schedules never admit more than N in any window, and the memory,
SQLite and Redis stores make the same decision call by call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import REPO, THOROUGH, scale

from policylang import Engine
from policylang.runtime.audit import JsonlSink, verify_file
from policylang.runtime.clock import FixedClock
from policylang.runtime.limits import LimitRequest, MemoryStore
from policylang.runtime.stores import RedisStore, SQLiteStore

T0 = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)

POLICY = """
policy load
default allow
tool t { n: int }
tool warm { n: int }
limit t to 100 per 1m
"""


# ---------------------------------------------------------------- memory: 8 threads, audited


def test_memory_store_eight_threads_exactly_100_and_every_call_audited(tmp_path, figure):
    n = scale(2_000, 10_000)
    path = tmp_path / "audit.jsonl"
    sink = JsonlSink(path)
    engine = Engine.from_string(POLICY, clock=FixedClock(T0), store=MemoryStore(), audit=sink)
    results: list[list[tuple[str, str, str]]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def run(k: int) -> None:
        barrier.wait()
        out = results[k]
        for i in range(n):
            d = engine.decide("t", {"n": i})
            out.append((d.effect.value, d.code, d.decision_id))

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    sink.close()
    flat = [r for rs in results for r in rs]
    assert len(flat) == 8 * n
    assert sum(1 for e, _, _ in flat if e == "allow") == 100
    assert {(e, c) for e, c, _ in flat if e != "allow"} == {("deny", "rate_limited")}
    ids = [i for _, _, i in flat]
    assert len(set(ids)) == len(ids)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 8 * n
    recs = [json.loads(x) for x in lines]
    assert [r["seq"] for r in recs] == list(range(1, 8 * n + 1))
    assert sorted(r["decision_id"] for r in recs) == sorted(ids)
    assert sum(1 for r in recs if r["effect"] == "allow") == 100
    v = verify_file(path)
    assert v.ok and v.records == 8 * n, v.message
    figure(f"memory store, 8 threads x {n:,} calls, 100/min on one key: admitted", 100)
    figure("memory store + JsonlSink throughput (8 threads)", round(8 * n / took), "decisions/s")


# ---------------------------------------------------------------- processes: SQLite and Redis

WORKER = textwrap.dedent("""
    import sys, threading, time
    from datetime import datetime, timedelta, UTC
    sys.path.insert(0, {repo!r})
    from policylang import Engine
    from policylang.runtime.clock import FixedClock
    from policylang.runtime.stores import SQLiteStore, RedisStore
    kind, target, start_at, calls, threads, skew, fixed = sys.argv[1:8]
    start_at, calls, threads, skew = float(start_at), int(calls), int(threads), float(skew)
    if kind == "sqlite":
        store = SQLiteStore(target, busy_timeout=30.0)
    else:
        store = RedisStore(target, timeout=5.0)
    if fixed:
        clock = FixedClock(datetime.fromisoformat(fixed) + timedelta(seconds=skew))
    else:
        class Skewed:
            def now(self):
                return datetime.now(UTC) + timedelta(seconds=skew)
        clock = Skewed()
    engine = Engine.from_string({policy!r}, store=store, clock=clock)
    engine.decide("warm", {{"n": 0}})
    counts = []
    def run():
        allowed = limited = other = 0
        for i in range(calls):
            d = engine.decide("t", {{"n": i}})
            if d.effect == "allow":
                allowed += 1
            elif d.code == "rate_limited":
                limited += 1
            else:
                other += 1
                print("UNEXPECTED", d.code, d.message, file=sys.stderr)
        counts.append((allowed, limited, other))
    while time.time() < start_at:
        time.sleep(0.005)
    ts = [threading.Thread(target=run) for _ in range(threads)]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(*[sum(c[k] for c in counts) for k in range(3)])
""")


def hammer(
    tmp_path: Path,
    kind: str,
    target: str,
    *,
    procs: int,
    threads: int,
    calls: int,
    policy: str = POLICY,
    skews: list[float] | None = None,
    fixed: str = "",
) -> tuple[int, int, int]:
    script = tmp_path / f"worker_{uuid.uuid4().hex[:6]}.py"
    script.write_text(WORKER.format(repo=str(REPO), policy=policy))
    start_at = time.time() + 1.5 + 0.15 * procs
    skews = skews or [0.0] * procs
    ps = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                kind,
                target,
                str(start_at),
                str(calls),
                str(threads),
                str(skews[k]),
                fixed,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(procs)
    ]
    totals = [0, 0, 0]
    errors = []
    for p in ps:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        errors += [line for line in err.splitlines() if line.startswith("UNEXPECTED")]
        for k, v in enumerate(map(int, out.split())):
            totals[k] += v
    assert not errors, errors[:5]
    return totals[0], totals[1], totals[2]


def test_sqlite_four_processes_four_threads_exactly_100(tmp_path, figure):
    m = scale(150, 1_000)
    t0 = time.perf_counter()
    allowed, limited, other = hammer(
        tmp_path,
        "sqlite",
        str(tmp_path / "limits.db"),
        procs=4,
        threads=4,
        calls=m,
        fixed=T0.isoformat(),
    )
    took = time.perf_counter() - t0
    assert (allowed, limited, other) == (100, 16 * m - 100, 0)
    figure(f"SQLite store, 4 processes x 4 threads x {m:,} calls: admitted", allowed, "(limit 100)")
    figure("SQLite store: wall time of that run", round(took, 1), "s")


REDIS_POLICY = POLICY.replace("per 1m", "per 1h")  # server time: a run may not straddle the window


@pytest.mark.parametrize("skewed", [False, True], ids=["clocks-agree", "clocks-skewed-30s"])
def test_redis_processes_exactly_100(tmp_path, redis_server, skewed, figure):
    procs = scale(8, 16)
    k = scale(150, 2_000)
    skews = [(-30.0 if i % 2 else 30.0) * (i % 3) / 2 for i in range(procs)] if skewed else None
    if skewed:
        assert min(skews) == -30.0 and max(skews) == 30.0
    allowed, limited, other = hammer(
        tmp_path,
        "redis",
        redis_server.url,
        procs=procs,
        threads=1,
        calls=k,
        policy=REDIS_POLICY,
        skews=skews,
    )
    assert (allowed, limited, other) == (100, procs * k - 100, 0)
    label = "skewed +-30 s" if skewed else "same clock"
    figure(
        f"Redis store, {procs} processes x {k:,} calls ({label}): admitted", allowed, "(limit 100)"
    )


# ---------------------------------------------------------------- one timestamp, sum() quotas


def _stores(tmp: str, redis_url: str | None):
    yield "memory", MemoryStore()
    yield "sqlite", SQLiteStore(os.path.join(tmp, f"{uuid.uuid4().hex}.db"))
    if redis_url:
        yield (
            "redis",
            RedisStore(
                redis_url, use_server_time=False, timeout=2.0, prefix=f"t{uuid.uuid4().hex}:"
            ),
        )


@pytest.fixture
def maybe_redis(request):
    """The redis URL when a server can run here, else None (the memory/SQLite half still runs)."""
    import shutil

    if shutil.which("redis-server") is None:
        return None
    try:
        import redis  # noqa: F401
    except ImportError:
        return None
    return request.getfixturevalue("redis_server").url


def test_one_identical_timestamp_admits_exactly_n(tmp_path, maybe_redis):
    policy = "policy same\ndefault allow\ntool t { n: int }\nlimit t to 37 per 1h\n"
    for name, store in _stores(str(tmp_path), maybe_redis):
        engine = Engine.from_string(policy, clock=FixedClock(T0), store=store)
        effects = [engine.decide("t", {"n": i}) for i in range(1_000)]
        allowed = sum(1 for d in effects if d.effect == "allow")
        assert allowed == 37, name
        assert all(d.code == "rate_limited" for d in effects[37:]), name


def test_sum_cost_larger_than_the_whole_limit_is_refused_and_consumes_nothing(
    tmp_path, maybe_redis
):
    policy = (
        "policy quota\ndefault allow\ntool pay { amount: number }\n"
        "limit pay to sum(args.amount) 500 per 1h\n"
    )
    for name, store in _stores(str(tmp_path), maybe_redis):
        engine = Engine.from_string(policy, clock=FixedClock(T0), store=store)
        for amount in (600, 500.01, 10**12):
            d = engine.decide("pay", {"amount": amount})
            assert (d.effect, d.code) == ("deny", "rate_limited"), (name, amount)
            assert d.limits and d.limits[0].used == 0, name
        assert [engine.decide("pay", {"amount": 100}).effect for _ in range(5)] == ["allow"] * 5, (
            name
        )
        d = engine.decide("pay", {"amount": 0.5})
        assert (d.effect, d.code) == ("deny", "rate_limited"), name
        assert d.limits[0].used == 500, name


# ---------------------------------------------------------------- generated arrival schedules

SCHEDULE_POLICY = """
policy sched
default allow
tool t { k: string, c: int }
rule per_key: limit t to 4 per 10s by args.k
rule budget: limit t to sum(args.c) 9 per 30s
"""
W_KEY, N_KEY, W_SUM, N_SUM = 10.0, 4, 30.0, 9

schedules = st.lists(
    st.tuples(
        st.sampled_from(
            [0.0, 0.0, 0.001, 0.5, 1.0, 2.5, 5.0, 9.999, 10.0, 10.001, 29.0]
        ),  # time step
        st.sampled_from(["a", "b"]),
        st.integers(0, 4),
    ),
    min_size=1,
    max_size=40,
)


def _run_schedule(store, schedule) -> list[tuple[str, float, str, int]]:
    clock = FixedClock(T0)
    engine = Engine.from_string(SCHEDULE_POLICY, clock=clock, store=store)
    out = []
    elapsed_ms = 0  # whole milliseconds: a float sum drifts across a window's edge
    for step, key, cost in schedule:
        clock.advance(step)
        elapsed_ms += round(step * 1000)
        d = engine.decide("t", {"k": key, "c": cost})
        assert d.code in ("default_allow", "rate_limited"), d.message
        out.append((d.effect.value, elapsed_ms / 1000, key, cost))
    return out


def _check_windows(trace) -> None:
    admitted = [(t, k, c) for e, t, k, c in trace if e == "allow"]
    for t, _, _ in admitted:  # the worst window of each length ends at an admitted call
        for key in ("a", "b"):
            n = sum(1 for u, k, _ in admitted if k == key and round(t - u, 6) < W_KEY and u <= t)
            assert n <= N_KEY, (t, key, n)
        assert sum(c for u, _, c in admitted if round(t - u, 6) < W_SUM and u <= t) <= N_SUM


@pytest.fixture(scope="module")
def schedule_redis(request):
    import shutil

    if shutil.which("redis-server") is None:
        return None
    try:
        import redis  # noqa: F401
    except ImportError:
        return None
    return request.getfixturevalue("redis_module_server").url


def test_generated_schedules_never_exceed_n_and_all_stores_agree(schedule_redis, figure):
    examples = scale(80, 2_000)
    counter = {"n": 0}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=not THOROUGH,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(schedules)
    def check(schedule):
        counter["n"] += 1
        memory = _run_schedule(MemoryStore(), schedule)
        _check_windows(memory)
        with tempfile.TemporaryDirectory() as d:
            sqlite = SQLiteStore(os.path.join(d, "l.db"))
            try:
                assert _run_schedule(sqlite, schedule) == memory
            finally:
                sqlite.close()
        if schedule_redis:
            redis_store = RedisStore(
                schedule_redis, use_server_time=False, timeout=2.0, prefix=f"s{uuid.uuid4().hex}:"
            )
            try:
                assert _run_schedule(redis_store, schedule) == memory
            finally:
                redis_store.close()

    check()
    stores = "memory, SQLite, Redis" if schedule_redis else "memory, SQLite"
    figure(f"generated arrival schedules, {stores} agree call by call", counter["n"], "schedules")


def test_window_checker_catches_an_over_admission():
    bad = [("allow", float(i), "a", 0) for i in range(5)]
    with pytest.raises(AssertionError):
        _check_windows(bad)
    _check_windows(bad[:4] + [("allow", bad[0][1] + W_KEY, "a", 0)])  # the oldest one has left


# ---------------------------------------------------------------- first use of a fresh SQLite file


def _first_use(path: str, start: float, q) -> None:
    store = SQLiteStore(path, busy_timeout=30.0)
    errors: list[str] = []

    def go() -> None:
        while time.time() < start:
            time.sleep(0.0005)
        for _ in range(5):
            try:
                store.acquire([LimitRequest("k", 100, 60)], 1000.0, True)
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                errors.append(str(exc))

    ts = [threading.Thread(target=go) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put(errors)


def test_sqlite_fresh_file_opened_by_many_processes_at_once(tmp_path):
    """Regression: switching a fresh file to WAL failed at once with "database is locked"
    (no busy wait) while other processes were opening it; 85% of these trials failed."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for trial in range(scale(20, 100)):
        path = str(tmp_path / f"fresh{trial}.db")
        q = ctx.Queue()
        start = time.time() + 0.1
        ps = [ctx.Process(target=_first_use, args=(path, start, q)) for _ in range(4)]
        for p in ps:
            p.start()
        errors = [e for _ in ps for e in q.get(timeout=60)]
        for p in ps:
            p.join()
        assert not errors, f"trial {trial}: {errors[:3]}"
        assert SQLiteStore(path).acquire([LimitRequest("k", 100, 60)], 1000.0, False)[0].used == 80
