"""Play an HLS URL with hls.js in a real Chromium page and report what happened.

``play_hls`` opens a blank page on ``origin`` (fulfilled by Playwright, so the
playlist and its segments are same-origin requests to the server under test),
injects hls.js from the npm install, attaches it to a ``<video>``, and plays.
With ``every_level`` it then switches to each level in turn and plays a little
of each, so every rung's playlist and segments are fetched and decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLAYER_PATH = "/__kinoit_test_player__"
PLAYER_HTML = "<!doctype html><meta charset=utf-8><title>player</title><video muted></video>"

# Runs in the page: attach hls.js, play, record levels, errors and progress.
ATTACH = """
([url]) => new Promise((resolve) => {
  const video = document.querySelector('video');
  const hls = new Hls({ enableWorker: false });
  window.__kinoit = { errors: [], fatal: null, levelsLoaded: new Set(), fragments: [] };
  hls.on(Hls.Events.ERROR, (_, d) => {
    window.__kinoit.errors.push(`${d.type}:${d.details}`);
    if (d.fatal) window.__kinoit.fatal = `${d.type}:${d.details}`;
  });
  hls.on(Hls.Events.LEVEL_LOADED, (_, d) => window.__kinoit.levelsLoaded.add(d.level));
  hls.on(Hls.Events.FRAG_BUFFERED, (_, d) =>
    window.__kinoit.fragments.push([d.frag.level, d.frag.sn]));
  hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => {
    window.__kinoit.levels = d.levels.map((l) => ({ height: l.height, bitrate: l.bitrate }));
    window.__kinoit.audioTracks = hls.audioTracks.map((t) => ({ name: t.name, lang: t.lang,
      channels: t.channels, default: t.default }));
    resolve(true);
  });
  window.__kinoitHls = hls;
  hls.loadSource(url);
  hls.attachMedia(video);
  setTimeout(() => resolve(false), 20000);
})
"""


@dataclass
class Playback:
    levels: list[dict[str, Any]]
    audio_tracks: list[dict[str, Any]]
    levels_played: set[int]
    played_s: float
    duration_s: float
    ended: bool
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None


def open_player(page: Any, origin: str, hls_js: Path) -> None:
    """Open the blank player page on ``origin`` with hls.js loaded."""
    page.route(
        f"{origin}{PLAYER_PATH}",
        lambda route: route.fulfill(status=200, content_type="text/html", body=PLAYER_HTML),
    )
    page.goto(f"{origin}{PLAYER_PATH}")
    page.add_script_tag(path=str(hls_js))


def play_hls(
    page: Any,
    origin: str,
    url: str,
    hls_js: Path,
    *,
    until_s: float | None = None,
    every_level: bool = False,
    timeout_s: float = 60.0,
) -> Playback:
    """Play ``url`` from the start to ``until_s`` (default: the end) and report."""
    open_player(page, origin, hls_js)
    parsed = page.evaluate(ATTACH, [url])
    if not parsed:
        state = page.evaluate("() => window.__kinoit")
        raise AssertionError(f"hls.js did not parse {url}: {state}")
    played_levels: set[int] = set()
    if every_level:
        count = page.evaluate("() => window.__kinoit.levels.length")
        for level in range(count):
            page.evaluate(f"() => {{ window.__kinoitHls.currentLevel = {level}; }}")
            page.evaluate("() => document.querySelector('video').play()")
            page.wait_for_function(
                f"() => window.__kinoit.fragments.some(([l]) => l === {level})"
                " || window.__kinoit.fatal",
                timeout=timeout_s * 1000,
            )
        page.evaluate(
            "() => { window.__kinoitHls.currentLevel = -1;"
            " document.querySelector('video').currentTime = 0; }"
        )
    page.evaluate("() => document.querySelector('video').play()")
    target = "v.ended" if until_s is None else f"v.currentTime >= {until_s}"
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('video'); return {target}"
        " || window.__kinoit.fatal; }",
        timeout=timeout_s * 1000,
    )
    state = page.evaluate(
        """() => { const v = document.querySelector('video');
        return { levels: window.__kinoit.levels, audio: window.__kinoit.audioTracks,
          fragments: window.__kinoit.fragments, errors: window.__kinoit.errors,
          fatal: window.__kinoit.fatal, played: v.currentTime, duration: v.duration,
          ended: v.ended }; }"""
    )
    played_levels |= {level for level, _sn in state["fragments"]}
    return Playback(
        levels=state["levels"],
        audio_tracks=state["audio"],
        levels_played=played_levels,
        played_s=float(state["played"]),
        duration_s=float(state["duration"] or 0.0),
        ended=bool(state["ended"]),
        errors=list(state["errors"]),
        fatal=state["fatal"],
    )
