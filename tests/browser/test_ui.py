"""The web page in a real Chromium against a real `kinoit dev`: sign in, upload a
generated clip, watch its segments move through the pipeline, play the result,
cancel a job; on loopback only, with a clean console, at 360 px and on a desktop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import API_TOKEN, JOB_TIMEOUT, TINY_LADDER, Dev, start_dev, stop_dev

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "ui-job.png"
SECONDS = 3  # segments of the main clip
TIMEOUT_MS = JOB_TIMEOUT * 1000


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kinoit.media.synth import make_clip

    root = tmp_path_factory.mktemp("ui-clip")
    return make_clip(root / "clip.mp4", seconds=SECONDS, width=320, height=180, audio=True)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    from kinoit.service.ui import ASSETS_DIR

    if not (ASSETS_DIR / "index.html").is_file():
        pytest.skip("the web page is not built: run scripts/build-ui (scripts/install does)")
    # pieces of one 256 KiB leaf: the clip goes up in two; one-segment ranges of the
    # direct transcode, so the grid fills segment by segment while the job runs; each
    # checksum held 2 s, longer than the page's 1-s poll, so that the page shows cells
    # before they are done however fast the rest of the job runs (it once did not)
    stack = start_dev(
        tmp_path_factory.mktemp("ui-dev"), KINOIT_MAX_BODY_BYTES=str(256 * 1024),
        KINOIT_TRANSCODE_RANGE_SECONDS="1", KINOIT_FAILPOINTS="stage.checksum=sleep(2)",
    )  # fmt: skip
    try:
        yield stack
    finally:
        stop_dev(stack)


def ui_url(dev: Dev) -> str:
    return f"{dev.orchestrate}/ui/"


def sign_in(page: Any, dev: Dev, token: str = API_TOKEN) -> None:
    page.goto(ui_url(dev))
    page.get_by_test_id("token").fill(token)
    page.get_by_test_id("login").click()


def submit_tiny(page: Any, source: str | None = None, metadata: Any = None) -> str:
    """Fill the form (ladder: the e2e tiny ladder) and submit; the new job's id."""
    if source is not None:
        page.get_by_test_id("source").fill(source)
    page.get_by_test_id("profile").select_option("ladder")
    page.get_by_test_id("ladder").fill(json.dumps(TINY_LADDER))
    if metadata is not None:
        page.get_by_text("Callback and metadata (optional)").click()
        page.get_by_test_id("metadata").fill(json.dumps(metadata))
    page.get_by_test_id("submit").click()
    page.wait_for_url("**/ui/#/jobs/*")
    return str(page.url.rsplit("/", 1)[1])


# Records every state each grid cell shows, from the moment the job page opens.
WATCH_GRID = """() => {
  window.__seen = {};
  const record = (cell) => {
    const key = `${cell.dataset.stage}.${cell.dataset.segment}`;
    (window.__seen[key] = window.__seen[key] || []).push(cell.dataset.state);
  };
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.target.classList.contains('cell')) record(change.target);
    }
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
}"""


# Records every value the upload's progress bar shows.
WATCH_PROGRESS = """() => {
  window.__progress = [];
  const bar = document.querySelector('[data-testid=upload-progress]');
  new MutationObserver(() => window.__progress.push(bar.value))
    .observe(bar, { attributes: true, attributeFilter: ['value'] });
}"""


