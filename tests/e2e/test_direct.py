"""The direct transcode end to end on `kinoit dev` with real ffmpeg: a constant-rate MP4
is planned by the first split task, transcoded by one task per range of segments read
from the source (every rung, the signatures and thumbnails from one decode), checked
per segment on other tasks, and merged into outputs with the frames and timing of
the per-segment path's."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from kinoit.local.run import export_outputs

from tests.e2e.conftest import API_TOKEN, Dev, Receiver, functions_with
from tests.e2e.test_failures import _kill_worker_running, run_to_failure

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]


def _video_pts(path: Path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=pts_time", "-of", "json", str(path)],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return sorted(float(f["pts_time"]) for f in json.loads(out)["frames"])


@pytest.fixture(scope="module")
def per_segment_job(long_gop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs of the per-segment path (direct transcode off): the reference."""
    from tests.e2e.conftest import start_dev, stop_dev

    root = tmp_path_factory.mktemp("per-segment")
    dev = start_dev(root, KINOIT_TRANSCODE_RANGE_SECONDS="0", KINOIT_SPLIT_RANGE_SECONDS="0")
    try:
        job = dev.wait_state(dev.submit(dev.add(long_gop)), {"completed", "failed"})
        assert job["state"] == "completed", job.get("error")
        assert job["stages"]["thumbnail"]["done"] == 6 and job["stages"]["split"]["done"] == 1
        export_outputs(dev.store(), job["manifest"], root / "out")
    finally:
        stop_dev(dev)
    return root / "out"


def test_a_direct_job_has_the_per_segment_jobs_frames_and_timing(
    dev_factory: Callable[..., Dev], long_gop: Path, per_segment_job: Path, tmp_path: Path
) -> None:
    dev = dev_factory(KINOIT_TRANSCODE_RANGE_SECONDS="2")
    job_id = dev.submit(dev.add(long_gop))
    job = dev.wait_state(job_id, {"completed", "failed"})
    assert job["state"] == "completed", job.get("error")
    stages = job["stages"]
    # the plan and the audio; three range tasks standing for six transcodes and six
    # thumbnails; a checksum per segment on its own task
    assert stages["split"]["done"] == 2
    assert stages["transcode"]["done"] == stages["transcode"]["total"] == 6
    assert stages["thumbnail"]["done"] == 6 and stages["checksum"]["done"] == 6
    tasks = dev.call("GET", f"/jobs/{job_id}/segments", token=API_TOKEN).json()
    assert tasks["segments"] == 6 and all(t is not None for t in tasks["thumbnails"])
    assert all(cell[0] == "done" for row in tasks["grid"].values() for cell in row)
    export_outputs(dev.store(), job["manifest"], tmp_path / "out")
    mp4s = sorted(p.relative_to(per_segment_job) for p in per_segment_job.rglob("*.mp4"))
    assert mp4s and mp4s == sorted(p.relative_to(tmp_path / "out")
                                   for p in (tmp_path / "out").rglob("*.mp4"))  # fmt: skip
    for name in mp4s:
        ours, theirs = _video_pts(tmp_path / "out" / name), _video_pts(per_segment_job / name)
        assert len(ours) == len(theirs) == 150
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_a_wrong_rendition_of_a_range_is_rerun_alone_then_fails_the_job(
    dev_factory: Callable[..., Dev], receiver: Receiver, long_gop: Path, tmp_path: Path
) -> None:
    # the wrapper stores a negative picture for the segment at frame 50 (segment 2, in
    # the middle of the range 2..3) on the range run and on the segment's re-run
    functions = functions_with(tmp_path, "transcode-segment")
    dev = dev_factory(
        KINOIT_FUNCTIONS_DIR=str(functions), CORRUPT_START_FRAME="50",
        KINOIT_TRANSCODE_RANGE_SECONDS="2",
    )  # fmt: skip
    data, job = run_to_failure(dev, receiver, dev.add(long_gop))
    assert data["reason"].startswith("verification failed: segment 2: "), data["reason"]
    assert data["failed_tasks"][0]["task"] == "checksum.2.r2"
    # the range task of segments 2-3 and its settled segment 3, then segment 2's re-run
    assert job["stages"]["transcode"]["done"] >= 3 and "merge" not in job["stages"]


def test_a_good_rerun_of_a_range_segment_completes_the_job(
    dev_factory: Callable[..., Dev], long_gop: Path, tmp_path: Path
) -> None:
    # only the first run of segment 3 (the second of its range) is wrong: its re-run, a
    # range of that segment alone, passes and the job completes with it
    functions = functions_with(tmp_path, "transcode-segment")
    dev = dev_factory(
        KINOIT_FUNCTIONS_DIR=str(functions), CORRUPT_START_FRAME="75",
        CORRUPT_ONCE=str(tmp_path / "corrupted-once"),
        KINOIT_TRANSCODE_RANGE_SECONDS="2",
    )  # fmt: skip
    job_id = dev.submit(dev.add(long_gop))
    job = dev.wait_state(job_id, {"completed", "failed"})
    assert job["state"] == "completed", job.get("error")
    assert job["stages"]["transcode"]["total"] == 7 and job["stages"]["checksum"]["total"] == 7
    assert (tmp_path / "corrupted-once").exists()
    view = dev.call("GET", f"/jobs/{job_id}/segments").json()
    assert view["grid"]["transcode"][3][2] is True  # shown as re-run
    assert [row[2] for row in view["grid"]["checksum"]] == [False] * 3 + [True] + [False] * 2


