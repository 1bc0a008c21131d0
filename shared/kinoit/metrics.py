"""Prometheus metrics whose counters live in Redis.

On OpenFaaS, orchestrate runs as several replicas and Prometheus scrapes
``/function/orchestrate/metrics`` through the gateway, which picks a replica at
random. Counters kept in process memory would jump between replicas' values, so
every counter and histogram here is stored in Redis and each scrape renders the
same cluster-wide numbers, whichever replica answers.

Writers call a :class:`MetricsRecorder` at the moment something happens;
``GET /metrics`` calls :func:`render_metrics` with the gauges that are read from
the job state at scrape time (jobs by state, tasks by stage and state, queue
depth) in a :class:`Snapshot`.

Emitted families (all prefixed ``kinoit_``)::

    kinoit_jobs{state}                          gauge      jobs now in each state
    kinoit_tasks{stage,state}                   gauge      tasks now in each state
    kinoit_queue_depth                          gauge      jobs waiting to start
    kinoit_job_transitions_total{state}         counter    jobs that entered a state
    kinoit_tasks_finished_total{stage,state}    counter    tasks that ended (done/failed)
    kinoit_task_duration_seconds{stage}         histogram  run time of finished tasks
    kinoit_task_retries_total{stage}            counter    tasks dispatched again
    kinoit_verification_failures_total          counter    checksum mismatches
    kinoit_webhook_deliveries_total{result}     counter    webhook attempts, ok or failed
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

from kinoit.errors import InvalidParameter, StateUnavailable
from kinoit.jobs import scripts
from kinoit.jobs.decode import text
from kinoit.jobs.effects import (
    Effect,
    HashIncrement,
    HashIncrementFloat,
    SetAdd,
    encode_effects,
)
from kinoit.jobs.keys import METRICS_PREFIX

# The classic text format that every Prometheus and the OpenFaaS stack read.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Every metrics key starts with this, so `redis-cli --scan` finds them together.
DEFAULT_PREFIX = METRICS_PREFIX
# Upper bounds in seconds: a segment takes well under a minute, split and merge of
# a long source can take up to an hour, so the buckets span both.
DURATION_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
# Label values are names we choose (stages, states); anything else is a bug or
# an attempt to blow up the series count, so it is refused.
_LABEL_VALUE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

# Field of the per-stage duration hash that holds the +Inf bucket.
_INF_FIELD = "le:+Inf"


def _label(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _LABEL_VALUE.match(value):
        raise InvalidParameter(kind, f"expected a lowercase name like 'transcode', got {value!r}")
    return value


def _bucket_field(bound: float) -> str:
    return f"le:{bound:g}"


def _number(raw: bytes | str | None) -> float:
    return 0.0 if raw is None else float(text(raw))


@dataclass(frozen=True)
class MetricKeys:
    """Redis key names of the stored counters, derived from one prefix."""

    prefix: str = DEFAULT_PREFIX

    @property
    def jobs(self) -> str:
        """Hash: state -> jobs that entered it."""
        return f"{self.prefix}:job_transitions"

    @property
    def tasks(self) -> str:
        """Hash: 'stage|state' -> tasks finished that way."""
        return f"{self.prefix}:tasks_finished"

    @property
    def retries(self) -> str:
        """Hash: stage -> retries."""
        return f"{self.prefix}:retries"

    @property
    def verification(self) -> str:
        """String counter of verification failures."""
        return f"{self.prefix}:verification_failures"

    @property
    def webhooks(self) -> str:
        """Hash: 'ok' / 'failed' -> webhook delivery attempts."""
        return f"{self.prefix}:webhooks"

    @property
    def stages(self) -> str:
        """Set of stages that have a duration histogram."""
        return f"{self.prefix}:duration_stages"

    def duration(self, stage: str) -> str:
        """Hash of one stage's histogram: 'le:<bound>' (per bucket), 'count', 'sum'."""
        return f"{self.prefix}:duration:{stage}"


