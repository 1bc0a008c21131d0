"""merge in parts: one task per rung, in parallel, then one small final task.

A rung task (``{"plan": CID, "rung": name}``) does the heavy part for its rung:
fetches its rendition segments and the audio, joins them into ``<rung>.mp4``,
packages its HLS media playlist and segments, and stores them; it answers CIDs and
what the master playlist needs (its video's measured bit rates, its stream facts)::

    {"plan", "rung", "mp4": {rung: CID}, "mp4_bytes", "hls": CID (listing),
     "hls_dir": CID, "hls_dir_size", "peak", "average", "facts": {...}, "frames"}

``hls_dir`` is the UnixFS directory of ``hls/<rung>/`` and ``hls_dir_size`` its
cumulative size: the final task links it as it is. ``peak`` and ``average`` are bits
per second as ``repr`` strings, so they come back exactly whatever carries them.

The final task (``{"plan": CID, "rungs": {rung: that result's parts}}``) cuts the
audio renditions, writes the master playlist, tiles the storyboard, and stores the
outputs directory and the HLS listing over the rungs' CIDs, without reading their
bytes. Its result, and every file and CID, are those of the one-task merge
(:func:`kinoit.stages.merge.run` given the plan alone).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.errors import InvalidParameter
from kinoit.media.playlists import StreamFacts
from kinoit.names import check_name
from kinoit.stages.common import fetch, require_cid, require_count, require_rate
from kinoit.stages.merge import (
    DIRECTORY_TYPE,
    MergeRequest,
    Plan,
    add_files,
    fetched_files,
    read_plan,
    store_directory,
    verified_by_checksum,
)
from kinoit.stages.scratch import scratch_dir

# The fields of a rung task's result that its final task is given.
PART_FIELDS = ("mp4", "mp4_bytes", "hls", "hls_dir", "hls_dir_size", "peak", "average", "facts")


@dataclass(frozen=True)
class RungPart:
    """What the final task is told of one rung's merged outputs."""

    mp4: str
    mp4_bytes: int
    hls: str
    hls_dir: str
    hls_dir_size: int
    peak: float
    average: float
    facts: StreamFacts


