"""Visual checksums: a 64-bit perceptual hash per frame, compared by Hamming distance.

ffmpeg decodes every frame and downsizes it to 32x32 luma (area averaging,
aspect ignored, so renditions of any size hash alike); one of the algorithms in
``ALGORITHMS`` turns that into 64 bits. The default, ``dct32-block32``, keeps 32
pHash bits (signs of the lowest DCT coefficients around their median) and 32
block-mean bits. Such a hash catches wrong, swapped, black, frozen, flipped or
inverted content, not subtle quality loss.

The verdict thresholds were measured, not guessed: see
docs/checksum-calibration.md (bench/media_calibrate.py rebuilds the corpus and
the table).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kinoit.config import Settings, load_settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import ffmpeg
from kinoit.media.probe import probe

if TYPE_CHECKING:
    import numpy as np

# numpy, imagehash and Pillow are imported where frames are hashed, not here:
# they would add a third of a second to every `kinoit` command.

HASH_SIDE = 32
HASH_BITS = 64


def _bits_to_hex(bits: np.ndarray[Any, np.dtype[np.bool_]]) -> str:
    value = 0
    for bit in bits.flatten():
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def _phash(frame: np.ndarray[Any, np.dtype[np.uint8]]) -> str:
    import imagehash
    from PIL import Image

    return str(imagehash.phash(Image.fromarray(frame, "L"), hash_size=8, highfreq_factor=4))


def _blockmean(frame: np.ndarray[Any, np.dtype[np.uint8]]) -> str:
    import numpy as np

    blocks = frame.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    return _bits_to_hex(blocks > np.median(blocks))


def _dct_block(frame: np.ndarray[Any, np.dtype[np.uint8]]) -> str:
    import imagehash
    import numpy as np
    from PIL import Image

    low = imagehash.phash(Image.fromarray(frame, "L"), hash_size=8, highfreq_factor=4).hash
    blocks = frame.reshape(4, 8, 8, 4).mean(axis=(1, 3))
    return _bits_to_hex(np.concatenate([low[:4].flatten(), (blocks > np.median(blocks)).flatten()]))


# name -> hash of one 32x32 luma frame. phash: DCT signs around the median;
# blockmean: 8x8 block means around their median (a "block hash"); dct-block:
# 32 pHash bits (lowest 4 rows of the 8x8 DCT) + 32 block-mean bits (4x8 blocks).
ALGORITHMS = {"phash-dct64": _phash, "blockmean64": _blockmean, "dct32-block32": _dct_block}
# The default, chosen on the calibration corpus: pHash bits alone are noise on
# smooth content (gradients, fades), block means alone miss motion within a
# static layout (frozen frames, the wrong second of a talk); half of each does both.
ALGORITHM = "dct32-block32"
# Calibrated in docs/checksum-calibration.md: per algorithm, the largest
# single-frame distance and the mean distance a legitimate rendition may show.
THRESHOLDS: dict[str, tuple[int, float]] = {
    "dct32-block32": (28, 10.0),
    "blockmean64": (24, 8.0),
    "phash-dct64": (30, 10.0),
}
MATCH_MAX_DISTANCE, MATCH_MEAN_DISTANCE = THRESHOLDS[ALGORITHM]

Verdict = Literal["match", "mismatch"]


@dataclass(frozen=True)
class Comparison:
    """Per-frame Hamming distances between a reference and a candidate, and the verdict."""

    distances: tuple[int, ...]
    max: int
    mean: float
    verdict: Verdict
    reference_frames: int
    candidate_frames: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The JSON `kinoit compare` prints."""
        return {
            "distances": list(self.distances),
            "max": self.max,
            "mean": round(self.mean, 3),
            "verdict": self.verdict,
            "reference_frames": self.reference_frames,
            "candidate_frames": self.candidate_frames,
            "reason": self.reason,
        }


def build_hash_frames_argv(path: str | Path) -> list[str]:
    """ffmpeg: every frame of the first video stream as 32x32 8-bit luma on stdout."""
    return [
        ffmpeg.FFMPEG, *ffmpeg.QUIET, "-i", str(path), "-map", "0:v:0",
        "-vf", f"scale={HASH_SIDE}:{HASH_SIDE}:flags=area,format=gray",
        "-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1",
    ]  # fmt: skip


