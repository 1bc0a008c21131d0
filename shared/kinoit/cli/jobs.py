"""CLI commands of the jobs group: ``dev``, ``run``, ``status``, ``watch``, ``jobs``, ``cancel``."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from kinoit.config import load_settings
from kinoit.errors import InvalidParameter, KinoitError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands to the parser."""
    dev = sub.add_parser("dev", help="serve the functions on a local gateway (embedded default)")
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on")
    dev.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    dev.add_argument("--workers", type=int, default=2, help="async worker processes")
    dev.add_argument("--verbose", action="store_true", help="log every HTTP request")
    dev.set_defaults(handler=cmd_dev)

    run = sub.add_parser("run", help="run one job locally and write its outputs")
    run.add_argument("source", metavar="SOURCE", help="a video file, or the CID of one")
    group = run.add_mutually_exclusive_group()
    group.add_argument("--profile", default=None, help="built-in ladder (default: default)")
    group.add_argument("--ladder", type=Path, default=None, help="ladder YAML/JSON file")
    run.add_argument("--out", type=Path, default=Path("out"), help="output directory (./out)")
    run.add_argument("--workers", type=int, default=2, help="async worker processes")
    run.add_argument(
        "--segment-seconds", default=None, metavar="S",
        help="segment length in seconds, from 0.5 to 10 (default 1)",
    )  # fmt: skip
    run.set_defaults(handler=cmd_run)

    status = sub.add_parser("status", help="show one job's state and counts")
    status.add_argument("job", metavar="JOB")
    status.set_defaults(handler=cmd_status)

    watch = sub.add_parser("watch", help="follow one job's progress stream live")
    watch.add_argument("job", metavar="JOB")
    watch.add_argument("--timeout", type=float, default=None, help="give up after N seconds")
    watch.set_defaults(handler=cmd_watch)

    jobs = sub.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(handler=cmd_jobs)

    cancel = sub.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job", metavar="JOB")
    cancel.set_defaults(handler=cmd_cancel)


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the local gateway, workers and tick until interrupted."""
    from kinoit.local.dev import DevStack
    from kinoit.service.ui import is_built

    if args.workers < 1:
        raise InvalidParameter("--workers", "must be at least 1")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = load_settings()
    stack = DevStack(
        host=args.host, port=args.port, workers=args.workers, settings=settings,
        quiet=not args.verbose,
    )  # fmt: skip
    with stack:
        _say(f"gateway on {stack.gateway_url}")
        _say(f"orchestrate at {stack.gateway_url}/function/orchestrate")
        if is_built():
            _say(f"web page at {stack.gateway_url}/function/orchestrate/ui/")
        else:
            _say("web page not built: run scripts/build-ui (scripts/install runs it)")
        _say(f"redis at {stack.redis_url}")
        _say(
            f"secrets in {stack.secrets_dir} "
            "(kinoit-api-token, kinoit-webhook-secret, kinoit-stage-secret)"
        )
        _say(f"{args.workers} workers; logs in {stack.settings.home / 'logs'}")
        print("READY", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def _say(text: str) -> None:
    print(f"kinoit dev: {text}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """Run one job through the local gateway; write DIR/<rung>.mp4, hls/, thumbs/, manifest."""
    from kinoit.local.run import run_job

    if args.workers < 1:
        raise InvalidParameter("--workers", "must be at least 1")
    if args.segment_seconds is not None:
        from kinoit.service.spec import parse_segment_seconds

        try:
            parse_segment_seconds(args.segment_seconds)
        except InvalidParameter as exc:
            message = str(exc).removeprefix(f"{exc.field}: ")
            raise InvalidParameter("--segment-seconds", message) from None
    outcome = run_job(
        load_settings(), args.source, profile=args.profile, ladder_file=args.ladder,
        out_dir=args.out, workers=args.workers, segment_seconds=args.segment_seconds,
    )  # fmt: skip
    if outcome.state != "completed":
        raise KinoitError(f"job {outcome.job_id} {outcome.state}: {outcome.error or 'no reason'}")
    print(f"job {outcome.job_id}")
    print(f"manifest {outcome.manifest}")
    print(f"outputs in {args.out}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print one job as JSON."""
    from kinoit.local.run import local_engine

    with local_engine(load_settings()) as engine:
        record = engine.get_job(args.job)
    print(json.dumps(record.to_dict(), indent=2))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow the job's progress stream until it ends; exit 1 unless it completed."""
    from kinoit.local.run import local_engine, watch_job

    with local_engine(load_settings()) as engine:
        state = watch_job(engine, args.job, sys.stdout, args.timeout)
    return 0 if state == "completed" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    """A table of recent jobs."""
    from kinoit.local.run import local_engine

    with local_engine(load_settings()) as engine:
        page = engine.list_jobs(limit=max(1, min(args.limit, 1000)))
    print(f"{'JOB':<28} {'STATE':<10} {'DONE':>11}  MANIFEST")
    for r in page.jobs:
        done = f"{r.total.done}/{r.total.total}"
        print(f"{r.job_id:<28} {r.state.value:<10} {done:>11}  {r.manifest or '-'}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a job through the same code path as DELETE /jobs/<id>."""
    from kinoit.local.dev import ensure_dev_secrets
    from kinoit.local.run import local_redis
    from kinoit.service import build_service

    settings = load_settings()
    settings = replace(settings, secrets_dir=ensure_dev_secrets(settings))
    with local_redis(settings) as url:
        service = build_service(replace(settings, redis_url=url))
        print(json.dumps(service.pipeline.cancel(args.job)))
    return 0