def test_sign_in_upload_and_watch_the_grid_fill(page: Any, dev: Dev, clip: Path) -> None:
    sign_in(page, dev, "not-the-token")
    error = page.get_by_test_id("error")
    error.wait_for()
    assert "wrong" in error.inner_text()
    assert page.get_by_test_id("logout").is_hidden()

    page.get_by_test_id("token").fill(API_TOKEN)
    page.get_by_test_id("login").click()
    page.get_by_test_id("logout").wait_for()
    assert error.is_hidden()
    assert page.evaluate("() => window.sessionStorage.getItem('kinoit-token')") == API_TOKEN
    assert page.evaluate("() => window.localStorage.length") == 0
    assert page.console_errors == []  # a wrong token is no failed request

    page.evaluate(WATCH_PROGRESS)
    page.get_by_test_id("upload").set_input_files(str(clip))
    source = page.get_by_test_id("source")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=source]').value.startsWith('baf')",
        timeout=60_000,
    )
    uploaded = source.input_value()
    assert uploaded == dev.store().add_bytes(clip.read_bytes(), pin=False)
    assert page.get_by_test_id("upload-progress").evaluate("p => p.value") == 1
    assert clip.stat().st_size > 256 * 1024  # so it went up in two pieces
    shown = page.evaluate("() => window.__progress")
    assert any(0 < value < 1 for value in shown), shown  # the bar moved on the way

    job_id = submit_tiny(page, metadata={"title": "from the page"})
    page.evaluate(WATCH_GRID)
    grid = page.get_by_test_id("segment-grid")
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=segment-grid] .cell').length === n",
        arg=3 * SECONDS,
        timeout=TIMEOUT_MS,
    )
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-state]').textContent === 'completed'",
        timeout=TIMEOUT_MS,
    )
    cells = grid.locator(".cell")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=segment-grid] .cell')]"
        ".every((c) => c.dataset.state === 'done')",
        timeout=10_000,
    )
    assert dev.job(job_id)["metadata"] == {"title": "from the page"}
    assert '{"title":"from the page"}' in page.locator(".facts").inner_text()
    for stage in ("transcode", "thumbnail", "checksum"):
        for i in range(SECONDS):
            cell = grid.locator(f'.cell[data-stage="{stage}"][data-segment="{i}"]')
            assert cell.get_attribute("data-state") == "done"
            assert "1 attempt" in (cell.get_attribute("title") or "")
    assert cells.count() == 3 * SECONDS
    seen = page.evaluate("() => window.__seen")
    # the grid filled as the job ran: cells showed other states before done
    assert any(len(states) > 1 or states[0] != "done" for states in seen.values()), seen
    assert all(states[-1] == "done" for states in seen.values()), seen

    thumbs = page.get_by_test_id("thumbnails").locator("img")
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=thumbnails] img').length === {SECONDS}",
        timeout=30_000,
    )
    assert thumbs.count() == SECONDS
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=thumbnails] img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)",
        timeout=30_000,
    )

    chart = page.get_by_test_id("checksum-chart")
    assert chart.locator("svg .series rect").count() == SECONDS * len(TINY_LADDER["rungs"])
    assert chart.locator("svg line.threshold").count() == len(TINY_LADDER["rungs"])

    player = page.get_by_test_id("player")
    player.evaluate("v => v.play()")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=player]').currentTime > 1",
        timeout=30_000,
    )
    player.evaluate("v => v.pause()")
    links = page.locator("#links a")
    assert {links.nth(i).inner_text() for i in range(links.count())} >= {"90p.mp4", "48p.mp4"}
    mp4 = page.request.get(str(page.get_by_role("link", name="90p.mp4").get_attribute("href")))
    assert mp4.ok and mp4.headers["content-type"] == "video/mp4" and len(mp4.body()) > 1000
    with page.expect_download() as download:
        page.get_by_role("link", name="manifest.json (dag-json)").click()
    manifest = json.loads(Path(download.value.path()).read_text())
    assert manifest["source"]["cid"] == {"/": uploaded}

    if os.environ.get("KINOIT_UI_SCREENSHOT"):
        page.set_viewport_size({"width": 1100, "height": 900})
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.get_by_role("link", name="← All jobs").click()
    row = page.get_by_test_id("jobs").locator(f'tr[data-job-id="{job_id}"]')
    row.wait_for()
    assert page.get_by_test_id("jobs").locator("tr").first.get_attribute("data-job-id") == job_id
    assert "completed" in row.inner_text()
    assert page.console_errors == []


def test_the_preview_plays_while_the_job_runs_and_a_job_is_cancelled(
    page: Any, tmp_path_factory: pytest.TempPathFactory, clip: Path
) -> None:
    # merge sleeps (longer than the test needs; stopping the stack ends it): every
    # segment gets done and verified while the job is still running
    stack = start_dev(
        tmp_path_factory.mktemp("ui-running"), workers=2,
        KINOIT_FAILPOINTS="stage.merge=sleep(60)", KINOIT_MAX_ACTIVE_JOBS="2",
    )  # fmt: skip
    try:
        source = stack.add(clip)
        sign_in(page, stack)
        page.get_by_test_id("logout").wait_for()
        first = submit_tiny(page, source)
        page.wait_for_function(
            "() => document.getElementById('player-status').textContent.startsWith('Preview')",
            timeout=TIMEOUT_MS,
        )
        player = page.get_by_test_id("player")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=player]').readyState >= 1",
            timeout=60_000,
        )
        player.evaluate("v => v.play()")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=player]').currentTime > 1",
            timeout=60_000,
        )
        assert page.get_by_test_id("job-state").text_content() == "running"
        assert stack.job(first)["state"] == "running"
        assert "/preview/" in stack.job(first)["preview"]["hls"]

        # a second job, cancelled from its page while it runs
        page.get_by_role("link", name="← All jobs").click()
        second = submit_tiny(page, source)
        assert second != first
        page.wait_for_function(
            "() => document.querySelector('[data-testid=job-state]').textContent === 'running'",
            timeout=60_000,
        )
        page.get_by_test_id("cancel").click()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=job-state]').textContent === 'cancelled'",
            timeout=30_000,
        )
        assert page.get_by_test_id("cancel").is_hidden()
        assert stack.job(second)["state"] == "cancelled"
        assert stack.job(first)["state"] in {"running", "completed"}
        assert page.console_errors == []
    finally:
        stop_dev(stack)


