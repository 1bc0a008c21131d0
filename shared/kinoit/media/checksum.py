"""Visual checksums: a 64-bit perceptual hash per frame, compared by Hamming distance.

Algorithm ``phash-dct64``: ffmpeg decodes every frame and downsizes it to
32x32 luma (area averaging, aspect ignored, so renditions of any size hash
alike); imagehash.phash then takes the 2-D DCT, keeps the 8x8 lowest
frequencies and sets one bit per coefficient above their median. Such a hash
catches wrong, swapped, black, frozen, flipped or inverted content, not subtle
quality loss.

The verdict thresholds were measured, not guessed: see
docs/checksum-calibration.md (bench/media_calibrate.py rebuilds the corpus and
the table).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import imagehash
import numpy as np
from PIL import Image

from kinoit.config import Settings, load_settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import ffmpeg
from kinoit.media.probe import probe

ALGORITHM = "phash-dct64"
HASH_SIDE = 32
HASH_BITS = 64
# Calibrated in docs/checksum-calibration.md: the largest single-frame distance
# and the mean distance a legitimate rendition may show.
MATCH_MAX_DISTANCE = 30
MATCH_MEAN_DISTANCE = 10.0

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


def hash_gray_frame(pixels: bytes) -> str:
    """phash of one 32x32 luma frame as 16 hex digits (pure)."""
    image = Image.frombytes("L", (HASH_SIDE, HASH_SIDE), pixels)
    return str(imagehash.phash(image, hash_size=8, highfreq_factor=4))


def hash_gray_frames(raw: bytes) -> list[str]:
    """Split ffmpeg's raw 32x32 luma stream into frames and hash each one (pure)."""
    size = HASH_SIDE * HASH_SIDE
    if len(raw) % size:
        raise MediaError(f"checksum: {len(raw)} bytes is not a whole number of {size}-byte frames")
    return [hash_gray_frame(raw[i : i + size]) for i in range(0, len(raw), size)]


def checksum_video(
    path: str | Path,
    *,
    frame_range: tuple[int, int] | None = None,
    settings: Settings | None = None,
) -> list[str]:
    """One 64-bit perceptual hash (hex) per frame of ``path``, in presentation order.

    ``frame_range`` keeps frames [first, end) only (a copy-mode segment's own frames).
    """
    settings = settings or load_settings()
    probe(path, settings=settings, detect_vfr=False)  # clear errors for non-videos
    out = ffmpeg.run(build_hash_frames_argv(path), settings.ffmpeg_timeout_seconds, what="checksum")
    hashes = hash_gray_frames(out.stdout)
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
    max_distance: int = MATCH_MAX_DISTANCE,
    mean_distance: float = MATCH_MEAN_DISTANCE,
) -> Comparison:
    """Distances frame by frame; a frame present in only one side counts as 64 (all bits)."""
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
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, HASH_SIDE, HASH_SIDE)
