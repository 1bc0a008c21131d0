"""Manifest building and its dag-json view (pure)."""

from __future__ import annotations

import json
from typing import Any

from kinoit.manifest import build_manifest, build_segment_entry, dumps_dag_json
from kinoit.store.cid import CID

A = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
B = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def entry(index: int) -> dict[str, Any]:
    return build_segment_entry(
        index=index, start_frame=25 * index, end_frame=25 * index + 25, segment=A,
        renditions={"b": B, "a": A}, thumbnail=B,
        checksum={"algorithm": "phash", "hashes": ["ff"],
                  "rungs": {"a": {"max_distance": 3, "mean_distance": 1.5, "verdict": "match"}}},
        attempts=1, link=CID.parse,
    )  # fmt: skip


def manifest(segments: list[dict[str, Any]]) -> dict[str, Any]:
    return build_manifest(
        source={"cid": A, "frames": 50, "fps": "25/1", "width": 160, "height": 90,
                "duration": 2.0},
        segment_seconds="1", ladder=[{"name": "a"}], audio=B, segments=segments,
        outputs={"mp4": {"a": A}, "hls": B, "storyboard": None}, link=CID.parse,
    )  # fmt: skip


def test_segments_are_in_order_and_links_are_cids() -> None:
    value = manifest([entry(1), entry(0)])
    assert [s["index"] for s in value["segments"]] == [0, 1]
    assert isinstance(value["segments"][0]["cid"], CID)
    assert list(value["segments"][0]["renditions"]) == ["a", "b"]
    assert value["outputs"]["storyboard"] is None


def test_manifest_is_deterministic() -> None:
    assert manifest([entry(0), entry(1)]) == manifest([entry(1), entry(0)])


def test_dag_json_view_has_source_segments_outputs_at_the_top() -> None:
    text = dumps_dag_json(manifest([entry(0)]), lambda v: isinstance(v, CID))
    value = json.loads(text)
    assert {"source", "segments", "outputs"} <= set(value)
    assert value["source"]["cid"] == {"/": A}
    assert value["outputs"]["mp4"]["a"] == {"/": A}


def test_dag_json_encodes_bytes() -> None:
    assert json.loads(dumps_dag_json({"b": b"\x01\x02"})) == {"b": {"/": {"bytes": "AQI"}}}