def _facts(raw: Any, where: str) -> StreamFacts:
    if not isinstance(raw, dict):
        raise InvalidParameter(f"{where}.facts", "expected the stream facts")

    def text(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or len(value) > 64:
            raise InvalidParameter(f"{where}.facts.{key}", "expected a short string")
        return value

    def number(key: str) -> int:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not -1000 < value < 2**31:
            raise InvalidParameter(f"{where}.facts.{key}", "expected an integer")
        return value

    return StreamFacts(
        codec=text("codec"), profile=text("profile"), level=number("level"),
        width=number("width"), height=number("height"), pix_fmt=text("pix_fmt"),
    )  # fmt: skip


def parse_part(rung: str, part: Any) -> RungPart:
    """One rung's entry of a final request, every field checked (InvalidParameter)."""
    where = f"rungs.{rung}"
    if not isinstance(part, dict):
        raise InvalidParameter(where, "expected a rung task's result")
    mp4 = part.get("mp4")
    if not isinstance(mp4, dict) or set(mp4) != {rung}:
        raise InvalidParameter(f"{where}.mp4", f"expected {{{rung!r}: CID}}")
    return RungPart(
        mp4=require_cid(mp4, rung), mp4_bytes=require_count(part, "mp4_bytes", where),
        hls=require_cid(part, "hls"), hls_dir=require_cid(part, "hls_dir"),
        hls_dir_size=require_count(part, "hls_dir_size", where),
        peak=require_rate(part, "peak", where), average=require_rate(part, "average", where),
        facts=_facts(part.get("facts"), where),
    )  # fmt: skip


def parse_parts(raw: Any) -> dict[str, RungPart]:
    """A final request's ``rungs``: ``{rung name: parts of its rung task's result}``."""
    if not isinstance(raw, dict) or not raw:
        raise InvalidParameter("rungs", "expected {rung: its rung task's result}")
    return {check_name(rung, "rungs"): parse_part(rung, part) for rung, part in raw.items()}


def plan_frames(plan: Plan) -> list[int]:
    return [int(e["end_frame"]) - int(e["start_frame"]) for e in plan.entries]


def run_rung(request: MergeRequest, settings: Settings) -> dict[str, Any]:
    """One rung: its MP4 (with the audio) and its HLS media playlist and segments."""
    from kinoit.media.merge import merge_rung, package_rung_hls, probe_facts
    from kinoit.store import open_store
    from kinoit.store.directory import file_entry, put_tree_entry

    failpoints.hit(settings.failpoints, "stage.merge.rung")
    rung = str(request.rung)
    store = open_store(settings)
    plan = read_plan(store, request.plan)
    if rung not in plan.rungs:
        raise InvalidParameter("rung", f"{rung!r} is not a rung of the plan ({plan.rungs})")
    frames = plan_frames(plan)
    cids = [str(e["renditions"][rung]) for e in plan.entries]
    with scratch_dir("merge", settings) as work:
        ext = plan.ladder.rung(rung).container
        paths = [fetch(store, cid, work / rung / f"{i:05d}.{ext}") for i, cid in enumerate(cids)]
        audio = fetch(store, plan.audio, work / "audio.m4a") if plan.audio else None
        facts = probe_facts(paths[0], settings)
        merged = merge_rung(
            paths, audio, work / "mp4" / f"{rung}.mp4", fps=plan.fps, segment_frames=frames,
            facts=facts, decode_check=not verified_by_checksum(plan.entries, rung),
            settings=settings,
        )  # fmt: skip
        mp4 = store.add(merged.path, pin=False)
        hls = package_rung_hls(
            paths, work / "hls" / rung, durations=[Fraction(n) / plan.fps for n in frames],
            facts=facts, settings=settings,
        )  # fmt: skip
        files = add_files(store, work / "hls", fetched_files({rung: paths}, {rung: cids}))
        listing = store_directory(store, work / "hls", files)
        prefix = f"{rung}/"
        directory = put_tree_entry(
            store, {rel[len(prefix) :]: file_entry(cid, size) for rel, (cid, size) in files.items()}
        )
        mp4_bytes = merged.path.stat().st_size
    return {
        "plan": request.plan, "rung": rung, "mp4": {rung: mp4}, "mp4_bytes": mp4_bytes,
        "hls": listing, "hls_dir": str(directory.cid), "hls_dir_size": directory.tsize,
        "peak": repr(hls.peak), "average": repr(hls.average), "facts": asdict(facts),
        "frames": sum(frames),
    }  # fmt: skip


def add_storyboard(
    store: Any, plan: Plan, work: Path, layout: dict[str, tuple[str, int]]
) -> tuple[str | None, str | None]:
    """Every thumbnail into ``layout`` and, when every segment has one, the storyboard
    sprite and its WebVTT stored and added too; their CIDs (None without)."""
    from kinoit.media.thumbnail import make_storyboard

    frames = plan_frames(plan)
    thumbs = []
    for i, e in enumerate(plan.entries):
        if e.get("thumbnail"):
            thumb = fetch(store, str(e["thumbnail"]), work / "thumbs" / f"{i:05d}.jpg")
            thumbs.append(thumb)
            layout[f"thumbs/{int(e['index']):05d}.jpg"] = (
                str(e["thumbnail"]),
                thumb.stat().st_size,
            )
    if len(thumbs) != len(plan.entries):
        return None, None
    sprite, vtt_path = make_storyboard(
        thumbs, work / "storyboard", durations=[float(Fraction(n) / plan.fps) for n in frames]
    )
    storyboard, vtt = store.add(sprite, pin=False), store.add(vtt_path, pin=False)
    layout["storyboard.jpg"] = (storyboard, sprite.stat().st_size)
    layout["storyboard.vtt"] = (vtt, vtt_path.stat().st_size)
    return storyboard, vtt


def _listing(store: Any, cid: str, folder: str, field: str) -> dict[str, Any]:
    """The ``<folder>/…`` entries of a part's HLS listing (checked)."""
    doc = store.dag_get(cid)
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if doc.get("type") != DIRECTORY_TYPE or not isinstance(entries, dict) or not entries:
        raise InvalidParameter(field, "not an HLS listing")
    if not all(isinstance(rel, str) and rel.startswith(f"{folder}/") for rel in entries):
        raise InvalidParameter(field, f"lists files outside {folder}/")
    return entries


def run_final(request: MergeRequest, settings: Settings) -> dict[str, Any]:
    """The master playlist, the HLS listing and the outputs directory over the rung
    tasks' results, and the media task's (:mod:`kinoit.stages.merge_media`; without
    one, the audio renditions and the storyboard are made here)."""
    from kinoit.media.merge import RungHls, audio_segment_seconds, package_audio, write_master
    from kinoit.store import open_store
    from kinoit.store.cid import CID
    from kinoit.store.directory import Entry, file_entry, put_tree

    failpoints.hit(settings.failpoints, "stage.merge.final")
    parts, media = request.rungs or {}, request.media
    store = open_store(settings)
    plan = read_plan(store, request.plan)
    if sorted(parts) != plan.rungs:
        raise InvalidParameter("rungs", f"expected one result per rung of the plan: {plan.rungs}")
    # Every output in the `kinoit run --out` layout: path -> (CID, bytes), or a directory.
    layout: dict[str, tuple[str, int]] = {}
    tree: dict[str, Entry] = {}
    listing: dict[str, Any] = {}
    with scratch_dir("merge", settings) as work:
        root = work / "hls"
        root.mkdir(parents=True)
        if media is not None:
            audio = list(media.audio)
            if media.audio_hls:
                listing.update(_listing(store, media.audio_hls, "audio", "media.audio_hls"))
            linked = (("hls/audio", media.audio_dir), ("thumbs", media.thumbs_dir))
            tree.update({rel: Entry(CID.parse(cid), size) for rel, (cid, size) in
                         ((r, d) for r, d in linked if d is not None)})  # fmt: skip
            boards = (
                ("storyboard.jpg", media.storyboard),
                ("storyboard.vtt", media.storyboard_vtt),
            )
            layout.update({rel: added for rel, added in boards if added is not None})
            storyboard = media.storyboard[0] if media.storyboard else None
            vtt = media.storyboard_vtt[0] if media.storyboard_vtt else None
        else:
            audio = []
            if plan.audio:
                audio_path = fetch(store, plan.audio, work / "audio.m4a")
                seconds = audio_segment_seconds(plan.fps, plan_frames(plan))
                audio = package_audio(audio_path, root, seconds, settings)
            storyboard, vtt = add_storyboard(store, plan, work, layout)
        variants = [
            RungHls(parts[r].peak, parts[r].average, parts[r].facts).variant(r, plan.fps, audio)
            for r in plan.rungs
        ]
        write_master(root, variants, audio)
        own = add_files(store, root)  # the master playlist (and the audio renditions)
        listing.update({rel: CID.parse(cid) for rel, (cid, _size) in own.items()})
        for rung in plan.rungs:
            listing.update(_listing(store, parts[rung].hls, rung, f"rungs.{rung}.hls"))
        hls = str(store.dag_put({"type": DIRECTORY_TYPE, "entries": dict(sorted(listing.items()))}))
        layout.update({f"hls/{rel}": added for rel, added in own.items()})
    tree.update({rel: file_entry(cid, size) for rel, (cid, size) in layout.items()})
    for rung in plan.rungs:
        tree[f"{rung}.mp4"] = file_entry(parts[rung].mp4, parts[rung].mp4_bytes)
        tree[f"hls/{rung}"] = Entry(CID.parse(parts[rung].hls_dir), parts[rung].hls_dir_size)
    return {
        "plan": request.plan,
        "mp4": {rung: parts[rung].mp4 for rung in plan.rungs},
        "hls": hls,
        "storyboard": storyboard,
        "storyboard_vtt": vtt,
        "directory": put_tree(store, tree),
        "frames": sum(plan_frames(plan)),
    }
