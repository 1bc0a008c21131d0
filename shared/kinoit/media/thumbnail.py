"""Poster frames per segment and, at merge time, a storyboard sprite with a WebVTT index.

The storyboard is the trick-play preview players show over the seek bar: one
sprite sheet (a grid of small thumbnails) and a WebVTT file whose cues point
into it with ``sprite.jpg#xywh=x,y,w,h`` media fragments.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from kinoit.config import Settings, default_settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media.probe import probe

THUMBNAIL_FORMATS = {".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".png": "png"}
DEFAULT_THUMBNAIL_WIDTH = 320
MIN_WIDTH, MAX_WIDTH = 16, 4096
# Pillow's JPEG quality: about the bytes of the ffmpeg mjpeg encoder's -q:v 3 that
# wrote the thumbnails before (docs/benchmarks.md, "Pipeline cost").
JPEG_QUALITY = 85
WEBP_QUALITY = 80
# Storyboard tiles: small enough that a sheet of 100 stays a few hundred KiB.
STORYBOARD_TILE_WIDTH = 160
STORYBOARD_COLUMNS = 10
SPRITE_NAME = "storyboard.jpg"
VTT_NAME = "storyboard.vtt"


def middle_frame(frames: int, frame_range: tuple[int, int] | None = None) -> int:
    """The frame a segment's thumbnail shows: the middle of its frames (pure).

    Away from the cuts at either end (a fade or the last frame of the previous
    shot) and, unlike a search for the most representative frame, found without
    decoding the segment: one seek, one decoded frame.
    """
    first, end = frame_range or (0, frames)
    return first + (end - first) // 2


def seek_seconds(frame: int, fps: Fraction) -> float:
    """Where to seek so that the first frame at or after it is ``frame`` (pure).

    Half a frame early: container timestamps are rounded (Matroska to the ms).
    """
    return max(0.0, float((frame - Fraction(1, 2)) / fps))


def thumbnail_filters(width: int) -> list[tuple[str, str]]:
    """The filters of a poster frame: ``width`` wide, the height of the same aspect
    rounded to even (the command line's ``scale=W:-2``), then RGB for Pillow (pure)."""
    return [("scale", f"{width}:-2:flags=bicubic"), ("format", "rgb24")]


def save_image(image: Image.Image, out: Path) -> None:
    """Write ``image`` as ``out``'s format, atomically (a temporary file, then renamed)."""
    fmt = THUMBNAIL_FORMATS[out.suffix.lower()]
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if fmt == "jpg":
            image.save(tmp, "JPEG", quality=JPEG_QUALITY)
        elif fmt == "webp":
            image.save(tmp, "WEBP", quality=WEBP_QUALITY)
        else:
            image.save(tmp, "PNG")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def make_thumbnail(
    video: str | Path,
    out_path: str | Path,
    *,
    width: int = DEFAULT_THUMBNAIL_WIDTH,
    frame_range: tuple[int, int] | None = None,
    frames: int | None = None,
    fps: Fraction | None = None,
    settings: Settings | None = None,
) -> Path:
    """Write a poster frame of ``video`` (its middle frame) to ``out_path`` (.jpg, .webp, .png).

    ``frame_range`` limits the choice to frames [first, end) (copy-mode segments).
    Given ``frames`` and ``fps`` (known from the split index), the file is not probed.
    Decoded in this process (:mod:`kinoit.media.frames`): a seek to the keyframe at or
    before the frame (the frame itself in an intra-only segment), the frames from there
    decoded, only the chosen one scaled, and Pillow writes the image.
    """
    from kinoit.media.frames import iter_frames

    settings = settings or default_settings()
    out = Path(out_path)
    if out.suffix.lower() not in THUMBNAIL_FORMATS:
        raise InvalidParameter("out", f"expected a .jpg, .webp or .png path, got {out.name!r}")
    if isinstance(width, bool) or not MIN_WIDTH <= width <= MAX_WIDTH or width % 2:
        raise InvalidParameter("width", f"expected an even width in [{MIN_WIDTH}, {MAX_WIDTH}]")
    if frames is None or fps is None:
        info = probe(video, settings=settings, detect_vfr=False)
        frames, fps = info.frames, info.fps
    if frames < 1:
        raise InvalidParameter("frames", f"expected at least one frame, got {frames}")
    if frame_range is not None and not 0 <= frame_range[0] < frame_range[1] <= frames:
        raise InvalidParameter("frame_range", f"{frame_range} is outside {frames} frames")
    out.parent.mkdir(parents=True, exist_ok=True)
    seek = seek_seconds(middle_frame(frames, frame_range), fps)
    # The first frame only: the generator (and the file) is closed as it is dropped.
    frame = next(
        iter_frames(
            video, thumbnail_filters(width), timeout=settings.ffmpeg_timeout_seconds,
            max_frames=1, start=seek, what="thumbnail",
        ),
        None,
    )  # fmt: skip
    if frame is None:
        raise MediaError(f"thumbnail: no frame at {seek:.3f}s in {video}")
    save_image(Image.fromarray(frame.image, "RGB"), out)
    return out


def vtt_timestamp(seconds: float) -> str:
    """WebVTT time, e.g. 00:01:02.500."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def storyboard_vtt(
    durations: Sequence[float], sprite_name: str, tile: tuple[int, int], columns: int
) -> str:
    """The WebVTT index: one cue per tile, pointing into the sprite with #xywh= (pure)."""
    lines = ["WEBVTT", ""]
    start = 0.0
    for i, duration in enumerate(durations):
        x, y = (i % columns) * tile[0], (i // columns) * tile[1]
        lines.append(f"{vtt_timestamp(start)} --> {vtt_timestamp(start + duration)}")
        lines.append(f"{sprite_name}#xywh={x},{y},{tile[0]},{tile[1]}")
        lines.append("")
        start += duration
    return "\n".join(lines)


def make_storyboard(
    thumbnails: Sequence[str | Path],
    out_dir: str | Path,
    *,
    durations: Sequence[float] | None = None,
    tile_width: int = STORYBOARD_TILE_WIDTH,
    columns: int = STORYBOARD_COLUMNS,
) -> tuple[Path, Path]:
    """Tile per-segment thumbnails into a sprite sheet and write its WebVTT index.

    ``durations`` gives each thumbnail's segment length in seconds (default 1 s each).
    Returns (sprite path, vtt path).
    """
    if not thumbnails:
        raise InvalidParameter("thumbnails", "no thumbnails to tile")
    durations = list(durations) if durations is not None else [1.0] * len(thumbnails)
    if len(durations) != len(thumbnails):
        raise InvalidParameter("durations", "one duration per thumbnail is needed")
    if not MIN_WIDTH <= tile_width <= MAX_WIDTH or columns < 1:
        raise InvalidParameter("tile_width", "tile width or column count out of range")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tile: tuple[int, int] | None = None
    rows = (len(thumbnails) + columns - 1) // columns
    sheet: Image.Image | None = None
    for i, thumb in enumerate(thumbnails):
        try:
            with Image.open(thumb) as img:
                if tile is None:
                    tile = (tile_width, max(2, round(img.height * tile_width / img.width)))
                    sheet = Image.new(
                        "RGB", (tile[0] * min(columns, len(thumbnails)), tile[1] * rows)
                    )
                small = img.convert("RGB").resize(tile, Image.Resampling.BILINEAR)
        except (OSError, UnidentifiedImageError) as exc:
            raise InvalidParameter("thumbnails", f"{thumb}: not a readable image: {exc}") from None
        assert sheet is not None
        sheet.paste(small, ((i % columns) * tile[0], (i // columns) * tile[1]))
    assert sheet is not None and tile is not None
    sprite, vtt = out / SPRITE_NAME, out / VTT_NAME
    sheet.save(sprite, "JPEG", quality=80)
    vtt.write_text(storyboard_vtt(durations, SPRITE_NAME, tile, columns), "utf-8")
    return sprite, vtt
