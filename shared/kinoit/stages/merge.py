"""merge stage: a merge plan CID -> per-rung MP4 CIDs, an HLS directory and a storyboard.

The plan is a DAG-CBOR document written by orchestrate::

    {"source": {"fps", "frames", ...}, "audio": CID | None, "ladder": {...},
     "segment_seconds": "1", "pages": [CID, ...]}   # pages: lists of manifest segment entries

The HLS tree is stored file by file and described by a DAG-CBOR listing
``{"type": "kinoit/directory", "entries": {"master.m3u8": CID, "<rung>/index.m3u8": CID, ...}}``
(the store has no UnixFS directories), which ``kinoit run`` writes back to disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.documents import MergePlan, read_pages
from kinoit.errors import InvalidParameter
from kinoit.stages.common import fetch, require_cid
from kinoit.stages.scratch import scratch_dir

DIRECTORY_TYPE = "kinoit/directory"


@dataclass(frozen=True)
class MergeRequest:
    """``{"plan": CID}``."""

    plan: str


def parse_request(body: dict[str, Any]) -> MergeRequest:
    """Validate a merge request."""
    return MergeRequest(require_cid(body, "plan"))


def read_plan_segments(store: Any, plan: MergePlan) -> list[dict[str, Any]]:
    """Every segment entry of a plan, in order."""
    entries: list[dict[str, Any]] = list(read_pages(store, plan.pages))
    entries.sort(key=lambda e: int(e["index"]))
    if not entries:
        raise InvalidParameter("plan", "the plan has no segments")
    return entries


def store_directory(store: Any, root: Path) -> str:
    """Add every file under ``root`` and return the CID of a DAG-CBOR listing."""
    from kinoit.store.cid import CID

    files = {
        str(path.relative_to(root)): CID.parse(store.add(path, pin=False))
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    return str(store.dag_put({"type": DIRECTORY_TYPE, "entries": files}))


def run(request: MergeRequest, settings: Settings) -> dict[str, Any]:
    """Fetch every rendition, merge each rung with the audio, package HLS, tile a storyboard."""
    from kinoit.media.ladder import load_ladder
    from kinoit.media.merge import merge_rung, package_hls, probe_facts
    from kinoit.media.thumbnail import make_storyboard
    from kinoit.store import open_store

    failpoints.hit(settings.failpoints, "stage.merge")
    store = open_store(settings)
    plan = MergePlan.from_dag(store.dag_get(request.plan))
    entries = read_plan_segments(store, plan)
    ladder = load_ladder(dict(plan.ladder))
    fps = Fraction(str(plan.source["fps"]))
    frames = [int(e["end_frame"]) - int(e["start_frame"]) for e in entries]
    rungs = sorted(entries[0]["renditions"])
    with scratch_dir("merge", settings) as work:
        paths: dict[str, list[Path]] = {}
        for rung in rungs:
            ext = ladder.rung(rung).container
            paths[rung] = [
                fetch(store, str(e["renditions"][rung]), work / rung / f"{i:05d}.{ext}")
                for i, e in enumerate(entries)
            ]
        audio = fetch(store, plan.audio, work / "audio.m4a") if plan.audio else None
        mp4: dict[str, str] = {}
        # One ffprobe per rung: merge_rung and package_hls share what it found.
        facts = {rung: probe_facts(paths[rung][0], settings) for rung in rungs}
        for rung in rungs:
            merged = merge_rung(
                paths[rung], audio, work / "mp4" / f"{rung}.mp4", fps=fps,
                segment_frames=frames, facts=facts[rung], settings=settings,
            )  # fmt: skip
            mp4[rung] = store.add(merged.path, pin=False)
        package_hls(
            paths, work / "hls", fps=fps, segment_frames=frames, audio_path=audio,
            facts=facts, settings=settings,
        )  # fmt: skip
        hls = store_directory(store, work / "hls")
        thumbs = [
            fetch(store, str(e["thumbnail"]), work / "thumbs" / f"{i:05d}.jpg")
            for i, e in enumerate(entries)
            if e.get("thumbnail")
        ]
        storyboard = vtt = None
        if len(thumbs) == len(entries):
            sprite, vtt_path = make_storyboard(
                thumbs, work / "storyboard", durations=[float(Fraction(n) / fps) for n in frames]
            )
            storyboard = store.add(sprite, pin=False)
            vtt = store.add(vtt_path, pin=False)
    return {
        "plan": request.plan,
        "mp4": mp4,
        "hls": hls,
        "storyboard": storyboard,
        "storyboard_vtt": vtt,
        "frames": sum(frames),
    }
