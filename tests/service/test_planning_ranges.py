"""The pure planning of a split in ranges: the range and audio tasks a plan adds,
their request bodies, and cache keys that a result rebuilds exactly."""

from __future__ import annotations

from kinoit.service.planning import (
    AUDIO_TASK,
    audio_task,
    payload_from_result,
    request_for,
    split_followups,
    split_tasks,
)
from kinoit.service.spec import JobSpec

LADDER = {"name": "tiny", "rungs": [{"name": "90p", "codec": "h264", "height": 90}]}
SOURCE = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
FACTS = {"frames": 100, "fps": "25/1", "width": 160, "height": 90}
RANGES = [
    {"first": 0, "last": 1, "start_frame": 0, "frames": 50, "key_frame": 0, "seek": "0/1"},
    {"first": 2, "last": 3, "start_frame": 50, "frames": 50, "key_frame": 47, "seek": "99/50"},
]
PLAN = {"ranges": RANGES, "pix_fmt": "yuv420p", "source": FACTS, "audio_part": True}


def spec() -> JobSpec:
    return JobSpec.from_dict({"source": SOURCE, "ladder": LADDER}, {})


def test_a_plan_adds_one_task_per_range_and_the_audio_task() -> None:
    [(stage, tasks)] = split_followups(spec(), PLAN)
    assert stage == "split"
    assert [t for t, _ in tasks] == ["split.0", "split.1", AUDIO_TASK]
    assert split_tasks(PLAN) == ["split.0", "split.1"] and audio_task(PLAN) == AUDIO_TASK
    assert audio_task({**PLAN, "audio_part": False}) is None
    assert split_tasks({}) == ["split"] and audio_task({}) == "split"
    body = request_for(spec(), "split", dict(tasks[1][1] or {})).body
    assert body["range"] == RANGES[1] and body["pix_fmt"] == "yuv420p"
    assert body["source_facts"] == FACTS and body["source"] == SOURCE
    assert request_for(spec(), "split", dict(tasks[2][1] or {})).body["part"] == "audio"


def test_a_range_result_rebuilds_the_cache_key_its_task_was_leased_with() -> None:
    [(_, tasks)] = split_followups(spec(), PLAN)
    for task_id, payload in tasks:
        assert payload is not None
        echoed = {"range": payload["range"]} if "range" in payload else {"part": "audio"}
        result = {"index": "x", "source": FACTS, **echoed}
        rebuilt = request_for(spec(), "split", payload_from_result(task_id, result))
        assert rebuilt.cache_digest("split") == payload["cache"], task_id
    # the ranges are different work: different keys
    assert len({dict(p or {})["cache"] for _, p in tasks}) == len(tasks)


def test_the_first_task_asks_for_ranges_but_keeps_its_cache_key() -> None:
    plain = request_for(spec(), "split", {})
    ranged = request_for(spec(), "split", {"range_seconds": "60"})
    assert ranged.body["range_seconds"] == "60" and "range_seconds" not in plain.body
    assert ranged.cache_digest("split") == plain.cache_digest("split")