def _algorithm(name: str) -> Any:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise InvalidParameter(
            "algorithm", f"expected one of {sorted(ALGORITHMS)}, got {name!r}"
        ) from None


def hash_gray_frame(pixels: bytes, algorithm: str = ALGORITHM) -> str:
    """Hash of one 32x32 luma frame as 16 hex digits (pure)."""
    import numpy as np

    frame = np.frombuffer(pixels, dtype=np.uint8).reshape(HASH_SIDE, HASH_SIDE)
    return str(_algorithm(algorithm)(frame))


def hash_gray_frames(raw: bytes, algorithm: str = ALGORITHM) -> list[str]:
    """Split ffmpeg's raw 32x32 luma stream into frames and hash each one (pure)."""
    size = HASH_SIDE * HASH_SIDE
    if len(raw) % size:
        raise MediaError(f"checksum: {len(raw)} bytes is not a whole number of {size}-byte frames")
    return [hash_gray_frame(raw[i : i + size], algorithm) for i in range(0, len(raw), size)]


def gray_frames(path: str | Path, *, settings: Settings | None = None) -> bytes:
    """Every frame of ``path`` as raw 32x32 luma (what every algorithm hashes)."""
    settings = settings or load_settings()
    probe(path, settings=settings, detect_vfr=False)  # clear errors for non-videos
    argv = build_hash_frames_argv(path)
    return ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="checksum").stdout


def checksum_video(
    path: str | Path,
    *,
    frame_range: tuple[int, int] | None = None,
    algorithm: str = ALGORITHM,
    settings: Settings | None = None,
) -> list[str]:
    """One 64-bit perceptual hash (hex) per frame of ``path``, in presentation order.

    ``frame_range`` keeps frames [first, end) only (a copy-mode segment's own frames).
    """
    _algorithm(algorithm)
    hashes = hash_gray_frames(gray_frames(path, settings=settings), algorithm)
    if frame_range is not None:
        first, end = frame_range
        if not 0 <= first < end <= len(hashes):
            raise InvalidParameter(
                "frame_range", f"[{first}, {end}) is outside {len(hashes)} frames"
            )
        hashes = hashes[first:end]
    return hashes


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes."""
    try:
        return (int(a, 16) ^ int(b, 16)).bit_count()
    except ValueError:
        raise InvalidParameter("hash", f"not hexadecimal: {a!r} / {b!r}") from None


def compare_checksums(
    reference: Sequence[str],
    candidate: Sequence[str],
    *,
    max_distance: int | None = None,
    mean_distance: float | None = None,
    algorithm: str = ALGORITHM,
) -> Comparison:
    """Distances frame by frame; a frame present in only one side counts as 64 (all bits)."""
    default_max, default_mean = THRESHOLDS[_algorithm(algorithm) and algorithm]
    max_distance = default_max if max_distance is None else max_distance
    mean_distance = default_mean if mean_distance is None else mean_distance
    if not reference and not candidate:
        raise InvalidParameter("checksums", "both sides are empty")
    pairs = min(len(reference), len(candidate))
    distances = [hamming(reference[i], candidate[i]) for i in range(pairs)]
    distances += [HASH_BITS] * (max(len(reference), len(candidate)) - pairs)
    worst = max(distances)
    mean = statistics.fmean(distances)
    if len(reference) != len(candidate):
        reason = f"frame counts differ: {len(reference)} vs {len(candidate)}"
    elif worst > max_distance:
        reason = f"frame {distances.index(worst)} differs by {worst} bits (> {max_distance})"
    elif mean > mean_distance:
        reason = f"mean distance {mean:.2f} > {mean_distance}"
    else:
        reason = "all frames within thresholds"
    ok = len(reference) == len(candidate) and worst <= max_distance and mean <= mean_distance
    return Comparison(
        distances=tuple(distances), max=worst, mean=mean, verdict="match" if ok else "mismatch",
        reference_frames=len(reference), candidate_frames=len(candidate), reason=reason,
    )  # fmt: skip


def gray_frames_to_array(raw: bytes) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Raw 32x32 luma frames as an (n, 32, 32) array (for calibration tooling)."""
    import numpy as np

    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, HASH_SIDE, HASH_SIDE)
