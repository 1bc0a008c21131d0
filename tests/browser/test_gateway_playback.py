"""A user pastes `/ipfs/<outputs.directory>/hls/master.m3u8` into a player: hls.js in
Chromium plays a finished job to the end, every level, from our gateway (`kinoit dev`,
embedded store) and from Kubo's own gateway holding the same blocks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.player import Playback, play_hls
from tests.e2e.conftest import Dev, start_dev, stop_dev

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]


@dataclass
class FinishedJob:
    dev: Dev
    job: dict[str, Any]

    @property
    def directory(self) -> str:
        return str(self.job["outputs"]["directory"])


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedJob]:
    """One job of a 3-second clip with sound, two rungs, on a fresh `kinoit dev`."""
    from kinoit.media.synth import make_clip

    root = tmp_path_factory.mktemp("playback")
    clip = make_clip(root / "clip.mp4", seconds=3, width=160, height=90, audio=True)
    dev = start_dev(root)
    try:
        job_id = dev.submit(dev.add(clip))
        job = dev.wait_state(job_id, {"completed", "failed", "cancelled"})
        assert job["state"] == "completed", job
        yield FinishedJob(dev, job)
    finally:
        stop_dev(dev)


def assert_played_whole(result: Playback, rungs: int) -> None:
    assert result.fatal is None, result.errors
    assert len(result.levels) == rungs
    assert result.levels_played == set(range(rungs)), result
    assert result.ended, result
    assert result.duration_s == pytest.approx(3.0, abs=0.25)
    assert result.played_s == pytest.approx(result.duration_s, abs=0.1)


def test_plays_from_our_gateway(page: Any, hls_js: Path, finished_job: FinishedJob) -> None:
    dev = finished_job.dev
    url = f"{dev.orchestrate}/ipfs/{finished_job.directory}/hls/master.m3u8"
    result = play_hls(page, dev.url, url, hls_js, every_level=True)
    assert_played_whole(result, rungs=2)


@pytest.mark.kubo
def test_plays_from_kubos_gateway(
    page: Any, hls_js: Path, finished_job: FinishedJob, kubo: Any
) -> None:
    from kinoit.store.kubo import KuboStore

    # Kubo gets the very blocks of the embedded store (a CAR of the directory's DAG)
    car = io.BytesIO()
    finished_job.dev.store().car_export(finished_job.directory, car)
    car.seek(0)
    roots = KuboStore(kubo.api_url, timeout=60, retries=1).car_import(car)
    assert roots == [finished_job.directory]
    origin = f"http://127.0.0.1:{kubo.gateway_port}"
    url = f"{origin}/ipfs/{finished_job.directory}/hls/master.m3u8"
    result = play_hls(page, origin, url, hls_js, every_level=True)
    assert_played_whole(result, rungs=2)
