"""orchestrate: the job API over HTTP, and the pipeline behind it.

Routes (below ``/function/orchestrate``)::

    POST   /                      submit a job            -> 202 {job_id, status_url}
    GET    /jobs                  list jobs (newest first, ?limit=&cursor=)
    GET    /jobs/<id>             one job: state, counts per stage, timings, outputs
    DELETE /jobs/<id>             cancel
    GET    /metrics               Prometheus text
    POST   /tick                  sweep leases, start queued jobs, deliver webhooks
    POST   /callback/<job>/<task>/<attempt>?token=...   results from the queue-worker
    GET    /preview/<job>/<expires>/<token>/...         a running job's EVENT HLS (preview.py)
    GET    /healthz
    GET    /ui/                   the web app (kinoit.service.ui; no token)
    POST   /session               {"token"} -> {"valid"}: the page's sign-in check (no token)
    POST   /sources, PUT /sources/<id>   upload a source (kinoit.service.uploads)
    GET    /jobs/<id>/segments    every segment task's state (kinoit.service.segments)
    GET    /jobs/<id>/manifest    the manifest as dag-json (kinoit.service.webapi)
    GET    /ipfs/<cid>[/<path>]   files and directories from the store (kinoit.service.gateway)

Everything but ``/metrics``, ``/healthz``, ``/ui/``, ``/session``, ``/ipfs/``, the
previews and the callbacks (which carry their own HMAC token) needs
``Authorization: Bearer <kinoit-api-token>``.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from kinoit.config import Settings, load_settings
from kinoit.errors import (
    ConfigurationError,
    Forbidden,
    InputError,
    InvalidParameter,
    KinoitError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from kinoit.jobs import (
    EngineConfig,
    JobEngine,
    ResultCache,
    callback_secret,
    connect,
    is_job_id,
    verify_callback_token,
)
from kinoit.service import gateway
from kinoit.service.pipeline import Pipeline
from kinoit.service.ports import Notifier
from kinoit.service.preview import PREFIX as PREVIEW_PREFIX
from kinoit.service.preview import Preview
from kinoit.service.spec import parse_job_spec
from kinoit.service.ui import is_ui_path, ui_reply
from kinoit.service.webapi import session_reply, web_route
from kinoit.stages.http import Reply, json_reply, parse_json_object
from kinoit.webhooks import WebhookEvent

__all__ = ["HttpRequest", "OrchestrateService", "get_service", "reset_service"]

log = logging.getLogger(__name__)

API_TOKEN_FILE = "kinoit-api-token"
_CALLBACK = re.compile(r"^/callback/([0-9A-Z]{26})/([A-Za-z0-9_.:-]{1,128})/([0-9]{1,6})/?$")
_JOB = re.compile(r"^/jobs/([^/]+)/?$")
# ASCII digits only: int() would also read " 7", "+7", "7_0" and non-ASCII digits.
_DECIMAL = re.compile(r"[0-9]{1,20}")
# GET /jobs pages: at most this many jobs (the engine's limit).
MAX_PAGE = 1000
# A cursor is an offset into the job list; far beyond any real count, and keeps
# cursor + limit inside Redis's 64-bit index range.
MAX_CURSOR = 2**53


@dataclass(frozen=True)
class HttpRequest:
    """One request to orchestrate (headers lower-cased)."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


