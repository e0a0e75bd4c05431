"""The HTTP decision server: a Starlette app around one :class:`~policylang.Engine`.

Takes an engine (and optionally a bearer token, metrics, a policy watcher) and
gives an ASGI app with ``POST /v1/decide``, ``POST /v1/decide/batch``,
``GET /v1/policies``, ``/healthz``, ``/readyz``, ``/metrics`` and
``/openapi.json``. Every failure is a JSON error ``{"error": {"code",
"message"}}`` with a fitting status (400 bad JSON, 401 no token, 404, 405,
413 too large, 415 not JSON, 422 wrong shape); a failure while deciding is a
deny decision, so the only 500 left is a bug in the server itself.

Deciding is CPU-bound and takes microseconds, so a small request is parsed
and decided on the event loop thread; a body larger than ``INLINE_BODY_BYTES``
(16 KiB) is parsed and decided in a worker thread, so a 24,000-item argument
never stalls the loop that answers every other connection. A batch is bounded
(1000 requests by default).

One parser view of a request (so that a proxy in front cannot see a different
request): the body must be UTF-8 without a byte order mark (no UTF-16/32
detection), every object's keys unique, no ``NaN``/``Infinity`` or numbers that
overflow to them, no escaped lone surrogates, nesting at most ``MAX_DEPTH``
deep; anything else is a 400 that says which rule it broke. A request whose
``Host`` is not this server's (DNS rebinding) or that comes from a browser page
of another origin is refused with 403 before anything else runs (see
:class:`HostGuard`). Every request has a deadline (``request_timeout``) and its
body must arrive within ``body_timeout``; the connection-level limits (header
size, count and read time, connection cap) are in :mod:`policylang.server.protocol`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from policylang.runtime.decision import Decision, Effect
from policylang.runtime.watch import Outcome
from policylang.runtime.watch import PolicyWatcher as _Watcher
from policylang.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from policylang.server.metrics import Metrics
from policylang.server.openapi import openapi_document

log = logging.getLogger("policylang.server")

MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 1000
MAX_DEPTH = 64  # nesting of arrays and objects in a body
MAX_HEADERS = 64  # header lines in one request
INLINE_BODY_BYTES = 16 << 10  # larger bodies are parsed and decided off the event loop
REQUEST_TIMEOUT = 15.0  # seconds from the end of the headers to the response
BODY_TIMEOUT = 10.0  # seconds for the whole body to arrive
_REQUEST_KEYS = frozenset({"tool", "args", "principal", "context"})


class ApiError(Exception):
    """A request we refuse, with its HTTP status and a stable error code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return Response(body, status, headers=headers, media_type="application/json")


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(value, separators=(",", ":")).encode(), status, media_type="application/json"
    )


# ---------------------------------------------------------------- binding and tokens


def is_loopback(host: str) -> bool:
    """Is ``host`` a loopback address (127.0.0.0/8, ::1) or ``localhost``?"""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a bearer token."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"refusing to listen on {host}, which is not a loopback address, without "
            "a bearer token: pass --token-env VAR or --token-file FILE (or bind "
            "127.0.0.1)"
        )


def read_token(env: str | None = None, file: str | Path | None = None) -> str | None:
    """The bearer token from an environment variable or a file; errors say which is wrong."""
    if env and file:
        raise ValueError("give either --token-env or --token-file, not both")
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ValueError(f"the environment variable {env} is not set or empty")
        return value
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {file}: {exc}") from None
        if not value:
            raise ValueError(f"the token file {file} is empty")
        return value
    return None


# ---------------------------------------------------------------- hot reload


class PolicyWatcher(_Watcher):
    """The one policy watcher (:mod:`policylang.runtime.watch`), as the server uses it.

    Built stopped (the app's lifespan starts and stops it), reports each reload to
    ``metrics``, and ``check()`` answers True (reloaded), False (failed: the old
    policy keeps serving) or None (nothing to do yet).
    """

    def __init__(
        self,
        engine: Any,
        path: str | Path,
        metrics: Metrics | None = None,
        interval: float = 1.0,
        **options: Any,
    ):
        super().__init__(engine, path, interval, metrics=metrics, start=False, **options)

    def check(self) -> bool | None:  # type: ignore[override]
        outcome = self.poll()
        return (
            None
            if outcome in (Outcome.UNCHANGED, Outcome.UNSTABLE)
            else outcome is Outcome.RELOADED
        )


