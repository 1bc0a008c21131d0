"""merge: rendition segments → one MP4 per rung (audio remuxed) and HLS; then verify.

Nothing here re-encodes video. MPEG-TS rendition segments (H.264/HEVC) carry
continuous absolute timestamps, so they are joined byte-wise with ffmpeg's
``concat:`` protocol and referenced as they are by the HLS media playlists.
Matroska segments (VP9/AV1) are joined with the concat demuxer given exact
durations, and packaged for HLS as fMP4 by stream copy.
"""

from __future__ import annotations

import functools
import json
import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from kinoit.config import Settings, default_settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import ffmpeg
from kinoit.media.files import file_record_json, link_or_copy

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
class MergedRung:
    """One merged rendition and what verification found."""

    rung: str
    path: Path
    frames: int
    video_duration: float
    audio_duration: float | None
    bytes: int

    def to_json(self) -> dict[str, Any]:
        """JSON form (path as a string)."""
        return file_record_json(self)


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


def concat_list(paths: Sequence[Path], durations: Sequence[Fraction]) -> str:
    """A concat-demuxer list with an exact duration per file (pure)."""
    lines = ["ffconcat version 1.0"]
    for path, duration in zip(paths, durations, strict=True):
        quoted = str(path.resolve()).replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {float(duration):.9f}"]
    return "\n".join(lines) + "\n"


def _video_input(paths: Sequence[Path], list_file: Path | None) -> list[str]:
    if list_file is not None:
        return ["-f", "concat", "-safe", "0", "-i", str(list_file)]
    for p in paths:
        if "|" in str(p):
            raise InvalidParameter("segment", f"path may not contain '|': {p}")
    return ["-i", "concat:" + "|".join(str(p) for p in paths)]


def build_merge_argv(
    video_input: Sequence[str], audio: Path | None, out: Path, *, hevc: bool = False
) -> list[str]:
    """Stream-copy video (and every track of the audio file) into a faststart MP4 (pure)."""
    argv = [ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", *video_input]
    if audio is not None:
        argv += ["-i", str(audio)]
    argv += ["-map", "0:v:0"]
    if audio is not None:
        argv += ["-map", "1:a"]  # every track: the stereo default, the surround after it
    argv += ["-c", "copy"]
    if hevc:
        argv += ["-tag:v", "hvc1"]  # the tag Apple players require for HEVC in MP4
    argv += ["-map_metadata", "-1"]
    if audio is not None:
        argv += ["-map_metadata:s:a", "1:s:a"]  # but the audio tracks' language tags
    argv += ["-movflags", "+faststart", "-f", "mp4", str(out)]
    return argv


def build_verify_argv(path: str | Path, *, decode: bool = True) -> list[str]:
    """ffprobe: decode every video frame (errors go to stderr) and count them; with
    ``decode=False`` count the packets by demuxing only."""
    counted = "frames" if decode else "packets"
    return [
        ffmpeg.FFPROBE, "-v", "error", f"-count_{counted}", "-show_entries",
        f"stream=codec_type,nb_read_{counted},duration", "-of", "json", "-i", str(path),
    ]  # fmt: skip


@dataclass(frozen=True)
class Verification:
    """What a full decode of an output found."""

    frames: int
    video_duration: float
    audio_duration: float | None


def verify_output(
    path: str | Path,
    *,
    expected_frames: int | None = None,
    decode: bool = True,
    settings: Settings | None = None,
) -> Verification:
    """Decode every frame of ``path``; raise MediaError on a decode error or a wrong count.

    ``decode=False`` counts the video packets (one per frame for every codec kinoit
    writes) by demuxing only: for outputs whose every frame was already decoded and
    checked (the checksum stage's verdict on each rendition segment).
    """
    settings = settings or default_settings()
    argv = build_verify_argv(path, decode=decode)
    out = ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="verify")
    if out.stderr.strip():
        raise MediaError(f"verify: {path} has frames that do not decode", argv, out.stderr)
    streams = json.loads(out.stdout or b"{}").get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        raise MediaError(f"verify: {path} has no video stream", argv)
    frames = int(video.get("nb_read_frames" if decode else "nb_read_packets") or 0)
    if expected_frames is not None and frames != expected_frames:
        raise MediaError(
            f"verify: {path} has {frames} frames, the source has {expected_frames}", argv
        )
    a_dur = float(audio["duration"]) if audio and audio.get("duration") else None
    return Verification(frames, float(video.get("duration") or 0.0), a_dur)


