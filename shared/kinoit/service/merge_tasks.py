"""The merge tasks, as pure functions: one ``merge.<rung>`` task per rung, added
together once every segment is verified and run in parallel, then the final
``merge`` task, added when the last of them is done, given their results' CIDs
(:mod:`kinoit.stages.merge_parts`); beside the rungs, ``merge._media`` makes the
audio renditions and the storyboard (:mod:`kinoit.stages.merge_media`). No Redis,
no store.

    last segment done ──▶ merge.<rung> (each rung) + merge._media, in parallel
                      ──▶ merge ──▶ manifest
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kinoit.service.planning import stage_of
from kinoit.stages.merge_media import MEDIA_FIELDS, MEDIA_PART
from kinoit.stages.merge_parts import PART_FIELDS

# The final task's id: the task whose result is the job's outputs.
FINAL_MERGE = "merge"


def rung_task(rung: str) -> str:
    """The task id of one rung's merge."""
    return f"{FINAL_MERGE}.{rung}"


# The media part's task id (rung names start with a letter or digit: no clash).
MEDIA_TASK = f"{FINAL_MERGE}._media"


def is_rung_task(task_id: str) -> bool:
    """True for the tasks before the final one: ``merge.<rung>`` and ``merge._media``."""
    return stage_of(task_id) == "merge" and task_id != FINAL_MERGE


def merge_rungs(ladder: Mapping[str, Any]) -> list[str]:
    """The rungs of a job's ladder, sorted: every rung task it may have (pure)."""
    return sorted(str(rung["name"]) for rung in ladder.get("rungs") or [])


def plan_rungs(renditions: Mapping[str, Any]) -> list[str]:
    """The rungs a merge plan merges, from its first segment's renditions (a rung taller
    than the source is not made, so not every ladder rung has renditions): sorted, as
    :func:`kinoit.stages.merge.read_plan` orders them (pure)."""
    return sorted(renditions)


def rung_tasks(plan: str, rungs: Iterable[str]) -> list[tuple[str, Mapping[str, Any] | None]]:
    """The ``merge.<rung>`` tasks of a merge plan and its ``merge._media`` task (the
    audio renditions and the storyboard), all run in parallel (for JobEngine.add_tasks)."""
    tasks: list[tuple[str, Mapping[str, Any] | None]] = [
        (rung_task(rung), {"plan": plan, "rung": rung}) for rung in rungs
    ]
    return [*tasks, (MEDIA_TASK, {"plan": plan, "part": MEDIA_PART})]


def final_task(
    plan: str, results: Mapping[str, Mapping[str, Any]], media: Mapping[str, Any] | None
) -> list[tuple[str, Mapping[str, Any] | None]]:
    """The final ``merge`` task over the rung tasks' results (rung -> result) and the
    media task's: the parts the final stage needs of each, nothing it would re-read."""
    parts = {rung: {key: result[key] for key in PART_FIELDS} for rung, result in results.items()}
    payload: dict[str, Any] = {"plan": plan, "rungs": parts}
    if media is not None:
        payload["media"] = {key: media.get(key) for key in MEDIA_FIELDS}
    return [(FINAL_MERGE, payload)]
