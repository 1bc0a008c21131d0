"""merge per rung through orchestrate: one ``merge.<rung>`` task per rung, sent
together once every segment is verified, then the final ``merge`` over their
results; retries, failures, the result cache and a lost step (real Redis, the
embedded store, the functions scripted)."""

from __future__ import annotations

from typing import Any

import pytest
from kinoit.service.merge_tasks import final_task, merge_rungs, rung_tasks
from kinoit.service.planning import JOB_CACHE_STAGE, request_for
from kinoit.stages.merge_media import MEDIA_FIELDS
from kinoit.stages.merge_parts import PART_FIELDS

from .conftest import Call, Harness

LADDER = {
    "name": "two",
    "rungs": [
        {"name": "90p", "codec": "h264", "height": 90, "crf": 30, "preset": "ultrafast"},
        {"name": "48p", "codec": "h264", "height": 48, "crf": 30, "preset": "ultrafast"},
    ],
}


def answer_all_but_merge(harness: Harness) -> list[Call]:
    """Answer every call (and those they cause) but the merge calls; those, unanswered."""
    held = []
    while harness.calls:
        call = harness.calls.pop(0)
        if call.function == "merge":
            held.append(call)
        else:
            harness.answer(call)
    return held


def test_every_rung_is_merged_at_once_then_the_final_task_over_their_results(
    harness: Harness,
) -> None:
    job_id = harness.submit(ladder=LADDER)
    merges = answer_all_but_merge(harness)
    # both rung tasks and the media part sent together, before any answered; no final yet
    assert sorted(c.task_id for c in merges) == ["merge.48p", "merge.90p", "merge._media"]
    status, grid = harness.request("GET", f"/jobs/{job_id}/segments")
    assert status == 200 and grid["merge"] == "leased"
    assert grid["merge_rungs"] == {"48p": "leased", "90p": "leased"}
    assert {c.body.get("rung") for c in merges} == {"48p", "90p", None}
    assert len({c.body["plan"] for c in merges}) == 1
    results = {}
    for call in sorted(merges, key=lambda c: c.task_id):  # merge._media last
        name = call.body.get("rung") or "media"
        results[name] = harness.result_for(call)
        assert harness.answer(call, 200, results[name])[1]["status"] == "accepted"
        # the final task only once the last part is in
        assert [c.task_id for c in harness.calls] == ([] if len(results) < 3 else ["merge"])
        grid = harness.request("GET", f"/jobs/{job_id}/segments")[1]
        assert grid["merge"] == "leased"
    assert grid["merge_rungs"] == {"48p": "done", "90p": "done"}
    final = harness.calls.pop(0)
    media = results.pop("media")
    assert final.body["rungs"] == {
        rung: {k: result[k] for k in PART_FIELDS} for rung, result in results.items()
    }
    assert final.body["media"] == {k: media[k] for k in MEDIA_FIELDS}
    assert harness.answer(final)[1]["status"] == "accepted"
    job = harness.job(job_id)
    assert job["state"] == "completed", job
    assert job["outputs"]["mp4"] == {r: results[r]["mp4"][r] for r in ("48p", "90p")}
    assert job["stages"]["merge"]["done"] == 4
    # the intermediates are released: one pin, the job's root
    assert [p.cid for p in harness.store.pin_ls()] == [job["manifest"]]


def test_a_second_job_replays_every_merge_task_from_the_result_cache(harness: Harness) -> None:
    first = harness.submit(ladder=LADDER)
    harness.drain()
    done = harness.job(first)
    spec = harness.pipeline.spec(first)
    # a job entry the job-level cache will not answer with: every task runs again
    old = {k: v for k, v in done["outputs"].items() if k != "directory"}
    harness.pipeline.cache.put(
        JOB_CACHE_STAGE,
        spec.source,
        spec.reuse_key(),
        {"manifest": done["manifest"], "outputs": old},
    )
    second = harness.submit(ladder=LADDER)
    assert harness.drain() == []  # every task, the rung merges and the final, from the cache
    job = harness.job(second)
    assert job["state"] == "completed" and job["outputs"] == done["outputs"]
    assert job["stages"]["merge"]["done"] == 4