def check_segments(paths: Sequence[str | Path]) -> list[Path]:
    if not paths:
        raise InvalidParameter("segments", "no rendition segments to merge")
    result = [Path(p) for p in paths]
    missing = [str(p) for p in result if not p.is_file()]
    if missing:
        raise InvalidParameter("segments", f"missing rendition segment {missing[0]}")
    suffixes = {p.suffix for p in result}
    if len(suffixes) != 1 or suffixes - {".ts", ".mkv"}:
        raise InvalidParameter("segments", f"expected all .ts or all .mkv, got {sorted(suffixes)}")
    return result


def merge_rung(
    segment_paths: Sequence[str | Path],
    audio_path: str | Path | None,
    out_mp4: str | Path,
    *,
    fps: Fraction,
    segment_frames: Sequence[int],
    expected_frames: int | None = None,
    facts: StreamFacts | None = None,
    decode_check: bool = True,
    settings: Settings | None = None,
) -> MergedRung:
    """Concatenate one rung's segments by stream copy into a faststart MP4 with the audio.

    Verifies the result: every frame decodes, the frame count equals
    ``expected_frames`` (default: the sum of ``segment_frames``) and the audio
    lasts as long as the video, within one frame. ``facts`` (from
    :func:`probe_facts` of the first segment) spares probing it again.
    ``decode_check=False`` counts the output's packets instead of decoding its
    frames: for segments the checksum stage has decoded and verified already.
    """
    settings = settings or default_settings()
    paths = check_segments(segment_paths)
    if len(segment_frames) != len(paths):
        raise InvalidParameter("segment_frames", "one frame count per segment is needed")
    expected = expected_frames if expected_frames is not None else sum(segment_frames)
    out = Path(out_mp4)
    out.parent.mkdir(parents=True, exist_ok=True)
    audio = Path(audio_path) if audio_path else None
    codec = (facts or probe_facts(paths[0], settings)).codec
    try:
        # Next to the output (a stage's swept scratch dir), not in the system temp dir.
        with tempfile.TemporaryDirectory(prefix="kinoit-merge-", dir=out.parent) as tmp:
            list_file = None
            if paths[0].suffix == ".mkv":
                list_file = Path(tmp) / "list.ffconcat"
                durations = [Fraction(n) / fps for n in segment_frames]
                list_file.write_text(concat_list(paths, durations), "utf-8")
            argv = build_merge_argv(
                _video_input(paths, list_file), audio, out, hevc=codec == "hevc"
            )
            ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="merge")
        check = verify_output(out, expected_frames=expected, decode=decode_check, settings=settings)
        video_duration = float(Fraction(expected) / fps)
        if check.audio_duration is not None and abs(check.audio_duration - video_duration) > float(
            1 / fps
        ):
            raise MediaError(
                f"merge: audio lasts {check.audio_duration:.3f}s, video {video_duration:.3f}s "
                "(more than one frame apart)"
            )
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return MergedRung(
        rung=out.stem, path=out, frames=check.frames, video_duration=video_duration,
        audio_duration=check.audio_duration, bytes=out.stat().st_size,
    )  # fmt: skip


def _streams_argv(path: str | Path, select: str, entries: str) -> list[str]:
    """ffprobe: ``entries`` of the streams ``select`` picks, as JSON (pure)."""
    return [
        ffmpeg.FFPROBE, "-v", "error", "-select_streams", select, "-show_entries", entries,
        "-of", "json", "-i", str(path),
    ]  # fmt: skip


def _probe_streams(
    argv: list[str], path: str | Path, kind: str, settings: Settings | None
) -> list[dict[str, Any]]:
    """Run one ffprobe of :func:`_streams_argv`; its streams, MediaError when none."""
    settings = settings or default_settings()
    out = ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="probe")
    streams: list[dict[str, Any]] = json.loads(out.stdout or b"{}").get("streams") or []
    if not streams:
        raise MediaError(f"{path}: no {kind} stream")
    return streams


