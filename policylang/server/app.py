"""The HTTP decision server: a Starlette app around one :class:`~policylang.Engine`.

Takes an engine (and optionally a bearer token, metrics, a policy watcher) and
gives an ASGI app with ``POST /v1/decide``, ``POST /v1/decide/batch``,
``GET /v1/policies``, ``/healthz``, ``/readyz``, ``/metrics`` and
``/openapi.json``. Every failure is a JSON error ``{"error": {"code",
"message"}}`` with a fitting status (400 bad JSON, 401 no token, 404, 405,
413 too large, 415 not JSON, 422 wrong shape); a failure while deciding is a
deny decision, so the only 500 left is a bug in the server itself.

Deciding is CPU-bound and takes microseconds, so it runs on the event loop
thread; a batch is bounded (1000 requests by default) to keep the loop
responsive.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
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


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request, limit: int) -> Any:
    if not _content_type_ok(request.headers.get("content-type")):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON with 'Content-Type: application/json'",
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
        except ValueError:
            raise ApiError(
                400, "bad_request", "the Content-Length header is not a number"
            ) from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "bad_json", "the body is empty; send a JSON object")
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise ApiError(400, "bad_json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "bad_json",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}"[:300]) from None


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


# ---------------------------------------------------------------- the app


def _internal_decision(tool: str, exc: BaseException) -> Decision:
    reason = f"internal error in the decision server: {type(exc).__name__}"
    return Decision(
        effect=Effect.DENY,
        tool=tool,
        code="internal_error",
        reasons=[reason],
        message=f"{tool} denied: {reason}",
    )


def create_app(
    engine: Any,
    *,
    token: str | None = None,
    metrics: Metrics | None = None,
    watcher: PolicyWatcher | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_batch: int = MAX_BATCH,
) -> Starlette:
    """The decision server for ``engine``. With ``token``, all but /healthz need it."""
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
                response = await fn(request)
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

    async def decide(request: Request) -> Response:
        tool, args, principal, context = parse_request(await read_json(request, max_body_bytes))
        d = engine.decide(tool, args=args, principal=principal, context=context)
        metrics.observe_decisions(engine, (d,))
        return Response(d.model_dump_json(), media_type="application/json")

    async def decide_batch(request: Request) -> Response:
        body = await read_json(request, max_body_bytes)
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
        decisions = [engine.decide(t, args=a, principal=p, context=c) for t, a, p, c in parsed]
        metrics.observe_decisions(engine, decisions)
        payload = (
            b'{"decisions":[' + b",".join(d.model_dump_json().encode() for d in decisions) + b"]}"
        )
        return Response(payload, media_type="application/json")

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
    )
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.watcher = watcher
    return app
