"""A real redis-server on a free loopback port, for the tests that need one.

Shared by the store, session and reliability tests through the ``redis_server``
fixture in ``tests/conftest.py``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, port: int):
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(16)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A started server, killed afterwards; skips the test with the reason when none can run."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH (CI installs it: apt-get install redis-server)")
    pytest.importorskip(
        "redis", reason="the redis client is not installed (pip install 'redis>=5')"
    )
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.signal(signal.SIGCONT)
        server.kill()
