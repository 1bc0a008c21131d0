"""merge's media part: the outputs that need no rung, made beside the rung tasks.

The task ``{"plan": CID, "part": "media"}`` cuts the audio file's tracks into the
HLS audio renditions (``hls/audio/<name>/``) and tiles the storyboard over the
thumbnails, stores them, and answers what the final task links and lists::

    {"plan", "part": "media",
     "audio_renditions": [{"index", "codec", "channels", "language", "uri",
                           "peak", "average"}, ...],   # bit rates as repr strings
     "audio_hls": CID | None,  "audio_dir": CID | None, "audio_dir_size",
     "thumbs_dir": CID | None, "thumbs_dir_size",
     "storyboard": CID | None, "storyboard_bytes", "storyboard_vtt": CID | None,
     "storyboard_vtt_bytes"}

``audio_hls`` is a listing of the ``audio/…`` files (the HLS listing's entries),
``audio_dir`` and ``thumbs_dir`` the UnixFS directories ``hls/audio`` and ``thumbs``
of the outputs directory with their cumulative sizes. Nothing here depends on a rung,
so the final task, which needs every rung, is left the master playlist and the
directories: less of the merge runs after the last rung.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.errors import InvalidParameter
from kinoit.media.playlists import AudioRendition, AudioTrack
from kinoit.stages.common import fetch, require_cid, require_count, require_rate
from kinoit.stages.merge import DIRECTORY_TYPE, MergeRequest, add_files, read_plan
from kinoit.stages.scratch import scratch_dir

MEDIA_PART = "media"
# The fields of the media task's result that its final task is given.
MEDIA_FIELDS = (
    "audio_renditions", "audio_hls", "audio_dir", "audio_dir_size", "thumbs_dir",
    "thumbs_dir_size", "storyboard", "storyboard_bytes", "storyboard_vtt",
    "storyboard_vtt_bytes",
)  # fmt: skip


@dataclass(frozen=True)
class MediaPart:
    """What the final task is told of the media part (CIDs, sizes, the audio's rates)."""

    audio: tuple[AudioRendition, ...]
    audio_hls: str | None
    audio_dir: tuple[str, int] | None  # CID, cumulative size
    thumbs_dir: tuple[str, int] | None
    storyboard: tuple[str, int] | None  # CID, bytes
    storyboard_vtt: tuple[str, int] | None


def _linked(raw: Mapping[str, Any], key: str, size: str) -> tuple[str, int] | None:
    if raw.get(key) is None:
        return None
    return require_cid(raw, key), require_count(raw, size, "media")


def _rendition(raw: Any, where: str) -> AudioRendition:
    if not isinstance(raw, dict):
        raise InvalidParameter(where, "expected an audio rendition")
    index, channels = raw.get("index"), raw.get("channels")
    texts = [raw.get(k) for k in ("codec", "language", "uri")]
    if not all(isinstance(t, str) and 0 < len(t) <= 64 for t in texts):
        raise InvalidParameter(where, "expected codec, language and uri strings")
    for name, value in (("index", index), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 64:
            raise InvalidParameter(f"{where}.{name}", "expected a small integer")
    codec, language, uri = (str(t) for t in texts)
    track = AudioTrack(index=int(str(index)), codec=codec, channels=int(str(channels)),
                       language=language)  # fmt: skip
    peak, average = require_rate(raw, "peak", where), require_rate(raw, "average", where)
    return AudioRendition(track, uri, peak, average)


def parse_media(raw: Any) -> MediaPart:
    """A final request's ``media``: the media task's result (InvalidParameter naming
    the field)."""
    if not isinstance(raw, dict):
        raise InvalidParameter("media", "expected the media task's result")
    renditions = raw.get("audio_renditions")
    if not isinstance(renditions, list) or len(renditions) > 16:
        raise InvalidParameter("media.audio_renditions", "expected a list of audio renditions")
    return MediaPart(
        audio=tuple(
            _rendition(r, f"media.audio_renditions[{i}]") for i, r in enumerate(renditions)
        ),
        audio_hls=require_cid(raw, "audio_hls") if raw.get("audio_hls") is not None else None,
        audio_dir=_linked(raw, "audio_dir", "audio_dir_size"),
        thumbs_dir=_linked(raw, "thumbs_dir", "thumbs_dir_size"),
        storyboard=_linked(raw, "storyboard", "storyboard_bytes"),
        storyboard_vtt=_linked(raw, "storyboard_vtt", "storyboard_vtt_bytes"),
    )


def _subtree(store: Any, files: Mapping[str, tuple[str, int]], prefix: str) -> tuple[str, int]:
    """The UnixFS directory of the files under ``prefix`` (stored); its CID and size."""
    from kinoit.store.directory import file_entry, put_tree_entry

    entry = put_tree_entry(
        store, {rel[len(prefix) :]: file_entry(cid, size) for rel, (cid, size) in files.items()}
    )
    return str(entry.cid), entry.tsize


def run_media(request: MergeRequest, settings: Settings) -> dict[str, Any]:
    """The audio renditions and the storyboard of a merge plan, stored."""
    from kinoit.media.merge import audio_segment_seconds, package_audio
    from kinoit.stages.merge_parts import add_storyboard, plan_frames
    from kinoit.store import open_store
    from kinoit.store.cid import CID

    failpoints.hit(settings.failpoints, "stage.merge.media")
    store = open_store(settings)
    plan = read_plan(store, request.plan)
    result: dict[str, Any] = {"plan": request.plan, "part": MEDIA_PART, "audio_renditions": []}
    result.update(dict.fromkeys(MEDIA_FIELDS[1:]))
    with scratch_dir("merge", settings) as work:
        if plan.audio:
            audio_path = fetch(store, plan.audio, work / "audio.m4a")
            seconds = audio_segment_seconds(plan.fps, plan_frames(plan))
            audio = package_audio(audio_path, work / "hls", seconds, settings)
            files = add_files(store, work / "hls")  # audio/<name>/…
            listing = {rel: cid for rel, (cid, _size) in sorted(files.items())}
            from kinoit.store.cid import CID

            result["audio_hls"] = str(
                store.dag_put(
                    {
                        "type": DIRECTORY_TYPE,
                        "entries": {k: CID.parse(v) for k, v in listing.items()},
                    }
                )
            )
            result["audio_dir"], result["audio_dir_size"] = _subtree(store, files, "audio/")
            result["audio_renditions"] = [
                {"index": r.track.index, "codec": r.track.codec, "channels": r.track.channels,
                 "language": r.track.language, "uri": r.uri, "peak": repr(r.peak),
                 "average": repr(r.average)}
                for r in audio
            ]  # fmt: skip
        layout: dict[str, tuple[str, int]] = {}
        storyboard, vtt = add_storyboard(store, plan, work, layout)
        thumbs = {rel: added for rel, added in layout.items() if rel.startswith("thumbs/")}
        if thumbs:
            result["thumbs_dir"], result["thumbs_dir_size"] = _subtree(store, thumbs, "thumbs/")
        if storyboard and vtt:
            result["storyboard"], result["storyboard_bytes"] = layout["storyboard.jpg"]
            result["storyboard_vtt"], result["storyboard_vtt_bytes"] = layout["storyboard.vtt"]
    return result
