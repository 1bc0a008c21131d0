"""`kinoit run` helpers: progress text, safe listing paths, source resolution."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import InvalidParameter, NotFound
from kinoit.local.run import (
    ProgressView,
    check_out_dir,
    export_outputs,
    format_progress,
    progress_fraction,
    resolve_source,
    run_dispatch_window,
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


@pytest.mark.parametrize(
    "path", ["../x", "/etc/passwd", "a/../../b", "", ".", "a//b", "a/.hidden", "360p\n/x.ts", 7]
)
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


def test_progress_bar_holds_when_the_merge_tasks_are_added() -> None:
    def job(merge: tuple[int, int]) -> Any:
        stages = {
            "split": {"done": 1, "total": 1},
            "transcode": {"done": 4, "total": 4},
            "thumbnail": {"done": 4, "total": 4},
            "checksum": {"done": 4, "total": 4},
        }
        if merge[1]:
            stages["merge"] = {"done": merge[0], "total": merge[1]}
        done, total = 13 + merge[0], 13 + merge[1]
        return {"state": "running", "stages": stages, "tasks": {"done": done, "total": total}}

    # a merge task per rung (3) and the media part, then the final one
    snapshots = [job((0, 0)), job((0, 4)), job((3, 4)), job((4, 5))]
    shares = [progress_fraction(j) for j in snapshots]
    assert shares[1] < shares[0]  # the share done dips as the merge tasks are added
    shown, bars = 0.0, []
    for j in snapshots:
        bars.append(_bar(format_progress(j, 1.0, shown)))
        shown = max(shown, progress_fraction(j))
    assert bars == sorted(bars) and bars[0] == round(20 * 13 / 14) and bars[-1] < 20
    # the ETA follows the share shown, not the dip
    assert format_progress(snapshots[1], 13.0, shares[0]).endswith("ETA 1s")


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


# ------------------------------------------------- kinoit run --out DIR, run after run
def fake_job(
    store: EmbeddedStore, tmp_path: Path, rungs: list[str], segments: int, storyboard: bool
) -> str:
    """A finished job's manifest, with tiny files standing in for the media."""
    from kinoit.store.cid import CID

    blobs = tmp_path / "blobs"
    blobs.mkdir(exist_ok=True)

    def blob(name: str) -> CID:
        path = blobs / name
        path.write_bytes(f"{name} of {'+'.join(rungs)}".encode())
        return CID.parse(store.add(path, pin=True))

    entries = {"master.m3u8": blob("master.m3u8")}
    entries.update({f"{rung}/index.m3u8": blob(f"{rung}.m3u8") for rung in rungs})
    outputs: dict[str, Any] = {
        "mp4": {rung: blob(f"{rung}.mp4") for rung in rungs},
        "hls": CID.parse(store.dag_put({"entries": entries})),
    }
    if storyboard:
        outputs["storyboard"] = blob("storyboard.jpg")
    return store.dag_put(
        {
            "source": {"frames": 25 * segments},
            "segments": [{"index": i, "thumbnail": blob(f"t{i}.jpg")} for i in range(segments)],
            "outputs": outputs,
        }
    )


