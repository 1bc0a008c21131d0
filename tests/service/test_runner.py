"""`kinoit run` helpers: progress text, safe listing paths, source resolution."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from kinoit.errors import InvalidParameter, NotFound
from kinoit.service.runner import ProgressView, format_progress, resolve_source, safe_relative
from kinoit.store import EmbeddedStore


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
    assert line.endswith("ETA 6s")
    assert line.startswith("[" + "#" * 10 + "." * 10 + "] running")


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
