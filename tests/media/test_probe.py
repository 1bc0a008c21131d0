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
