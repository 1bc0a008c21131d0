"""merge in parts (one task per rung, then the final task) against the one-task merge:
the same job both ways gives the same outputs directory, HLS listing and MP4 CIDs,
so every file's bytes are the same (real ffmpeg, the embedded store)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kinoit.config import Settings, load_settings
from kinoit.documents import link, write_merge_plan
from kinoit.errors import InvalidParameter
from kinoit.manifest import build_segment_entry
from kinoit.media import split_video, transcode_split_segment
from kinoit.stages import merge
from kinoit.stages.merge_media import MEDIA_FIELDS
from kinoit.stages.merge_parts import PART_FIELDS
from kinoit.store import open_store
from kinoit.store.cid import CID
from kinoit.store.directory import index_of, resolve, stat
from PIL import Image

from tests.media.test_merge import LADDER

RUNGS = ("48p", "90p", "vp9")
CID_TEXT = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@pytest.fixture(scope="module")
def planned(clip: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    """A 3-segment job with stereo + 5.1 audio, three rungs (two MPEG-TS, one Matroska)
    and a thumbnail per segment, stored with its merge plan; the 48p rung verified by
    the checksum (its MP4 is counted), the others not (decoded)."""
    root = tmp_path_factory.mktemp("parts")
    settings = load_settings({"KINOIT_HOME": str(root / "home")})
    store = open_store(settings)
    src = clip(seconds=2.6, fps=25, gop=13, channels=6, language="eng")
    split = split_video(src, root / "split", settings=settings)
    entries = []
    for seg in split.segments:
        end = seg.start_frame + seg.frames
        files = transcode_split_segment(split, seg.index, LADDER, root / "rend", settings=settings)
        thumb = root / "thumbs" / f"{seg.index}.jpg"
        thumb.parent.mkdir(exist_ok=True)
        Image.new("RGB", (32, 18), (40 * seg.index, 90, 160)).save(thumb, quality=85)
        match = {"verdict": "match", "frames": seg.frames}
        entries.append(
            build_segment_entry(
                index=seg.index, start_frame=seg.start_frame, end_frame=end,
                segment=store.add(seg.path, pin=False),
                renditions={r: store.add(f.path, pin=False) for r, f in files.items()},
                thumbnail=store.add(thumb, pin=False),
                checksum={"algorithm": "phash", "rungs": {"48p": match}}, attempts=1, link=link,
            )
        )  # fmt: skip
    assert split.audio is not None
    source = {"fps": f"{split.fps.numerator}/{split.fps.denominator}", "frames": split.frames}
    plan = write_merge_plan(
        store, entries, source=source, audio=store.add(split.audio, pin=False),
        segment_seconds="1", ladder=LADDER,
    )  # fmt: skip
    return settings, plan


def through_json(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The merge stage's answer to ``body``, request and result through JSON as
    orchestrate carries them."""
    request = merge.parse_request(json.loads(json.dumps(body)))
    return dict(json.loads(json.dumps(merge.run(request, settings))))


