"""The HTTP decision server (``policylang serve``); needs the ``server`` extra.

``create_app(engine, token=...)`` builds the Starlette app; ``run(app, host, port)``
serves it with uvicorn. See :mod:`policylang.server.app` for the endpoints.
"""

from __future__ import annotations

from typing import Any

try:
    from policylang.server.app import (
        MAX_BATCH,
        MAX_BODY_BYTES,
        PolicyWatcher,
        check_bind,
        create_app,
        is_loopback,
        read_token,
    )
    from policylang.server.metrics import Metrics
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name and exc.name.split(".")[0] == "starlette":
        raise ModuleNotFoundError(
            "the policylang server needs Starlette and uvicorn: pip install 'policylang[server]'",
            name=exc.name,
        ) from None
    raise


def run(app: Any, host: str = "127.0.0.1", port: int = 8181, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until interrupted."""
    try:
        import uvicorn
    except ModuleNotFoundError:  # pragma: no cover
        raise ModuleNotFoundError(
            "the policylang server needs uvicorn: pip install 'policylang[server]'", name="uvicorn"
        ) from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        server_header=False,
        date_header=False,
    )


__all__ = [
    "create_app",
    "run",
    "Metrics",
    "PolicyWatcher",
    "check_bind",
    "is_loopback",
    "read_token",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
]
