"""split: cut a video into frame-exact N-second, video-only segments plus one audio file.

Modes (measured in docs/benchmarks.md, "## Media"):

- ``lossless`` (default): every frame decoded once and stored intra-only (so
  any frame can start a segment) in Matroska: UT Video for the pixel formats it
  carries, FFV1 for the others. Pixel-identical to the decoded source, several
  times smaller than raw.
- ``raw``: the decoded frames as rawvideo in NUT. Identical pixels, no encode
  cost, but large.
- ``copy``: no decode. Each segment is a stream copy of the source from the
  keyframe at or before its first frame up to the keyframe at or after its
  end; ``frame_range`` tells transcode which decoded frames to keep. Needs
  closed GOPs (the norm); long GOPs make segments overlap.

- ``auto`` (default): copy when the source has a constant frame rate and no
  GOP longer than two segments, lossless otherwise.
- ``aligned`` (the split stage's): when every segment boundary is already a
  keyframe of the source that no frame is reordered across (a phone's 1-second
  GOP, for instance), one ffmpeg cuts the source there by stream copy: each
  segment holds exactly its frames, no ``frame_range``, no encode (the
  signatures still cost one decode). Any other source is split ``lossless``.

Variable frame rate sources are resampled to a constant rate (their average)
by the fps filter, which reads real timestamps, so no timing is lost.
The audio is encoded once, from the whole source, to AAC and padded or cut to
the video's duration (never per segment: chunked AAC clicks at the seams).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from kinoit.config import Settings, default_settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import ffmpeg
from kinoit.media.files import link_or_copy
from kinoit.media.keyframes import (
    KeyframeScan,
    build_copy_argv,
    cuts_on_keyframes,
    plan_copy_cuts,
    scan_keyframes,
)
from kinoit.media.plan import SegmentPlan, frames_per_segment, plan_segments
from kinoit.media.probe import ProbeResult, probe
from kinoit.media.signature import FRAME_BYTES, Signature, grid_filter

SplitMode = Literal["auto", "raw", "lossless", "copy", "aligned"]
SPLIT_MODES: tuple[SplitMode, ...] = ("auto", "raw", "lossless", "copy", "aligned")
# Chosen by the split benchmark (docs/benchmarks.md, "## Media"): copy is the
# fastest and smallest; auto falls back to lossless where copy would be wasteful.
DEFAULT_SPLIT_MODE: SplitMode = "auto"
# auto uses copy only when no GOP is longer than this many segments: each copy
# segment is decoded from its keyframe, so long GOPs multiply decoding work.
COPY_MAX_GOP_SEGMENTS = 2
SEGMENTS_JSON = "segments.json"
AUDIO_NAME = "audio.m4a"
# AAC-LC stereo at 128 kbit/s: transparent enough for previews, what HLS players expect.
AUDIO_BITRATE = "128k"
# The 5.1 track: AAC-LC's usual 5.1 rate is about twice its stereo one.
SURROUND_BITRATE = "256k"
# A source language tag kinoit passes on (ISO 639 or BCP 47 shaped); others are dropped.
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}")
# FFV1 slices let ffmpeg encode and decode one frame on several cores.
FFV1_SLICES = 4
# Lossless segments are UT Video (intra-only, bit-exact) when it carries the source's
# pixel format: per second of grainy 1080p it costs 0.76 CPU s to write and 0.41 to
# read against FFV1's 2.07 and 1.75, for 1.33x the bytes (docs/benchmarks.md,
# "Split intermediates"). FFV1 keeps every other format (10-bit, full range, ...).
UTVIDEO_PIX_FMTS = frozenset({"yuv420p", "yuv422p", "yuv444p", "gbrp", "gbrap"})
SEGMENT_EXT = {"raw": "nut", "lossless": "mkv", "copy": "mkv", "aligned": "mkv"}


@dataclass(frozen=True)
class Segment:
    """One segment file: source frames [start_frame, start_frame + frames)."""

    index: int
    start_frame: int
    frames: int
    path: Path
    # copy mode only: which decoded frames of the file are this segment's, [first, last).
    frame_range: tuple[int, int] | None = None
    # the verifier's signature of the segment (decoded modes, when asked for)
    signature: Path | None = None

    def to_json(self, root: Path) -> dict[str, Any]:
        """The segments.json entry; ``path`` relative to the split directory."""
        body: dict[str, Any] = {
            "index": self.index,
            "start_frame": self.start_frame,
            "frames": self.frames,
            "path": _relative(self.path, root),
        }
        if self.frame_range is not None:
            body["frame_range"] = list(self.frame_range)
        if self.signature is not None:
            body["signature"] = _relative(self.signature, root)
        return body


@dataclass(frozen=True)
class SplitResult:
    """What split produced; ``manifest`` is OUTDIR/segments.json."""

    fps: Fraction
    frames: int
    segments: tuple[Segment, ...]
    audio: Path | None
    mode: SplitMode
    manifest: Path
    width: int
    height: int

    def to_json(self) -> dict[str, Any]:
        """The segments.json document."""
        root = self.manifest.parent
        return {
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "frames": self.frames,
            "segments": [s.to_json(root) for s in self.segments],
            "audio": _relative(self.audio, root) if self.audio else None,
            "mode": self.mode,
            "width": self.width,
            "height": self.height,
        }


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _rate(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def lossless_codec_args(pix_fmt: str) -> list[str]:
    """Encoder options of a lossless segment: UT Video where it keeps ``pix_fmt``, else FFV1."""
    if pix_fmt in UTVIDEO_PIX_FMTS:
        return ["-c:v", "utvideo"]
    return ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", str(FFV1_SLICES)]


def _segment_outputs(
    outdir: Path, mode: str, plan: Sequence[SegmentPlan], segment_list: Path,
    signature: Path | None,
) -> list[str]:  # fmt: skip
    """The outputs both split commands end with: the segment muxer cutting at the
    planned frames (with its CSV list), then the signature's raw frames if asked for."""
    cuts = ",".join(str(p.start_frame) for p in plan[1:]) or "1000000000"
    argv = [
        "-f", "segment", "-segment_format", "nut" if mode == "raw" else "matroska",
        "-segment_frames", cuts, "-reset_timestamps", "1",
        "-segment_list", str(segment_list), "-segment_list_type", "csv",
        str(outdir / f"%05d.{SEGMENT_EXT[mode]}"),
    ]  # fmt: skip
    if signature is not None:
        argv += ["-map", "[sig]", "-fps_mode", "passthrough", "-f", "rawvideo", str(signature)]
    return argv


