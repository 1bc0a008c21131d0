"""The pipeline: what orchestrate does when a job starts, when a function's result
(or failure) calls back, and on each tick.

    split ──▶ per segment i: transcode.i ──▶ checksum.i      (gate: a mismatch re-runs
                             thumbnail.i                      transcode.i once as .r2)
          last completion ──▶ merge.<rung> (exactly once, in parallel) ──▶ merge ──▶ manifest

The parts it drives, each in its own module:

- :mod:`~kinoit.service.planning` (pure): task ids, request bodies, cache keys,
  follow-up tasks, failure reasons;
- :mod:`~kinoit.service.dispatch`: the in-flight window, cache replay, the POST;
- :mod:`~kinoit.service.job_end`: merge plan, manifest, pins, completed / failed;
- :mod:`kinoit.documents`: the split index, merge plan and paged lists.

Every follow-up task is added *before* the completion that causes it is
recorded, so the engine's "all done" fires only when a phase really is
finished, exactly once. Every state change goes through the engine's atomic
scripts, so any number of orchestrate replicas (and duplicate, late or
out-of-order callbacks) are safe.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import requests

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.documents import read_split_index
from kinoit.errors import Conflict, InputError, InvalidParameter, KinoitError, NotFound
from kinoit.jobs import Dispatch, JobEngine, JobState, ResultCache, TaskState, canonical_json, keys
from kinoit.jobs.effects import StoreValue
from kinoit.service.direct import direct_followups, segment_step
from kinoit.service.dispatch import BoundedMemo, Dispatcher, Post
from kinoit.service.job_end import JobEnd
from kinoit.service.merge_tasks import is_rung_task
from kinoit.service.planning import (
    JOB_CACHE_STAGE,
    FollowUps,
    failed_task,
    failure_reason,
    fanout,
    is_rerun,
    payload_from_result,
    request_for,
    rerun_followup,
    segment_of,
    split_followups,
    stage_of,
)
from kinoit.service.ports import Metrics, Notifier
from kinoit.service.results import check_result
from kinoit.service.spec import JobSpec
from kinoit.stages.http import parse_json_object
from kinoit.webhooks import WebhookEvent

log = logging.getLogger(__name__)

# A running job whose next step is missing this long gets that step re-done by tick.
STUCK_SECONDS = 30.0

Outcome = dict[str, Any]


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
        self.clock = clock
        self._specs: BoundedMemo = BoundedMemo()
        self._stuck: BoundedMemo = BoundedMemo()
        self.dispatch = Dispatcher(
            settings, engine, cache, store, metrics, callback_secret, post,
            clock=lambda: self.clock(), spec=self.spec, replay=self._replay,
        )  # fmt: skip
        self.end = JobEnd(
            engine, cache, store, notifier, metrics, spec=self.spec, data=self._data,
            promote=self.promote, points=settings.failpoints,
        )  # fmt: skip
        self.callback_base = self.dispatch.callback_base

    # ------------------------------------------------------------------ jobs
    def spec(self, job_id: str) -> JobSpec:
        """The job's validated spec (cached; specs never change)."""
        cached = self._specs.get(job_id)
        if cached is None:
            record = self.engine.get_job(job_id)
            cached = JobSpec.from_dict(record.spec, record.metadata)
            self._specs[job_id] = cached
        return cached

    def _data(self, job_id: str, **extra: Any) -> dict[str, Any]:
        """The data of a job's webhook event."""
        data: dict[str, Any] = {"job_id": job_id}
        metadata = self.spec(job_id).metadata
        if metadata:
            data["metadata"] = metadata
        data.update(extra)
        return data

    def submit(self, spec: JobSpec) -> str:
        """Queue a job; start it when a slot is free."""
        job_id = self.engine.create_job(spec.to_dict(), spec.metadata)
        self._specs[job_id] = spec
        self.metrics.job_transition(JobState.QUEUED.value)
        self.notifier.notify(
            job_id, spec.callback_url, WebhookEvent.JOB_ACCEPTED, self._data(job_id)
        )
        try:
            self.promote()
        except KinoitError as exc:
            # The job is recorded: the tick starts it (or re-does its lost first step),
            # so the client gets its id rather than an error inviting a duplicate submit.
            log.warning("job %s accepted but not started yet: %s", job_id, exc)
        return job_id

    def promote(self) -> None:
        """Start queued jobs while slots are free."""
        for job_id in self.engine.promote():
            self.start_job(job_id)

    def start_job(self, job_id: str) -> None:
        """First stage of a freshly started job, or its cached result."""
        spec = self.spec(job_id)
        self.metrics.job_transition(JobState.RUNNING.value)
        self.notifier.notify(
            job_id, spec.callback_url, WebhookEvent.JOB_STARTED, self._data(job_id)
        )
        self._first_stage(job_id)

    def _first_stage(self, job_id: str) -> None:
        """Complete from the job-level cache, or add the split task and dispatch it."""
        spec = self.spec(job_id)
        cached = self.cache.get(JOB_CACHE_STAGE, spec.source, spec.reuse_key())
        # an entry from before outputs had one UnixFS directory is made again, once
        has_directory = bool(dict((cached or {}).get("outputs") or {}).get("directory"))
        if cached and has_directory and self.dispatch.have(cached.get("manifest")):
            manifest = str(cached["manifest"])
            self.engine.emit(job_id, "job.reused", manifest=manifest)
            # this job's outputs are pinned for this job too (the first job's pin may be
            # gone, or expire sooner than this job asks)
            self.end.hold_outputs(job_id, manifest)
            self.end.complete_job(job_id, manifest, dict(cached.get("outputs") or {}))
            return
        # a long source is planned in ranges of about this many seconds (split_followups)
        seconds, direct = self.settings.split_range_seconds, self.settings.transcode_range_seconds
        payload = {"range_seconds": f"{seconds:g}"} if seconds else {}
        if direct:  # or transcoded directly, in ranges of about this many seconds
            payload["transcode_range_seconds"] = f"{direct:g}"
        self.engine.add_tasks(job_id, "split", [("split", payload or None)])
        self.pump(job_id)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (Conflict when it already ended, after
        finishing what that end still owes)."""
        self.end.endings.owe(job_id)
        failpoints.hit(self.end.points, "job_end.owed")
        try:
            report = self.engine.cancel(job_id)
        except Conflict:
            # already ended: still 409, but what that end owes (its webhook, the
            # release of its holds) is finished now, so a repeated DELETE cleans up
            self.end.settle(job_id)
            raise
        failpoints.hit(self.end.points, "job_end.ended")
        self.metrics.job_transition(JobState.CANCELLED.value)
        self.end.settle(job_id)
        self.promote()
        return {
            "job_id": job_id,
            "state": JobState.CANCELLED.value,
            "previous_state": report.previous_state.value,
            "released": len(report.released),
        }

    def pump(self, job_id: str, freed: int | None = None) -> None:
        """Fill the job's in-flight window (see :meth:`Dispatcher.pump`)."""
        self.dispatch.pump(job_id, freed)

    def pump_if_running(self, job_id: str) -> None:
        """Refill the window and start the next queued jobs."""
        with contextlib.suppress(NotFound):
            self.pump(job_id)
        self.promote()

    def _replay(self, d: Dispatch, cached: dict[str, Any]) -> None:
        """A leased task answered from the result cache: recorded as its own result."""
        self.on_result(d.job_id, d.task_id, d.attempt, cached, from_cache=True)

    # ------------------------------------------------------------- callbacks
    def on_callback(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        status: int,
        body: bytes,
        duration: float | None = None,
    ) -> Outcome:
        """A function's result arrived (duplicates and stale attempts are harmless).

        ``duration`` is the queue-worker's ``X-Duration-Seconds`` (the function's own
        run time, whichever replica dispatched the task)."""
        if duration is not None and 0.0 <= duration < 1e6:  # also rejects NaN
            self.dispatch.started(job_id, task_id, seconds_ago=duration)
        if 200 <= status < 300:
            result: dict[str, Any] | None = None
            try:
                parsed = parse_json_object(body, "result")
                check_result(stage_of(task_id), parsed)
                result, shape_error = parsed, ""
            except InvalidParameter as exc:
                shape_error = exc.message
            if result is not None:
                # one slot freed: leased in the same round trip as the result when the
                # stage allows (a split opens the whole fan-out instead)
                outcome, leased = self._on_result(job_id, task_id, attempt, result, lease=1)
                if outcome["status"] == "accepted":
                    with contextlib.suppress(NotFound, Conflict):
                        if leased is None:
                            self.pump(job_id, None if stage_of(task_id) == "split" else 1)
                        elif self.dispatch.send_all(leased):
                            self.pump(job_id)  # cache hits freed more room
                return outcome
            reason, retryable = f"function returned a malformed result: {shape_error}", True
        else:
            reason, retryable = failure_reason(status, body)
        outcome = self.on_failure(job_id, task_id, attempt, reason, retryable)
        self.pump_if_running(job_id)
        return outcome

    def on_failure(
        self, job_id: str, task_id: str, attempt: int, reason: str, retryable: bool
    ) -> Outcome:
        """A task attempt failed: retry with backoff, or fail the job."""
        stage = stage_of(task_id)
        self.metrics.task_finished(stage, "failed", self.dispatch.elapsed(job_id, task_id))
        if not retryable:
            try:
                info = self.engine.task(job_id, task_id)
            except NotFound:
                return {"status": "ignored", "reason": "unknown task"}
            if info.state is not TaskState.LEASED or info.attempt != attempt:
                return {"status": "ignored", "reason": "stale attempt"}
            failed = failed_task(task_id, attempt, reason)
            self.end.fail_job(job_id, f"{task_id}: {reason}", failed)
            return {"status": "job_failed", "reason": reason}
        outcome = self.engine.fail(job_id, task_id, attempt, reason)
        if outcome.job_failed:
            self.end.after_job_failed(job_id, outcome.reason or reason)
            return {"status": "job_failed", "reason": outcome.reason}
        if outcome.ignored:
            return {"status": "ignored", "reason": outcome.reason}
        return {"status": "retry", "next_attempt": outcome.next_attempt}

    def on_result(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        result: Mapping[str, Any],
        from_cache: bool = False,
    ) -> Outcome:
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
    ) -> tuple[Outcome, list[Dispatch] | None]:
        """:meth:`on_result`, also leasing up to ``lease`` next tasks in the same round
        trip when the stage allows; the leased tasks are returned for sending, or None
        when the caller refills the window itself."""
        stage = stage_of(task_id)
        if stage in ("transcode", "thumbnail") or (stage == "checksum" and result.get("ok")):
            return self._on_segment_result(job_id, task_id, attempt, result, from_cache, lease)
        return self._on_special_result(job_id, task_id, attempt, result, from_cache), None

    def _cache_digest(self, job_id: str, task_id: str, result: Mapping[str, Any]) -> str:
        """The result-cache digest of a finished task, from its result."""
        stage = stage_of(task_id)
        payload = payload_from_result(task_id, result)
        return request_for(self.spec(job_id), stage, payload).cache_digest(stage)

    def _on_segment_result(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        result: Mapping[str, Any],
        from_cache: bool,
        lease: int,
    ) -> tuple[Outcome, list[Dispatch] | None]:
        """A segment task's result (its follow-ups need no store read): check, add the
        follow-up, record, count, cache and lease the next tasks in one engine call."""
        stage = stage_of(task_id)
        try:
            # what it records, the checksum a transcode unlocks, the tasks a range settles
            split = partial(self.engine.task, job_id, "split")
            stored, followups, settled = segment_step(self.spec(job_id), task_id, result, split)
            # counted and cached only if accepted (the engine applies these effects then)
            seconds = self.dispatch.elapsed(job_id, task_id, forget=False)
            effects = self.metrics.task_finished_effects(stage, "done", seconds)
            if not from_cache:
                key = keys.CACHE_KEY.format(digest=self._cache_digest(job_id, task_id, result))
                effects.append(StoreValue(key, canonical_json(dict(result))))
        except KinoitError as exc:
            return self.on_failure(job_id, task_id, attempt, str(exc), exc.retryable), None
        # a segment's checksum goes ahead of the rest of the fan-out: verified segments
        # are what the preview plays, from segment 0 on
        completion, leased = self.engine.complete_step(
            job_id, task_id, attempt, stored, followups, effects, lease=lease,
            followups_first=True, settled=settled,
        )  # fmt: skip
        if not completion.accepted:
            if completion.duplicate:
                return {"status": "duplicate"}, []
            return {"status": "ignored", "reason": completion.reason}, []
        self.dispatch.elapsed(job_id, task_id)  # forget when it started
        if completion.all_done:
            self.dispatch.send_all(leased)  # empty: nothing is pending when all is done
            self.end.start_merge(job_id)
            with contextlib.suppress(NotFound, Conflict):
                self.pump(job_id)  # every rung's merge task
            return {"status": "accepted"}, []
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
    ) -> Outcome:
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
        mismatch = stage == "checksum" and not result.get("ok")
        try:
            self._add_followups(job_id, task_id, result)
        except Conflict:
            return {"status": "ignored", "reason": "job has ended"}
        except KinoitError as exc:
            return self.on_failure(job_id, task_id, attempt, str(exc), exc.retryable)
        completion = self.engine.complete(job_id, task_id, attempt, result)
        if not completion.accepted:
            return {"status": "duplicate" if completion.duplicate else "ignored"}
        pipe = self.engine.redis.pipeline(transaction=False)
        seconds = self.dispatch.elapsed(job_id, task_id)
        self.metrics.task_finished(stage, "done", seconds, pipe=pipe)
        if not from_cache and not mismatch:
            key = keys.CACHE_KEY.format(digest=self._cache_digest(job_id, task_id, result))
            pipe.set(key, canonical_json(dict(result)))
        pipe.execute()
        if mismatch:
            self.metrics.verification_failed()
            if is_rerun(task_id):
                reason = (
                    f"verification failed: segment {segment_of(task_id)}: {result.get('reason')}"
                )
                self.end.fail_job(job_id, reason, failed_task(task_id, attempt, reason))
                return {"status": "job_failed"}
        if stage == "split":
            self.end.hold(job_id, str(result["index"]), "segments")
        if stage == "merge" and (completion.all_done or not is_rung_task(task_id)):
            self.end.merged(job_id, task_id, result)  # the final task, or the job's end
        elif completion.all_done:
            self.end.start_merge(job_id)
        else:
            spec = self.spec(job_id)
            self.notifier.progress(
                job_id, spec.callback_url, completion.done, completion.total, self._data(job_id)
            )
        return {"status": "accepted"}

    def _add_followups(self, job_id: str, task_id: str, result: Mapping[str, Any]) -> None:
        """The tasks a split or a first checksum mismatch unlocks, added to the job."""
        stage = stage_of(task_id)
        followups: FollowUps = []
        if stage == "split" and result.get("ranges"):  # planned: the ranges split it
            followups = split_followups(self.spec(job_id), result)
        elif stage == "split" and result.get("direct"):  # planned: transcoded from the source
            followups = direct_followups(self.spec(job_id), result)
        elif stage == "split":
            segments = list(read_split_index(self.store, str(result["index"])))
            if not segments and task_id == "split":
                raise InputError("the source has no video frames")
            followups = fanout(self.spec(job_id), segments, result["source"]) if segments else []
        elif stage == "checksum" and not result.get("ok") and not is_rerun(task_id):
            self.engine.emit(job_id, "task.verify_failed", task=task_id)
            first = self.engine.task(job_id, f"transcode.{segment_of(task_id)}").result or {}
            followups = rerun_followup(task_id, result, first)
        for follow_stage, tasks in followups:
            self.engine.add_tasks(job_id, follow_stage, tasks)

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
            step = self.end.merge_step(job_id)
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
            self.end.start_merge(job_id)
        elif step == "final":
            self.end.start_final_merge(job_id)
        else:
            self.end.finish(job_id, self.engine.task(job_id, "merge").result or {})

    def tick(self, deliver: bool = True) -> dict[str, Any]:
        """Sweep expired leases, start queued jobs, refill windows, then (``deliver``)
        send the due webhooks."""
        report = self.engine.sweep()
        for d in report.dispatches:
            self.dispatch.send_all([d])
        for job_id in report.failed_jobs:
            record = self.engine.get_job(job_id)
            self.end.after_job_failed(job_id, record.error or "a task ran out of attempts")
        self.promote()
        # ends a crashed process left half done: webhook owed, holds still held
        self.end.settle_owed()
        running = self.engine.running_jobs()
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
