import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from kinoit.errors import InvalidParameter
from kinoit.media import load_ladder, split_video, transcode_segment
from kinoit.media.transcode import build_transcode_argv, plan_targets

LADDER = {
    "rungs": [
        {"name": "90p", "codec": "h264", "height": 90, "crf": 26, "preset": "ultrafast"},
        {"name": "48p", "codec": "h264", "height": 48, "crf": 30, "preset": "ultrafast"},
    ]
}


def frames_of(path: Path) -> list[dict[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=key_frame,pict_type,pts", "-of", "json", str(path)],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return json.loads(out)["frames"]


def test_transcode_argv_is_one_decode_split_to_every_rung(tmp_path: Path) -> None:
    lad = load_ladder(LADDER)
    targets = plan_targets(lad, 160, 90, tmp_path, "00003")
    argv = build_transcode_argv(
        "seg.mkv", lad, targets, fps=Fraction(30000, 1001), start_frame=90, gop=30
    )
    assert argv[:8] == [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "verbose",
        "-y",
        "-i",
        "seg.mkv",
    ]
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph == (
        "[0:v:0]settb=expr=1001/30000,setpts=N+90,split=2[s0][s1];"
        "[s0]scale=160:90:flags=bicubic,setsar=1,format=yuv420p[o0];"
        "[s1]scale=84:48:flags=bicubic,setsar=1,format=yuv420p[o1]"
    )
    assert argv.count("-i") == 1 and argv.count("libx264") == 2
    assert argv[-1] == str(tmp_path / "48p" / "00003.ts")
    assert argv[argv.index("-avoid_negative_ts") + 1] == "disabled"
    assert "-threads" not in argv and "-filter_complex_threads" not in argv  # ffmpeg's choice


def test_copy_mode_frame_range_becomes_a_trim(tmp_path: Path) -> None:
    lad = load_ladder(LADDER)
    targets = plan_targets(lad, 160, 90, tmp_path, "x")
    argv = build_transcode_argv(
        "seg.mkv", lad, targets, fps=Fraction(25), start_frame=25, gop=25, frame_range=(13, 38)
    )
    assert argv[argv.index("-filter_complex") + 1].startswith(
        "[0:v:0]trim=start_frame=13:end_frame=38,settb=expr=1/25,setpts=N+25,"
    )


def test_every_rendition_starts_with_an_idr_and_has_one_gop(clip, tmp_path: Path, settings) -> None:
    split = split_video(
        clip(fps="30000/1001", gop=250, audio=False), tmp_path / "s", settings=settings
    )
    seg = split.segments[1]
    out = transcode_segment(
        seg.path,
        LADDER,
        tmp_path / "r",
        fps=split.fps,
        start_frame=seg.start_frame,
        settings=settings,
    )
    assert set(out) == {"90p", "48p"}
    assert (out["48p"].width, out["48p"].height) == (84, 48)
    for rendition in out.values():
        frames = frames_of(rendition.path)
        assert len(frames) == seg.frames == rendition.frames
        assert frames[0]["key_frame"] == 1 and frames[0]["pict_type"] == "I"
        assert sum(f["key_frame"] for f in frames) == 1
        # absolute timestamps: the segment continues where the previous one ended
        first = min(int(f["pts"]) for f in frames)
        second = sorted(int(f["pts"]) for f in frames)[1]
        assert first // (second - first) >= seg.start_frame


def test_copy_mode_segment_is_trimmed_exactly(clip, tmp_path: Path, settings) -> None:
    split = split_video(
        clip(seconds=3.0, gop=37, audio=False), tmp_path / "s", mode="copy", settings=settings
    )
    seg = split.segments[2]
    assert seg.frame_range == (13, 38)
    out = transcode_segment(
        seg.path, LADDER, tmp_path / "r", fps=split.fps, start_frame=seg.start_frame,
        frame_range=seg.frame_range, settings=settings,
    )  # fmt: skip
    assert out["90p"].frames == 25


def test_bad_frame_range_is_rejected(clip, tmp_path: Path, settings) -> None:
    split = split_video(clip(audio=False), tmp_path / "s", settings=settings)
    with pytest.raises(InvalidParameter, match="frame_range"):
        transcode_segment(
            split.segments[0].path, LADDER, tmp_path / "r", frame_range=(5, 99), settings=settings
        )


def test_other_codecs_render_from_one_decode(clip, tmp_path: Path, settings) -> None:
    split = split_video(
        clip(seconds=1.0, audio=False), tmp_path / "s", mode="lossless", settings=settings
    )
    ladder = {
        "rungs": [
            {"name": "hevc", "codec": "hevc", "height": 90, "crf": 28, "preset": "ultrafast"},
            {"name": "vp9", "codec": "vp9", "height": 90, "crf": 40, "preset": 8},
            {"name": "av1", "codec": "av1", "height": 90, "crf": 45, "preset": 12},
        ]
    }
    out = transcode_segment(split.segments[0].path, ladder, tmp_path / "r", settings=settings)
    assert {n: (r.path.suffix, r.frames) for n, r in out.items()} == {
        "hevc": (".ts", 25), "vp9": (".mkv", 25), "av1": (".mkv", 25),
    }  # fmt: skip
    for rendition in out.values():
        assert frames_of(rendition.path)[0]["key_frame"] == 1


def test_muxed_frame_counts_are_read_from_ffmpeg_summary() -> None:
    from kinoit.media.transcode import muxed_frames

    stderr = (
        "Output file #0 (a.ts):\n"
        "  Output stream #0:0 (video): 30 frames encoded; 30 packets muxed (1 bytes);\n"
        "Output file #1 (b.ts):\n"
        "  Output stream #1:0 (video): 29 frames encoded; 29 packets muxed (1 bytes);\n"
    )
    assert muxed_frames(stderr) == {0: 30, 1: 29}


def test_threads_cap_the_decoder_the_graph_and_every_encoder(tmp_path: Path) -> None:
    lad = load_ladder(LADDER)
    targets = plan_targets(lad, 160, 90, tmp_path, "x")
    argv = build_transcode_argv(
        "seg.mkv", lad, targets, fps=Fraction(25), start_frame=0, gop=25, threads=1
    )
    assert argv[6:12] == ["-threads", "1", "-i", "seg.mkv", "-filter_complex_threads", "1"]
    assert argv.count("-threads") == 3  # the decoder and the two rungs' encoders
    first_encoder = argv.index("-threads", 7)
    assert argv[first_encoder - 2 :][:3] == ["-pix_fmt", "yuv420p", "-threads"]


def test_the_transcode_stage_gives_each_encoder_one_thread(
    clip, tmp_path: Path, media_runs
) -> None:
    from kinoit.config import load_settings
    from kinoit.stages import transcode
    from kinoit.store import open_store

    settings = load_settings({"KINOIT_HOME": str(tmp_path / "home")})
    split = split_video(clip(seconds=1.0, audio=False), tmp_path / "s", settings=settings)
    segment = open_store(settings).add(split.segments[0].path, pin=False)
    request = transcode.parse_request(
        {"segment": segment, "ladder": LADDER, "start_frame": 0, "fps": "25/1",
         "frames": 25, "width": 160, "height": 90}
    )  # fmt: skip
    result = transcode.run(request, settings)
    assert sorted(result["renditions"]) == ["48p", "90p"]
    (argv,) = [a for a in media_runs if a[0] == "ffmpeg" and "-filter_complex" in a]
    threads = [argv[i + 1] for i, a in enumerate(argv) if a == "-threads"]
    assert threads == ["1", "1", "1"]  # the decoder's, then one per rung's encoder
    assert argv.index("-threads") < argv.index("-i")  # an input option: the decoder's
    assert argv[argv.index("-filter_complex_threads") + 1] == "1"
