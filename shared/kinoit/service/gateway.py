"""``GET /ipfs/<cid>[/<path>]``: a path gateway over the configured store.

What a player or a CDN needs from it, as an IPFS path gateway gives it:

- files stream block by block (never read whole), with their media type from the
  name (``.m3u8``, ``.ts``, ``.mp4``, ``.jpg``, ``.vtt``, ``.json`` …; anything
  else is ``application/octet-stream`` with ``nosniff``, so stored HTML never
  runs on this origin);
- one ``Range: bytes=…`` range (206; 416 past the end; several ranges get the
  whole file, which RFC 9110 allows);
- ``ETag`` is the CID (a listing's is ``DirIndex-<cid>``: its bytes are ours,
  not the directory's), ``If-None-Match`` answers 304, and every answer may be
  cached for good (``immutable``): what a CID names never changes;
- ``Access-Control-Allow-Origin: *``, so a player on any page can fetch it;
- a directory without its trailing slash is redirected to it (so relative
  links resolve inside it), then answered with a small HTML listing;
- 404 for a CID the store does not hold or a name not in the directory, 400 for
  a malformed CID or a path part that is not a name (``..``, ``.``, empty).

No token is asked: the CID is the capability, as on any IPFS gateway. A
deployment that wants outputs private puts its own auth in front (docs/deploy.md).
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import quote

from kinoit.errors import InputError, InvalidCID, InvalidParameter, KinoitError, NotFound
from kinoit.store.cid import CID, DAG_PB, RAW
from kinoit.store.directory import (
    Node,
    check_part,
    index_of,
    iter_range,
    list_directory,
    resolve,
)

PREFIX = "/ipfs"
# A year (the maximum HTTP caches honour in practice), and never revalidated.
CACHE_CONTROL = "public, max-age=29030400, immutable"
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".vtt": "text/vtt",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
DEFAULT_TYPE = "application/octet-stream"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range, If-None-Match",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, X-Ipfs-Path",
}

# Directory indexes kept in memory, in names over all directories (about 200 bytes each):
# a player asks for each segment of a rung in turn, all in one directory.
INDEX_CACHE_NAMES = 100_000

Body = Iterator[bytes] | str
GatewayReply = tuple[Body, int, dict[str, str]]


def is_gateway_path(path: str) -> bool:
    """Whether ``path`` (below orchestrate) is one the gateway answers."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def content_type(name: str) -> str:
    """The media type of a file by its name (pure)."""
    dot = name.rfind(".")
    return CONTENT_TYPES.get(name[dot:].lower(), DEFAULT_TYPE) if dot > 0 else DEFAULT_TYPE


class RangeNotSatisfiable(InputError):
    """A byte range that starts past the end of a ``size``-byte file (416)."""

    http_status = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``[start, end)`` a ``Range`` header asks of a ``size``-byte file;
    None to send it whole (no header, several ranges, a syntax we ignore);
    RangeNotSatisfiable when it starts past the end (pure)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # another unit, several ranges, or malformed: RFC 9110 says ignore it
    first, last = match.groups()
    if first:
        start = int(first)
        end = int(last) + 1 if last else size
        if last and end <= start:
            return None  # "bytes=9-3" is invalid: ignored
        if start >= size:
            raise RangeNotSatisfiable(f"range starts at {start}, the file has {size} bytes", size)
        return start, min(end, size)
    if not last:
        return None  # "bytes=-"
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiable(f"an empty suffix range of a {size}-byte file", size)
    return max(size - suffix, 0), size


class IndexCache:
    """Directory indexes (name -> CID) by directory CID, least recently used dropped
    first: a CID names the same directory forever, so an entry is never stale."""

    def __init__(self, max_names: int = INDEX_CACHE_NAMES) -> None:
        self.max_names = max_names
        self._indexes: OrderedDict[CID, dict[str, CID]] = OrderedDict()
        self._names = 0
        self._lock = threading.Lock()

    def __contains__(self, cid: object) -> bool:
        with self._lock:
            return cid in self._indexes

    def __len__(self) -> int:
        """How many names the cached indexes hold in all."""
        with self._lock:
            return self._names

    def index(self, get_block: Any, directory: Node) -> dict[str, CID]:
        """The index of ``directory``, built from its blocks on a miss."""
        with self._lock:
            found = self._indexes.get(directory.cid)
            if found is not None:
                self._indexes.move_to_end(directory.cid)
                return found
        built = index_of(get_block, directory)
        with self._lock:
            if directory.cid not in self._indexes and len(built) <= self.max_names:
                self._indexes[directory.cid] = built
                self._names += len(built)
                while self._names > self.max_names:
                    _, dropped = self._indexes.popitem(last=False)
                    self._names -= len(dropped)
        return built


_INDEXES = IndexCache()