def build_decode_split_argv(
    src: str | Path, outdir: Path, *, mode: SplitMode, plan: Sequence[SegmentPlan],
    fps: Fraction, vfr: bool, segment_list: Path, pix_fmt: str = "",
    signature: Path | None = None,
) -> list[str]:  # fmt: skip
    """One ffmpeg: decode every frame, cut at the planned frame numbers (raw or lossless).

    With ``signature``, the same decode also writes every frame on the verifier's grid
    (:mod:`kinoit.media.signature`) to that file, so no checksum decodes a segment again."""
    argv = [ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-i", str(src)]
    # slots from the file's start (ffmpeg's time 0), as the audio is cut: where the
    # sound starts first (AAC priming), the first frame is shown from slot 0 on
    resample = f"fps={_rate(fps)}:start_time=0" if vfr else ""
    if signature is not None:
        head = f"[0:v:0]{resample + ',' if resample else ''}split=2[v][g]"
        argv += ["-filter_complex", f"{head};[g]{grid_filter()}[sig]", "-map", "[v]"]
    else:
        argv += ["-map", "0:v:0", *(["-vf", resample] if resample else [])]
    argv += ["-fps_mode", "passthrough", "-an", "-sn", "-dn", "-map_metadata", "-1"]
    # Same input, same bytes (no random Matroska UID or date): segment CIDs must be stable.
    argv += ["-fflags", "+bitexact", "-flags:v", "+bitexact"]
    if mode == "raw":
        argv += ["-c:v", "rawvideo"]
    else:
        argv += lossless_codec_args(pix_fmt)
    return argv + _segment_outputs(outdir, mode, plan, segment_list, signature)


def build_aligned_copy_argv(
    src: str | Path, outdir: Path, *, plan: Sequence[SegmentPlan], segment_list: Path,
    signature: Path | None = None,
) -> list[str]:  # fmt: skip
    """One ffmpeg: stream-copy the video, cut at the planned frames (each one a keyframe,
    see :func:`cuts_on_keyframes`); with ``signature``, also decode every frame once onto
    the verifier's grid into that file. Nothing is encoded."""
    argv = [ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-i", str(src)]
    if signature is not None:
        argv += ["-filter_complex", f"[0:v:0]{grid_filter()}[sig]"]
    argv += ["-map", "0:v:0", "-c:v", "copy", "-an", "-sn", "-dn", "-map_metadata", "-1"]
    argv += ["-fflags", "+bitexact"]  # same input, same bytes: stable segment CIDs
    return argv + _segment_outputs(outdir, "aligned", plan, segment_list, signature)


def audio_filtergraph(channels: int) -> tuple[str, list[str]]:
    """The filtergraph that pads or cuts the first audio stream and makes the renditions,
    and its output labels in track order: stereo first (mono is copied to both sides,
    more channels are downmixed), then, for a source of more than two channels, its
    surround (5.1 from 6 channels or more) (pure)."""
    head = "[0:a:0]aresample=async=1:first_pts=0,apad"
    if channels == 1:
        return f"{head},pan=stereo|c0=c0|c1=c0[stereo]", ["[stereo]"]
    if channels <= 2:
        return f"{head},aformat=channel_layouts=stereo[stereo]", ["[stereo]"]
    surround = ",aformat=channel_layouts=5.1" if channels >= 6 else ""
    graph = (
        f"{head},asplit=2[mix][full];[mix]aformat=channel_layouts=stereo[stereo];"
        f"[full]anull{surround}[surround]"
    )
    return graph, ["[stereo]", "[surround]"]


def build_audio_argv(
    src: str | Path,
    out: Path,
    duration: Fraction,
    *,
    channels: int = 2,
    language: str | None = None,
) -> list[str]:
    """Encode the first audio stream once to AAC, padded or cut to exactly ``duration``:
    a stereo track, plus the source's surround as a second track when it has more than
    two channels (one decode, both encodes in one run). ``language`` (the source
    stream's tag) is kept on every track."""
    seconds = f"{float(duration):.6f}"
    graph, labels = audio_filtergraph(channels)
    argv = [
        ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-i", str(src), "-filter_complex", graph,
    ]  # fmt: skip
    for label in labels:
        argv += ["-map", label]
    argv += ["-t", seconds, "-c:a", "aac", "-b:a:0", AUDIO_BITRATE]
    if len(labels) > 1:
        argv += ["-b:a:1", SURROUND_BITRATE]
    argv += ["-map_metadata", "-1"]
    if language and LANGUAGE_TAG.fullmatch(language):
        argv += ["-metadata:s:a", f"language={language}"]
    return [*argv, "-movflags", "+faststart", str(out)]


def _segment_frames_from_list(text: str, fps: Fraction) -> list[int]:
    frames = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 3:
            frames.append(round((Fraction(row[2]) - Fraction(row[1])) * fps))
    return frames


def _split_decoded(
    src: Path, outdir: Path, info: ProbeResult, mode: SplitMode, seconds: float,
    settings: Settings, signatures: bool,
) -> tuple[list[Segment], int]:  # fmt: skip
    plan = plan_segments(info.frames, info.fps, seconds)
    # Under outdir, not the system temp dir: a stage's scratch sweep then covers a killed run.
    with tempfile.TemporaryDirectory(prefix="kinoit-split-", dir=outdir) as tmp:
        seg_list = Path(tmp) / "segments.csv"
        grid = Path(tmp) / "grid.yuv" if signatures else None
        argv = build_decode_split_argv(
            src, outdir, mode=mode, plan=plan, fps=info.fps, vfr=info.vfr, segment_list=seg_list,
            pix_fmt=info.pix_fmt, signature=grid,
        )  # fmt: skip
        ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="split")
        counts = _segment_frames_from_list(seg_list.read_text("utf-8"), info.fps)
        k = frames_per_segment(info.fps, seconds)
        total = sum(counts)
        if not info.vfr and total != info.frames:
            raise MediaError(
                f"split: decoded {total} frames but the source has {info.frames} "
                "(a damaged or truncated stream)", argv,
            )  # fmt: skip
        if any(c != k for c in counts[:-1]):
            raise MediaError(f"split: segments are not {k} frames each: {counts}", argv)
        segments = _segments(outdir, SEGMENT_EXT[mode], counts, grid, info.fps)
    return segments, total


def _segments(
    outdir: Path, ext: str, counts: Sequence[int], grid: Path | None, fps: Fraction
) -> list[Segment]:
    """The segment list for files ``NNNNN.ext`` of ``counts`` frames, each with its
    signature cut from ``grid`` (every frame's grid planes, in order) when given."""
    segments, start = [], 0
    with grid.open("rb") if grid is not None else contextlib.nullcontext() as planes:
        for i, count in enumerate(counts):
            path = outdir / f"{i:05d}.{ext}"
            sig_path = None
            if planes is not None:
                sig_path = outdir / f"{i:05d}.sig"
                _write_signature(planes.read(count * FRAME_BYTES), count, fps, sig_path)
            segments.append(Segment(i, start, count, path, signature=sig_path))
            start += count
    return segments


def _split_aligned(
    src: Path, outdir: Path, info: ProbeResult, plan: Sequence[SegmentPlan],
    settings: Settings, signatures: bool,
) -> list[Segment] | None:  # fmt: skip
    """Stream-copy segments cut at keyframes (see :func:`cuts_on_keyframes`); None (and
    nothing left behind) when the cut did not give exactly the planned frame counts or
    the copy failed (a stream the Matroska muxer refuses, say): the caller splits
    lossless then."""
    with tempfile.TemporaryDirectory(prefix="kinoit-split-", dir=outdir) as tmp:
        seg_list = Path(tmp) / "segments.csv"
        grid = Path(tmp) / "grid.yuv" if signatures else None
        argv = build_aligned_copy_argv(
            src, outdir, plan=plan, segment_list=seg_list, signature=grid
        )
        try:
            ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="split")
        except MediaError:
            for partial in outdir.glob("[0-9][0-9][0-9][0-9][0-9].*"):
                partial.unlink()
            return None
        # The list's times are the source's (a B-frame delay shifts all but the first
        # start): the first segment is what the others leave of the frames.
        listed = _segment_frames_from_list(seg_list.read_text("utf-8"), info.fps)
        counts = [info.frames - sum(listed[1:]), *listed[1:]]
        planned = [p.frames for p in plan]
        decoded = grid.stat().st_size // FRAME_BYTES if grid is not None else info.frames
        if counts != planned or decoded != info.frames:
            for partial in outdir.glob("[0-9][0-9][0-9][0-9][0-9].*"):
                partial.unlink()
            return None
        return _segments(outdir, SEGMENT_EXT["aligned"], counts, grid, info.fps)


