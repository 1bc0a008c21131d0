"""What the pipeline plans, as pure functions: the stage table, task ids, the
request each task sends, its result-cache key, the follow-up tasks a result
unlocks, and the reason text of a failure. No Redis, no store, no HTTP.

Task ids name the work: ``split`` (and, for a long source it plans in ranges,
``split.<r>`` per range and ``split.audio``), ``transcode.<i>`` (for a direct
transcode, ``transcode.<a>`` transcodes the range of segments from ``a``; see
:mod:`kinoit.service.direct_plan`), ``thumbnail.<i>``,
``checksum.<i>``, ``transcode.<i>.r2`` / ``checksum.<i>.r2`` after a checksum
mismatch, ``merge.<rung>`` per rung, ``merge._media`` and the final ``merge``
(service/merge_tasks.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kinoit.documents import SegmentRef
from kinoit.errors import InputError
from kinoit.jobs import cache_digest
from kinoit.media.checksum import VERIFIER
from kinoit.service.direct_plan import direct_body
from kinoit.service.spec import JobSpec

# Which OpenFaaS function runs each stage.
STAGE_FUNCTIONS = {
    "split": "split",
    "transcode": "transcode-segment",
    "thumbnail": "thumbnail",
    "checksum": "checksum",
    "merge": "merge",
}
# The stages that run once per segment.
SEGMENT_STAGES = ("transcode", "checksum", "thumbnail")
# The task that encodes the audio of a split in ranges.
AUDIO_TASK = "split.audio"
# The suffix of a verification re-run.
RERUN_SUFFIX = ".r2"
# Job-level reuse: results recorded under this pseudo-stage in the result cache.
JOB_CACHE_STAGE = "job"
# Result fields that name a single output CID (checked before a cached result is reused).
OUTPUT_KEYS = (
    "index", "audio", "thumbnail", "hls", "hls_dir", "storyboard", "storyboard_vtt", "directory",
    "audio_hls", "audio_dir", "thumbs_dir",
)  # fmt: skip
# Fields a segment task's result echoes from its request, by stage: not stored with the
# task (the split index, the transcode result and the cache key already have them).
ECHOED = {
    "transcode": ("segment",),
    "thumbnail": ("segment",),
    "checksum": ("segment", "renditions"),
}

Payload = Mapping[str, Any]
# (task id, payload) pairs for JobEngine.add_tasks, grouped by stage.
FollowUps = list[tuple[str, list[tuple[str, Payload | None]]]]


def stage_of(task_id: str) -> str:
    """The stage of a task id (its first dotted part)."""
    return task_id.split(".", 1)[0]


def segment_of(task_id: str) -> int:
    """The segment index in ``transcode.<i>[.r2]``."""
    return int(task_id.split(".")[1])


def is_rerun(task_id: str) -> bool:
    """True for the verification re-run tasks."""
    return task_id.endswith(RERUN_SUFFIX)


def stored_result(stage: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine keeps of a segment task's result: without the echoed inputs."""
    drop = ECHOED.get(stage, ())
    return {k: v for k, v in result.items() if k not in drop}


@dataclass(frozen=True)
class StageRequest:
    """The JSON body a task POSTs to its function, and its result-cache key."""

    body: dict[str, Any]
    input_cid: str
    params: dict[str, Any]

    def cache_digest(self, stage: str) -> str:
        return cache_digest(stage, self.input_cid, self.params)


