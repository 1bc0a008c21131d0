"""transcode-segment: every rung of a ladder from one decode of one segment.

Each rendition segment starts with an IDR frame, holds one closed GOP of a
fixed length (the segment's frame count, no scene-cut keyframes), and carries
absolute timestamps ``(start_frame + n) / fps``. So the rendition segments of a
rung are pieces of one continuous stream: merge concatenates them by stream
copy and HLS references them as they are.

Containers: MPEG-TS for H.264/HEVC (what HLS plays directly, and byte-wise
concatenable), Matroska for VP9/AV1 (MPEG-TS cannot carry them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import Settings, default_settings
from kinoit.errors import InvalidParameter, MediaError, NotAVideo
from kinoit.media import ffmpeg
from kinoit.media.files import file_record_json
from kinoit.media.ladder import Ladder, encoder_args, load_ladder
from kinoit.media.probe import probe
from kinoit.media.split import SplitResult

# More encoder threads than this per rung only adds synchronisation.
MAX_THREADS = 64
# What the transcode stage asks for: one thread per encoder, and for the decoder and
# the filter graph. A segment already runs one encoder per rung at once, and the
# fan-out runs segments side by side, so more threads only oversubscribe the cores:
# on a 1-second UT Video segment of 1080p (default ladder) 1 thread per encoder took
# 2.65-2.77 CPU s against 3.11-3.35 for ffmpeg's choice; one decoder and graph thread
# spare each scaler its per-thread contexts (-2.6% instructions on a 1-frame segment,
# docs/benchmarks.md, "Transcode threads and encoder start-up").
STAGE_ENCODER_THREADS = 1


@dataclass(frozen=True)
class RenditionFile:
    """One rendition of one segment."""

    rung: str
    path: Path
    codec: str
    width: int
    height: int
    frames: int
    start_frame: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        """JSON form (path as a string)."""
        return file_record_json(self)


@dataclass(frozen=True)
class RenditionTarget:
    """A planned output: rung, size and file (pure planning result)."""

    rung_index: int
    width: int
    height: int
    path: Path


def _rate(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def build_filtergraph(
    targets: list[RenditionTarget], ladder: Ladder, fps: Fraction, start_frame: int,
    frame_range: tuple[int, int] | None, *, source: str = "[0:v:0]",
) -> str:  # fmt: skip
    """trim (copy mode) → absolute timestamps → split → scale + format per rung;
    ``source`` is the stream it starts from (a label of a larger graph)."""
    head = source
    if frame_range is not None:
        head += f"trim=start_frame={frame_range[0]}:end_frame={frame_range[1]},"
    tb = 1 / fps
    head += f"settb=expr={tb.numerator}/{tb.denominator},setpts=N+{start_frame}"
    head += f",split={len(targets)}" + "".join(f"[s{i}]" for i in range(len(targets)))
    chains = [
        f"[s{i}]scale={t.width}:{t.height}:flags=bicubic,setsar=1,"
        f"format={ladder.rungs[t.rung_index].pix_fmt}[o{i}]"
        for i, t in enumerate(targets)
    ]
    return ";".join([head, *chains])


def build_transcode_argv(
    segment: str | Path, ladder: Ladder, targets: list[RenditionTarget], *, fps: Fraction,
    start_frame: int, gop: int, frame_range: tuple[int, int] | None = None,
    threads: int | None = None,
) -> list[str]:  # fmt: skip
    """One ffmpeg, one decode, one output per rung (exact argv; tested).

    ``threads`` caps the decoder's, the filter graph's and each encoder's threads."""
    # verbose: ffmpeg then reports frames muxed per output, so no extra process counts them.
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "verbose", "-y"]
    if threads is not None:
        # The same bytes (checked on the default ladder), fewer threads and scaler
        # contexts to set up: see STAGE_ENCODER_THREADS.
        argv += ["-threads", str(threads)]
    argv += ["-i", str(segment)]
    if threads is not None:
        argv += ["-filter_complex_threads", str(threads)]
    argv += ["-filter_complex", build_filtergraph(targets, ladder, fps, start_frame, frame_range)]
    for i, target in enumerate(targets):
        rung = ladder.rungs[target.rung_index]
        argv += ["-map", f"[o{i}]", *encoder_args(rung, gop)]
        if threads is not None:
            argv += ["-threads", str(threads)]
        argv += ["-r", _rate(fps), "-fps_mode", "passthrough", "-an", "-sn", "-dn"]
        argv += ["-map_metadata", "-1"]
        if rung.container == "ts":
            # Segment 0 has negative DTS (B-frames); shifting only it would break continuity.
            argv += ["-avoid_negative_ts", "disabled", "-f", "mpegts", str(target.path)]
        else:
            argv += ["-f", "matroska", str(target.path)]
    return argv


def plan_targets(
    ladder: Ladder, width: int, height: int, outdir: Path, stem: str
) -> list[RenditionTarget]:
    """Output sizes and paths: ``outdir/<rung>/<stem>.<ts|mkv>`` (pure)."""
    return [
        RenditionTarget(
            i, *rung.output_size(width, height), outdir / rung.name / f"{stem}.{rung.container}"
        )
        for i, rung in enumerate(ladder.rungs)
    ]


MUXED = re.compile(r"Output stream #(\d+):\d+ \(video\): \d+ frames encoded; (\d+) packets muxed")


def muxed_frames(stderr: str) -> dict[int, int]:
    """Video packets muxed per output file, from ffmpeg's verbose summary (pure)."""
    return {int(m.group(1)): int(m.group(2)) for m in MUXED.finditer(stderr)}


