"""hls.js in Chromium plays the final HLS of a 5.1 source tagged French: every level,
the stereo rendition as the default, and the 5.1 one when the viewer picks it."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.player import play_hls
from tests.browser.test_harness import QuietHandler

LADDER = {
    "rungs": [
        {"name": "90p", "codec": "h264", "height": 90, "crf": 28, "preset": "ultrafast"},
        {"name": "48p", "codec": "h264", "height": 48, "crf": 30, "preset": "ultrafast"},
    ]
}


@pytest.fixture
def surround_site(tmp_path: Path) -> Iterator[str]:
    """kinoit's HLS of a 3 s 5.1 clip tagged "fre", served on a loopback port."""
    from kinoit.config import load_settings
    from kinoit.media import make_clip, package_hls, split_video, transcode_split_segment
    from kinoit.media.merge_job import rendition_segments

    settings = load_settings({})
    src = make_clip(tmp_path / "src.mp4", seconds=3, width=160, height=90, channels=6,
                    language="fre")  # fmt: skip
    split = split_video(src, tmp_path / "split", settings=settings)
    for seg in split.segments:
        transcode_split_segment(split, seg.index, LADDER, tmp_path / "rend", settings=settings)
    renditions = rendition_segments(tmp_path / "rend", [s.path.stem for s in split.segments])
    package_hls(
        renditions, tmp_path / "site", fps=split.fps,
        segment_frames=[s.frames for s in split.segments], audio_path=split.audio,
        settings=settings,
    )  # fmt: skip
    handler = functools.partial(QuietHandler, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_hls_js_plays_stereo_by_default_and_the_surround_on_request(
    page: Any, hls_js: Path, surround_site: str
) -> None:
    master = f"{surround_site}/master.m3u8"
    result = play_hls(page, surround_site, master, hls_js, every_level=True)
    assert result.fatal is None, result.errors
    assert result.ended and result.levels_played == {0, 1}
    tracks = page.evaluate(
        "() => window.__kinoitHls.audioTracks.map((t) => [t.name, t.lang, t.channels, t.default])"
    )
    assert tracks == [["Stereo", "fr", "2", True], ["Surround 5.1", "fr", "6", False]]
    assert page.evaluate("() => window.__kinoitHls.audioTrack") == 0
    # the viewer picks the 5.1: its playlist and segments load and the video plays on
    page.evaluate(
        "() => { const h = window.__kinoitHls; h.audioTrack = 1;"
        " const v = document.querySelector('video'); v.currentTime = 0; v.play(); }"
    )
    page.wait_for_function(
        "() => performance.getEntriesByType('resource')"
        ".some((e) => e.name.includes('/audio/surround/') && e.name.endsWith('.ts'))"
        " || window.__kinoit.fatal",
        timeout=60_000,
    )
    page.wait_for_function(
        "() => document.querySelector('video').currentTime >= 1.5 || window.__kinoit.fatal",
        timeout=60_000,
    )
    assert page.evaluate("() => window.__kinoit.fatal") is None
    assert page.evaluate("() => window.__kinoitHls.audioTrack") == 1
    assert page.console_errors == []