def request_for(spec: JobSpec, stage: str, payload: Payload) -> StageRequest:
    """The function request of a task of ``stage`` with ``payload``."""
    body: dict[str, Any]
    if stage == "split":
        body = {"source": spec.source, "segment_seconds": spec.segment_seconds}
        params: dict[str, Any] = {"segment_seconds": spec.segment_seconds}
        payload = payload or {}
        if payload.get("range") is not None:  # a range task (see split_followups)
            params["range"] = dict(payload["range"])
            # (a payload rebuilt from a result, for its cache key, has the range alone)
            body.update(range=params["range"], pix_fmt=str(payload.get("pix_fmt", "")),
                        source_facts=dict(payload.get("source") or {}))  # fmt: skip
        elif payload.get("part") is not None:
            params["part"] = body["part"] = str(payload["part"])
            if payload.get("frames"):  # a VFR direct plan's frames: the audio's length
                body["frames"] = int(payload["frames"])  # (the source's: not in the key)
        else:
            if payload.get("range_seconds"):
                # the first task may plan ranges; its cached result (a plan, or every
                # segment) serves whatever range length a later job asks for
                body["range_seconds"] = str(payload["range_seconds"])
            if payload.get("transcode_range_seconds"):
                # a direct plan is another result than segments: its own cache entry
                body["transcode_range_seconds"] = str(payload["transcode_range_seconds"])
                params["direct"] = True
        return StageRequest(body, spec.source, params)
    if stage == "transcode" and payload.get("range") is not None:  # a direct range
        body, params = direct_body(spec, payload)
        return StageRequest(body, spec.source, params)
    if stage == "transcode":
        segment = str(payload["segment"])
        start, fps = int(payload.get("start", 0)), payload.get("fps")
        body = {
            "segment": segment,
            "ladder": spec.ladder,
            "start_frame": start,
            "fps": fps,
        }
        if payload.get("n") and payload.get("size"):
            body["frames"] = int(payload["n"])
            body["width"], body["height"] = (int(v) for v in payload["size"])
        if payload.get("signature"):  # passed on, in its result, to the segment's checksum
            body["signature"] = str(payload["signature"])
        return StageRequest(body, segment, {"ladder": spec.ladder, "start": start, "fps": fps})
    if stage == "thumbnail":
        segment = str(payload["segment"])
        body = {"segment": segment}
        if payload.get("n") and payload.get("fps"):  # spares the thumbnail a probe
            body.update(frames=int(payload["n"]), fps=payload["fps"])
        return StageRequest(body, segment, {})
    if stage == "checksum":
        segment = str(payload["segment"])
        renditions = dict(payload["renditions"])
        body = {"segment": segment, "renditions": renditions}
        if payload.get("signature"):
            body["signature"] = str(payload["signature"])
        # a verdict of another verifier (other tests or thresholds) is never replayed
        return StageRequest(body, segment, {"r": renditions, "verifier": VERIFIER})
    if stage == "merge":
        plan = str(payload["plan"])
        body = {"plan": plan}
        merge_params: dict[str, Any] = {}
        if payload.get("rung") is not None:  # one rung's merge (service/merge_tasks.py)
            body["rung"] = merge_params["rung"] = str(payload["rung"])
        elif payload.get("part") is not None:  # the audio renditions and the storyboard
            body["part"] = merge_params["part"] = str(payload["part"])
        elif payload.get("rungs") is not None:
            # the final task: its result is the one-task merge's, a function of the plan
            body["rungs"] = dict(payload["rungs"])
            if payload.get("media") is not None:
                body["media"] = dict(payload["media"])
        return StageRequest(body, plan, merge_params)
    raise InputError(f"unknown stage {stage!r}")


