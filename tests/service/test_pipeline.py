"""The pipeline against real Redis and a real store, with scripted functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import LADDER, Call, Harness

pytestmark = pytest.mark.redis


def stages(calls: list[Call]) -> list[str]:
    return [c.task_id.split(".")[0] for c in calls]


def test_job_runs_split_fanout_checksum_merge_then_completes(harness: Harness) -> None:
    job_id = harness.submit()
    assert [c.function for c in harness.calls] == ["split"]
    answered = harness.drain()
    names = stages(answered)
    assert names.count("transcode") == 3 and names.count("thumbnail") == 3
    # one merge task per rung (the harness's ladder has one) and the media part, then
    # the final one
    assert names.count("checksum") == 3 and names.count("merge") == 3
    ids = [c.task_id for c in answered]
    assert sorted(ids[-3:-1]) == ["merge.90p", "merge._media"] and ids[-1] == "merge"
    job = harness.job(job_id)
    assert job["state"] == "completed"
    manifest = harness.store.dag_get(job["manifest"])
    assert [s["index"] for s in manifest["segments"]] == [0, 1, 2]
    assert all(s["attempts"] == 1 for s in manifest["segments"])
    assert set(manifest["outputs"]["mp4"]) == {"90p"}
    # one pin per job root; the intermediates held while running are released
    assert [p.cid for p in harness.store.pin_ls()] == [job["manifest"]]


def test_intermediates_are_pinned_while_running_and_kept_on_request(harness: Harness) -> None:
    job_id = harness.submit(keep_intermediates=True)
    split = harness.calls.pop(0)
    result = harness.result_for(split)
    harness.answer(split, 200, result)
    assert [p.cid for p in harness.store.pin_ls()] == [result["index"]]
    harness.drain()
    pins = {p.name for p in harness.store.pin_ls()}
    assert pins == {f"kinoit-job-{job_id}", f"kinoit-job-{job_id}-segments",
                    f"kinoit-job-{job_id}-renditions"}  # fmt: skip


def test_checksum_is_dispatched_only_after_its_transcode(harness: Harness) -> None:
    harness.submit()
    answered = harness.drain()
    order = [c.task_id for c in answered]
    for i in range(3):
        assert order.index(f"transcode.{i}") < order.index(f"checksum.{i}")


def test_duplicate_and_late_callbacks_count_once(harness: Harness) -> None:
    job_id = harness.submit()
    split = harness.calls.pop(0)
    result = harness.result_for(split)
    assert harness.answer(split, 200, result)[1]["status"] == "accepted"
    assert harness.answer(split, 200, result)[1]["status"] == "duplicate"
    transcode = next(c for c in harness.calls if c.task_id == "transcode.0")
    harness.calls.remove(transcode)
    first = harness.answer(transcode)
    again = harness.answer(transcode)
    assert first[1]["status"] == "accepted" and again[1]["status"] == "duplicate"
    counts = harness.job(job_id)["stages"]
    assert counts["transcode"]["done"] == 1 and counts["split"]["done"] == 1
    checksum_calls = [c for c in harness.calls if c.task_id == "checksum.0"]
    assert len(checksum_calls) == 1  # the duplicate did not dispatch a second checksum
    harness.drain()
    # a late duplicate after the job completed changes nothing
    assert harness.answer(transcode)[1]["status"] in {"duplicate", "ignored"}
    job = harness.job(job_id)
    assert job["state"] == "completed" and job["stages"]["merge"]["done"] == 3


def test_merge_is_dispatched_exactly_once_under_duplicates(harness: Harness) -> None:
    harness.submit()
    merges: list[str] = []

    def twice(call: Call) -> tuple[int, Any] | None:
        if call.function == "merge":
            merges.append(call.task_id)
        if call.function in ("checksum", "merge") and call.task_id != "merge":
            result = harness.result_for(call)
            harness.answer(call, 200, result)
            return (200, result)
        return None

    harness.drain(decide=twice)
    # every checksum and the rung's merge answered twice: each merge task sent once
    assert sorted(merges[:2]) == ["merge.90p", "merge._media"] and merges[2:] == ["merge"]


def test_checksum_mismatch_reruns_transcode_once(harness: Harness) -> None:
    job_id = harness.submit()
    seen: list[str] = []

    def mismatch_first(call: Call) -> tuple[int, Any] | None:
        seen.append(call.task_id)
        if call.task_id == "checksum.1":
            result = harness.result_for(call)
            return (200, {**result, "ok": False, "reason": "90p: frame 3 differs"})
        return None

    answered = harness.drain(decide=mismatch_first)
    assert "transcode.1.r2" in seen and "checksum.1.r2" in seen
    rerun = next(c for c in answered if c.task_id == "transcode.1.r2")
    assert (rerun.body["start_frame"], rerun.body["fps"]) == (25, "25/1")
    job = harness.job(job_id)
    assert job["state"] == "completed"
    manifest = harness.store.dag_get(job["manifest"])
    assert [s["attempts"] for s in manifest["segments"]] == [1, 2, 1]


def test_second_checksum_mismatch_fails_the_job_with_the_reason(harness: Harness) -> None:
    job_id = harness.submit()

    def always_mismatch(call: Call) -> tuple[int, Any] | None:
        if call.function == "checksum" and call.task_id.startswith("checksum.0"):
            result = harness.result_for(call)
            return (200, {**result, "ok": False, "reason": "90p: black frames"})
        return None

    answered = harness.drain(decide=always_mismatch)
    job = harness.job(job_id)
    assert job["state"] == "failed"
    assert "verification failed" in job["error"] and "black frames" in job["error"]
    assert "merge" not in stages(answered)
    assert job["tasks"]["leased"] == 0
    assert not harness.store.pin_ls()


def test_non_retryable_failure_fails_job_and_releases_leases(harness: Harness) -> None:
    job_id = harness.submit()
    split = harness.calls.pop(0)
    error = {"error": "NotAVideo", "message": "no video stream", "retryable": False}
    harness.answer(split, 400, error)
    job = harness.job(job_id)
    assert job["state"] == "failed" and "NotAVideo" in job["error"]
    assert job["tasks"]["leased"] == 0
    assert not harness.store.pin_ls()


def test_retryable_failure_is_redispatched_with_the_next_attempt(harness: Harness) -> None:
    job_id = harness.submit()
    split = harness.calls.pop(0)
    _, reply = harness.answer(split, 500, {"error": "MediaError", "message": "boom"})
    assert reply["status"] == "retry"
    harness.request("POST", "/tick")
    retried = [c for c in harness.calls if c.task_id == "split"]
    assert [c.attempt for c in retried] == [2]
    harness.drain()
    assert harness.job(job_id)["state"] == "completed"


def test_task_failing_every_attempt_fails_job(harness: Harness) -> None:
    job_id = harness.submit()
    for attempt in (1, 2, 3):
        call = harness.calls.pop(0)
        assert (call.task_id, call.attempt) == ("split", attempt)
        harness.answer(call, 500, {"error": "MediaError", "message": "ffmpeg died"})
        harness.request("POST", "/tick")
    job = harness.job(job_id)
    assert job["state"] == "failed" and "ffmpeg died" in job["error"]
    assert not harness.calls


def test_expired_lease_is_redispatched_and_late_result_still_counts(
    harness_factory: Callable[..., Harness],
) -> None:
    harness = harness_factory(KINOIT_LEASE_SECONDS="0.1")
    job_id = harness.submit()
    lost = harness.calls.pop(0)
    import time

    time.sleep(0.2)  # the lease deadline is wall-clock time; nothing to await
    harness.request("POST", "/tick")
    retry = harness.calls.pop(0)
    assert (retry.task_id, retry.attempt) == ("split", 2)
    # the lost worker's answer arrives late: accepted once, the retry is then a duplicate
    assert harness.answer(lost)[1]["status"] == "accepted"
    assert harness.answer(retry)[1]["status"] == "duplicate"
    assert harness.job(job_id)["stages"]["split"]["done"] == 1


def test_resubmitting_the_same_source_reuses_the_manifest(harness: Harness) -> None:
    first = harness.submit()
    harness.drain()
    manifest = harness.job(first)["manifest"]
    second = harness.submit()
    assert not harness.calls  # nothing recomputed
    job = harness.job(second)
    assert job["state"] == "completed" and job["manifest"] == manifest


def test_jobs_run_one_at_a_time_in_fifo_order(harness: Harness) -> None:
    sources = [harness.store.add_bytes(f"video {n}".encode(), pin=False) for n in range(3)]
    ids = [harness.submit(source=source) for source in sources]
    states = [harness.job(j)["state"] for j in ids]
    assert states == ["running", "queued", "queued"]
    order: list[str] = []

    def track(call: Call) -> None:
        if not order or order[-1] != call.job_id:
            order.append(call.job_id)

    harness.drain(decide=lambda c: track(c))
    assert order == ids
    assert [harness.job(j)["state"] for j in ids] == ["completed"] * 3


def test_cancel_stops_fanout_and_ignores_late_callbacks(harness: Harness) -> None:
    job_id = harness.submit()
    split = harness.calls.pop(0)
    harness.answer(split)
    status, reply = harness.request("DELETE", f"/jobs/{job_id}")
    assert status == 200 and reply["state"] == "cancelled"
    assert reply["released"] > 0
    pending = list(harness.calls)
    harness.calls.clear()
    for call in pending:
        assert harness.answer(call)[1]["status"] in {"ignored", "duplicate"}
    assert not harness.calls
    job = harness.job(job_id)
    assert job["state"] == "cancelled" and job["tasks"]["leased"] == 0
    assert harness.request("DELETE", f"/jobs/{job_id}")[0] == 409
    assert not harness.store.pin_ls()


def test_cancelled_job_frees_the_slot_for_the_next(harness: Harness) -> None:
    first, second = harness.submit(), harness.submit(metadata={"k": 1})
    assert harness.job(second)["state"] == "queued"
    harness.request("DELETE", f"/jobs/{first}")
    assert harness.job(second)["state"] == "running"


def test_webhooks_are_queued_for_the_job_lifecycle(harness: Harness) -> None:
    import json

    import redis as redis_lib
    from kinoit.jobs import keys

    job_id = harness.submit(callback_url="http://127.0.0.1:9/hook")
    harness.drain()
    client = redis_lib.Redis.from_url(harness.service.settings.redis_url or "")
    types = []
    for msg_id in client.zrange(keys.WEBHOOK_DUE_KEY, 0, -1):
        raw = client.hget(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id.decode()), "body")
        body = json.loads(raw or b"{}")
        assert body["data"]["job_id"] == job_id
        types.append(body["type"])
    assert types[0] == "job.accepted" and "job.started" in types
    assert types[-1] == "job.completed"
    client.close()


def test_cached_results_are_not_reused_when_their_cids_are_gone(
    harness_factory: Callable[..., Harness], tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = harness_factory()
    first.submit()
    first.drain()
    # same Redis (and so the same result cache), but an empty store
    second = harness_factory(KINOIT_HOME=str(tmp_path_factory.mktemp("empty-home")))
    job_id = second.submit()
    answered = second.drain()
    assert stages(answered).count("transcode") == 3 and "merge" in stages(answered)
    assert second.job(job_id)["state"] == "completed"


def test_a_lost_merge_step_is_redone_by_tick(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kinoit.errors import StoreUnavailable

    job_id = harness.submit()
    real_dag_put = harness.store.dag_put
    failures = []

    def flaky_dag_put(value: Any, **kwargs: Any) -> str:
        if isinstance(value, dict) and "pages" in value and "ladder" in value and not failures:
            failures.append(1)
            raise StoreUnavailable("store went away")
        return real_dag_put(value, **kwargs)

    monkeypatch.setattr(harness.store, "dag_put", flaky_dag_put)
    answered = harness.drain()
    assert failures and "merge" not in stages(answered)
    assert harness.job(job_id)["state"] == "running"
    now = [harness.pipeline.clock()]
    harness.pipeline.clock = lambda: now[0]
    harness.request("POST", "/tick")
    assert not harness.calls  # not yet: it might still be in progress elsewhere
    now[0] += 31
    harness.request("POST", "/tick")
    assert sorted(c.task_id for c in harness.calls) == ["merge.90p", "merge._media"]
    harness.drain()
    assert harness.job(job_id)["state"] == "completed"


def test_long_manifests_link_pages_and_export_expands_them(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import json

    from kinoit import documents
    from kinoit.local.run import export_outputs
    from kinoit.manifest import expand_segments
    from kinoit.service import job_end
    from kinoit.store.cid import CID

    monkeypatch.setattr(job_end, "MANIFEST_INLINE_SEGMENTS", 2)
    monkeypatch.setattr(documents, "PAGE_SIZE", 2)
    job_id = harness.submit()
    harness.drain()
    cid = harness.job(job_id)["manifest"]
    manifest = harness.store.dag_get(cid)
    assert len(manifest["segments"]) == 2 and all(isinstance(s, CID) for s in manifest["segments"])
    entries = expand_segments(manifest, harness.store)
    assert [e["index"] for e in entries] == [0, 1, 2]
    export_outputs(harness.store, cid, tmp_path / "out")
    view = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["index"] for s in view["segments"]] == [0, 1, 2]
    assert len(list((tmp_path / "out" / "thumbs").iterdir())) == 3


def test_overlapping_jobs_on_one_source_keep_each_others_intermediates(
    harness_factory: Callable[..., Harness],
) -> None:
    harness = harness_factory(KINOIT_MAX_ACTIVE_JOBS="2")
    first, second = harness.submit(), harness.submit(metadata={"job": 2})
    assert harness.job(second)["state"] == "running"
    split_b = next(c for c in harness.calls if c.job_id == second)
    harness.calls.remove(split_b)
    index = harness.result_for(split_b)["index"]
    harness.answer(split_b)
    # the first job runs to the end while the second still needs the same segments
    while harness.job(first)["state"] == "running":
        call = next(c for c in harness.calls if c.job_id == first)
        harness.calls.remove(call)
        harness.answer(call)
    assert harness.job(first)["state"] == "completed"
    manifest = harness.job(first)["manifest"]
    assert {p.cid for p in harness.store.pin_ls()} == {manifest, index}
    harness.drain()
    assert harness.job(second)["state"] == "completed"
    assert harness.job(second)["manifest"] == manifest
    assert [p.cid for p in harness.store.pin_ls()] == [manifest]


def test_a_running_job_without_tasks_is_started_again_by_tick(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kinoit.errors import StateUnavailable

    real_add_tasks = harness.engine.add_tasks
    crashes = []

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        if not crashes:
            crashes.append(1)  # orchestrate died between promote and add_tasks
            raise StateUnavailable("Redis unreachable")
        return real_add_tasks(*args, **kwargs)

    monkeypatch.setattr(harness.engine, "add_tasks", crash_once)
    source = harness.store.add_bytes(b"v", pin=False)
    status, reply = harness.request("POST", "/", {"source": source, "ladder": LADDER})
    # accepted all the same: a 503 would invite the client to submit a duplicate job
    assert status == 202 and crashes and not harness.calls
    job_id = reply["job_id"]
    job = harness.job(job_id)
    assert job["state"] == "running" and job["tasks"]["total"] == 0
    now = [harness.pipeline.clock()]
    harness.pipeline.clock = lambda: now[0]
    harness.request("POST", "/tick")
    assert not harness.calls
    now[0] += 31
    harness.request("POST", "/tick")
    assert [c.function for c in harness.calls] == ["split"]
    harness.drain()
    assert harness.job(job_id)["state"] == "completed"


def test_outputs_expire_as_asked_and_a_reuse_pins_them_for_itself(harness: Harness) -> None:
    import time

    first = harness.submit(outputs_expire_in=3600)
    harness.drain()
    manifest = harness.job(first)["manifest"]
    (pin,) = harness.store.pin_ls()
    assert pin.cid == manifest and pin.expires_at == pytest.approx(time.time() + 3600, abs=60)
    harness.store.pin_rm(manifest)  # e.g. someone unpinned the first job's outputs
    second = harness.submit()  # same source and ladder: reused, kept with no expiry
    assert not harness.calls and harness.job(second)["manifest"] == manifest
    (pin,) = harness.store.pin_ls()
    assert pin.cid == manifest and pin.expires_at is None


def test_tasks_whose_leases_run_out_fail_the_job_and_release_everything(
    harness_factory: Callable[..., Harness],
) -> None:
    harness = harness_factory(KINOIT_MAX_ATTEMPTS="2", KINOIT_LEASE_SECONDS="60")
    job_id = harness.submit()
    harness.answer(harness.calls.pop(0))  # split: the segment index is pinned now
    assert harness.store.pin_ls()
    lost = list(harness.calls)  # every worker dies: no callback ever comes
    harness.calls.clear()
    now = [harness.engine.clock()]
    harness.engine.clock = lambda: now[0]
    for _ in range(2):  # each attempt's lease expires in turn
        now[0] += 61
        harness.request("POST", "/tick")
    job = harness.job(job_id)
    assert job["state"] == "failed" and "attempt" in job["error"], job
    assert job["tasks"]["leased"] == 0
    assert not harness.store.pin_ls()
    harness.calls.clear()
    for call in lost:  # the lost workers' answers, far too late
        assert harness.answer(call)[1]["status"] in {"ignored", "duplicate"}
    assert not harness.calls and not harness.store.pin_ls()


def test_a_hanging_webhook_receiver_does_not_hold_up_the_lease_sweep(
    harness_factory: Callable[..., Harness],
) -> None:
    import threading
    import time

    from kinoit.service import start_background

    harness = harness_factory(KINOIT_LEASE_SECONDS="0.3")
    release = threading.Event()
    draining = threading.Event()

    def hanging_drain() -> None:  # a receiver that never answers
        draining.set()
        release.wait(30)

    harness.pipeline.notifier.drain = hanging_drain  # type: ignore[method-assign]
    harness.submit()
    lost = harness.calls.pop(0)
    start_background(harness.service, 0.05)
    try:
        assert draining.wait(10), "webhook delivery never ran"
        deadline = time.monotonic() + 10
        while not any(c.task_id == lost.task_id and c.attempt == 2 for c in harness.calls):
            assert time.monotonic() < deadline, "the expired lease was never swept"
            time.sleep(0.05)
    finally:
        harness.service.stopped.set()
        release.set()
