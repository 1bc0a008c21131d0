"""A real browser for the tests: Debian's Chromium driven by Playwright.

- ``browser``: one headless Chromium (``/usr/bin/chromium``, or ``KINOIT_CHROMIUM``)
  for the session. Playwright's own browser downloads are never used.
- ``page``: a fresh context and page per test that stays on loopback. Every
  request to a host other than 127.0.0.1 or localhost is aborted and recorded in
  ``page.outside_requests``; console errors and uncaught page errors are recorded
  in ``page.console_errors``. The fixture fails the test if anything left
  loopback; a test that expects a clean console asserts it itself.
- ``hls_js``: the path of hls.js as ``scripts/build-ui`` installs it from the
  lockfile in ``ui/``.

The tests skip with a reason when Chromium, Playwright or the npm packages are
missing; ``scripts/install`` installs all three, so CI runs them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
HLS_JS = REPO / "ui" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str | None:
    configured = os.environ.get("KINOIT_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (scripts/install installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (the dev extra installs it)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return (parts.hostname or "") in LOOPBACK_HOSTS


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    outside: list[str] = []
    errors: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if is_loopback(url):
            route.fallback()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    tab = context.new_page()
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    tab.outside_requests = outside
    tab.console_errors = errors
    try:
        yield tab
    finally:
        context.close()
    assert outside == [], f"requests left 127.0.0.1: {outside}"


@pytest.fixture(scope="session")
def hls_js() -> Path:
    if not HLS_JS.exists():
        pytest.skip(f"{HLS_JS} is missing: run scripts/build-ui (scripts/install does)")
    return HLS_JS
