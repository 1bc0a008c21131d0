"""The direct transcode: one ffmpeg per range of whole segments, reading the source.

Where :func:`kinoit.media.ranges.can_split_in_ranges` holds (MP4/MOV or Matroska,
constant rate, one packet per frame), a range [a, b) of segments is transcoded from
the source itself, with no lossless intermediate: an input seek that lands the
demuxer on the keyframe at or before the range (``rng.seek``: half a frame after that
keyframe's timestamp; half a frame before the range's first frame, as
:func:`~kinoit.media.ranges.build_range_argv` seeks, would land on the keyframe
before it when the range starts on one, and decode a whole GOP for nothing), no
frame dropped by the seek, then a trim by source time to the planned first frame
(half a frame of tolerance) and by count to the range's frames; then ONE decode feeds

- every rung of the ladder (the transcode's scaler chain and encoder options), each
  rung one continuous encoder with a forced IDR and a closed GOP at every segment
  boundary and absolute timestamps ``(start_frame + n) / fps``, cut by the segment
  muxer at those keyframes into one file per segment (timestamps not reset): the
  same GOP and timing rules as :mod:`kinoit.media.transcode`'s rendition segments;
- the verifier's reference signature of every segment (the grid split writes,
  :func:`~kinoit.media.signature.signature_graph`), each frame with its source
  presentation time, so a mis-cut range shows in its first timestamp;
- the thumbnail of every segment (its middle frame, 320 px, Pillow writes it).

A variable-frame-rate source that :func:`kinoit.media.direct_vfr.qualifies` is read
the same way on its own timeline, resampled to its average rate as the whole-source
lossless split resamples it (``rng.vfr``; see :mod:`kinoit.media.direct_vfr`): its
"source timestamps" are then the output slots' times.

The argv builders are pure; :func:`transcode_range` runs one range and checks its
frame counts and first timestamps against the plan.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import Settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import direct_vfr, ffmpeg
from kinoit.media.keyframes import KeyframeScan
from kinoit.media.ladder import Ladder, encoder_args
from kinoit.media.plan import SegmentPlan, plan_segments
from kinoit.media.probe import ProbeResult
from kinoit.media.ranges import SplitRange, can_split_in_ranges, plan_ranges, range_segments
from kinoit.media.signature import (
    Signature,
    read_signature_files,
    signature_files,
    signature_graph,
    signature_outputs,
)
from kinoit.media.thumbnail import (
    DEFAULT_THUMBNAIL_WIDTH,
    middle_frame,
    save_image,
    thumbnail_filters,
)
from kinoit.media.transcode import (
    RenditionFile,
    RenditionTarget,
    build_filtergraph,
    muxed_frames,
    plan_targets,
)


@dataclass(frozen=True)
class DirectSegment:
    """What one range transcode made of one segment."""

    index: int
    start_frame: int
    frames: int
    renditions: dict[str, RenditionFile]
    signature: Path
    thumbnail: Path
    # the source presentation time (seconds) of the segment's first frame
    first_pts: Fraction


def _rate(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def fraction_text(value: Fraction) -> str:
    """A Fraction as JSON text (``"num/den"``)."""
    return f"{value.numerator}/{value.denominator}"


def parse_pts(raw: object, count: int) -> tuple[Fraction, ...]:
    """A range's planned first source timestamps, one per segment; InvalidParameter
    naming ``range.pts`` otherwise."""
    if not isinstance(raw, list) or len(raw) != count:
        raise InvalidParameter("range.pts", f"expected a list of {count} timestamps")
    try:
        return tuple(Fraction(str(p)) for p in raw)
    except (ValueError, ZeroDivisionError):
        raise InvalidParameter("range.pts", "expected timestamps in seconds") from None


def can_transcode_directly(info: ProbeResult, scan: KeyframeScan) -> bool:
    """Whether the source qualifies (pure): the range seek is frame-exact on it
    (:func:`~kinoit.media.ranges.can_split_in_ranges`), whatever its GOP layout, or it
    is a variable-rate source :func:`kinoit.media.direct_vfr.qualifies` accepts."""
    return can_split_in_ranges(info, scan) or direct_vfr.qualifies(info, scan)


def direct_ranges(
    info: ProbeResult, scan: KeyframeScan, seconds: Fraction, range_seconds: Fraction,
    total: int | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The ranges of a direct transcode (pure): :func:`~kinoit.media.ranges.plan_ranges`
    of about ``range_seconds`` whole segments, each with ``pts``, the planned source
    timestamp of every segment's first frame. A VFR source needs ``total``, its frames
    resampled (:func:`~kinoit.media.direct_vfr.resampled_frames`)."""
    per_range = max(1, round(range_seconds / seconds))
    if info.vfr:
        if total is None:
            raise ValueError("direct_ranges: a variable-rate source needs its resampled total")
        return direct_vfr.vfr_ranges(info, scan, total, seconds, per_range)
    plan = plan_segments(info.frames, info.fps, seconds)
    out = []
    half = Fraction(1, 2) / info.fps
    for rng in plan_ranges(plan, scan, info.fps, per_range):
        firsts = [scan.pts[p.start_frame] * scan.time_base for p in range_segments(
            rng, info.fps, seconds)]  # fmt: skip
        # the seek lands on the range's keyframe (see the module)
        seek = scan.pts[rng.key_frame] * scan.time_base + half if rng.start_frame else Fraction(0)
        body = replace(rng, seek=seek).to_json()
        out.append({**body, "pts": [fraction_text(p) for p in firsts]})
    return out


