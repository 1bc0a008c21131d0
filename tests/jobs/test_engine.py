"""The job engine against a real redis-server: every transition, idempotency, leases."""

from __future__ import annotations

import multiprocessing
import random
import threading

import pytest
import redis
from kinoit.errors import Conflict, InvalidParameter, NotFound, StateUnavailable
from kinoit.jobs import EngineConfig, JobEngine, JobState, TaskState
from kinoit.jobs.effects import HashIncrement

from .conftest import T0

pytestmark = pytest.mark.redis


def running_job(engine: JobEngine, n: int = 3, stage: str = "transcode") -> str:
    job_id = engine.create_job({"source": "bafy"})
    assert engine.promote(now=T0) == [job_id]
    assert engine.add_tasks(job_id, stage, [(f"s{i:05d}", {"i": i}) for i in range(n)]) == n
    return job_id


# ------------------------------------------------------------------- jobs
def test_create_job_is_queued_with_spec_and_timings(engine: JobEngine) -> None:
    job_id = engine.create_job({"source": "bafy", "n": 1}, metadata={"who": "me"}, now=T0)
    job = engine.get_job(job_id)
    assert job.state is JobState.QUEUED
    assert job.spec == {"source": "bafy", "n": 1}
    assert job.metadata == {"who": "me"}
    assert job.created_at == T0
    assert job.started_at is None and job.finished_at is None
    assert [e.type for e in engine.follow(job_id)] == ["job.accepted"]


def test_job_ids_sort_by_creation_time(engine: JobEngine) -> None:
    ids = [engine.create_job({}, now=T0 + i) for i in range(5)]
    assert sorted(ids) == ids


def test_get_unknown_job_is_not_found(engine: JobEngine) -> None:
    with pytest.raises(NotFound):
        engine.get_job("01ARZ3NDEKTSV4RRFFQ69G5FAV")


def test_list_jobs_newest_first_paginated(engine: JobEngine) -> None:
    ids = [engine.create_job({"i": i}, now=T0 + i) for i in range(5)]
    first = engine.list_jobs(limit=2)
    assert [j.job_id for j in first.jobs] == ids[::-1][:2]
    assert first.next_cursor == 2
    second = engine.list_jobs(limit=2, cursor=first.next_cursor)
    assert [j.job_id for j in second.jobs] == ids[::-1][2:4]
    last = engine.list_jobs(limit=2, cursor=4)
    assert [j.job_id for j in last.jobs] == ids[:1]
    assert last.next_cursor is None
    with pytest.raises(InvalidParameter):
        engine.list_jobs(limit=0)


def test_fifo_with_one_active_runs_three_jobs_in_order(engine: JobEngine) -> None:
    ids = [engine.create_job({"i": i}, now=T0 + i) for i in range(3)]
    order: list[str] = []
    for _ in range(3):
        started = engine.promote(now=T0 + 10)
        assert len(started) == 1
        assert engine.promote(now=T0 + 10) == []  # the slot is taken
        job_id = started[0]
        order.append(job_id)
        engine.add_tasks(job_id, "split", [("split", None)])
        (d,) = engine.lease_next(job_id, 10)
        assert engine.complete(job_id, "split", d.attempt, {"ok": 1}).all_done
        engine.complete_job(job_id, manifest="bafymanifest", outputs={"720p": "bafy720"})
    assert order == ids
    assert engine.promote() == []
    for job_id in ids:
        job = engine.get_job(job_id)
        assert job.state is JobState.COMPLETED
        assert job.manifest == "bafymanifest"
        assert job.outputs == {"720p": "bafy720"}
        assert job.started_at is not None and job.finished_at is not None


def test_promote_respects_max_active_under_concurrency(client: redis.Redis) -> None:
    engine = JobEngine(client, EngineConfig(max_active_jobs=2))
    for i in range(10):
        engine.create_job({"i": i}, now=T0 + i)
    started: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        got = JobEngine(client, EngineConfig(max_active_jobs=2)).promote()
        with lock:
            started.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(started) == 2
    assert engine.gauges().running == 2
    assert engine.gauges().queue_depth == 8


def test_cancel_queued_job_skips_it_in_the_fifo(engine: JobEngine) -> None:
    a = engine.create_job({}, now=T0)
    b = engine.create_job({}, now=T0 + 1)
    report = engine.cancel(a)
    assert report.previous_state is JobState.QUEUED
    assert engine.get_job(a).state is JobState.CANCELLED
    assert engine.promote() == [b]


