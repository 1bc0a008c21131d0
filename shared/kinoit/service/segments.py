"""``GET /jobs/<id>/segments``: every segment task's state, compactly, for the web
app's segment grid, its thumbnails and its checksum chart.

The job status has counts per stage; the page needs each cell, every second.
:func:`read_grid_tasks` reads the job's tasks (each finished one only once per
process), :func:`segment_view` reduces them (pure)::

    {"job_id", "state", "segments": N, "stages": ["transcode", "thumbnail", "checksum"],
     "grid": {stage: [[state, attempts, rerun], ...one per segment]},
     "thumbnails": [CID | null, ...one per segment],
     "checksum": {"rungs": [rung, ...], "threshold": {rung: max distance allowed},
                  "max_distance": {rung: [distance | null, ...one per segment]},
                  "verdict": {rung: ["match" | "mismatch" | null, ...]}},
     "split": state, "merge": state | null, "merge_rungs": {rung: state}}

A cell's state is pending, leased, retrying (pending again after a failed or
expired attempt), done or failed; ``attempts`` counts the dispatches of the
segment's task (its verification re-run included, ``rerun`` true then).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import redis

from kinoit.jobs import JobRecord, TaskInfo, TaskState, keys, translate_redis_errors
from kinoit.jobs.decode import text
from kinoit.media.checksum import SMALL_RUNG_HEIGHT, THRESHOLDS
from kinoit.service.planning import RERUN_SUFFIX, is_rerun, segment_of, stage_of

GRID_STAGES: Final = ("transcode", "thumbnail", "checksum")
# States a task never leaves.
_SETTLED: Final = frozenset({TaskState.DONE, TaskState.FAILED})
# Task hash fields read per HMGET round trip.
_READ_BATCH: Final = 4096
# Jobs whose finished tasks are remembered (per process): the pages being watched.
_REMEMBERED_JOBS: Final = 32
_remembered: OrderedDict[str, dict[str, TaskInfo]] = OrderedDict()
_lock = threading.Lock()


def _decode(job_id: str, task_id: str, raw: str) -> TaskInfo:
    """One task hash entry, with only what the view shows of its result."""
    head, stage, rest = raw.split("|", 2)
    state = TaskState.from_letter(head[0])
    result: dict[str, Any] | None = None
    if state is TaskState.DONE and rest and stage in ("split", "thumbnail", "checksum"):
        full = json.loads(rest)
        if stage == "split":
            result = {"segments": full.get("segments")}
        elif stage == "thumbnail":
            result = {"thumbnail": full.get("thumbnail")}
        else:
            rungs = full.get("rungs") or {}
            result = {"rungs": {
                rung: {"max_distance": v.get("max_distance"), "verdict": v.get("verdict")}
                for rung, v in rungs.items() if isinstance(v, dict)
            }}  # fmt: skip
    return TaskInfo(job_id, task_id, stage, state, int(head[1:]), result)


def read_grid_tasks(
    connection: redis.Redis, job_id: str, rungs: Iterable[str] = ()
) -> list[TaskInfo]:
    """The tasks :func:`segment_view` needs. A finished task never changes, so each is
    read and decoded once per process; a poll reads only the unfinished ones (the
    bytes of a long job's results are read once, not every second)."""
    with _lock:
        done = _remembered.pop(job_id, {})
        _remembered[job_id] = done
        while len(_remembered) > _REMEMBERED_JOBS:
            _remembered.popitem(last=False)
        known = dict(done)
    fetch = translate_redis_errors(connection.hmget)
    key = keys.JOB_TASKS_KEY.format(job_id=job_id)
    found: list[TaskInfo] = []

    def read(fields: list[str]) -> None:
        for start in range(0, len(fields), _READ_BATCH):
            batch = fields[start : start + _READ_BATCH]
            for task_id, raw in zip(batch, fetch(key, batch), strict=True):
                if raw is not None:
                    found.append(_decode(job_id, task_id, text(raw)))

    # merge per rung, and its media part
    singles = ("split", "merge", "merge._media", *(f"merge.{rung}" for rung in rungs))
    read([t for t in singles if t not in known])
    split = known.get("split") or next((t for t in found if t.task_id == "split"), None)
    count = int((split.result or {}).get("segments") or 0) if split is not None else 0
    read([
        f"{stage}.{i}{suffix}"
        for stage in GRID_STAGES
        for i in range(count)
        for suffix in (("",) if stage == "thumbnail" else ("", RERUN_SUFFIX))
        if f"{stage}.{i}{suffix}" not in known
    ])  # fmt: skip
    with _lock:
        done.update({t.task_id: t for t in found if t.state in _SETTLED})
    return [*known.values(), *found]


def cell_state(info: TaskInfo) -> str:
    """What the grid shows for one task."""
    if info.state is TaskState.PENDING and info.attempt > 1:
        return "retrying"
    return info.state.value


def rung_threshold(rung: Mapping[str, Any]) -> int:
    """The largest per-frame hash distance the content test lets a rung have (its
    size class from the rung's height, or width when only that is set)."""
    side = rung.get("height") or rung.get("width") or SMALL_RUNG_HEIGHT + 1
    size_class = "small" if int(side) <= SMALL_RUNG_HEIGHT else "large"
    return THRESHOLDS[size_class].hash_max


@dataclass
class _Cell:
    state: str = "pending"
    attempts: int = 0
    rerun: bool = False


def segment_view(record: JobRecord, tasks: Iterable[TaskInfo]) -> dict[str, Any]:
    """The grid, thumbnails and checksum distances of one job from its tasks."""
    tasks = list(tasks)
    first: dict[tuple[str, int], TaskInfo] = {}
    rerun: dict[tuple[str, int], TaskInfo] = {}
    singles: dict[str, str] = {}
    merge_rungs: dict[str, str] = {}
    merge_parts: list[str] = []  # the states of every merge task before the final one
    for info in tasks:
        stage = stage_of(info.task_id)
        if stage == "merge" and info.task_id != "merge":
            merge_parts.append(cell_state(info))
            part = info.task_id.split(".", 1)[1]
            if not part.startswith("_"):  # a rung's (not the media part's)
                merge_rungs[part] = merge_parts[-1]
        elif stage not in GRID_STAGES:
            singles[info.task_id] = cell_state(info)
        if stage not in GRID_STAGES:
            continue
        (rerun if is_rerun(info.task_id) else first)[(stage, segment_of(info.task_id))] = info
    count = 1 + max((i for (s, i) in first if s == "transcode"), default=-1)
    # a direct transcode's range task is transcode.<a>: the split says how many there are
    split = next((t for t in tasks if t.task_id == "split"), None)
    count = max(count, int(((split.result if split else None) or {}).get("segments") or 0))
    grid = {stage: [_Cell() for _ in range(count)] for stage in GRID_STAGES}
    for (stage, index), info in first.items():
        if index < count:
            grid[stage][index] = _Cell(cell_state(info), info.attempt)
    for (stage, index), info in rerun.items():
        if index < count:
            cell = grid[stage][index]
            grid[stage][index] = _Cell(cell_state(info), cell.attempts + info.attempt, True)
    rungs = [r for r in record.spec.get("ladder", {}).get("rungs", []) if isinstance(r, dict)]
    names = [str(r.get("name")) for r in rungs]
    distances: dict[str, list[int | None]] = {n: [None] * count for n in names}
    verdicts: dict[str, list[str | None]] = {n: [None] * count for n in names}
    for index in range(count):
        latest = rerun.get(("checksum", index)) or first.get(("checksum", index))
        result = latest.result if latest is not None and latest.result else {}
        for rung, entry in (result.get("rungs") or {}).items():
            if rung in distances and isinstance(entry, dict):
                value = entry.get("max_distance")
                distances[rung][index] = int(value) if isinstance(value, int | float) else None
                verdicts[rung][index] = entry.get("verdict")
    thumbnails: list[str | None] = [None] * count
    for index in range(count):
        thumb = first.get(("thumbnail", index))
        if thumb is not None and thumb.result:
            thumbnails[index] = thumb.result.get("thumbnail")
    return {
        "job_id": record.job_id,
        "state": record.state.value,
        "segments": count,
        "stages": list(GRID_STAGES),
        "grid": {
            stage: [[c.state, c.attempts, c.rerun] for c in cells] for stage, cells in grid.items()
        },
        "thumbnails": thumbnails,
        "checksum": {
            "rungs": names,
            "threshold": {str(r.get("name")): rung_threshold(r) for r in rungs},
            "max_distance": distances,
            "verdict": verdicts,
        },
        "split": singles.get("split", "pending"),
        # the final merge's state, or while the parts merge the least advanced of theirs
        "merge": singles.get("merge") or _least_advanced(merge_parts),
        "merge_rungs": dict(sorted(merge_rungs.items())),
    }


def _least_advanced(states: Iterable[str]) -> str | None:
    order = ("failed", "retrying", "pending", "leased", "done")
    found = set(states)
    return next((state for state in order if state in found), None)