class RedisNotifier:
    """Job events into the webhook queue (Redis); delivery happens on tick."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.redis = connection
        self.settings = settings

    def notify(self, job_id: str, url: str | None, type: str, data: Mapping[str, Any]) -> None:
        """Queue one webhook when the job has a callback URL."""
        from kinoit.webhooks import enqueue_webhook

        if url:
            enqueue_webhook(self.redis, url, type, job_id, dict(data))

    def progress(
        self, job_id: str, url: str | None, done: int, total: int, data: Mapping[str, Any]
    ) -> None:
        """A throttled ``job.progress``."""
        from kinoit.webhooks import should_send_progress

        if url and should_send_progress(self.redis, job_id, done, total):
            self.notify(
                job_id, url, WebhookEvent.JOB_PROGRESS, {**data, "done": done, "total": total}
            )

    def drain(self) -> None:
        """Send due webhooks once."""
        from kinoit.webhooks import deliver_pending

        secret = self.settings.secret("kinoit-webhook-secret")
        if secret:
            deliver_pending(self.redis, secret, allow_private=self.settings.allow_private_callbacks)


class OrchestrateService:
    """Routes requests to the pipeline; owns auth, size caps and validation."""

    def __init__(self, settings: Settings, pipeline: Pipeline, connection: redis.Redis) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.redis = connection
        # Set by reset_service(): ends the background tick of this instance.
        self.stopped = threading.Event()
        self.preview = Preview(pipeline.engine, pipeline.store, pipeline.secret,
                               pipeline.callback_base)  # fmt: skip

    # ---------------------------------------------------------------- routing
    def handle(self, request: HttpRequest) -> Reply | gateway.GatewayReply:
        """Answer one request (KinoitErrors propagate to the handler's error mapping)."""
        path = "/" + request.path.strip("/")
        method = request.method.upper()
        if len(request.body) > self.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"request body of {len(request.body)} bytes exceeds {self.settings.max_body_bytes}"
            )
        if path == "/healthz":
            return json_reply({"ok": True})
        if path == "/metrics" and method == "GET":
            return self.metrics()
        if is_ui_path(request.path):
            return ui_reply(request.path, method)
        if path == "/session" and method == "POST":
            return session_reply(self, request)
        if gateway.is_gateway_path(path):  # no token: a CID is the capability
            return gateway.serve(self.pipeline.store, method, request.path, request.headers)
        match = _CALLBACK.match(request.path)
        if match and method == "POST":
            return self.callback(request, match.group(1), match.group(2), int(match.group(3)))
        if path.startswith(PREVIEW_PREFIX):  # its token is in the path
            return self.preview.handle(method, path)
        self.authorize(request)
        if path == "/" and method == "POST":
            return self.submit(request)
        if path == "/jobs" and method == "GET":
            return self.list_jobs(request)
        if path == "/tick" and method == "POST":
            return json_reply(self.pipeline.tick())
        if (reply := web_route(self, request, path)) is not None:
            return reply
        job = _JOB.match(path)
        if job:
            job_id = job.group(1)
            if not is_job_id(job_id):
                raise NotFound(f"no job {job_id!r}")
            if method == "GET":
                return json_reply(self.job_status(job_id))
            if method == "DELETE":
                return json_reply(self.pipeline.cancel(job_id))
        raise NotFound(f"no route {method} {path}")

    def authorize(self, request: HttpRequest) -> None:
        """401 unless the bearer token matches the api token secret."""
        expected = self.settings.secret(API_TOKEN_FILE)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not expected:
            raise Unauthorized(f"no {API_TOKEN_FILE} configured in {self.settings.secrets_dir}")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            raise Unauthorized("missing or wrong bearer token")

    # -------------------------------------------------------------- handlers
    def submit(self, request: HttpRequest) -> Reply:
        """Validate and queue a job."""
        body = parse_json_object(request.body)
        spec = parse_job_spec(
            body,
            check_cid=check_cid,
            resolve_ladder=resolve_ladder,
            check_callback_url=self.check_callback_url,
        )
        job_id = self.pipeline.submit(spec)
        return json_reply(
            {"job_id": job_id, "status_url": f"{self.pipeline.callback_base}/jobs/{job_id}"},
            202,
        )

    def check_callback_url(self, url: str) -> str:
        """The SSRF guard (loopback allowed only when configured)."""
        from kinoit.webhooks import check_callback_url

        return check_callback_url(url, allow_private=self.settings.allow_private_callbacks)

    def job_status(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/<id>."""
        record = self.pipeline.engine.get_job(job_id)
        body = record.to_dict()
        body["status_url"] = f"{self.pipeline.callback_base}/jobs/{job_id}"
        body["source"] = record.spec.get("source")
        body.update(self.preview.status_fields(record))
        return body

    def list_jobs(self, request: HttpRequest) -> Reply:
        """GET /jobs?limit=&cursor=."""
        limit = query_int(request.query, "limit", 50, 1, MAX_PAGE)
        cursor = query_int(request.query, "cursor", 0, 0, MAX_CURSOR)
        page = self.pipeline.engine.list_jobs(limit=limit, cursor=cursor)
        jobs = [
            {
                "job_id": r.job_id,
                "state": r.state.value,
                "created_at": r.created_at,
                "finished_at": r.finished_at,
                "manifest": r.manifest,
                "source": r.spec.get("source"),
                "tasks": r.total.to_dict(),
            }
            for r in page.jobs
        ]
        return json_reply({"jobs": jobs, "next_cursor": page.next_cursor})

    def callback(self, request: HttpRequest, job_id: str, task_id: str, attempt: int) -> Reply:
        """A queue-worker callback: HMAC-checked, idempotent."""
        token = request.query.get("token", "")
        if not verify_callback_token(self.pipeline.secret, job_id, task_id, attempt, token):
            raise Forbidden("callback token does not match")
        raw_status = request.headers.get("x-function-status", "")
        try:
            status = int(raw_status)
        except ValueError:
            raise InvalidParameter(
                "X-Function-Status", f"expected a status code, got {raw_status!r}"
            ) from None
        try:
            duration: float | None = float(request.headers.get("x-duration-seconds", ""))
        except ValueError:
            duration = None
        return json_reply(
            self.pipeline.on_callback(job_id, task_id, attempt, status, request.body, duration)
        )

    def metrics(self) -> Reply:
        """Prometheus text: counters from Redis plus gauges read now."""
        from kinoit.metrics import CONTENT_TYPE, Snapshot, render_metrics

        gauges = self.pipeline.engine.gauges()
        snapshot = Snapshot(jobs=gauges.jobs, tasks=gauges.tasks, queue_depth=gauges.queue_depth)
        text = render_metrics(self.redis, snapshot).decode()
        return text, 200, {"Content-Type": CONTENT_TYPE}


def query_int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A decimal query parameter within [low, high] (InvalidParameter naming it)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _DECIMAL.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidParameter(name, f"expected an integer from {low} to {high}, got {raw[:40]!r}")
    return int(raw)


def check_cid(text: str) -> str:
    """A CID string in canonical CIDv1 form (InvalidParameter naming ``source``)."""
    from kinoit.store.cid import CID

    try:
        return str(CID.parse(text.strip()).to_v1())
    except KinoitError as exc:
        raise InvalidParameter("source", exc.message) from None


def resolve_ladder(profile: str | None, ladder: Any) -> dict[str, Any]:
    """A built-in profile by name, or an inline ladder, validated; as JSON."""
    from kinoit.media.ladder import BUILTIN_LADDERS, load_ladder, parse_ladder

    if ladder is not None:
        if not isinstance(ladder, dict):
            raise InvalidParameter("ladder", "expected a ladder object with 'rungs'")
        return parse_ladder(ladder).to_json()
    if profile not in BUILTIN_LADDERS:
        raise InvalidParameter(
            "profile", f"unknown profile {profile!r}; known: {list(BUILTIN_LADDERS)}"
        )
    return load_ladder(str(profile)).to_json()


_lock = threading.Lock()
_service: OrchestrateService | None = None


def build_service(settings: Settings) -> OrchestrateService:
    """Wire the service from settings: Redis, engine, cache, store, webhooks, metrics."""
    from kinoit.metrics import MetricsRecorder
    from kinoit.store import open_store

    if not settings.redis_url:
        raise InvalidParameter("KINOIT_REDIS_URL", "orchestrate needs a Redis URL")
    connection = connect(settings.redis_url)
    engine = JobEngine(connection, EngineConfig.from_settings(settings))
    notifier: Notifier = RedisNotifier(connection, settings)
    pipeline = Pipeline(
        settings,
        engine,
        ResultCache(connection),
        open_store(settings),
        notifier,
        MetricsRecorder(connection),
        callback_secret(settings),
    )
    return OrchestrateService(settings, pipeline, connection)


def _tick_forever(service: OrchestrateService, interval: float) -> None:
    while not service.stopped.wait(interval):
        try:
            service.pipeline.tick(deliver=False)
        except Exception:
            log.warning("background tick failed", exc_info=True)


def _deliver_forever(service: OrchestrateService, interval: float) -> None:
    while not service.stopped.wait(interval):
        try:
            service.pipeline.notifier.drain()
        except Exception:
            log.warning("background webhook delivery failed", exc_info=True)


def start_background(service: OrchestrateService, interval: float) -> None:
    """Tick every ``interval`` seconds on one daemon thread and deliver webhooks on
    another, so a slow or hanging webhook receiver never holds up lease sweeps."""
    for target, name in (
        (_tick_forever, "kinoit-orchestrate-tick"),
        (_deliver_forever, "kinoit-webhook-delivery"),
    ):
        threading.Thread(target=target, args=(service, interval), daemon=True, name=name).start()


def get_service() -> OrchestrateService:
    """The process-wide service, built on first use from the environment; it also
    starts daemon threads that tick and deliver webhooks every ``KINOIT_TICK_SECONDS``
    (0 disables)."""
    global _service
    with _lock:
        if _service is None:
            try:
                settings = load_settings()
                _service = build_service(settings)
            except InputError as exc:
                # a bad setting is the operator's to fix: not the caller's 4xx
                raise ConfigurationError(f"orchestrate is misconfigured: {exc.message}") from exc
            if settings.tick_seconds > 0:
                start_background(_service, settings.tick_seconds)
        return _service


def reset_service() -> None:
    """Forget the process-wide service (tests, settings changes)."""
    global _service
    with _lock:
        if _service is not None:
            _service.stopped.set()
        _service = None
