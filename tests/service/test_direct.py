"""The pure planning of a direct transcode: the range tasks a direct plan adds, their
requests and cache keys (rebuilt exactly from a result), the completion of a range
(its own record, the settled tasks, one checksum per segment), the check that a
mis-cut range cannot pass, and a segment's re-run as a range of its own."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from kinoit.errors import InvalidParameter, MediaError
from kinoit.service.direct import direct_followups, range_completion, segment_step
from kinoit.service.direct_plan import rerun_range
from kinoit.service.planning import (
    AUDIO_TASK,
    audio_task,
    payload_from_result,
    request_for,
    rerun_followup,
    result_cids,
    split_tasks,
)
from kinoit.service.results import check_result
from kinoit.service.spec import JobSpec
from kinoit.stages.transcode import RangeRequest, parse_request

LADDER = {"name": "tiny", "rungs": [{"name": "90p", "codec": "h264", "height": 90, "crf": 26}]}
SOURCE = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
CID = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq"
FACTS = {"frames": 100, "fps": "25/1", "width": 160, "height": 90}
DIRECT = [
    {"first": 0, "last": 1, "start_frame": 0, "frames": 50, "key_frame": 0, "seek": "0/1",
     "pts": ["0/1", "1/1"]},
    {"first": 2, "last": 3, "start_frame": 50, "frames": 50, "key_frame": 47,
     "seek": "99/50", "pts": ["2/1", "3/1"]},
]  # fmt: skip
PLAN = {"direct": DIRECT, "segments": 4, "segment_frames": 25, "pix_fmt": "yuv420p",
        "source": FACTS, "audio_part": True}  # fmt: skip


def spec() -> JobSpec:
    return JobSpec.from_dict({"source": SOURCE, "ladder": LADDER}, {})


def range_result(rng: dict[str, Any], pts: list[str] | None = None) -> dict[str, Any]:
    firsts = pts or list(rng["pts"])
    return {
        "source": SOURCE, "range": rng, "fps": "25/1",
        "segments": [
            {"index": i, "start_frame": 25 * i, "renditions": {"90p": CID},
             "frames": {"90p": 25}, "bytes": {"90p": 10}, "signature": CID,
             "thumbnail": CID, "pts": firsts[i - rng["first"]]}
            for i in range(rng["first"], rng["last"] + 1)
        ],
    }  # fmt: skip


def test_a_direct_plan_adds_one_transcode_per_range_and_the_audio_task() -> None:
    (audio_stage, audio), (stage, tasks) = direct_followups(spec(), PLAN)
    assert stage == "transcode" and [t for t, _ in tasks] == ["transcode.0", "transcode.2"]
    assert audio_stage == "split" and [t for t, _ in audio] == [AUDIO_TASK]
    # the first task's own index lists every segment; the audio is its own task's
    assert split_tasks(PLAN) == ["split"] and audio_task(PLAN) == AUDIO_TASK
    body = request_for(spec(), "transcode", tasks[1][1]).body
    assert body == {"source": SOURCE, "range": DIRECT[1], "ladder": spec().ladder,
                    "segment_seconds": "1", "fps": "25/1", "width": 160, "height": 90}  # fmt: skip
    request = parse_request(body)
    assert isinstance(request, RangeRequest)
    assert request.pts == (Fraction(2), Fraction(3)) and request.range.first == 2
    # the cache key: source + range + ladder, rebuilt exactly from the range's result
    rebuilt = payload_from_result("transcode.2", range_result(DIRECT[1]))
    assert (
        request_for(spec(), "transcode", rebuilt).cache_digest("transcode") == tasks[1][1]["cache"]
    )
    other = request_for(spec(), "transcode", {"range": DIRECT[0]}).cache_digest("transcode")
    assert other != tasks[1][1]["cache"]


def test_a_range_request_names_its_bad_field() -> None:
    body = request_for(spec(), "transcode", direct_followups(spec(), PLAN)[1][1][0][1]).body
    with pytest.raises(InvalidParameter) as err:
        parse_request({**body, "range": {**DIRECT[0], "pts": ["0/1"]}})
    assert err.value.field == "range.pts"
    with pytest.raises(InvalidParameter):
        parse_request({**body, "fps": None})


def test_a_range_completes_its_segments_and_adds_every_checksum() -> None:
    result = range_result(DIRECT[1])
    check_result("transcode", result)
    own, followups, settled = range_completion(spec(), "transcode.2", result, PLAN)
    assert own["renditions"] == {"90p": CID} and own["start_frame"] == 50
    assert "segment" not in own  # as a per-segment transcode's record
    assert [t for group in followups for t, _ in group[1]] == ["checksum.2", "checksum.3"]
    assert all(p["signature"] == CID and "cache" in p for g in followups for _, p in g[1])
    assert [(stage, [t for t, _ in tasks]) for stage, tasks in settled] == [
        ("transcode", ["transcode.3"]), ("thumbnail", ["thumbnail.2", "thumbnail.3"]),
    ]  # fmt: skip
    assert settled[1][1][0][1] == {"thumbnail": CID}
    # every CID the cached range result names must still be stored for it to be replayed
    assert result_cids("transcode", result) == [CID] * 6


def test_a_mis_cut_or_short_range_cannot_pass() -> None:
    late = range_result(DIRECT[1], pts=["2/1", "77/25"])  # segment 3 one frame late
    with pytest.raises(MediaError, match="segment 3 starts at source time"):
        range_completion(spec(), "transcode.2", late, PLAN)
    short = range_result(DIRECT[1])
    short["segments"][0]["frames"] = {"90p": 24}
    with pytest.raises(MediaError, match="segment 2 has frames"):
        range_completion(spec(), "transcode.2", short, PLAN)
    with pytest.raises(MediaError, match="a run from 0"):
        range_completion(spec(), "transcode.0", range_result(DIRECT[1]), PLAN)
    # within half a frame: container timestamps are rounded
    fine = range_result(DIRECT[1], pts=["2001/1000", "2999/1000"])
    range_completion(spec(), "transcode.2", fine, PLAN)
    with pytest.raises(MediaError, match="planned no direct"):
        range_completion(spec(), "transcode.2", fine, {"source": FACTS})


def test_a_segments_rerun_is_a_range_of_that_segment_alone() -> None:
    _, _, settled = range_completion(spec(), "transcode.2", range_result(DIRECT[1]), PLAN)
    segment3 = dict(settled[0][1][0][1])
    [(stage, [(task_id, payload)])] = rerun_followup("checksum.3", {"segment": SOURCE}, segment3)
    assert (stage, task_id) == ("transcode", "transcode.3.r2")
    assert payload == rerun_range(PLAN, 3)
    rng = payload["range"]
    assert (rng["first"], rng["last"], rng["start_frame"], rng["frames"]) == (3, 3, 75, 25)
    assert Fraction(rng["seek"]) == Fraction(3) - Fraction(1, 50) and rng["pts"] == ["3/1"]
    body = request_for(spec(), "transcode", payload).body
    assert isinstance(parse_request(body), RangeRequest)
    # its result: no task settled (they exist), its checksum the re-run's
    rerun = range_result({**rng, "pts": ["3/1"]})
    own, followups, settled = range_completion(spec(), "transcode.3.r2", rerun, PLAN)
    assert settled == [] and own["start_frame"] == 75
    assert [t for g in followups for t, _ in g[1]] == ["checksum.3.r2"]
    with pytest.raises(MediaError, match="re-run of segment 2"):
        range_completion(spec(), "transcode.2.r2", range_result(DIRECT[1]), PLAN)


def test_a_per_segment_transcode_step_is_as_before() -> None:
    result = {"segment": CID, "renditions": {"90p": CID}, "start_frame": 0, "fps": "25/1"}
    own, followups, settled = segment_step(spec(), "transcode.0", result, lambda: None)
    assert own == {k: v for k, v in result.items() if k != "segment"} and settled == []
    assert [t for g in followups for t, _ in g[1]] == ["checksum.0"]


def test_a_vfr_segment_is_rerun_from_its_ranges_keyframe() -> None:
    # a VFR plan: output frames of the source resampled to 143/5 fps; the second range's
    # first slot shows a source frame after keyframe 60 (past its own number, 58)
    fps = Fraction(143, 5)
    vfr = [
        {"first": 0, "last": 1, "start_frame": 0, "frames": 58, "key_frame": 0, "seek": "0/1",
         "vfr": True, "pts": ["0/1", str(29 / fps)]},
        {"first": 2, "last": 3, "start_frame": 58, "frames": 52, "key_frame": 60,
         "seek": "60667/30000", "vfr": True, "pts": [str(58 / fps), str(87 / fps)]},
    ]  # fmt: skip
    plan = {**PLAN, "direct": vfr, "segment_frames": 29,
            "source": {**FACTS, "frames": 110, "fps": "143/5"}}  # fmt: skip
    payload = rerun_range(plan, 3)
    rng = payload["range"]
    assert (rng["start_frame"], rng["frames"], rng["key_frame"]) == (87, 23, 60)
    assert rng["vfr"] is True and rng["seek"] == "60667/30000"
    assert rng["pts"] == [str(87 / fps)]
    request = parse_request(request_for(spec(), "transcode", payload).body)
    assert isinstance(request, RangeRequest) and request.range.vfr
    # a constant-rate range may not name a keyframe after its first frame; a VFR one may
    cfr = {"range": {**vfr[1], "vfr": False}, "fps": "143/5", "size": [160, 90]}
    with pytest.raises(InvalidParameter, match="key_frame <= start_frame"):
        parse_request(request_for(spec(), "transcode", cfr).body)
    # the range's segment check compares slot times (half a frame of tolerance)
    good = range_result(vfr[1])
    for seg in good["segments"]:
        seg["start_frame"] = 29 * seg["index"]
        seg["frames"] = {"90p": 29 if seg["index"] == 2 else 23}
    range_completion(spec(), "transcode.2", good, plan)
    late = range_result(vfr[1], pts=[str(59 / fps), str(87 / fps)])
    for seg, ok in zip(late["segments"], good["segments"], strict=True):
        seg["start_frame"], seg["frames"] = ok["start_frame"], ok["frames"]
    with pytest.raises(MediaError, match="segment 2 starts at source time"):
        range_completion(spec(), "transcode.2", late, plan)


def test_a_vfr_plans_audio_task_is_told_the_resampled_frames() -> None:
    vfr = [{**r, "vfr": True} for r in DIRECT]
    plan = {**PLAN, "direct": vfr, "source": {**FACTS, "frames": 97}}
    (_, [(_, audio)]), _ = direct_followups(spec(), plan)
    body = request_for(spec(), "split", audio).body
    assert body["part"] == "audio" and body["frames"] == 97
    # the count is the source's: the same cache key as a constant-rate plan's audio task
    (_, [(_, cfr)]), _ = direct_followups(spec(), PLAN)
    assert "frames" not in request_for(spec(), "split", cfr).body
    assert audio["cache"] == cfr["cache"]
