"""`kinoit run` helpers: progress text, safe listing paths, source resolution."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import InvalidParameter, NotFound
from kinoit.service.runner import (
    ProgressView,
    format_progress,
    resolve_source,
    safe_relative,
    watch_job,
)
from kinoit.store import EmbeddedStore

from tests.service.conftest import Harness


def test_progress_line_shows_stages_in_order_and_an_eta() -> None:
    job = {
        "state": "running",
        "stages": {
            "transcode": {"done": 2, "total": 4, "retrying": 1},
            "split": {"done": 1, "total": 1, "retrying": 0},
        },
        "tasks": {"done": 3, "total": 6},
    }
    line = format_progress(job, 6.0)
    assert line.index("split 1/1") < line.index("transcode 2/4 (1 retrying)")
    # 3 done of 1 split + 4 transcodes + their 4 checksums + 1 merge still to come
    assert line.endswith("ETA 14s")
    assert line.startswith("[" + "#" * 6 + "." * 14 + "] running")


def test_plain_progress_writes_lines_not_carriage_returns() -> None:
    stream = io.StringIO()
    view = ProgressView(stream, clock=iter(range(0, 100, 5)).__next__)
    view.update("a")
    view.update("b")
    view.close()
    assert "\r" not in stream.getvalue() and stream.getvalue().splitlines()[-1] == "b"


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", ""])
def test_listing_paths_cannot_escape(path: str) -> None:
    with pytest.raises(InvalidParameter):
        safe_relative(path)


def test_source_path_is_added_and_unknown_cid_refused(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", durable=False)
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"hello world\n")
    assert resolve_source(store, str(clip)) == (
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    )
    with pytest.raises(NotFound):
        resolve_source(store, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    with pytest.raises(InvalidParameter):
        resolve_source(store, "no-such-file.mp4")


def _bar(line: str) -> int:
    return line[1 : line.index("]")].count("#")


def test_progress_bar_counts_the_tasks_still_to_come_and_never_goes_back() -> None:
    def job(transcode: tuple[int, int], checksum: tuple[int, int], state: str = "running") -> Any:
        stages = {
            "split": {"done": 1, "total": 1},
            "transcode": {"done": transcode[0], "total": transcode[1]},
            "thumbnail": {"done": 4, "total": 4},
        }
        if checksum[1]:
            stages["checksum"] = {"done": checksum[0], "total": checksum[1]}
        done = 1 + transcode[0] + 4 + checksum[0]
        total = 1 + transcode[1] + 4 + checksum[1]
        return {"state": state, "stages": stages, "tasks": {"done": done, "total": total}}

    # four segments: checksums are only added as transcodes finish
    snapshots = [job((0, 4), (0, 0)), job((2, 4), (0, 2)), job((4, 4), (2, 4)), job((4, 4), (4, 4))]
    bars = [_bar(format_progress(j, 1.0)) for j in snapshots]
    assert bars == sorted(bars) and bars[-1] < 20  # merge still to come
    # 7 done of 1 split + 4 transcodes + 4 thumbnails + 4 checksums + 1 merge = 14
    assert bars[1] == round(20 * 7 / 14)
    assert _bar(format_progress({**snapshots[-1], "state": "completed"}, 1.0)) == 20


@pytest.mark.redis
def test_watch_prints_every_event_up_to_the_end(harness: Harness) -> None:
    job_id = harness.submit()
    harness.drain()
    everything = harness.engine.follow(job_id, "0-0", count=100_000)

    class SmallReads:
        """The engine, reading ten events at a time."""

        def __getattr__(self, name: str) -> Any:
            return getattr(harness.engine, name)

        def follow(self, job: str, last: str, block_ms: int | None = None) -> Any:
            return harness.engine.follow(job, last, block_ms, count=10)

    stream = io.StringIO()
    assert watch_job(SmallReads(), job_id, stream, timeout=10) == "completed"
    lines = stream.getvalue().splitlines()
    assert len(everything) > 10 and len(lines) == len(everything)
    assert lines[-1].split()[1] == everything[-1].type == "job.completed"