# ---------------------------------------------------------------- request parsing


def _content_type_ok(value: str | None) -> bool:
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _BadJson(ValueError):
    """A body that is JSON to some parsers but not to this one (the message says why)."""


def _no_constants(name: str) -> Any:
    raise _BadJson(f"{name} is not a JSON number (NaN and Infinity are not allowed)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadJson(f"the number {text[:40]} is too large for a double")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _BadJson(
                    f"the key {_shown_key(key)} appears twice in one object (every "
                    "key must be unique)"
                )
            seen.add(key)
    return obj


def _shown_key(key: str) -> str:
    return json.dumps(key)[:80]


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _check_tree(value: Any, max_depth: int, strings: bool) -> None:
    """Nesting at most ``max_depth``; with ``strings``, no lone surrogate in any key or string.

    Iterative, so a deep body cannot exhaust the stack here either.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise _BadJson(f"it nests arrays and objects more than {max_depth} deep")
        if type(node) is dict:
            if strings:
                for key in node:
                    _utf8(key)
            stack.extend((v, depth + 1) for v in node.values() if type(v) in _NESTED)
        elif type(node) is list:
            stack.extend((v, depth + 1) for v in node if type(v) in _NESTED)
        elif strings and type(node) is str:
            _utf8(node)


_NESTED = (dict, list, str)


def _utf8(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _BadJson(
                "a string holds an escaped lone surrogate (\\ud800-\\udfff without "
                "its pair), which is not Unicode text"
            ) from None


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request body the one way every conforming JSON parser does, or raise a 400.

    ``json.loads`` alone would guess UTF-16/32 from the first bytes, skip a BOM,
    keep the last of two equal keys, accept ``NaN`` and let ``1e999`` become
    infinity; a proxy that reads the same bytes differently would then pass a
    request the engine sees otherwise. Here each of those is an error.
    """
    if not raw.strip():
        raise ApiError(400, "bad_json", "the body is empty; send a JSON object")
    if raw.startswith(codecs.BOM_UTF8):
        raise ApiError(
            400, "bad_json", "the body starts with a byte order mark; send UTF-8 without a BOM"
        )
    if b"\x00" in raw:
        raise ApiError(
            400,
            "bad_json",
            "the body is not UTF-8 text: it has NUL bytes (UTF-16 or UTF-32?); send UTF-8",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "bad_json",
            f"the body is not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}); send UTF-8",
        ) from None
    try:
        value = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constants, parse_float=_finite
        )
        _check_tree(value, max_depth, _SURROGATE_ESCAPE.search(raw) is not None)
    except _BadJson as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "bad_json",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except RecursionError:
        raise ApiError(
            400,
            "bad_json",
            f"the body is not valid JSON: it nests arrays and objects more than {max_depth} deep",
        ) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}"[:300]) from None
    return value


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The raw body: at most ``limit`` bytes, all of it within ``timeout`` seconds."""
    if not _content_type_ok(request.headers.get("content-type")):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON with 'Content-Type: application/json'",
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_large = int(declared) > limit
        except ValueError:
            raise ApiError(
                400, "bad_request", "the Content-Length header is not a number"
            ) from None
        if too_large:
            raise ApiError(
                413, "too_large", f"the body is larger than {limit} bytes", {"Connection": "close"}
            )
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(
                        413,
                        "too_large",
                        f"the body is larger than {limit} bytes",
                        {"Connection": "close"},
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            "body_timeout",
            f"the body did not arrive within {timeout:g} s",
            {"Connection": "close"},
        ) from None
    except ClientDisconnect:
        raise ApiError(
            400,
            "client_disconnected",
            "the client closed the connection before the body arrived",
            {"Connection": "close"},
        ) from None
    return b"".join(chunks)


def _kind(v: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(v), type(v).__name__)


def parse_request(body: Any, where: str = "") -> tuple[str, Any, Any, Any]:
    """``{tool, args, principal, context}`` → its parts, or a 422 naming the bad field."""
    at = f"{where}." if where else ""
    if not isinstance(body, dict):
        raise ApiError(
            422,
            "invalid_body",
            f"{where or 'the body'} must be a JSON object "
            f"{{tool, args, principal, context}}, got {_kind(body)}",
        )
    extra = [k for k in body if k not in _REQUEST_KEYS]
    if extra:
        raise ApiError(
            422,
            "invalid_body",
            f"unexpected field '{at}{extra[0]}' (a request has tool, args, principal and context)",
        )
    tool = body.get("tool")
    if not isinstance(tool, str) or not tool:
        raise ApiError(
            422,
            "invalid_body",
            f"'{at}tool' must be a non-empty string"
            + ("" if "tool" in body else " (it is missing)"),
        )
    parts = []
    for key in ("args", "principal", "context"):
        v = body.get(key)
        if v is not None and not isinstance(v, dict):
            raise ApiError(
                422, "invalid_body", f"'{at}{key}' must be an object or null, got {_kind(v)}"
            )
        parts.append(v)
    return tool, parts[0], parts[1], parts[2]


# ---------------------------------------------------------------- who may ask


def _host_name(value: str) -> str:
    """The host part of a ``Host`` header or an origin's authority, lower case, no port."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, sep, port = value.rpartition(":")
    return name.rstrip(".") if sep and port.isdigit() else value.rstrip(".")


