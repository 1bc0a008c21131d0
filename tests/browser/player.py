"""Play an HLS URL with hls.js in a real Chromium page and report what happened.

``play_hls`` opens a blank page on ``origin`` (fulfilled by Playwright, so the
playlist and its segments are same-origin requests to the server under test),
injects hls.js from the npm install, attaches it to a ``<video>``, and plays.
With ``every_level`` it first plays the whole stream once per level, that level
locked from the start (a fresh player each time: switching levels mid-play races
the end of a short clip), so every rung's playlist and segments are fetched and
decoded; then it plays once more with automatic level selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLAYER_PATH = "/__kinoit_test_player__"
PLAYER_HTML = "<!doctype html><meta charset=utf-8><title>player</title><video muted></video>"

# Runs in the page: attach hls.js, play, record levels, errors and progress.
ATTACH = """
([url, level]) => new Promise((resolve) => {
  const video = document.querySelector('video');
  const hls = new Hls({ enableWorker: false, startLevel: level ?? -1 });
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
    if (level !== null) hls.currentLevel = level;  // locked: no automatic switching
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
    if not getattr(page, "kinoit_player_routed", False):
        page.route(
            f"{origin}{PLAYER_PATH}",
            lambda route: route.fulfill(status=200, content_type="text/html", body=PLAYER_HTML),
        )
        page.kinoit_player_routed = True
    page.goto(f"{origin}{PLAYER_PATH}")
    page.add_script_tag(path=str(hls_js))


def _play(
    page: Any, origin: str, url: str, hls_js: Path, level: int | None,
    until_s: float | None, timeout_s: float,
) -> dict[str, Any]:  # fmt: skip
    """A fresh player on ``url`` (``level`` locked, or automatic), played to the target."""
    open_player(page, origin, hls_js)
    if not page.evaluate(ATTACH, [url, level]):
        state = page.evaluate("() => window.__kinoit")
        raise AssertionError(f"hls.js did not parse {url}: {state}")
    page.evaluate("() => document.querySelector('video').play()")
    target = "v.ended" if until_s is None else f"v.currentTime >= {until_s}"
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('video'); return {target}"
        " || window.__kinoit.fatal; }",
        timeout=timeout_s * 1000,
    )
    state: dict[str, Any] = page.evaluate(
        """() => { const v = document.querySelector('video');
        return { levels: window.__kinoit.levels, audio: window.__kinoit.audioTracks,
          fragments: window.__kinoit.fragments, errors: window.__kinoit.errors,
          fatal: window.__kinoit.fatal, played: v.currentTime, duration: v.duration,
          ended: v.ended }; }"""
    )
    return state


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
    played_levels: set[int] = set()
    errors: list[str] = []
    fatal = None
    if every_level:
        first = _play(page, origin, url, hls_js, 0, until_s, timeout_s)
        for level in range(len(first["levels"])):
            state = (
                first if level == 0 else _play(page, origin, url, hls_js, level, until_s, timeout_s)
            )
            played_levels |= {lvl for lvl, _sn in state["fragments"]}
            errors += state["errors"]
            fatal = fatal or state["fatal"]
    state = _play(page, origin, url, hls_js, None, until_s, timeout_s)
    played_levels |= {level for level, _sn in state["fragments"]}
    return Playback(
        levels=state["levels"],
        audio_tracks=state["audio"],
        levels_played=played_levels,
        played_s=float(state["played"]),
        duration_s=float(state["duration"] or 0.0),
        ended=bool(state["ended"]),
        errors=errors + list(state["errors"]),
        fatal=fatal or state["fatal"],
    )
