"""HLS playlists as text (RFC 8216), pure: the master and media playlists merge and
the preview write, codec strings, bit rates from segment sizes, audio rendition
names and languages, and a reader of the URIs a playlist references.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources

from kinoit.errors import InvalidParameter

HLS_DIR = "hls"
MASTER_PLAYLIST = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
AUDIO_GROUP = "audio"
AUDIO_DIR = "audio"
AAC_LC = "mp4a.40.2"
# The language of an audio rendition without a usable tag (RFC 5646: undetermined).
UNDETERMINED = "und"
_LANGUAGE = re.compile(r"([A-Za-z]{2,3})((?:-[A-Za-z0-9]{1,8}){0,4})")

H264_PROFILES = {
    "Constrained Baseline": ("42", "e0"), "Baseline": ("42", "00"), "Main": ("4d", "00"),
    "Extended": ("58", "00"), "High": ("64", "00"), "High 10": ("6e", "00"),
    "High 4:2:2": ("7a", "00"), "High 4:4:4 Predictive": ("f4", "00"),
}  # fmt: skip
# VP9 levels by luma picture size (samples), from the VP9 level definitions.
VP9_LEVELS = (
    (36864, 10), (73728, 11), (122880, 20), (245760, 21), (552960, 30), (983040, 31),
    (2228224, 40), (8912896, 50), (35651584, 60),
)  # fmt: skip


@dataclass(frozen=True)
class StreamFacts:
    """What the master playlist needs to know about a rendition's video stream."""

    codec: str
    profile: str
    level: int
    width: int
    height: int
    pix_fmt: str


@dataclass(frozen=True)
class HlsVariant:
    """One rung in the master playlist."""

    rung: str
    uri: str
    bandwidth: int
    average_bandwidth: int
    width: int
    height: int
    codecs: str
    frame_rate: Fraction


@dataclass(frozen=True)
class AudioTrack:
    """One audio track of the job's audio file (split writes stereo first, then surround)."""

    index: int
    codec: str
    channels: int
    language: str  # an RFC 5646 tag, "und" when the source had none

    @property
    def name(self) -> str:
        """The rendition's folder and NAME: "stereo" for the default track, else "surround"."""
        return "stereo" if self.index == 0 else "surround"


@dataclass(frozen=True)
class AudioRendition:
    """One EXT-X-MEDIA audio rendition and its measured bit rates (bits per second)."""

    track: AudioTrack
    uri: str
    peak: float
    average: float


@functools.cache
def _iso639() -> dict[str, str]:
    text = resources.files("kinoit.media").joinpath("iso639.json").read_text("utf-8")
    table: dict[str, str] = json.loads(text)
    return table


def language_tag(tag: str | None) -> str:
    """The RFC 5646 tag HLS wants for a container's language tag (pure): ISO 639-2
    codes that have a two-letter ISO 639-1 code become it ("fre", "fra" -> "fr"), other
    well-formed tags are kept, anything else (none, "English", "") is "und"."""
    match = _LANGUAGE.fullmatch((tag or "").strip())
    if not match:
        return UNDETERMINED
    primary = match.group(1).lower()
    return _iso639().get(primary, primary) + match.group(2)


def codec_string(facts: StreamFacts) -> str:
    """RFC 6381 codec string for HLS CODECS= (pure)."""
    deep = "10" in facts.pix_fmt
    if facts.codec == "h264":
        profile, constraints = H264_PROFILES.get(facts.profile, ("64", "00"))
        return f"avc1.{profile}{constraints}{max(facts.level, 0):02x}"
    if facts.codec == "hevc":
        main10 = "10" in facts.profile or deep
        return f"hvc1.{2 if main10 else 1}.{4 if main10 else 6}.L{max(facts.level, 0)}.B0"
    if facts.codec == "vp9":
        samples = facts.width * facts.height
        level = next((lv for limit, lv in VP9_LEVELS if samples <= limit), 62)
        return f"vp09.00.{level:02d}.{10 if deep else 8:02d}"
    if facts.codec == "av1":
        level = facts.level if 0 <= facts.level <= 31 else 8
        return f"av01.0.{level:02d}M.{10 if deep else 8:02d}"
    raise InvalidParameter("codec", f"no HLS codec string for {facts.codec!r}")


