"""CLI commands of the jobs group: ``dev``, ``run``, ``status``, ``watch``, ``jobs``, ``cancel``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import Any

from kinoit.config import load_settings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands to the parser."""
    dev = sub.add_parser("dev", help="serve the functions on a local gateway (embedded default)")
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on")
    dev.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    dev.add_argument("--workers", type=int, default=2, help="async worker processes")
    dev.set_defaults(handler=cmd_dev)


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the local gateway, workers and tick until interrupted."""
    from kinoit.errors import InvalidParameter
    from kinoit.gateway.dev import DevStack

    if args.workers < 1:
        raise InvalidParameter("--workers", "must be at least 1")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with DevStack(
        host=args.host, port=args.port, workers=args.workers, settings=load_settings()
    ) as stack:
        print(f"kinoit dev: gateway on {stack.gateway_url}", file=sys.stderr)
        print(
            f"kinoit dev: orchestrate at {stack.gateway_url}/function/orchestrate", file=sys.stderr
        )
        print(f"kinoit dev: redis {stack.redis_url}", file=sys.stderr)
        print(f"kinoit dev: secrets in {stack.secrets_dir}", file=sys.stderr)
        print(
            f"kinoit dev: {args.workers} workers; logs in {stack.settings.home / 'logs'}",
            file=sys.stderr,
        )
        print("READY", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0
