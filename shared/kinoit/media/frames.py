"""In-process decoding: the frames of a video through FFmpeg's own filters, no ffmpeg process.

An ffmpeg process costs about 0.09 CPU s before it reads a byte (Debian's build
loads every codec library), as much as decoding and scaling a 1-second 720p
rendition. Where a stage wants a few small pictures of a file it already has,
PyAV (FFmpeg's libraries bound to Python) decodes it inside the worker, which
is long-lived, so ``import av`` (~0.1-0.2 CPU s) is paid once per process: it
is imported on first use, not at module import.

The filters run in an FFmpeg filter graph (``scale``, ``format``...), not
through PyAV's ``reformat``: the same filter with the same options gives the
same bytes as the ffmpeg command line, where ``reformat`` places chroma
differently (measured in docs/benchmarks.md, "Verification cost"). One thread
per decoder and per graph: a worker is one of many running at once.

Every failure is a :class:`~kinoit.errors.MediaError` naming the file. Like the
ffmpeg command line, a damaged packet is skipped (the decoder conceals what it
can) and the decode fails only when more than two thirds of the packets did.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kinoit.errors import MediaError

if TYPE_CHECKING:
    import numpy as np

# The ffmpeg command line's -max_error_rate: more damaged packets than this share
# of all of them and the decode is a failure, not a concealed picture.
MAX_ERROR_RATE: Final = 2 / 3

# A filter chain: (filter name, its options as the command line writes them).
Filters = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Frame:
    """One decoded frame, after the filters."""

    index: int  # in presentation order, from 0
    pts: Fraction | None  # seconds (pts x time base); None where the file has none
    decoded: tuple[int, int]  # width, height the decoder gave (before the filters)
    image: np.ndarray[Any, np.dtype[np.uint8]]  # PyAV's to_ndarray() of the filtered frame


def chain_text(filters: Filters) -> str:
    """The chain as an ffmpeg -vf argument (pure): the same filters on the command line."""
    return ",".join(f"{name}={opts}" if opts else name for name, opts in filters)


# What the probe's decoders are told when the frames are decoded next anyway: decode
# nothing. FFmpeg's stream probe (avformat_find_stream_info, which PyAV always runs)
# otherwise decodes a file's first frames to learn its pixel format and decoding delay,
# which the real decoder then decodes again: opening a 1-second 720p rendition costs
# 7.5-8 ms of CPU with it and 0.5 without, 1.8 and 0.3 at 360p (docs/benchmarks.md).
# The decoder that follows reads the pixel format from the stream itself, so the frames
# are the same bytes.
NO_PROBE_DECODE: Final = {"skip_frame": "all"}


def open_media(path: str | Path, what: str, *, probe_decode: bool = True) -> Any:
    """``path`` opened by FFmpeg's demuxer in this process (a PyAV container, to be used
    in a ``with``); MediaError naming ``what`` and the file if it cannot be opened.

    ``probe_decode=False`` when every frame is decoded next: the stream probe decodes
    none, so the codec context's pixel format is unknown until the first frame."""
    import av

    options = None if probe_decode else dict(NO_PROBE_DECODE)
    try:
        # An absolute path: FFmpeg reads "concat:x", "pipe:" or "http:x" as protocols.
        return av.open(os.path.abspath(path), mode="r", options=options)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"{what}: {path}: cannot open: {exc}") from None


def _graph(stream: Any, frame: Any, filters: Filters) -> Any:
    import av.filter

    graph = av.filter.Graph()
    graph.threads = 1
    # The frame's range and matrix go in (PyAV's add_buffer leaves them out): a scale
    # filter told nothing about a full-range picture would not convert it.
    source = graph.add(
        "buffer",
        video_size=f"{frame.width}x{frame.height}",
        pix_fmt=str(frame.format.name),
        time_base=str(stream.time_base),
        pixel_aspect="1/1",
        colorspace=str(int(frame.colorspace)),
        range=str(int(frame.color_range)),
    )
    nodes = [source]
    nodes += [graph.add(name, opts or None) for name, opts in filters]
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes).configure()
    return graph


def iter_frames(
    path: str | Path,
    filters: Filters,
    *,
    timeout: float,
    max_frames: int | None = None,
    start: float = 0.0,
    what: str = "decode",
) -> Iterator[Frame]:
    """Every frame of the first video stream of ``path``, in presentation order, through
    ``filters`` (one filter graph; rebuilt if the picture size or format changes).

    ``start`` > 0 seeks as the command line's input ``-ss`` does: to the last keyframe
    at or before ``start`` seconds after the file's start time, then only frames from
    that time on are filtered and yielded (``index`` counts from the first of them).

    Stops early if the caller stops iterating. MediaError if the file cannot be opened,
    has no video stream, fails to decode (see the module doc), yields more than
    ``max_frames`` frames or takes longer than ``timeout`` seconds."""
    import av

    p = Path(path)
    deadline = time.monotonic() + timeout
    with open_media(p, what, probe_decode=False) as container:
        if not container.streams.video:
            raise MediaError(f"{what}: {p}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.thread_count = 1
        tb = stream.time_base
        # Frames before this time (seconds) are decoded, not filtered or yielded.
        first: Fraction | None = None
        if start > 0:
            first = Fraction(container.start_time or 0, av.time_base) + Fraction(start)
            try:  # to the keyframe at or before it (each frame of an intra-only file)
                container.seek(round(first * av.time_base), backward=True, any_frame=False)
            except av.FFmpegError as exc:
                raise MediaError(f"{what}: {p}: cannot seek to {start:.3f}s: {exc}") from None
        graph: Any = None
        shape: tuple[int, int, str] | None = None
        index = packets = damaged = 0

        def filtered(frame: Any) -> Iterator[Frame]:
            nonlocal graph, shape, index
            here = (frame.width, frame.height, frame.format.name)
            if graph is None or here != shape:
                graph, shape = _graph(stream, frame, filters), here
            graph.push(frame)
            while True:
                try:
                    out = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    return
                if max_frames is not None and index >= max_frames:
                    raise MediaError(f"{what}: {p}: more than {max_frames} frames")
                pts = None if out.pts is None or tb is None else out.pts * tb
                yield Frame(index, pts, (frame.width, frame.height), out.to_ndarray())
                index += 1

        try:
            for packet in container.demux(stream):
                if time.monotonic() > deadline:
                    raise MediaError(f"{what}: {p}: timed out after {timeout:g}s")
                packets += 1
                try:
                    decoded = packet.decode()
                except av.InvalidDataError:
                    damaged += 1  # what the command line logs and conceals
                    continue
                for frame in decoded:
                    if first is not None and (frame.pts is None or frame.pts * tb < first):
                        continue
                    yield from filtered(frame)
        except av.FFmpegError as exc:
            raise MediaError(f"{what}: {p}: {exc}") from None
    if packets and damaged / packets > MAX_ERROR_RATE:
        raise MediaError(f"{what}: {p}: {damaged} of {packets} packets could not be decoded")
