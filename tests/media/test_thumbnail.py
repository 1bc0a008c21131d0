import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import make_storyboard, make_thumbnail
from kinoit.media.thumbnail import (
    middle_frame,
    seek_seconds,
    storyboard_vtt,
    thumbnail_filters,
    vtt_timestamp,
)
from PIL import Image, ImageStat


@pytest.mark.parametrize("ext", ["jpg", "webp"])
def test_thumbnail_is_an_image_of_the_requested_width(
    clip, tmp_path: Path, settings, ext: str
) -> None:
    out = make_thumbnail(clip(), tmp_path / f"t.{ext}", width=80, settings=settings)
    with Image.open(out) as img:
        assert img.format == {"jpg": "JPEG", "webp": "WEBP"}[ext]
        assert img.size == (80, 46)  # aspect kept, even height


def test_thumbnail_rejects_bad_arguments(clip, tmp_path: Path, settings) -> None:
    with pytest.raises(InvalidParameter, match="out"):
        make_thumbnail(clip(), tmp_path / "t.gif", settings=settings)
    with pytest.raises(InvalidParameter, match="width"):
        make_thumbnail(clip(), tmp_path / "t.jpg", width=7, settings=settings)


def test_thumbnail_filters_are_the_command_lines_scale() -> None:
    assert thumbnail_filters(320) == [("scale", "320:-2:flags=bicubic"), ("format", "rgb24")]


@pytest.mark.parametrize(
    ("size", "expected"),
    [("64x36", (32, 18)), ("70x40", (32, 18)), ("50x50", (32, 32)), ("90x40", (32, 14))],
)
def test_thumbnail_size_is_the_command_lines(
    size: str, expected: tuple[int, int], tmp_path: Path, settings
) -> None:
    """The in-process scale gives the size ``ffmpeg -vf scale=W:-2`` gives."""
    src = tmp_path / "src.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d=0.2",
         "-c:v", "utvideo", str(src)],
        check=True, timeout=60,
    )  # fmt: skip
    cli = tmp_path / "cli.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(src), "-vf", "scale=32:-2:flags=bicubic",
         "-frames:v", "1", str(cli)],
        check=True, timeout=60,
    )  # fmt: skip
    out = make_thumbnail(src, tmp_path / "t.jpg", width=32, settings=settings)
    with Image.open(out) as ours, Image.open(cli) as theirs:
        assert ours.size == theirs.size == expected


def test_middle_frame_and_its_seek_point() -> None:
    assert middle_frame(25) == 12
    assert middle_frame(1) == 0
    assert middle_frame(90, (20, 45)) == 32
    assert seek_seconds(12, Fraction(25)) == pytest.approx(0.46)
    assert seek_seconds(0, Fraction(25)) == 0.0


RAMP_CODECS = {
    "ffv1.mkv": ["-c:v", "ffv1"],
    "utvideo.mkv": ["-c:v", "utvideo"],
    "x264-bframes.mp4": ["-c:v", "libx264", "-preset", "veryfast", "-qp", "0", "-g", "50"],
    "x264-gop10.mkv": ["-c:v", "libx264", "-preset", "veryfast", "-qp", "0", "-g", "10",
                       "-bf", "0"],
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(RAMP_CODECS))
def ramp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 25 fps, lossless, whose frame n is a flat grey of luma 16 + 4 n: intra-only
    FFV1 and UT Video (what split writes), x264 with B-frames and one GOP (what copy mode
    cuts) and x264 with a keyframe every 10 frames (a seek lands before the frame)."""
    path = tmp_path_factory.mktemp("ramp") / f"ramp-{request.param}"
    codec = RAMP_CODECS[request.param]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=black:s=64x36:r=25:d=2",
         "-vf", "format=yuv420p,geq=lum='16+4*N':cb=128:cr=128", *codec, str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def shown_frame(image: Path) -> int:
    with Image.open(image) as img:
        luma = ImageStat.Stat(img.convert("L")).mean[0]
    # PNG holds full-range RGB: luma 16 + 4 n became 4 n * 255 / 219.
    return round(luma * 219 / 255 / 4)


def test_thumbnail_shows_the_middle_frame(ramp: Path, tmp_path: Path, settings) -> None:
    assert shown_frame(make_thumbnail(ramp, tmp_path / "a.png", width=64, settings=settings)) == 25
    ranged = make_thumbnail(
        ramp, tmp_path / "b.png", width=64, frame_range=(10, 20), settings=settings
    )
    assert shown_frame(ranged) == 15


def test_known_frames_and_rate_spare_the_probe(
    ramp: Path, tmp_path: Path, settings, media_runs
) -> None:
    out = make_thumbnail(
        ramp, tmp_path / "t.png", width=64, frames=50, fps=Fraction(25), settings=settings
    )
    assert media_runs == []  # decoded in this process: no ffmpeg, no ffprobe
    assert shown_frame(out) == 25


def test_every_frame_can_be_the_one_shown(ramp: Path, tmp_path: Path, settings) -> None:
    """The frame is the one the command line's ``-ss`` picked, wherever it falls
    (a keyframe, just after one, the last frame)."""
    for first, end in ((0, 1), (9, 12), (10, 11), (11, 14), (30, 50), (49, 50)):
        out = make_thumbnail(
            ramp, tmp_path / f"{first}.png", width=64, frame_range=(first, end),
            frames=50, fps=Fraction(25), settings=settings,
        )  # fmt: skip
        assert shown_frame(out) == middle_frame(50, (first, end))


def test_a_seek_past_the_end_is_an_error_and_leaves_no_file(
    ramp: Path, tmp_path: Path, settings
) -> None:
    with pytest.raises(MediaError, match="no frame at"):
        make_thumbnail(ramp, tmp_path / "t.jpg", frames=500, fps=Fraction(25), settings=settings)
    assert not (tmp_path / "t.jpg").exists()


def test_storyboard_sprite_and_vtt(tmp_path: Path) -> None:
    thumbs = []
    for i in range(12):
        p = tmp_path / f"{i:05d}.jpg"
        Image.new("RGB", (320, 180), (i * 20, 0, 0)).save(p)
        thumbs.append(p)
    sprite, vtt = make_storyboard(thumbs, tmp_path / "sb", durations=[1.0] * 11 + [0.5])
    with Image.open(sprite) as img:
        assert img.size == (160 * 10, 90 * 2)
    text = vtt.read_text()
    assert text.startswith("WEBVTT\n")
    assert "00:00:00.000 --> 00:00:01.000\nstoryboard.jpg#xywh=0,0,160,90\n" in text
    assert "00:00:11.000 --> 00:00:11.500\nstoryboard.jpg#xywh=160,90,160,90\n" in text


def test_vtt_helpers() -> None:
    assert vtt_timestamp(3723.5) == "01:02:03.500"
    assert storyboard_vtt([2.0], "s.jpg", (10, 6), 1).splitlines()[2:4] == [
        "00:00:00.000 --> 00:00:02.000", "s.jpg#xywh=0,0,10,6",
    ]  # fmt: skip


def test_storyboard_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="no thumbnails"):
        make_storyboard([], tmp_path)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(InvalidParameter, match="not a readable image"):
        make_storyboard([junk], tmp_path)


def test_thumbnail_frame_range_outside_the_video_is_refused(clip, tmp_path: Path, settings) -> None:
    with pytest.raises(InvalidParameter, match="frame_range"):
        make_thumbnail(clip(), tmp_path / "u.png", frame_range=(20, 900), settings=settings)