class HostGuard:
    """ASGI middleware: refuse requests that a browser was tricked into sending.

    * **DNS rebinding.** A page on ``attacker.example`` whose name later resolves
      to 127.0.0.1 can reach a loopback sidecar, but its requests still carry
      ``Host: attacker.example``. A request that arrived on a loopback address
      must name a loopback host (``127.0.0.1``, any ``127.x``, ``localhost``,
      ``[::1]``, any port) or one of ``allowed_hosts``; with ``allowed_hosts``
      set, every request must name one of them (or a loopback host on a
      loopback socket). Otherwise 403 ``host_not_allowed``; no Host (HTTP/1.0)
      or two of them is a 400.
    * **Cross-origin pages.** A request with an ``Origin`` other than its own
      (``http://`` + its ``Host``) or ``null``, or with ``Sec-Fetch-Site``
      ``cross-site``/``same-site``, is refused with 403 ``cross_origin``: no
      page of another origin may ask for decisions, and no CORS headers are
      ever sent.
    * More than ``max_headers`` header lines: 431 ``too_many_headers``.
    """

    def __init__(
        self,
        app: Any,
        allowed_hosts: Iterable[str] | None = None,
        max_headers: int = MAX_HEADERS,
        on_reject: Callable[[str], None] | None = None,
    ):
        self.app = app
        self.allowed = self.host_set(allowed_hosts)
        self.max_headers = max_headers
        self.on_reject = on_reject

    @staticmethod
    def host_set(allowed_hosts: Iterable[str] | None) -> frozenset[str] | None:
        """The host names to answer for, checked: ValueError for a bare string or an empty name."""
        if allowed_hosts is None:
            return None
        if isinstance(allowed_hosts, str | bytes):
            raise ValueError("allowed_hosts must be a list of host names, not one string")
        names = frozenset(_host_name(str(h)) for h in allowed_hosts)
        if not all(names):
            raise ValueError("an allowed host must be a host name or address, not empty")
        return names

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            problem = self.problem(scope)
            if problem is not None:
                status, code, message = problem
                if self.on_reject is not None:
                    self.on_reject(code)
                await error_response(status, code, message, {"Connection": "close"})(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)

    def problem(self, scope: Any) -> tuple[int, str, str] | None:
        headers = scope.get("headers") or ()
        if len(headers) > self.max_headers:
            return 431, "too_many_headers", f"a request may have at most {self.max_headers} headers"
        hosts = [v for k, v in headers if k == b"host"]
        origin = fetch_site = None
        for k, v in headers:
            if k == b"origin":
                origin = v.decode("latin-1")
            elif k == b"sec-fetch-site":
                fetch_site = v.decode("latin-1").strip().lower()
        server = scope.get("server")
        local = bool(server) and is_loopback(str(server[0]))
        if len(hosts) > 1:
            return 400, "bad_request", "the request has more than one Host header"
        host = hosts[0].decode("latin-1") if hosts else None
        if local or self.allowed is not None:
            if host is None:
                return 400, "bad_request", "a Host header is required"
            name = _host_name(host)
            if not (
                (local and is_loopback(name)) or (self.allowed is not None and name in self.allowed)
            ):
                return (
                    403,
                    "host_not_allowed",
                    (
                        f"this server does not answer for the host {host[:100]!r}; it answers "
                        + ("127.0.0.1, localhost and [::1]" if local else "its allowed hosts")
                        + (" (add names with --allowed-host)" if local else "")
                    ),
                )
        if origin is not None:
            same = host is not None and origin.strip().lower() in (
                f"http://{host.strip().lower()}",
                f"https://{host.strip().lower()}",
            )
            if not same:
                return (
                    403,
                    "cross_origin",
                    (
                        f"requests from the page {origin[:100]!r} are "
                        "refused: the decision server takes no cross-origin "
                        "requests"
                    ),
                )
        if fetch_site in ("cross-site", "same-site"):
            return (
                403,
                "cross_origin",
                (
                    "requests from another site's page are refused: the "
                    "decision server takes no cross-origin requests"
                ),
            )
        return None


