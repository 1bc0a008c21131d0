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
