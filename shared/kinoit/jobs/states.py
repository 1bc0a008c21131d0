"""States of jobs and tasks as ``StrEnum``s (their values are what Redis stores).

Stage names are plain strings chosen by the caller (the product uses split,
transcode, thumbnail, checksum, merge); the engine only requires them to be
short identifiers (see :func:`check_stage`).
"""

from __future__ import annotations

import re
from enum import StrEnum

from kinoit.errors import InvalidParameter


class JobState(StrEnum):
    """Life cycle of a job: queued -> running -> completed | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class TaskState(StrEnum):
    """Life cycle of a task: pending -> leased -> done | failed (retries go back to pending)."""

    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"

    @property
    def letter(self) -> str:
        """The one-letter code stored in the compact task hash."""
        return _LETTERS[self]

    @classmethod
    def from_letter(cls, letter: str) -> TaskState:
        """Inverse of :attr:`letter`."""
        return _FROM_LETTER[letter]


_LETTERS = {
    TaskState.PENDING: "P",
    TaskState.LEASED: "L",
    TaskState.DONE: "D",
    TaskState.FAILED: "F",
}
_FROM_LETTER = {v: k for k, v in _LETTERS.items()}

# Stage and task ids travel in Redis values separated by "|" and in URL paths.
_STAGE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
_TASK_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


def check_stage(stage: str) -> str:
    """Return ``stage`` if it is a valid stage name, else raise InvalidParameter."""
    if not isinstance(stage, str) or not _STAGE_RE.match(stage):
        raise InvalidParameter("stage", f"expected a short identifier, got {stage!r}")
    return stage


def check_task_id(task_id: str) -> str:
    """Return ``task_id`` if it is a valid task id, else raise InvalidParameter."""
    if not isinstance(task_id, str) or not _TASK_RE.match(task_id):
        raise InvalidParameter(
            "task_id", f"expected 1-128 characters of [A-Za-z0-9_.:/-], got {task_id!r}"
        )
    return task_id
