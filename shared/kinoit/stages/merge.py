"""merge stage: a merge plan CID -> per-rung MP4 CIDs, an HLS directory and a storyboard.

The plan is a DAG-CBOR document written by orchestrate::

    {"source": {"fps", "frames", ...}, "audio": CID | None, "ladder": {...},
     "segment_seconds": "1", "pages": [CID, ...]}   # pages: lists of manifest segment entries

The HLS tree is stored file by file and described by a DAG-CBOR listing
``{"type": "kinoit/directory", "entries": {"master.m3u8": CID, "<rung>/index.m3u8": CID, ...}}``.
Every output also goes into one UnixFS directory (``directory``) in the layout
``kinoit run --out`` writes — ``<rung>.mp4``, ``hls/…``, ``thumbs/<index>.jpg``,
``storyboard.jpg``, ``storyboard.vtt`` — linking the files' own blocks (a TS
segment of a playlist is the rendition segment itself), so any IPFS gateway
serves ``/ipfs/<directory>/hls/master.m3u8``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.documents import read_pages
from kinoit.errors import InvalidParameter, KinoitError
from kinoit.names import check_name
from kinoit.stages.common import fetch, require_cid, require_count
from kinoit.stages.scratch import scratch_dir

if TYPE_CHECKING:
    from kinoit.media.ladder import Ladder
    from kinoit.stages.merge_media import MediaPart
    from kinoit.stages.merge_parts import RungPart

DIRECTORY_TYPE = "kinoit/directory"


@dataclass(frozen=True)
class MergeRequest:
    """``{"plan": CID}`` (the whole merge in one task), ``{"plan", "rung": name}`` (one
    rung's part) or ``{"plan", "rungs": {name: part}}`` (the final task): see
    :mod:`kinoit.stages.merge_parts`."""

    plan: str
    rung: str | None = None
    rungs: dict[str, RungPart] | None = None
    part: str | None = None  # "media": the audio renditions and the storyboard
    media: MediaPart | None = None  # the final task's: the media task's result


def parse_request(body: dict[str, Any]) -> MergeRequest:
    """Validate a merge request."""
    from kinoit.stages.merge_media import MEDIA_PART, parse_media
    from kinoit.stages.merge_parts import parse_parts

    plan = require_cid(body, "plan")
    given = [k for k in ("rung", "rungs", "part") if body.get(k) is not None]
    if len(given) > 1:
        raise InvalidParameter(given[1], "a merge task is one rung's, the media part or the final")
    if body.get("rung") is not None:
        return MergeRequest(plan, rung=check_name(body["rung"], "rung"))
    if body.get("part") is not None:
        if body["part"] != MEDIA_PART:
            raise InvalidParameter("part", f"expected {MEDIA_PART!r}")
        return MergeRequest(plan, part=MEDIA_PART)
    if body.get("rungs") is not None:
        media = parse_media(body["media"]) if body.get("media") is not None else None
        return MergeRequest(plan, rungs=parse_parts(body["rungs"]), media=media)
    if body.get("media") is not None:
        raise InvalidParameter("media", "only the final task (with rungs) is given the media")
    return MergeRequest(plan)


@dataclass(frozen=True)
class Plan:
    """A merge plan read from the store and checked: what ``run`` needs, typed."""

    ladder: Ladder
    fps: Fraction
    audio: str | None
    entries: list[dict[str, Any]]
    rungs: list[str]


def _is_cid(value: Any) -> bool:
    from kinoit.store.cid import CID

    if isinstance(value, CID):
        return True
    if not isinstance(value, str):
        return False
    try:
        CID.parse(value)
    except KinoitError:
        return False
    return True


def _check_entry(entry: Mapping[str, Any], where: str, names: set[str]) -> list[str]:
    """One segment entry's checks; its rung names, sorted."""
    at = f"plan.{where}"
    require_count(entry, "index", at, 2**40)
    if require_count(entry, "end_frame", at, 2**40) <= require_count(
        entry, "start_frame", at, 2**40
    ):
        raise InvalidParameter(f"plan.{where}.end_frame", "must be after start_frame")
    renditions = entry.get("renditions")
    if not isinstance(renditions, dict) or not renditions:
        raise InvalidParameter(f"plan.{where}.renditions", "expected {rung: CID}")
    for name, cid in renditions.items():
        check_name(name, f"plan.{where}.renditions")
        if name not in names or not _is_cid(cid):
            raise InvalidParameter(
                f"plan.{where}.renditions", f"{name!r}: not a ladder rung with a CID"
            )
    if entry.get("thumbnail") is not None and not _is_cid(entry["thumbnail"]):
        raise InvalidParameter(f"plan.{where}.thumbnail", "expected a CID")
    return sorted(renditions)


def read_plan(store: Any, plan_cid: str) -> Plan:
    """The merge plan ``plan_cid`` with every field the merge reads checked; a document
    that is not a plan is InvalidParameter naming the field (400, not retried)."""
    from kinoit.media.ladder import load_ladder

    try:
        doc = store.dag_get(plan_cid)
    except InvalidParameter as exc:  # e.g. a raw file's CID
        raise InvalidParameter("plan", exc.message) from None
    if not isinstance(doc, dict):
        raise InvalidParameter("plan", "not a merge plan (expected a DAG-CBOR map)")
    raw_ladder = doc.get("ladder")
    if not isinstance(raw_ladder, dict):
        raise InvalidParameter("plan.ladder", "expected a ladder map")
    try:
        ladder = load_ladder(raw_ladder)
    except InvalidParameter as exc:
        raise InvalidParameter(f"plan.{exc.field}", exc.message) from None
    source = doc.get("source")
    try:
        fps = Fraction(str(source.get("fps"))) if isinstance(source, dict) else Fraction(0)
    except (ValueError, ZeroDivisionError):
        fps = Fraction(0)
    if fps <= 0:
        raise InvalidParameter("plan.source.fps", "expected a positive frame rate")
    audio = doc.get("audio")
    if audio is not None and not _is_cid(audio):
        raise InvalidParameter("plan.audio", "expected a CID or null")
    pages = doc.get("pages")
    if not isinstance(pages, list) or not pages or not all(_is_cid(p) for p in pages):
        raise InvalidParameter("plan.pages", "expected a non-empty list of page CIDs")
    entries: list[dict[str, Any]] = list(read_pages(store, pages, "plan.pages", dict))
    if not entries:
        raise InvalidParameter("plan", "the plan has no segments")
    names = {r.name for r in ladder.rungs}
    rungs = _check_entry(entries[0], "segments[0]", names)
    for position, entry in enumerate(entries[1:], start=1):
        if _check_entry(entry, f"segments[{position}]", names) != rungs:
            raise InvalidParameter(
                f"plan.segments[{position}].renditions", "not the rungs of segment 0"
            )
    entries.sort(key=lambda e: int(e["index"]))
    return Plan(ladder, fps, str(audio) if audio else None, entries, rungs)


def verified_by_checksum(entries: list[dict[str, Any]], rung: str) -> bool:
    """True when the checksum stage decoded every segment of ``rung`` and found it right:
    a "match" verdict on each, and each frame count it reports (when it reports one)
    equal to the segment's (pure)."""
    for entry in entries:
        checked = ((entry.get("checksum") or {}).get("rungs") or {}).get(rung) or {}
        if checked.get("verdict") != "match":
            return False
        frames = checked.get("frames")
        if frames is not None and int(frames) != int(entry["end_frame"]) - int(
            entry["start_frame"]
        ):
            return False
    return True


def add_files(
    store: Any, root: Path, known: Mapping[tuple[int, int], str] | None = None
) -> dict[str, tuple[str, int]]:
    """Add every file under ``root`` (unpinned); their relative paths -> (CID, bytes).

    A file that is a link to one fetched from the store (``known``: (device, inode) ->
    its CID; the HLS segments are links to the renditions) is not read and hashed
    again: on a 60-s 1080p job that re-hashing was a third of merge's CPU."""
    added = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            cid = (known or {}).get((stat.st_dev, stat.st_ino))
            added[path.relative_to(root).as_posix()] = (
                cid if cid is not None else store.add(path, pin=False),
                stat.st_size,
            )
    return added


def fetched_files(paths: Mapping[str, list[Path]], cids: Mapping[str, list[str]]) -> dict[
    tuple[int, int], str
]:  # fmt: skip
    """(device, inode) -> CID of every fetched rendition file, for :func:`add_files`."""
    known = {}
    for rung, files in paths.items():
        for path, cid in zip(files, cids[rung], strict=True):
            stat = path.stat()
            known[(stat.st_dev, stat.st_ino)] = cid
    return known


def store_directory(
    store: Any, root: Path, added: Mapping[str, tuple[str, int]] | None = None
) -> str:
    """Add every file under ``root`` (unless ``added`` already did) and return the CID
    of a DAG-CBOR listing."""
    from kinoit.store.cid import CID

    added = add_files(store, root) if added is None else added
    files = {rel: CID.parse(cid) for rel, (cid, _size) in sorted(added.items())}
    return str(store.dag_put({"type": DIRECTORY_TYPE, "entries": files}))


def store_outputs_directory(store: Any, files: Mapping[str, tuple[str, int]]) -> str:
    """The job's one UnixFS directory over ``files`` (path in the ``kinoit run --out``
    layout -> stored file's CID and bytes): the CID ``ipfs add -r --cid-version=1`` gives
    that folder."""
    from kinoit.store.directory import file_entry, put_tree

    return put_tree(store, {rel: file_entry(cid, size) for rel, (cid, size) in files.items()})


def run(request: MergeRequest, settings: Settings) -> dict[str, Any]:
    """Fetch every rendition, merge each rung with the audio, package HLS, tile a storyboard
    (a rung's part or the final task's when the request names one)."""
    from kinoit.media.merge import merge_rung, package_hls, probe_facts
    from kinoit.stages.merge_media import run_media
    from kinoit.stages.merge_parts import add_storyboard, run_final, run_rung
    from kinoit.store import open_store

    failpoints.hit(settings.failpoints, "stage.merge")
    if request.rung is not None:
        return run_rung(request, settings)
    if request.rungs is not None:
        return run_final(request, settings)
    if request.part is not None:
        return run_media(request, settings)
    store = open_store(settings)
    plan = read_plan(store, request.plan)
    entries, ladder, fps, rungs = plan.entries, plan.ladder, plan.fps, plan.rungs
    frames = [int(e["end_frame"]) - int(e["start_frame"]) for e in entries]
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
        # Every output file in the `kinoit run --out` layout: path -> (CID, bytes).
        layout: dict[str, tuple[str, int]] = {}
        # One ffprobe per rung: merge_rung and package_hls share what it found.
        facts = {rung: probe_facts(paths[rung][0], settings) for rung in rungs}
        for rung in rungs:
            merged = merge_rung(
                paths[rung], audio, work / "mp4" / f"{rung}.mp4", fps=fps,
                segment_frames=frames, facts=facts[rung],
                # Every frame was decoded and checked by the checksum stage: count, do not decode.
                decode_check=not verified_by_checksum(entries, rung), settings=settings,
            )  # fmt: skip
            mp4[rung] = store.add(merged.path, pin=False)
            layout[f"{rung}.mp4"] = (mp4[rung], merged.path.stat().st_size)
        package_hls(
            paths, work / "hls", fps=fps, segment_frames=frames, audio_path=audio,
            facts=facts, settings=settings,
        )  # fmt: skip
        cids = {rung: [str(e["renditions"][rung]) for e in entries] for rung in rungs}
        hls_files = add_files(store, work / "hls", fetched_files(paths, cids))
        hls = store_directory(store, work / "hls", hls_files)
        layout.update({f"hls/{rel}": added for rel, added in hls_files.items()})
        storyboard, vtt = add_storyboard(store, plan, work, layout)
        directory = store_outputs_directory(store, layout)
    return {
        "plan": request.plan,
        "mp4": mp4,
        "hls": hls,
        "storyboard": storyboard,
        "storyboard_vtt": vtt,
        "directory": directory,
        "frames": sum(frames),
    }
