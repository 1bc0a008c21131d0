"""Watching a job while it encodes: EXT-X-PLAYLIST-TYPE:EVENT playlists of the
segments already transcoded and verified, served by orchestrate.

Routes (below ``/function/orchestrate``), no bearer header: the job-bound,
expiring token in the path is the capability (a path, not a query string, so the
playlists' relative URIs keep it)::

    GET /preview/<job>/<expires>/<token>/master.m3u8
    GET /preview/<job>/<expires>/<token>/video/<rung>/index.m3u8    and  .../<n>.ts
    GET /preview/<job>/<expires>/<token>/audio/index.m3u8           and  .../<n>.ts

A player may only play what has no hole before it, so the playlists list the
longest run of segments from segment 0 whose checksum matched (the re-run's
after a first mismatch), in order, and add EXT-X-ENDLIST once the job has ended.
The video segments are the MPEG-TS rendition segments as the stages stored
them (the bytes the final HLS references); the audio is the stereo rendition
split cut into the final HLS's segments (:func:`kinoit.documents.read_audio_hls`).
Matroska rungs (VP9, AV1) are packaged only by merge, so a preview lists the
H.264/HEVC rungs. An unknown job is 404; a token that does not match the job, or
has expired, is 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kinoit.documents import AudioHls, read_audio_hls, read_split_index
from kinoit.errors import Forbidden, NotFound
from kinoit.jobs import JobEngine, JobRecord, JobState, TaskInfo, TaskState
from kinoit.service.planning import AUDIO_TASK
from kinoit.stages.http import Reply

PREFIX = "/preview/"
# How long a preview URL works: longer than any job a viewer watches, short enough
# that a leaked link goes stale. Expiry is rounded up to the hour so that the URL a
# client polls stays the same for an hour (a player is not reloaded every poll).
TOKEN_SECONDS = 24 * 3600
TOKEN_ROUNDING_SECONDS = 3600
_TOKEN_LABEL = b"kinoit preview token v1"
_ROUTE = re.compile(
    r"^/preview/([0-9A-Z]{26})/([0-9]{1,12})/([A-Za-z0-9_-]{43})/"
    r"(master\.m3u8|audio/index\.m3u8|audio/([0-9]{5})\.ts|"
    r"video/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/(?:index\.m3u8|([0-9]{5})\.ts))$"
)
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
# Segment checks read per Redis round trip while finding the playable run.
SCAN_BATCH = 256
# Jobs whose split index and verified run are kept in memory (both only grow).
CACHED_JOBS = 64
# The states after which nothing more is added: the playlists end.
ENDED = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
# A rung's BANDWIDTH before any of its segments is measured, when the ladder caps none.
UNMEASURED_BANDWIDTH = 1_000_000
# What the playlists of a running job may be cached for: not at all (they grow).
PLAYLIST_CACHE = "no-cache"
SEGMENT_CACHE = "private, max-age=86400, immutable"


def _token_key(secret: bytes) -> bytes:
    """A key of its own, derived from the callback key, so a preview token never
    doubles as a callback token."""
    return hmac.new(secret, _TOKEN_LABEL, hashlib.sha256).digest()


def preview_token(secret: bytes, job_id: str, expires: int) -> str:
    """HMAC-SHA256 of (job, expiry), base64url without padding (43 characters)."""
    digest = hmac.digest(_token_key(secret), f"{job_id}\n{int(expires)}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_matches(secret: bytes, job_id: str, expires: int, token: str) -> bool:
    """Constant-time check of a preview token (expiry not checked here)."""
    expected = preview_token(secret, job_id, expires)
    return hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace"))


def expiry(now: float) -> int:
    """When a URL handed out at ``now`` stops working (pure)."""
    step = TOKEN_ROUNDING_SECONDS
    return int(math.ceil((now + TOKEN_SECONDS) / step) * step)


@dataclass(frozen=True)
class PlayableSegment:
    """A verified segment: its duration and, per rung, its rendition CID and bytes."""

    index: int
    duration: float
    renditions: Mapping[str, str]
    bytes: Mapping[str, int]


@dataclass(frozen=True)
class SplitFacts:
    """What the preview needs of a split: every segment's duration, the stereo audio."""

    durations: tuple[float, ...]
    audio: AudioHls | None
    width: int
    height: int
    fps: Fraction