def test_rung_cache_keys_are_per_rung_and_the_finals_is_the_one_task_merges(
    harness: Harness,
) -> None:
    spec = harness.pipeline.spec(harness.submit(ladder=LADDER))
    plan = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    assert merge_rungs(LADDER) == ["48p", "90p"]
    digests = {
        request_for(spec, "merge", payload or {}).cache_digest("merge")
        for _, payload in rung_tasks(plan, merge_rungs(LADDER))
    }
    one_task = request_for(spec, "merge", {"plan": plan}).cache_digest("merge")
    assert len(digests) == 3 and one_task not in digests  # two rungs and the media part
    ((_, final),) = final_task(plan, {}, None)
    assert request_for(spec, "merge", final or {}).cache_digest("merge") == one_task


def test_a_failed_rung_merge_is_retried(harness: Harness) -> None:
    job_id = harness.submit(ladder=LADDER)
    merges = answer_all_but_merge(harness)
    failing = next(c for c in merges if c.task_id == "merge.48p")
    _, reply = harness.answer(failing, 500, {"error": "MediaError", "message": "killed"})
    assert reply["status"] == "retry"
    harness.request("POST", "/tick")  # the backoff is 0 here: sent again at once
    again = [c for c in harness.calls if c.task_id == "merge.48p"]
    assert again and again[0].attempt == 2
    harness.calls += [c for c in merges if c is not failing]  # the other rung's answer
    harness.drain()
    job = harness.job(job_id)
    assert job["state"] == "completed" and job["stages"]["merge"]["retries"] == 1


def test_a_rung_merge_that_fails_fails_the_job_with_its_reason(harness: Harness) -> None:
    job_id = harness.submit(ladder=LADDER)
    merges = answer_all_but_merge(harness)
    failing = next(c for c in merges if c.task_id == "merge.90p")
    reason = {"error": "MediaError", "message": "merge: audio lasts 3.000s, video 2.000s"}
    harness.answer(failing, 400, reason)
    job = harness.job(job_id)
    assert job["state"] == "failed"
    assert job["error"] == "merge.90p: MediaError: merge: audio lasts 3.000s, video 2.000s"
    # the other rung's answer changes nothing, and no final task is ever sent
    other = next(c for c in merges if c.task_id == "merge.48p")
    assert harness.answer(other)[1]["status"] in {"ignored", "duplicate"}
    assert not [c for c in harness.calls if c.function == "merge"]
    job = harness.job(job_id)
    assert job["tasks"]["leased"] == 0
    assert [p.cid for p in harness.store.pin_ls()] == []


def test_a_lost_final_step_is_redone_by_tick(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kinoit.errors import StoreUnavailable

    job_id = harness.submit(ladder=LADDER)
    real_emit = harness.engine.emit
    lost: list[str] = []

    def emit(job: str, type: str, **fields: Any) -> str:
        if type == "job.merge_final" and not lost:
            lost.append(job)
            raise StoreUnavailable("redis went away")
        return real_emit(job, type, **fields)

    monkeypatch.setattr(harness.engine, "emit", emit)
    answered = harness.drain()
    assert lost == [job_id]
    assert sorted(c.task_id for c in answered if c.function == "merge") == [
        "merge.48p", "merge.90p", "merge._media"
    ]  # fmt: skip
    assert harness.job(job_id)["state"] == "running"
    now = [harness.pipeline.clock()]
    harness.pipeline.clock = lambda: now[0]
    harness.request("POST", "/tick")
    assert not harness.calls  # not yet: it might still be in progress elsewhere
    now[0] += 31
    harness.request("POST", "/tick")
    assert [c.task_id for c in harness.calls] == ["merge"]
    harness.drain()
    assert harness.job(job_id)["state"] == "completed"


def test_only_the_rungs_the_transcodes_made_are_merged(harness: Harness) -> None:
    # a rung taller than the source is not made: the plan, and so the merge, lacks it
    job_id = harness.submit(ladder=LADDER)

    def smaller(call: Call) -> tuple[int, Any] | None:
        if call.function != "transcode-segment":
            return None
        result = harness.result_for(call)
        result["renditions"] = {"90p": result["renditions"]["90p"]}
        return (200, result)

    answered = harness.drain(decide=smaller)
    merged = [c.task_id for c in answered if c.function == "merge"]
    assert sorted(merged[:2]) == ["merge.90p", "merge._media"] and merged[2:] == ["merge"]
    job = harness.job(job_id)
    assert job["state"] == "completed" and set(job["outputs"]["mp4"]) == {"90p"}
