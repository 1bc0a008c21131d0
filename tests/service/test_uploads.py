"""POST /sources and PUT /sources/<id>: a source uploaded in pieces into the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kinoit.media.sniff import container_of
from kinoit.service.uploads import UPLOAD_KEY, chunk_bytes_for, pin_name
from kinoit.store import EmbeddedStore
from kinoit.store.unixfs import CHUNK_SIZE

from tests.service.conftest import Harness


def video_bytes(size: int) -> bytes:
    """An MP4-looking file of ``size`` bytes: an ftyp box, then varied bytes (so the
    leaves differ and the DAG has real structure)."""
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    body = bytes((i * 7 + i // 251) % 256 for i in range(size - len(head)))
    return head + body


def upload(harness: Harness, data: bytes, name: str = "clip.mp4") -> tuple[int, dict]:
    """Upload ``data`` piece by piece as the page does; the last reply."""
    status, session = harness.request("POST", "/sources", {"size": len(data), "name": name})
    assert status == 201, session
    chunk = session["chunk_bytes"]
    upload_id = session["upload_id"]
    reply: tuple[int, dict] = (0, {})
    for offset in range(0, len(data), chunk):
        reply = harness.request(
            "PUT", f"/sources/{upload_id}?offset={offset}", data[offset : offset + chunk]
        )
        if reply[0] not in (200, 201):
            return reply
    return reply


def stored_blocks(store: EmbeddedStore) -> set[Path]:
    return {p for p in store.root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("size", [1000, CHUNK_SIZE, 5 * CHUNK_SIZE + 123])
def test_the_stored_cid_is_the_cid_of_the_bytes(
    harness_factory: Callable[..., Harness], size: int
) -> None:
    # a 2-leaf piece size so that a file of 5 leaves and a bit takes three requests
    harness = harness_factory(KINOIT_MAX_BODY_BYTES=str(2 * CHUNK_SIZE))
    data = video_bytes(size)
    status, reply = upload(harness, data)
    assert status == 201, reply
    assert reply == {"cid": harness.store.add_bytes(data, pin=False), "size": size}
    assert b"".join(harness.store.cat(reply["cid"])) == data
    pins = {p.cid: p.name for p in harness.store.pin_ls()}
    assert pins[reply["cid"]] == "upload:clip.mp4"


def test_a_size_over_the_cap_is_413_and_nothing_is_stored(
    harness_factory: Callable[..., Harness],
) -> None:
    harness = harness_factory(KINOIT_MAX_UPLOAD_BYTES="4096")
    before = stored_blocks(harness.store)
    status, reply = harness.request("POST", "/sources", {"size": 4097, "name": "big.mp4"})
    assert status == 413 and "KINOIT_MAX_UPLOAD_BYTES=4096" in reply["message"]
    assert stored_blocks(harness.store) == before
    assert harness.store.pin_ls() == []
    status, reply = upload(harness, video_bytes(4096))
    assert status == 201, reply


def test_a_piece_past_the_declared_size_is_413(harness: Harness) -> None:
    status, session = harness.request("POST", "/sources", {"size": 100})
    assert status == 201
    status, reply = harness.request(
        "PUT", f"/sources/{session['upload_id']}?offset=0", video_bytes(101)
    )
    assert status == 413 and "past the declared size 100" in reply["message"]


def test_a_file_that_is_not_a_video_is_400_and_the_upload_is_forgotten(
    harness: Harness,
) -> None:
    text = b"just some notes, certainly not a video\n" * 10
    status, session = harness.request("POST", "/sources", {"size": len(text)})
    assert status == 201
    path = f"/sources/{session['upload_id']}?offset=0"
    status, reply = harness.request("PUT", path, text)
    assert status == 400 and reply["error"] == "NotAVideo"
    assert "not a video" in reply["message"]
    assert harness.store.pin_ls() == []
    status, reply = harness.request("PUT", path, video_bytes(len(text)))
    assert status == 404


def test_pieces_must_come_in_order_and_whole(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(KINOIT_MAX_BODY_BYTES=str(CHUNK_SIZE))
    data = video_bytes(2 * CHUNK_SIZE + 10)
    status, session = harness.request("POST", "/sources", {"size": len(data)})
    url = f"/sources/{session['upload_id']}"
    second = data[CHUNK_SIZE : 2 * CHUNK_SIZE]
    status, reply = harness.request("PUT", f"{url}?offset={CHUNK_SIZE}", second)
    assert status == 409 and "offset 0" in reply["message"]
    status, reply = harness.request("PUT", f"{url}?offset=0", data[:1000])
    assert status == 400 and reply["field"] == "body"
    status, reply = harness.request("PUT", f"{url}?offset=0", data[:CHUNK_SIZE])
    assert (status, reply["received"]) == (200, CHUNK_SIZE)
    # the same piece again (a retried request) changes nothing
    status, reply = harness.request("PUT", f"{url}?offset=0", data[:CHUNK_SIZE])
    assert status == 409
    status, reply = harness.request("PUT", f"{url}?offset=x", second)
    assert status == 400 and reply["field"] == "offset"
    status, _ = harness.request("PUT", f"{url}?offset={CHUNK_SIZE}", second)
    assert status == 200
    status, reply = harness.request("PUT", f"{url}?offset={2 * CHUNK_SIZE}", data[-10:])
    assert status == 201 and reply["cid"] == harness.store.add_bytes(data, pin=False)
    assert not harness.service.redis.exists(UPLOAD_KEY.format(upload_id=session["upload_id"]))


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "size"), ({"size": 0}, "size"), ({"size": "10"}, "size"), ({"size": True}, "size"),
     ({"size": 10, "name": 5}, "name")],
)  # fmt: skip
def test_a_bad_upload_request_names_the_field(harness: Harness, body: dict, field: str) -> None:
    status, reply = harness.request("POST", "/sources", body)
    assert status == 400 and reply["field"] == field


def test_uploads_need_the_token(harness: Harness) -> None:
    status, _ = harness.request("POST", "/sources", {"size": 10}, token="wrong")
    assert status == 401
    status, _ = harness.request("PUT", "/sources/" + "0" * 32 + "?offset=0", b"x", token=None)
    assert status == 401


def test_an_unknown_upload_is_404(harness: Harness) -> None:
    status, reply = harness.request("PUT", "/sources/" + "ab" * 16 + "?offset=0", b"x")
    assert status == 404 and reply["error"] == "NotFound"


def test_piece_size_is_whole_leaves_within_the_body_cap() -> None:
    assert chunk_bytes_for(1 << 20) == 1 << 20
    assert chunk_bytes_for(CHUNK_SIZE * 3 + 5) == CHUNK_SIZE * 3
    with pytest.raises(Exception, match="KINOIT_MAX_BODY_BYTES"):
        chunk_bytes_for(CHUNK_SIZE - 1)


def test_pin_names_keep_plain_characters() -> None:
    assert pin_name("my clip (1).mp4") == "upload:my clip (1).mp4"
    assert pin_name("a;expires-at=1/../b") == "upload:a_expires-at_1_.._b"


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"\x00\x00\x00\x20ftypisom", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", "mp4"),
        (b"\x00\x00\x00\x08wide\x00\x00", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "matroska"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"FLV\x01\x05", "flv"),
        (b"OggS\x00\x02", "ogg"),
        ((b"\x47" + bytes(187)) * 3, "mpegts"),
        ((bytes(4) + b"\x47" + bytes(187)) * 3, "m2ts"),
        (b"\x00\x00\x01\xba\x44", "mpeg"),
        (b"YUV4MPEG2 W160 H90", "yuv4mpegpipe"),
        (b"\x00\x00\x00\x1cftypheic", None),
        (b"\x89PNG\r\n\x1a\n", None),
        (b"%PDF-1.7", None),
        (b"PK\x03\x04", None),
        (b"hello world\n" * 50, None),
        (b"", None),
    ],
)
def test_container_sniffing(head: bytes, name: str | None) -> None:
    assert container_of(head) == name


def test_a_deep_file_gets_kubos_cid_without_reading_it_back(
    harness_factory: Callable[..., Harness],
) -> None:
    # 175 leaves: one more than a node links, so the tree has two levels
    harness = harness_factory(KINOIT_MAX_BODY_BYTES=str(64 * CHUNK_SIZE))
    data = video_bytes(175 * CHUNK_SIZE - 7)
    status, reply = upload(harness, data)
    assert status == 201, reply
    assert reply["cid"] == harness.store.add_bytes(data, pin=False)


def test_closing_again_after_a_failed_close(harness_factory: Callable[..., Harness]) -> None:
    # the same Redis and store, once with the close failing
    failing = harness_factory(KINOIT_FAILPOINTS="upload.close=error(store down)")
    harness = harness_factory()
    data = video_bytes(3000)
    status, session = failing.request("POST", "/sources", {"size": len(data)})
    url = f"/sources/{session['upload_id']}"
    status, reply = failing.request("PUT", f"{url}?offset=0", data)
    assert status == 500 and "store down" in reply["message"]
    assert harness.store.pin_ls() == []
    status, reply = harness.request("PUT", f"{url}?offset=0", data)
    assert status == 409  # the piece itself was received
    status, reply = harness.request("PUT", f"{url}?offset={len(data)}", b"")
    assert status == 201 and reply["cid"] == harness.store.add_bytes(data, pin=False)
    assert [p.cid for p in harness.store.pin_ls()] == [reply["cid"]]