def test_cancel_running_job_releases_leases_and_frees_slot(engine: JobEngine) -> None:
    job_id = running_job(engine, 4)
    nxt = engine.create_job({})
    engine.lease_next(job_id, 3)
    engine.complete(job_id, "s00000", 1, {"cid": "bafyA"})
    report = engine.cancel(job_id)
    assert report.previous_state is JobState.RUNNING
    assert sorted(t.task_id for t in report.released) == ["s00001", "s00002"]
    assert engine.leased_tasks(job_id) == []
    assert all(t.state is not TaskState.LEASED for t in engine.iter_tasks(job_id))
    assert [t.result for t in engine.iter_results(job_id)] == [{"cid": "bafyA"}]
    job = engine.get_job(job_id)
    assert job.state is JobState.CANCELLED
    assert job.total.leased == 0
    # late callbacks after cancel are ignored, nothing more is leased or swept
    late = engine.complete(job_id, "s00001", 1, {"cid": "bafyB"})
    assert late.ignored and not late.accepted
    assert engine.lease_next(job_id, 10) == []
    assert engine.sweep(now=T0 + 1000).dispatches == []
    assert engine.promote() == [nxt]
    with pytest.raises(Conflict):
        engine.cancel(job_id)


def test_complete_job_requires_running(engine: JobEngine) -> None:
    job_id = engine.create_job({})
    with pytest.raises(Conflict):
        engine.complete_job(job_id)
    with pytest.raises(NotFound):
        engine.complete_job("01ARZ3NDEKTSV4RRFFQ69G5FAV")


# ------------------------------------------------------------------ tasks
def test_add_tasks_is_idempotent_and_counts_per_stage(engine: JobEngine) -> None:
    job_id = running_job(engine, 3)
    assert engine.add_tasks(job_id, "transcode", [("s00000", None), ("s00009", None)]) == 1
    engine.add_tasks(job_id, "thumbnail", [("t0", None)])
    job = engine.get_job(job_id)
    assert job.counts["transcode"].total == 4
    assert job.counts["thumbnail"].total == 1
    assert job.total.total == 5
    assert job.total.pending == 5


def test_add_tasks_rejects_bad_names_and_ended_jobs(engine: JobEngine) -> None:
    job_id = running_job(engine, 1)
    with pytest.raises(InvalidParameter):
        engine.add_tasks(job_id, "trans|code", [("x", None)])
    with pytest.raises(InvalidParameter):
        engine.add_tasks(job_id, "transcode", [("bad id", None)])
    engine.cancel(job_id)
    with pytest.raises(Conflict):
        engine.add_tasks(job_id, "transcode", [("y", None)])


def test_lease_moves_pending_to_leased_with_payload(engine: JobEngine) -> None:
    job_id = running_job(engine, 2)
    d = engine.lease(job_id, "s00001", 1, lease_seconds=5, now=T0)
    assert d is not None
    assert (d.stage, d.attempt, d.payload, d.lease_deadline) == ("transcode", 1, {"i": 1}, T0 + 5)
    assert engine.task(job_id, "s00001").state is TaskState.LEASED
    assert engine.lease(job_id, "s00001", 1) is None  # already leased
    assert engine.lease(job_id, "s00000", 2) is None  # wrong attempt
    # lease_next skips the explicitly leased task
    assert [x.task_id for x in engine.lease_next(job_id, 10)] == ["s00000"]
    assert engine.get_job(job_id).total.leased == 2


def test_lease_refused_while_job_queued(engine: JobEngine) -> None:
    job_id = engine.create_job({})
    engine.add_tasks(job_id, "split", [("split", None)])
    assert engine.lease_next(job_id, 1) == []
    assert engine.lease(job_id, "split") is None


def test_complete_last_task_finishes_stage_and_job_once(engine: JobEngine) -> None:
    job_id = running_job(engine, 2)
    engine.add_tasks(job_id, "thumbnail", [("t0", None)])
    engine.lease_next(job_id, 10)
    a = engine.complete(job_id, "s00000", 1, {"cid": "A"})
    assert a.accepted and not a.stage_done and not a.all_done
    b = engine.complete(job_id, "s00001", 1, {"cid": "B"})
    assert b.accepted and b.stage_done and not b.all_done
    assert (b.stage_done_count, b.stage_total, b.done, b.total) == (2, 2, 2, 3)
    c = engine.complete(job_id, "t0", 1, {"cid": "T"})
    assert c.stage_done and c.all_done
    assert engine.results(job_id, "transcode") == {"s00000": {"cid": "A"}, "s00001": {"cid": "B"}}
    assert engine.get_job(job_id).total.leased == 0


