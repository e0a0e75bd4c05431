"""What state costs: rate-limit stores, guards and audit sinks, on tiny policies.

    python benchmarks/stateful.py            # quick (the default): well under 2 minutes
    python benchmarks/stateful.py --full     # more calls

(a) one decision with one rate limit (`limit t to 1000000 per 1m by principal.id`,
    never reached) on MemoryStore, SQLiteStore (a file in a temporary directory) and
    RedisStore (a real `redis-server` started on a free loopback port and stopped
    afterwards; skipped with a note when the binary or the `redis` package is absent);
(b) a guarded call (`engine.guard(fn, tool="t", principal=...)`, allow policy, no
    limits, no audit) against calling `fn` directly and against `engine.decide` alone;
(c) `engine.decide` with no audit, with `JsonlSink(tmpfile)` and with
    `JsonlSink(tmpfile, fsync=True)` (target: p99 with the sink ≤ 2× without).

Latency is one `perf_counter_ns` pair per call, gc disabled within a block; the
variants of one part run in alternating blocks so drift hits them alike.
The tables are printed and written to `benchmarks/results-stateful.md` (`--out`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.report import num, ratio, stats  # noqa: E402
from policylang import Engine  # noqa: E402
from policylang.runtime.audit import JsonlSink  # noqa: E402
from policylang.runtime.limits import MemoryStore  # noqa: E402
from policylang.runtime.stores import SQLiteStore  # noqa: E402

QUICK = {"calls": 5000, "fsync_calls": 1000, "blocks": 5}
FULL = {"calls": 50000, "fsync_calls": 5000, "blocks": 10}
PRINCIPALS = 100  # the limit is keyed by principal.id; calls rotate over this many ids

HEADER = """policy bench version "1.0.0"
default deny
principal { id: string }
tool t { x: int }
allow t when args.x > 0
"""
LIMITED = HEADER + "rule per_principal: limit t to 1000000 per 1m by principal.id\n"


# ---------------------------------------------------------------- timing


def measure_blocks(
    variants: dict[str, Callable[[int], Any]], calls: dict[str, int], blocks: int, warmup: int = 200
) -> dict[str, list[int]]:
    """Run each variant's `fn(i)` for its number of calls, in `blocks` alternating blocks."""
    clock = time.perf_counter_ns
    for fn in variants.values():
        for i in range(warmup):
            fn(i)
    samples: dict[str, list[int]] = {name: [] for name in variants}
    for b in range(blocks):
        order = list(variants) if b % 2 == 0 else list(reversed(variants))
        for name in order:
            fn, per = variants[name], calls[name] // blocks
            out = samples[name]
            gc.collect()
            gc.disable()
            try:
                for i in range(b * per, (b + 1) * per):
                    t0 = clock()
                    fn(i)
                    out.append(clock() - t0)
            finally:
                gc.enable()
    return samples


