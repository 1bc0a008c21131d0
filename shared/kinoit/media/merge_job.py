"""A whole job's outputs from local files (``kinoit merge``, benchmarks): every rung's
MP4, the HLS tree and the storyboard, from a folder of rendition segments. The
pipeline's merge stage calls the parts in :mod:`kinoit.media.merge` itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import Settings, default_settings
from kinoit.errors import InvalidParameter
from kinoit.media.merge import (
    MergedRung,
    check_segments,
    merge_rung,
    package_hls,
    probe_facts,
)
from kinoit.media.playlists import HLS_DIR


@dataclass(frozen=True)
class MergeResult:
    """Everything merge produced for one job."""

    rungs: tuple[MergedRung, ...]
    hls_master: Path | None
    storyboard: tuple[Path, Path] | None

    def to_json(self) -> dict[str, Any]:
        """JSON summary (`kinoit merge` prints it)."""
        return {
            "rungs": [r.to_json() for r in self.rungs],
            "hls": str(self.hls_master) if self.hls_master else None,
            "storyboard": [str(p) for p in self.storyboard] if self.storyboard else None,
        }


def rendition_segments(
    renditions_dir: str | Path, segment_stems: Sequence[str]
) -> dict[str, list[Path]]:
    """Find ``<dir>/<rung>/<stem>.(ts|mkv)`` for every segment stem, per rung (in order)."""
    root = Path(renditions_dir)
    if not root.is_dir():
        raise InvalidParameter("renditions", f"not a directory: {root}")
    found: dict[str, list[Path]] = {}
    for rung_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        paths = []
        for stem in segment_stems:
            candidates = [rung_dir / f"{stem}.ts", rung_dir / f"{stem}.mkv"]
            match = next((c for c in candidates if c.is_file()), None)
            if match is None:
                raise InvalidParameter(
                    "renditions", f"rung {rung_dir.name}: segment {stem} has no rendition"
                )
            paths.append(match)
        found[rung_dir.name] = paths
    if not found:
        raise InvalidParameter("renditions", f"{root} holds no rung directories")
    return found


def merge_job(
    renditions: Mapping[str, Sequence[str | Path]],
    audio_path: str | Path | None,
    out_dir: str | Path,
    *,
    fps: Fraction,
    segment_frames: Sequence[int],
    thumbnails: Sequence[str | Path] | None = None,
    hls: bool = True,
    settings: Settings | None = None,
) -> MergeResult:
    """Merge every rung to ``out_dir/<rung>.mp4``, package ``out_dir/hls/``, tile the storyboard."""
    from kinoit.media.thumbnail import make_storyboard

    settings = settings or default_settings()
    out = Path(out_dir)
    facts = {
        rung: probe_facts(check_segments(paths)[0], settings) for rung, paths in renditions.items()
    }
    merged = tuple(
        merge_rung(
            paths,
            audio_path,
            out / f"{rung}.mp4",
            fps=fps,
            segment_frames=segment_frames,
            facts=facts[rung],
            settings=settings,
        )
        for rung, paths in renditions.items()
    )
    master = None
    if hls:
        master = package_hls(
            renditions, out / HLS_DIR, fps=fps, segment_frames=segment_frames,
            audio_path=audio_path, facts=facts, settings=settings,
        )  # fmt: skip
    board = None
    if thumbnails:
        durations = [float(Fraction(n) / fps) for n in segment_frames]
        board = make_storyboard(thumbnails, out, durations=durations)
    return MergeResult(merged, master, board)
