"""The end of a job: the merge plan once every segment is done, the manifest once
merge is, the pins (intermediates held while the job runs, one pin per job root
after), and the last word — completed, failed — with its webhook.

    last segment done ──▶ merge plan ──▶ merge.<rung> (each rung, in parallel) ──▶ merge
                      ──▶ manifest ──▶ pin ──▶ job.completed
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from kinoit import documents, failpoints
from kinoit.documents import link, read_split_index, write_merge_plan, write_pages
from kinoit.errors import Conflict, KinoitError, NotFound
from kinoit.jobs import JobEngine, JobState, ResultCache, TaskState
from kinoit.manifest import build_manifest, build_segment_entry
from kinoit.service.endings import Endings
from kinoit.service.holds import PinHolds
from kinoit.service.merge_tasks import (
    FINAL_MERGE,
    MEDIA_TASK,
    final_task,
    is_rung_task,
    plan_rungs,
    rung_task,
    rung_tasks,
)
from kinoit.service.planning import (
    JOB_CACHE_STAGE,
    SEGMENT_STAGES,
    audio_task,
    is_rerun,
    segment_of,
    split_tasks,
)
from kinoit.service.ports import Metrics, Notifier
from kinoit.service.spec import JobSpec
from kinoit.webhooks import WebhookEvent, build_payload, new_message_id

# The webhook each end state sends.
_END_EVENTS = {
    JobState.COMPLETED: WebhookEvent.JOB_COMPLETED,
    JobState.FAILED: WebhookEvent.JOB_FAILED,
    JobState.CANCELLED: WebhookEvent.JOB_CANCELLED,
}
# Manifests of up to this many segments list them inline; longer ones link pages.
MANIFEST_INLINE_SEGMENTS = documents.PAGE_SIZE

EventData = Callable[..., dict[str, Any]]


class JobEnd:
    """Merge, manifest, holds and the end of a job (completed or failed)."""

    def __init__(
        self,
        engine: JobEngine,
        cache: ResultCache,
        store: Any,
        notifier: Notifier,
        metrics: Metrics,
        spec: Callable[[str], JobSpec],
        data: EventData,
        promote: Callable[[], None],
        points: failpoints.Failpoints | None = None,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.store = store
        self.notifier = notifier
        self.metrics = metrics
        self.spec = spec
        self.data = data
        self.promote = promote
        self.holds = PinHolds(engine.redis, store)
        self.endings = Endings(engine.redis)
        self.points: failpoints.Failpoints = points or {}

    # --------------------------------------------------------- segment entries
    def _final_results(self, job_id: str) -> dict[str, dict[int, Mapping[str, Any]]]:
        """Per segment stage and segment, the result of the re-run when there was one,
        else of the first run; ``"reruns"`` maps the re-run segments (one task scan)."""
        chosen: dict[str, dict[int, tuple[bool, Mapping[str, Any]]]] = {
            stage: {} for stage in SEGMENT_STAGES
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

    def segment_entries(self, job_id: str) -> tuple[Mapping[str, Any], list[dict[str, Any]]]:
        """The split result and the manifest entry of every segment, in order."""
        split = self.split_result(job_id)
        final = self._final_results(job_id)
        transcodes, checksums, thumbs = final["transcode"], final["checksum"], final["thumbnail"]
        reruns = final["reruns"]
        entries = [
            build_segment_entry(
                index=seg.index,
                start_frame=seg.start_frame,
                end_frame=seg.end_frame,
                segment=seg.cid,
                renditions=dict(transcodes[seg.index]["renditions"]),
                thumbnail=str(thumbs[seg.index]["thumbnail"]),
                checksum=checksums[seg.index],
                attempts=2 if seg.index in reruns else 1,
                link=link,
            )
            for task_id in split_tasks(split)
            for seg in read_split_index(self.store, self._index_of(job_id, task_id, split))
        ]
        return split, entries

    def _index_of(self, job_id: str, task_id: str, split: Mapping[str, Any]) -> str:
        result = split if task_id == "split" else self.engine.task(job_id, task_id).result
        return str((result or {})["index"])

    def split_result(self, job_id: str) -> dict[str, Any]:
        """The first split task's result, with the audio of the task that encoded it
        (``split.audio`` when the split ran in ranges)."""
        split = dict(self.engine.task(job_id, "split").result or {})
        audio = audio_task(split)
        if audio is None:
            split["audio"] = None
        elif audio != "split":
            split["audio"] = (self.engine.task(job_id, audio).result or {}).get("audio")
        return split

    # ------------------------------------------------------------------ merge
    def start_merge(self, job_id: str) -> None:
        """Write the merge plan, hold the renditions, add one merge task per rung (the
        final ``merge`` task follows them: :meth:`merged`)."""
        split, entries = self.segment_entries(job_id)
        spec = self.spec(job_id)
        plan_cid = write_merge_plan(
            self.store,
            entries,
            source=split.get("source", {}),
            audio=str(split["audio"]) if split.get("audio") else None,
            segment_seconds=spec.segment_seconds,
            ladder=spec.ladder,
        )
        self.hold(job_id, plan_cid, "renditions")
        self.engine.emit(job_id, "job.merge", plan=plan_cid)
        rungs = plan_rungs(entries[0]["renditions"] if entries else {})
        self.engine.add_tasks(job_id, "merge", rung_tasks(plan_cid, rungs))

    def merged(self, job_id: str, task_id: str, result: Mapping[str, Any]) -> None:
        """A merge task's result that moves the job on: the final one's ends the job, the
        last rung's (the completion that made every task done) adds the final task."""
        if is_rung_task(task_id):
            self.start_final_merge(job_id)
        else:
            self.finish(job_id, result)

    def start_final_merge(self, job_id: str) -> None:
        """Add the final ``merge`` task over every rung task's result (idempotent)."""
        rungs = self.merge_rungs(job_id)
        results = {r: self.engine.task(job_id, rung_task(r)).result or {} for r in rungs}
        try:
            media: Mapping[str, Any] | None = self.engine.task(job_id, MEDIA_TASK).result or {}
        except NotFound:  # a merge started before the media part existed
            media = None
        plan_cid = str(results[rungs[0]]["plan"])
        self.engine.emit(job_id, "job.merge_final", plan=plan_cid)
        self.engine.add_tasks(job_id, "merge", final_task(plan_cid, results, media))

    def merge_rungs(self, job_id: str) -> list[str]:
        """The rungs the job's merge plan merges: segment 0's renditions (its transcode's
        result; a re-run makes the same rungs)."""
        return plan_rungs(
            dict((self.engine.task(job_id, "transcode.0").result or {})["renditions"])
        )

    def merge_step(self, job_id: str) -> str:
        """What a job whose every task is done still needs: "merge" (the rung tasks),
        "final" (the final task) or "finish" (the manifest, from the final's result)."""
        first = rung_task(self.merge_rungs(job_id)[0])
        for task_id, step in ((FINAL_MERGE, "finish"), (first, "final")):
            try:
                self.engine.task(job_id, task_id)
            except NotFound:
                continue
            return step
        return "merge"

    # --------------------------------------------------------------- manifest
    def finish(self, job_id: str, merge_result: Mapping[str, Any]) -> None:
        """Build and store the manifest, pin it, cache the job, complete the job."""
        spec = self.spec(job_id)
        segments = self._plan_pages(merge_result)
        if segments is None:
            split, entries = self.segment_entries(job_id)
            segments = self._manifest_segments(entries)
        else:
            split = self.split_result(job_id)
        outputs = {
            "mp4": dict(merge_result["mp4"]),
            "hls": str(merge_result["hls"]),
            "storyboard": merge_result.get("storyboard"),
            "storyboard_vtt": merge_result.get("storyboard_vtt"),
            # the one UnixFS directory of every output, as `kinoit run --out` lays it out
            "directory": merge_result.get("directory"),
        }
        manifest = build_manifest(
            source={**dict(split["source"]), "cid": spec.source},
            segment_seconds=spec.segment_seconds,
            ladder=list(spec.ladder.get("rungs", [])),
            audio=split.get("audio"),
            segments=segments,
            outputs=outputs,
            link=link,
        )
        manifest_cid = self.store.dag_put(manifest)
        self.hold_outputs(job_id, manifest_cid)
        self.cache.put(
            JOB_CACHE_STAGE,
            spec.source,
            spec.reuse_key(),
            {"manifest": manifest_cid, "outputs": outputs},
        )
        self.complete_job(job_id, manifest_cid, outputs)

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
        return [link(str(page)) for page in pages]

    def _manifest_segments(self, entries: list[dict[str, Any]]) -> list[Any]:
        """The entries inline, or for a long video links to pages of them (in order)."""
        entries = sorted(entries, key=lambda e: int(e["index"]))
        if len(entries) <= MANIFEST_INLINE_SEGMENTS:
            return list(entries)
        return write_pages(self.store, entries, documents.PAGE_SIZE)

    def complete_job(self, job_id: str, manifest_cid: str, outputs: Mapping[str, Any]) -> None:
        """Record the job as completed and tell the client (once), crash-safe: the end
        is owed before the transition and settled after it (see :mod:`endings`)."""
        self.endings.owe(job_id, manifest=manifest_cid)
        failpoints.hit(self.points, "job_end.owed")
        try:
            self.engine.complete_job(job_id, manifest=manifest_cid, outputs=outputs)
        except Conflict:
            # Completed by a concurrent finish (keep its pins), or cancelled while
            # merging (keep nothing): the settling knows which from the state.
            self.settle(job_id)
            return
        failpoints.hit(self.points, "job_end.ended")
        self.metrics.job_transition(JobState.COMPLETED.value)
        self.settle(job_id)
        self.promote()

    def settle(self, job_id: str) -> bool:
        """Finish what the end of ``job_id`` owes, whichever process began it: the end
        webhook (queued at most once, so re-running keeps its ``webhook-id``), then the
        release of its holds; False when the job has not ended (nothing done yet).
        Every step is idempotent."""
        record = self.engine.get_job(job_id)
        if record.state not in _END_EVENTS:
            return False
        spec = self.spec(job_id)
        if spec.callback_url:
            if record.state is JobState.COMPLETED:
                data = self.data(
                    job_id, manifest=record.manifest, outputs=dict(record.outputs or {})
                )
            elif record.state is JobState.FAILED:
                reason = record.error or "failed"
                data = self.data(
                    job_id, reason=reason,
                    failed_tasks=self._failed_tasks(job_id, self.endings.failed_task(job_id)),
                )  # fmt: skip
            else:
                data = self.data(job_id)
            event = _END_EVENTS[record.state]
            now = time.time()
            body = json.dumps(build_payload(event, job_id, data, now), separators=(",", ":"))
            self.endings.queue_webhook(job_id, spec.callback_url, body, event, new_message_id(now))
        failpoints.hit(self.points, "job_end.webhook_queued")
        if record.state is JobState.COMPLETED:
            if not spec.keep_intermediates:
                self.release(job_id)
        else:
            self.release(job_id)
            manifest = self.endings.record(job_id).get("manifest")
            if manifest:  # an output root held for a completion that did not happen
                self.holds.let_go(job_id, manifest)  # kept if another job holds it
        self.endings.settled(job_id)
        return True

    def settle_owed(self) -> int:
        """Settle every owed end whose process is gone (the tick); how many were."""
        settled = 0
        for job_id in self.endings.due():
            try:
                settled += self.settle(job_id)
            except NotFound:  # the job expired or never existed: nothing is owed
                self.endings.settled(job_id)
        return settled

    def _failed_tasks(
        self, job_id: str, failed_task: Mapping[str, Any] | None
    ) -> list[Mapping[str, Any]]:
        failed: list[Mapping[str, Any]] = [
            {"task": t.task_id, "stage": t.stage, "attempt": t.attempt, "reason": t.reason}
            for t in self.engine.iter_tasks(job_id)
            if t.state is TaskState.FAILED
        ]
        if failed_task is not None and not any(f["task"] == failed_task["task"] for f in failed):
            failed.insert(0, dict(failed_task))
        return failed[:50]

    # ------------------------------------------------------------------- pins
    def hold(self, job_id: str, cid: str, what: str) -> None:
        """Pin an intermediate DAG (segments, renditions) while the job needs it."""
        self.holds.hold(job_id, cid, f"kinoit-job-{job_id}-{what}")
        # A cancel or failure that released between our check and our hold would
        # leave this pin behind: release again once the job has ended.
        if self.engine.get_job(job_id).state in (JobState.FAILED, JobState.CANCELLED):
            self.holds.release(job_id)

    def hold_outputs(self, job_id: str, manifest_cid: str) -> None:
        """One recursive pin per job root (the manifest reaches every output), for as
        long as the job asked."""
        self.holds.hold(
            job_id, manifest_cid, f"kinoit-job-{job_id}", until_job_ends=False,
            expire_in=self.spec(job_id).outputs_expire_in,
        )  # fmt: skip

    def release(self, job_id: str) -> None:
        """Drop the job's holds on intermediates (unpinned when no other job holds them)."""
        self.holds.release(job_id)

    # ---------------------------------------------------------------- failure
    def fail_job(
        self, job_id: str, reason: str, failed_task: Mapping[str, Any] | None = None
    ) -> None:
        """Fail a running job (when it already ended, only settle what it owes)."""
        self.endings.owe(job_id, failed_task=failed_task)
        failpoints.hit(self.points, "job_end.owed")
        try:
            self.engine.fail_job(job_id, reason)
        except Conflict:
            self.settle(job_id)
            return
        failpoints.hit(self.points, "job_end.ended")
        self.after_job_failed(job_id, reason, failed_task)

    def after_job_failed(
        self, job_id: str, reason: str, failed_task: Mapping[str, Any] | None = None
    ) -> None:
        """Release what the failed job held and send job.failed with its failed tasks."""
        self.endings.owe(job_id, failed_task=failed_task)  # a crash in settle is retried
        self.metrics.job_transition(JobState.FAILED.value)
        self.settle(job_id)
        self.promote()
