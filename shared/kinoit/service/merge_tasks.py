"""The merge tasks, as pure functions: one ``merge.<rung>`` task per rung, added
together once every segment is verified and run in parallel, then the final
``merge`` task, added when the last of them is done, given their results' CIDs
(:mod:`kinoit.stages.merge_parts`). No Redis, no store.

    last segment done ──▶ merge.<rung> (each rung, in parallel) ──▶ merge ──▶ manifest
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kinoit.service.planning import stage_of
from kinoit.stages.merge_parts import PART_FIELDS

# The final task's id: the task whose result is the job's outputs.
FINAL_MERGE = "merge"


def rung_task(rung: str) -> str:
    """The task id of one rung's merge."""
    return f"{FINAL_MERGE}.{rung}"


def is_rung_task(task_id: str) -> bool:
    """True for ``merge.<rung>`` (not the final ``merge``)."""
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
    """The ``merge.<rung>`` tasks of a merge plan (for JobEngine.add_tasks)."""
    return [(rung_task(rung), {"plan": plan, "rung": rung}) for rung in rungs]


def final_task(
    plan: str, results: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, Mapping[str, Any] | None]]:
    """The final ``merge`` task over the rung tasks' results (rung -> result): the
    parts the final stage needs of each, nothing it would re-read."""
    parts = {rung: {key: result[key] for key in PART_FIELDS} for rung, result in results.items()}
    return [(FINAL_MERGE, {"plan": plan, "rungs": parts})]
