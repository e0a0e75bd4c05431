"""Connection limits uvicorn does not have: how long and how large a request's head may be.

uvicorn times out idle keep-alive connections but not a request that arrives
slowly: a client that sends one header byte a second, or headers and then half
a body, holds its connection (and, with ``limit_concurrency``, a slot) for as
long as it likes, and the httptools parser accepts headers of any size.
:func:`guarded_protocol` wraps uvicorn's HTTP protocol class (httptools or h11,
whichever uvicorn picks) so that, per connection:

* a request's head (request line and headers) must arrive within
  ``header_timeout`` seconds of its first byte (of the connection, for the
  first request), else the server answers 408 ``header_timeout`` and closes;
* the head may be at most ``max_header_bytes`` long and hold at most
  ``max_headers`` header lines, else 431 ``headers_too_large`` and close;
* the body must arrive within ``body_timeout`` seconds of the head; the app
  answers 408 ``body_timeout`` at that time (see
  :func:`policylang.server.app.read_body`) and this layer closes the connection
  one second later whatever the app did;
* a response sent before its request's body was read closes the connection, so
  the unread rest cannot be taken for the next request.

Each refusal is counted through ``on_reject`` (the server's metrics,
``policylang_http_rejected_total{code=...}``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

HEADER_TIMEOUT = 5.0
MAX_HEADER_BYTES = 16 << 10
BODY_GRACE = 1.0  # the app answers at body_timeout; the connection is closed this much later


def _refusal(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _head_end(buffer: bytes) -> int:
    """Where the blank line that ends a request head ends in ``buffer``, or -1."""
    ends = [i + n for i, n in ((buffer.find(b"\r\n\r\n"), 4), (buffer.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else -1


def guarded_protocol(
    base: type[asyncio.Protocol],
    *,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = 10.0,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_headers: int = 64,
    on_reject: Callable[[str], None] | None = None,
) -> type[asyncio.Protocol]:
    """``base`` (a uvicorn HTTP protocol class) with the limits in the module docstring."""
    for label, seconds in (("header_timeout", header_timeout), ("body_timeout", body_timeout)):
        if not isinstance(seconds, int | float) or not 0 < seconds < float("inf"):
            raise ValueError(f"{label} must be a positive number of seconds, got {seconds!r}")
    for label, count in (("max_header_bytes", max_header_bytes), ("max_headers", max_headers)):
        if type(count) is not int or count < 1:
            raise ValueError(f"{label} must be a positive integer, got {count!r}")
    too_large = _refusal(
        431,
        "Request Header Fields Too Large",
        "headers_too_large",
        f"a request head may have at most {max_headers} headers and {max_header_bytes} bytes",
    )
    too_slow = _refusal(
        408,
        "Request Timeout",
        "header_timeout",
        f"the request head did not arrive within {header_timeout:g} s",
    )

    class Guarded(base):  # type: ignore[valid-type, misc]
        """One connection with deadlines on its request heads and bodies."""

        _pl_timer: asyncio.TimerHandle | None
        _pl_head: bool  # reading a request head (between requests, or during one)
        _pl_seen: int
        _pl_lines: int
        _pl_tail: bytes
        _pl_cycle: Any

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._pl_cycle = None
            self._pl_timer = None
            self._pl_start_head()
            self._pl_arm(header_timeout, "header_timeout")  # a silent connection is cut too

        def _pl_start_head(self) -> None:
            self._pl_head, self._pl_seen, self._pl_lines, self._pl_tail = True, 0, 0, b""

        def _pl_arm(self, seconds: float, code: str) -> None:
            self._pl_cancel()
            self._pl_timer = self.loop.call_later(seconds, self._pl_expire, code)

        def _pl_cancel(self) -> None:
            if self._pl_timer is not None:
                self._pl_timer.cancel()
                self._pl_timer = None

        def _pl_expire(self, code: str) -> None:
            self._pl_timer = None
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            if code == "header_timeout":
                transport.write(too_slow)
            elif self.cycle is None or not self.cycle.more_body:
                return  # the body did arrive
            if on_reject is not None:
                on_reject(code)
            transport.close()

        def _pl_reject(self, code: str) -> None:
            self._pl_cancel()
            if on_reject is not None:
                on_reject(code)
            self.transport.write(too_large)
            self.transport.close()

        def _pl_count(self, data: bytes) -> bool:
            """Count a head's bytes and lines; False when it is over a limit (then refused)."""
            if self._pl_timer is None:  # the first byte of a request on a kept-alive connection
                self._pl_arm(header_timeout, "header_timeout")
            window = self._pl_tail + data
            end = _head_end(window)
            part = window[len(self._pl_tail) :] if end < 0 else window[len(self._pl_tail) : end]
            self._pl_seen += len(part)
            self._pl_lines += part.count(b"\n")
            if self._pl_seen > max_header_bytes or self._pl_lines > max_headers + 2:
                self._pl_reject("headers_too_large")
                return False
            self._pl_tail = window[-3:]
            if end >= 0:
                self._pl_head = False
            return True

        def data_received(self, data: bytes) -> None:
            if self._pl_head and not self._pl_count(data):
                return
            super().data_received(data)
            self._pl_after_parse()

        def _pl_after_parse(self) -> None:
            cycle = self.cycle
            if cycle is not None and cycle is not self._pl_cycle:  # a new request's head is in
                self._pl_cycle = cycle
                self._pl_head = False
                if cycle.more_body:
                    self._pl_arm(body_timeout + BODY_GRACE, "body_timeout")
                else:
                    self._pl_cancel()
            elif cycle is not None and not cycle.more_body and not self._pl_head:
                self._pl_cancel()

        def on_response_complete(self) -> None:
            cycle = self.cycle
            unread = cycle is not None and cycle.more_body
            super().on_response_complete()
            if unread and not self.transport.is_closing():
                self.transport.close()  # the rest of that body must not become a request
                return
            if self.cycle is cycle:  # waiting for the next request (its first byte arms the timer)
                self._pl_cancel()
                self._pl_start_head()
            else:  # a pipelined request was already parsed
                self._pl_after_parse()

        def connection_lost(self, exc: Exception | None) -> None:
            self._pl_cancel()
            super().connection_lost(exc)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


__all__ = ["guarded_protocol", "HEADER_TIMEOUT", "MAX_HEADER_BYTES"]