def listing(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_a_rerun_with_other_rungs_leaves_only_its_own_mp4s(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", durable=False)
    out = tmp_path / "out"
    export_outputs(store, fake_job(store, tmp_path, ["360p", "480p"], 3, True), out)
    (out / "notes.txt").write_text("mine")  # not an MP4, not kinoit's: left alone
    second = fake_job(store, tmp_path, ["240p"], 2, False)
    written = export_outputs(store, second, out)
    assert {p.name for p in out.iterdir() if p.suffix == ".mp4"} == {"240p.mp4"}
    assert (out / "240p.mp4").read_text() == "240p.mp4 of 240p"
    assert listing(out) == {
        "240p.mp4", "hls/master.m3u8", "hls/240p/index.m3u8", "hls/360p/index.m3u8",
        "hls/480p/index.m3u8", "thumbs/00000.jpg", "thumbs/00001.jpg", "manifest.json",
        "notes.txt",
    }  # fmt: skip
    assert set(written) == {out / name for name in listing(out)} - {
        out / "notes.txt", out / "hls/360p/index.m3u8", out / "hls/480p/index.m3u8",
    }  # fmt: skip
    assert list(json.loads((out / "manifest.json").read_text())["outputs"]["mp4"]) == ["240p"]


@pytest.mark.parametrize("name", ["holiday.mp4", "360p.mp4", "CLIP.MP4"])
def test_mp4s_kinoit_did_not_write_are_refused_and_kept(tmp_path: Path, name: str) -> None:
    store = EmbeddedStore(tmp_path / "store", durable=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text("the user's own")
    job = fake_job(store, tmp_path, ["360p"], 1, False)
    with pytest.raises(InvalidParameter, match=re.escape(name)) as caught:
        export_outputs(store, job, out)
    assert caught.value.field == "--out"
    assert listing(out) == {name} and (out / name).read_text() == "the user's own"


def test_an_mp4_added_beside_an_earlier_run_is_refused(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", durable=False)
    out = tmp_path / "out"
    export_outputs(store, fake_job(store, tmp_path, ["360p"], 1, False), out)
    (out / "extra.mp4").write_text("the user's own")
    with pytest.raises(InvalidParameter, match=re.escape("extra.mp4")):
        check_out_dir(out)
    (out / "extra.mp4").unlink()
    assert check_out_dir(out) is not None


def test_a_manifest_json_kinoit_did_not_write_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"name": "my project"}')
    with pytest.raises(InvalidParameter, match="not a kinoit manifest"):
        check_out_dir(out)
    (out / "file").write_text("")
    with pytest.raises(InvalidParameter, match="not a directory"):
        check_out_dir(out / "file")


def test_a_failed_export_leaves_the_previous_outputs_as_they_were(tmp_path: Path) -> None:
    from kinoit.errors import KinoitError

    store = EmbeddedStore(tmp_path / "store", durable=False)
    out = tmp_path / "out"
    export_outputs(store, fake_job(store, tmp_path, ["360p"], 1, True), out)
    before = {name: (out / name).read_bytes() for name in listing(out)}
    broken = fake_job(store, tmp_path, ["240p"], 1, False)
    manifest = store.dag_get(broken)
    # not a CID: the export fails after the MP4 and the playlists were written
    manifest["segments"][0]["thumbnail"] = manifest["source"]
    with pytest.raises((KinoitError, ValueError, TypeError)):
        export_outputs(store, store.dag_put(manifest), out)
    assert {name: (out / name).read_bytes() for name in listing(out)} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".kinoit-export-")]


def test_kinoit_run_refuses_a_directory_with_foreign_mp4s_before_starting(tmp_path: Path) -> None:
    from kinoit.config import load_settings
    from kinoit.local.run import run_job

    out = tmp_path / "out"
    out.mkdir()
    (out / "holiday.mp4").write_text("the user's own")
    settings = load_settings({"KINOIT_HOME": str(tmp_path / "home")})
    with pytest.raises(InvalidParameter) as caught:
        run_job(settings, str(tmp_path / "missing.mp4"), out_dir=out)
    assert caught.value.field == "--out" and not (tmp_path / "home").exists()


def test_progress_events_wake_on_a_new_event_and_time_out_without_one(
    harness: Harness, redis_url: str
) -> None:
    import time

    from kinoit.local.run import ProgressEvents

    job_id = harness.submit()
    with ProgressEvents(redis_url, job_id) as events:
        assert events.wait(1.0)  # the job's events so far
        while events.wait(0.05):  # caught up with what is there
            pass
        started = time.monotonic()
        assert not events.wait(0.3)  # nothing new: it waited the time out
        assert time.monotonic() - started >= 0.25
        harness.drain()  # the job runs: new events
        started = time.monotonic()
        assert events.wait(5.0)
        assert time.monotonic() - started < 2.0
    # no Redis there: it waits the time out and says nothing came
    with ProgressEvents("redis://127.0.0.1:1/0", job_id) as gone:
        started = time.monotonic()
        assert not gone.wait(0.2)
        assert time.monotonic() - started >= 0.15


def test_kinoit_run_sizes_its_dispatch_window_to_its_workers() -> None:
    from kinoit.config import DISPATCH_TASKS_PER_WORKER, load_settings

    settings = load_settings({})
    # the window a deployment of that many workers gets (KINOIT_WORKERS)
    for workers in (1, 2, 32):
        expected = load_settings({"KINOIT_WORKERS": str(workers)}).dispatch_window
        assert run_dispatch_window(workers, settings) == expected
        assert expected == DISPATCH_TASKS_PER_WORKER * workers
    own = load_settings({"KINOIT_DISPATCH_WINDOW": "3"})
    assert own.dispatch_window_set and not settings.dispatch_window_set
    assert run_dispatch_window(2, own) is None  # the user's own window stands
