"""Synthetic test clips made by ffmpeg: a moving test pattern with a sine tone.

Tests, benchmarks and the demo use these instead of shipping media files.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from kinoit.errors import InvalidParameter
from kinoit.media import ffmpeg
from kinoit.media.plan import parse_rate

# Source encodes use the fastest x264 preset: clips are inputs, not products.
SYNTH_PRESET = "ultrafast"
# Generating even a minute of small video takes seconds; this is a generous bound.
SYNTH_TIMEOUT_SECONDS = 600.0
SYNTH_PIX_FMTS = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le")
# Longest clip the generator makes.
MAX_SYNTH_SECONDS = 3600.0
# Audio layouts the generator makes: a tone per channel, each at its own pitch.
SYNTH_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def build_synth_argv(
    path: str | Path,
    *,
    seconds: float = 2.0,
    fps: str | Fraction | int = 25,
    width: int = 320,
    height: int = 180,
    audio: bool = True,
    rotation: int | None = None,
    vfr: bool = False,
    gop: int | None = None,
    pix_fmt: str = "yuv420p",
    crf: int = 18,
    preset: str = SYNTH_PRESET,
    channels: int = 1,
    language: str | None = None,
) -> list[str]:
    """The ffmpeg arguments for :func:`make_clip` (pure)."""
    rate = parse_rate(fps)
    if not 0 < seconds <= MAX_SYNTH_SECONDS:
        raise InvalidParameter("seconds", f"must be in (0, {MAX_SYNTH_SECONDS:g}], got {seconds}")
    if not (2 <= width <= 8192 and 2 <= height <= 8192):
        raise InvalidParameter("size", f"{width}x{height} is out of range")
    if pix_fmt not in SYNTH_PIX_FMTS:
        raise InvalidParameter(
            "pix_fmt", f"expected one of {list(SYNTH_PIX_FMTS)}, got {pix_fmt!r}"
        )
    if rotation not in (None, 0, 90, 180, 270):
        raise InvalidParameter("rotation", f"expected 0, 90, 180 or 270, got {rotation}")
    if channels not in SYNTH_LAYOUTS:
        raise InvalidParameter(
            "channels", f"expected one of {sorted(SYNTH_LAYOUTS)}, got {channels}"
        )
    r = f"{rate.numerator}/{rate.denominator}"
    t = f"{seconds:.6f}"
    argv = [ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y"]
    # testsrc2 draws even sizes only; odd ones are cropped from the next even size.
    even_w, even_h = width + width % 2, height + height % 2
    argv += ["-f", "lavfi", "-i", f"testsrc2=size={even_w}x{even_h}:rate={r}:duration={t}"]
    if audio and channels == 1:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={t}"]
    elif audio:
        tones = "|".join(f"0.2*sin({220 * (k + 1)}*2*PI*t)" for k in range(channels))
        layout = SYNTH_LAYOUTS[channels]
        argv += ["-f", "lavfi", "-i", f"aevalsrc={tones}:s=48000:c={layout}:d={t}"]
    argv += ["-map", "0:v"]
    filters = []
    if (even_w, even_h) != (width, height):
        filters.append(f"format={pix_fmt},crop={width}:{height}:0:0")
    if vfr:
        # Every tenth frame arrives half a frame late: a real variable frame rate.
        filters.append("setpts=(N+0.5*floor(N/10))/FR/TB")
    if filters:
        argv += ["-vf", ",".join(filters)]
    if vfr:
        argv += ["-fps_mode", "vfr", "-video_track_timescale", "90000"]
    argv += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", pix_fmt]
    argv += ["-g", str(gop or 250)]
    if gop:
        argv += ["-keyint_min", str(gop), "-sc_threshold", "0"]
    if audio:
        argv += ["-map", "1:a", "-c:a", "aac", "-b:a", "96k" if channels < 6 else "256k"]
        if language:
            argv += ["-metadata:s:a:0", f"language={language}"]
    argv += ["-movflags", "+faststart", str(path)]
    return argv


def make_clip(
    path: str | Path,
    *,
    seconds: float = 2.0,
    fps: str | Fraction | int = 25,
    width: int = 320,
    height: int = 180,
    audio: bool = True,
    rotation: int | None = None,
    vfr: bool = False,
    gop: int | None = None,
    pix_fmt: str = "yuv420p",
    crf: int = 18,
    preset: str = SYNTH_PRESET,
    channels: int = 1,
    language: str | None = None,
) -> Path:
    """Write a test clip (H.264 in MP4 by default; the extension picks the container)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = build_synth_argv(
        out, seconds=seconds, fps=fps, width=width, height=height, audio=audio,
        rotation=rotation, vfr=vfr, gop=gop, pix_fmt=pix_fmt, crf=crf, preset=preset,
        channels=channels, language=language,
    )  # fmt: skip
    if out.suffix.lower() not in (".mp4", ".mov", ".m4v"):
        argv.remove("-movflags")
        argv.remove("+faststart")
    if not rotation:
        ffmpeg.run(argv, SYNTH_TIMEOUT_SECONDS, what="synth")
        return out
    # ffmpeg 5.1 only turns the rotate tag into a display matrix when stream-copying.
    plain = out.with_name(f".{out.stem}.unrotated{out.suffix}")
    argv[-1] = str(plain)
    try:
        ffmpeg.run(argv, SYNTH_TIMEOUT_SECONDS, what="synth")
        ffmpeg.run(build_rotate_argv(plain, out, rotation), SYNTH_TIMEOUT_SECONDS, what="synth")
    finally:
        plain.unlink(missing_ok=True)
    return out


def build_rotate_argv(src: str | Path, out: str | Path, rotation: int) -> list[str]:
    """Stream-copy ``src`` adding rotation metadata (pure)."""
    return [
        ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-i", str(src), "-map", "0", "-c", "copy",
        "-metadata:s:v:0", f"rotate={rotation}", str(out),
    ]  # fmt: skip
