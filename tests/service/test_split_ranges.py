"""A split in ranges through the real orchestrate (real Redis, real store), the split
function answering as it does for a long source: the first task returns a plan,
each range task its own index, the audio task the audio."""

from __future__ import annotations

from typing import Any

from kinoit.documents import SegmentRef, write_split_index
from kinoit.stages.merge import read_plan

from tests.service.conftest import Call, Harness

RANGES = [(0, 1), (2, 3), (4, 5)]
SOURCE = {"frames": 150, "fps": "25/1", "width": 160, "height": 90}


def ranged_result(harness: Harness, call: Call) -> dict[str, Any]:
    """What the split function answers a first task, a range task or the audio task."""
    s, body = harness.store, call.body
    assert body["range_seconds"] if call.task_id == "split" else True
    if call.task_id == "split":
        ranges = [
            {"first": a, "last": b, "start_frame": 25 * a, "frames": 25 * (b - a + 1),
             "key_frame": 25 * a, "seek": f"{50 * a - 1}/50"}
            for a, b in RANGES
        ]  # fmt: skip
        return {"index": write_split_index(s, [], SOURCE, None), "segments": 6,
                "segment_frames": 25, "audio": None, "audio_part": True, "source": SOURCE,
                "pix_fmt": "yuv420p", "ranges": ranges}  # fmt: skip
    if body.get("part") == "audio":
        audio = s.add_bytes(b"audio of " + body["source"].encode(), pin=False)
        return {"index": write_split_index(s, [], SOURCE, audio), "segments": 0,
                "audio": audio, "source": SOURCE, "part": "audio"}  # fmt: skip
    rng = body["range"]
    refs = [
        SegmentRef(i, s.add_bytes(f"segment {i}".encode(), pin=False), 25 * i, 25 * (i + 1))
        for i in range(rng["first"], rng["last"] + 1)
    ]
    return {"index": write_split_index(s, refs, body["source_facts"], None),
            "segments": len(refs), "audio": None, "source": body["source_facts"],
            "range": rng}  # fmt: skip


def _ranged(harness: Harness) -> Any:
    def decide(call: Call) -> tuple[int, Any] | None:
        return (200, ranged_result(harness, call)) if call.function == "split" else None

    return decide


def test_a_split_in_ranges_fans_out_every_range_and_merges_all_in_order(
    harness: Harness,
) -> None:
    job_id = harness.submit()
    answered = harness.drain(decide=_ranged(harness))
    splits = [c.task_id for c in answered if c.function == "split"]
    assert sorted(splits) == ["split", "split.0", "split.1", "split.2", "split.audio"]
    for call in answered:
        if call.task_id.startswith("split."):
            assert call.body["source"] == answered[0].body["source"]
    job = harness.job(job_id)
    assert job["state"] == "completed"
    assert job["stages"]["split"]["done"] == 5 and job["stages"]["transcode"]["done"] == 6
    merge = next(c for c in answered if c.function == "merge")
    plan = read_plan(harness.store, merge.body["plan"])
    assert [int(e["index"]) for e in plan.entries] == list(range(6))
    audio = next(c for c in answered if c.task_id == "split.audio")
    assert plan.audio == ranged_result(harness, audio)["audio"]


def test_duplicate_range_callbacks_count_once(harness: Harness) -> None:
    job_id = harness.submit()
    first = harness.calls.pop(0)
    harness.answer(first, 200, ranged_result(harness, first))
    one = next(c for c in harness.calls if c.task_id == "split.1")
    harness.calls.remove(one)
    result = ranged_result(harness, one)
    assert harness.answer(one, 200, result)[1]["status"] == "accepted"
    assert harness.answer(one, 200, result)[1]["status"] == "duplicate"
    assert [c.task_id for c in harness.calls].count("transcode.2") == 1
    harness.drain(decide=_ranged(harness))
    assert harness.answer(one, 200, result)[1]["status"] in {"duplicate", "ignored"}
    job = harness.job(job_id)
    assert job["state"] == "completed" and job["stages"]["transcode"]["done"] == 6


def test_a_failing_range_is_retried_then_fails_the_job_with_nothing_leased(
    harness: Harness,
) -> None:
    job_id = harness.submit()
    first = harness.calls.pop(0)
    harness.answer(first, 200, ranged_result(harness, first))
    attempts = []
    for _ in range(3):
        call = next(c for c in harness.calls if c.task_id == "split.2")
        harness.calls.remove(call)
        attempts.append(call.attempt)
        harness.answer(call, 500, {"error": "MediaError", "message": "ffmpeg died"})
        harness.request("POST", "/tick")
    assert attempts == [1, 2, 3]
    job = harness.job(job_id)
    assert job["state"] == "failed" and "ffmpeg died" in job["error"]
    assert job["tasks"]["leased"] == 0


def test_the_preview_waits_for_the_audio_task_of_a_split_in_ranges(harness: Harness) -> None:
    job_id = harness.submit()

    def answer(task_id: str) -> None:
        call = next(c for c in harness.calls if c.task_id == task_id)
        harness.calls.remove(call)
        assert harness.answer(call, 200, ranged_result(harness, call))[0] == 200

    for task_id in ("split", "split.0", "split.1", "split.2"):
        answer(task_id)
    assert "preview" not in harness.job(job_id)  # its sound track is not there yet
    answer("split.audio")
    assert harness.job(job_id)["preview"]["segments"] == 0


def test_previews_of_one_source_planned_with_other_segment_lengths_differ(
    harness: Harness,
) -> None:
    durations = []
    for seconds, frames in (("1", 25), ("2", 50)):
        job_id = harness.submit(segment_seconds=seconds)

        def decide(call: Call, frames: int = frames) -> tuple[int, Any] | None:
            if call.function != "split":
                return None
            result = ranged_result(harness, call)
            if call.task_id == "split":  # the plan of this segment length
                count = 150 // frames
                one = {"first": 0, "last": count - 1, "start_frame": 0, "frames": 150,
                       "key_frame": 0, "seek": "0/1"}  # fmt: skip
                result.update(segments=count, segment_frames=frames, ranges=[one])
            return 200, result

        harness.drain(decide=decide)
        found = harness.service.preview.playable(job_id)
        assert found is not None
        durations.append(found[0].durations)
    assert durations == [(1.0,) * 6, (2.0,) * 3]