def media_playlist(
    entries: Sequence[tuple[str, Fraction | float]],
    *,
    init: str | None = None,
    event: bool = False,
    ended: bool = True,
    target: int | None = None,
) -> str:
    """A VOD media playlist of (uri, duration) segments (pure).

    ``event``: an EXT-X-PLAYLIST-TYPE:EVENT playlist instead, which may list no
    segment yet, asks players to start at its beginning (EXT-X-START) and ends
    (EXT-X-ENDLIST) only when ``ended``; ``target`` then gives the target duration
    of every segment it will ever list (it may not change)."""
    if not entries and not event:
        raise InvalidParameter("segments", "a playlist needs at least one segment")
    target = target or target_duration([d for _, d in entries])
    lines = [
        "#EXTM3U", f"#EXT-X-VERSION:{7 if init else 3}", f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0", f"#EXT-X-PLAYLIST-TYPE:{'EVENT' if event else 'VOD'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]  # fmt: skip
    if event:  # players start a growing playlist near its end unless told otherwise
        lines.append("#EXT-X-START:TIME-OFFSET=0")
    if init:
        lines.append(f'#EXT-X-MAP:URI="{init}"')
    for uri, duration in entries:
        lines += [f"#EXTINF:{float(duration):.6f},", uri]
    if ended or not event:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _media_line(rendition: AudioRendition, default: bool) -> str:
    track = rendition.track
    name = "Stereo" if track.name == "stereo" else f"Surround {channel_label(track.channels)}"
    yes_no = "YES" if default else "NO"
    return (
        f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",LANGUAGE="{track.language}",'
        f'NAME="{name}",DEFAULT={yes_no},AUTOSELECT=YES,CHANNELS="{track.channels}",'
        f'URI="{rendition.uri}"'
    )


def channel_label(channels: int) -> str:
    """5.1 for six channels, else the count (pure)."""
    return {6: "5.1", 8: "7.1"}.get(channels, f"{channels}ch")


def audio_codec(codec: str) -> str:
    """The RFC 6381 codec string of an audio track (split writes AAC-LC) (pure)."""
    if codec == "aac":
        return AAC_LC
    raise InvalidParameter("audio", f"no HLS codec string for audio codec {codec!r}")


def master_playlist(variants: Sequence[HlsVariant], audio: Sequence[AudioRendition] = ()) -> str:
    """The master playlist: one EXT-X-STREAM-INF per rung, the audio renditions as one
    group whose first rendition (stereo) is the default (pure). The variants'
    bandwidths are what they are given (:func:`package_hls` adds the audio); a variant
    without ``codecs`` is listed without CODECS."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    lines += [_media_line(r, default=i == 0) for i, r in enumerate(audio)]
    audio_codecs = sorted({audio_codec(r.track.codec) for r in audio})
    for v in sorted(variants, key=lambda v: -v.bandwidth):
        attrs = f"BANDWIDTH={v.bandwidth},AVERAGE-BANDWIDTH={v.average_bandwidth}"
        if v.width and v.height:
            attrs += f",RESOLUTION={v.width}x{v.height}"
        if v.codecs:  # all the codecs or none (a variant without them: a preview's)
            attrs += f',CODECS="{",".join([v.codecs, *audio_codecs])}"'
        attrs += f",FRAME-RATE={float(v.frame_rate):.3f}"
        if audio:
            attrs += f',AUDIO="{AUDIO_GROUP}"'
        lines += [f"#EXT-X-STREAM-INF:{attrs}", v.uri]
    return "\n".join(lines) + "\n"


def target_duration(durations: Sequence[float | Fraction]) -> int:
    """RFC 8216's EXT-X-TARGETDURATION: every EXTINF, rounded to the nearest integer,
    is at most it (pure)."""
    return max(1, max((math.floor(float(d) + 0.5) for d in durations), default=1))


def peak_segment_bitrate(sizes: Sequence[int], durations: Sequence[float | Fraction]) -> float:
    """RFC 8216 §4.3.4.2's peak segment bit rate of a media playlist (bits per second):
    the largest rate of any run of consecutive segments lasting 0.5 to 1.5 times the
    target duration (a playlist too short for any such run: its overall rate) (pure)."""
    if len(sizes) != len(durations):
        raise InvalidParameter("segments", "one duration per segment size is needed")
    seconds = [float(d) for d in durations]
    target = target_duration(seconds)
    low, high = 0.5 * target, 1.5 * target
    peak = None
    for i in range(len(sizes)):
        bits, span = 0, 0.0
        for j in range(i, len(sizes)):
            bits, span = bits + 8 * sizes[j], span + seconds[j]
            if span > high + 1e-9:
                break
            if span >= low - 1e-9 and span > 0:
                peak = max(peak or 0.0, bits / span)
    if peak is None:
        total = sum(seconds)
        return 8 * sum(sizes) / total if total > 0 else 0.0
    return peak


def average_bitrate(sizes: Sequence[int], durations: Sequence[float | Fraction]) -> float:
    """Every segment's bits over the playlist's duration (bits per second) (pure)."""
    total = sum(float(d) for d in durations)
    return 8 * sum(sizes) / total if total > 0 else 0.0


def playlist_entries(text: str) -> list[tuple[str, float]]:
    """The (uri, EXTINF duration) of every segment of a media playlist (pure)."""
    entries, duration = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise InvalidParameter("playlist", f"segment {line!r} has no #EXTINF")
            entries.append((line, duration))
            duration = None
    return entries


def parse_playlist_uris(text: str) -> list[str]:
    """URIs a playlist references: non-tag lines plus URI= attributes (pure; for verification)."""
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            if 'URI="' in line:
                uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
            continue
        uris.append(line)
    return uris
