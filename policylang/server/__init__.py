"""The HTTP decision server (``policylang serve``); needs the ``server`` extra.

``create_app(engine, token=...)`` builds the Starlette app; ``run(app, host, port)``
serves it with uvicorn, through ``server_config``, which sets every connection
limit (see :mod:`policylang.server.protocol`). See :mod:`policylang.server.app`
for the endpoints, the strict body parser and the Host/Origin guard.
"""

from __future__ import annotations

from typing import Any

try:
    from policylang.server.app import (
        BODY_TIMEOUT,
        MAX_BATCH,
        MAX_BODY_BYTES,
        MAX_DEPTH,
        MAX_HEADERS,
        REQUEST_TIMEOUT,
        HostGuard,
        PolicyWatcher,
        check_bind,
        create_app,
        is_loopback,
        parse_json,
        read_token,
    )
    from policylang.server.metrics import Metrics
    from policylang.server.protocol import HEADER_TIMEOUT, MAX_HEADER_BYTES, guarded_protocol
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name and exc.name.split(".")[0] == "starlette":
        raise ModuleNotFoundError(
            "the policylang server needs Starlette and uvicorn: pip install 'policylang[server]'",
            name=exc.name,
        ) from None
    raise


MAX_CONNECTIONS = 256  # open connections at once (uvicorn limit_concurrency)
KEEP_ALIVE = 5.0  # seconds an idle keep-alive connection stays open


def server_config(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8181,
    log_level: str = "info",
    *,
    max_connections: int = MAX_CONNECTIONS,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    keep_alive: float = KEEP_ALIVE,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_headers: int = MAX_HEADERS,
) -> Any:
    """The uvicorn configuration ``run`` serves with: every connection limit set.

    ``max_connections``: open connections (and requests in progress) at once;
    past it a request is answered 503 (uvicorn's ``limit_concurrency``).
    ``keep_alive``: seconds an idle connection stays open between requests.
    The head and body limits are :func:`policylang.server.protocol.guarded_protocol`'s;
    refusals are counted in the app's metrics when it has them (``create_app``'s do).
    """
    try:
        import uvicorn
        from uvicorn.protocols.http.auto import AutoHTTPProtocol
    except ModuleNotFoundError:  # pragma: no cover
        raise ModuleNotFoundError(
            "the policylang server needs uvicorn: pip install 'policylang[server]'", name="uvicorn"
        ) from None
    if type(max_connections) is not int or max_connections < 1:
        raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
    if not isinstance(keep_alive, int | float) or not 0 < keep_alive < float("inf"):
        raise ValueError(f"keep_alive must be a positive number of seconds, got {keep_alive!r}")
    metrics = getattr(getattr(app, "state", None), "metrics", None)
    protocol = guarded_protocol(
        AutoHTTPProtocol,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        on_reject=metrics.observe_error if isinstance(metrics, Metrics) else None,
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        http=protocol,
        limit_concurrency=max_connections,
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]  # a float works
        h11_max_incomplete_event_size=max_header_bytes,
        lifespan="on",
    )


def run(
    app: Any, host: str = "127.0.0.1", port: int = 8181, log_level: str = "info", **limits: Any
) -> None:
    """Serve ``app`` with uvicorn until interrupted, with :func:`server_config`'s limits."""
    import uvicorn

    uvicorn.Server(server_config(app, host, port, log_level, **limits)).run()


__all__ = [
    "create_app",
    "run",
    "server_config",
    "Metrics",
    "PolicyWatcher",
    "HostGuard",
    "check_bind",
    "is_loopback",
    "read_token",
    "parse_json",
    "guarded_protocol",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_CONNECTIONS",
    "HEADER_TIMEOUT",
    "BODY_TIMEOUT",
    "REQUEST_TIMEOUT",
    "KEEP_ALIVE",
]