def segment_dir(outdir: Path, rung: str) -> Path:
    """Where a rung's segment files go."""
    return outdir / rung


def keyframe_expr(gop: int) -> str:
    """``-force_key_frames`` at every segment boundary (frames counted from the range's
    first, which is a boundary)."""
    return f"expr:eq(mod(n,{gop}),0)"


def _select_expr(frames: Sequence[int]) -> str:
    """select= expression keeping exactly these frame numbers (pure)."""
    return "+".join(f"eq(n\\,{n})" for n in frames)


def build_direct_graph(
    rng: SplitRange, plan: Sequence[SegmentPlan], ladder: Ladder,
    targets: list[RenditionTarget], *, fps: Fraction, thumb_width: int, first_pts: Fraction,
) -> str:  # fmt: skip
    """trim the range's frames (from the one at source time ``first_pts``) → split three
    ways: the rungs (the transcode's chain, absolute timestamps), the signature grid,
    the thumbnails' middle frames."""
    if rng.vfr:  # resampled on the source's timeline, cut by slot
        head = f"{direct_vfr.graph_head(rng, fps)},split=3[dv][dg][dt]"
    else:
        # after the seek a timestamp is the source's minus rng.seek
        start = first_pts - rng.seek - Fraction(1, 2) / fps
        head = f"[0:v:0]trim=start={float(start):.6f},trim=end_frame={rng.frames}"
        head += ",split=3[dv][dg][dt]"
    middles = [p.start_frame - rng.start_frame + middle_frame(p.frames) for p in plan]
    thumbs = ",".join(f"{name}={args}" for name, args in thumbnail_filters(thumb_width))
    parts = [
        head,
        signature_graph("dg", "g"),
        f"[dt]select={_select_expr(middles)},{thumbs}[th]",
        build_filtergraph(targets, ladder, fps, rng.start_frame, None, source="[dv]"),
    ]
    return ";".join(parts)


