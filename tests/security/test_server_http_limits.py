"""The server's connection limits over real sockets on 127.0.0.1: a trickled head, a half-sent
body, too many or too large headers, a silent connection, the connection cap, DNS rebinding,
and a large argument that must not stall the event loop. Every test is bounded in time."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from policylang import Engine  # noqa: E402
from policylang.server import Metrics, create_app, server_config  # noqa: E402

POLICY = "policy p\ntool t { n: int, items: list<string> }\nallow t when args.n < 5\n"
HEADER_TIMEOUT, BODY_TIMEOUT = 0.5, 0.6


class Live:
    """A real server (our protocol, our limits) on a free loopback port, in a thread."""

    def __init__(self, app: Any, **limits: Any):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        limits = {"header_timeout": HEADER_TIMEOUT, "body_timeout": BODY_TIMEOUT, **limits}
        self.server = uvicorn.Server(
            server_config(app, "127.0.0.1", self.port, "critical", **limits)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Live:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "no server"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


@pytest.fixture
def served() -> Iterator[tuple[Live, Metrics]]:
    metrics = Metrics()
    app = create_app(Engine.from_string(POLICY), metrics=metrics, body_timeout=BODY_TIMEOUT)
    with Live(app) as live:
        yield live, metrics


def request_bytes(
    body: bytes | None = None, host: str = "127.0.0.1", extra: str = "", close: bool = True
) -> bytes:
    body = (
        body
        if body is not None
        else json.dumps({"tool": "t", "args": {"n": 1, "items": []}}).encode()
    )
    head = (
        f"POST /v1/decide HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{extra}{'Connection: close' + chr(13) + chr(10) if close else ''}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def trickle(sock: socket.socket, data: bytes, delay: float = 0.05) -> bool:
    """Send ``data`` a byte at a time; True when the server closed the connection first."""
    try:
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(delay)
    except (BrokenPipeError, ConnectionResetError):
        return True
    return False


def status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def test_a_normal_request_still_works(served: tuple[Live, Metrics]) -> None:
    live, _ = served
    with live.connect() as s:
        s.sendall(request_bytes())
        raw = read_all(s)
    assert status(raw) == 200 and b'"effect":"allow"' in raw


def test_a_trickled_head_is_cut_within_the_header_timeout(served: tuple[Live, Metrics]) -> None:
    live, metrics = served
    data = request_bytes()
    started = time.monotonic()
    with live.connect() as s:
        closed = trickle(s, data[:60])  # one byte every 50 ms: 3 s if nobody stops it
        raw = read_all(s)
    elapsed = time.monotonic() - started
    assert closed or status(raw) == 408
    assert elapsed < HEADER_TIMEOUT + 2.0  # bounded by the header timeout, not by the client
    assert metrics.errors["header_timeout"] == 1


def test_a_silent_connection_is_cut(served: tuple[Live, Metrics]) -> None:
    live, _ = served
    started = time.monotonic()
    with live.connect() as s:
        raw = read_all(s)
    assert status(raw) == 408 and b"header_timeout" in raw
    assert time.monotonic() - started < HEADER_TIMEOUT + 2.0


def test_a_half_sent_body_is_cut_within_the_body_timeout(served: tuple[Live, Metrics]) -> None:
    live, metrics = served
    data = request_bytes()
    started = time.monotonic()
    with live.connect() as s:
        s.sendall(data[:-10])  # the head and most of the body, then nothing
        raw = read_all(s)  # returns when the server closes the connection
    assert status(raw) == 408 and b"body_timeout" in raw
    assert time.monotonic() - started < BODY_TIMEOUT + 2.5
    assert metrics.errors["body_timeout"] >= 1


def test_a_trickled_body_is_cut_too(served: tuple[Live, Metrics]) -> None:
    live, _ = served
    data = request_bytes(json.dumps({"tool": "t", "args": {"n": 1, "items": ["x"] * 40}}).encode())
    head_end = data.index(b"\r\n\r\n") + 4
    started = time.monotonic()
    with live.connect() as s:
        s.sendall(data[:head_end])
        trickle(s, data[head_end:])
        read_all(s)
    assert time.monotonic() - started < BODY_TIMEOUT + 2.5


@pytest.mark.parametrize(
    "extra",
    [
        "".join(f"X-H{i}: v\r\n" for i in range(100)),  # too many headers
        "X-Big: " + "a" * 20_000 + "\r\n",  # one huge header
        "".join(f"X-H{i}: {'b' * 300}\r\n" for i in range(60)),  # many large ones
    ],
)
def test_too_many_or_too_large_headers_are_431(served: tuple[Live, Metrics], extra: str) -> None:
    live, metrics = served
    with live.connect() as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request_bytes(extra=extra))
        raw = read_all(s)
    assert status(raw) == 431
    assert metrics.errors["headers_too_large"] == 1


def test_a_kept_alive_connection_gets_the_same_head_deadline(served: tuple[Live, Metrics]) -> None:
    live, _ = served
    with live.connect() as s:
        s.sendall(request_bytes(close=False))
        first = s.recv(65536)
        assert status(first) == 200
        started = time.monotonic()
        trickle(s, b"POST /v1/decide HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        read_all(s)
    assert time.monotonic() - started < HEADER_TIMEOUT + 2.0


def test_dns_rebinding_host_is_refused_and_loopback_names_answered(
    served: tuple[Live, Metrics],
) -> None:
    live, metrics = served
    for host, expected in [
        ("attacker.example", 403),
        ("attacker.example:8181", 403),
        ("127.0.0.1.nip.io", 403),
        (f"127.0.0.1:{live.port}", 200),
        (f"localhost:{live.port}", 200),
        ("[::1]:1", 200),
        ("LOCALHOST", 200),
    ]:
        with live.connect() as s:
            s.sendall(request_bytes(host=host))
            assert status(read_all(s)) == expected, host
    assert metrics.errors["host_not_allowed"] == 3
    with live.connect() as s:
        s.sendall(request_bytes(extra="Origin: http://evil.example\r\n"))
        raw = read_all(s)
    assert status(raw) == 403 and b"cross_origin" in raw


def test_allowed_host_adds_a_name() -> None:
    app = create_app(Engine.from_string(POLICY), allowed_hosts=["policy.internal"])
    with Live(app) as live:
        for host, expected in [
            ("policy.internal:8181", 200),
            ("other.internal", 403),
            ("127.0.0.1", 200),
        ]:
            with live.connect() as s:
                s.sendall(request_bytes(host=host))
                assert status(read_all(s)) == expected, host


def test_the_connection_cap_answers_503_past_it() -> None:
    app = create_app(Engine.from_string(POLICY))
    with Live(app, max_connections=3, header_timeout=3.0) as live:
        held = [live.connect() for _ in range(3)]
        time.sleep(0.1)
        try:
            with live.connect() as s:
                s.sendall(request_bytes())
                assert status(read_all(s)) == 503
        finally:
            for s in held:
                s.close()


class SlowEngine:
    """An engine whose decide() waits until the test says so: it proves where decide runs."""

    def __init__(self) -> None:
        self.inner = Engine.from_string(POLICY)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.thread: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decide(self, *a: Any, **kw: Any) -> Any:
        self.thread = threading.current_thread().name
        self.entered.set()
        self.release.wait(5)
        return self.inner.decide(*a, **kw)


def test_a_24000_item_argument_does_not_block_the_event_loop() -> None:
    engine = SlowEngine()
    app = create_app(engine)  # type: ignore[arg-type]
    with Live(app, header_timeout=10.0, body_timeout=10.0) as live:
        big = json.dumps({"tool": "t", "args": {"n": 1, "items": ["x" * 10] * 24_000}}).encode()
        answers: list[int] = []

        def send_big() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
            conn.request(
                "POST", "/v1/decide", body=big, headers={"Content-Type": "application/json"}
            )
            answers.append(conn.getresponse().status)

        worker = threading.Thread(target=send_big)
        worker.start()
        assert engine.entered.wait(5), "the large request was never decided"
        # While the large request is being decided, the loop still answers others.
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=3)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        engine.release.set()
        worker.join(10)
        loop_thread = live.thread.name
    assert answers == [200]
    assert engine.thread is not None and engine.thread != loop_thread  # a worker thread decided
