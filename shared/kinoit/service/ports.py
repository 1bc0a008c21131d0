"""What the pipeline needs from its collaborators, as protocols: where job events go
(:class:`Notifier`, the webhook queue in production) and what it counts
(:class:`Metrics`, :class:`kinoit.metrics.MetricsRecorder`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kinoit.jobs.effects import Effect


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
    def task_finished_effects(self, stage: str, state: str, seconds: float) -> list[Effect]: ...
    def task_retried(self, stage: str, pipe: Any = None) -> None: ...
    def verification_failed(self, pipe: Any = None) -> None: ...
