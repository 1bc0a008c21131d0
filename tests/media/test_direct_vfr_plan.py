"""The first split task plans a variable-frame-rate MP4 as a direct transcode (ranges
of output frames of the source resampled to its average rate, as many as the
whole-source lossless split gives), and its audio task cuts the audio to that many
frames; a VFR source whose timestamps do not start at 0 keeps the lossless split."""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from kinoit.config import Settings, load_settings
from kinoit.media.ranges import SplitRange
from kinoit.stages import split as split_stage
from kinoit.store import open_store


def _vfr_mp4(path: Path, *extra: str, audio: bool = True) -> Path:
    """4 s at 30 fps, every tenth frame half a frame late (90 kHz), with sound."""
    sound = ["-f", "lavfi", "-i", "sine=f=440:sample_rate=48000", "-map", "1:a", "-c:a", "aac"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30",
         *(sound if audio else []), "-t", "4",
         "-vf", "settb=1/90000,setpts=(N+0.5*floor(N/10))/30/TB", "-map", "0:v",
         "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "40", "-keyint_min", "40",
         "-sc_threshold", "0", "-fps_mode", "vfr", "-video_track_timescale", "90000",
         *extra, str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def _resampled_count(path: Path, fps: str) -> int:
    """Frames of the whole source through fps=<rate>, as the lossless split resamples it."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
         "-map", "0:v:0", "-vf", f"fps={fps}", "-fps_mode", "passthrough",
         "-c:v", "wrapped_avframe", "-f", "framecrc", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    return sum(1 for line in out.splitlines() if line[:1] != "#")


@pytest.fixture
def stage_settings(tmp_path: Path) -> Settings:
    (tmp_path / "scratch").mkdir(mode=0o700)
    return load_settings(
        {"KINOIT_HOME": str(tmp_path / "home"), "KINOIT_SCRATCH_DIR": str(tmp_path / "scratch")}
    )


def _first_task(src: Path, settings: Settings) -> dict[str, object]:
    cid = open_store(settings).add(src, pin=False)
    body = {"source": cid, "segment_seconds": "1", "transcode_range_seconds": "2"}
    return split_stage.run(split_stage.parse_request(body), settings)


def test_a_vfr_mp4_is_planned_directly_with_the_lossless_splits_frames(
    tmp_path: Path, stage_settings: Settings
) -> None:
    src = _vfr_mp4(tmp_path / "vfr.mp4")
    result = _first_task(src, stage_settings)
    assert result.get("direct"), "a VFR MP4 starting at 0 is transcoded directly"
    source = dict(result["source"])  # type: ignore[call-overload]
    total = _resampled_count(src, str(source["fps"]))
    assert Fraction(str(source["fps"])) != 30 and source["frames"] == total
    ranges = list(result["direct"])  # type: ignore[call-overload]
    # keyframes at source frames 0, 40 and 80: the second range starts at segment 3
    # (output frame 84), closer after keyframe 80 than its nominal segment 2 is after 40
    assert all(r["vfr"] for r in ranges) and len(ranges) == 2
    assert (ranges[1]["first"], ranges[1]["key_frame"]) == (3, 80)
    parsed = [SplitRange.from_json(r) for r in ranges]
    assert parsed[0].start_frame == 0 and parsed[-1].start_frame + parsed[-1].frames == total
    assert all(a.start_frame + a.frames == b.start_frame for a, b in itertools.pairwise(parsed))
    k = int(result["segment_frames"])  # type: ignore[call-overload]
    assert [Fraction(p) for p in ranges[1]["pts"]] == [
        Fraction(i * k) / Fraction(str(source["fps"])) for i in (3, 4)
    ]
    # the audio task: the audio as long as the resampled video
    body = {"source": result["source_cid"], "segment_seconds": "1", "part": "audio"}
    audio = split_stage.run(split_stage.parse_request(body), stage_settings)
    assert audio["audio"] and dict(audio["source"])["frames"] == total  # type: ignore[call-overload]
    # as the orchestrator asks it: with the plan's count, the same audio
    told = split_stage.run(split_stage.parse_request({**body, "frames": total}), stage_settings)
    assert told["audio"] == audio["audio"]


def test_a_vfr_mp4_that_does_not_start_at_zero_keeps_the_lossless_split(
    tmp_path: Path, stage_settings: Settings
) -> None:
    src = _vfr_mp4(tmp_path / "late.mp4", "-output_ts_offset", "0.5", audio=False)
    result = _first_task(src, stage_settings)
    assert "direct" not in result
    source = dict(result["source"])  # type: ignore[call-overload]
    assert result["segments"] == 5 and source["frames"] == _resampled_count(src, str(source["fps"]))


def test_a_vfr_mp4_whose_sound_starts_before_its_video_is_split_from_the_files_start(
    tmp_path: Path, stage_settings: Settings
) -> None:
    # AAC's priming puts the sound 22 ms before the video (0.478 s and 0.5 s): the file
    # starts with the sound. The resampled video starts there too (its first frame
    # shown from slot 0), so the segments are whole and in step with the audio; it
    # used to fail with "segments are not 28 frames each: [29, 28, 28, 28, 2]".
    src = _vfr_mp4(tmp_path / "early-sound.mp4", "-output_ts_offset", "0.5")
    streams = _start_times(src)
    assert streams["audio"] < streams["video"]
    result = _first_task(src, stage_settings)
    assert "direct" not in result
    source = dict(result["source"])  # type: ignore[call-overload]
    fps = Fraction(str(source["fps"]))
    assert result["segments"] == 5 and result["audio"]
    # every frame from the file's start to the video's end, one per 1/fps
    seconds = _video_end(src) - streams["audio"]
    assert abs(Fraction(int(source["frames"])) / fps - Fraction(seconds)) < 1 / fps


def _start_times(path: Path) -> dict[str, float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,start_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, check=True, timeout=30, text=True,
    ).stdout  # fmt: skip
    return {kind: float(start) for kind, start in (line.split(",") for line in out.split())}


def _video_end(path: Path) -> float:
    """The end of the video's last frame (its timestamp plus its duration), seconds."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time,duration_time", "-of", "csv=p=0", str(path)],
        capture_output=True, check=True, timeout=30, text=True,
    ).stdout  # fmt: skip
    return max(float(pts) + float(dur) for pts, dur in (line.split(",") for line in out.split()))
