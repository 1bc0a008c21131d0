"""The pipeline: what orchestrate dispatches when, and what it does with results.

    split ──▶ per segment i: transcode.i ──▶ checksum.i      (gate: a mismatch re-runs
                             thumbnail.i                      transcode.i once as .r2)
          last completion ──▶ merge (exactly once) ──▶ manifest ──▶ pin ──▶ job.completed

Task ids name the work: ``split``, ``transcode.<i>``, ``thumbnail.<i>``,
``checksum.<i>``, ``transcode.<i>.r2`` / ``checksum.<i>.r2`` after a checksum
mismatch, and ``merge``. Every follow-up task is added *before* the completion
that causes it is recorded, so the engine's "all done" fires only when a phase
really is finished, exactly once.

Every state change goes through the engine's atomic scripts, so any number of
orchestrate replicas (and duplicate, late or out-of-order callbacks) are safe.
A window of at most ``dispatch_window`` tasks is in flight per job, so leases
do not run out while tasks wait in the async queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from kinoit.config import Settings
from kinoit.errors import Conflict, InputError, KinoitError, NotFound
from kinoit.jobs import (
    Dispatch,
    JobEngine,
    JobState,
    ResultCache,
    TaskState,
    cache_digest,
    callback_token,
    canonical_json,
    keys,
)
from kinoit.manifest import build_manifest, build_segment_entry
from kinoit.service.holds import PinHolds
from kinoit.service.spec import JobSpec
from kinoit.stages.signing import sign_stage_request, stage_key

log = logging.getLogger(__name__)

# Which OpenFaaS function runs each stage.
STAGE_FUNCTIONS = {
    "split": "split",
    "transcode": "transcode-segment",
    "thumbnail": "thumbnail",
    "checksum": "checksum",
    "merge": "merge",
}
# Posting to the gateway's async endpoint only enqueues; it should be quick.
DISPATCH_TIMEOUT_SECONDS = 10.0
# Segment entries per page of the merge plan and of a long manifest: an entry with
# its per-frame hashes is under 1 KB, so a page stays well under Kubo's 1 MiB block cap.
PAGE_SIZE = 512
# Manifests of up to this many segments list them inline; longer ones link pages.
MANIFEST_INLINE_SEGMENTS = PAGE_SIZE
# The suffix of a verification re-run.
RERUN_SUFFIX = ".r2"
# Job-level reuse: results recorded under this pseudo-stage in the result cache.
JOB_CACHE_STAGE = "job"
# Result fields that name a single output CID (checked before a cached result is reused).
OUTPUT_KEYS = ("index", "audio", "thumbnail", "hls", "storyboard", "storyboard_vtt")
# A running job whose next step is missing this long gets that step re-done by tick.
STUCK_SECONDS = 30.0
# Per-job facts kept in memory by one orchestrate process (bounded; Redis is the truth).
MEMO_SIZE = 4096


class BoundedMemo(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries beyond ``MEMO_SIZE``."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > MEMO_SIZE:
            self.popitem(last=False)


class Notifier(Protocol):
    """Where job events go (signed webhooks); never blocks the pipeline."""

    def notify(self, job_id: str, url: str | None, type: str, data: Mapping[str, Any]) -> None:
        """Queue one event for delivery."""
        ...

    def progress(
        self, job_id: str, url: str | None, done: int, total: int, data: Mapping[str, Any]
    ) -> None:
        """A throttled job.progress event."""
        ...

    def drain(self) -> None:
        """Deliver what is due (called on each tick)."""
        ...


class Metrics(Protocol):
    """The subset of :class:`kinoit.metrics.MetricsRecorder` the pipeline uses."""

    def job_transition(self, state: str, pipe: Any = None) -> None: ...
    def task_finished(self, stage: str, state: str, seconds: float, pipe: Any = None) -> None: ...
    def task_finished_writes(self, stage: str, state: str, seconds: float) -> list[list[str]]: ...
    def task_retried(self, stage: str, pipe: Any = None) -> None: ...
    def verification_failed(self, pipe: Any = None) -> None: ...


Post = Callable[..., Any]


def stage_of(task_id: str) -> str:
    """The stage of a task id (its first dotted part)."""
    return task_id.split(".", 1)[0]


def segment_of(task_id: str) -> int:
    """The segment index in ``transcode.<i>[.r2]``."""
    return int(task_id.split(".")[1])


def is_rerun(task_id: str) -> bool:
    """True for the verification re-run tasks."""
    return task_id.endswith(RERUN_SUFFIX)


# Fields a segment task's result echoes from its request, by stage: not stored with the
# task (the split index, the transcode result and the cache key already have them).
ECHOED = {
    "transcode": ("segment",),
    "thumbnail": ("segment",),
    "checksum": ("segment", "renditions"),
}


def stored_result(stage: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine keeps of a segment task's result: without the echoed inputs."""
    drop = ECHOED.get(stage, ())
    return {k: v for k, v in result.items() if k not in drop}