def merged_in_parts(
    settings: Settings, plan: str, media: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every rung task (and the media task), then the final task given their results;
    the rung results and the final's."""
    rungs = {rung: through_json({"plan": plan, "rung": rung}, settings) for rung in RUNGS}
    body: dict[str, Any] = {
        "plan": plan, "rungs": {r: {k: res[k] for k in PART_FIELDS} for r, res in rungs.items()}
    }  # fmt: skip
    if media:
        result = through_json({"plan": plan, "part": "media"}, settings)
        body["media"] = {k: result[k] for k in MEDIA_FIELDS}
    return rungs, through_json(body, settings)


@pytest.mark.parametrize("media", [True, False], ids=["media part", "media in the final"])
def test_the_parts_give_the_one_task_merges_outputs(
    planned: tuple[Settings, str], media: bool
) -> None:
    settings, plan = planned
    one_task = merge.run(merge.parse_request({"plan": plan}), settings)
    rungs, final = merged_in_parts(settings, plan, media)
    assert final == one_task  # directory, HLS listing, MP4s, storyboard: every CID
    store = open_store(settings)

    def get_block(cid: CID) -> bytes:
        return bytes(store.block_get(str(cid)))

    directory = CID.parse(one_task["directory"])
    names = set(index_of(get_block, stat(get_block, directory)))
    assert {"90p.mp4", "vp9.mp4", "hls", "thumbs", "storyboard.jpg", "storyboard.vtt"} <= names
    for rung, result in rungs.items():
        # a rung's HLS directory is the very subdirectory the outputs link
        sub = resolve(get_block, directory, ["hls", rung])
        assert str(sub.cid) == result["hls_dir"]
        assert result["mp4"] == {rung: one_task["mp4"][rung]} and result["frames"] == 65
    listing = store.dag_get(one_task["hls"])["entries"]
    assert "vp9/init.mp4" in listing and "audio/surround/index.m3u8" in listing


def test_a_final_task_needs_every_rung_of_the_plan(planned: tuple[Settings, str]) -> None:
    settings, plan = planned
    rungs, _ = merged_in_parts(settings, plan)
    parts = {rung: {k: result[k] for k in PART_FIELDS} for rung, result in rungs.items()}
    del parts["vp9"]
    with pytest.raises(InvalidParameter) as info:
        merge.run(merge.parse_request({"plan": plan, "rungs": parts}), settings)
    assert info.value.field == "rungs"
    with pytest.raises(InvalidParameter) as info:
        merge.run(merge.parse_request({"plan": plan, "rung": "720p"}), settings)
    assert info.value.field == "rung"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"peak": 123.0}, "rungs.90p.peak"),
        ({"peak": "nan"}, "rungs.90p.peak"),
        ({"mp4_bytes": -1}, "rungs.90p.mp4_bytes"),
        ({"hls_dir": "not-a-cid"}, "hls_dir"),
        ({"mp4": {"48p": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}},
         "rungs.90p.mp4"),
        ({"facts": {"codec": "h264"}}, "rungs.90p.facts.profile"),
    ],
)  # fmt: skip
def test_a_bad_rung_part_names_its_field(change: dict[str, Any], field: str) -> None:
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    facts = {"codec": "h264", "profile": "High", "level": 30, "width": 160, "height": 90,
             "pix_fmt": "yuv420p"}  # fmt: skip
    part = {"mp4": {"90p": cid}, "mp4_bytes": 10, "hls": cid, "hls_dir": cid,
            "hls_dir_size": 10, "peak": "1.5", "average": "1.0", "facts": facts}  # fmt: skip
    assert merge.parse_request({"plan": cid, "rungs": {"90p": part}}).rungs
    with pytest.raises(InvalidParameter) as info:
        merge.parse_request({"plan": cid, "rungs": {"90p": {**part, **change}}})
    assert info.value.field == field
    with pytest.raises(InvalidParameter):
        merge.parse_request({"plan": cid, "rung": "90p", "rungs": {"90p": part}})


@pytest.mark.parametrize(
    ("media", "field"),
    [
        ({"audio_renditions": "stereo"}, "media.audio_renditions"),
        ({"audio_renditions": [{"index": 0}]}, "media.audio_renditions[0]"),
        ({"audio_renditions": [], "storyboard": CID_TEXT}, "media.storyboard_bytes"),
        ({"audio_renditions": [], "thumbs_dir": "bafy-not", "thumbs_dir_size": 3}, "thumbs_dir"),
    ],
)
def test_a_bad_media_part_names_its_field(media: dict[str, Any], field: str) -> None:
    facts = {"codec": "h264", "profile": "High", "level": 30, "width": 160, "height": 90,
             "pix_fmt": "yuv420p"}  # fmt: skip
    part = {"mp4": {"90p": CID_TEXT}, "mp4_bytes": 10, "hls": CID_TEXT, "hls_dir": CID_TEXT,
            "hls_dir_size": 10, "peak": "1.5", "average": "1.0", "facts": facts}  # fmt: skip
    body = {"plan": CID_TEXT, "rungs": {"90p": part}}
    assert merge.parse_request({**body, "media": {"audio_renditions": []}}).media is not None
    with pytest.raises(InvalidParameter) as info:
        merge.parse_request({**body, "media": media})
    assert info.value.field == field
    for bad, name in (({"part": "audio"}, "part"), ({"media": {}}, "media")):
        with pytest.raises(InvalidParameter) as info:
            merge.parse_request({"plan": CID_TEXT, **bad})
        assert info.value.field == name