def test_duplicate_callback_counts_once(engine: JobEngine) -> None:
    job_id = running_job(engine, 1)
    engine.lease_next(job_id, 1)
    first = engine.complete(job_id, "s00000", 1, {"cid": "A"})
    again = engine.complete(job_id, "s00000", 1, {"cid": "A"})
    assert first.all_done
    assert again.duplicate and not again.accepted and not again.all_done
    assert engine.get_job(job_id).total.done == 1
    assert engine.gauges().task_events["duplicate"] == 1


def test_late_callback_of_older_attempt_is_accepted_once(engine: JobEngine) -> None:
    job_id = running_job(engine, 1)
    engine.lease_next(job_id, 1, now=T0)
    report = engine.sweep(now=T0 + 11)  # lease expired: retry due at +1 s
    assert report.expired == 1 and report.dispatches == []
    (d,) = engine.sweep(now=T0 + 12).dispatches
    assert d.attempt == 2
    late = engine.complete(job_id, "s00000", 1, {"cid": "A"})  # attempt 1 finishes late
    assert late.accepted and late.all_done
    assert engine.task(job_id, "s00000").attempt == 1
    dup = engine.complete(job_id, "s00000", 2, {"cid": "A"})  # attempt 2 arrives after
    assert dup.duplicate and not dup.all_done
    job = engine.get_job(job_id)
    assert (job.total.done, job.total.leased, job.total.retrying) == (1, 0, 0)


def test_callback_for_future_attempt_or_unknown_task_is_ignored(engine: JobEngine) -> None:
    job_id = running_job(engine, 1)
    engine.lease_next(job_id, 1)
    assert engine.complete(job_id, "s00000", 2, {}).reason == "future_attempt"
    assert engine.complete(job_id, "nope", 1, {}).reason == "unknown"
    assert engine.get_job(job_id).total.done == 0


def test_out_of_order_callbacks_finish_once(engine: JobEngine) -> None:
    job_id = running_job(engine, 50)
    engine.lease_next(job_id, 50)
    order = [f"s{i:05d}" for i in range(50)] * 2
    random.Random(4).shuffle(order)
    finished = [engine.complete(job_id, t, 1, {"t": t}).all_done for t in order]
    assert finished.count(True) == 1
    assert engine.get_job(job_id).total.done == 50


def _complete_all(
    url: str,
    job_id: str,
    task_ids: list[str],
    seed: int,
    out: multiprocessing.Queue[tuple[int, int]],
) -> None:
    engine = JobEngine(redis.Redis.from_url(url))
    order = list(task_ids)
    random.Random(seed).shuffle(order)
    stage = alld = 0
    for t in order:
        c = engine.complete(job_id, t, 1, {"cid": t})
        stage += c.stage_done
        alld += c.all_done
    out.put((stage, alld))


