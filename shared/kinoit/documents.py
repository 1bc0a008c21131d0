"""The DAG-CBOR documents the stages and orchestrate pass to each other by CID.

- the split index (written by ``split``): the source's facts, its audio, and the
  segments in pages::

      {"source": {...}, "audio": CID | None, "count": n, "pages": [CID, ...],
       "audio_hls": {"language", "channels", "pages": [CID, ...]}}   # when there is audio
      page: [{"index", "cid": CID, "start_frame", "end_frame"}, ...]
      audio_hls page: [{"cid": CID, "duration": seconds, "bytes"}, ...]

  ``audio_hls`` is the stereo track already cut into the MPEG-TS segments of the
  final HLS (the same bytes, so the same CIDs), for the preview while the job runs.

- the merge plan (written by orchestrate, read by ``merge``): what to merge, and
  the manifest's segment entries in pages::

      {"source": {...}, "audio": CID | None, "segment_seconds": "1",
       "ladder": {...}, "pages": [CID, ...]}

- the manifest (:mod:`kinoit.manifest`), whose segments of a long video are pages too.

One paged-list writer and reader serve all three: a list is stored as blocks of
at most ``page_size`` entries, in order, so no block outgrows the 1 MiB that Kubo
accepts however long the video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kinoit.errors import InvalidParameter

# Segment entries per page of the merge plan and of a long manifest: an entry with
# its per-frame hashes is under 1 KB, so a page stays well under Kubo's 1 MiB block cap.
PAGE_SIZE = 512
# Split index entries are four small fields each: twice as many fit in a page.
INDEX_PAGE_SIZE = 1024


class DagStore(Protocol):
    """The part of a store the documents need."""

    def dag_put(self, value: Any, *, pin: bool = False) -> str: ...
    def dag_get(self, cid: str) -> Any: ...


def link(cid: str) -> Any:
    """A DAG-CBOR link to ``cid``."""
    from kinoit.store.cid import CID

    return CID.parse(cid)


def write_pages(store: DagStore, entries: Sequence[Any], page_size: int) -> list[Any]:
    """Store ``entries`` as pages of at most ``page_size``, in order; links to them."""
    return [
        link(store.dag_put(list(entries[i : i + page_size])))
        for i in range(0, len(entries), page_size)
    ]


def read_pages(
    store: DagStore, pages: Iterable[Any], field: str = "pages", entry_type: type = object
) -> Iterator[Any]:
    """Every entry of the pages ``pages`` links, in order; InvalidParameter naming
    ``field[n]`` when page ``n`` is not a list of ``entry_type``."""
    for number, page in enumerate(pages):
        try:
            items = store.dag_get(str(page))
        except InvalidParameter:  # e.g. a raw block's CID
            items = None
        if not isinstance(items, list) or not all(isinstance(e, entry_type) for e in items):
            raise InvalidParameter(f"{field}[{number}]", "expected a list of entries")
        yield from items


@dataclass(frozen=True)
class SegmentRef:
    """One segment of the split index."""

    index: int
    cid: str
    start_frame: int
    end_frame: int
    signature: str | None = None  # the verifier's signature of the segment (split writes it)

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    def to_dag(self) -> dict[str, Any]:
        entry = {
            "index": self.index,
            "cid": link(self.cid),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
        }
        if self.signature is not None:
            entry["signature"] = link(self.signature)
        return entry

    @classmethod
    def from_dag(cls, entry: Mapping[str, Any]) -> SegmentRef:
        return cls(
            index=int(entry["index"]),
            cid=str(entry["cid"]),
            start_frame=int(entry["start_frame"]),
            end_frame=int(entry["end_frame"]),
            signature=str(entry["signature"]) if entry.get("signature") else None,
        )


@dataclass(frozen=True)
class AudioSegmentRef:
    """One segment of the stereo audio rendition, as the split index lists it."""

    cid: str
    duration: float
    bytes: int

    def to_dag(self) -> dict[str, Any]:
        return {"cid": link(self.cid), "duration": float(self.duration), "bytes": self.bytes}

    @classmethod
    def from_dag(cls, entry: Mapping[str, Any]) -> AudioSegmentRef:
        return cls(str(entry["cid"]), float(entry["duration"]), int(entry["bytes"]))


@dataclass(frozen=True)
class AudioHls:
    """The stereo audio rendition of a split: its language (RFC 5646), channels, segments."""

    language: str
    channels: int
    segments: tuple[AudioSegmentRef, ...]


def write_split_index(
    store: DagStore,
    segments: Sequence[SegmentRef],
    source: Mapping[str, Any],
    audio: str | None,
    audio_hls: AudioHls | None = None,
) -> str:
    """Store the split index of ``segments``; its CID."""
    index: dict[str, Any] = {
        "source": dict(source),
        "audio": link(audio) if audio else None,
        "count": len(segments),
        "pages": write_pages(store, [s.to_dag() for s in segments], INDEX_PAGE_SIZE),
    }
    if audio_hls is not None:
        entries = [s.to_dag() for s in audio_hls.segments]
        index["audio_hls"] = {
            "language": audio_hls.language,
            "channels": audio_hls.channels,
            "pages": write_pages(store, entries, INDEX_PAGE_SIZE),
        }
    return store.dag_put(index)


def read_audio_hls(store: DagStore, index_cid: str) -> AudioHls | None:
    """The stereo audio rendition a split index lists; None when it lists none (no
    audio, or an index written before splits cut it)."""
    index = store.dag_get(index_cid)
    doc = index.get("audio_hls") if isinstance(index, dict) else None
    if not isinstance(doc, dict) or not isinstance(doc.get("pages"), list):
        return None
    try:
        segments = tuple(AudioSegmentRef.from_dag(e) for e in read_pages(store, doc["pages"]))
        return AudioHls(str(doc["language"]), int(doc["channels"]), segments)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidParameter("index", f"{index_cid}: malformed audio_hls") from None


def read_split_index(store: DagStore, index_cid: str) -> Iterator[SegmentRef]:
    """The segments of a split index, in order."""
    index = store.dag_get(index_cid)
    pages = index.get("pages") if isinstance(index, dict) else None
    if not isinstance(pages, list):
        raise InvalidParameter("index", f"{index_cid} is not a split index (no pages)")
    for entry in read_pages(store, pages, "index.pages", Mapping):
        try:
            yield SegmentRef.from_dag(entry)
        except (KeyError, TypeError, ValueError, AttributeError):
            # a split result naming a document that is not an index: that task fails
            raise InvalidParameter("index", f"{index_cid}: malformed segment entry") from None


@dataclass(frozen=True)
class MergePlan:
    """What ``merge`` merges: the source facts, audio, ladder and the segment entries
    (the manifest's, in pages)."""

    source: Mapping[str, Any]
    audio: str | None
    segment_seconds: Any
    ladder: Mapping[str, Any]
    pages: list[Any]

    def to_dag(self) -> dict[str, Any]:
        return {
            "source": dict(self.source),
            "audio": link(self.audio) if self.audio else None,
            "segment_seconds": self.segment_seconds,
            "ladder": dict(self.ladder),
            "pages": list(self.pages),
        }

    @classmethod
    def from_dag(cls, plan: Mapping[str, Any]) -> MergePlan:
        audio = plan.get("audio")
        return cls(
            source=dict(plan.get("source") or {}),
            audio=str(audio) if audio else None,
            segment_seconds=plan.get("segment_seconds"),
            ladder=dict(plan.get("ladder") or {}),
            pages=list(plan.get("pages") or []),
        )


def write_merge_plan(
    store: DagStore,
    entries: Sequence[Mapping[str, Any]],
    source: Mapping[str, Any],
    audio: str | None,
    segment_seconds: Any,
    ladder: Mapping[str, Any],
) -> str:
    """Store a merge plan for the manifest segment ``entries`` (in order); its CID."""
    pages = write_pages(store, list(entries), PAGE_SIZE)
    return store.dag_put(MergePlan(source, audio, segment_seconds, ladder, pages).to_dag())
