"""Decoding what Redis and the engine's scripts return into the engine's dataclasses:
script replies by field name (JSON objects), task fields, job records and counters.

A task field is ``<state letter><attempt>|<stage>|<result JSON or reason>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kinoit.errors import InvalidParameter, StateUnavailable
from kinoit.jobs.models import Completion, Dispatch, JobRecord, StageCounts, TaskInfo
from kinoit.jobs.states import JobState, TaskState


def text(value: Any) -> str:
    """A Redis reply as text, from a client with either ``decode_responses`` setting
    (the one place kinoit turns reply bytes into str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def encode_json(value: Any, name: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(name, f"not JSON-serialisable: {exc}") from None


def decode_reply(raw: Any) -> dict[str, Any]:
    """A script's JSON reply, decoded (its fields are read by name)."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise StateUnavailable(f"unexpected reply from an engine script: {value!r}")
    return value


def decode_leased(lines: str) -> list[tuple[str, str, int]]:
    """The ``task|stage|attempt`` lines a lease script returns, as tuples."""
    if not lines:
        return []
    return [(t, stage, int(a)) for t, stage, a in (line.split("|") for line in lines.split("\n"))]


def decode_dispatches(
    job_id: str,
    leased: Sequence[tuple[str, str, int]],
    deadline: float,
    payloads: Sequence[Any],
    cached: Sequence[str | None] | None = None,
) -> list[Dispatch]:
    """Leased ``(task, stage, attempt)`` tuples with their stored payloads (JSON or
    empty) and, from :meth:`~kinoit.jobs.JobEngine.complete_step`, their cache reads."""
    hits = cached if cached is not None else [None] * len(leased)
    return [
        Dispatch(
            job_id=job_id,
            task_id=task_id,
            stage=stage,
            attempt=attempt,
            lease_deadline=deadline,
            payload=json.loads(raw) if raw else {},
            cached=hit,
        )
        for (task_id, stage, attempt), raw, hit in zip(leased, payloads, hits, strict=True)
    ]


def parse_task(raw: str) -> tuple[TaskState, int, str, str]:
    head, stage, rest = raw.split("|", 2)
    return TaskState.from_letter(head[0]), int(head[1:]), stage, rest


def decode_counts(flat: Sequence[Any]) -> dict[str, StageCounts]:
    acc: dict[str, dict[str, int]] = {}
    for i in range(0, len(flat) - 1, 2):
        stage, _, name = text(flat[i]).rpartition(":")
        acc.setdefault(stage, {})[name] = int(text(flat[i + 1]))
    fields = set(StageCounts.__dataclass_fields__)
    # The stored "*" counters (done, total) exist for all_done in Lua; the job-wide
    # view is the sum of the stages, which also covers the stage-only counters.
    acc.pop("*", None)
    out = {
        stage: StageCounts(**{k: v for k, v in vals.items() if k in fields})
        for stage, vals in acc.items()
    }
    if out:
        out["*"] = StageCounts(
            **{f: sum(getattr(c, f) for c in out.values()) for f in sorted(fields)}
        )
    return out


def decode_completion(job_id: str, task_id: str, reply: Mapping[str, Any]) -> Completion:
    status, stage, cur = str(reply["status"]), str(reply["stage"]), int(reply["attempt"])
    if status != "accepted":
        return Completion(
            job_id=job_id,
            task_id=task_id,
            stage=stage,
            attempt=cur,
            accepted=False,
            duplicate=status == "duplicate",
            ignored=status != "duplicate",
            reason=status,
        )
    return Completion(
        job_id=job_id,
        task_id=task_id,
        stage=stage,
        attempt=cur,
        accepted=True,
        stage_done=bool(reply["stage_done"]),
        all_done=bool(reply["all_done"]),
        stage_done_count=int(reply["stage_done_count"]),
        stage_total=int(reply["stage_total"]),
        done=int(reply["done"]),
        total=int(reply["total"]),
    )


def task_info(job_id: str, task_id: str, raw: str) -> TaskInfo:
    state, attempt, stage, rest = parse_task(raw)
    result = json.loads(rest) if state is TaskState.DONE and rest else None
    reason = rest if state is not TaskState.DONE and rest else None
    return TaskInfo(
        job_id=job_id,
        task_id=task_id,
        stage=stage,
        state=state,
        attempt=attempt,
        result=result,
        reason=reason,
    )


def job_record(job_id: str, raw: Mapping[Any, Any], counts_raw: Mapping[Any, Any]) -> JobRecord:
    rec = {text(k): text(v) for k, v in raw.items()}

    def opt_float(name: str) -> float | None:
        return float(rec[name]) if rec.get(name) else None

    flat = [x for kv in counts_raw.items() for x in kv]
    return JobRecord(
        job_id=job_id,
        state=JobState(rec["state"]),
        spec=json.loads(rec.get("spec") or "{}"),
        metadata=json.loads(rec.get("metadata") or "{}"),
        created_at=float(rec.get("created_at") or 0.0),
        started_at=opt_float("started_at"),
        finished_at=opt_float("finished_at"),
        error=rec.get("error") or None,
        manifest=rec.get("manifest") or None,
        outputs=json.loads(rec.get("outputs") or "{}"),
        counts=decode_counts(flat),
    )