@pytest.mark.slow
def test_a_killed_range_transcode_is_retried_and_the_outputs_are_unchanged(
    dev_factory: Callable[..., Dev], long_gop: Path
) -> None:
    first = dev_factory(KINOIT_TRANSCODE_RANGE_SECONDS="2")
    reference = first.wait_state(first.submit(first.add(long_gop)), {"completed", "failed"})
    dev = dev_factory(
        KINOIT_TRANSCODE_RANGE_SECONDS="2",
        KINOIT_FAILPOINTS="stage.transcode=sleep(3)",
        KINOIT_LEASE_SECONDS="20",
    )
    job_id = dev.submit(dev.add(long_gop))
    _kill_worker_running(dev, "transcode-segment", body_has=b'"range"')
    job = dev.wait_state(job_id, {"completed", "failed"})
    assert job["state"] == "completed", job.get("error")
    assert job["stages"]["transcode"]["retries"] >= 1
    assert job["outputs"]["directory"] == reference["outputs"]["directory"]


# x264 at crf 0 is lossless: a rung's decoded frames are the frames it was fed
LOSSLESS = {"name": "lossless", "rungs": [
    {"name": "90p", "codec": "h264", "height": 90, "crf": 0, "preset": "ultrafast"},
    {"name": "48p", "codec": "h264", "height": 48, "crf": 0, "preset": "ultrafast"},
]}  # fmt: skip


@pytest.fixture(scope="module")
def vfr_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s with sound, variable rate (every tenth frame half a frame late, 90 kHz),
    B-frames and a keyframe every 47 frames: planned directly, resampled to 28.7 fps."""
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=160x90:rate=30,noise=alls=8:allf=t",
         "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000", "-t", "6",
         "-vf", "settb=1/90000,setpts=(N+0.5*floor(N/10))/30/TB", "-map", "0:v", "-map", "1:a",
         "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "47", "-keyint_min", "47",
         "-sc_threshold", "0", "-fps_mode", "vfr", "-video_track_timescale", "90000",
         "-c:a", "aac", "-shortest", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def _frame_md5s(path: Path) -> list[str]:
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
         "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "framemd5", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line[:1] != "#"]


def test_a_vfr_job_through_the_direct_path_has_the_lossless_splits_frames(
    dev_factory: Callable[..., Dev], vfr_source: Path, tmp_path: Path
) -> None:
    outs = {}
    for name, env in [("old", {"KINOIT_TRANSCODE_RANGE_SECONDS": "0",
                                "KINOIT_SPLIT_RANGE_SECONDS": "0"}),
                      ("direct", {"KINOIT_TRANSCODE_RANGE_SECONDS": "2"})]:  # fmt: skip
        dev = dev_factory(**env)
        job = dev.wait_state(dev.submit(dev.add(vfr_source), ladder=LOSSLESS),
                             {"completed", "failed"})  # fmt: skip
        assert job["state"] == "completed", job.get("error")
        stages = job["stages"]
        segments = stages["thumbnail"]["total"]
        assert segments == 6 and stages["checksum"]["done"] == segments
        # the old path: one split of every segment; the direct one: the plan and the
        # audio, three range tasks standing for the six transcodes and thumbnails
        assert stages["split"]["done"] == (1 if name == "old" else 2)
        assert stages["transcode"]["done"] == stages["transcode"]["total"] == segments
        export_outputs(dev.store(), job["manifest"], tmp_path / name)
        outs[name] = tmp_path / name
    mp4s = sorted(p.relative_to(outs["old"]) for p in outs["old"].rglob("*.mp4"))
    assert mp4s == sorted(p.relative_to(outs["direct"]) for p in outs["direct"].rglob("*.mp4"))
    for name in mp4s:
        old, direct = outs["old"] / name, outs["direct"] / name
        frames = _frame_md5s(direct)
        assert len(frames) == 172  # 6 s resampled to 172/6 fps
        assert frames == _frame_md5s(old), name
        assert _video_pts(direct) == pytest.approx(_video_pts(old), abs=1e-6)
        # the audio, cut to the resampled video's length on both paths
        assert _audio_md5(direct) == _audio_md5(old), name


def _audio_md5(path: Path) -> str:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
         "-map", "0:a:0", "-f", "md5", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode().strip()  # fmt: skip