class MetricsRecorder:
    """Counts events into Redis; cheap enough to call on every transition.

    Every event is one Redis command (a finished task is one Lua script that
    updates the counter and the histogram together), so a scrape never sees half
    an update. Each method takes an optional ``pipe``: pass the pipeline of the
    caller's own transaction to record the event with the state change and save
    the round trip (the command is queued, not executed).
    """

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = client
        self.keys = MetricKeys(prefix)
        self._apply = client.register_script(scripts.source("apply_effects"))
        self._counters: dict[tuple[str, str, float | None], tuple[Effect, ...]] = {}

    def job_transition(self, state: str, pipe: Any = None) -> None:
        """A job entered ``state`` (queued, running, completed, failed, cancelled)."""
        state = _label("state", state)
        self._run(pipe, lambda p: p.hincrby(self.keys.jobs, state, 1))

    def task_finished(self, stage: str, state: str, seconds: float, pipe: Any = None) -> None:
        """A task of ``stage`` ended in ``state`` (done or failed) after ``seconds``."""
        effects = encode_effects(self.task_finished_effects(stage, state, seconds))
        self._run(pipe, lambda p: self._apply(keys=[], args=[effects], client=p))

    def task_finished_effects(self, stage: str, state: str, seconds: float) -> list[Effect]:
        """What :meth:`task_finished` writes (in one script, so a scrape never sees half
        of it), for a caller that applies it inside its own (e.g. only when a result is
        accepted)."""
        if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
            raise InvalidParameter("seconds", f"expected a finite duration >= 0, got {seconds!r}")
        bucket = next((b for b in DURATION_BUCKETS if seconds <= b), None)
        named = isinstance(stage, str) and isinstance(state, str)
        counters = self._counters.get((stage, state, bucket)) if named else None
        if counters is None:
            # the four counter effects depend on stage, state and bucket only: built once
            stage, state = _label("stage", stage), _label("state", state)
            field_name = _bucket_field(bucket) if bucket is not None else _INF_FIELD
            duration = self.keys.duration(stage)
            counters = (
                HashIncrement(self.keys.tasks, f"{stage}|{state}"),
                SetAdd(self.keys.stages, stage),
                HashIncrement(duration, field_name),
                HashIncrement(duration, "count"),
            )
            self._counters[(stage, state, bucket)] = counters
        return [*counters, HashIncrementFloat(self.keys.duration(stage), "sum", float(seconds))]

    def task_retried(self, stage: str, pipe: Any = None) -> None:
        """A task of ``stage`` is dispatched again (lease expired or verification re-run)."""
        stage = _label("stage", stage)
        self._run(pipe, lambda p: p.hincrby(self.keys.retries, stage, 1))

    def verification_failed(self, pipe: Any = None) -> None:
        """A rendition's visual checksum did not match its source segment."""
        self._run(pipe, lambda p: p.incr(self.keys.verification))

    def webhook_delivered(self, ok: bool, pipe: Any = None) -> None:
        """One webhook delivery attempt ended, accepted by the receiver (2xx) or not."""
        result = "ok" if ok else "failed"
        self._run(pipe, lambda p: p.hincrby(self.keys.webhooks, result, 1))

    def _run(self, pipe: Any, write: Any) -> None:
        if pipe is not None:
            write(pipe)
            return
        try:
            write(self._redis)
        except redis.RedisError as exc:
            raise StateUnavailable(f"redis: cannot record a metric: {exc}") from exc