def _template(name: str) -> Template:
    text = resources.files("kinoit.service").joinpath(name).read_text(encoding="utf-8")
    return Template(text)


def _error(exc: KinoitError, extra: Mapping[str, str] | None = None) -> GatewayReply:
    body = {**exc.to_dict(), "retryable": exc.retryable}
    headers = {"Content-Type": "application/json", **_CORS, **(extra or {})}
    return json.dumps(body, separators=(",", ":")), exc.http_status, headers


def _split(path: str) -> tuple[CID, list[str], bool]:
    """The root CID, the names below it and whether the path ends with a slash."""
    rest = path[len(PREFIX) :].lstrip("/")
    trailing = rest.endswith("/")
    parts = rest.rstrip("/").split("/") if rest.strip("/") else []
    if not parts:
        raise InvalidParameter("cid", "expected /ipfs/<cid>[/<path>]")
    try:
        root = CID.parse(parts[0])
    except InvalidCID as exc:
        raise InvalidParameter("cid", exc.message) from None
    if root.codec not in (RAW, DAG_PB):
        raise InvalidParameter("cid", f"{root} is {root.codec_name}, not UnixFS")
    names = [check_part(part) for part in parts[1:]]
    return root.to_v1(), names, trailing


def serve(store: Any, method: str, path: str, headers: Mapping[str, str]) -> GatewayReply:
    """Answer one gateway request (``headers`` lower-cased); never raises a KinoitError."""
    method = method.upper()
    if method == "OPTIONS":
        return iter(()), 204, dict(_CORS)
    try:
        if method not in ("GET", "HEAD"):
            raise InvalidParameter("method", f"{method} is not served here (GET or HEAD)")
        root, names, trailing = _split(path)
        if not store.has(str(root)):  # never wait on the network for a CID nobody added
            raise NotFound(f"the store does not hold {root}")

        def get_block(cid: CID) -> bytes:
            return bytes(store.block_get(str(cid)))

        node = resolve(
            get_block, root, names, index=lambda directory: _INDEXES.index(get_block, directory)
        )
        ipfs_path = "/".join([PREFIX, str(root), *names])
        common = {**_CORS, "Cache-Control": CACHE_CONTROL, "X-Ipfs-Path": ipfs_path}
        if node.kind == "directory":
            if not trailing:
                last = names[-1] if names else str(root)
                return iter(()), 301, {**common, "Location": quote(last) + "/"}
            etag = f'"DirIndex-{node.cid}"'
            if _matches(headers.get("if-none-match"), etag):
                return iter(()), 304, {**common, "ETag": etag}
            page = _listing(get_block, node, ipfs_path, parent=bool(names))
            reply = {**common, "ETag": etag, "Content-Type": "text/html; charset=utf-8",
                     "Content-Length": str(len(page.encode()))}  # fmt: skip
            return (iter(()) if method == "HEAD" else page), 200, reply
        return _file(get_block, node, names[-1] if names else "", method, headers, common)
    except RangeNotSatisfiable as exc:
        return _error(exc, {"Content-Range": f"bytes */{exc.size}"})
    except KinoitError as exc:
        return _error(exc)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _file(
    get_block: Any,
    node: Node,
    name: str,
    method: str,
    headers: Mapping[str, str],
    common: dict[str, str],
) -> GatewayReply:
    etag = f'"{node.cid}"'
    reply = {**common, "ETag": etag, "Accept-Ranges": "bytes",
             "Content-Type": content_type(name), "X-Content-Type-Options": "nosniff"}  # fmt: skip
    if _matches(headers.get("if-none-match"), etag):
        return iter(()), 304, reply
    wanted = parse_range(headers.get("range"), node.size)
    status, (start, end) = (200, (0, node.size)) if wanted is None else (206, wanted)
    if status == 206:
        reply["Content-Range"] = f"bytes {start}-{end - 1}/{node.size}"
    reply["Content-Length"] = str(end - start)
    if method == "HEAD":
        return iter(()), status, reply
    return iter_range(get_block, node, start, end), status, reply


def _listing(get_block: Any, node: Node, ipfs_path: str, *, parent: bool) -> str:
    """The HTML listing of a directory (names escaped, links relative to it)."""
    row = _template("gateway_row.html")
    rows = []
    if parent:
        rows.append(row.substitute(href="../", name="..", size="", cid=""))
    for name, link in list_directory(get_block, node):
        cells = {"href": quote(name), "name": name, "size": f"{link.tsize:,}", "cid": str(link.cid)}
        rows.append(row.substitute({key: html.escape(value) for key, value in cells.items()}))
    return _template("gateway_listing.html").substitute(
        path=html.escape(ipfs_path), cid=html.escape(str(node.cid)), rows="\n".join(rows)
    )
