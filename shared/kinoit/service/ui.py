"""The web app's files, served by orchestrate at ``/ui/`` (no token: the page
asks for it and sends it with every API call).

The files are built by ``scripts/build-ui`` from ``ui/src`` and the npm packages
of ``ui/package-lock.json`` into ``kinoit/service/webapp/`` (package data, not
in git). The Content-Security-Policy lets the page load nothing from outside
this origin.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from kinoit.errors import ConfigurationError, NotFound
from kinoit.stages.http import Reply

ASSETS_DIR: Final = Path(__file__).resolve().parent / "webapp"
INDEX: Final = "index.html"
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob: data:; media-src 'self' blob:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}


def is_built(assets: Path = ASSETS_DIR) -> bool:
    """Whether ``scripts/build-ui`` has put the page into the package."""
    return (assets / INDEX).is_file()


def is_ui_path(raw_path: str) -> bool:
    """Whether a request path (as the gateway passed it) is the web app's."""
    return raw_path == "/ui" or raw_path.startswith("/ui/")


def ui_reply(raw_path: str, method: str, assets: Path = ASSETS_DIR) -> Reply:
    """The file ``raw_path`` names below ``/ui/`` (``index.html`` for ``/ui/``)."""
    if method not in ("GET", "HEAD"):
        raise NotFound(f"no route {method} {raw_path}")
    if raw_path == "/ui":
        # relative URLs in the page resolve against the folder only with the slash
        return "", 308, {"Location": "ui/"}
    name = raw_path[len("/ui/") :] or INDEX
    if not _NAME.fullmatch(name) or Path(name).suffix not in _TYPES:
        raise NotFound(f"no file {name!r} in the web app")
    if not is_built(assets):
        raise ConfigurationError(
            f"the web app is not built ({assets} has no {INDEX}): run scripts/build-ui"
        )
    path = assets / name
    if not path.is_file():
        raise NotFound(f"no file {name!r} in the web app")
    body = "" if method == "HEAD" else path.read_text(encoding="utf-8")
    return body, 200, {"Content-Type": _TYPES[path.suffix], **_HEADERS}
