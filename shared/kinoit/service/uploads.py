"""Uploading a source video through orchestrate, in pieces, into the store.

Routes (below ``/function/orchestrate``, bearer token as everywhere)::

    POST /sources                {"size": N, "name": "clip.mp4"}
                                 -> 201 {"upload_id", "upload_url", "chunk_bytes", "size"}
    PUT  /sources/<id>?offset=K  the bytes [K, K + chunk_bytes) of the file
                                 -> 200 {"received"}; the last piece -> 201 {"cid", "size"}
                                 (an empty PUT at offset=size closes the file again,
                                 should the last piece's answer have been a 503)

Why pieces and not one long POST: the python3-http template hands a handler the
whole request body as bytes, and both gateways cap bodies at
``KINOIT_MAX_BODY_BYTES``; one large POST would be held in orchestrate's memory
whole. A piece is a whole number of 256 KiB UnixFS leaves (the last may be
shorter): each leaf is stored unpinned as a raw block as it arrives and its CID
appended to the upload's list in Redis, so any orchestrate replica may take the
next piece. The last piece closes the file: the UnixFS tree over the stored
leaves (174 links per node, balanced, exactly as ``ipfs add --cid-version=1``
builds it, so the CID is the one Kubo gives the bytes) is stored node by node
and its root pinned; no byte is read back. Memory per request: one piece.

The declared size is checked against ``KINOIT_MAX_UPLOAD_BYTES`` before anything
is stored (413), and no piece may go past it. The first piece must start like
a video container (:mod:`kinoit.media.sniff`), else the upload is refused
(``NotAVideo``, 400) and forgotten; split judges the file properly later.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Final

import redis

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.errors import (
    ConfigurationError,
    Conflict,
    InvalidParameter,
    NotAVideo,
    NotFound,
    PayloadTooLarge,
)
from kinoit.jobs import translate_redis_errors
from kinoit.jobs.decode import text
from kinoit.media.sniff import SNIFF_BYTES, container_of
from kinoit.store.cid import CID, DAG_PB
from kinoit.store.unixfs import CHUNK_SIZE, FileImporter

# Hash: one upload in progress (size, received, name); list: its leaf CIDs in order.
UPLOAD_KEY: Final = "kinoit:upload:{upload_id}"
UPLOAD_LEAVES_KEY: Final = "kinoit:upload:{upload_id}:leaves"
# An upload nobody sends a piece to for this long is forgotten (its leaves, never
# pinned, go with the next gc).
UPLOAD_IDLE_SECONDS: Final = 3600
UPLOAD_PATH: Final = re.compile(r"^/sources/([0-9a-f]{32})$")
_DECIMAL: Final = re.compile(r"[0-9]{1,20}")
# Pin names carry kinoit's expiry after a ";": keep uploaded file names to plain text.
_PIN_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._ ()-]+")


def chunk_bytes_for(max_body_bytes: int) -> int:
    """The piece size: the most whole 256 KiB leaves one request body may hold."""
    size = max_body_bytes // CHUNK_SIZE * CHUNK_SIZE
    if size == 0:
        raise ConfigurationError(
            f"KINOIT_MAX_BODY_BYTES={max_body_bytes} is below {CHUNK_SIZE}: uploads need "
            "room for one 256 KiB leaf per request"
        )
    return size


def pin_name(name: str) -> str:
    """The pin name of an uploaded file: ``upload:`` and its name in plain characters."""
    return "upload:" + _PIN_NAME_UNSAFE.sub("_", name)[:100]


class Uploads:
    """The upload sessions of one Redis, stored into one store."""

    def __init__(self, connection: redis.Redis, store: Any, settings: Settings) -> None:
        self.redis = connection
        self.store = store
        self.settings = settings

    @translate_redis_errors
    def create(self, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        """Open an upload of ``body["size"]`` bytes (413 over the cap, nothing stored)."""
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise InvalidParameter("size", f"expected the file size in bytes (>= 1), got {size!r}")
        cap = self.settings.max_upload_bytes
        if size > cap:
            raise PayloadTooLarge(
                f"an upload of {size} bytes exceeds KINOIT_MAX_UPLOAD_BYTES={cap}"
            )
        name = body.get("name", "")
        if not isinstance(name, str) or len(name) > 1000:
            raise InvalidParameter("name", "expected the file name, at most 1000 characters")
        chunk = chunk_bytes_for(self.settings.max_body_bytes)
        upload_id = secrets.token_hex(16)
        key = UPLOAD_KEY.format(upload_id=upload_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"size": size, "received": 0, "name": name})
        pipe.expire(key, UPLOAD_IDLE_SECONDS)
        pipe.execute()
        return {
            "upload_id": upload_id,
            "upload_url": f"{base_url}/sources/{upload_id}",
            "chunk_bytes": chunk,
            "size": size,
        }

    def put(
        self, upload_id: str, offset_text: str | None, data: bytes
    ) -> tuple[dict[str, Any], int]:
        """Take the piece at ``offset``; the last one imports and pins the file."""
        if offset_text is None or not _DECIMAL.fullmatch(offset_text):
            raise InvalidParameter("offset", "expected the piece's byte offset as a decimal")
        offset = int(offset_text)
        size, received, name = self._session(upload_id)
        if offset == received == size and not data:
            # every piece arrived but closing the file failed (a store outage): again
            return {"cid": self._import(upload_id, name, size), "size": size}, 201
        if offset != received:
            raise Conflict(f"expected the piece at offset {received}, got {offset}")
        end = offset + len(data)
        if end > size:
            raise PayloadTooLarge(f"the piece ends at byte {end}, past the declared size {size}")
        chunk = chunk_bytes_for(self.settings.max_body_bytes)
        if len(data) != chunk and end != size:
            raise InvalidParameter(
                "body", f"expected a piece of {chunk} bytes (or the file's rest), got {len(data)}"
            )
        if offset == 0 and container_of(data[:SNIFF_BYTES]) is None:
            self.forget(upload_id)
            raise NotAVideo(
                "the file is not a video: its first bytes match no container kinoit reads "
                "(MP4/MOV, Matroska/WebM, MPEG-TS, AVI, FLV, Ogg, ...)"
            )
        leaves = [
            self.store.block_put(data[i : i + CHUNK_SIZE]) for i in range(0, len(data), CHUNK_SIZE)
        ]
        self._append(upload_id, offset, end, leaves)
        if end < size:
            return {"upload_id": upload_id, "received": end, "size": size}, 200
        cid = self._import(upload_id, name, size)
        return {"cid": cid, "size": size}, 201

    @translate_redis_errors
    def forget(self, upload_id: str) -> None:
        """Drop an upload's session (its unpinned leaves go with the next gc)."""
        self.redis.delete(
            UPLOAD_KEY.format(upload_id=upload_id), UPLOAD_LEAVES_KEY.format(upload_id=upload_id)
        )

    @translate_redis_errors
    def _session(self, upload_id: str) -> tuple[int, int, str]:
        raw = self.redis.hgetall(UPLOAD_KEY.format(upload_id=upload_id))
        if not raw:
            raise NotFound(f"no upload {upload_id!r} (finished, refused or idle too long)")
        fields = {text(k): text(v) for k, v in raw.items()}
        return int(fields["size"]), int(fields["received"]), fields.get("name", "")

    @translate_redis_errors
    def _append(self, upload_id: str, offset: int, end: int, leaves: list[str]) -> None:
        """Record the piece's leaves, unless another request recorded this offset first."""
        key = UPLOAD_KEY.format(upload_id=upload_id)
        leaves_key = UPLOAD_LEAVES_KEY.format(upload_id=upload_id)
        pipe: Any
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                current = pipe.hget(key, "received")
                if current is None or int(current) != offset:
                    raise Conflict(f"the piece at offset {offset} was already received")
                pipe.multi()
                pipe.rpush(leaves_key, *leaves)
                pipe.hset(key, "received", end)
                pipe.expire(key, UPLOAD_IDLE_SECONDS)
                pipe.expire(leaves_key, UPLOAD_IDLE_SECONDS)
                pipe.execute()
            except redis.WatchError:
                raise Conflict(f"the piece at offset {offset} was already received") from None

    def _import(self, upload_id: str, name: str, size: int) -> str:
        """Store the tree over the upload's leaves (every one but the last is a whole
        leaf) and pin its root."""
        leaves = self._leaves(upload_id)
        importer = FileImporter()
        for i, leaf in enumerate(leaves):
            length = min(CHUNK_SIZE, size - i * CHUNK_SIZE)
            for _cid, node in importer.push_stored(CID.parse(leaf), length):
                self.store.block_put(node, codec=DAG_PB)
        for _cid, node in importer.finish():
            self.store.block_put(node, codec=DAG_PB)
        if importer.root is None or importer.size != size:
            raise Conflict(f"upload {upload_id}: its pieces do not add up to {size} bytes")
        cid = str(importer.root)
        failpoints.hit(self.settings.failpoints, "upload.close")
        self.store.pin_add(cid, name=pin_name(name))
        self.forget(upload_id)
        return cid

    @translate_redis_errors
    def _leaves(self, upload_id: str) -> list[str]:
        raw = self.redis.lrange(UPLOAD_LEAVES_KEY.format(upload_id=upload_id), 0, -1)
        return [text(x) for x in raw]
