"""The browser harness itself: Chromium plays a two-level HLS made by ffmpeg and
served over loopback HTTP, and a request that would leave loopback is stopped."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import is_loopback
from tests.browser.player import play_hls


@pytest.fixture
def hls_site(tmp_path: Path) -> Iterator[str]:
    """A 3-second, two-level HLS with AAC audio, served on a loopback port."""
    for name, size in (("low", "160x90"), ("high", "320x180")):
        out = tmp_path / name
        out.mkdir()
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:d=3",
             "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
             "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "64k", "-shortest",
             "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
             str(out / "index.m3u8")],
            check=True,
        )  # fmt: skip
    (tmp_path / "master.m3u8").write_text(
        "#EXTM3U\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=160x90,CODECS="avc1.42c00c,mp4a.40.2"\n'
        "low/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=320x180,CODECS="avc1.42c00d,mp4a.40.2"\n'
        "high/index.m3u8\n"
    )
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_plays_every_level_to_the_end(page: Any, hls_js: Path, hls_site: str) -> None:
    result = play_hls(page, hls_site, f"{hls_site}/master.m3u8", hls_js, every_level=True)
    assert result.fatal is None, result.errors
    assert [level["height"] for level in result.levels] == [90, 180]
    assert result.levels_played == {0, 1}
    assert result.ended
    assert result.played_s == pytest.approx(3.0, abs=0.2)


def test_a_request_off_loopback_is_stopped_and_recorded(page: Any, hls_site: str) -> None:
    page.goto(f"{hls_site}/master.m3u8")
    outcome = page.evaluate(
        "() => fetch('http://192.0.2.1/x').then(() => 'fetched', () => 'blocked')"
    )
    assert outcome == "blocked"
    assert page.outside_requests == ["http://192.0.2.1/x"]
    page.outside_requests.clear()  # the fixture would fail this test otherwise


def test_loopback_hosts() -> None:
    assert is_loopback("http://127.0.0.1:8080/ipfs/x")
    assert is_loopback("http://localhost/ui/")
    assert is_loopback("data:text/plain,hi")
    assert not is_loopback("http://127.0.0.1.example.com/")
    assert not is_loopback("https://cdn.example/hls.js")
