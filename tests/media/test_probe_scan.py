"""The plan's one read of the source: probe and the keyframe scan from one ffprobe
(every packet's pts and flags), the same facts and keyframes as the two runs gave;
the variable-rate check unchanged (real ffmpeg)."""

from __future__ import annotations

import pytest
from kinoit.media.keyframes import probe_and_scan, scan_from_probe, scan_keyframes
from kinoit.media.probe import probe


@pytest.mark.parametrize(
    "options",
    [
        {"seconds": 6, "preset": "veryfast", "gop": 47},  # B-frames, keyframes off the seconds
        {"seconds": 6, "preset": "veryfast", "gop": 12, "ext": "mkv", "fps": "30000/1001"},
        {"seconds": 4, "preset": "veryfast", "gop": 25},  # every second a keyframe
        {"seconds": 4, "vfr": True, "preset": "veryfast"},
        {"seconds": 3, "audio": False},
    ],
)
def test_one_read_gives_the_probe_and_the_scan_of_two(clip, settings, media_runs, options) -> None:
    path = clip("scan", **options)
    media_runs.clear()  # (making the clip ran ffmpeg)
    info, scan = probe_and_scan(path, settings)
    assert [argv[0] for argv in media_runs] == ["ffprobe"]
    assert info == probe(path, settings=settings)
    assert scan == scan_keyframes(path, settings)
    assert scan.keys and scan.keys[0] == 0 and len(scan.pts) == info.frames
    assert info.vfr is bool(options.get("vfr"))


def test_the_scan_reads_the_video_stream_probe_reads() -> None:
    # cover art (an attached picture) first: its packets are not the video's
    doc = {
        "streams": [
            {"index": 0, "codec_type": "video", "codec_name": "mjpeg",
             "disposition": {"attached_pic": 1}, "time_base": "1/90000"},
            {"index": 1, "codec_type": "video", "codec_name": "h264", "time_base": "1/12800"},
            {"index": 2, "codec_type": "audio", "codec_name": "aac", "time_base": "1/48000"},
        ],
        "packets": [
            {"stream_index": 0, "pts": 0, "flags": "K__"},
            {"stream_index": 1, "pts": 0, "flags": "K__"},
            {"stream_index": 2, "pts": 0, "flags": "K__"},
            {"stream_index": 1, "pts": 1024, "flags": "___"},
            {"stream_index": 1, "pts": 512, "flags": "___"},
            {"stream_index": 1, "pts": 1536, "flags": "K__"},
        ],
    }  # fmt: skip
    scan = scan_from_probe(doc)
    assert scan.pts == [0, 512, 1024, 1536] and scan.keys == [0, 3]
    assert scan.decode_pts == (0, 1024, 512, 1536) and str(scan.time_base) == "1/12800"