@dataclass(frozen=True)
class Snapshot:
    """Gauges read from the job state at scrape time, by whoever owns that state."""

    jobs: Mapping[str, int] = field(default_factory=dict)
    """Jobs now in each state, e.g. ``{"queued": 2, "running": 1}``."""
    tasks: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Tasks now in each ``(stage, state)``, e.g. ``{("transcode", "leased"): 12}``."""
    queue_depth: int = 0
    """Jobs waiting for a free slot."""


class _RedisCollector:
    """A prometheus_client collector that reads the stored counters once per scrape."""

    def __init__(self, client: redis.Redis, keys: MetricKeys, snapshot: Snapshot) -> None:
        self._redis = client
        self._keys = keys
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from self._gauges()
        try:
            yield from self._counters()
        except redis.RedisError as exc:
            raise StateUnavailable(f"redis: cannot read metrics: {exc}") from exc

    def _gauges(self) -> Iterator[Metric]:
        snap = self._snapshot
        jobs = GaugeMetricFamily("kinoit_jobs", "Jobs now in each state.", labels=["state"])
        for state, count in sorted(snap.jobs.items()):
            jobs.add_metric([_label("state", state)], count)
        yield jobs
        tasks = GaugeMetricFamily(
            "kinoit_tasks", "Tasks now in each state, per stage.", labels=["stage", "state"]
        )
        for (stage, state), count in sorted(snap.tasks.items()):
            tasks.add_metric([_label("stage", stage), _label("state", state)], count)
        yield tasks
        yield GaugeMetricFamily(
            "kinoit_queue_depth", "Jobs waiting for a free slot.", value=snap.queue_depth
        )

    def _counters(self) -> Iterator[Metric]:
        keys = self._keys
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.jobs)
            pipe.hgetall(keys.tasks)
            pipe.hgetall(keys.retries)
            pipe.get(keys.verification)
            pipe.hgetall(keys.webhooks)
            pipe.smembers(keys.stages)
            jobs, tasks, retries, verification, webhooks, stages = pipe.execute()

        transitions = CounterMetricFamily(
            "kinoit_job_transitions", "Jobs that entered each state.", labels=["state"]
        )
        for state, count in _sorted_items(jobs):
            transitions.add_metric([state], count)
        yield transitions

        finished = CounterMetricFamily(
            "kinoit_tasks_finished",
            "Tasks that ended, per stage and final state.",
            labels=["stage", "state"],
        )
        for pair, count in _sorted_items(tasks):
            stage, _, state = pair.partition("|")
            finished.add_metric([stage, state], count)
        yield finished

        yield from self._histograms(sorted(text(s) for s in stages))

        retried = CounterMetricFamily(
            "kinoit_task_retries", "Tasks dispatched again, per stage.", labels=["stage"]
        )
        for stage, count in _sorted_items(retries):
            retried.add_metric([stage], count)
        yield retried

        yield CounterMetricFamily(
            "kinoit_verification_failures",
            "Renditions whose visual checksum did not match the source segment.",
            value=_number(verification),
        )

        delivered = CounterMetricFamily(
            "kinoit_webhook_deliveries",
            "Webhook delivery attempts, by result.",
            labels=["result"],
        )
        counts = dict(_sorted_items(webhooks))
        for result in ("ok", "failed"):
            delivered.add_metric([result], counts.get(result, 0.0))
        yield delivered

    def _histograms(self, stages: list[str]) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "kinoit_task_duration_seconds",
            "Run time of finished tasks, per stage.",
            labels=["stage"],
        )
        if stages:
            with self._redis.pipeline(transaction=True) as pipe:
                for stage in stages:
                    pipe.hgetall(self._keys.duration(stage))
                hashes = pipe.execute()
            for stage, raw in zip(stages, hashes, strict=True):
                stored = {text(k): _number(v) for k, v in raw.items()}
                cumulative = 0.0
                buckets: list[tuple[str, float]] = []
                for bound in DURATION_BUCKETS:
                    cumulative += stored.get(_bucket_field(bound), 0.0)
                    buckets.append((repr(float(bound)), cumulative))  # '1.0', as Prometheus writes
                cumulative += stored.get(_INF_FIELD, 0.0)
                buckets.append(("+Inf", cumulative))
                family.add_metric([stage], buckets, sum_value=stored.get("sum", 0.0))
        yield family


def _sorted_items(raw: Mapping[Any, Any]) -> Iterable[tuple[str, float]]:
    return sorted((text(k), _number(v)) for k, v in raw.items())


def render_metrics(
    client: redis.Redis, snapshot: Snapshot | None = None, prefix: str = DEFAULT_PREFIX
) -> bytes:
    """The Prometheus text exposition (:data:`CONTENT_TYPE`) of every kinoit metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RedisCollector(client, MetricKeys(prefix), snapshot or Snapshot()))
    return generate_latest(registry)
