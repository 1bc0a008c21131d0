import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest
from kinoit.errors import InvalidParameter, MediaLimitExceeded, NotAVideo
from kinoit.media import probe
from kinoit.media.probe import is_variable_rate, parse_probe, rotation_of


def test_probe_reports_rate_frames_size_and_audio(clip, settings) -> None:
    info = probe(clip(fps="30000/1001"), settings=settings)
    assert info.fps == Fraction(30000, 1001)
    assert info.frames == 66  # 2.2 s at 29.97
    assert (info.width, info.height, info.pix_fmt) == (160, 90, "yuv420p")
    assert not info.vfr and info.rotation == 0
    assert [(a.codec, a.sample_rate) for a in info.audio] == [("aac", 48000)]
    assert info.to_json()["fps"] == "30000/1001"


def test_rotation_metadata_is_reported_and_display_size_swapped(clip, settings) -> None:
    info = probe(clip(rotation=90), settings=settings)
    assert info.rotation in (90, 270)
    assert (info.display_width, info.display_height) == (90, 160)


def test_variable_frame_rate_is_detected(clip, settings) -> None:
    assert probe(clip(vfr=True), settings=settings).vfr


def test_no_audio(clip, settings) -> None:
    assert probe(clip(audio=False), settings=settings).audio == ()


def test_frames_are_counted_when_the_container_declares_none(clip, settings) -> None:
    info = probe(clip(ext="mkv"), settings=settings)
    assert info.frames_declared is None and info.frames == 55


def test_not_a_video(tmp_path: Path, settings) -> None:
    bogus = tmp_path / "x.mp4"
    bogus.write_bytes(b"this is not a video at all" * 100)
    with pytest.raises(NotAVideo, match="not a readable video") as info:
        probe(bogus, settings=settings)
    assert info.value.stderr_tail  # ffprobe's own complaint is carried along


def test_zero_bytes_and_missing_file(tmp_path: Path, settings) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(NotAVideo, match="0 bytes"):
        probe(empty, settings=settings)
    with pytest.raises(InvalidParameter, match="no such file"):
        probe(tmp_path / "missing.mp4", settings=settings)


def test_truncated_file(clip, tmp_path: Path, settings) -> None:
    data = clip().read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(NotAVideo, match="truncated") as info:
        probe(cut, settings=settings)
    assert info.value.http_status == 400  # the caller's input, not a server fault


def test_audio_only_is_not_a_video(tmp_path: Path, settings) -> None:
    import subprocess

    audio = tmp_path / "tone.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac",
         str(audio)],
        check=True, timeout=60,
    )  # fmt: skip
    with pytest.raises(NotAVideo, match="no video stream"):
        probe(audio, settings=settings)


def test_caps_on_dimensions_and_duration(clip, settings) -> None:
    path = clip()
    with pytest.raises(MediaLimitExceeded, match="KINOIT_MAX_DIMENSION"):
        probe(path, settings=dataclasses.replace(settings, max_dimension=100))
    with pytest.raises(MediaLimitExceeded, match="KINOIT_MAX_DURATION_SECONDS"):
        probe(path, settings=dataclasses.replace(settings, max_duration_seconds=1.0))


def test_parse_probe_rejects_attached_pictures_as_video() -> None:
    doc = {
        "streams": [
            {"codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}}
        ]
    }
    with pytest.raises(NotAVideo):
        parse_probe(doc, "song.mp3")


def test_rotation_from_display_matrix_or_tag() -> None:
    assert rotation_of({"side_data_list": [{"rotation": -90}]}) == 90
    assert rotation_of({"tags": {"rotate": "270"}}) == 270
    assert rotation_of({}) == 0


def test_variable_rate_detection_is_pure() -> None:
    assert not is_variable_rate(list(range(0, 4000, 40)), 40.0)
    assert is_variable_rate([0, 40, 80, 140, 180, 220], 40.0)


def _decode_order_pts(path: Path) -> list[int]:
    import subprocess

    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts",
         "-of", "csv=p=0", "-i", str(path)],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    return [int(x.strip(",")) for x in out.split()]


def _has_b_frames(path: Path) -> bool:
    pts = _decode_order_pts(path)
    return pts != sorted(pts)  # presentation order differs from decode order


# 30 s of 25 fps: more packets than the 600 the old check sampled in decode order.
# GOPs that do not divide 600: the old sample then ended inside a GOP.
@pytest.mark.parametrize("gop", [None, 48, 26, 14])
def test_constant_rate_with_b_frames_is_not_variable_rate(clip, settings, gop) -> None:
    path = clip("bframes", seconds=30, audio=True, preset="veryfast", gop=gop)
    assert _has_b_frames(path)
    info = probe(path, settings=settings)
    assert not info.vfr
    assert (info.fps, info.frames) == (Fraction(25), 750)


def test_a_decode_order_prefix_of_a_b_frame_stream_looks_variable_rate(clip) -> None:
    # Why the check needs every packet: with B-frames, a prefix in decode order (the
    # old check sampled the first 600 packets) mostly ends inside a reordered group,
    # whose frames still to come leave a gap at its end.
    path = clip("bframes", seconds=30, audio=True, preset="veryfast", gop=None)
    pts = _decode_order_pts(path)
    interval = 512.0  # mp4 time base 1/12800 at 25 fps
    cut_inside_a_group = [n for n in range(590, 611) if is_variable_rate(pts[:n], interval)]
    assert len(cut_inside_a_group) > 5
    assert not is_variable_rate(pts, interval)


def test_phone_like_one_second_gop_at_ntsc_rate_is_constant(clip, settings) -> None:
    path = clip(
        "phone", seconds=25, fps="30000/1001", width=64, height=36, preset="veryfast", gop=30
    )
    assert _has_b_frames(path)
    info = probe(path, settings=settings)
    assert not info.vfr and info.fps == Fraction(30000, 1001)


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_rate_with_b_frames_is_detected(clip, settings, ext) -> None:
    path = clip("vfrb", seconds=4, vfr=True, preset="veryfast", ext=ext)
    assert probe(path, settings=settings).vfr


def test_variable_rate_that_starts_late_in_the_file_is_detected(tmp_path: Path, settings) -> None:
    import subprocess

    path = tmp_path / "late-vfr.mp4"
    # Constant 25 fps for 700 frames, then every tenth frame half a frame late.
    setpts = "setpts=(N+0.5*floor(max(N-700\\,0)/10))/FR/TB"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=25:duration=36",
         "-vf", setpts, "-fps_mode", "vfr", "-video_track_timescale", "90000",
         "-c:v", "libx264", "-preset", "veryfast", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    info = probe(path, settings=settings)
    assert info.vfr
    assert info.frames == 900


def test_probe_runs_one_ffprobe_per_file(clip, settings, media_runs) -> None:
    path = clip("bframes", seconds=30, audio=True, preset="veryfast", gop=None)
    probe(path, settings=settings)
    probe(path, settings=settings, detect_vfr=False)
    assert [argv[0] for argv in media_runs] == ["ffprobe", "ffprobe"]
