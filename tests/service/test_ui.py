"""GET /ui/: the web app's files, without a token, under a strict CSP."""

from __future__ import annotations

from pathlib import Path

import pytest
from kinoit.errors import ConfigurationError, NotFound
from kinoit.service import HttpRequest
from kinoit.service.ui import ASSETS_DIR, ui_reply

from tests.service.conftest import Harness

needs_build = pytest.mark.skipif(
    not (ASSETS_DIR / "index.html").is_file(), reason="run scripts/build-ui (scripts/install does)"
)


@needs_build
def test_the_page_and_its_modules_are_served_without_a_token(harness: Harness) -> None:
    status, body = harness.request("GET", "/ui/", token=None)
    assert status == 200 and 'data-testid="token"' in body
    text, status, headers = harness.service.handle(HttpRequest("GET", "/ui/app.js"))
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "import" in text
    status, body = harness.request("GET", "/ui/hls.mjs", token=None)
    assert status == 200 and "Hls" in body


def test_the_folder_without_its_slash_redirects(tmp_path: Path) -> None:
    assert ui_reply("/ui", "GET", tmp_path) == ("", 308, {"Location": "ui/"})


@pytest.mark.parametrize(
    "path", ["/ui/../secrets.js", "/ui/.kinoit-built", "/ui/a/b.js", "/ui/missing.js", "/ui/x.py"]
)
def test_only_the_built_files_are_served(tmp_path: Path, path: str) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    with pytest.raises(NotFound):
        ui_reply(path, "GET", tmp_path)


def test_other_methods_are_404(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ui_reply("/ui/", "POST", tmp_path)


def test_an_unbuilt_app_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="scripts/build-ui"):
        ui_reply("/ui/", "GET", tmp_path)


def test_the_sign_in_check_answers_200_either_way(harness: Harness) -> None:
    from tests.service.conftest import API_TOKEN

    assert harness.request("POST", "/session", {"token": API_TOKEN}, token=None) == (
        200,
        {"valid": True},
    )
    assert harness.request("POST", "/session", {"token": "nope"}, token=None) == (
        200,
        {"valid": False},
    )
    status, reply = harness.request("POST", "/session", {"token": 5}, token=None)
    assert status == 400 and reply["field"] == "token"


def test_kinoit_dev_says_whether_the_page_is_built(tmp_path: Path) -> None:
    from kinoit.service.ui import is_built

    assert not is_built(tmp_path)
    (tmp_path / "index.html").write_text("<!doctype html>")
    assert is_built(tmp_path)