def build_facts_argv(path: str | Path) -> list[str]:
    """ffprobe: codec, profile, level and size of the first video stream."""
    return _streams_argv(path, "v:0", "stream=codec_name,profile,level,width,height,pix_fmt")


def probe_facts(path: str | Path, settings: Settings | None = None) -> StreamFacts:
    """What the master playlist needs of a rendition file's video stream (one ffprobe)."""
    s = _probe_streams(build_facts_argv(path), path, "video", settings)[0]
    return StreamFacts(
        codec=str(s.get("codec_name")), profile=str(s.get("profile", "")),
        level=int(s.get("level", -1)), width=int(s.get("width", 0)),
        height=int(s.get("height", 0)), pix_fmt=str(s.get("pix_fmt", "")),
    )  # fmt: skip


def build_audio_tracks_argv(path: str | Path) -> list[str]:
    """ffprobe: codec, channels and language of every audio stream."""
    return _streams_argv(path, "a", "stream=codec_name,channels:stream_tags=language")


def probe_audio_tracks(path: str | Path, settings: Settings | None = None) -> list[AudioTrack]:
    """The audio tracks of the job's audio file, in order (one ffprobe)."""
    streams = _probe_streams(build_audio_tracks_argv(path), path, "audio", settings)
    return [
        AudioTrack(
            index=i, codec=str(s.get("codec_name")), channels=int(s.get("channels") or 0),
            language=language_tag((s.get("tags") or {}).get("language")),
        )
        for i, s in enumerate(streams)
    ]  # fmt: skip


def build_audio_hls_argv(audio: Path, out_dir: Path, seconds: float, track: int = 0) -> list[str]:
    """Stream-copy one AAC track into HLS audio segments (pure)."""
    return [
        ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-i", str(audio), "-map", f"0:a:{track}", "-c", "copy",
        "-f", "hls", "-hls_time", f"{seconds:g}", "-hls_playlist_type", "vod",
        "-hls_segment_type", "mpegts", "-hls_flags", "independent_segments",
        "-hls_segment_filename", str(out_dir / "%05d.ts"), str(out_dir / MEDIA_PLAYLIST),
    ]  # fmt: skip


def build_fmp4_hls_argv(list_file: Path, out_dir: Path, half_segment: float) -> list[str]:
    """Stream-copy concatenated VP9/AV1 segments into fMP4 HLS, cutting at every keyframe."""
    return [
        ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-f", "concat", "-safe", "0", "-i", str(list_file),
        "-map", "0:v:0", "-c", "copy", "-f", "hls", "-hls_time", f"{half_segment:.6f}",
        "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
        "-hls_flags", "independent_segments", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", str(out_dir / "%05d.m4s"), str(out_dir / MEDIA_PLAYLIST),
    ]  # fmt: skip


def audio_segment_seconds(fps: Fraction, segment_frames: Sequence[int]) -> float:
    """The HLS segment length of the audio: the longest video segment's (pure)."""
    return float(max(Fraction(n) / fps for n in segment_frames)) if segment_frames else 1.0