@dataclass(frozen=True)
class Rendition:
    """One preview rung: its name, output size, and a bit rate to claim before measuring."""

    name: str
    width: int
    height: int
    fallback_bandwidth: int


def verified_result(
    first: tuple[TaskInfo | None, TaskInfo | None], rerun: tuple[TaskInfo | None, TaskInfo | None]
) -> Mapping[str, Any] | None:
    """The transcode result whose checksum matched, from (checksum, transcode) of the
    first run and of the re-run; None while neither has (pure)."""
    for check, transcode in (first, rerun):
        if check is None or check.state is not TaskState.DONE or not (check.result or {}).get("ok"):
            continue
        if transcode is not None and transcode.state is TaskState.DONE and transcode.result:
            return transcode.result
    return None


def ts_rungs(spec: Mapping[str, Any], width: int, height: int) -> list[Rendition]:
    """The rungs of the job's ladder whose segments are MPEG-TS, with their size (pure)."""
    from kinoit.media.ladder import load_ladder

    ladder = load_ladder(dict(spec.get("ladder") or {})).for_source(width, height)
    out = []
    for rung in ladder.rungs:
        if rung.container != "ts":
            continue
        w, h = rung.output_size(width, height)
        claimed = rung.maxrate or rung.bitrate or UNMEASURED_BANDWIDTH
        out.append(Rendition(rung.name, w, h, int(claimed)))
    return out


def audio_prefix(audio: AudioHls, seconds: float, ended: bool) -> int:
    """How many audio segments cover the first ``seconds`` of video (all once ended)
    (pure): those that start before it ends, so the audio never stops first."""
    if ended:
        return len(audio.segments)
    start, count = 0.0, 0
    for segment in audio.segments:
        if start >= seconds - 1e-6:
            break
        count += 1
        start += segment.duration
    return count