@dataclass(frozen=True)
class SegmentRef:
    """One segment of the split index."""

    index: int
    cid: str
    start_frame: int
    end_frame: int


class Pipeline:
    """The orchestration logic over the engine, the store, the gateway and webhooks."""

    def __init__(
        self,
        settings: Settings,
        engine: JobEngine,
        cache: ResultCache,
        store: Any,
        notifier: Notifier,
        metrics: Metrics,
        callback_secret: bytes,
        post: Post = requests.post,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.cache = cache
        self.store = store
        self.notifier = notifier
        self.metrics = metrics
        self.secret = callback_secret
        self.post = post
        self.clock = clock
        self.holds = PinHolds(engine.redis, store)
        self.window = settings.dispatch_window
        public = settings.public_url or settings.gateway_url.rstrip("/") + "/function/orchestrate"
        self.callback_base = public.rstrip("/")
        self._specs: BoundedMemo = BoundedMemo()
        self._dispatched_at: BoundedMemo = BoundedMemo()
        self._stuck: BoundedMemo = BoundedMemo()
        self._stage_key: bytes | None = None  # read on the first dispatch

    # ------------------------------------------------------------------ jobs
    def spec(self, job_id: str) -> JobSpec:
        """The job's validated spec (cached; specs never change)."""
        cached = self._specs.get(job_id)
        if cached is None:
            record = self.engine.get_job(job_id)
            cached = JobSpec.from_dict(record.spec, record.metadata)
            self._specs[job_id] = cached
        return cached

    def submit(self, spec: JobSpec) -> str:
        """Queue a job; start it when a slot is free."""
        job_id = self.engine.create_job(spec.to_dict(), spec.metadata)
        self._specs[job_id] = spec
        self.metrics.job_transition(JobState.QUEUED.value)
        self.notifier.notify(job_id, spec.callback_url, "job.accepted", self._data(job_id))
        try:
            self.promote()
        except KinoitError as exc:
            # The job is recorded: the tick starts it (or re-does its lost first step),
            # so the client gets its id rather than an error inviting a duplicate submit.
            log.warning("job %s accepted but not started yet: %s", job_id, exc)
        return job_id

    def _data(self, job_id: str, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"job_id": job_id}
        metadata = self.spec(job_id).metadata
        if metadata:
            data["metadata"] = metadata
        data.update(extra)
        return data

    def promote(self) -> None:
        """Start queued jobs while slots are free."""
        for job_id in self.engine.promote():
            self.start_job(job_id)

    def start_job(self, job_id: str) -> None:
        """First stage of a freshly started job, or its cached result."""
        spec = self.spec(job_id)
        self.metrics.job_transition(JobState.RUNNING.value)
        self.notifier.notify(job_id, spec.callback_url, "job.started", self._data(job_id))
        self._first_stage(job_id)

    def _first_stage(self, job_id: str) -> None:
        """Complete from the job-level cache, or add the split task and dispatch it."""
        spec = self.spec(job_id)
        cached = self.cache.get(JOB_CACHE_STAGE, spec.source, spec.reuse_key())
        if cached and self._have(cached.get("manifest")):
            manifest = str(cached["manifest"])
            self.engine.emit(job_id, "job.reused", manifest=manifest)
            # this job's outputs are pinned for this job too (the first job's pin may be
            # gone, or expire sooner than this job asks)
            self._hold_outputs(job_id, manifest)
            self._complete_job(job_id, manifest, dict(cached.get("outputs") or {}))
            return
        self.engine.add_tasks(job_id, "split", [("split", None)])
        self.pump(job_id)

    def _have(self, cid: Any) -> bool:
        try:
            return bool(cid) and bool(self.store.has(str(cid)))
        except KinoitError:
            return False

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (Conflict when it already ended)."""
        report = self.engine.cancel(job_id)
        self._release(job_id)
        self.metrics.job_transition(JobState.CANCELLED.value)
        spec = self.spec(job_id)
        self.notifier.notify(job_id, spec.callback_url, "job.cancelled", self._data(job_id))
        self.promote()
        return {
            "job_id": job_id,
            "state": JobState.CANCELLED.value,
            "previous_state": report.previous_state.value,
            "released": len(report.released),
        }

    # -------------------------------------------------------------- dispatch
    def pump(self, job_id: str, freed: int | None = None) -> None:
        """Lease and send tasks until the job's in-flight window is full.

        ``freed``: how many slots one completion just freed; then no counts are
        read (one round trip). The tick refills every window in full each second,
        so an estimate that is off by one is corrected there.
        """
        while True:
            if freed is None:
                record = self.engine.get_job(job_id)
                if record.state is not JobState.RUNNING:
                    return
                room = self.window - record.total.leased
            else:
                room, freed = freed, None
            if room <= 0:
                return
            dispatches = self.engine.lease_next(job_id, room)
            if not dispatches:
                return
            # Cache hits complete at once and free room; otherwise the window is full now.
            if not self._send_all(dispatches):
                return

    def _send_all(self, dispatches: list[Dispatch]) -> bool:
        """Send leased tasks (one cache lookup round trip for all); True when any
        completed at once from the result cache."""
        if not dispatches:
            return False
        requests_ = [self.request_body(d) for d in dispatches]
        # A verification re-run exists because the earlier result is suspect: never reuse it.
        cached: dict[int, dict[str, Any]] = {}
        lookups = []
        for i, (d, (_, input_cid, params)) in enumerate(zip(dispatches, requests_, strict=True)):
            if is_rerun(d.task_id):
                continue
            if d.cached is None:
                lookups.append((i, d.stage, input_cid, params))
            elif d.cached:  # read with the lease (the payload named its cache entry)
                value = json.loads(d.cached)
                if isinstance(value, dict):
                    cached[i] = value
        found = self.cache.get_many([(stage, c, p) for _, stage, c, p in lookups])
        for (i, *_), hit in zip(lookups, found, strict=True):
            if hit is not None:
                cached[i] = hit
        hits = [
            self._send(d, body, cached.get(i))
            for i, (d, (body, _, _)) in enumerate(zip(dispatches, requests_, strict=True))
        ]
        return any(hits)

    def request_body(self, d: Dispatch) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """The function request of a task, and its cache key (input CID, params)."""
        spec = self.spec(d.job_id)
        stage = d.stage
        body: dict[str, Any]
        if stage == "split":
            body = {"source": spec.source, "segment_seconds": spec.segment_seconds}
            return body, spec.source, {"segment_seconds": spec.segment_seconds}
        if stage == "transcode":
            segment = str(d.payload["segment"])
            start, fps = int(d.payload.get("start", 0)), d.payload.get("fps")
            body = {
                "segment": segment,
                "ladder": spec.ladder,
                "start_frame": start,
                "fps": fps,
            }
            if d.payload.get("n") and d.payload.get("size"):
                body["frames"] = int(d.payload["n"])
                body["width"], body["height"] = (int(v) for v in d.payload["size"])
            return body, segment, {"ladder": spec.ladder, "start": start, "fps": fps}
        if stage == "thumbnail":
            segment = str(d.payload["segment"])
            return {"segment": segment}, segment, {}
        if stage == "checksum":
            segment = str(d.payload["segment"])
            renditions = dict(d.payload["renditions"])
            return {"segment": segment, "renditions": renditions}, segment, {"r": renditions}
        if stage == "merge":
            plan = str(d.payload["plan"])
            return {"plan": plan}, plan, {}
        raise InputError(f"unknown stage {stage!r}")

    def send(self, d: Dispatch) -> bool:
        """Dispatch one leased task; True when it completed at once from the cache."""
        return self._send_all([d])

    def _send(self, d: Dispatch, body: dict[str, Any], cached: dict[str, Any] | None) -> bool:
        if cached is not None and self._cached_result_usable(d.stage, cached):
            self.on_result(d.job_id, d.task_id, d.attempt, cached, from_cache=True)
            return True
        if d.attempt > 1:
            self.metrics.task_retried(d.stage)
        token = callback_token(self.secret, d.job_id, d.task_id, d.attempt)
        callback = f"{self.callback_base}/callback/{d.job_id}/{d.task_id}/{d.attempt}?token={token}"
        url = f"{self.settings.gateway_url.rstrip('/')}/async-function/{STAGE_FUNCTIONS[d.stage]}"
        self._dispatched_at[(d.job_id, d.task_id)] = self.clock()
        data = json.dumps(body, separators=(",", ":"))
        if self._stage_key is None:
            self._stage_key = stage_key(self.settings)
        # every stage refuses a request orchestrate did not sign (body and callback bound)
        signature = sign_stage_request(self._stage_key, data.encode(), callback, self.clock())
        try:
            response = self.post(
                url,
                data=data,
                headers={
                    "Content-Type": "application/json",
                    "X-Callback-Url": callback,
                    **signature,
                },
                timeout=DISPATCH_TIMEOUT_SECONDS,
            )
            if int(response.status_code) >= 300:
                log.warning("dispatch of %s/%s: HTTP %s", d.job_id, d.task_id, response.status_code)
        except requests.RequestException as exc:
            # The lease expires and the sweep re-dispatches; nothing else to do here.
            log.warning("dispatch of %s/%s failed: %s", d.job_id, d.task_id, exc)
        return False

    def _cached_result_usable(self, stage: str, result: Mapping[str, Any]) -> bool:
        """Replay a cached result only if every CID it names is still in the store."""
        if stage == "checksum":
            return bool(result.get("ok"))  # a mismatch is re-checked, never replayed
        cids = [result.get(k) for k in OUTPUT_KEYS if result.get(k)]
        for key in ("renditions", "mp4"):
            cids += list(dict(result.get(key) or {}).values())
        return all(self._have(c) for c in cids)

    # ------------------------------------------------------------- callbacks
    def on_callback(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        status: int,
        body: bytes,
        duration: float | None = None,
    ) -> dict[str, Any]:
        """A function's result arrived (duplicates and stale attempts are harmless).

        ``duration`` is the queue-worker's ``X-Duration-Seconds`` (the function's own
        run time, whichever replica dispatched the task)."""
        if duration is not None and 0.0 <= duration < 1e6:  # also rejects NaN
            self._dispatched_at[(job_id, task_id)] = self.clock() - duration
        if 200 <= status < 300:
            try:
                result = json.loads(body or b"{}")
            except (UnicodeDecodeError, json.JSONDecodeError):
                result = None
            if isinstance(result, dict):
                # one slot freed: leased in the same round trip as the result when the
                # stage allows (a split opens the whole fan-out instead)
                outcome, leased = self._on_result(job_id, task_id, attempt, result, lease=1)
                if outcome["status"] == "accepted":
                    with contextlib.suppress(NotFound, Conflict):
                        if leased is None:
                            self.pump(job_id, None if stage_of(task_id) == "split" else 1)
                        elif self._send_all(leased):
                            self.pump(job_id)  # cache hits freed more room
                return outcome
            reason, retryable = "function returned a body that is not a JSON object", True
        else:
            reason, retryable = self._failure_reason(status, body)
        outcome = self.on_failure(job_id, task_id, attempt, reason, retryable)
        self.pump_if_running(job_id)
        return outcome

    def pump_if_running(self, job_id: str) -> None:
        """Refill the window and start the next queued jobs."""
        with contextlib.suppress(NotFound):
            self.pump(job_id)
        self.promote()

    @staticmethod
    def _failure_reason(status: int, body: bytes) -> tuple[str, bool]:
        """The reason text, and whether another attempt may succeed: a 4xx (bad input,
        not a video) fails the same way again; a 5xx (ffmpeg killed, store down, crash)
        may not, so it is retried up to the attempt limit."""
        text = body.decode("utf-8", "replace")[:1000]
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and "message" in parsed:
            message = f"{parsed.get('error', 'Error')}: {parsed['message']}"
        else:
            message = f"HTTP {status}: {text.strip() or 'no body'}"
        # 401: the stage refused the signature, which had expired while the task waited
        # in the queue; the next attempt is signed afresh
        return message, status >= 500 or status in (401, 429)

    def on_failure(
        self, job_id: str, task_id: str, attempt: int, reason: str, retryable: bool
    ) -> dict[str, Any]:
        """A task attempt failed: retry with backoff, or fail the job."""
        stage = stage_of(task_id)
        self.metrics.task_finished(stage, "failed", self._elapsed(job_id, task_id))
        if not retryable:
            try:
                info = self.engine.task(job_id, task_id)
            except NotFound:
                return {"status": "ignored", "reason": "unknown task"}
            if info.state is not TaskState.LEASED or info.attempt != attempt:
                return {"status": "ignored", "reason": "stale attempt"}
            failed = {"task": task_id, "stage": stage, "attempt": attempt, "reason": reason}
            self._fail_job(job_id, f"{task_id}: {reason}", failed)
            return {"status": "job_failed", "reason": reason}
        outcome = self.engine.fail(job_id, task_id, attempt, reason)
        if outcome.job_failed:
            self._after_job_failed(job_id, outcome.reason or reason)
            return {"status": "job_failed", "reason": outcome.reason}
        if outcome.ignored:
            return {"status": "ignored", "reason": outcome.reason}
        return {"status": "retry", "next_attempt": outcome.next_attempt}

    def _elapsed(self, job_id: str, task_id: str) -> float:
        started = self._dispatched_at.pop((job_id, task_id), None)
        return max(0.0, self.clock() - started) if started is not None else 0.0

    def on_result(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        result: Mapping[str, Any],
        from_cache: bool = False,
    ) -> dict[str, Any]:
        """Record a task's result and start whatever it unlocks."""
        return self._on_result(job_id, task_id, attempt, result, from_cache)[0]

    def _on_result(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        result: Mapping[str, Any],
        from_cache: bool = False,
        lease: int = 0,
    ) -> tuple[dict[str, Any], list[Dispatch] | None]:
        """:meth:`on_result`, also leasing up to ``lease`` next tasks in the same round
        trip when the stage allows; the leased tasks are returned for sending, or None
        when the caller refills the window itself."""
        stage = stage_of(task_id)
        if stage in ("transcode", "thumbnail") or (stage == "checksum" and result.get("ok")):
            return self._on_plain_result(job_id, task_id, attempt, result, from_cache, lease)
        return self._on_special_result(job_id, task_id, attempt, result, from_cache), None

    def _on_plain_result(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        result: Mapping[str, Any],
        from_cache: bool,
        lease: int,
    ) -> tuple[dict[str, Any], list[Dispatch] | None]:
        """A segment task's result (its follow-ups need no store read): check, add the
        follow-up, record, count, cache and lease the next tasks in one engine call."""
        stage = stage_of(task_id)
        followups: list[tuple[str, list[tuple[str, Mapping[str, Any] | None]]]] = []
        try:
            if stage == "transcode":
                suffix = RERUN_SUFFIX if is_rerun(task_id) else ""
                payload = {"segment": result["segment"], "renditions": result["renditions"]}
                checksum = f"checksum.{segment_of(task_id)}{suffix}"
                if not suffix:  # a re-run's check is never answered from the cache
                    payload = self._with_cache_key(job_id, "checksum", payload)
                followups.append(("checksum", [(checksum, payload)]))
            # counted and cached only if accepted (the engine runs these writes then)
            started = self._dispatched_at.get((job_id, task_id))
            seconds = max(0.0, self.clock() - started) if started is not None else 0.0
            writes = self.metrics.task_finished_writes(stage, "done", seconds)
            if not from_cache:
                _, input_cid, params = self.request_body(self._as_dispatch(job_id, task_id, result))
                key = keys.CACHE_KEY.format(digest=cache_digest(stage, input_cid, params))
                writes.append(["SET", key, canonical_json(dict(result))])
        except KinoitError as exc:
            return self.on_failure(job_id, task_id, attempt, str(exc), exc.retryable), None
        completion, leased = self.engine.complete_step(
            job_id, task_id, attempt, stored_result(stage, result), followups, writes, lease=lease
        )
        if not completion.accepted:
            if completion.duplicate:
                return {"status": "duplicate"}, []
            return {"status": "ignored", "reason": completion.reason}, []
        self._dispatched_at.pop((job_id, task_id), None)
        if completion.all_done:
            self._send_all(leased)  # empty: nothing is pending when all is done
            self._start_merge(job_id)
            return {"status": "accepted"}, None  # the caller leases the merge
        spec = self.spec(job_id)
        self.notifier.progress(
            job_id, spec.callback_url, completion.done, completion.total, self._data(job_id)
        )
        return {"status": "accepted"}, leased

    def _on_special_result(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        result: Mapping[str, Any],
        from_cache: bool = False,
    ) -> dict[str, Any]:
        """split, merge and failed checksums: their follow-ups read the store or the job."""
        stage = stage_of(task_id)
        if stage in ("split", "merge"):
            # their follow-ups read the store: skip them for duplicates (other stages'
            # follow-ups are idempotent task additions, cheaper than this check)
            try:
                info = self.engine.task(job_id, task_id)
            except NotFound:
                return {"status": "ignored", "reason": "unknown task"}
            if info.state is TaskState.DONE:
                return {"status": "duplicate"}
        try:
            self._prepare_followups(job_id, task_id, result)
        except Conflict:
            return {"status": "ignored", "reason": "job has ended"}
        except KinoitError as exc:
            return self.on_failure(job_id, task_id, attempt, str(exc), exc.retryable)
        completion = self.engine.complete(job_id, task_id, attempt, result)
        if not completion.accepted:
            return {"status": "duplicate" if completion.duplicate else "ignored"}
        pipe = self.engine.redis.pipeline(transaction=False)
        self.metrics.task_finished(stage, "done", self._elapsed(job_id, task_id), pipe=pipe)
        if not from_cache and not (stage == "checksum" and not result.get("ok")):
            _, input_cid, params = self.request_body(self._as_dispatch(job_id, task_id, result))
            digest = cache_digest(stage, input_cid, params)
            pipe.set(keys.CACHE_KEY.format(digest=digest), canonical_json(dict(result)))
        pipe.execute()
        spec = self.spec(job_id)
        if stage == "checksum" and not result.get("ok"):
            self.metrics.verification_failed()
            if is_rerun(task_id):
                reason = (
                    f"verification failed: segment {segment_of(task_id)}: {result.get('reason')}"
                )
                self._fail_job(
                    job_id, reason, {"task": task_id, "stage": stage, "attempt": attempt,
                                     "reason": reason},
                )  # fmt: skip
                return {"status": "job_failed"}
        if stage == "split":
            self._hold(job_id, str(result["index"]), "segments")
        if stage == "merge":
            self._finish(job_id, result)
        elif completion.all_done:
            self._start_merge(job_id)
        else:
            self.notifier.progress(
                job_id, spec.callback_url, completion.done, completion.total, self._data(job_id)
            )
        return {"status": "accepted"}

    def _with_cache_key(
        self, job_id: str, stage: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The payload naming its result-cache digest (``"cache"``), so the engine reads
        the cached result in the round trip that leases the task."""
        _, input_cid, params = self.request_body(Dispatch(job_id, stage, stage, 0, 0.0, payload))
        return {**payload, "cache": cache_digest(stage, input_cid, params)}

    def _as_dispatch(self, job_id: str, task_id: str, result: Mapping[str, Any]) -> Dispatch:
        """Rebuild the request of a finished task from its result (stages echo their inputs)."""
        payload: dict[str, Any] = {}
        for key in ("segment", "renditions", "plan"):
            if key in result:
                payload[key] = result[key]
        if stage_of(task_id) == "transcode":
            # transcode echoes its inputs, so the cache key needs no index lookup
            payload = {
                "segment": result["segment"],
                "start": int(result.get("start_frame", 0)),
                "fps": result.get("fps"),
            }
        return Dispatch(job_id, task_id, stage_of(task_id), 0, 0.0, payload)

    def _prepare_followups(self, job_id: str, task_id: str, result: Mapping[str, Any]) -> None:
        stage = stage_of(task_id)
        if stage == "split":
            segments = list(self.read_index(str(result["index"])))
            if not segments:
                raise InputError("the source has no video frames")
            fps = str(result["source"]["fps"])
            size = [int(result["source"]["width"]), int(result["source"]["height"])]
            payloads = [
                (
                    s.index,
                    {
                        "segment": s.cid,
                        "i": s.index,
                        "start": s.start_frame,
                        "n": s.end_frame - s.start_frame,
                        "fps": fps,
                        "size": size,
                    },
                )
                for s in segments
            ]
            for stage in ("transcode", "thumbnail"):
                self.engine.add_tasks(
                    job_id,
                    stage,
                    ((f"{stage}.{i}", self._with_cache_key(job_id, stage, p)) for i, p in payloads),
                )
        elif stage == "transcode":
            suffix = RERUN_SUFFIX if is_rerun(task_id) else ""
            i = segment_of(task_id)
            payload = {"segment": result["segment"], "renditions": result["renditions"]}
            self.engine.add_tasks(job_id, "checksum", [(f"checksum.{i}{suffix}", payload)])
        elif stage == "checksum" and not result.get("ok") and not is_rerun(task_id):
            i = segment_of(task_id)
            self.engine.emit(job_id, "task.verify_failed", task=task_id)
            first = self.engine.task(job_id, f"transcode.{i}").result or {}
            payload = {
                "segment": result["segment"],
                "i": i,
                "start": int(first.get("start_frame", 0)),
                "fps": first.get("fps"),
            }
            self.engine.add_tasks(job_id, "transcode", [(f"transcode.{i}{RERUN_SUFFIX}", payload)])

    # ----------------------------------------------------------------- index
    def read_index(self, index_cid: str) -> Iterable[SegmentRef]:
        """The segments of a split index (paged DAG-CBOR), in order."""
        index = self.store.dag_get(index_cid)
        for page_link in index["pages"]:
            for entry in self.store.dag_get(str(page_link)):
                yield SegmentRef(
                    index=int(entry["index"]),
                    cid=str(entry["cid"]),
                    start_frame=int(entry["start_frame"]),
                    end_frame=int(entry["end_frame"]),
                )

    def _final_results(self, job_id: str) -> dict[str, dict[int, Mapping[str, Any]]]:
        """Per segment stage and segment, the result of the re-run when there was one,
        else of the first run; ``"reruns"`` maps the re-run segments (one task scan)."""
        chosen: dict[str, dict[int, tuple[bool, Mapping[str, Any]]]] = {
            stage: {} for stage in ("transcode", "checksum", "thumbnail")
        }
        reruns: dict[int, Mapping[str, Any]] = {}
        for info in self.engine.iter_results(job_id):
            per = chosen.get(info.stage)
            if per is None:
                continue
            i, rerun = segment_of(info.task_id), is_rerun(info.task_id)
            if rerun and info.stage == "transcode":
                reruns[i] = {}
            if i not in per or rerun:
                per[i] = (rerun, info.result or {})
        out = {stage: {i: r for i, (_, r) in per.items()} for stage, per in chosen.items()}
        out["reruns"] = reruns
        return out

    def _segment_entries(self, job_id: str) -> tuple[Mapping[str, Any], list[dict[str, Any]]]:
        split = self.engine.task(job_id, "split").result or {}
        final = self._final_results(job_id)
        transcodes, checksums, thumbs = final["transcode"], final["checksum"], final["thumbnail"]
        reruns = final["reruns"]
        entries = []
        for seg in self.read_index(str(split["index"])):
            entries.append(
                build_segment_entry(
                    index=seg.index,
                    start_frame=seg.start_frame,
                    end_frame=seg.end_frame,
                    segment=seg.cid,
                    renditions=dict(transcodes[seg.index]["renditions"]),
                    thumbnail=str(thumbs[seg.index]["thumbnail"]),
                    checksum=checksums[seg.index],
                    attempts=2 if seg.index in reruns else 1,
                    link=self.link,
                )
            )
        return split, entries

    def link(self, cid: str) -> Any:
        """A DAG-CBOR link to ``cid``."""
        from kinoit.store.cid import CID

        return CID.parse(cid)

    # ----------------------------------------------------------------- merge
    def _start_merge(self, job_id: str) -> None:
        split, entries = self._segment_entries(job_id)
        pages = [
            self.link(self.store.dag_put(entries[i : i + PAGE_SIZE]))
            for i in range(0, len(entries), PAGE_SIZE)
        ]
        plan = {
            "source": split.get("source", {}),
            "audio": self.link(str(split["audio"])) if split.get("audio") else None,
            "segment_seconds": self.spec(job_id).segment_seconds,
            "ladder": self.spec(job_id).ladder,
            "pages": pages,
        }
        plan_cid = self.store.dag_put(plan)
        self._hold(job_id, plan_cid, "renditions")
        self.engine.emit(job_id, "job.merge", plan=plan_cid)
        self.engine.add_tasks(job_id, "merge", [("merge", {"plan": plan_cid})])

    def _finish(self, job_id: str, merge_result: Mapping[str, Any]) -> None:
        spec = self.spec(job_id)
        segments = self._plan_pages(merge_result)
        if segments is None:
            split, entries = self._segment_entries(job_id)
            segments = self._manifest_segments(entries)
        else:
            split = self.engine.task(job_id, "split").result or {}
        outputs = {
            "mp4": dict(merge_result["mp4"]),
            "hls": str(merge_result["hls"]),
            "storyboard": merge_result.get("storyboard"),
            "storyboard_vtt": merge_result.get("storyboard_vtt"),
        }
        manifest = build_manifest(
            source={**dict(split["source"]), "cid": spec.source},
            segment_seconds=spec.segment_seconds,
            ladder=list(spec.ladder.get("rungs", [])),
            audio=split.get("audio"),
            segments=segments,
            outputs=outputs,
            link=self.link,
        )
        manifest_cid = self.store.dag_put(manifest)
        self._hold_outputs(job_id, manifest_cid)
        self.cache.put(
            JOB_CACHE_STAGE,
            spec.source,
            spec.reuse_key(),
            {"manifest": manifest_cid, "outputs": outputs},
        )
        self._complete_job(job_id, manifest_cid, outputs)

    def _plan_pages(self, merge_result: Mapping[str, Any]) -> list[Any] | None:
        """A long video's manifest links the very pages of entries its merge plan links
        (same entries, same order, same page size): reuse them rather than rebuild every
        entry from the task results. None for a short video (entries inline) or when
        the plan cannot be read."""
        plan_cid = merge_result.get("plan")
        if not plan_cid:
            return None
        try:
            plan = self.store.dag_get(str(plan_cid))
        except KinoitError:
            return None
        pages = plan.get("pages") if isinstance(plan, dict) else None
        if not isinstance(pages, list) or len(pages) <= 1:
            return None
        return [self.link(str(page)) for page in pages]

    def _manifest_segments(self, entries: list[dict[str, Any]]) -> list[Any]:
        """The entries inline, or for a long video links to pages of them (in order)."""
        entries = sorted(entries, key=lambda e: int(e["index"]))
        if len(entries) <= MANIFEST_INLINE_SEGMENTS:
            return list(entries)
        return [
            self.link(self.store.dag_put(entries[i : i + PAGE_SIZE]))
            for i in range(0, len(entries), PAGE_SIZE)
        ]

    def _complete_job(self, job_id: str, manifest_cid: str, outputs: Mapping[str, Any]) -> None:
        spec = self.spec(job_id)
        try:
            self.engine.complete_job(job_id, manifest=manifest_cid, outputs=outputs)
        except Conflict:
            # Completed by a concurrent finish (keep its pins), or cancelled while
            # merging (keep nothing).
            if self.engine.get_job(job_id).state is not JobState.COMPLETED:
                self.holds.let_go(job_id, manifest_cid)  # kept if another job holds it
                self._release(job_id)
            return
        if not spec.keep_intermediates:
            self._release(job_id)
        self.metrics.job_transition(JobState.COMPLETED.value)
        self.notifier.notify(
            job_id,
            spec.callback_url,
            "job.completed",
            self._data(job_id, manifest=manifest_cid, outputs=dict(outputs)),
        )
        self.promote()

    # ------------------------------------------------------------------ pins
    def _hold(self, job_id: str, cid: str, what: str) -> None:
        """Pin an intermediate DAG (segments, renditions) while the job needs it."""
        self.holds.hold(job_id, cid, f"kinoit-job-{job_id}-{what}")
        # A cancel or failure that released between our check and our hold would
        # leave this pin behind: release again once the job has ended.
        if self.engine.get_job(job_id).state in (JobState.FAILED, JobState.CANCELLED):
            self.holds.release(job_id)

    def _hold_outputs(self, job_id: str, manifest_cid: str) -> None:
        """One recursive pin per job root (the manifest reaches every output), for as
        long as the job asked."""
        self.holds.hold(
            job_id, manifest_cid, f"kinoit-job-{job_id}", until_job_ends=False,
            expire_in=self.spec(job_id).outputs_expire_in,
        )  # fmt: skip

    def _release(self, job_id: str) -> None:
        """Drop the job's holds on intermediates (unpinned when no other job holds them)."""
        self.holds.release(job_id)

    # --------------------------------------------------------------- failure
    def _fail_job(
        self, job_id: str, reason: str, failed_task: Mapping[str, Any] | None = None
    ) -> None:
        try:
            self.engine.fail_job(job_id, reason)
        except Conflict:
            return
        self._after_job_failed(job_id, reason, failed_task)

    def _after_job_failed(
        self, job_id: str, reason: str, failed_task: Mapping[str, Any] | None = None
    ) -> None:
        self._release(job_id)
        self.metrics.job_transition(JobState.FAILED.value)
        failed: list[Mapping[str, Any]] = [
            {"task": t.task_id, "stage": t.stage, "attempt": t.attempt, "reason": t.reason}
            for t in self.engine.iter_tasks(job_id)
            if t.state is TaskState.FAILED
        ]
        if failed_task is not None and not any(f["task"] == failed_task["task"] for f in failed):
            failed.insert(0, dict(failed_task))
        spec = self.spec(job_id)
        self.notifier.notify(
            job_id,
            spec.callback_url,
            "job.failed",
            self._data(job_id, reason=reason, failed_tasks=failed[:50]),
        )
        self.promote()

    # ------------------------------------------------------------------ tick
    def _recover(self, job_id: str) -> None:
        """Resume a running job whose next step was lost (e.g. the store failed right
        after the exactly-once "all done"): the step is re-done once the job has
        looked stuck for ``STUCK_SECONDS``. Every step is idempotent."""
        record = self.engine.get_job(job_id)
        total = record.total
        step = None
        if record.state is JobState.RUNNING and total.total == 0:
            step = "start"
        elif record.state is JobState.RUNNING and total.done == total.total and not total.failed:
            step = "finish" if "merge" in record.counts else "merge"
        if step is None:
            self._stuck.pop(job_id, None)
            return
        now = self.clock()
        first = self._stuck.setdefault(job_id, now)
        if now - first < STUCK_SECONDS:
            return
        self._stuck.pop(job_id, None)
        log.warning("job %s looked stuck; redoing its %s step", job_id, step)
        self.engine.emit(job_id, "job.recovered", step=step)
        if step == "start":
            self._first_stage(job_id)
        elif step == "merge":
            self._start_merge(job_id)
        else:
            self._finish(job_id, self.engine.task(job_id, "merge").result or {})

    def tick(self, deliver: bool = True) -> dict[str, Any]:
        """Sweep expired leases, start queued jobs, refill windows, then (``deliver``)
        send the due webhooks."""
        report = self.engine.sweep()
        for d in report.dispatches:
            self.send(d)
        for job_id in report.failed_jobs:
            record = self.engine.get_job(job_id)
            self._after_job_failed(job_id, record.error or "a task ran out of attempts")
        self.promote()
        running = [
            x.decode() if isinstance(x, bytes) else str(x)
            for x in self.engine.redis.smembers(keys.JOBS_RUNNING_KEY)
        ]
        for job_id in running:
            with contextlib.suppress(NotFound, Conflict):
                self._recover(job_id)
                self.pump(job_id)
        if deliver:
            self.notifier.drain()
        return {
            "redispatched": len(report.dispatches),
            "expired": report.expired,
            "failed_jobs": report.failed_jobs,
            "running": len(running),
        }
