"""probe: what a video file contains, checked against the configured caps."""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import Settings, default_settings
from kinoit.errors import InvalidParameter, MediaError, MediaLimitExceeded, NotAVideo
from kinoit.media import ffmpeg

# A frame interval this far (as a fraction of the nominal one) from the median marks VFR.
VFR_TOLERANCE = 0.25
# How far the average rate may stray from the nominal one before the stream is VFR.
VFR_RATE_TOLERANCE = Fraction(1, 100)
# Containers routinely round their declared frame count by a frame or two.
DECLARED_FRAMES_SLACK = 2

# ffmpeg's tty and bintext demuxers turn any text file (.txt, .ans, .bin, ...) into
# a "video" of rendered characters: that is the caller's text, not a video.
TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


@dataclass(frozen=True)
class AudioStream:
    """One audio stream of the source."""

    index: int
    codec: str
    channels: int
    sample_rate: int
    duration: float | None
    language: str | None = None  # the stream's language tag as the container gives it


@dataclass(frozen=True)
class ProbeResult:
    """The facts about a video that splitting and planning need."""

    path: str
    format_name: str
    codec: str
    duration: float
    fps: Fraction
    frames: int
    width: int
    height: int
    pix_fmt: str
    rotation: int
    vfr: bool
    frames_declared: int | None = None
    audio: tuple[AudioStream, ...] = field(default_factory=tuple)

    @property
    def display_width(self) -> int:
        """Width after the rotation metadata is applied (what a player shows)."""
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        """Height after the rotation metadata is applied."""
        return self.width if self.rotation in (90, 270) else self.height

    def to_json(self) -> dict[str, Any]:
        """The JSON document `kinoit probe` prints."""
        body = asdict(self)
        body["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        body["audio"] = [asdict(a) for a in self.audio]
        body["display_width"] = self.display_width
        body["display_height"] = self.display_height
        return body


def build_probe_argv(
    path: str | Path, *, timestamps: bool = True, flags: bool = False
) -> list[str]:
    """ffprobe arguments: format and streams as JSON, packets counted by demuxing.

    ``timestamps`` adds every packet's stream index and pts, from the same demuxing
    pass, for the variable-rate check: one ffprobe per file either way. Compact
    JSON (one packet per line) is 40% fewer bytes to write, pipe and parse: an hour
    of video with audio lists about 260,000 packets. ``flags`` adds each packet's
    flags too (K: a keyframe), so the same pass is the keyframe scan
    (:func:`kinoit.media.keyframes.probe_and_scan`).
    """
    argv = [
        ffmpeg.FFPROBE, "-v", "error", "-print_format", "json=compact=1",
        "-show_format", "-show_streams", "-count_packets",
    ]  # fmt: skip
    if timestamps:
        argv += [
            "-show_entries",
            "packet=stream_index,pts,flags" if flags else "packet=stream_index,pts",
        ]
    return [*argv, "-i", str(path)]


def video_stream(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The video stream of ffprobe's JSON that kinoit reads: the first one with a codec
    that is not an attached picture (cover art) (pure)."""
    return next(
        (
            s
            for s in doc.get("streams") or []
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
            and s.get("codec_name")
        ),
        None,
    )


def video_pts(doc: Mapping[str, Any], stream_index: int) -> list[int]:
    """The pts of every packet of stream ``stream_index`` in ffprobe's JSON (pure)."""
    return [
        int(pts)
        for packet in doc.get("packets") or []
        if packet.get("stream_index") == stream_index and isinstance(pts := packet.get("pts"), int)
    ]


def _rate(text: object) -> Fraction | None:
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _float(value: object) -> float | None:
    try:
        result = float(str(value))
    except ValueError:
        return None
    return result if result == result and result >= 0 else None  # drops NaN


def rotation_of(stream: Mapping[str, Any]) -> int:
    """Clockwise display rotation in degrees (0, 90, 180, 270) from tags or the display matrix."""
    degrees: float | None = None
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            # The display matrix angle is counter-clockwise; players rotate clockwise.
            degrees = -float(side["rotation"])
    tag = (stream.get("tags") or {}).get("rotate")
    if degrees is None and tag is not None:
        degrees = _float(tag)
    if degrees is None:
        return 0
    return round(degrees / 90.0) * 90 % 360


def is_variable_rate(pts: Sequence[int], nominal_interval: float) -> bool:
    """True when frame intervals stray from the median by more than VFR_TOLERANCE of a frame.

    ``pts`` must be every packet of the stream (in any order): sorted, they are the
    presentation order. A prefix in decode order is not enough: with B-frames it
    ends inside a reordered group, whose missing frames look like a gap.
    """
    ordered = sorted(pts)
    deltas = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    if len(deltas) < 2:
        return False
    median = statistics.median(deltas)
    slack = max(VFR_TOLERANCE * nominal_interval, 1.0)
    return any(abs(d - median) > slack for d in deltas)


def parse_probe(doc: Mapping[str, Any], path: str, pts: Sequence[int] | None = None) -> ProbeResult:
    """Build a ProbeResult from ffprobe's JSON (pure); raise NotAVideo when there is no video.

    The variable-rate check reads ``pts`` when given, else the video packets listed
    in ``doc`` (see :func:`build_probe_argv`); with neither it trusts the declared rates.
    """
    streams = list(doc.get("streams") or [])
    fmt = doc.get("format") or {}
    v = video_stream(doc)
    if v is None:
        raise NotAVideo(f"{path}: no video stream (found {len(streams)} other stream(s))")
    if v.get("codec_name") in TEXT_CODECS:
        raise NotAVideo(f"{path}: text, not a video (ffmpeg would draw it as ANSI art)")
    width, height = _int(v.get("width")) or 0, _int(v.get("height")) or 0
    if width <= 0 or height <= 0:
        raise NotAVideo(f"{path}: video stream has no frame size")
    counted = _int(v.get("nb_read_packets"))
    declared = _int(v.get("nb_frames"))
    if not counted:
        raise NotAVideo(f"{path}: video stream holds no frames")
    if declared is not None and declared - counted > DECLARED_FRAMES_SLACK:
        # The caller's input is at fault (HTTP 400), not the service: NotAVideo, not MediaError.
        raise NotAVideo(
            f"{path}: truncated: the container declares {declared} frames "
            f"but only {counted} are present"
        )
    r_rate = _rate(v.get("r_frame_rate"))
    avg_rate = _rate(v.get("avg_frame_rate"))
    duration = _float(v.get("duration")) or _float(fmt.get("duration")) or 0.0
    nominal = r_rate or avg_rate
    if nominal is None:
        if duration <= 0:
            raise NotAVideo(f"{path}: no frame rate and no duration")
        nominal = Fraction(counted / duration).limit_denominator(1001)
    vfr = False
    if r_rate and avg_rate and abs(avg_rate - r_rate) > VFR_RATE_TOLERANCE * r_rate:
        vfr = True
    time_base = _rate(v.get("time_base"))
    if pts is None:
        pts = video_pts(doc, _int(v.get("index")) or 0)
    if pts and time_base:
        interval = float(1 / (nominal * time_base))
        vfr = vfr or is_variable_rate(pts, interval)
    fps = (avg_rate or nominal).limit_denominator(1001) if vfr else nominal
    audio = tuple(
        AudioStream(
            index=_int(s.get("index")) or 0,
            codec=str(s.get("codec_name")),
            channels=_int(s.get("channels")) or 0,
            sample_rate=_int(s.get("sample_rate")) or 0,
            duration=_float(s.get("duration")),
            language=str((s.get("tags") or {}).get("language") or "") or None,
        )
        for s in streams
        if s.get("codec_type") == "audio" and s.get("codec_name")
    )
    if duration <= 0:
        duration = float(counted / fps)
    return ProbeResult(
        path=path,
        format_name=str(fmt.get("format_name", "")),
        codec=str(v.get("codec_name")),
        duration=duration,
        fps=fps,
        frames=counted,
        width=width,
        height=height,
        pix_fmt=str(v.get("pix_fmt") or ""),
        rotation=rotation_of(v),
        vfr=vfr,
        frames_declared=declared,
        audio=audio,
    )


def check_limits(result: ProbeResult, settings: Settings) -> None:
    """Raise MediaLimitExceeded when the video is larger or longer than the caps."""
    cap = settings.max_dimension
    if result.width > cap or result.height > cap:
        raise MediaLimitExceeded(
            f"{result.path}: {result.width}x{result.height} exceeds the cap of {cap} pixels "
            "(KINOIT_MAX_DIMENSION)"
        )
    if result.duration > settings.max_duration_seconds:
        raise MediaLimitExceeded(
            f"{result.path}: duration {result.duration:.1f}s exceeds the cap of "
            f"{settings.max_duration_seconds:g}s (KINOIT_MAX_DURATION_SECONDS)"
        )


def probe(
    path: str | Path, *, settings: Settings | None = None, detect_vfr: bool = True
) -> ProbeResult:
    """Probe ``path`` with one ffprobe: stream facts, counted frames, VFR detection; enforce
    the caps.

    ``detect_vfr=False`` leaves the packet timestamps out (a smaller answer) for files
    kinoit wrote itself at a constant rate.
    """
    return probe_document(path, settings=settings, detect_vfr=detect_vfr)[0]


def probe_document(
    path: str | Path,
    *,
    settings: Settings | None = None,
    detect_vfr: bool = True,
    flags: bool = False,
) -> tuple[ProbeResult, Mapping[str, Any]]:
    """:func:`probe`, and the ffprobe JSON it read (every packet's flags in it too with
    ``flags``)."""
    settings = settings or default_settings()
    p = Path(path)
    if not p.is_file():
        raise InvalidParameter("path", f"no such file: {p}")
    if p.stat().st_size == 0:
        raise NotAVideo(f"{p}: empty file (0 bytes)")
    argv = build_probe_argv(p, timestamps=detect_vfr or flags, flags=flags)
    try:
        out = ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="probe")
    except MediaError as exc:
        raise NotAVideo(f"{p}: not a readable video", exc.command, exc.stderr_tail) from None
    try:
        doc = json.loads(out.stdout or b"{}")
    except json.JSONDecodeError:
        raise NotAVideo(f"{p}: ffprobe printed no JSON", argv) from None
    result = parse_probe(doc, str(p), None if detect_vfr else [])
    check_limits(result, settings)
    return result, doc
