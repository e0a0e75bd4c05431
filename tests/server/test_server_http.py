"""The server over real HTTP on loopback: uvicorn in a thread, keep-alive, hot reload, schemathesis."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
from policylang import Engine  # noqa: E402
from policylang.server import Metrics, PolicyWatcher, create_app  # noqa: E402

POLICY = """policy live version "1"
tool payments.send { amount: number, to: string }
allow payments.send when args.amount <= 100
"""


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    raw = r.read().decode()
    return r.status, json.loads(raw) if r.getheader("content-type", "").startswith(
        "application/json"
    ) else raw


def test_decides_over_real_http_with_keep_alive_and_token(live_server) -> None:
    engine = Engine.from_string(POLICY)
    with live_server(create_app(engine, token="t0k")) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        auth = {"Authorization": "Bearer t0k"}
        assert request(conn, "GET", "/healthz")[0] == 200
        assert request(conn, "GET", "/readyz")[0] == 401
        for amount, effect in [(5, "allow"), (500, "deny"), (100, "allow")]:  # one connection
            status, d = request(
                conn,
                "POST",
                "/v1/decide",
                {"tool": "payments.send", "args": {"amount": amount, "to": "b"}},
                auth,
            )
            assert status == 200 and d["effect"] == effect
        status, body = request(
            conn,
            "POST",
            "/v1/decide/batch",
            {"requests": [{"tool": "payments.send", "args": {"amount": 1, "to": "b"}}] * 5},
            auth,
        )
        assert status == 200 and len(body["decisions"]) == 5
        status, text = request(conn, "GET", "/metrics", headers=auth)
        assert 'policylang_decisions_total{tool="payments.send",effect="allow"} 7' in text
        conn.close()


def test_watch_reloads_a_running_server(live_server, tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "main.policy").write_text(POLICY)
    engine = Engine.from_path(folder)
    metrics = Metrics()
    watcher = PolicyWatcher(engine, folder, metrics, interval=0.05)
    with live_server(create_app(engine, metrics=metrics, watcher=watcher)) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        call = {"tool": "payments.send", "args": {"amount": 500, "to": "b"}}
        assert request(conn, "POST", "/v1/decide", call)[1]["effect"] == "deny"
        (folder / "main.policy").write_text(POLICY.replace("<= 100", "<= 1000"))
        os.utime(folder / "main.policy", ns=(1, 10**18))
        deadline = time.monotonic() + 5
        while request(conn, "POST", "/v1/decide", call)[1]["effect"] != "allow":
            assert time.monotonic() < deadline, "the policy was not reloaded"
            time.sleep(0.05)
        (folder / "main.policy").write_text('policy live version "2"\nallow payments.send when')
        os.utime(folder / "main.policy", ns=(1, 2 * 10**18))
        while metrics.reload_errors == 0:
            assert time.monotonic() < deadline + 5, "the broken reload was not noticed"
            time.sleep(0.05)
        assert request(conn, "POST", "/v1/decide", call)[1]["effect"] == "allow"  # old policy
        text = request(conn, "GET", "/metrics")[1]
        assert "policylang_reloads_total 1" in text and "policylang_reload_errors_total 1" in text
        conn.close()


def test_schemathesis_finds_no_server_errors(live_server, tmp_path: Path) -> None:
    """Fuzz every operation in /openapi.json (bounded): no 5xx, responses match the document."""
    pytest.importorskip("schemathesis")
    rules = Path(__file__).resolve().parents[2] / "rules"
    engine = Engine.from_path(rules)
    with live_server(create_app(engine, token="fuzz")) as srv:
        cli = shutil.which("schemathesis")
        cmd = (
            [cli]
            if cli
            else [
                sys.executable,
                "-c",
                "import sys; from schemathesis.cli import schemathesis as s; s()",
            ]
        )
        proc = subprocess.run(
            [
                *cmd,
                "run",
                f"{srv.url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--generation-deterministic",
                "-H",
                "Authorization: Bearer fuzz",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )  # its cache goes there
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "No issues found" in proc.stdout