def build_direct_argv(
    src: str | Path, rng: SplitRange, plan: Sequence[SegmentPlan], ladder: Ladder,
    targets: list[RenditionTarget], work: Path, *, fps: Fraction, gop: int,
    first_pts: Fraction, thumb_width: int = DEFAULT_THUMBNAIL_WIDTH, threads: int | None = 1,
) -> list[str]:  # fmt: skip
    """One ffmpeg for the range (exact argv; tested): per rung a segment muxer writing
    ``<target dir>/<index>.<ts|mkv>`` with its CSV list ``work/<rung>.csv``, the
    signature files (``signature_files(work, 0)``) and ``work/thumbs/<index>.ppm``.

    Always an input seek (``-ss 0`` for a range at the start) and no frame dropped by
    it, so that every output timestamp is the source's minus ``rng.seek`` and the
    trim to ``first_pts`` (the range's first frame's source time) does the cut; a VFR
    range keeps the source's timestamps (:func:`~kinoit.media.direct_vfr.seek_args`)
    and cuts by output slot."""
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "verbose", "-y"]
    if threads is not None:
        argv += ["-threads", str(threads)]
    if rng.vfr:
        argv += direct_vfr.seek_args(rng.seek)
    else:
        argv += ["-noaccurate_seek", "-seek_timestamp", "1", "-ss", f"{float(rng.seek):.6f}"]
    argv += ["-i", str(src)]
    if threads is not None:
        argv += ["-filter_complex_threads", str(threads)]
    graph = build_direct_graph(
        rng, plan, ladder, targets, fps=fps, thumb_width=thumb_width, first_pts=first_pts
    )
    argv += ["-filter_complex", graph]
    cuts = ",".join(str(p.start_frame - rng.start_frame) for p in plan[1:]) or "1000000000"
    for i, target in enumerate(targets):
        rung = ladder.rungs[target.rung_index]
        argv += ["-map", f"[o{i}]", *encoder_args(rung, gop)]
        argv += ["-force_key_frames", keyframe_expr(gop)]
        if threads is not None:
            argv += ["-threads", str(threads)]
        argv += ["-r", _rate(fps), "-fps_mode", "passthrough", "-an", "-sn", "-dn"]
        argv += ["-map_metadata", "-1"]
        if rung.container == "ts":
            # As the per-segment transcode: the first segment's DTS may be negative (the
            # B-frame delay). The segment muxer does not pass its own option on to the
            # muxer of each file, which would otherwise shift the first file's packets
            # later by that delay (2 frames with x264's B-frames) and make the merged
            # timeline overlap at its first cut: said here, to each file's muxer too.
            argv += ["-avoid_negative_ts", "disabled"]
            argv += ["-segment_format_options", "avoid_negative_ts=disabled"]
        argv += [
            "-f", "segment", "-segment_format", "mpegts" if rung.container == "ts" else "matroska",
            "-segment_frames", cuts, "-segment_start_number", str(rng.first),
            "-reset_timestamps", "0", "-segment_list", str(work / f"{rung.name}.csv"),
            "-segment_list_type", "csv",
            str(target.path.parent / f"%05d.{rung.container}"),
        ]  # fmt: skip
    planes, timing, first = signature_files(work, 0)
    argv += signature_outputs("g", planes, timing, first, exact_times=True)
    argv += [
        "-map", "[th]", "-fps_mode", "passthrough", "-c:v", "ppm", "-f", "image2",
        "-start_number", str(rng.first), str(work / "thumbs" / "%05d.ppm"),
    ]  # fmt: skip
    return argv


def listed_frames(text: str, fps: Fraction, total: int) -> list[int]:
    """Frames per segment from a segment muxer's CSV list (pure): every segment's from
    its times, the first's what the others leave of ``total`` (its listed start is 0)."""
    rows = [row for row in csv.reader(io.StringIO(text)) if len(row) >= 3]
    later = [round((Fraction(r[2]) - Fraction(r[1])) * fps) for r in rows[1:]]
    return [total - sum(later), *later] if rows else []


def check_first_pts(
    plan: Sequence[SegmentPlan], got: Sequence[Fraction], expected: Sequence[Fraction],
    fps: Fraction,
) -> None:  # fmt: skip
    """MediaError unless every segment's first source timestamp is within half a frame
    of the planned one (container timestamps are rounded; one frame off is caught)."""
    half = Fraction(1, 2) / fps
    for p, g, e in zip(plan, got, expected, strict=True):
        if abs(g - e) >= half:
            raise MediaError(
                f"direct transcode: segment {p.index} starts at source time {float(g):.6f}s, "
                f"planned {float(e):.6f}s (the range was cut at the wrong frame)"
            )


