"""hls.js in a real Chromium plays a job's preview while the job still runs: the
``preview.hls`` URL of the job status, in a plain ``<video>``, no bearer header,
served by orchestrate on `kinoit dev` (two workers, real ffmpeg)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.player import play_hls
from tests.e2e.conftest import JOB_TIMEOUT, Dev, start_dev, stop_dev

SECONDS = 4
# merge waits long enough for the whole playback: the job is mid-way throughout.
HOLD_MERGE_SECONDS = 40


@pytest.fixture
def held_dev(tmp_path: Path) -> Iterator[Dev]:
    """`kinoit dev` whose merge stage waits, so jobs stay running once verified."""
    dev = start_dev(tmp_path / "dev", KINOIT_FAILPOINTS=f"stage.merge=sleep({HOLD_MERGE_SECONDS})")
    try:
        yield dev
    finally:
        stop_dev(dev)


def test_hls_js_plays_the_preview_of_a_running_job(
    held_dev: Dev, page: Any, hls_js: Path, tmp_path: Path
) -> None:
    from kinoit.media.synth import make_clip

    clip = make_clip(tmp_path / "clip.mp4", seconds=SECONDS, width=160, height=90, audio=True)
    job_id = held_dev.submit(held_dev.add(clip))
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:  # until three segments are verified (the job then waits in merge)
        job = held_dev.job(job_id)
        assert job["state"] == "running", job
        if job.get("preview", {}).get("segments", 0) >= 3:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    url = job["preview"]["hls"]
    assert url.startswith(held_dev.orchestrate + "/preview/")
    playback = play_hls(page, held_dev.url, url, hls_js, until_s=2.5, timeout_s=60)
    assert playback.fatal is None, playback.errors
    assert playback.played_s >= 2.5
    assert sorted(level["height"] for level in playback.levels) == [48, 90]
    # hls.js lists the audio renditions once it has read them (after the manifest)
    tracks = page.evaluate(
        "() => window.__kinoitHls.audioTracks.map((t) => [t.channels, t.default, t.lang])"
    )
    assert tracks == [["2", True, "und"]]
    buffered = page.evaluate(
        "() => { const v = document.querySelector('video');"
        " return [v.buffered.length, v.buffered.end(v.buffered.length - 1)]; }"
    )
    assert buffered[0] >= 1 and buffered[1] >= 2.5
    # the sound plays too: the audio segments were fetched and appended
    fetched = page.evaluate(
        "() => performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((n) => n.includes('/audio/') && n.endsWith('.ts')).length"
    )
    assert fetched >= 2
    assert held_dev.job(job_id)["state"] == "running"  # watched mid-job
    assert page.console_errors == []
