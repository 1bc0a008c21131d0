"""The pipeline's pure planning: task ids, request bodies, cache keys, follow-ups."""

from __future__ import annotations

import pytest
from kinoit.documents import SegmentRef
from kinoit.errors import InputError
from kinoit.jobs import cache_digest
from kinoit.service.planning import (
    checksum_followup,
    failure_reason,
    fanout,
    is_rerun,
    payload_from_result,
    request_for,
    rerun_followup,
    result_cids,
    segment_of,
    stage_of,
    stored_result,
)
from kinoit.service.spec import JobSpec

LADDER = {"name": "tiny", "rungs": [{"name": "90p", "codec": "h264", "height": 90}]}
SOURCE = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
SEGMENT = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def spec() -> JobSpec:
    return JobSpec.from_dict({"source": SOURCE, "ladder": LADDER}, {})


def test_task_ids_name_stage_segment_and_rerun() -> None:
    assert stage_of("transcode.12.r2") == "transcode" and stage_of("split") == "split"
    assert segment_of("checksum.7") == 7 and segment_of("transcode.3.r2") == 3
    assert is_rerun("checksum.3.r2") and not is_rerun("checksum.3")


def test_transcode_request_carries_the_split_facts_and_a_cache_key_without_them() -> None:
    payload = {"segment": SEGMENT, "start": 25, "n": 25, "fps": "25/1", "size": [160, 90]}
    request = request_for(spec(), "transcode", payload)
    assert request.body == {
        "segment": SEGMENT, "ladder": spec().ladder, "start_frame": 25, "fps": "25/1",
        "frames": 25, "width": 160, "height": 90,
    }  # fmt: skip
    assert request.input_cid == SEGMENT
    assert request.params == {"ladder": spec().ladder, "start": 25, "fps": "25/1"}
    # the key rebuilt from the result (which echoes the inputs) is the dispatch's key
    result = {"segment": SEGMENT, "start_frame": 25, "fps": "25/1", "renditions": {}}
    rebuilt = request_for(spec(), "transcode", payload_from_result("transcode.1", result))
    assert rebuilt.cache_digest("transcode") == request.cache_digest("transcode")
    assert request.cache_digest("transcode") == cache_digest("transcode", SEGMENT, request.params)


def test_thumbnail_request_carries_the_frame_count_and_rate_but_its_key_only_the_segment() -> None:
    payload = {"segment": SEGMENT, "start": 25, "n": 25, "fps": "25/1", "size": [160, 90]}
    request = request_for(spec(), "thumbnail", payload)
    assert request.body == {"segment": SEGMENT, "frames": 25, "fps": "25/1"}
    assert (request.input_cid, request.params) == (SEGMENT, {})
    assert request_for(spec(), "thumbnail", {"segment": SEGMENT}).body == {"segment": SEGMENT}


def test_an_unknown_stage_has_no_request() -> None:
    with pytest.raises(InputError):
        request_for(spec(), "upload", {})


def test_fanout_adds_a_transcode_and_a_thumbnail_per_segment_naming_their_cache_entry() -> None:
    segments = [SegmentRef(0, SEGMENT, 0, 25), SegmentRef(1, SOURCE, 25, 40)]
    followups = fanout(spec(), segments, {"fps": "25/1", "width": 160, "height": 90})
    assert [stage for stage, _ in followups] == ["transcode", "thumbnail"]
    transcodes = dict(followups[0][1])
    assert list(transcodes) == ["transcode.0", "transcode.1"]
    second = transcodes["transcode.1"]
    assert second is not None and (second["start"], second["n"]) == (25, 15)
    expected = request_for(spec(), "transcode", second).cache_digest("transcode")
    assert second["cache"] == expected


def test_a_rerun_checksum_is_never_answered_from_the_cache() -> None:
    result = {"segment": SEGMENT, "renditions": {"90p": SOURCE}}
    [(stage, [(task, first)])] = checksum_followup(spec(), "transcode.2", result, cache_key=True)
    assert (stage, task) == ("checksum", "checksum.2") and first is not None and "cache" in first
    [(_, [(task, again)])] = checksum_followup(spec(), "transcode.2.r2", result, cache_key=True)
    assert task == "checksum.2.r2" and again is not None and "cache" not in again


def test_rerun_followup_keeps_the_first_transcodes_timing() -> None:
    [(stage, [(task, payload)])] = rerun_followup(
        "checksum.4", {"segment": SEGMENT}, {"start_frame": 100, "fps": "25/1"}
    )
    assert (stage, task) == ("transcode", "transcode.4.r2")
    assert payload == {"segment": SEGMENT, "i": 4, "start": 100, "fps": "25/1"}


def test_results_drop_the_inputs_they_echo() -> None:
    result = {"segment": SEGMENT, "renditions": {"90p": SOURCE}, "ok": True}
    assert stored_result("checksum", result) == {"ok": True}
    assert stored_result("merge", result) == result


def test_a_mismatch_is_never_replayed_and_outputs_are_listed() -> None:
    assert result_cids("checksum", {"ok": False}) is None
    assert result_cids("checksum", {"ok": True}) == []
    merge = {"hls": "h", "storyboard": None, "mp4": {"90p": "m"}, "directory": "d"}
    assert sorted(result_cids("merge", merge) or []) == ["d", "h", "m"]
    # a merge from before outputs had one directory is merged again, not replayed
    assert result_cids("merge", {k: v for k, v in merge.items() if k != "directory"}) is None


@pytest.mark.parametrize(
    ("status", "body", "reason", "retryable"),
    [
        (400, b'{"error": "NotAVideo", "message": "no video stream"}',
         "NotAVideo: no video stream", False),
        (500, b"boom", "HTTP 500: boom", True),
        (429, b"", "HTTP 429: no body", True),
        (401, b"", "HTTP 401: no body", True),
    ],
)  # fmt: skip
def test_failure_reasons_say_what_failed_and_whether_to_retry(
    status: int, body: bytes, reason: str, retryable: bool
) -> None:
    assert failure_reason(status, body) == (reason, retryable)
