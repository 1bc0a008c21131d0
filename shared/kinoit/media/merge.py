"""merge: rendition segments → one MP4 per rung (audio remuxed) and HLS; then verify.

Nothing here re-encodes video. MPEG-TS rendition segments (H.264/HEVC) carry
continuous absolute timestamps, so they are joined byte-wise with ffmpeg's
``concat:`` protocol and referenced as they are by the HLS media playlists.
Matroska segments (VP9/AV1) are joined with the concat demuxer given exact
durations, and packaged for HLS as fMP4 by stream copy.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import Settings, default_settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import ffmpeg
from kinoit.media.files import file_record_json, link_or_copy
from kinoit.media.frames import open_media
from kinoit.media.playlists import (
    AUDIO_DIR,
    MASTER_PLAYLIST,
    MEDIA_PLAYLIST,
    AudioRendition,
    AudioTrack,
    HlsVariant,
    StreamFacts,
    average_bitrate,
    codec_string,
    language_tag,
    master_playlist,
    media_playlist,
    peak_segment_bitrate,
    playlist_entries,
)


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


def build_verify_argv(path: str | Path) -> list[str]:
    """ffprobe: decode every video frame (errors go to stderr) and count them."""
    return [
        ffmpeg.FFPROBE, "-v", "error", "-count_frames", "-show_entries",
        "stream=codec_type,nb_read_frames,duration", "-of", "json", "-i", str(path),
    ]  # fmt: skip


@dataclass(frozen=True)
class Verification:
    """What a full decode (or a demux) of an output found."""

    frames: int
    video_duration: float
    audio_duration: float | None


def _seconds(stream: Any) -> float | None:
    if stream is None or stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def count_packets(path: str | Path) -> Verification:
    """The video frames of ``path`` counted without decoding, and the durations of its
    first video and audio streams. An MP4 (what merge writes) is counted from its
    sample table, every sample's bytes checked to lie in the file
    (:func:`kinoit.media.mp4_samples.video_sample_count`: the table, not the
    gigabytes of samples, is read), and that count checked against the track's time
    table; another container by demuxing every packet, in this process."""
    import av

    from kinoit.media.mp4_samples import video_sample_count

    with open_media(path, "verify") as container:
        if not container.streams.video:
            raise MediaError(f"verify: {path} has no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        if "mp4" in str(container.format.name).split(","):
            frames = video_sample_count(path)
            if int(video.frames) != frames:
                raise MediaError(
                    f"verify: {path} lists {frames} video samples but times {video.frames}"
                )
            return Verification(frames, _seconds(video) or 0.0, _seconds(audio))
        try:
            # demux() ends with one empty packet per stream (a decoder flush): not counted.
            frames = sum(1 for packet in container.demux(video) if packet.size)
        except av.FFmpegError as exc:
            raise MediaError(f"verify: {path} does not demux: {exc}") from None
        return Verification(frames, _seconds(video) or 0.0, _seconds(audio))


def verify_output(
    path: str | Path,
    *,
    expected_frames: int | None = None,
    decode: bool = True,
    settings: Settings | None = None,
    fps: Fraction | None = None,
) -> Verification:
    """Decode every frame of ``path``; raise MediaError on a decode error or a wrong count,
    and with ``fps``, for an MP4, unless its frames lie one every 1/fps s
    (:func:`kinoit.media.mp4_samples.check_timeline`).

    ``decode=False`` counts the video packets (one per frame for every codec kinoit
    writes) by demuxing only, in this process: for outputs whose every frame was
    already decoded and checked (the checksum stage's verdict on each rendition segment).
    """
    settings = settings or default_settings()
    if decode:
        argv = build_verify_argv(path)
        out = ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="verify")
        if out.stderr.strip():
            raise MediaError(f"verify: {path} has frames that do not decode", argv, out.stderr)
        streams = json.loads(out.stdout or b"{}").get("streams", [])
        video = next((s for s in streams if s.get("codec_type") == "video"), None)
        audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
        if video is None:
            raise MediaError(f"verify: {path} has no video stream", argv)
        a_dur = float(audio["duration"]) if audio and audio.get("duration") else None
        check = Verification(
            int(video.get("nb_read_frames") or 0), float(video.get("duration") or 0.0), a_dur
        )
    else:
        check = count_packets(path)
    if expected_frames is not None and check.frames != expected_frames:
        raise MediaError(
            f"verify: {path} has {check.frames} frames, the source has {expected_frames}"
        )
    if fps is not None and Path(path).suffix == ".mp4":
        from kinoit.media.mp4_samples import check_timeline

        check_timeline(path, fps)
    return check


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
        check = verify_output(
            out, expected_frames=expected, decode=decode_check, settings=settings, fps=fps
        )
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


def probe_facts(path: str | Path, settings: Settings | None = None) -> StreamFacts:
    """What the master playlist needs of a rendition file's video stream: codec, profile,
    level, size, pixel format (read in this process, no ffprobe)."""
    with open_media(path, "probe") as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        context = container.streams.video[0].codec_context
        return StreamFacts(
            codec=str(context.codec.canonical_name), profile=str(context.profile or ""),
            level=int(context.level), width=int(context.width), height=int(context.height),
            pix_fmt=str(context.format.name) if context.format else "",
        )  # fmt: skip


def probe_audio_tracks(path: str | Path, settings: Settings | None = None) -> list[AudioTrack]:
    """The audio tracks of the job's audio file, in order (read in this process)."""
    with open_media(path, "probe") as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        return [
            AudioTrack(
                index=i, codec=str(s.codec_context.codec.canonical_name),
                channels=int(s.codec_context.channels),
                language=language_tag(s.metadata.get("language")),
            )
            for i, s in enumerate(container.streams.audio)
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


@dataclass(frozen=True)
class RungHls:
    """One rung's HLS media playlist, packaged: its video's measured bit rates (bits per
    second, audio not included) and the stream facts the master playlist lists."""

    peak: float
    average: float
    facts: StreamFacts

    def variant(self, name: str, fps: Fraction, audio: Sequence[AudioRendition]) -> HlsVariant:
        """Its master-playlist entry: BANDWIDTH and AVERAGE-BANDWIDTH with the largest
        audio rendition's rates added (RFC 8216 §4.3.4.2: all the media a player fetches)."""
        audio_peak = max((r.peak for r in audio), default=0.0)
        audio_average = max((r.average for r in audio), default=0.0)
        return HlsVariant(
            rung=name, uri=f"{name}/{MEDIA_PLAYLIST}",
            bandwidth=math.ceil(self.peak + audio_peak),
            average_bandwidth=math.ceil(self.average + audio_average),
            width=self.facts.width, height=self.facts.height,
            codecs=codec_string(self.facts), frame_rate=fps,
        )  # fmt: skip


def package_rung_hls(
    raw_paths: Sequence[str | Path],
    rung_dir: Path,
    *,
    durations: Sequence[Fraction],
    facts: StreamFacts | None = None,
    settings: Settings | None = None,
) -> RungHls:
    """One rung's ``index.m3u8`` and segments in ``rung_dir``: MPEG-TS segments linked
    as they are, Matroska ones (VP9, AV1) repackaged as fMP4 by stream copy."""
    settings = settings or default_settings()
    paths = check_segments(raw_paths)
    if len(paths) != len(durations):
        raise InvalidParameter(
            "segment_frames", f"rung {rung_dir.name}: one frame count per segment"
        )
    rung_dir.mkdir(parents=True, exist_ok=True)
    facts = facts or probe_facts(paths[0], settings)
    if paths[0].suffix == ".ts":
        entries = []
        for i, p in enumerate(paths):
            link_or_copy(p, rung_dir / f"{i:05d}.ts")
            entries.append((f"{i:05d}.ts", durations[i]))
        (rung_dir / MEDIA_PLAYLIST).write_text(media_playlist(entries), "utf-8")
        sizes = [p.stat().st_size for p in paths]
        seg_durations: list[float | Fraction] = list(durations)
    else:
        with tempfile.TemporaryDirectory(prefix="kinoit-hls-", dir=rung_dir.parent) as tmp:
            list_file = Path(tmp) / "list.ffconcat"
            list_file.write_text(concat_list(paths, durations), "utf-8")
            half = float(min(durations)) / 2
            argv = build_fmp4_hls_argv(list_file, rung_dir, half)
            ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="hls")
        written = playlist_entries((rung_dir / MEDIA_PLAYLIST).read_text("utf-8"))
        sizes = [(rung_dir / uri).stat().st_size for uri, _ in written]
        seg_durations = [d for _, d in written]
    return RungHls(
        peak_segment_bitrate(sizes, seg_durations), average_bitrate(sizes, seg_durations), facts
    )


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
    variants = [
        package_rung_hls(
            paths, root / name, durations=durations, facts=(facts or {}).get(name),
            settings=settings,
        ).variant(name, fps, audio)
        for name, paths in rungs.items()
    ]  # fmt: skip
    return write_master(root, variants, audio)


def write_master(
    root: Path, variants: Sequence[HlsVariant], audio: Sequence[AudioRendition]
) -> Path:
    """``root/master.m3u8`` over the variants and audio renditions; its path."""
    master = root / MASTER_PLAYLIST
    master.write_text(master_playlist(variants, audio), "utf-8")
    return master
