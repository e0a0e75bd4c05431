"""Load test for ``policylang serve``: sustained decisions/s and latency over real HTTP.

Starts the server as a subprocess on a free loopback port with the shipped
``rules/`` folder, then drives ``POST /v1/decide`` from a bounded Python client:
``--threads`` threads, each with one keep-alive ``http.client`` connection,
sending the requests in ``rules/requests/*.json`` round-robin until
``--requests`` calls are done or ``--time-limit`` seconds pass. With
``--batch N`` it sends ``/v1/decide/batch`` with N requests per call instead.

    pip install -e '.[server]'
    python benchmarks/server_load.py                       # 20,000 single decisions
    python benchmarks/server_load.py --batch 100           # 20,000 decisions in batches

Prints decisions/s, HTTP requests/s, and p50/p90/p99/max latency per HTTP call.
Needs only the standard library on the client side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(rules: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "policylang.cli.serve",
        str(rules),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"the server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not become ready in 30 s")


def load_requests(folder: Path) -> list[bytes]:
    out = []
    for f in sorted(folder.glob("*.json")):
        body = json.loads(f.read_text())
        out.append(
            json.dumps(
                {k: body[k] for k in ("tool", "args", "principal", "context") if k in body}
            ).encode()
        )
    if not out:
        raise SystemExit(f"no request files in {folder}")
    return out


def drive(
    port: int, bodies: list[bytes], total: int, threads: int, time_limit: float, batch: int
) -> dict[str, object]:
    lock = threading.Lock()
    state = {"left": total}
    latencies: list[float] = []
    effects: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    stop_at = time.monotonic() + time_limit
    path = "/v1/decide/batch" if batch > 1 else "/v1/decide"

    def take() -> int:
        with lock:
            n = min(batch, state["left"])
            state["left"] -= n
            return n

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        mine: list[float] = []
        my_effects: Counter[str] = Counter()
        my_status: Counter[int] = Counter()
        i = index
        while time.monotonic() < stop_at:
            n = take()
            if n <= 0:
                break
            if batch > 1:
                items = [bodies[(i + k) % len(bodies)] for k in range(n)]
                payload = b'{"requests":[' + b",".join(items) + b"]}"
            else:
                payload = bodies[i % len(bodies)]
            i += n
            t0 = time.perf_counter()
            conn.request("POST", path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            mine.append(time.perf_counter() - t0)
            my_status[resp.status] += 1
            if resp.status == 200:
                parsed = json.loads(data)
                for d in parsed["decisions"] if batch > 1 else [parsed]:
                    my_effects[d["effect"]] += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            effects.update(my_effects)
            statuses.update(my_status)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    decisions = sum(effects.values())
    return {
        "decisions": decisions,
        "http_calls": len(latencies),
        "seconds": round(elapsed, 2),
        "decisions_per_s": round(decisions / elapsed),
        "calls_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(pct(0.50), 3),
        "p90_ms": round(pct(0.90), 3),
        "p99_ms": round(pct(0.99), 3),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else 0.0,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3) if latencies else 0.0,
        "effects": dict(effects),
        "statuses": dict(statuses),
        "finished": decisions >= TOTAL_HINT[0],
    }


TOTAL_HINT = [0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", default=str(ROOT / "rules"))
    p.add_argument("--requests", type=int, default=20_000, help="decisions to make (default 20000)")
    p.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds at most (default 60)")
    p.add_argument("--batch", type=int, default=1, help="requests per HTTP call (default 1)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    TOTAL_HINT[0] = args.requests
    bodies = load_requests(Path(args.rules) / "requests")
    port = free_port()
    proc = start_server(Path(args.rules), port)
    try:
        drive(port, bodies, min(500, args.requests), args.threads, 10, args.batch)  # warm up
        result = drive(port, bodies, args.requests, args.threads, args.time_limit, args.batch)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    result.update(
        threads=args.threads, batch=args.batch, cpus=os.cpu_count(), python=sys.version.split()[0]
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        mode = f"batches of {args.batch}" if args.batch > 1 else "one decision per call"
        print(f"policylang serve, {mode}, {args.threads} client threads, {result['cpus']} CPUs")
        print(
            f"  {result['decisions']:,} decisions in {result['seconds']} s "
            f"({'all done' if result['finished'] else 'stopped by the time limit'})"
        )
        print(
            f"  sustained: {result['decisions_per_s']:,} decisions/s "
            f"({result['calls_per_s']:,} HTTP calls/s)"
        )
        print(
            f"  latency per HTTP call: p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, "
            f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms"
        )
        print(f"  effects: {result['effects']}; HTTP statuses: {result['statuses']}")
    return 0 if set(result["statuses"]) <= {200} else 1  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
