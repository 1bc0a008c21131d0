"""The /ipfs/ gateway over real HTTP (`kinoit dev`, its embedded store): content types,
ranges, ETag and immutable caching, CORS, listings, redirects, 404 and 400, no token."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from kinoit.service.gateway import CACHE_CONTROL, RangeNotSatisfiable, content_type, parse_range
from kinoit.store.directory import file_entry, put_tree

from tests.e2e.conftest import Dev, start_dev, stop_dev

pytestmark = pytest.mark.redis

CHUNK = 256 * 1024
FILES = {
    "hls/master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n90p/index.m3u8\n",
    "hls/90p/index.m3u8": b"#EXTM3U\n#EXTINF:1,\n00000.ts\n#EXT-X-ENDLIST\n",
    "hls/90p/00000.ts": random.Random(1).randbytes(1000),
    "90p.mp4": random.Random(2).randbytes(3 * CHUNK + 100),  # chunked: ranges cross leaves
    "thumbs/00000.jpg": b"\xff\xd8\xff jpeg",
    "storyboard.vtt": b"WEBVTT\n",
    "manifest.json": b"{}",
    "odd <name> & co.bin": b"escaped in the listing",
}


@dataclass
class Served:
    dev: Dev
    root: str

    def url(self, path: str = "") -> str:
        return f"{self.dev.orchestrate}/ipfs/{self.root}{path}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    dev = start_dev(tmp_path_factory.mktemp("gateway"))
    try:
        store = dev.store()
        entries = {
            rel: file_entry(store.add_bytes(data, pin=False), len(data))
            for rel, data in FILES.items()
        }
        yield Served(dev, put_tree(store, entries))
    finally:
        stop_dev(dev)


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=30, allow_redirects=False)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/hls/master.m3u8", "application/vnd.apple.mpegurl"),
        ("/hls/90p/00000.ts", "video/mp2t"),
        ("/90p.mp4", "video/mp4"),
        ("/thumbs/00000.jpg", "image/jpeg"),
        ("/storyboard.vtt", "text/vtt"),
        ("/manifest.json", "application/json"),
        ("/odd%20%3Cname%3E%20&%20co.bin", "application/octet-stream"),
    ],
)
def test_files_come_with_their_type_and_bytes_without_a_token(
    served: Served, path: str, expected: str
) -> None:
    response = get(served.url(path))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == expected
    rel = requests.utils.unquote(path[1:])
    assert response.content == FILES[rel]
    assert response.headers["Content-Length"] == str(len(FILES[rel]))


def test_etag_is_the_cid_and_caching_is_immutable(served: Served) -> None:
    store = served.dev.store()
    mp4_cid = str(store.add_bytes(FILES["90p.mp4"], pin=False))
    response = get(served.url("/90p.mp4"))
    assert response.headers["ETag"] == f'"{mp4_cid}"'
    assert (
        response.headers["Cache-Control"]
        == CACHE_CONTROL
        == ("public, max-age=29030400, immutable")
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Ipfs-Path"] == f"/ipfs/{served.root}/90p.mp4"
    again = get(served.url("/90p.mp4"), **{"If-None-Match": f'"{mp4_cid}"'})
    assert again.status_code == 304 and again.content == b""
    # the same bytes by their own CID
    direct = get(f"{served.dev.orchestrate}/ipfs/{mp4_cid}")
    assert direct.status_code == 200 and direct.content == FILES["90p.mp4"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=100-", 100, 3 * CHUNK + 100),
        (f"bytes={CHUNK - 2}-{CHUNK + 1}", CHUNK - 2, CHUNK + 2),  # across two leaves
        ("bytes=-10", 3 * CHUNK + 90, 3 * CHUNK + 100),
        ("bytes=5-999999999", 5, 3 * CHUNK + 100),
    ],
)
def test_a_range_is_206_with_exactly_those_bytes(
    served: Served, header: str, start: int, end: int
) -> None:
    data = FILES["90p.mp4"]
    response = get(served.url("/90p.mp4"), Range=header)
    assert response.status_code == 206
    assert response.content == data[start:end]
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}"
    assert response.headers["Content-Length"] == str(end - start)


def test_a_range_past_the_end_is_416_and_several_ranges_get_the_whole_file(
    served: Served,
) -> None:
    size = len(FILES["90p.mp4"])
    response = get(served.url("/90p.mp4"), Range=f"bytes={size}-")
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    whole = get(served.url("/90p.mp4"), Range="bytes=0-1,5-6")
    assert whole.status_code == 200 and whole.content == FILES["90p.mp4"]


def test_head_gives_the_headers_without_the_body(served: Served) -> None:
    response = requests.head(served.url("/90p.mp4"), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(FILES["90p.mp4"]))
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.content == b""


def test_directory_redirects_to_its_slash_then_lists_its_entries(served: Served) -> None:
    response = get(served.url("/hls"))
    assert response.status_code == 301
    assert requests.compat.urljoin(served.url("/hls"), response.headers["Location"]) == (
        served.url("/hls/")
    )
    listing = get(served.url("/hls/"))
    assert listing.status_code == 200
    assert listing.headers["Content-Type"].startswith("text/html")
    assert 'href="90p"' in listing.text and 'href="master.m3u8"' in listing.text
    assert 'href="../"' in listing.text
    root = get(served.url("/"))
    assert "odd &lt;name&gt; &amp; co.bin" in root.text  # escaped, never markup
    assert "<name>" not in root.text
    assert 'href="odd%20%3Cname%3E%20%26%20co.bin"' in root.text


def test_a_missing_name_or_cid_is_404(served: Served) -> None:
    assert get(served.url("/hls/nope.m3u8")).status_code == 404
    assert get(served.url("/90p.mp4/below-a-file")).status_code == 404
    unknown = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    response = get(f"{served.dev.orchestrate}/ipfs/{unknown}")
    assert response.status_code == 404 and response.json()["error"] == "NotFound"


@pytest.mark.parametrize(
    "path",
    ["/ipfs/not-a-cid", "/ipfs/Qm", "/ipfs/", "/ipfs/{root}/hls/%2E%2E/90p.mp4",
     "/ipfs/{root}/hls/%2E/master.m3u8", "/ipfs/{root}/hls/a%00b"],
)  # fmt: skip
def test_an_invalid_cid_or_path_is_400_naming_it(served: Served, path: str) -> None:
    response = get(served.dev.orchestrate + path.format(root=served.root))
    assert response.status_code == 400, response.text
    assert response.json()["message"].split(":")[0] in ("cid", "path")


def test_writes_are_refused(served: Served) -> None:
    response = requests.post(served.url("/90p.mp4"), data=b"x", timeout=30)
    assert response.status_code == 400 and "method" in response.json()["message"]


def test_parse_range_rules() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 5)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-30", 10) == (0, 10)
    assert parse_range("bytes=4-2", 10) is None  # invalid: ignored
    assert parse_range("items=0-1", 10) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-", 0)


def test_content_type_by_name() -> None:
    assert content_type("a/b/MASTER.M3U8") == "application/vnd.apple.mpegurl"
    assert content_type("index.html") == "application/octet-stream"  # never served as HTML
    assert content_type(".ts") == "application/octet-stream"
    assert content_type("noext") == "application/octet-stream"


def test_flask_streams_the_reply_as_the_function_image_does(tmp_path: Path) -> None:
    # the python3-http template hands a handler's tuple to Flask as it is: the body is
    # a generator (streamed block by block), the Content-Length the gateway's
    from flask import Flask, request
    from kinoit.service import gateway
    from kinoit.store import EmbeddedStore

    store = EmbeddedStore(tmp_path / "store")
    data = random.Random(3).randbytes(2 * CHUNK + 7)
    cid = store.add_bytes(data, pin=False)
    app = Flask("template-like")

    @app.route("/<path:rest>", methods=["GET", "HEAD"])
    def index(rest: str) -> Any:
        headers = {k.lower(): v for k, v in request.headers.items()}
        return gateway.serve(store, request.method, "/" + rest, headers)

    client = app.test_client()
    response = client.get(f"/ipfs/{cid}/", buffered=False)
    assert response.is_streamed and response.status_code == 200
    assert b"".join(response.response) == data  # type: ignore[arg-type]
    head = client.head(f"/ipfs/{cid}")
    assert head.headers["Content-Length"] == str(len(data)) and head.data == b""


def test_index_cache_answers_lookups_and_drops_the_least_recent(tmp_path: Path) -> None:
    from kinoit.service.gateway import IndexCache
    from kinoit.store import EmbeddedStore
    from kinoit.store.cid import CID
    from kinoit.store.directory import resolve

    store = EmbeddedStore(tmp_path / "store")
    roots = []
    for n in range(2):
        files = {f"d/{i}.ts": f"{n}-{i}".encode() for i in range(30)}
        entries = {
            rel: file_entry(store.add_bytes(d, pin=False), len(d)) for rel, d in files.items()
        }
        roots.append(CID.parse(put_tree(store, entries)))

    def get(cid: CID) -> bytes:
        return store.block_get(str(cid))

    cache = IndexCache(max_names=40)  # room for the small root indexes and one "d"

    def index(directory: Any) -> Any:
        return cache.index(get, directory)

    first = resolve(get, roots[0], ["d", "7.ts"], index=index)
    assert b"".join(store.cat(str(first.cid))) == b"0-7"
    folder = resolve(get, roots[0], ["d"])
    assert folder.cid in cache
    kept = cache.index(get, folder)
    assert cache.index(get, folder) is kept  # the same index, not built again
    assert kept["3.ts"] == resolve(get, roots[0], ["d", "3.ts"]).cid
    resolve(get, roots[1], ["d", "1.ts"], index=index)  # pushes the first "d" out
    assert folder.cid not in cache and len(cache) <= 40
    assert cache.index(get, folder) == kept and cache.index(get, folder) is not kept