class Preview:
    """The preview routes and the ``preview`` field of a job's status."""

    def __init__(
        self,
        engine: JobEngine,
        store: Any,
        secret: bytes,
        base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.store = store
        self.secret = secret
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._lock = threading.Lock()
        self._splits: OrderedDict[str, SplitFacts] = OrderedDict()
        self._verified: OrderedDict[str, list[PlayableSegment]] = OrderedDict()

    # --------------------------------------------------------------- status
    def url(self, job_id: str) -> str:
        """The master playlist URL of ``job_id``, valid until :func:`expiry`."""
        expires = expiry(self.clock())
        token = preview_token(self.secret, job_id, expires)
        return f"{self.base_url}{PREFIX}{job_id}/{expires}/{token}/master.m3u8"

    def status_fields(self, record: JobRecord) -> dict[str, Any]:
        """``{"preview": {"hls", "segments"}}`` for a running job (and a completed one
        that was split here), where some rung can be previewed; else nothing."""
        if record.state not in (JobState.RUNNING, JobState.COMPLETED):
            return {}
        found = self.playable(record.job_id)
        if found is None or not ts_rungs(record.spec, found[0].width, found[0].height):
            return {}
        return {"preview": {"hls": self.url(record.job_id), "segments": len(found[1])}}

    # ------------------------------------------------------- playable segments
    def playable(self, job_id: str) -> tuple[SplitFacts, list[PlayableSegment]] | None:
        """The split's facts and the verified run of segments from 0; None before the
        split is done (or for a job that had none: answered from the result cache)."""
        try:
            split = self.engine.task(job_id, "split")
        except NotFound:
            return None
        if split.state is not TaskState.DONE or not split.result:
            return None
        facts = self._split_facts(job_id, split.result)
        if facts is None:
            return None
        with self._lock:
            known = list(self._verified.get(job_id, []))
        found = self._scan(job_id, facts, len(known))
        if found:
            with self._lock:
                known = self._verified.setdefault(job_id, known)
                if len(known) == found[0].index:  # another request may have scanned too
                    known.extend(found)
                self._verified.move_to_end(job_id)
                while len(self._verified) > CACHED_JOBS:
                    self._verified.popitem(last=False)
                known = list(known)
        return facts, known

    def _split_facts(self, job_id: str, result: Mapping[str, Any]) -> SplitFacts | None:
        """The facts of the first split task's result; None while a split in ranges
        has not encoded its audio yet (a preview without its sound track would be
        another preview once the audio arrives)."""
        index = str(result["index"])
        audio_index: str | None = index
        key = index
        if result.get("ranges") or result.get("direct"):
            audio_index = None
            if result.get("audio_part"):
                audio = self.engine.task(job_id, AUDIO_TASK)
                if audio.state is not TaskState.DONE or not audio.result:
                    return None
                audio_index = str(audio.result["index"])
            # a plan's index lists no segments: the same for other segment lengths
            key = f"{index} {result.get('segment_frames')} {result.get('segments')} {audio_index}"
        with self._lock:
            cached = self._splits.get(key)
        if cached is not None:
            return cached
        source = result.get("source") or {}
        fps = Fraction(str(source.get("fps", "25")))
        if result.get("ranges") or result.get(
            "direct"
        ):  # every segment but the last has segment_frames frames
            count, k = int(result["segments"]), int(result["segment_frames"])
            frames = [k] * (count - 1) + [int(source["frames"]) - k * (count - 1)]
        else:
            frames = [s.frames for s in read_split_index(self.store, index)]
        facts = SplitFacts(
            durations=tuple(float(Fraction(n) / fps) for n in frames),
            audio=read_audio_hls(self.store, audio_index) if audio_index else None,
            width=int(source.get("width") or 0),
            height=int(source.get("height") or 0),
            fps=fps,
        )
        with self._lock:
            self._splits[key] = facts
            while len(self._splits) > CACHED_JOBS:
                self._splits.popitem(last=False)
        return facts

    def _scan(self, job_id: str, facts: SplitFacts, start: int) -> list[PlayableSegment]:
        """Verified segments from ``start`` on, up to the first that is not (yet)."""
        found: list[PlayableSegment] = []
        total = len(facts.durations)
        for first in range(start, total, SCAN_BATCH):
            batch = range(first, min(first + SCAN_BATCH, total))
            ids = [
                f"{stage}.{i}{suffix}"
                for i in batch
                for suffix in ("", ".r2")
                for stage in ("checksum", "transcode")
            ]
            infos = self.engine.tasks(job_id, ids)
            for offset, i in enumerate(batch):
                c1, t1, c2, t2 = infos[4 * offset : 4 * offset + 4]
                result = verified_result((c1, t1), (c2, t2))
                if result is None:
                    return found
                found.append(
                    PlayableSegment(
                        index=i,
                        duration=facts.durations[i],
                        renditions={k: str(v) for k, v in dict(result["renditions"]).items()},
                        bytes={k: int(v) for k, v in dict(result.get("bytes") or {}).items()},
                    )
                )
        return found

    # --------------------------------------------------------------- routes
    def handle(self, method: str, path: str) -> Reply:
        """Answer one preview request (GET or HEAD)."""
        match = _ROUTE.match(path)
        if match is None or method not in ("GET", "HEAD"):
            raise NotFound(f"no route {method} {path}")
        job_id, expires, token, what = match.group(1, 2, 3, 4)
        record = self.engine.get_job(job_id)  # NotFound: 404
        if not token_matches(self.secret, job_id, int(expires), token):
            raise Forbidden("the preview token does not match this job")
        if int(expires) < self.clock():
            raise Forbidden("the preview token has expired")
        found = self.playable(job_id)
        if found is None:
            found = (SplitFacts((), None, 0, 0, Fraction(25)), [])
        facts, segments = found
        ended = record.state in ENDED
        rungs = ts_rungs(record.spec, facts.width, facts.height) if facts.durations else []
        if what == "master.m3u8":
            return _playlist(self._master(facts, segments, rungs, ended))
        if what == "audio/index.m3u8":
            return _playlist(self._audio_playlist(facts, segments, ended))
        audio_n, rung, video_n = match.group(5, 6, 7)
        if audio_n is not None:
            return self._audio_segment(facts, segments, int(audio_n), ended)
        if rung not in {r.name for r in rungs}:
            raise NotFound(f"no previewed rung {rung!r} in job {job_id}")
        # a rung's run ends where a segment lacks its rendition (no hole in the playlist)
        listed = list(itertools.takewhile(lambda s: rung in s.renditions, segments))
        if video_n is None:
            entries = [(f"{s.index:05d}.ts", s.duration) for s in listed]
            target = _target(facts.durations)
            return _playlist(_media(entries, target, ended))
        n = int(video_n)
        if n >= len(listed):
            raise NotFound(f"segment {n} of {job_id} is not verified yet")
        return _segment(self.store, listed[n].renditions[rung])

    def _master(
        self,
        facts: SplitFacts,
        segments: Sequence[PlayableSegment],
        rungs: Sequence[Rendition],
        ended: bool,
    ) -> str:
        from kinoit.media.playlists import (
            AudioRendition,
            AudioTrack,
            HlsVariant,
            average_bitrate,
            master_playlist,
            peak_segment_bitrate,
        )

        audio: list[AudioRendition] = []
        if facts.audio is not None:
            listed = facts.audio.segments[
                : audio_prefix(facts.audio, sum(s.duration for s in segments), ended)
            ]
            sizes = [s.bytes for s in listed] or [s.bytes for s in facts.audio.segments[:1]]
            durations = [s.duration for s in listed] or [
                s.duration for s in facts.audio.segments[:1]
            ]
            track = AudioTrack(0, "aac", facts.audio.channels, facts.audio.language)
            audio.append(
                AudioRendition(
                    track, "audio/index.m3u8", peak_segment_bitrate(sizes, durations),
                    average_bitrate(sizes, durations),
                )
            )  # fmt: skip
        audio_peak = max((r.peak for r in audio), default=0.0)
        audio_average = max((r.average for r in audio), default=0.0)
        variants = []
        for rung in rungs:
            measured = [(s.bytes[rung.name], s.duration) for s in segments if rung.name in s.bytes]
            if measured:
                sizes, durations = [m[0] for m in measured], [m[1] for m in measured]
                peak = peak_segment_bitrate(sizes, durations)
                average = average_bitrate(sizes, durations)
            else:
                peak = average = float(rung.fallback_bandwidth)
            variants.append(
                HlsVariant(
                    rung=rung.name, uri=f"video/{rung.name}/index.m3u8",
                    bandwidth=math.ceil(peak + audio_peak),
                    average_bandwidth=math.ceil(average + audio_average),
                    width=rung.width, height=rung.height, codecs="", frame_rate=facts.fps,
                )
            )  # fmt: skip
        if not variants:
            raise NotFound("this job has no rung a preview can play (MPEG-TS: H.264, HEVC)")
        return master_playlist(variants, audio)

    def _audio_playlist(
        self, facts: SplitFacts, segments: Sequence[PlayableSegment], ended: bool
    ) -> str:
        if facts.audio is None:
            raise NotFound("this job has no audio")
        count = audio_prefix(facts.audio, sum(s.duration for s in segments), ended)
        listed = facts.audio.segments[:count]
        entries = [(f"{i:05d}.ts", s.duration) for i, s in enumerate(listed)]
        return _media(entries, _target([s.duration for s in facts.audio.segments]), ended)

    def _audio_segment(
        self, facts: SplitFacts, segments: Sequence[PlayableSegment], n: int, ended: bool
    ) -> Reply:
        if facts.audio is None:
            raise NotFound("this job has no audio")
        count = audio_prefix(facts.audio, sum(s.duration for s in segments), ended)
        if n >= count:
            raise NotFound(f"audio segment {n} is not listed yet")
        return _segment(self.store, facts.audio.segments[n].cid)


def _target(durations: Sequence[float]) -> int:
    from kinoit.media.playlists import target_duration

    return target_duration(durations)


def _media(entries: list[tuple[str, float]], target: int, ended: bool) -> str:
    from kinoit.media.playlists import media_playlist

    return media_playlist(entries, event=True, ended=ended, target=target)


def _headers(content_type: str, cache: str) -> dict[str, str]:
    # A CID-like capability: any page may play it, as from an IPFS gateway.
    return {
        "Content-Type": content_type,
        "Cache-Control": cache,
        "Access-Control-Allow-Origin": "*",
    }


def _playlist(text: str) -> Reply:
    return text, 200, _headers(PLAYLIST_TYPE, PLAYLIST_CACHE)


def _segment(store: Any, cid: str) -> Reply:
    return b"".join(store.cat(cid)), 200, _headers(SEGMENT_TYPE, SEGMENT_CACHE)
