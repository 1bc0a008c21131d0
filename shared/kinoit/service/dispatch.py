"""Dispatch: keeping a job's window of tasks in flight, replaying cached results,
and POSTing the rest to their functions' async endpoints.

A window of at most ``dispatch_window`` tasks is in flight per job, so leases do
not run out while tasks wait in the async queue. :meth:`Dispatcher.post` is the
one place a stage request leaves orchestrate.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import requests

from kinoit.config import Settings
from kinoit.errors import KinoitError
from kinoit.jobs import Dispatch, JobEngine, JobState, ResultCache, callback_token
from kinoit.service.planning import (
    STAGE_FUNCTIONS,
    StageRequest,
    is_rerun,
    request_for,
    result_cids,
)
from kinoit.service.ports import Metrics
from kinoit.service.spec import JobSpec
from kinoit.stages.signing import sign_stage_request, stage_key

log = logging.getLogger(__name__)

# Posting to the gateway's async endpoint only enqueues; it should be quick.
DISPATCH_TIMEOUT_SECONDS = 10.0
# Per-job facts kept in memory by one orchestrate process (bounded; Redis is the truth).
MEMO_SIZE = 4096

Post = Callable[..., Any]
# Record a cached result as the task's own (the pipeline's callback path).
Replay = Callable[[Dispatch, dict[str, Any]], None]


class BoundedMemo(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries beyond ``MEMO_SIZE``."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > MEMO_SIZE:
            self.popitem(last=False)


class Dispatcher:
    """Leases tasks into a job's window and sends them (or replays their cached result)."""

    def __init__(
        self,
        settings: Settings,
        engine: JobEngine,
        cache: ResultCache,
        store: Any,
        metrics: Metrics,
        secret: bytes,
        post: Post,
        clock: Callable[[], float],
        spec: Callable[[str], JobSpec],
        replay: Replay,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.store = store
        self.metrics = metrics
        self.secret = secret
        self.post_request = post
        self.clock = clock
        self.spec = spec
        self.replay = replay
        self.window = settings.dispatch_window
        self.gateway_url = settings.gateway_url.rstrip("/")
        public = settings.public_url or self.gateway_url + "/function/orchestrate"
        self.callback_base = public.rstrip("/")
        self.settings = settings
        self.dispatched_at: BoundedMemo = BoundedMemo()
        self._stage_key: bytes | None = None  # read on the first dispatch

    # ---------------------------------------------------------------- timing
    def started(self, job_id: str, task_id: str, seconds_ago: float = 0.0) -> None:
        """Note when a task started (now, or ``seconds_ago``)."""
        self.dispatched_at[(job_id, task_id)] = self.clock() - seconds_ago

    def elapsed(self, job_id: str, task_id: str, *, forget: bool = True) -> float:
        """Seconds since the task was dispatched (0 when this process does not know)."""
        key = (job_id, task_id)
        started = self.dispatched_at.pop(key, None) if forget else self.dispatched_at.get(key)
        return max(0.0, self.clock() - started) if started is not None else 0.0

    # ---------------------------------------------------------------- window
    def pump(self, job_id: str, freed: int | None = None) -> None:
        """Lease and send tasks until the job's in-flight window is full.

        ``freed``: how many slots one completion just freed; then no counts are
        read (one round trip). The tick refills every window in full each second,
        so an estimate that is off by one is corrected there.
        """
        while True:
            if freed is None:
                record = self.engine.get_job(job_id)
                if record.state is not JobState.RUNNING:
                    return
                room = self.window - record.total.leased
            else:
                room, freed = freed, None
            if room <= 0:
                return
            dispatches = self.engine.lease_next(job_id, room)
            if not dispatches:
                return
            # Cache hits complete at once and free room; otherwise the window is full now.
            if not self.send_all(dispatches):
                return

    def send_all(self, dispatches: list[Dispatch]) -> bool:
        """Send leased tasks (one cache lookup round trip for all); True when any
        completed at once from the result cache."""
        if not dispatches:
            return False
        requests_ = [request_for(self.spec(d.job_id), d.stage, d.payload) for d in dispatches]
        cached = self._cached_results(dispatches, requests_)
        hits = [
            self._send(d, request.body, cached.get(i))
            for i, (d, request) in enumerate(zip(dispatches, requests_, strict=True))
        ]
        return any(hits)

    def _cached_results(
        self, dispatches: list[Dispatch], requests_: list[StageRequest]
    ) -> dict[int, dict[str, Any]]:
        """The cached result of each dispatch that has one, by position."""
        cached: dict[int, dict[str, Any]] = {}
        lookups = []
        for i, (d, request) in enumerate(zip(dispatches, requests_, strict=True)):
            # A verification re-run exists because the earlier result is suspect: never reuse it.
            if is_rerun(d.task_id):
                continue
            if d.cached is None:
                lookups.append((i, d.stage, request.input_cid, request.params))
            elif d.cached:  # read with the lease (the payload named its cache entry)
                value = json.loads(d.cached)
                if isinstance(value, dict):
                    cached[i] = value
        found = self.cache.get_many([(stage, c, p) for _, stage, c, p in lookups])
        for (i, *_), hit in zip(lookups, found, strict=True):
            if hit is not None:
                cached[i] = hit
        return cached

    def _send(self, d: Dispatch, body: dict[str, Any], cached: dict[str, Any] | None) -> bool:
        if cached is not None and self.replayable(d.stage, cached):
            self.replay(d, cached)
            return True
        if d.attempt > 1:
            self.metrics.task_retried(d.stage)
        self.started(d.job_id, d.task_id)
        self.post(d, body)
        return False

    def post(self, d: Dispatch, body: Mapping[str, Any]) -> None:
        """POST one stage request to its function's async endpoint, with the callback
        URL that names the task and attempt (its token) and orchestrate's signature over
        body and callback. Failures are logged only: the lease expires and the sweep
        re-dispatches."""
        token = callback_token(self.secret, d.job_id, d.task_id, d.attempt)
        callback = f"{self.callback_base}/callback/{d.job_id}/{d.task_id}/{d.attempt}?token={token}"
        url = f"{self.gateway_url}/async-function/{STAGE_FUNCTIONS[d.stage]}"
        data = json.dumps(body, separators=(",", ":"))
        if self._stage_key is None:
            self._stage_key = stage_key(self.settings)
        # every stage refuses a request orchestrate did not sign (body and callback bound)
        signature = sign_stage_request(self._stage_key, data.encode(), callback, self.clock())
        try:
            response = self.post_request(
                url,
                data=data,
                headers={
                    "Content-Type": "application/json",
                    "X-Callback-Url": callback,
                    **signature,
                },
                timeout=DISPATCH_TIMEOUT_SECONDS,
            )
            if int(response.status_code) >= 300:
                log.warning("dispatch of %s/%s: HTTP %s", d.job_id, d.task_id, response.status_code)
        except requests.RequestException as exc:
            log.warning("dispatch of %s/%s failed: %s", d.job_id, d.task_id, exc)

    # ---------------------------------------------------------------- replay
    def replayable(self, stage: str, result: Mapping[str, Any]) -> bool:
        """Replay a cached result only if every CID it names is still in the store."""
        cids = result_cids(stage, result)
        return cids is not None and all(self.have(c) for c in cids)

    def have(self, cid: Any) -> bool:
        """True when the store holds ``cid`` (False when it cannot say)."""
        try:
            return bool(cid) and bool(self.store.has(str(cid)))
        except KinoitError:
            return False