def overflow(page: Any) -> int:
    """How far the page is wider than the window (0: no horizontal scrolling)."""
    return int(
        page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


def test_readable_at_360_px_and_usable_by_keyboard(page: Any, dev: Dev, clip: Path) -> None:
    source = dev.add(clip)
    # not the first test's ladder: that job's results would complete this one at once
    job_id = dev.submit(source, ladder={"rungs": TINY_LADDER["rungs"][1:]})
    dev.wait_state(job_id, {"completed", "failed"})
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(ui_url(dev))
    # keyboard only: the token field has the focus; Enter signs in
    page.keyboard.type(API_TOKEN)
    page.keyboard.press("Enter")
    page.get_by_test_id("logout").wait_for()
    page.get_by_test_id("jobs").locator(f'tr[data-job-id="{job_id}"]').wait_for()
    assert overflow(page) == 0
    link = page.get_by_test_id("jobs").locator(f'tr[data-job-id="{job_id}"] a')
    for _ in range(40):  # Tab through the form to the job's link
        page.keyboard.press("Tab")
        if link.evaluate("a => a === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the job's link")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-state]')?.textContent === 'completed'",
        timeout=30_000,
    )
    page.get_by_test_id("segment-grid").locator(".cell").first.wait_for()
    assert overflow(page) == 0
    grid = page.get_by_test_id("segment-grid")
    for _ in range(20):  # Tab on to the grid; arrows pick a cell and say what it is
        page.keyboard.press("Tab")
        if grid.evaluate("g => g === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the segment grid")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    detail = page.locator("#grid-detail")
    assert detail.inner_text() == "thumbnail, segment 1: done, 1 attempt"
    page.set_viewport_size({"width": 1280, "height": 900})
    assert overflow(page) == 0
    # signing out forgets the token; an unknown job says so
    page.get_by_test_id("logout").click()
    page.get_by_test_id("token").wait_for()
    assert page.evaluate("() => window.sessionStorage.length") == 0
    page.keyboard.type(API_TOKEN)
    page.keyboard.press("Enter")
    page.get_by_test_id("logout").wait_for()
    page.goto(ui_url(dev) + "#/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    page.get_by_test_id("error").wait_for()
    assert "no job" in page.get_by_test_id("error").inner_text()
    page.wait_for_timeout(2500)  # longer than a poll: none follows (nothing to await)
    assert len(page.console_errors) == 2, page.console_errors  # the two 404s, then no more
    assert all("status of 404" in e for e in page.console_errors), page.console_errors


def test_the_printed_url_is_the_page(dev: Dev) -> None:
    import requests

    page = requests.get(ui_url(dev), timeout=10)
    assert page.status_code == 200 and 'data-testid="segment-grid"' in page.text
    log = (dev.home.parent / "dev.log").read_text()
    assert f"web page at {ui_url(dev)}" in log


DROP_FILE = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, { type: 'text/plain' }));
  const zone = document.getElementById('drop');
  const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
  zone.dispatchEvent(new DragEvent('dragover', init));
  zone.dispatchEvent(new DragEvent('drop', init));
}"""


def test_refused_upload_bad_source_and_a_failed_job_say_why(
    page: Any, dev: Dev, tmp_path: Path
) -> None:
    sign_in(page, dev)
    page.get_by_test_id("logout").wait_for()
    error = page.get_by_test_id("error")
    # a dropped file that is no video: refused at its first piece, nothing submitted
    page.evaluate(DROP_FILE, ["notes.txt", "these are notes, not a video\n" * 20])
    error.wait_for()
    assert "Upload refused" in error.inner_text() and "not a video" in error.inner_text()
    assert page.get_by_test_id("source").input_value() == ""
    # a source that is no CID: the form says which field
    page.get_by_test_id("source").fill("not-a-cid")
    page.get_by_test_id("submit").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=error]').textContent.includes('(source)')"
    )
    # a stored file that is no video: the job fails and its page says why
    notes = tmp_path / "notes.txt"
    notes.write_text("still not a video\n" * 20)
    page.get_by_test_id("source").fill(dev.add(notes))
    page.get_by_test_id("submit").click()
    page.wait_for_url("**/ui/#/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-state]').textContent === 'failed'",
        timeout=TIMEOUT_MS,
    )
    failure = page.get_by_test_id("failure")
    assert failure.is_visible() and "NotAVideo" in failure.inner_text()
    assert failure.inner_text() == f"Failed: {dev.job(job_id)['error']}"
    assert page.get_by_test_id("cancel").is_hidden()
    # the list is live: a job submitted elsewhere shows up on top, then its end
    page.get_by_role("link", name="← All jobs").click()
    page.get_by_test_id("jobs").locator(f'tr[data-job-id="{job_id}"]').wait_for()
    other = dev.submit(dev.add(notes))
    row = page.get_by_test_id("jobs").locator(f'tr[data-job-id="{other}"][data-state="failed"]')
    row.wait_for(timeout=TIMEOUT_MS)
    assert page.get_by_test_id("jobs").locator("tr").first.get_attribute("data-job-id") == other
    row.locator("td").nth(1).click()  # anywhere on a row opens its job
    page.wait_for_url(f"**/ui/#/jobs/{other}")
    page.get_by_test_id("failure").wait_for()
    # the two refused requests are the only errors the console saw
    assert len(page.console_errors) == 2, page.console_errors
    assert all("status of 400" in e for e in page.console_errors), page.console_errors
