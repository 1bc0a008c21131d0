"""The shape check of stage results that orchestrate applies before using them."""

from __future__ import annotations

from typing import Any

import pytest
from kinoit.errors import InvalidParameter
from kinoit.service.results import check_result

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
GOOD: dict[str, dict[str, Any]] = {
    "split": {"index": CID, "audio": None,
              "source": {"fps": "25/1", "width": 160, "height": 90}},
    "transcode": {"segment": CID, "renditions": {"90p": CID}, "start_frame": 0},
    "thumbnail": {"segment": CID, "thumbnail": CID},
    "checksum": {"segment": CID, "renditions": {"90p": CID}, "ok": True},
    "merge": {"plan": CID, "hls": CID, "mp4": {"90p": CID}, "storyboard": None},
}  # fmt: skip


@pytest.mark.parametrize("stage", sorted(GOOD))
def test_well_formed_results_pass(stage: str) -> None:
    check_result(stage, GOOD[stage])


@pytest.mark.parametrize(
    ("stage", "change", "field"),
    [
        ("split", {"index": 5}, "result.index"),
        ("split", {"index": "nope"}, "result.index"),
        ("split", {"source": {"fps": "0", "width": 1, "height": 1}}, "result.source.fps"),
        ("split", {"source": {"fps": "25", "width": True, "height": 1}}, "result.source.width"),
        ("split", {"source": "x"}, "result.source"),
        ("transcode", {"renditions": {}}, "result.renditions"),
        ("transcode", {"renditions": {"../x": CID}}, "result.renditions"),
        ("transcode", {"renditions": {"90p": "x"}}, "result.renditions.90p"),
        ("transcode", {"start_frame": -1}, "result.start_frame"),
        ("thumbnail", {"thumbnail": None}, "result.thumbnail"),
        ("checksum", {"ok": "yes"}, "result.ok"),
        ("merge", {"mp4": {"90p\n": CID}}, "result.mp4"),
        ("merge", {"hls": ["x"]}, "result.hls"),
    ],
)
def test_malformed_results_name_the_field(stage: str, change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        check_result(stage, {**GOOD[stage], **change})
    assert info.value.field == field
