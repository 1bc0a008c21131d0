"""split stage: source CID -> frame-exact segments and the audio, added to the store.

The reply stays small whatever the length of the video: the segment list goes
into a paged DAG-CBOR index whose CID is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.documents import AudioHls, AudioSegmentRef, SegmentRef, write_split_index
from kinoit.errors import InvalidParameter, NotAVideo
from kinoit.stages.common import fetch, require_cid
from kinoit.stages.scratch import scratch_dir

if TYPE_CHECKING:
    from kinoit.media.split import SplitResult

# Segments that hold exactly their frames: a stream copy cut at the source's own
# keyframes where every boundary is one (no encode), else bit-exact lossless (UT Video
# or FFV1); see run().
SPLIT_MODE: Final = "aligned"


@dataclass(frozen=True)
class SplitRequest:
    """``{"source": CID, "segment_seconds": "1"}``."""

    source: str
    segment_seconds: Fraction


def parse_request(body: dict[str, Any]) -> SplitRequest:
    """Validate a split request."""
    raw = body.get("segment_seconds", "1")
    try:
        seconds = Fraction(str(raw))
    except (ValueError, ZeroDivisionError):
        raise InvalidParameter("segment_seconds", f"not a number: {raw!r}") from None
    if not 0 < seconds <= 60:
        raise InvalidParameter("segment_seconds", "must be in (0, 60]")
    return SplitRequest(require_cid(body, "source"), seconds)


def preview_audio(
    store: Any, audio: Path, result: SplitResult, work: Path, settings: Settings
) -> AudioHls:
    """The stereo track cut into the MPEG-TS segments the final HLS will have (merge
    cuts the same file the same way, so these are the same blocks), stored for the
    preview that plays while the job runs."""
    from kinoit.media.merge import audio_segment_seconds, cut_audio_hls, probe_audio_tracks

    stereo = probe_audio_tracks(audio, settings)[0]
    seconds = audio_segment_seconds(result.fps, [s.frames for s in result.segments])
    cut = cut_audio_hls(audio, work, seconds, stereo.index, settings)
    segments = tuple(
        AudioSegmentRef(store.add(path, pin=False), duration, path.stat().st_size)
        for path, duration in cut
    )
    return AudioHls(stereo.language, stereo.channels, segments)


def run(request: SplitRequest, settings: Settings) -> dict[str, Any]:
    """Fetch, split, store; return ``{source, index, segments, audio}``."""
    from kinoit.media.split import split_video
    from kinoit.store import open_store

    failpoints.hit(settings.failpoints, "stage.split")
    store = open_store(settings)
    with scratch_dir("split", settings) as work:
        src = fetch(store, request.source, work / "source")
        source_bytes = src.stat().st_size
        # split_video computes with Fractions inside; an exact 1/3 s must not be rounded.
        seconds: Any = request.segment_seconds
        # Every segment holds exactly its frames (copy mode's overlap on keyframes off the
        # boundaries would need a frame range in every later stage), and its CID names
        # exactly that content: aligned copies them where the keyframes allow.
        result = split_video(
            src, work / "segments", seconds=seconds, mode=SPLIT_MODE, settings=settings,
            signatures=True,
        )  # fmt: skip
        if not result.segments:
            raise NotAVideo("split: the source has no video frames")
        segments = [
            SegmentRef(
                seg.index,
                store.add(Path(seg.path), pin=False),
                seg.start_frame,
                seg.start_frame + seg.frames,
                # what every checksum of this segment compares with
                store.add(seg.signature, pin=False) if seg.signature is not None else None,
            )
            for seg in result.segments
        ]
        audio = store.add(Path(result.audio), pin=False) if result.audio else None
        audio_hls = (
            preview_audio(store, Path(result.audio), result, work / "audio-hls", settings)
            if result.audio
            else None
        )
    fps = f"{result.fps.numerator}/{result.fps.denominator}"
    source = {
        "frames": result.frames,
        "fps": fps,
        "width": result.width,
        "height": result.height,
        "duration": float(Fraction(result.frames) / result.fps),
        "bytes": source_bytes,
    }
    return {
        "source_cid": request.source,
        "index": write_split_index(store, segments, source, audio, audio_hls),
        "segments": len(segments),
        "audio": audio,
        "source": source,
    }
