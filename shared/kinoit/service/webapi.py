"""The routes the web app needs beyond the job API: uploads (``/sources``, see
:mod:`kinoit.service.uploads`) and the per-segment view (``/jobs/<id>/segments``,
see :mod:`kinoit.service.segments`) and the manifest as dag-json
(``/jobs/<id>/manifest``), called by ``OrchestrateService.handle`` after
the bearer token was checked; and the sign-in check (``POST /session``), before.

``POST /session`` with ``{"token": ...}`` answers 200 ``{"valid": bool}``: the page
asks whether a token is right without a 401 (which a browser logs as an error).
It tells no more than a 401 from any other route would."""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING, Final

from kinoit.errors import InvalidParameter, NotFound
from kinoit.jobs import is_job_id
from kinoit.service.merge_tasks import merge_rungs
from kinoit.service.segments import read_grid_tasks, segment_view
from kinoit.service.uploads import UPLOAD_PATH, Uploads
from kinoit.stages.http import Reply, json_reply, parse_json_object

if TYPE_CHECKING:
    from kinoit.service import HttpRequest, OrchestrateService

_SEGMENTS: Final = re.compile(r"^/jobs/([^/]+)/segments$")
_MANIFEST: Final = re.compile(r"^/jobs/([^/]+)/manifest$")


def session_reply(service: OrchestrateService, request: HttpRequest) -> Reply:
    """POST /session: whether ``body["token"]`` is the API token."""
    from kinoit.service import API_TOKEN_FILE

    token = parse_json_object(request.body).get("token")
    if not isinstance(token, str):
        raise InvalidParameter("token", "expected the API token as a string")
    expected = service.settings.secret(API_TOKEN_FILE) or ""
    valid = bool(expected) and hmac.compare_digest(token.strip().encode(), expected.encode())
    return json_reply({"valid": valid})


def web_route(service: OrchestrateService, request: HttpRequest, path: str) -> Reply | None:
    """The reply for an upload or segment-view route; None for any other path."""
    method = request.method.upper()
    if path == "/sources" and method == "POST":
        uploads = Uploads(service.redis, service.pipeline.store, service.settings)
        created = uploads.create(parse_json_object(request.body), service.pipeline.callback_base)
        return json_reply(created, 201)
    upload = UPLOAD_PATH.match(path)
    if upload and method == "PUT":
        uploads = Uploads(service.redis, service.pipeline.store, service.settings)
        reply, status = uploads.put(upload.group(1), request.query.get("offset"), request.body)
        return json_reply(reply, status)
    segments = _SEGMENTS.match(path)
    if segments and method == "GET":
        job_id = segments.group(1)
        if not is_job_id(job_id):
            raise NotFound(f"no job {job_id!r}")
        record = service.pipeline.engine.get_job(job_id)
        rungs = merge_rungs(record.spec.get("ladder") or {})
        return json_reply(segment_view(record, read_grid_tasks(service.redis, job_id, rungs)))
    manifest = _MANIFEST.match(path)
    if manifest and method == "GET":
        return manifest_reply(service, manifest.group(1))
    return None


def manifest_reply(service: OrchestrateService, job_id: str) -> Reply:
    """GET /jobs/<id>/manifest: the finished job's manifest as dag-json (long jobs'
    segment pages expanded), what ``kinoit run --out`` writes as manifest.json."""
    from kinoit.manifest import dumps_dag_json, expand_segments
    from kinoit.store.cid import CID

    if not is_job_id(job_id):
        raise NotFound(f"no job {job_id!r}")
    record = service.pipeline.engine.get_job(job_id)
    if not record.manifest:
        raise NotFound(f"job {job_id} has no manifest (it is {record.state.value})")
    store = service.pipeline.store
    value = store.dag_get(record.manifest)
    value = {**value, "segments": expand_segments(value, store.dag_get)}
    text = dumps_dag_json(value, lambda v: isinstance(v, CID))
    return text, 200, {"Content-Type": "application/json"}
