from pathlib import Path

import pytest
from kinoit.errors import InvalidParameter
from kinoit.media import make_storyboard, make_thumbnail
from kinoit.media.thumbnail import build_thumbnail_argv, storyboard_vtt, vtt_timestamp
from PIL import Image


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


def test_thumbnail_argv_is_exact() -> None:
    assert build_thumbnail_argv("v.mkv", "t.jpg", width=320, batch=25) == [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", "v.mkv",
        "-map", "0:v:0", "-vf", "thumbnail=n=25,scale=320:-2:flags=bicubic", "-frames:v", "1",
        "-update", "1", "-an", "-map_metadata", "-1",
        "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", "t.jpg",
    ]  # fmt: skip


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


def test_thumbnail_frame_range_trims_first(clip, tmp_path: Path, settings) -> None:
    argv = build_thumbnail_argv("v.mkv", "t.webp", width=64, batch=5, frame_range=(20, 25))
    assert argv[argv.index("-vf") + 1].startswith("trim=start_frame=20:end_frame=25,thumbnail=n=5,")
    assert make_thumbnail(
        clip(), tmp_path / "t.png", width=64, frame_range=(20, 25), settings=settings
    )
    with pytest.raises(InvalidParameter, match="frame_range"):
        make_thumbnail(clip(), tmp_path / "u.png", frame_range=(20, 900), settings=settings)