def _write_signature(planes: bytes, count: int, fps: Fraction, dest: Path) -> None:
    """One segment's signature: its frames at the cadence the segment file has (0, 1/fps...)."""
    if len(planes) != count * FRAME_BYTES:
        raise MediaError(f"split: the signature stream ended before segment {dest.stem}")
    pts = tuple(Fraction(i) / fps for i in range(count))
    dest.write_bytes(Signature(planes, pts, None).to_bytes())


def choose_mode(info: ProbeResult, scan: KeyframeScan | None, seconds: float) -> SplitMode:
    """auto: copy for constant-rate sources with short GOPs, else lossless (pure)."""
    if info.vfr or scan is None or not scan.keys or scan.keys[0] != 0:
        return "lossless"
    k = frames_per_segment(info.fps, seconds)
    return "copy" if scan.longest_gop <= COPY_MAX_GOP_SEGMENTS * k else "lossless"


def _split_copy(
    src: Path, outdir: Path, info: ProbeResult, seconds: float, settings: Settings,
    scan: KeyframeScan | None = None,
) -> tuple[list[Segment], int]:  # fmt: skip
    if info.vfr:
        raise InvalidParameter("mode", "copy mode needs a constant frame rate source; use lossless")
    scan = scan or scan_keyframes(src, settings)
    pts_sorted, keys, time_base = scan.pts, scan.keys, scan.time_base
    total = len(pts_sorted)
    plan = plan_segments(total, info.fps, seconds)
    cuts = plan_copy_cuts(plan, keys, total)
    start_pts = pts_sorted[0] if pts_sorted else 0
    half_frame = float(1 / info.fps) / 2
    segments = []
    # Segments inside the same GOP run get the same bytes: cut once, link the rest.
    first_of: dict[tuple[int, int], Path] = {}
    jobs: list[tuple[list[str], Path]] = []
    links: list[tuple[Path, Path]] = []
    for seg, cut in zip(plan, cuts, strict=True):
        path = outdir / f"{seg.index:05d}.mkv"
        key = (cut.first_key, cut.packets)
        if key in first_of:
            links.append((first_of[key], path))
        else:
            first_of[key] = path
            seek = float((pts_sorted[cut.first_key] - start_pts) * time_base) + half_frame
            jobs.append(
                (build_copy_argv(src, path, seek if cut.first_key else 0.0, cut.packets), path)
            )
        segments.append(Segment(seg.index, seg.start_frame, seg.frames, path, cut.frame_range))
    with ThreadPoolExecutor(max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        for done in pool.map(
            lambda job: ffmpeg.run(job[0], settings.ffmpeg_timeout_seconds, what="split"), jobs
        ):
            del done
    for original, copy in links:
        link_or_copy(original, copy)
    return segments, total


def split_video(
    src: str | Path,
    outdir: str | Path,
    *,
    seconds: float = 1,
    mode: SplitMode = DEFAULT_SPLIT_MODE,
    settings: Settings | None = None,
    info: ProbeResult | None = None,
    signatures: bool = False,
) -> SplitResult:
    """Cut ``src`` into frame-exact segments in ``outdir`` and write ``segments.json``.

    ``signatures`` also writes each segment's verifier signature (``NNNNN.sig``) from
    the same decode (decoded modes and ``aligned``; copy mode decodes nothing, so
    writes none). ``aligned`` reports ``copy`` or ``lossless``, whichever it took."""
    settings = settings or default_settings()
    if mode not in SPLIT_MODES:
        raise InvalidParameter("mode", f"expected one of {list(SPLIT_MODES)}, got {mode!r}")
    src = Path(src)
    info = info or probe(src, settings=settings)
    frames_per_segment(info.fps, seconds)  # validates seconds before any work
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("[0-9][0-9][0-9][0-9][0-9].*"):
        stale.unlink()
    scan = None
    if mode == "auto":
        scan = None if info.vfr else scan_keyframes(src, settings)
        mode = choose_mode(info, scan, seconds)
    try:
        aligned = None
        if mode == "aligned":
            mode = "lossless"
            if not info.vfr:
                plan = plan_segments(info.frames, info.fps, seconds)
                if cuts_on_keyframes(scan_keyframes(src, settings), plan, info.frames):
                    aligned = _split_aligned(src, out, info, plan, settings, signatures)
        if aligned is not None:
            mode, segments, total = "copy", aligned, info.frames
        elif mode == "copy":
            segments, total = _split_copy(src, out, info, seconds, settings, scan)
        else:
            segments, total = _split_decoded(src, out, info, mode, seconds, settings, signatures)
        from kinoit.media.ranges import write_audio  # it builds on this module

        audio = write_audio(src, out / AUDIO_NAME, info, total, settings)
    except BaseException:
        for partial in out.glob("[0-9][0-9][0-9][0-9][0-9].*"):
            partial.unlink()  # segments and their signatures
        (out / AUDIO_NAME).unlink(missing_ok=True)
        raise
    result = SplitResult(
        fps=info.fps, frames=total, segments=tuple(segments), audio=audio, mode=mode,
        manifest=out / SEGMENTS_JSON, width=info.display_width, height=info.display_height,
    )  # fmt: skip
    tmp = result.manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n", "utf-8")
    tmp.replace(result.manifest)
    return result


def load_split(manifest: str | Path) -> SplitResult:
    """Read a segments.json written by :func:`split_video` (paths resolved next to it)."""
    path = Path(manifest)
    if path.is_dir():
        path = path / SEGMENTS_JSON
    try:
        doc = json.loads(path.read_text("utf-8"))
        root = path.parent
        segments = tuple(
            Segment(
                int(s["index"]), int(s["start_frame"]), int(s["frames"]), root / s["path"],
                tuple(s["frame_range"]) if s.get("frame_range") else None,
                root / s["signature"] if s.get("signature") else None,
            )
            for s in doc["segments"]
        )  # fmt: skip
        return SplitResult(
            fps=Fraction(doc["fps"]), frames=int(doc["frames"]), segments=segments,
            audio=root / doc["audio"] if doc.get("audio") else None,
            mode=doc.get("mode", DEFAULT_SPLIT_MODE), manifest=path,
            width=int(doc.get("width", 0)), height=int(doc.get("height", 0)),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidParameter(
            "segments.json", f"{path}: unreadable split manifest: {exc}"
        ) from None
