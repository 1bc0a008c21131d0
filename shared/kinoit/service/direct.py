"""The direct transcode's fan-out and completion (pure; the plan's parts are in
:mod:`kinoit.service.direct_plan`): the range tasks a direct plan adds, and what the
result of one range task does when it is recorded — the other segments' transcode
tasks and every segment's thumbnail task settled with it, and one checksum per
segment added."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kinoit.errors import MediaError
from kinoit.service.direct_plan import check_range_result, range_payloads, segment_result
from kinoit.service.planning import (
    AUDIO_TASK,
    FollowUps,
    Payload,
    checksum_followup,
    is_rerun,
    segment_of,
    stage_of,
    stored_result,
    with_cache_key,
)
from kinoit.service.spec import JobSpec

# (stage, [(task id, result), ...]) recorded done with a range's result.
Settled = list[tuple[str, list[tuple[str, Mapping[str, Any]]]]]


def direct_followups(spec: JobSpec, split: Mapping[str, Any]) -> FollowUps:
    """The audio task, then one transcode task per range of a direct plan (the audio
    first: the preview waits for it, and for a long source it is the longest task)."""
    tasks: FollowUps = []
    if split.get("audio_part"):
        audio: dict[str, Any] = {"part": "audio"}
        if any(r.get("vfr") for r in split["direct"]):
            # the resampled frames, counted by the plan: the audio task need not again
            audio["frames"] = int(split["source"]["frames"])
        tasks.append(("split", [(AUDIO_TASK, with_cache_key(spec, "split", audio))]))
    ranges: list[tuple[str, Payload | None]] = [
        (tid, with_cache_key(spec, "transcode", p)) for tid, p in range_payloads(split)
    ]
    return [*tasks, ("transcode", ranges)]


def range_completion(
    spec: JobSpec, task_id: str, result: Mapping[str, Any], split: Mapping[str, Any]
) -> tuple[dict[str, Any], FollowUps, Settled]:
    """For the result of range task ``task_id`` (checked against the split's plan
    ``split``): what the task itself records (its first segment's result), the
    checksum of every segment, and the tasks settled with it (the transcode of every
    other segment, the thumbnail of every segment; a re-run settles none)."""
    if not split.get("direct"):
        raise MediaError(f"{task_id}: a range result, but the split planned no direct transcode")
    first, rerun = segment_of(task_id), is_rerun(task_id)
    check_range_result(split, first, result, single=rerun)
    suffix = task_id[len(f"transcode.{first}") :]
    own: dict[str, Any] = {}
    followups: FollowUps = []
    settled: Settled = [("transcode", []), ("thumbnail", [])]
    for seg in result["segments"]:
        k = int(seg["index"])
        per = segment_result(split, result, seg)
        followups += checksum_followup(spec, f"transcode.{k}{suffix}", per, cache_key=True)
        if k == first:
            own = stored_result("transcode", per)
        else:
            settled[0][1].append((f"transcode.{k}", stored_result("transcode", per)))
        if not rerun:
            thumb = {"thumbnail": str(seg["thumbnail"])}
            settled[1][1].append((f"thumbnail.{k}", thumb))
    return own, followups, [group for group in settled if group[1]]


def segment_step(
    spec: JobSpec, task_id: str, result: Mapping[str, Any], split: Callable[[], Any]
) -> tuple[dict[str, Any], FollowUps, Settled]:
    """What a segment task's result records, the follow-ups it adds (a transcode's
    checksum) and the tasks it settles (a direct range's, :func:`range_completion`;
    ``split`` reads the split task, only then)."""
    stage = stage_of(task_id)
    if stage == "transcode" and result.get("range") is not None:
        return range_completion(spec, task_id, result, split().result or {})
    if stage == "transcode":
        followups = checksum_followup(spec, task_id, result, cache_key=True)
        return stored_result(stage, result), followups, []
    return stored_result(stage, result), [], []
