"""Heavier end-to-end cases (run with -m slow): larger frames, every split mode, every codec."""

from pathlib import Path

import pytest
from kinoit.media import merge_rung, probe, split_video, transcode_split_segment
from kinoit.media.merge_job import merge_job, rendition_segments

pytestmark = pytest.mark.slow

LADDER = {
    "rungs": [
        {"name": "h264", "codec": "h264", "height": 360, "crf": 28, "preset": "ultrafast"},
        {"name": "hevc", "codec": "hevc", "height": 240, "crf": 30, "preset": "ultrafast"},
        {"name": "vp9", "codec": "vp9", "height": 240, "crf": 45, "preset": 8},
        {"name": "av1", "codec": "av1", "height": 240, "crf": 50, "preset": 12},
    ]
}


@pytest.mark.parametrize("mode", ["raw", "lossless", "copy"])
def test_every_mode_and_codec_merges_back_to_the_source_frame_count(
    clip, tmp_path: Path, settings, mode: str
) -> None:
    src = clip(fps=60, seconds=4.0, width=640, height=360, gop=90)
    split = split_video(src, tmp_path / "split", mode=mode, settings=settings)  # type: ignore[arg-type]
    assert split.frames == probe(src, settings=settings).frames == 240
    for seg in split.segments:
        transcode_split_segment(split, seg.index, LADDER, tmp_path / "rend", settings=settings)
    renditions = rendition_segments(tmp_path / "rend", [s.path.stem for s in split.segments])
    result = merge_job(
        renditions, split.audio, tmp_path / "out", fps=split.fps,
        segment_frames=[s.frames for s in split.segments], settings=settings,
    )  # fmt: skip
    assert {r.rung: r.frames for r in result.rungs} == {n: 240 for n in renditions}
    for r in result.rungs:
        assert r.audio_duration is not None and abs(r.audio_duration - 4.0) <= 1 / 60
    assert result.hls_master is not None and "av01." in result.hls_master.read_text()


def test_merge_from_one_segment(clip, tmp_path: Path, settings) -> None:
    split = split_video(clip(seconds=0.6), tmp_path / "split", settings=settings)
    out = transcode_split_segment(split, 0, LADDER, tmp_path / "rend", settings=settings)
    assert list(out) == ["hevc"]  # only the smallest rung fits a 160x90 source
    merged = merge_rung(
        [out["hevc"].path], split.audio, tmp_path / "o.mp4", fps=split.fps,
        segment_frames=[split.segments[0].frames], settings=settings,
    )  # fmt: skip
    assert merged.frames == 15