def test_last_completion_exactly_once_across_processes(engine: JobEngine, redis_url: str) -> None:
    job_id = running_job(engine, 300)
    engine.lease_next(job_id, 300)
    task_ids = [f"s{i:05d}" for i in range(300)]
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[tuple[int, int]] = ctx.Queue()
    procs = [
        ctx.Process(target=_complete_all, args=(redis_url, job_id, task_ids, seed, out))
        for seed in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    assert sum(r[0] for r in results) == 1
    assert sum(r[1] for r in results) == 1
    assert engine.get_job(job_id).total.done == 300


def test_last_completion_exactly_once_across_threads(
    engine: JobEngine, client: redis.Redis
) -> None:
    job_id = running_job(engine, 200)
    engine.lease_next(job_id, 200)
    flags: list[bool] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        own = JobEngine(client)
        order = [f"s{i:05d}" for i in range(200)]
        random.Random(seed).shuffle(order)
        got = [own.complete(job_id, t, 1, {}).all_done for t in order]
        with lock:
            flags.extend(got)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert flags.count(True) == 1
    assert len(flags) == 1200


# ------------------------------------------------------- failures, leases
def test_fail_retries_with_exponential_backoff_then_fails_job(engine: JobEngine) -> None:
    job_id = running_job(engine, 2)
    engine.lease_next(job_id, 2, now=T0)
    r1 = engine.fail(job_id, "s00000", 1, "boom", now=T0)
    assert (r1.next_attempt, r1.retry_at) == (2, T0 + 1.0)
    assert engine.sweep(now=T0 + 0.5).dispatches == []  # not due yet
    (d2,) = engine.sweep(now=T0 + 1.0).dispatches
    assert (d2.task_id, d2.attempt, d2.payload) == ("s00000", 2, {"i": 0})
    assert engine.get_job(job_id).counts["transcode"].retrying == 1
    assert engine.fail(job_id, "s00000", 1, "stale").ignored  # older attempt's failure
    r2 = engine.fail(job_id, "s00000", 2, "boom", now=T0 + 2)
    assert (r2.next_attempt, r2.retry_at) == (3, T0 + 2 + 2.0)
    (d3,) = engine.sweep(now=T0 + 4).dispatches
    assert d3.attempt == 3
    r3 = engine.fail(job_id, "s00000", 3, "boom again", now=T0 + 5)
    assert r3.job_failed
    job = engine.get_job(job_id)
    assert job.state is JobState.FAILED
    assert job.error is not None and "s00000" in job.error and "boom again" in job.error
    assert engine.leased_tasks(job_id) == []
    assert all(t.state is not TaskState.LEASED for t in engine.iter_tasks(job_id))
    assert engine.task(job_id, "s00000").state is TaskState.FAILED
    assert engine.gauges().running == 0
    types = [e.type for e in engine.follow(job_id)]
    assert types.count("task.retry") == 2 and types[-1] == "job.failed"


def test_lease_expiry_redispatches_then_fails_after_max_attempts(engine: JobEngine) -> None:
    job_id = running_job(engine, 2)
    engine.lease_next(job_id, 2, now=T0)
    engine.complete(job_id, "s00001", 1, {"cid": "B"})
    now = T0
    for attempt in (1, 2):
        now += 10.0  # lease runs out
        expired = engine.sweep(now=now)
        assert expired.expired == 1 and expired.dispatches == []
        now += engine.config.backoff(attempt)
        (d,) = engine.sweep(now=now).dispatches
        assert (d.task_id, d.attempt, d.lease_deadline) == ("s00000", attempt + 1, now + 10.0)
        assert engine.sweep(now=now).dispatches == []  # nobody gets it twice
    final = engine.sweep(now=now + 10.0)
    assert final.failed_jobs == [job_id]
    job = engine.get_job(job_id)
    assert job.state is JobState.FAILED and job.error is not None
    assert "lease expired" in job.error
    assert engine.leased_tasks(job_id) == []
    assert job.total.leased == 0


def test_concurrent_sweeps_dispatch_each_task_once(engine: JobEngine, client: redis.Redis) -> None:
    job_id = running_job(engine, 200)
    engine.lease_next(job_id, 200, now=T0)
    engine.sweep(now=T0 + 10)  # all expire, due at +11
    got: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        own = JobEngine(client, engine.config)
        report = own.sweep(now=T0 + 11)
        with lock:
            got.extend(d.task_id for d in report.dispatches)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(got) == [f"s{i:05d}" for i in range(200)]


def test_fail_job_releases_everything(engine: JobEngine) -> None:
    job_id = running_job(engine, 3)
    engine.lease_next(job_id, 3)
    report = engine.fail_job(job_id, "merge failed")
    assert len(report.released) == 3
    job = engine.get_job(job_id)
    assert job.state is JobState.FAILED and job.error == "merge failed"
    assert engine.leased_tasks(job_id) == []
    with pytest.raises(Conflict):
        engine.fail_job(job_id, "again")


# --------------------------------------------------------------- progress
def test_follow_streams_every_state_change(engine: JobEngine) -> None:
    job_id = running_job(engine, 1)
    engine.lease_next(job_id, 1)
    engine.complete(job_id, "s00000", 1, {})
    engine.emit(job_id, "task.verified", task="s00000", distance=3)
    engine.complete_job(job_id, manifest="bafyM")
    events = engine.follow(job_id)
    assert [e.type for e in events] == [
        "job.accepted",
        "job.started",
        "task.leased",
        "task.done",
        "task.verified",
        "job.completed",
    ]
    assert events[2].fields == {
        "stage": "transcode",
        "count": "1",
        "first": "s00000",
        "last": "s00000",
    }
    assert events[3].fields == {"task": "s00000", "stage": "transcode", "attempt": "1"}
    assert events[4].fields["distance"] == "3"
    assert engine.follow(job_id, events[-1].id) == []


def test_follow_blocks_until_an_event_arrives(engine: JobEngine) -> None:
    job_id = engine.create_job({})
    last = engine.follow(job_id)[-1].id
    timer = threading.Timer(0.2, lambda: engine.emit(job_id, "job.merge"))
    timer.start()
    try:
        events = engine.follow(job_id, last, block_ms=5000)
    finally:
        timer.join(timeout=5)
    assert [e.type for e in events] == ["job.merge"]
    assert engine.follow(job_id, events[-1].id, block_ms=50) == []


# ---------------------------------------------------------------- metrics
def test_gauges_count_jobs_and_tasks(engine: JobEngine) -> None:
    job_id = running_job(engine, 4)
    engine.create_job({})
    engine.lease_next(job_id, 3)
    engine.complete(job_id, "s00000", 1, {})
    g = engine.gauges()
    assert g.jobs["queued"] == 1 and g.jobs["running"] == 1
    assert g.queue_depth == 1 and g.leases == 2
    assert g.tasks[("transcode", "total")] == 4
    assert g.tasks[("transcode", "done")] == 1
    assert g.tasks[("transcode", "leased")] == 2
    assert g.tasks[("transcode", "pending")] == 1
    engine.cancel(job_id)
    assert engine.gauges().jobs["cancelled"] == 1


# ------------------------------------------------------------ redis down
def test_redis_down_is_state_unavailable() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tests.conftest import free_port

    dead = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    engine = JobEngine(dead)
    with pytest.raises(StateUnavailable):
        engine.create_job({})
    with pytest.raises(StateUnavailable):
        engine.complete("01ARZ3NDEKTSV4RRFFQ69G5FAV", "t", 1, {})
    with pytest.raises(StateUnavailable):
        engine.sweep()


def test_engine_works_with_a_decoding_client(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        engine = JobEngine(conn)
        job_id = running_job(engine, 2)
        (a, b) = engine.lease_next(job_id, 5)
        engine.complete(job_id, a.task_id, 1, {"cid": "A"})
        done = engine.complete(job_id, b.task_id, 1, {"cid": "B"})
        assert done.all_done
        assert engine.get_job(job_id).counts["transcode"].done == 2
        assert [e.type for e in engine.follow(job_id)][-1] == "task.done"
        assert engine.list_jobs().jobs[0].job_id == job_id
    finally:
        conn.close()


def test_lease_next_fills_its_limit_past_already_leased_tasks(engine: JobEngine) -> None:
    job_id = running_job(engine, 4)
    assert engine.lease(job_id, "s00000") is not None
    assert [d.task_id for d in engine.lease_next(job_id, 2)] == ["s00001", "s00002"]
    assert [d.task_id for d in engine.lease_next(job_id, 5)] == ["s00003"]
    assert engine.lease_next(job_id, 5) == []
    assert engine.get_job(job_id).counts["transcode"].leased == 4


def test_connect_checks_the_url(redis_url: str) -> None:
    from kinoit.jobs import connect

    from tests.conftest import free_port

    assert connect(redis_url).ping()
    with pytest.raises(StateUnavailable):
        connect(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(InvalidParameter):
        connect("nonsense://x")


def test_bulk_add_and_lease_in_many_small_batches(client: redis.Redis) -> None:
    engine = JobEngine(client, EngineConfig(batch_size=2))
    job_id = engine.create_job({})
    engine.promote()
    assert engine.add_tasks(job_id, "transcode", ((f"s{i:05d}", None) for i in range(41))) == 41
    assert engine.add_tasks(job_id, "transcode", ((f"s{i:05d}", None) for i in range(45))) == 4
    leased = engine.lease_next(job_id, 100)
    assert [d.task_id for d in leased] == [f"s{i:05d}" for i in range(45)]
    assert engine.get_job(job_id).counts["transcode"].total == 45


def test_iterating_tasks_with_redis_down_is_state_unavailable() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tests.conftest import free_port

    dead = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(StateUnavailable):
        list(JobEngine(dead).iter_results("01ARZ3NDEKTSV4RRFFQ69G5FAV"))


# ---------------------------------------------------------- complete_step
def test_complete_step_adds_records_applies_effects_and_leases_in_one_call(
    engine: JobEngine, client: redis.Redis
) -> None:
    job_id = running_job(engine, n=2)
    client.set("kinoit:cache:abc", '{"cid":"cached"}')
    (first,) = engine.lease_next(job_id, 1)
    completion, leased = engine.complete_step(
        job_id,
        first.task_id,
        first.attempt,
        {"cid": "A"},
        followups=[("checksum", [("c00000", {"cache": "abc"}), ("c00001", None)])],
        effects=[HashIncrement("test:metric", "done")],
        lease=3,
    )
    assert completion.accepted and not completion.all_done
    assert (completion.done, completion.total) == (1, 4)  # follow-ups counted first
    assert [(d.task_id, d.stage, d.payload, d.cached) for d in leased] == [
        ("s00001", "transcode", {"i": 1}, None),
        ("c00000", "checksum", {"cache": "abc"}, '{"cid":"cached"}'),
        ("c00001", "checksum", {}, None),
    ]
    assert client.hget("test:metric", "done") == b"1"
    assert engine.task(job_id, first.task_id).result == {"cid": "A"}


def test_complete_step_followups_first_are_leased_before_the_pending_tasks(
    engine: JobEngine,
) -> None:
    job_id = running_job(engine, n=3)
    (first,) = engine.lease_next(job_id, 1)
    _, leased = engine.complete_step(
        job_id, first.task_id, first.attempt, {"cid": "A"},
        followups=[("checksum", [("c00000", None), ("c00001", None)])],
        lease=3, followups_first=True,
    )  # fmt: skip
    assert [d.task_id for d in leased] == ["c00000", "c00001", "s00001"]
    assert [d.task_id for d in engine.lease_next(job_id, 5)] == ["s00002"]


def test_complete_step_settles_tasks_done_once_and_counts_them_for_all_done(
    engine: JobEngine,
) -> None:
    job_id = running_job(engine, n=1)
    (first,) = engine.lease_next(job_id, 1)
    completion, _ = engine.complete_step(
        job_id, first.task_id, first.attempt, {"cid": "A"},
        settled=[("transcode", [("s00001", {"cid": "B"})]), ("thumbnail", [("t00000", {})])],
    )  # fmt: skip
    # the result and the two settled tasks: every task done, so the job's all done
    assert completion.accepted and completion.all_done
    assert (completion.done, completion.total) == (3, 3)
    assert engine.task(job_id, "s00001").result == {"cid": "B"}
    assert engine.task(job_id, "s00001").state.value == "done"
    counts = engine.get_job(job_id).counts
    assert (counts["transcode"].done, counts["thumbnail"].total) == (2, 1)
    assert engine.lease_next(job_id, 5) == []  # nothing settled is ever dispatched


def test_complete_step_does_not_settle_a_task_the_job_already_has(engine: JobEngine) -> None:
    job_id = running_job(engine, n=2)
    (first,) = engine.lease_next(job_id, 1)
    completion, _ = engine.complete_step(
        job_id, first.task_id, first.attempt, {"cid": "A"},
        settled=[("transcode", [("s00001", {"cid": "B"})])],
    )  # fmt: skip
    # s00001 was pending: it stays pending, with no result, and still counts as to do
    assert (completion.done, completion.total) == (1, 2) and not completion.all_done
    assert engine.task(job_id, "s00001").result is None
    assert [d.task_id for d in engine.lease_next(job_id, 5)] == ["s00001"]


def test_complete_step_refused_result_adds_applies_and_leases_nothing(
    engine: JobEngine, client: redis.Redis
) -> None:
    job_id = running_job(engine, n=2)
    (first,) = engine.lease_next(job_id, 1)
    assert engine.complete(job_id, first.task_id, 1, {"cid": "A"}).accepted
    completion, leased = engine.complete_step(
        job_id, first.task_id, 1, {"cid": "B"},
        followups=[("checksum", [("c00000", None)])],
        effects=[HashIncrement("test:metric", "done")], lease=5,
    )  # fmt: skip
    assert completion.duplicate and leased == []
    assert client.hget("test:metric", "done") is None
    assert engine.get_job(job_id).counts["*"].total == 2
    engine.cancel(job_id)
    completion, leased = engine.complete_step(job_id, "s00001", 1, {"cid": "C"}, lease=1)
    assert completion.ignored and leased == []


def test_completed_job_drops_payloads_and_keeps_its_last_events(
    client: redis.Redis,
) -> None:
    engine = JobEngine(client, EngineConfig(finished_events=3))
    job_id = running_job(engine, n=4)
    for d in engine.lease_next(job_id, 4):
        engine.complete(job_id, d.task_id, 1, {"cid": d.task_id})
    engine.complete_job(job_id, manifest="bafyM")
    assert not client.exists(f"kinoit:job:{job_id}:payloads")
    events = engine.follow(job_id)
    assert [e.type for e in events] == ["task.done", "task.done", "job.completed"]
    assert engine.results(job_id, "transcode")["s00003"] == {"cid": "s00003"}