def payload_from_result(task_id: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the payload of a finished task from its result (stages echo their
    inputs), enough for :func:`request_for` to give its cache key."""
    if stage_of(task_id) == "transcode" and result.get("range") is not None:
        return {"range": result["range"]}  # a direct transcode (its cache key: the range)
    if stage_of(task_id) == "transcode":
        # transcode echoes its inputs, so the cache key needs no index lookup
        return {
            "segment": result["segment"],
            "start": int(result.get("start_frame", 0)),
            "fps": result.get("fps"),
        }
    kept = ("segment", "renditions", "plan", "range", "part", "rung", "transcode_range_seconds")
    return {key: result[key] for key in kept if key in result}


def with_cache_key(spec: JobSpec, stage: str, payload: Payload) -> dict[str, Any]:
    """The payload naming its result-cache digest (``"cache"``), so the engine reads
    the cached result in the round trip that leases the task."""
    return {**payload, "cache": request_for(spec, stage, payload).cache_digest(stage)}


def signature_of(cid: Any) -> dict[str, str]:
    """``{"signature": cid}`` where the segment has a verifier signature, else nothing."""
    return {"signature": str(cid)} if cid else {}


def fanout(spec: JobSpec, segments: Iterable[SegmentRef], source: Mapping[str, Any]) -> FollowUps:
    """The transcode and thumbnail task of every segment, after a split."""
    fps = str(source["fps"])
    size = [int(source["width"]), int(source["height"])]
    payloads = [
        (s.index, {"segment": s.cid, "i": s.index, "start": s.start_frame, "n": s.frames,
                   "fps": fps, "size": size, **signature_of(s.signature)})
        for s in segments
    ]  # fmt: skip
    return [
        (stage, [(f"{stage}.{i}", with_cache_key(spec, stage, p)) for i, p in payloads])
        for stage in ("transcode", "thumbnail")
    ]


def split_tasks(split: Mapping[str, Any]) -> list[str]:
    """The split tasks whose indexes list the segments, in order, given the first split
    task's result: ``split`` itself, or one ``split.<r>`` per range it planned."""
    ranges = split.get("ranges")
    return [f"split.{r}" for r in range(len(ranges))] if ranges else ["split"]


def audio_task(split: Mapping[str, Any]) -> str | None:
    """The split task whose result names the audio (None: the source has none)."""
    if split.get("ranges") or split.get("direct"):
        return AUDIO_TASK if split.get("audio_part") else None
    return "split"


def split_followups(spec: JobSpec, split: Mapping[str, Any]) -> FollowUps:
    """The range tasks and the audio task of a split the first task planned in ranges."""
    shared = {"pix_fmt": split["pix_fmt"], "source": dict(split["source"])}
    tasks: list[tuple[str, Payload | None]] = [
        (task_id, with_cache_key(spec, "split", {**shared, "range": dict(rng)}))
        for task_id, rng in zip(split_tasks(split), split["ranges"], strict=True)
    ]
    if split.get("audio_part"):
        tasks.append((AUDIO_TASK, with_cache_key(spec, "split", {"part": "audio"})))
    return [("split", tasks)]


def checksum_followup(
    spec: JobSpec, task_id: str, result: Mapping[str, Any], *, cache_key: bool
) -> FollowUps:
    """The checksum of a transcode's renditions (``.r2`` after a re-run, whose check is
    never answered from the cache; ``cache_key``: name the cache entry in the payload)."""
    suffix = RERUN_SUFFIX if is_rerun(task_id) else ""
    payload: dict[str, Any] = {
        "segment": result["segment"],
        "renditions": result["renditions"],
        **signature_of(result.get("signature")),
    }
    if cache_key and not suffix:
        payload = with_cache_key(spec, "checksum", payload)
    return [("checksum", [(f"checksum.{segment_of(task_id)}{suffix}", payload)])]


def rerun_followup(
    task_id: str, result: Mapping[str, Any], first_transcode: Mapping[str, Any]
) -> FollowUps:
    """The verification re-run of a segment whose first checksum mismatched (of a
    direct transcode's segment: a range of that segment alone)."""
    i = segment_of(task_id)
    if first_transcode.get("rerun") is not None:  # its range completion planned it
        return [("transcode", [(f"transcode.{i}{RERUN_SUFFIX}", dict(first_transcode["rerun"]))])]
    payload = {
        "segment": result["segment"],
        "i": i,
        "start": int(first_transcode.get("start_frame", 0)),
        "fps": first_transcode.get("fps"),
        **signature_of(first_transcode.get("signature")),
    }
    return [("transcode", [(f"transcode.{i}{RERUN_SUFFIX}", payload)])]


def result_cids(stage: str, result: Mapping[str, Any]) -> list[Any] | None:
    """The CIDs a cached result names (all must still be stored for it to be replayed);
    None when the result must never be replayed (a checksum mismatch is re-checked)."""
    if stage == "checksum":
        return [] if result.get("ok") else None
    if stage == "merge" and not (
        result.get("directory") or result.get("rung") or result.get("part")
    ):
        return None  # merged before outputs had one directory: merge again
    cids = [result.get(k) for k in OUTPUT_KEYS if result.get(k)]
    for key in ("renditions", "mp4"):
        cids += list(dict(result.get(key) or {}).values())
    if stage == "transcode" and isinstance(result.get("segments"), list):  # a direct range
        for seg in result["segments"]:
            cids += [seg.get("signature"), seg.get("thumbnail")]
            cids += list(dict(seg.get("renditions") or {}).values())
    return cids


def failure_reason(status: int, body: bytes) -> tuple[str, bool]:
    """The reason text of a failed call, and whether another attempt may succeed: a 4xx
    (bad input, not a video) fails the same way again, except a 401 (see below) and a
    429; a 5xx (ffmpeg killed, store down, crash) may not, so it is retried up to the
    attempt limit."""
    text = body.decode("utf-8", "replace")[:1000]
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, a huge integer, nesting too deep
        parsed = None
    if isinstance(parsed, dict) and "message" in parsed:
        message = f"{parsed.get('error', 'Error')}: {parsed['message']}"
    else:
        message = f"HTTP {status}: {text.strip() or 'no body'}"
    # 401: the stage refused the signature, which had expired while the task waited
    # in the queue; the next attempt is signed afresh
    return message, status >= 500 or status in (401, 429)


def failed_task(task_id: str, attempt: int, reason: str) -> dict[str, Any]:
    """The ``failed_tasks`` entry of a job.failed event."""
    return {"task": task_id, "stage": stage_of(task_id), "attempt": attempt, "reason": reason}