# ---------------------------------------------------------------- the app


def _internal_decision(tool: str, exc: BaseException, reason: str | None = None) -> Decision:
    reason = reason or f"internal error in the decision server: {type(exc).__name__}"
    return Decision(
        effect=Effect.DENY,
        tool=tool,
        code="internal_error",
        reasons=[reason],
        message=f"{tool} denied: {reason}",
    )


def dump_decision(d: Decision) -> tuple[Decision, bytes]:
    """The decision as JSON, or, when it cannot be written (a lone surrogate in a message), a
    deny ``internal_error`` with the same decision id that says so: what is counted is what
    the caller reads."""
    try:
        return d, d.model_dump_json().encode()
    except Exception as exc:  # noqa: BLE001 - one unwritable decision is that item's error
        tool = d.tool.encode("utf-8", "backslashreplace").decode("utf-8")
        safe = _internal_decision(
            tool,
            exc,
            f"the decision ({d.effect.value} {d.code}) could "
            f"not be written as JSON ({type(exc).__name__}); it is "
            "reported as a deny",
        )
        safe.decision_id = d.decision_id.encode("utf-8", "backslashreplace").decode("utf-8")
        safe.policy, safe.policy_hash = d.policy, d.policy_hash
        return safe, safe.model_dump_json().encode()


