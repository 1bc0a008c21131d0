"""GET /jobs/<id>/segments: the segment grid, thumbnails and checksum distances."""

from __future__ import annotations

from kinoit.media.checksum import THRESHOLDS
from kinoit.service.segments import rung_threshold

from tests.service.conftest import Harness


def view(harness: Harness, job_id: str) -> dict:
    status, body = harness.request("GET", f"/jobs/{job_id}/segments")
    assert status == 200, body
    return dict(body)


def states(body: dict, stage: str) -> list[str]:
    return [cell[0] for cell in body["grid"][stage]]


def test_the_grid_follows_every_task(harness: Harness) -> None:
    job_id = harness.submit()
    before = view(harness, job_id)
    assert (before["segments"], before["split"], before["state"]) == (0, "leased", "running")
    assert before["grid"] == {"transcode": [], "thumbnail": [], "checksum": []}
    harness.answer(harness.calls.pop(0))  # split: the fan-out of 3 segments
    fanned = view(harness, job_id)
    assert fanned["segments"] == 3 and fanned["split"] == "done"
    assert set(states(fanned, "transcode")) <= {"leased", "pending"}
    assert states(fanned, "checksum") == ["pending"] * 3
    assert fanned["thumbnails"] == [None] * 3
    thumb = next(c for c in harness.calls if c.task_id == "thumbnail.1")
    harness.calls.remove(thumb)
    harness.answer(thumb, 500, {"error": "MediaError", "message": "boom"})
    retry = view(harness, job_id)
    assert retry["grid"]["thumbnail"][1] == ["retrying", 2, False]
    harness.drain()
    harness.pipeline.tick()  # the retry is due: sent again
    harness.drain()
    done = view(harness, job_id)
    assert done["state"] == "completed" and done["merge"] == "done"
    assert done["merge_rungs"] == {"90p": "done"}
    for stage in ("transcode", "thumbnail", "checksum"):
        assert states(done, stage) == ["done"] * 3
    assert done["grid"]["thumbnail"][1] == ["done", 2, False]
    assert done["grid"]["transcode"][0] == ["done", 1, False]
    assert all(isinstance(cid, str) and cid.startswith("baf") for cid in done["thumbnails"])
    assert done["checksum"]["rungs"] == ["90p"]
    assert done["checksum"]["max_distance"] == {"90p": [1, 1, 1]}
    assert done["checksum"]["verdict"] == {"90p": ["match"] * 3}
    assert done["checksum"]["threshold"] == {"90p": THRESHOLDS["small"].hash_max}


def test_a_rerun_after_a_mismatch_shares_its_segment_cell(harness: Harness) -> None:
    job_id = harness.submit()
    mismatched = False

    def decide(call):  # type: ignore[no-untyped-def]
        nonlocal mismatched
        if call.function == "checksum" and call.task_id == "checksum.2" and not mismatched:
            mismatched = True
            result = harness.result_for(call)
            result["rungs"]["90p"] = {"max_distance": 40, "verdict": "mismatch", "reason": "x"}
            return 200, {**result, "ok": False, "failed": ["content"], "reason": "90p: content"}
        return None

    harness.drain(decide=decide)
    body = view(harness, job_id)
    assert body["state"] == "completed"
    assert body["grid"]["transcode"][2] == ["done", 2, True]
    assert body["grid"]["checksum"][2] == ["done", 2, True]
    assert body["checksum"]["max_distance"]["90p"] == [1, 1, 1]  # the re-run's distances


def test_segments_of_an_unknown_job_is_404_and_needs_the_token(harness: Harness) -> None:
    status, _ = harness.request("GET", "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/segments")
    assert status == 404
    status, _ = harness.request("GET", "/jobs/nope/segments")
    assert status == 404
    status, _ = harness.request("GET", "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/segments", token=None)
    assert status == 401


def test_rung_thresholds_follow_the_size_class() -> None:
    assert rung_threshold({"height": 288}) == THRESHOLDS["small"].hash_max
    assert rung_threshold({"height": 720}) == THRESHOLDS["large"].hash_max
    assert rung_threshold({"width": 200}) == THRESHOLDS["small"].hash_max


def test_a_finished_task_is_read_once_and_an_unfinished_one_every_time(harness: Harness) -> None:
    from kinoit.jobs import keys

    job_id = harness.submit()
    harness.answer(harness.calls.pop(0))  # split
    harness.answer(next(c for c in harness.calls if c.task_id == "thumbnail.0"))
    first = view(harness, job_id)
    assert first["grid"]["thumbnail"][0] == ["done", 1, False]
    assert first["grid"]["thumbnail"][2][0] in {"pending", "leased"}
    tasks_key = keys.JOB_TASKS_KEY.format(job_id=job_id)
    # rewritten behind the engine's back: a finished task's entry is not read again,
    # an unfinished one's is
    harness.service.redis.hset(tasks_key, "thumbnail.0", "F1|thumbnail|rewritten")
    harness.service.redis.hset(tasks_key, "thumbnail.2", "P3|thumbnail|")
    second = view(harness, job_id)
    assert second["grid"]["thumbnail"][0] == ["done", 1, False]
    assert second["grid"]["thumbnail"][2] == ["retrying", 3, False]


def test_the_manifest_as_dag_json_once_the_job_is_done(harness: Harness) -> None:
    job_id = harness.submit()
    status, reply = harness.request("GET", f"/jobs/{job_id}/manifest")
    assert status == 404 and "no manifest" in reply["message"]
    harness.drain()
    job = harness.job(job_id)
    status, manifest = harness.request("GET", f"/jobs/{job_id}/manifest")
    assert status == 200
    assert manifest["source"]["cid"] == {"/": job["source"]}
    assert [s["index"] for s in manifest["segments"]] == [0, 1, 2]
    status, _ = harness.request("GET", f"/jobs/{job_id}/manifest", token=None)
    assert status == 401
