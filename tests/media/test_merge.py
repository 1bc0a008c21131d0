import itertools
import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import (
    merge_rung,
    package_hls,
    split_video,
    transcode_split_segment,
    verify_output,
)
from kinoit.media.merge_job import rendition_segments
from kinoit.media.playlists import (
    HlsVariant,
    StreamFacts,
    codec_string,
    master_playlist,
    media_playlist,
    parse_playlist_uris,
)

LADDER = {
    "rungs": [
        {"name": "90p", "codec": "h264", "height": 90, "crf": 26, "preset": "ultrafast"},
        {"name": "48p", "codec": "h264", "height": 48, "crf": 30, "preset": "ultrafast"},
        {"name": "vp9", "codec": "vp9", "height": 48, "crf": 45, "preset": 8},
    ]
}


@pytest.fixture(scope="module")
def job(clip, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 29.97 fps clip with a tone and a long GOP, split and transcoded (3 rungs)."""
    from kinoit.config import load_settings

    settings = load_settings({})
    root = tmp_path_factory.mktemp("job")
    src = clip(fps="30000/1001", seconds=2.5, gop=45)
    split = split_video(src, root / "split", settings=settings)
    assert split.mode == "copy"  # auto picks copy for this short-GOP source
    for seg in split.segments:
        transcode_split_segment(split, seg.index, LADDER, root / "rend", settings=settings)
    renditions = rendition_segments(root / "rend", [s.path.stem for s in split.segments])
    return {
        "src": src,
        "split": split,
        "renditions": renditions,
        "root": root,
        "settings": settings,
    }


def video_pts(path: Path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
         "-of", "csv=p=0", str(path)], capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    return sorted(float(x.strip(",")) for x in out.split())


@pytest.mark.parametrize("rung", ["90p", "vp9"])
def test_merged_rung_is_seamless_with_audio_in_sync(job: dict[str, Any], rung: str) -> None:
    split = job["split"]
    merged = merge_rung(
        job["renditions"][rung], split.audio, job["root"] / "out" / f"{rung}.mp4", fps=split.fps,
        segment_frames=[s.frames for s in split.segments], settings=job["settings"],
    )  # fmt: skip
    assert merged.frames == split.frames == 75
    assert merged.audio_duration is not None
    assert abs(merged.audio_duration - merged.video_duration) <= 1 / float(split.fps)
    pts = video_pts(merged.path)
    frame = 1001 / 30000
    # no gap, no overlap at the seams (Matroska rounds timestamps to the millisecond)
    assert len(pts) == 75
    assert all(abs((b - a) - frame) <= 0.0011 for a, b in itertools.pairwise(pts))
    assert abs((pts[-1] - pts[0]) - 74 * frame) <= 0.0011
    with open(merged.path, "rb") as f:  # faststart: moov before mdat
        head = f.read(4096)
    assert head.find(b"moov") < head.find(b"mdat") or head.find(b"mdat") == -1


def test_merged_frames_look_like_the_source(job: dict[str, Any]) -> None:
    from kinoit.media import checksum_video, compare_checksums

    split = job["split"]
    merged = merge_rung(
        job["renditions"]["48p"], None, job["root"] / "out" / "48p.mp4", fps=split.fps,
        segment_frames=[s.frames for s in split.segments], settings=job["settings"],
    )  # fmt: skip
    assert merged.audio_duration is None
    ref = checksum_video(job["src"], settings=job["settings"])
    cand = checksum_video(merged.path, settings=job["settings"])
    assert compare_checksums(ref, cand).verdict == "match"


def test_hls_playlists_parse_and_every_file_exists(job: dict[str, Any]) -> None:
    split = job["split"]
    master = package_hls(
        job["renditions"], job["root"] / "hls", fps=split.fps,
        segment_frames=[s.frames for s in split.segments], audio_path=split.audio,
        settings=job["settings"],
    )  # fmt: skip
    text = master.read_text()
    assert text.startswith("#EXTM3U\n") and "#EXT-X-INDEPENDENT-SEGMENTS" in text
    infs = [line for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(infs) == 3
    for inf in infs:
        for attr in ("BANDWIDTH=", "RESOLUTION=", 'CODECS="', 'AUDIO="audio"'):
            assert attr in inf
    assert 'CODECS="avc1.' in text and "mp4a.40.2" in text and "vp09." in text
    checked = 0
    for uri in parse_playlist_uris(text):
        playlist = master.parent / uri
        assert playlist.is_file()
        body = playlist.read_text()
        assert body.rstrip().endswith("#EXT-X-ENDLIST")
        for seg in parse_playlist_uris(body):
            assert (playlist.parent / seg).is_file()
            checked += 1
        durations = [
            float(x.split(":")[1].rstrip(",")) for x in body.splitlines() if x.startswith("#EXTINF")
        ]
        assert abs(sum(durations) - 75 * 1001 / 30000) < 0.05
    assert checked >= 3 * 3
    # the TS rendition segments are reused byte for byte, not re-encoded
    original = job["renditions"]["90p"][1].read_bytes()
    assert (master.parent / "90p" / "00001.ts").read_bytes() == original


def test_verify_output_catches_a_wrong_frame_count(job: dict[str, Any]) -> None:
    path = job["renditions"]["90p"][0]
    assert verify_output(path, expected_frames=30).frames == 30
    with pytest.raises(MediaError, match="the source has 31"):
        verify_output(path, expected_frames=31)


def test_merge_rejects_missing_or_mixed_segments(job: dict[str, Any], tmp_path: Path) -> None:
    r = job["renditions"]
    with pytest.raises(InvalidParameter, match="missing"):
        merge_rung(
            [tmp_path / "nope.ts"], None, tmp_path / "o.mp4", fps=Fraction(25), segment_frames=[1]
        )
    with pytest.raises(InvalidParameter, match=r"all \.ts or all \.mkv"):
        merge_rung(
            [r["90p"][0], r["vp9"][1]],
            None,
            tmp_path / "o.mp4",
            fps=Fraction(25),
            segment_frames=[1, 1],
        )


def test_media_playlist_target_duration_rounds_to_nearest() -> None:
    text = media_playlist([("a.ts", Fraction(1001, 1000)), ("b.ts", Fraction(1, 2))])
    assert "#EXT-X-TARGETDURATION:1\n" in text
    assert "#EXTINF:1.001000,\na.ts\n" in text and text.endswith("#EXT-X-ENDLIST\n")


def test_master_playlist_lists_variants_by_bandwidth() -> None:
    variants = [
        HlsVariant("low", "low/index.m3u8", 100, 90, 320, 180, "avc1.64000d", Fraction(25)),
        HlsVariant("high", "high/index.m3u8", 900, 800, 640, 360, "avc1.64001e", Fraction(25)),
    ]
    text = master_playlist(variants)
    assert text.index("high/index.m3u8") < text.index("low/index.m3u8")
    assert 'RESOLUTION=640x360,CODECS="avc1.64001e",FRAME-RATE=25.000' in text


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (StreamFacts("h264", "High", 31, 1280, 720, "yuv420p"), "avc1.64001f"),
        (StreamFacts("h264", "Constrained Baseline", 30, 640, 360, "yuv420p"), "avc1.42e01e"),
        (StreamFacts("hevc", "Main", 93, 1280, 720, "yuv420p"), "hvc1.1.6.L93.B0"),
        (StreamFacts("vp9", "Profile 0", -99, 1280, 720, "yuv420p"), "vp09.00.31.08"),
        (StreamFacts("av1", "Main", 8, 1280, 720, "yuv420p10le"), "av01.0.08M.10"),
    ],
)
def test_codec_strings(facts: StreamFacts, expected: str) -> None:
    assert codec_string(facts) == expected


def test_rendition_segments_requires_every_segment(tmp_path: Path) -> None:
    (tmp_path / "720p").mkdir()
    (tmp_path / "720p" / "00000.ts").write_bytes(b"x")
    assert rendition_segments(tmp_path, ["00000"]) == {"720p": [tmp_path / "720p" / "00000.ts"]}
    with pytest.raises(InvalidParameter, match="00001 has no rendition"):
        rendition_segments(tmp_path, ["00000", "00001"])
    assert json.dumps(str(tmp_path))


def test_merge_and_hls_temp_folders_live_under_the_output(
    job: dict[str, Any], tmp_path: Path, temp_dirs: list[Path]
) -> None:
    split = job["split"]
    frames = [s.frames for s in split.segments]
    out = tmp_path / "out"
    merge_rung(
        job["renditions"]["90p"], split.audio, out / "90p.mp4", fps=split.fps,
        segment_frames=frames, settings=job["settings"],
    )  # fmt: skip
    package_hls(
        {"vp9": job["renditions"]["vp9"]}, out / "hls", fps=split.fps, segment_frames=frames,
        settings=job["settings"],
    )  # fmt: skip
    assert len(temp_dirs) >= 2
    assert all(out in d.parents and not d.exists() for d in temp_dirs), temp_dirs
    assert list((tmp_path / "system-tmp").iterdir()) == []
    assert not list(out.rglob("kinoit-*"))


def test_merge_job_probes_each_rung_once_in_process(
    job: dict[str, Any], media_runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kinoit.media import merge
    from kinoit.media.merge_job import merge_job

    opened: list[str] = []
    real = merge.open_media

    def spy(path: Any, what: str) -> Any:
        opened.append(f"{what}:{path}")
        return real(path, what)

    monkeypatch.setattr(merge, "open_media", spy)
    split = job["split"]
    merge_job(
        job["renditions"], split.audio, job["root"] / "once", fps=split.fps,
        segment_frames=[s.frames for s in split.segments], settings=job["settings"],
    )  # fmt: skip
    probed = [name.removeprefix("probe:") for name in opened if name.startswith("probe:")]
    firsts = [str(paths[0]) for paths in job["renditions"].values()]
    assert sorted(p for p in probed if p != str(split.audio)) == sorted(firsts)
    assert not [argv for argv in media_runs if argv[0] == "ffprobe" and "-count_frames" not in argv]


def test_in_process_facts_are_ffprobes(job: dict[str, Any]) -> None:
    """The playlist's facts read in process equal what ffprobe reports of the same file."""

    from kinoit.media.merge import probe_audio_tracks, probe_facts

    for paths in job["renditions"].values():
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=codec_name,profile,level,width,height,pix_fmt", "-of", "json", str(paths[0])],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        s = json.loads(out.stdout)["streams"][0]
        facts = probe_facts(paths[0])
        assert (facts.codec, facts.profile, facts.level, facts.width, facts.height) == (
            s["codec_name"],
            s.get("profile", ""),
            int(s.get("level", -99)),
            s["width"],
            s["height"],
        )
        assert facts.pix_fmt == s["pix_fmt"]
    tracks = probe_audio_tracks(job["split"].audio)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries",
         "stream=codec_name,channels", "-of", "json", str(job["split"].audio)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    streams = json.loads(out.stdout)["streams"]
    assert [(t.codec, t.channels) for t in tracks] == [
        (s["codec_name"], s["channels"]) for s in streams
    ]


def test_counting_packets_instead_of_decoding_still_catches_a_wrong_count(
    job: dict[str, Any], media_runs
) -> None:
    path = job["renditions"]["vp9"][0]
    assert verify_output(path, expected_frames=30, decode=False).frames == 30
    with pytest.raises(MediaError, match="the source has 29"):
        verify_output(path, expected_frames=29, decode=False)
    assert all("-count_frames" not in argv for argv in media_runs)


def test_merge_after_the_checksum_verdict_demuxes_instead_of_decoding(
    job: dict[str, Any], media_runs
) -> None:
    split = job["split"]
    merged = merge_rung(
        job["renditions"]["90p"], split.audio, job["root"] / "counted" / "90p.mp4",
        fps=split.fps, segment_frames=[s.frames for s in split.segments], decode_check=False,
        settings=job["settings"],
    )  # fmt: skip
    assert merged.frames == 75
    # counted in this process: the merge itself is the only process
    assert [argv[0] for argv in media_runs] == ["ffmpeg"]


def test_only_segments_the_checksum_matched_skip_the_decode() -> None:
    from kinoit.stages.merge import verified_by_checksum

    def entry(verdict: str, frames: int | None = None) -> dict[str, Any]:
        rung: dict[str, Any] = {"verdict": verdict}
        if frames is not None:
            rung["frames"] = frames
        return {"start_frame": 0, "end_frame": 25, "checksum": {"rungs": {"720p": rung}}}

    assert verified_by_checksum([entry("match"), entry("match", 25)], "720p")
    assert not verified_by_checksum([entry("match"), entry("mismatch")], "720p")
    assert not verified_by_checksum([entry("match", 24)], "720p")  # a frame short
    assert not verified_by_checksum([entry("match")], "480p")  # never checked
    assert not verified_by_checksum([{"start_frame": 0, "end_frame": 25}], "720p")


# --------------------------------------------------------------- audio renditions
def master_attrs(line: str) -> dict[str, str]:
    """The attributes of an EXT-X-STREAM-INF / EXT-X-MEDIA line (quoted values unquoted)."""
    body = line.split(":", 1)[1]
    out: dict[str, str] = {}
    for key, quoted, plain in re.findall(r'([A-Z-]+)=(?:"([^"]*)"|([^,]*))', body):
        out[key] = quoted or plain
    return out


def segments_of(playlist: Path) -> list[tuple[Path, float]]:
    """(file, EXTINF) of every segment, read line by line."""
    lines = playlist.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("#EXTINF:"):
            out.append((playlist.parent / lines[i + 1], float(line[8:].split(",")[0])))
    return out


def rfc_peak(segments: list[tuple[Path, float]]) -> float:
    """RFC 8216's peak segment bit rate, by brute force over every run of segments."""
    target = max(round(d) for _, d in segments) or 1
    rates = []
    for i in range(len(segments)):
        for j in range(i + 1, len(segments) + 1):
            run = segments[i:j]
            span = sum(d for _, d in run)
            if 0.5 * target <= span <= 1.5 * target:
                rates.append(sum(p.stat().st_size for p, _ in run) * 8 / span)
    return max(rates)


def rfc_average(segments: list[tuple[Path, float]]) -> float:
    return sum(p.stat().st_size for p, _ in segments) * 8 / sum(d for _, d in segments)


def audio_streams(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries",
         "stream=codec_name,channels:stream_tags=language", "-of", "json", str(path)],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    streams: list[dict[str, Any]] = json.loads(out)["streams"]
    return streams


def channel_levels(path: Path) -> list[float]:
    """The RMS level (dB) of each channel of the first audio stream of ``path``."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:a:0",
         "-af", "astats=measure_overall=none:measure_perchannel=RMS_level", "-f", "null", "-"],
        capture_output=True, check=True, timeout=60,
    ).stderr.decode()  # fmt: skip
    return [float(x.split(":")[1]) for x in out.splitlines() if "RMS level dB:" in x]


@pytest.fixture(scope="module")
def surround_job(clip, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 5.1 source tagged French, split, transcoded (two H.264 rungs and VP9), packaged."""
    from kinoit.config import load_settings

    settings = load_settings({})
    root = tmp_path_factory.mktemp("surround")
    src = clip("surround", seconds=3.0, channels=6, language="fre")
    split = split_video(src, root / "split", settings=settings)
    for seg in split.segments:
        transcode_split_segment(split, seg.index, LADDER, root / "rend", settings=settings)
    renditions = rendition_segments(root / "rend", [s.path.stem for s in split.segments])
    master = package_hls(
        renditions, root / "hls", fps=split.fps,
        segment_frames=[s.frames for s in split.segments], audio_path=split.audio,
        settings=settings,
    )  # fmt: skip
    return {"split": split, "renditions": renditions, "master": master, "root": root}


def test_split_encodes_a_stereo_downmix_then_the_surround_with_the_language(
    surround_job: dict[str, Any],
) -> None:
    audio = surround_job["split"].audio
    assert [(s["codec_name"], s["channels"]) for s in audio_streams(audio)] == [
        ("aac", 2),
        ("aac", 6),
    ]
    assert [s["tags"]["language"] for s in audio_streams(audio)] == ["fre", "fre"]
    # the downmix carries the tones of every source channel on both sides
    left, right = channel_levels(audio)
    assert left > -30 and right > -30


def test_bandwidths_include_the_largest_audio_rendition_measured_on_the_segments(
    surround_job: dict[str, Any],
) -> None:
    master = surround_job["master"]
    lines = master.read_text().splitlines()
    media = [master_attrs(x) for x in lines if x.startswith("#EXT-X-MEDIA:")]
    audio = [segments_of(master.parent / m["URI"]) for m in media]
    audio_peak = max(rfc_peak(a) for a in audio)
    audio_average = max(rfc_average(a) for a in audio)
    assert audio_peak > 100_000  # the audio is not negligible: leaving it out is wrong
    infs = [(master_attrs(x), lines[i + 1]) for i, x in enumerate(lines) if "STREAM-INF" in x]
    assert len(infs) == 3
    for attrs, uri in infs:
        video = segments_of(master.parent / uri)
        peak, average = rfc_peak(video) + audio_peak, rfc_average(video) + audio_average
        assert abs(int(attrs["BANDWIDTH"]) - peak) <= 1, uri
        assert abs(int(attrs["AVERAGE-BANDWIDTH"]) - average) <= 1, uri
        assert int(attrs["BANDWIDTH"]) >= int(attrs["AVERAGE-BANDWIDTH"])
        assert attrs["CODECS"].split(",")[1] == "mp4a.40.2" and attrs["AUDIO"] == "audio"


def test_stereo_default_and_surround_renditions_with_channels_and_language(
    surround_job: dict[str, Any],
) -> None:
    master = surround_job["master"]
    media = [master_attrs(x) for x in master.read_text().splitlines() if "EXT-X-MEDIA:" in x]
    assert [(m["CHANNELS"], m["DEFAULT"], m["LANGUAGE"]) for m in media] == [
        ("2", "YES", "fr"),
        ("6", "NO", "fr"),
    ]
    assert all(m["TYPE"] == "AUDIO" and m["GROUP-ID"] == "audio" for m in media)
    assert all(m["AUTOSELECT"] == "YES" for m in media)
    assert len({m["NAME"] for m in media}) == 2  # NAME is unique in the group
    for m, channels in zip(media, (2, 6), strict=True):
        segments = segments_of(master.parent / m["URI"])
        assert abs(sum(d for _, d in segments) - 3.0) < 0.05
        assert [s["channels"] for s in audio_streams(segments[0][0])] == [channels]


def test_the_mp4_keeps_both_tracks_stereo_first_with_their_language(
    surround_job: dict[str, Any], tmp_path: Path
) -> None:
    split = surround_job["split"]
    merged = merge_rung(
        surround_job["renditions"]["90p"], split.audio, tmp_path / "90p.mp4", fps=split.fps,
        segment_frames=[s.frames for s in split.segments],
    )  # fmt: skip
    streams = audio_streams(merged.path)
    assert [(s["channels"], s["tags"]["language"]) for s in streams] == [(2, "fre"), (6, "fre")]


def test_a_mono_source_without_a_language_gets_one_stereo_rendition_und(
    job: dict[str, Any],
) -> None:
    split = job["split"]
    assert [s["channels"] for s in audio_streams(job["src"])] == [1]
    master = package_hls(
        {"48p": job["renditions"]["48p"]}, job["root"] / "mono-hls", fps=split.fps,
        segment_frames=[s.frames for s in split.segments], audio_path=split.audio,
        settings=job["settings"],
    )  # fmt: skip
    media = [master_attrs(x) for x in master.read_text().splitlines() if "EXT-X-MEDIA:" in x]
    assert [(m["CHANNELS"], m["DEFAULT"], m["LANGUAGE"]) for m in media] == [("2", "YES", "und")]
    segment = segments_of(master.parent / media[0]["URI"])[0][0]
    assert [s["channels"] for s in audio_streams(segment)] == [2]
    # the mono tone is on both sides at its own level (copied, not halved)
    src_level = channel_levels(job["src"])[0]
    assert all(abs(level - src_level) < 1.5 for level in channel_levels(split.audio))


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("eng", "en"), ("fre", "fr"), ("fra", "fr"), ("ger", "de"), ("jpn", "ja"), ("en", "en"),
     ("en-US", "en-US"), ("yue", "yue"), ("und", "und"), (None, "und"), ("", "und"),
     ("English", "und"), ("e1", "und")],
)  # fmt: skip
def test_language_tags_become_rfc5646(tag: str | None, expected: str) -> None:
    from kinoit.media.playlists import language_tag

    assert language_tag(tag) == expected


def test_peak_segment_bitrate_follows_the_rfc_window() -> None:
    from kinoit.media.playlists import peak_segment_bitrate

    # a short last segment is only counted together with its neighbour
    assert peak_segment_bitrate([1000, 1000, 900], [1.0, 1.0, 0.2]) == pytest.approx(
        (1000 + 900) * 8 / 1.2
    )
    assert peak_segment_bitrate([1000, 3000], [1.0, 1.0]) == 24000
    assert peak_segment_bitrate([100], [0.2]) == 4000  # too short for any window: overall
    with pytest.raises(InvalidParameter):
        peak_segment_bitrate([1], [1.0, 2.0])