def create_app(
    engine: Any,
    *,
    token: str | None = None,
    metrics: Metrics | None = None,
    watcher: PolicyWatcher | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_batch: int = MAX_BATCH,
    allowed_hosts: Iterable[str] | None = None,
    max_headers: int = MAX_HEADERS,
    request_timeout: float = REQUEST_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
) -> Starlette:
    """The decision server for ``engine``. With ``token``, all but /healthz need it.

    ``allowed_hosts``: host names this server answers for besides the loopback
    names on a loopback socket (see :class:`HostGuard`). ``request_timeout``:
    seconds from a request's headers to its response (else 503
    ``deadline_exceeded``); ``body_timeout``: seconds for its body to arrive
    (else 408 ``body_timeout``). Bad limits raise ``ValueError`` here, not at the
    first request.
    """
    for label, value in (
        ("max_body_bytes", max_body_bytes),
        ("max_batch", max_batch),
        ("max_headers", max_headers),
    ):
        if type(value) is not int or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    for label, seconds in (("request_timeout", request_timeout), ("body_timeout", body_timeout)):
        if not isinstance(seconds, int | float) or not 0 < seconds < math.inf:
            raise ValueError(f"{label} must be a positive number of seconds, got {seconds!r}")
    allowed = HostGuard.host_set(allowed_hosts)  # checked now, not at the first request
    metrics = metrics if metrics is not None else Metrics()
    expected = token.encode() if token else None
    openapi = json.dumps(
        openapi_document(max_batch=max_batch, max_body_bytes=max_body_bytes, auth=bool(token))
    ).encode()

    def authorized(request: Request) -> None:
        if expected is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise ApiError(
                401,
                "unauthorized",
                "a valid 'Authorization: Bearer <token>' header is required",
                {"WWW-Authenticate": 'Bearer realm="policylang"'},
            )

    Handler = Callable[[Request], Awaitable[Response]]

    def endpoint(
        route: str,
        fn: Handler,
        *,
        public: bool = False,
        on_crash: Callable[[Request, BaseException], Response] | None = None,
    ) -> Handler:
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if not public:
                    authorized(request)
                try:
                    async with asyncio.timeout(request_timeout):
                        response = await fn(request)
                except TimeoutError:
                    raise ApiError(
                        503,
                        "deadline_exceeded",
                        f"the request was not answered within {request_timeout:g} s; try again",
                        {"Connection": "close"},
                    ) from None
            except ApiError as exc:
                metrics.observe_error(exc.code)
                response = error_response(exc.status, exc.code, exc.message, exc.headers)
            except Exception as exc:  # noqa: BLE001 - never a bare 500 with a traceback
                log.exception("internal error on %s", route)
                metrics.observe_error("internal_error")
                response = (
                    on_crash(request, exc)
                    if on_crash
                    else error_response(
                        500, "internal_error", f"internal error: {type(exc).__name__}"
                    )
                )
            metrics.observe_http(
                request.method, route, response.status_code, time.perf_counter() - started
            )
            return response

        return handle

    def crash_deny(request: Request, exc: BaseException) -> Response:
        return Response(
            _internal_decision("(unknown)", exc).model_dump_json(),
            200,
            media_type="application/json",
        )

    async def off_the_loop(request: Request, work: Callable[[bytes], Response]) -> Response:
        """``work(body)``: on the loop for a small body, in a worker thread for a large one."""
        raw = await read_body(request, max_body_bytes, body_timeout)
        if len(raw) > INLINE_BODY_BYTES:
            return await run_in_threadpool(work, raw)
        return work(raw)

    def decide_one(raw: bytes) -> Response:
        tool, args, principal, context = parse_request(parse_json(raw))
        d, body = dump_decision(
            engine.decide(tool, args=args, principal=principal, context=context)
        )
        metrics.observe_decisions(engine, (d,))
        return Response(body, media_type="application/json")

    def decide_many(raw: bytes) -> Response:
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ApiError(
                422,
                "invalid_body",
                f'the body must be a JSON object {{"requests": [...]}}, got {_kind(body)}',
            )
        extra = [k for k in body if k != "requests"]
        if extra:
            raise ApiError(
                422, "invalid_body", f"unexpected field '{extra[0]}' (a batch has 'requests' only)"
            )
        items = body.get("requests")
        if not isinstance(items, list):
            raise ApiError(
                422,
                "invalid_body",
                "'requests' must be an array of "
                "{tool, args, principal, context}"
                + ("" if "requests" in body else " (it is missing)"),
            )
        if len(items) > max_batch:
            raise ApiError(
                422,
                "batch_too_large",
                f"a batch holds at most {max_batch} requests, got {len(items)}; split it",
            )
        parsed = [parse_request(item, f"requests[{i}]") for i, item in enumerate(items)]
        written = [
            dump_decision(engine.decide(t, args=a, principal=p, context=c)) for t, a, p, c in parsed
        ]  # each item answers for itself
        metrics.observe_decisions(engine, [d for d, _ in written])
        payload = b'{"decisions":[' + b",".join(j for _, j in written) + b"]}"
        return Response(payload, media_type="application/json")

    async def decide(request: Request) -> Response:
        return await off_the_loop(request, decide_one)

    async def decide_batch(request: Request) -> Response:
        return await off_the_loop(request, decide_many)

    async def policies(request: Request) -> Response:
        if engine.compiled is None:
            return _json({"policies": []})
        return _json(
            {
                "policies": [
                    {
                        "name": engine.policy_name,
                        "version": engine.policy_version,
                        "hash": engine.policy_hash,
                        "tools": sorted(engine.tools),
                    }
                ]
            }
        )

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if engine.compiled is None:
            return _json({"status": "no_policy", "policy": None}, 503)
        return _json({"status": "ready", "policy": engine.policy_name})

    async def metrics_view(request: Request) -> Response:
        return Response(metrics.render(engine), media_type=METRICS_CONTENT_TYPE)

    async def openapi_view(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        metrics.observe_error(code)
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()

    routes = [
        Route("/v1/decide", endpoint("/v1/decide", decide, on_crash=crash_deny), methods=["POST"]),
        Route("/v1/decide/batch", endpoint("/v1/decide/batch", decide_batch), methods=["POST"]),
        Route("/v1/policies", endpoint("/v1/policies", policies), methods=["GET"]),
        Route("/healthz", endpoint("/healthz", healthz, public=True), methods=["GET"]),
        Route("/readyz", endpoint("/readyz", readyz), methods=["GET"]),
        Route("/metrics", endpoint("/metrics", metrics_view), methods=["GET"]),
        Route("/openapi.json", endpoint("/openapi.json", openapi_view), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        middleware=[
            Middleware(
                HostGuard,
                allowed_hosts=allowed,
                max_headers=max_headers,
                on_reject=metrics.observe_error,
            )
        ],
    )
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.watcher = watcher
    return app
