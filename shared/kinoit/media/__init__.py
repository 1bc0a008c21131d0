"""kinoit.media: the work every function does to the video.

Pure planning and argument building live beside the single module that runs
ffmpeg (:mod:`kinoit.media.ffmpeg`). The public API, stable for the function
handlers and the CLI:

- :func:`probe` → :class:`ProbeResult`
- :func:`plan_segments` → list of :class:`SegmentPlan` (pure)
- :func:`split_video` → :class:`SplitResult` (writes OUTDIR/segments.json); :func:`load_split`
- :func:`load_ladder` → :class:`Ladder` (``ladder.for_source(w, h)``)
- :func:`transcode_segment` → ``{rung: RenditionFile}``; :func:`transcode_split_segment`
  (the same, with fps/start_frame/frame_range taken from a SplitResult)
- :func:`make_thumbnail`, :func:`make_storyboard`
- :func:`checksum_video` → hex hashes; :func:`compare_checksums` → :class:`Comparison`
- :func:`merge_rung` → :class:`MergedRung`; :func:`package_hls` → master playlist path;
  :func:`verify_output` → :class:`Verification`
- :func:`make_clip` (synthetic test clips)
"""

from kinoit.media.checksum import ALGORITHM, Comparison, checksum_video, compare_checksums
from kinoit.media.ladder import Ladder, Rung, load_ladder
from kinoit.media.merge import MergedRung, Verification, merge_rung, package_hls, verify_output
from kinoit.media.plan import SegmentPlan, plan_segments
from kinoit.media.probe import AudioStream, ProbeResult, probe
from kinoit.media.split import (
    DEFAULT_SPLIT_MODE,
    Segment,
    SplitResult,
    load_split,
    split_video,
)
from kinoit.media.synth import make_clip
from kinoit.media.thumbnail import make_storyboard, make_thumbnail
from kinoit.media.transcode import RenditionFile, transcode_segment, transcode_split_segment

__all__ = [
    "ALGORITHM",
    "DEFAULT_SPLIT_MODE",
    "AudioStream",
    "Comparison",
    "Ladder",
    "MergedRung",
    "ProbeResult",
    "RenditionFile",
    "Rung",
    "Segment",
    "SegmentPlan",
    "SplitResult",
    "Verification",
    "checksum_video",
    "compare_checksums",
    "load_ladder",
    "load_split",
    "make_clip",
    "make_storyboard",
    "make_thumbnail",
    "merge_rung",
    "package_hls",
    "plan_segments",
    "probe",
    "split_video",
    "transcode_segment",
    "transcode_split_segment",
    "verify_output",
]
