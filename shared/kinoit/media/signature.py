"""Video signatures: every frame of a video as small planes, plus its timing and size.

A signature is what the verifier (:mod:`kinoit.media.checksum`) compares: each
frame area-averaged by FFmpeg's scale filter onto a fixed ``GRID_W`` x
``GRID_H`` grid (aspect ignored, so a 144p rendition and its 1080p source land
on the same grid) in 8-bit YUV 4:2:0, the presentation time of every frame,
and the size the video was decoded at. Split writes the source segments'
signatures from the decode it already makes, with the ffmpeg command line
(:func:`grid_filter`, :func:`read_signatures`), so a checksum task never
decodes the lossless intermediate again; a checksum task decodes its
renditions in its own process (:func:`decode_signature`), where an ffmpeg's
start would cost as much as the decode.

Serialised (``to_bytes``) a signature is a one-line JSON header and the raw
planes: the split stage stores one per segment, ``kinoit checksum`` embeds one
(zlib, base64) in its JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import ffmpeg

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where frames are read, not here: it would add a tenth of a
# second to every `kinoit` command.

# The analysis grid. 160x96 keeps the detail of a 144p rung (so heavy noise and
# blocking still show) while a 1-second 60 fps signature stays ~1.4 MB raw;
# both sides are multiples of 32 x (5, 3) for the 32x32 hash grid.
GRID_W: Final = 160
GRID_H: Final = 96
LUMA_BYTES: Final = GRID_W * GRID_H
FRAME_BYTES: Final = LUMA_BYTES * 3 // 2
MAGIC: Final = "kinoit-signature"
VERSION: Final = 1
# A signature never holds more frames than a 60-second segment at 120 fps.
MAX_FRAMES: Final = 7200
PIX_FMT: Final = "yuv420p"


@dataclass(frozen=True)
class Signature:
    """Small YUV planes of every frame, presentation times and decoded size of one video."""

    planes: bytes  # frames x FRAME_BYTES, Y then U then V of each frame
    pts: tuple[Fraction, ...] | None  # seconds, one per frame; None where unknown
    size: tuple[int, int] | None  # width, height the video was decoded at

    def __post_init__(self) -> None:
        if len(self.planes) % FRAME_BYTES:
            raise MediaError(f"signature: {len(self.planes)} bytes is not a whole number of frames")
        if self.pts is not None and len(self.pts) != self.frames:
            raise MediaError(f"signature: {len(self.pts)} timestamps for {self.frames} frames")

    @property
    def frames(self) -> int:
        """Number of frames."""
        return len(self.planes) // FRAME_BYTES

    def array(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """The planes as an (frames, FRAME_BYTES) array (no copy)."""
        import numpy as np

        return np.frombuffer(self.planes, dtype=np.uint8).reshape(-1, FRAME_BYTES)

    def luma(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """(frames, GRID_H, GRID_W) luma."""
        return self.array()[:, :LUMA_BYTES].reshape(-1, GRID_H, GRID_W)

    def chroma(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """(frames, 2, GRID_H/2, GRID_W/2): U and V."""
        return self.array()[:, LUMA_BYTES:].reshape(-1, 2, GRID_H // 2, GRID_W // 2)

    def header(self) -> dict[str, Any]:
        """Everything but the planes, as JSON."""
        return {
            "format": MAGIC,
            "version": VERSION,
            "grid": [GRID_W, GRID_H],
            "pix_fmt": PIX_FMT,
            "frames": self.frames,
            "pts": None if self.pts is None else [str(p) for p in self.pts],
            "size": None if self.size is None else list(self.size),
        }

    def to_bytes(self) -> bytes:
        """One JSON line, then the raw planes."""
        head = json.dumps(self.header(), separators=(",", ":")).encode()
        return head + b"\n" + self.planes

    @classmethod
    def from_header(cls, head: Any, planes: bytes) -> Signature:
        """Rebuild from ``header()`` and the planes; InvalidParameter on anything else."""
        if not isinstance(head, dict) or head.get("format") != MAGIC:
            raise InvalidParameter("signature", "not a kinoit signature")
        if head.get("version") != VERSION or head.get("grid") != [GRID_W, GRID_H]:
            raise InvalidParameter(
                "signature",
                f"version {head.get('version')!r} grid {head.get('grid')!r} "
                f"(expected {VERSION}, {[GRID_W, GRID_H]})",
            )
        frames = head.get("frames")
        if not isinstance(frames, int) or not 0 < frames <= MAX_FRAMES:
            raise InvalidParameter("signature.frames", f"expected 1..{MAX_FRAMES}")
        if len(planes) != frames * FRAME_BYTES:
            raise InvalidParameter(
                "signature", f"{len(planes)} bytes of planes for {frames} frames (truncated?)"
            )
        try:
            raw_pts, raw_size = head.get("pts"), head.get("size")
            pts = None if raw_pts is None else tuple(Fraction(str(p)) for p in raw_pts)
            size = None if raw_size is None else (int(raw_size[0]), int(raw_size[1]))
            return cls(planes, pts, size)
        except (TypeError, ValueError, ZeroDivisionError, IndexError, MediaError) as exc:
            raise InvalidParameter("signature", f"bad header: {exc}") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        """Parse ``to_bytes()`` output."""
        head, sep, planes = data.partition(b"\n")
        if not sep or len(head) > 1 << 20:
            raise InvalidParameter("signature", "not a kinoit signature")
        try:
            parsed = json.loads(head)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidParameter("signature", "not a kinoit signature") from None
        return cls.from_header(parsed, planes)

    def to_text(self) -> str:
        """Compact text for JSON documents: base64 of the zlib-compressed bytes."""
        import base64
        import zlib

        return base64.b64encode(zlib.compress(self.to_bytes(), 6)).decode("ascii")

    @classmethod
    def from_text(cls, text: object) -> Signature:
        """Parse ``to_text()`` output (InvalidParameter for anything else)."""
        import base64
        import binascii
        import zlib

        if not isinstance(text, str):
            raise InvalidParameter("signature", "expected a base64 string")
        try:
            packed = base64.b64decode(text, validate=True)
            unpacker = zlib.decompressobj()
            data = unpacker.decompress(packed, MAX_FRAMES * FRAME_BYTES + (1 << 20))
        except (binascii.Error, ValueError, zlib.error):
            raise InvalidParameter("signature", "not a kinoit signature") from None
        if unpacker.unconsumed_tail:
            raise InvalidParameter("signature", "larger than any signature")
        return cls.from_bytes(data)

    def slice(self, first: int, end: int) -> Signature:
        """Frames [first, end), timestamps kept."""
        if not 0 <= first < end <= self.frames:
            raise InvalidParameter("frame_range", f"[{first}, {end}) is outside {self.frames}")
        pts = None if self.pts is None else self.pts[first:end]
        return Signature(self.planes[first * FRAME_BYTES : end * FRAME_BYTES], pts, self.size)


def grid_filter() -> str:
    """The filter chain that puts any frame on the analysis grid (the ffmpeg command line)."""
    return f"scale={GRID_W}:{GRID_H}:flags=area,format={PIX_FMT}"


# The same grid in-process (PyAV's FFmpeg, a newer one than Debian's command line): its
# scale filter keeps a full-range picture full range unless told, where the command line's
# converts it to the limited range of yuv420p. Said, the two agree byte for byte on
# limited-range video and within one level on full-range (docs/benchmarks.md).
IN_PROCESS_GRID: Final = (
    ("scale", f"{GRID_W}:{GRID_H}:flags=area:out_range=tv"),
    ("format", PIX_FMT),
)


def decode_signature(path: Path, timeout: float) -> Signature:
    """The signature of one video decoded in this process (:mod:`kinoit.media.frames`):
    no ffmpeg to start, the same grid as :func:`read_signatures`, the frames' own
    timestamps (pts x time base). MediaError if it cannot be decoded."""
    from kinoit.media.frames import iter_frames

    planes = bytearray()
    pts: list[Fraction | None] = []
    size = None
    for frame in iter_frames(
        path, IN_PROCESS_GRID, timeout=timeout, max_frames=MAX_FRAMES, what="signature"
    ):
        planes += frame.image.tobytes()
        pts.append(frame.pts)
        size = size or frame.decoded
    if not planes:
        raise MediaError(f"signature: {path}: the video has no frames")
    known = tuple(p for p in pts if p is not None)
    return Signature(bytes(planes), known if len(known) == len(pts) else None, size)


def signature_outputs(
    label: str, planes: Path, timing: Path, first: Path, *, exact_times: bool = False
) -> list[str]:
    """Output options for one video whose grid frames leave the filtergraph as ``[label]``.

    ``planes`` gets the raw grid frames, ``timing`` the framecrc of the same frames
    (their pts; ``exact_times``: in the stream's own time base, not rounded to the
    frame rate's), ``first`` the framecrc of the first full-size frame (its size)."""
    exact = ["-enc_time_base", "-1"] if exact_times else []
    return [
        "-map", f"[{label}p]", "-fps_mode", "passthrough", "-f", "rawvideo", str(planes),
        "-map", f"[{label}t]", "-fps_mode", "passthrough", "-c:v", "rawvideo", *exact,
        "-f", "framecrc", str(timing),
        "-map", f"[{label}f]", "-frames:v", "1", "-c:v", "rawvideo", "-f", "framecrc", str(first),
    ]  # fmt: skip


def signature_graph(stream: str, label: str) -> str:
    """Filtergraph: ``stream`` to grid frames ``[<l>p]``, ``[<l>t]``; size ``[<l>f]``."""
    return (
        f"[{stream}]split=2[{label}f][{label}x];"
        f"[{label}x]{grid_filter()},split=2[{label}p][{label}t]"
    )


def build_signatures_argv(inputs: Sequence[Path], work: Path) -> list[str]:
    """One ffmpeg decoding every input once and writing its signature files into ``work``."""
    if not inputs:
        raise InvalidParameter("inputs", "expected at least one video")
    # One thread per decoder and for the filters: a checksum task is one of many running
    # at once, and frame threads cost ~10% more CPU for the same frames (docs/benchmarks.md).
    argv = [ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-filter_complex_threads", "1"]
    for path in inputs:
        argv += ["-threads", "1", "-i", str(path)]
    graph = ";".join(signature_graph(f"{i}:v:0", f"s{i}") for i in range(len(inputs)))
    argv += ["-filter_complex", graph]
    for i in range(len(inputs)):
        argv += signature_outputs(f"s{i}", *signature_files(work, i))
    return argv


def signature_files(work: Path, i: int) -> tuple[Path, Path, Path]:
    """The three files ``signature_outputs`` writes for input ``i``."""
    return work / f"sig{i}.yuv", work / f"sig{i}.crc", work / f"sig{i}.first.crc"


_TB = re.compile(r"^#tb 0: (\d+)/(\d+)$", re.M)
_DIM = re.compile(r"^#dimensions 0: (\d+)x(\d+)$", re.M)


def parse_framecrc(text: str) -> tuple[list[Fraction], tuple[int, int] | None]:
    """Presentation times (seconds) and the dimensions line of a framecrc file (pure)."""
    tb_match = _TB.search(text)
    if tb_match is None:
        raise MediaError("signature: framecrc without a time base")
    tb = Fraction(int(tb_match[1]), int(tb_match[2]))
    pts = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            fields = [f.strip() for f in line.split(",")]
            pts.append(int(fields[2]) * tb)
    dim = _DIM.search(text)
    return pts, (int(dim[1]), int(dim[2])) if dim else None


def read_signature_files(work: Path, i: int) -> Signature:
    """The signature of input ``i`` from the files ``build_signatures_argv`` wrote."""
    planes_path, timing_path, first_path = signature_files(work, i)
    planes = planes_path.read_bytes()
    if not planes:
        raise MediaError("signature: the video has no frames")
    pts, _ = parse_framecrc(timing_path.read_text("utf-8"))
    _, size = parse_framecrc(first_path.read_text("utf-8"))
    if len(pts) != len(planes) // FRAME_BYTES:
        raise MediaError(f"signature: {len(pts)} timestamps for {len(planes)} bytes of frames")
    return Signature(planes, tuple(pts), size)


def read_signatures(paths: Sequence[Path], work: Path, timeout: float) -> list[Signature]:
    """Decode every file once (one ffmpeg for all) and return their signatures, in order."""
    work.mkdir(parents=True, exist_ok=True)
    argv = build_signatures_argv(paths, work)
    try:
        ffmpeg.run(argv, timeout, what="signature")
        return [read_signature_files(work, i) for i in range(len(paths))]
    finally:
        for i in range(len(paths)):
            for f in signature_files(work, i):
                f.unlink(missing_ok=True)