def cut_audio_hls(
    audio_path: Path, out_dir: Path, seconds: float, track: int, settings: Settings
) -> list[tuple[Path, float]]:
    """Cut one track of the audio file into MPEG-TS HLS segments in ``out_dir`` (stream
    copy; the same input and ``seconds`` give the same bytes); (file, duration) of each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = build_audio_hls_argv(audio_path, out_dir, seconds, track)
    ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="hls audio")
    entries = playlist_entries((out_dir / MEDIA_PLAYLIST).read_text("utf-8"))
    return [(out_dir / uri, duration) for uri, duration in entries]


def package_audio(
    audio_path: Path, root: Path, seconds: float, settings: Settings
) -> list[AudioRendition]:
    """Every track of the audio file as an HLS rendition under ``root/audio/<name>/``
    (stream copy), with the peak and average bit rates of its segments."""
    renditions = []
    for track in probe_audio_tracks(audio_path, settings):
        entries = cut_audio_hls(
            audio_path, root / AUDIO_DIR / track.name, seconds, track.index, settings
        )
        sizes = [path.stat().st_size for path, _ in entries]
        durations = [d for _, d in entries]
        renditions.append(
            AudioRendition(
                track=track, uri=f"{AUDIO_DIR}/{track.name}/{MEDIA_PLAYLIST}",
                peak=peak_segment_bitrate(sizes, durations),
                average=average_bitrate(sizes, durations),
            )
        )  # fmt: skip
    return renditions


def package_hls(
    rungs: Mapping[str, Sequence[str | Path]],
    out_dir: str | Path,
    *,
    fps: Fraction,
    segment_frames: Sequence[int],
    audio_path: str | Path | None = None,
    facts: Mapping[str, StreamFacts] | None = None,
    settings: Settings | None = None,
) -> Path:
    """HLS from the rendition segments, without re-encoding; returns the master playlist.

    ``facts`` maps a rung to :func:`probe_facts` of its first segment (probed here
    for the rungs it lacks).

    Layout: ``out_dir/master.m3u8``, ``out_dir/<rung>/index.m3u8`` + segments, and
    when there is audio ``out_dir/audio/stereo/index.m3u8`` + segments (the default
    rendition), ``out_dir/audio/surround/…`` when the audio file has a second track.
    Each variant's BANDWIDTH is its video's peak segment bit rate plus the largest
    audio rendition's, AVERAGE-BANDWIDTH the same with average rates (RFC 8216
    §4.3.4.2: all the media a player fetches for it), measured on the segments.
    """
    settings = settings or default_settings()
    if not rungs:
        raise InvalidParameter("rungs", "nothing to package")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    durations = [Fraction(n) / fps for n in segment_frames]
    audio: list[AudioRendition] = []
    if audio_path:
        seconds = audio_segment_seconds(fps, segment_frames)
        audio = package_audio(Path(audio_path), root, seconds, settings)
    audio_peak = max((r.peak for r in audio), default=0.0)
    audio_average = max((r.average for r in audio), default=0.0)
    variants = []
    for name, raw_paths in rungs.items():
        paths = check_segments(raw_paths)
        if len(paths) != len(durations):
            raise InvalidParameter("segment_frames", f"rung {name}: one frame count per segment")
        rung_dir = root / name
        rung_dir.mkdir(parents=True, exist_ok=True)
        rung_facts = (facts or {}).get(name) or probe_facts(paths[0], settings)
        if paths[0].suffix == ".ts":
            entries = []
            for i, p in enumerate(paths):
                link_or_copy(p, rung_dir / f"{i:05d}.ts")
                entries.append((f"{i:05d}.ts", durations[i]))
            (rung_dir / MEDIA_PLAYLIST).write_text(media_playlist(entries), "utf-8")
            sizes = [p.stat().st_size for p in paths]
            seg_durations: list[float | Fraction] = list(durations)
        else:
            with tempfile.TemporaryDirectory(prefix="kinoit-hls-", dir=root) as tmp:
                list_file = Path(tmp) / "list.ffconcat"
                list_file.write_text(concat_list(paths, durations), "utf-8")
                half = float(min(durations)) / 2
                argv = build_fmp4_hls_argv(list_file, rung_dir, half)
                ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="hls")
            written = playlist_entries((rung_dir / MEDIA_PLAYLIST).read_text("utf-8"))
            sizes = [(rung_dir / uri).stat().st_size for uri, _ in written]
            seg_durations = [d for _, d in written]
        variants.append(
            HlsVariant(
                rung=name,
                uri=f"{name}/{MEDIA_PLAYLIST}",
                bandwidth=math.ceil(peak_segment_bitrate(sizes, seg_durations) + audio_peak),
                average_bandwidth=math.ceil(average_bitrate(sizes, seg_durations) + audio_average),
                width=rung_facts.width,
                height=rung_facts.height,
                codecs=codec_string(rung_facts),
                frame_rate=fps,
            )
        )
    master = root / MASTER_PLAYLIST
    master.write_text(master_playlist(variants, audio), "utf-8")
    return master


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