# ---------------------------------------------------------------- redis


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[tuple[str | None, str]]:
    """Yields (url, note); url is None when Redis cannot be used here."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None, "skipped: no `redis-server` on PATH"
        return
    try:
        import redis
    except ImportError:
        yield None, "skipped: the `redis` Python package is not installed"
        return
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--logfile",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    yield None, f"skipped: redis-server did not start (exit {proc.poll()})"
                    return
                time.sleep(0.05)
        client.close()
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True
        ).stdout.split()
        v = next((w.split("=", 1)[1] for w in version if w.startswith("v=")), "?")
        yield f"redis://127.0.0.1:{port}/0", f"redis-server {v} on 127.0.0.1:{port} (loopback TCP)"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- the parts


def part_stores(tmp: Path, calls: int, blocks: int) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    engines: dict[str, Engine] = {
        "MemoryStore": Engine.from_string(LIMITED, store=MemoryStore()),
        "SQLiteStore": Engine.from_string(LIMITED, store=SQLiteStore(tmp / "limits.db")),
    }
    what = {
        "MemoryStore": "in process, one lock",
        "SQLiteStore": "file in a temp dir, WAL, synchronous=NORMAL, one BEGIN IMMEDIATE per check",
    }
    principals = [{"id": f"u-{k}"} for k in range(PRINCIPALS)]
    args = {"x": 1}
    with redis_server(tmp) as (url, note):
        if url is not None:
            from policylang.runtime.stores import RedisStore

            engines["RedisStore"] = Engine.from_string(
                LIMITED, store=RedisStore(url, use_server_time=True)
            )
            what["RedisStore"] = "one Lua script per check, server time (`use_server_time=True`)"
        else:
            what["RedisStore"] = note
        notes.append(f"Redis: {note}")

        def variant(e: Engine) -> Callable[[int], Any]:
            def call(i: int) -> Any:
                d = e.decide("t", args=args, principal=principals[i % PRINCIPALS])
                return d

            return call

        variants = {name: variant(e) for name, e in engines.items()}
        for name, e in engines.items():  # every variant must really allow (the store works)
            d = e.decide("t", args=args, principal={"id": "check"})
            if d.effect.value != "allow" or not d.limits:
                raise SystemExit(
                    f"{name}: expected allow with one limit, got {d.effect} {d.reasons}"
                )
        samples = measure_blocks(variants, {n: calls for n in variants}, blocks)
    base = stats(samples["MemoryStore"])
    rows = [
        "| store | how | median µs | p99 µs | calls | median × | p99 × |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("MemoryStore", "SQLiteStore", "RedisStore"):
        if name not in samples:
            rows.append(f"| {name} | {what[name]} | — | — | 0 | — | — |")
            continue
        med, p99 = stats(samples[name])
        rows.append(
            f"| {name} | {what[name]} | {num(med)} | {num(p99)} | {len(samples[name])} | "
            f"{ratio(med, base[0])} | {ratio(p99, base[1])} |"
        )
    return rows, notes


def part_guard(calls: int, blocks: int) -> list[str]:
    engine = Engine.from_string(HEADER, store=MemoryStore())
    principal = {"id": "u-1"}

    def fn(x: int) -> int:
        return x

    guarded = engine.guard(fn, tool="t", principal=principal)
    if guarded(x=1) != 1:
        raise SystemExit("the guarded call did not run")
    variants: dict[str, Callable[[int], Any]] = {
        "fn(x=1) (bare)": lambda i: fn(x=1),
        "engine.decide('t', ...)": lambda i: engine.decide("t", args={"x": 1}, principal=principal),
        "engine.guard(fn)(x=1)": lambda i: guarded(x=1),
    }
    samples = measure_blocks(variants, {n: calls for n in variants}, blocks)
    bare = stats(samples["fn(x=1) (bare)"])
    decide = stats(samples["engine.decide('t', ...)"])
    rows = [
        "| call | median µs | p99 µs | calls | median − bare µs | median × decide |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in samples.items():
        med, p99 = stats(s)
        rows.append(
            f"| `{name}` | {num(med)} | {num(p99)} | {len(s)} | {num(med - bare[0])} | "
            f"{ratio(med, decide[0])} |"
        )
    return rows


def part_audit(tmp: Path, calls: int, fsync_calls: int, blocks: int) -> tuple[list[str], str]:
    plain = Engine.from_string(HEADER, store=MemoryStore())
    sink = JsonlSink(tmp / "audit.jsonl")
    sink_fsync = JsonlSink(tmp / "audit-fsync.jsonl", fsync=True)
    audited = Engine.from_string(HEADER, store=MemoryStore(), audit=sink)
    synced = Engine.from_string(HEADER, store=MemoryStore(), audit=sink_fsync)
    principal = {"id": "u-1"}
    args = {"x": 1}

    def variant(e: Engine) -> Callable[[int], Any]:
        return lambda i: e.decide("t", args=args, principal=principal)

    # the same on the shipped rules/: an allowed payments.send, each call its own principal
    # (the shipped limits never bind)
    rules = Path(__file__).resolve().parent.parent / "rules"
    ship_plain = Engine.from_path(rules, store=MemoryStore())
    ship_sink = JsonlSink(tmp / "audit-shipped.jsonl")
    ship_audited = Engine.from_path(rules, store=MemoryStore(), audit=ship_sink)
    pay = {"amount": 250, "currency": "USD", "to": "ACCT-100234", "memo": "invoice 4471"}
    ctx = {"now": "2025-06-11T10:00:00-04:00", "confidence": 0.97, "user_request": "pay Acme"}

    def shipped(e: Engine, tag: str) -> Callable[[int], Any]:
        return lambda i: e.decide(
            "payments.send",
            args=pay,
            context=ctx,
            principal={"id": f"{tag}-{i}", "role": "finance", "scopes": ["payments:write"]},
        )

    variants = {
        "no audit": variant(plain),
        "JsonlSink": variant(audited),
        "JsonlSink fsync=True": variant(synced),
        "shipped rules/, no audit": shipped(ship_plain, "a"),
        "shipped rules/, JsonlSink": shipped(ship_audited, "b"),
    }
    counts = {
        "no audit": calls,
        "JsonlSink": calls,
        "JsonlSink fsync=True": fsync_calls,
        "shipped rules/, no audit": calls,
        "shipped rules/, JsonlSink": calls,
    }
    # fsync last and on its own: its disk flushes would stall the other variants' writes
    fsync_name = "JsonlSink fsync=True"
    fsync_fn = variants.pop(fsync_name)
    samples = measure_blocks(variants, counts, blocks, warmup=50)
    samples.update(measure_blocks({fsync_name: fsync_fn}, counts, blocks, warmup=50))
    samples = {
        k: samples[k]
        for k in (
            "no audit",
            "JsonlSink",
            fsync_name,
            "shipped rules/, no audit",
            "shipped rules/, JsonlSink",
        )
    }
    for e in (audited, synced):
        d = e.decide("t", args=args, principal=principal)
        if d.effect.value != "allow":
            raise SystemExit(f"audited decision did not allow: {d.reasons}")
    for e in (ship_plain, ship_audited):
        d = shipped(e, "check")(0)
        if d.effect.value != "allow":
            raise SystemExit(f"shipped payments.send did not allow: {d.reasons}")
    rows = [
        "| policy | audit | p50 µs | p99 µs | calls | p50 × | p99 × |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for name, s in samples.items():
        on_shipped = name.startswith("shipped")
        base = stats(samples["shipped rules/, no audit" if on_shipped else "no audit"])
        med, p99 = stats(s)
        policy, audit = (
            ("shipped rules/ payments.send", name.split(", ", 1)[1])
            if on_shipped
            else ("tiny (`t`)", name)
        )
        rows.append(
            f"| {policy} | {audit} | {num(med)} | {num(p99)} | {len(s)} | {ratio(med, base[0])} | "
            f"{ratio(p99, base[1])} |"
        )
        if audit == "JsonlSink":
            r = p99 / base[1]
            verdicts.append(
                f"{policy}: JsonlSink p99 / no-audit p99 = **{r:.2f}x** "
                f"({'meets' if r <= 2 else 'misses'} the ≤ 2× target)"
            )
    verdict = (
        "; ".join(verdicts) + f". Ratios: variant / no audit on the same policy. Lines written "
        f"(hash-chained, one write per record): {sink.seq:,}, {sink_fsync.seq:,} (fsync), "
        f"{ship_sink.seq:,} (shipped)."
    )
    for s_ in (sink, sink_fsync, ship_sink):
        with contextlib.suppress(Exception):
            s_.close()
    return rows, verdict


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default")
    mode.add_argument("--full", action="store_true", help="ten times the calls")
    p.add_argument("--calls", type=int, help="timed calls per variant (quick 5000, full 50000)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results-stateful.md"))
    a = p.parse_args(argv)
    preset = FULL if a.full else QUICK
    calls = a.calls or preset["calls"]
    fsync_calls = min(calls, preset["fsync_calls"])
    blocks = preset["blocks"]
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    settings = " ".join(sys.argv[1:] if argv is None else argv) or "(defaults: --quick)"
    with tempfile.TemporaryDirectory(prefix="policylang-bench-") as d:
        tmp = Path(d)
        log("(a) rate-limit stores ...")
        stores, notes = part_stores(tmp, calls, blocks)
        log("(b) guard overhead ...")
        guard = part_guard(calls, blocks)
        log("(c) audit overhead ...")
        audit, verdict = part_audit(tmp, calls, fsync_calls, blocks)
    lines = [
        "# policylang with state: stores, guards, audit",
        "",
        f"- run: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, `python benchmarks/stateful.py {settings}`",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"temp dir on {tempfile.gettempdir()}",
        "- policy: `tool t { x: int }`, `allow t when args.x > 0`, default deny; every call allows",
        "",
        "## (a) one rate limit, per store",
        "",
        f"`limit t to 1000000 per 1m by principal.id` (never reached); calls rotate over {PRINCIPALS} "
        "principal ids; every call consumes (allow). Ratios: store / MemoryStore. "
        + "; ".join(notes)
        + ".",
        "",
        *stores,
        "",
        "## (b) a guarded call vs a bare call vs the decision alone",
        "",
        "No limits, no audit, MemoryStore; `fn(x)` returns `x`. The guard binds the call's arguments "
        "to `fn`'s signature, decides, then calls `fn`.",
        "",
        *guard,
        "",
        "## (c) audit overhead",
        "",
        "`engine.decide` with no sink, with `JsonlSink(tmpfile)` (write + flush to the OS per record) and "
        "with `JsonlSink(tmpfile, fsync=True)` (plus `os.fsync` per record; timed last, on its own); on the tiny policy and on "
        "the shipped `rules/` (an allowed `payments.send`, a principal id per call).",
        "",
        *audit,
        "",
        verdict,
        "",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    Path(a.out).write_text(text, encoding="utf-8")
    log(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