def transcode_range(
    src: str | Path, rng: SplitRange, ladder: Ladder, outdir: str | Path, *,
    fps: Fraction, seconds: Fraction, size: tuple[int, int], settings: Settings,
    first_pts: Sequence[Fraction], threads: int | None = 1,
    thumb_width: int = DEFAULT_THUMBNAIL_WIDTH,
) -> list[DirectSegment]:  # fmt: skip
    """Transcode the segments of ``rng`` (whole segments of ``seconds``) into ``outdir``:
    ``<rung>/<index>.<ts|mkv>``, ``<index>.sig``, ``<index>.jpg``. ``ladder`` is fitted
    to ``size`` here; ``first_pts``: each segment's planned first source timestamp
    (the range is cut at the first, every one is checked). MediaError when a rung or
    the signature has other frame counts than the plan, or a segment starts at another
    source frame."""
    from PIL import Image

    plan = range_segments(rng, fps, seconds)
    fitted = ladder.for_source(*size)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    targets = plan_targets(fitted, size[0], size[1], out, "range")
    for t in targets:
        t.path.parent.mkdir(parents=True, exist_ok=True)
    gop = plan[0].frames
    planned = [p.frames for p in plan]
    try:
        with tempfile.TemporaryDirectory(prefix="kinoit-direct-", dir=out) as tmp:
            work = Path(tmp)
            (work / "thumbs").mkdir()
            argv = build_direct_argv(
                src, rng, plan, fitted, targets, work, fps=fps, gop=gop,
                first_pts=first_pts[0], thumb_width=thumb_width, threads=threads,
            )  # fmt: skip
            done = ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="direct transcode")
            muxed = muxed_frames(done.stderr)
            files: dict[int, dict[str, RenditionFile]] = {p.index: {} for p in plan}
            for i, t in enumerate(targets):
                rung = fitted.rungs[t.rung_index]
                text = (work / f"{rung.name}.csv").read_text("utf-8")
                counts = listed_frames(text, fps, muxed.get(i, -1))
                if muxed.get(i) != rng.frames or counts != planned:
                    raise MediaError(
                        f"direct transcode: rung {rung.name} gave segments of {counts} frames "
                        f"({muxed.get(i)} muxed), expected {planned}", argv,
                    )  # fmt: skip
                for p in plan:
                    path = t.path.parent / f"{p.index:05d}.{rung.container}"
                    files[p.index][rung.name] = RenditionFile(
                        rung=rung.name, path=path, codec=rung.codec, width=t.width,
                        height=t.height, frames=p.frames, start_frame=p.start_frame,
                        bytes=path.stat().st_size,
                    )  # fmt: skip
            whole = read_signature_files(work, 0)
            if whole.frames != rng.frames or whole.pts is None:
                raise MediaError(
                    f"direct transcode: {whole.frames} frames decoded, expected {rng.frames}", argv
                )
            # the output's timestamps are the source's minus the seek (a VFR range's:
            # its slots' times, the seek kept out by -copyts)
            if rng.vfr:
                source_pts = direct_vfr.slot_times(whole.pts, fps)
            else:
                source_pts = [p + rng.seek for p in whole.pts]
            firsts = [source_pts[p.start_frame - rng.start_frame] for p in plan]
            check_first_pts(plan, firsts, first_pts, fps)
            segments = []
            for p, first in zip(plan, firsts, strict=True):
                offset = p.start_frame - rng.start_frame
                part = whole.slice(offset, offset + p.frames)
                sig = out / f"{p.index:05d}.sig"
                pts = tuple(source_pts[offset : offset + p.frames])
                sig.write_bytes(Signature(part.planes, pts, None).to_bytes())
                thumb = out / f"{p.index:05d}.jpg"
                ppm = work / "thumbs" / f"{p.index:05d}.ppm"
                if not ppm.exists():
                    raise MediaError(f"direct transcode: no thumbnail of segment {p.index}", argv)
                with Image.open(ppm) as image:
                    save_image(image.convert("RGB"), thumb)
                segments.append(
                    DirectSegment(p.index, p.start_frame, p.frames, files[p.index], sig, thumb,
                                  first)
                )  # fmt: skip
            return segments
    except BaseException:
        for t in targets:
            shutil.rmtree(t.path.parent, ignore_errors=True)
        for p in plan:
            for ext in ("sig", "jpg"):
                (out / f"{p.index:05d}.{ext}").unlink(missing_ok=True)
        raise