def count_frames_argv(path: str | Path) -> list[str]:
    """ffprobe: count the video packets of a file by demuxing it."""
    return [
        ffmpeg.FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_packets",
        "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", "-i", str(path),
    ]  # fmt: skip


def count_frames(path: str | Path, timeout: float) -> int:
    """Video packets (= frames for the codecs kinoit writes) in ``path``."""
    out = ffmpeg.run(count_frames_argv(path), timeout, what="count frames")
    text = out.stdout.decode().strip().strip(",")
    try:
        return int(text.splitlines()[0].strip(","))
    except (ValueError, IndexError):
        raise MediaError(f"{path}: could not count frames (got {text!r})") from None


def transcode_segment(
    segment_path: str | Path,
    ladder: Ladder | str | Path | Mapping[str, Any],
    outdir: str | Path,
    *,
    fps: Fraction | None = None,
    start_frame: int = 0,
    frame_range: tuple[int, int] | None = None,
    gop: int | None = None,
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    threads: int | None = None,
    settings: Settings | None = None,
) -> dict[str, RenditionFile]:
    """Render every rung (those that fit the segment's size) into ``outdir/<rung>/``.

    ``start_frame`` is the segment's first frame in the source (from segments.json):
    it makes timestamps continuous across segments. ``frame_range`` is copy
    mode's trim. ``gop`` defaults to the segment's frame count (one GOP per segment).
    Given ``fps``, ``size`` and ``frames`` (frames in the file) or ``frame_range``
    (all in segments.json), the segment is not probed: one ffmpeg process is all a
    segment costs. ``threads`` caps each encoder's threads (default: ffmpeg's choice);
    1 is the cheapest in CPU when segments already run in parallel on every core.
    """
    settings = settings or default_settings()
    ladder = load_ladder(ladder)
    if start_frame < 0:
        raise InvalidParameter("start_frame", f"must be >= 0, got {start_frame}")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise InvalidParameter("threads", f"must be in [1, {MAX_THREADS}], got {threads}")
    src = Path(segment_path)
    known = frames if frames is not None else (frame_range[1] if frame_range else None)
    hinted = False  # frames, size and fps given: the probe is skipped
    if known is not None and size is not None and fps is not None:
        hinted = True
        # Known from segments.json: no probe. A short file still fails the frame check below.
        available, (width, height) = known, size
    else:
        info = probe(src, settings=settings, detect_vfr=False)
        fps = fps or info.fps
        available, width, height = info.frames, info.display_width, info.display_height
    if frame_range is not None:
        first, end = frame_range
        if not 0 <= first < end <= available:
            raise InvalidParameter(
                "frame_range", f"[{first}, {end}) is not inside the segment's {available} frames"
            )
        expected = end - first
    else:
        expected = available
    gop = gop or expected
    fitted = ladder.for_source(width, height)
    out = Path(outdir)
    targets = plan_targets(fitted, width, height, out, src.stem)
    for t in targets:
        t.path.parent.mkdir(parents=True, exist_ok=True)
    argv = build_transcode_argv(
        src, fitted, targets, fps=fps, start_frame=start_frame, gop=gop, frame_range=frame_range,
        threads=threads,
    )  # fmt: skip
    try:
        done = ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="transcode")
        muxed = muxed_frames(done.stderr)
        results: dict[str, RenditionFile] = {}
        for i, t in enumerate(targets):
            rung = fitted.rungs[t.rung_index]
            count = muxed.get(i)
            if count is None:  # ffmpeg did not report it: count by demuxing
                count = count_frames(t.path, settings.ffmpeg_timeout_seconds)
            if count != expected:
                raise MediaError(
                    f"transcode: rung {rung.name} has {count} frames, expected {expected}", argv
                )
            results[rung.name] = RenditionFile(
                rung=rung.name, path=t.path, codec=rung.codec, width=t.width, height=t.height,
                frames=count, start_frame=start_frame, bytes=t.path.stat().st_size,
            )  # fmt: skip
    except BaseException as exc:
        for t in targets:
            t.path.unlink(missing_ok=True)
        if hinted and isinstance(exc, MediaError) and not isinstance(exc, NotAVideo):
            # The hints skipped the probe: a file that is no video at all is the
            # caller's input (NotAVideo, 400, not retried), not a failed encode.
            probe(src, settings=settings, detect_vfr=False)
        raise
    return results


def transcode_split_segment(
    split: SplitResult,
    index: int,
    ladder: Ladder | str | Path | Mapping[str, Any],
    outdir: str | Path,
    *,
    path: str | Path | None = None,
    threads: int | None = None,
    settings: Settings | None = None,
) -> dict[str, RenditionFile]:
    """transcode_segment with everything segments.json knows about segment ``index``.

    ``path`` overrides where the segment file is (e.g. fetched from IPFS to a
    temporary file); fps, start_frame, copy mode's frame_range, frame count and
    size come from ``split`` (see :func:`kinoit.media.load_split`).
    """
    try:
        seg = split.segments[index]
    except IndexError:
        raise InvalidParameter(
            "index", f"no segment {index} (there are {len(split.segments)})"
        ) from None
    return transcode_segment(
        path or seg.path, ladder, outdir, fps=split.fps, start_frame=seg.start_frame,
        frame_range=seg.frame_range, frames=None if seg.frame_range else seg.frames,
        size=(split.width, split.height) if split.width else None, threads=threads,
        settings=settings,
    )  # fmt: skip
