"""``policylang serve PATH``: the HTTP decision server (needs the ``server`` extra).

Loads the policy, refuses to listen beyond loopback without a bearer token,
optionally writes audit records to a JSON Lines file and reloads the policy
when its files change (``--watch``), then serves until interrupted.
Exit codes: 0 stopped cleanly, 2 bad usage or a policy that does not load.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from policylang.errors import PolicyLoadError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="serve decisions over HTTP",
        description="Serve decisions over HTTP: POST /v1/decide, POST /v1/decide/batch, "
        "GET /v1/policies, /healthz, /readyz, /metrics, /openapi.json.",
    )
    configure(p)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a .policy file or a folder of them (with data files)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other than loopback needs a token)",
    )
    p.add_argument("--port", type=int, default=8181, help="port (default 8181)")
    token = p.add_mutually_exclusive_group()
    token.add_argument(
        "--token-env",
        metavar="VAR",
        help="require 'Authorization: Bearer <token>', the token read from VAR",
    )
    token.add_argument(
        "--token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer <token>', the token read from FILE",
    )
    p.add_argument(
        "--audit",
        metavar="FILE",
        help="append an audit record per decision to FILE "
        "(JSON Lines); SIGHUP reopens it (after it was rotated away or deleted, "
        "decisions are denied audit_unavailable until then)",
    )
    p.add_argument(
        "--audit-head",
        action="store_true",
        help="publish the chain's last (seq, hash) to FILE.head after every record, "
        "so 'policylang audit verify' finds records cut from the end",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="reload the policy when its files change (checked every second); a "
        "policy that fails to load leaves the running one in place",
    )
    p.add_argument("--max-batch", type=int, default=1000, help="most requests in one batch")
    p.add_argument(
        "--max-body", type=int, default=1 << 20, help="largest body in bytes (default 1 MiB)"
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="NAME",
        help="a host name this server answers for (repeatable); on a loopback address "
        "only 127.0.0.1, localhost and [::1] are answered by default, so a page "
        "whose name was re-pointed at 127.0.0.1 (DNS rebinding) is refused",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="open connections at once; past it requests get 503 (default 256)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time for a request's head to arrive (default 5)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time for a request's body to arrive (default 10)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="time from a request's head to its answer (default 15)",
    )
    p.add_argument(
        "--keep-alive",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time an idle connection stays open (default 5)",
    )
    p.add_argument(
        "--max-headers", type=int, default=64, help="header lines in one request (default 64)"
    )
    p.add_argument(
        "--max-header-bytes",
        type=int,
        default=16 << 10,
        help="size of a request's head in bytes (default 16 KiB)",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(run=run)


def _audit_sink(path: str, head: bool = False) -> Any:
    try:
        from policylang.runtime.audit import JsonlSink, reopen_on_signal
    except ImportError:
        return _AppendSink(path)
    sink = JsonlSink(path, head=head)
    reopen_on_signal(sink)
    return sink


class _AppendSink:
    """Fallback when policylang.runtime.audit is not there: one JSON line per decision."""

    def __init__(self, path: str):
        import threading

        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the server
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        import json

        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


def run(args: argparse.Namespace) -> int:
    try:
        from policylang.server import (
            Metrics,
            PolicyWatcher,
            check_bind,
            create_app,
            read_token,
            server_config,
        )
    except ModuleNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from policylang.runtime.engine import Engine

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        token = read_token(args.token_env, args.token_file)
        check_bind(args.host, token)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {}
    if args.audit:
        try:
            options["audit"] = _audit_sink(args.audit, args.audit_head)
        except OSError as exc:
            print(f"error: cannot open the audit file {args.audit}: {exc}", file=sys.stderr)
            return 2
    try:
        engine = Engine.from_path(args.path, **options)
    except PolicyLoadError as exc:
        print(exc.render(), file=sys.stderr)
        if not args.watch:
            return 2
        print(
            "warning: starting without a policy (/readyz answers 503; every decision is deny "
            "no_policy) until the files are fixed",
            file=sys.stderr,
        )
        engine = Engine.empty(**options)
    metrics = Metrics()
    watcher = PolicyWatcher(engine, args.path, metrics) if args.watch else None
    try:  # every limit is checked before the server starts
        app = create_app(
            engine,
            token=token,
            metrics=metrics,
            watcher=watcher,
            max_body_bytes=args.max_body,
            max_batch=args.max_batch,
            allowed_hosts=args.allowed_host,
            max_headers=args.max_headers,
            request_timeout=args.request_timeout,
            body_timeout=args.body_timeout,
        )
        config = server_config(
            app,
            args.host,
            args.port,
            args.log_level,
            max_connections=args.max_connections,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            keep_alive=args.keep_alive,
            max_header_bytes=args.max_header_bytes,
            max_headers=args.max_headers,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"policylang: serving {engine.policy_name or '(no policy)'} on http://{args.host}:"
        f"{args.port}{' (bearer token required)' if token else ''}",
        file=sys.stderr,
    )
    import uvicorn

    uvicorn.Server(config).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="policylang serve")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
