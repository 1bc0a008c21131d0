"""The Kubo backend: a Kubo node over its RPC API (``POST /api/v0/...``), with ``requests``.

Every call has a connect and read timeout. Connection failures, read timeouts and
502/503/504 answers are retried a bounded number of times with exponential
backoff by the session of :mod:`kinoit.store.http`; an upload, whose body is a
stream, is sent once per attempt and re-read from the start by ``add``. Kubo
reports command errors as HTTP 500 with a JSON ``{"Message": ..., "Type": "error"}``
body; those are mapped by message: unknown blocks and pins become NotFound,
unparsable CIDs InvalidCID, anything else StoreUnavailable with Kubo's message.

What is verified here, not trusted: ``add`` hashes the bytes it sends with the
same importer as the embedded store and checks Kubo's CID; ``cat`` streams the
file in one request but checks every 256 KiB slice against its leaf CID (the
DAG's inner nodes come from ``block/get``); ``block_get``/``dag_get`` hash the
block; ``car_export`` re-reads the CAR it is given.

Kubo keeps pin names (``pin add --name``) but not expiry, so an expiring pin
carries its deadline in its name (``<name>;expires-at=<unix>``): every client
of the node sees it, ``pin_ls`` hides pins past it, and ``gc`` unpins them
before running ``repo/gc``.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

import requests

from kinoit.errors import (
    IntegrityError,
    InvalidCAR,
    InvalidCID,
    InvalidParameter,
    KinoitError,
    NotFound,
    StoreUnavailable,
)
from kinoit.store import car, dagcbor, unixfs
from kinoit.store.base import Pin, iter_chunks, save_chunks, source_stream
from kinoit.store.cid import CID, DAG_CBOR, DAG_PB, RAW, parse_cid
from kinoit.store.http import (
    CONNECT_TIMEOUT_SECONDS,
    backoff_seconds,
    retrying_session,
    single_attempt_session,
    timed_out,
)

_EXPIRY_MARK = ";expires-at="
_NOT_FOUND_HINTS = (
    "not found",
    "could not find",
    "not pinned",
    "no link named",
)
_BAD_CID_HINTS = (
    "invalid cid",
    "invalid path",
    "failed to parse",
    "selected encoding not supported",
)


def encode_pin_name(name: str, expires_at: float | None) -> str:
    """The Kubo pin name carrying kinoit's name and optional expiry."""
    if _EXPIRY_MARK in name:
        raise InvalidParameter("name", f"must not contain {_EXPIRY_MARK!r}")
    return name if expires_at is None else f"{name}{_EXPIRY_MARK}{int(expires_at)}"


def decode_pin_name(raw: str) -> tuple[str, float | None]:
    """Split a Kubo pin name into kinoit's name and expiry."""
    name, mark, deadline = raw.rpartition(_EXPIRY_MARK)
    if mark and deadline.isdigit():
        return name, float(deadline)
    return raw, None


class _Upload:
    """A multipart/form-data body with one file part, streamed from an iterable of bytes."""

    def __init__(self, parts: Iterable[bytes], filename: str = "file") -> None:
        self.boundary = uuid.uuid4().hex
        self._parts = parts
        self._filename = filename

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __iter__(self) -> Iterator[bytes]:
        yield (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{self._filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for part in self._parts:
            if part:
                yield part
        yield f"\r\n--{self.boundary}--\r\n".encode()


class _ExactReader:
    """Reads exact byte counts from a streaming HTTP response."""

    def __init__(self, response: requests.Response) -> None:
        self._chunks = response.iter_content(chunk_size=1 << 16)
        self._buffer = bytearray()

    def read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            piece = next(self._chunks, b"")
            if not piece:
                break
            self._buffer += piece
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data


def _checked_answer(
    endpoint: str, answer: Any, read: Callable[[Any], Any], expected: CID, what: str
) -> str:
    """The CID Kubo answered a put with (``read`` picks it out), as CIDv1 text; a
    malformed answer is StoreUnavailable, another CID than ours IntegrityError."""
    try:
        got = CID.parse(read(answer)).to_v1()
    except (KeyError, TypeError):
        raise StoreUnavailable(f"Kubo {endpoint} answered {answer!r}") from None
    if got != expected:
        raise IntegrityError(f"Kubo stored the {what} as {got}, expected {expected}")
    return str(got)


class KuboStore:
    """The Store interface over a Kubo node's RPC API."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        session: requests.Session | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._session = session or retrying_session(retries)
        self._upload_session = single_attempt_session()

    def __repr__(self) -> str:
        return f"KuboStore({self.api_url!r})"

    # -- transport --------------------------------------------------------------------

    def _call(
        self,
        command: str,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        *,
        body: Iterable[bytes] | None = None,
        replay: bool = True,
        stream: bool = False,
    ) -> requests.Response:
        """POST one RPC command (the session retries transient failures when the body
        can be sent again); map errors to kinoit errors."""
        url = f"{self.api_url}/api/v0/{command}"
        headers: dict[str, str] = {}
        data: Any = None
        if body is not None:
            upload = body if isinstance(body, _Upload) else _Upload(body)
            headers["Content-Type"] = upload.content_type
            # a small body that may be sent again goes as bytes, which the session can resend
            data = b"".join(upload) if replay else iter(upload)
        session = self._session if replay else self._upload_session
        try:
            response = session.post(
                url,
                params=params,
                data=data,
                headers=headers,
                stream=stream,
                timeout=(min(CONNECT_TIMEOUT_SECONDS, self.timeout), self.timeout),
            )
        except requests.RequestException as exc:
            if timed_out(exc):
                message = f"Kubo at {self.api_url} did not answer {command} within {self.timeout}s"
                raise StoreUnavailable(message) from None
            if isinstance(exc, requests.ConnectionError):
                raise StoreUnavailable(
                    f"cannot reach Kubo at {self.api_url}: {type(exc).__name__}"
                ) from None
            raise StoreUnavailable(f"Kubo {command} failed: {exc}") from None
        if response.status_code == 200:
            return response
        raise self._error_for(command, response)

    @staticmethod
    def _error_for(command: str, response: requests.Response) -> KinoitError:
        message = ""
        try:
            payload = response.json()
            if isinstance(payload, dict):
                message = str(payload.get("Message", ""))
        except ValueError:
            message = response.text[:200].strip()
        finally:
            response.close()
        lowered = message.lower()
        if response.status_code == 500 and message:
            if any(hint in lowered for hint in _BAD_CID_HINTS):
                return InvalidCID(f"Kubo {command}: {message}")
            if any(hint in lowered for hint in _NOT_FOUND_HINTS):
                return NotFound(f"Kubo {command}: {message}")
        if response.status_code in (400, 404, 405):
            return StoreUnavailable(
                f"Kubo {command} refused ({response.status_code}): {message or 'no message'}"
            )
        return StoreUnavailable(
            f"Kubo {command} failed ({response.status_code}): {message or 'no message'}"
        )

    def _json(self, command: str, params: Any = None, **kwargs: Any) -> Any:
        response = self._call(command, params, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise StoreUnavailable(f"Kubo {command} answered non-JSON") from None

    def _ndjson(self, response: requests.Response) -> Iterator[Any]:
        with response:
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)

    # -- files ------------------------------------------------------------------------

    def add(self, source: IO[bytes] | Path, *, pin: bool = True, name: str = "") -> str:
        """Send a file to Kubo as ``ipfs add --cid-version=1`` with the layout spelled out.

        Chunker, raw leaves, links per node and the balanced layout are all sent
        explicitly (a node's Import.* config cannot change the CID), and the CID
        Kubo answers is checked against the one computed here while streaming.
        """
        if isinstance(source, Path | str):
            with source_stream(source) as stream:
                return self.add(stream, pin=pin, name=name)
        params: dict[str, str] = {
            "cid-version": "1",
            "raw-leaves": "true",
            "chunker": f"size-{unixfs.CHUNK_SIZE}",
            "max-file-links": str(unixfs.MAX_LINKS),
            "trickle": "false",
            "hash": "sha2-256",
            "pin": "true" if pin else "false",
            "quieter": "true",
            "progress": "false",
        }
        if pin and name:
            params["pin-name"] = name
        start = source.tell() if source.seekable() else None
        importer = unixfs.FileImporter()

        def hashed_chunks() -> Iterator[bytes]:
            for chunk in iter_chunks(source, unixfs.CHUNK_SIZE):
                importer.push(chunk)
                yield chunk

        attempts = 1 + (self.retries if start is not None else 0)
        for attempt in range(attempts):
            if attempt:
                assert start is not None
                source.seek(start)
                importer = unixfs.FileImporter()
            try:
                response = self._call("add", params, body=hashed_chunks(), replay=False)
                break
            except StoreUnavailable:
                if attempt + 1 == attempts:
                    raise
                time.sleep(backoff_seconds(attempt + 1))
        results = [item for item in self._ndjson(response) if "Hash" in item]
        importer.finish()
        if not results:
            raise StoreUnavailable("Kubo add returned no CID")
        got = CID.parse(results[-1]["Hash"])
        if got != importer.root:
            raise IntegrityError(f"Kubo stored the file as {got}, expected {importer.root}")
        return str(got)

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "") -> str:
        """Import bytes as a UnixFS file; return its CID."""
        return self.add(io.BytesIO(data), pin=pin, name=name)

    def cat(self, cid: str) -> Iterator[bytes]:
        """Stream a file with one ``cat`` call, each leaf checked against its CID."""
        root = parse_cid(cid)
        if root.codec == RAW:
            return iter([self.block_get(str(root))])
        if root.codec != DAG_PB:
            raise InvalidParameter("cid", f"{root} is {root.codec_name}, not a UnixFS file")
        return self._cat_verified(root)

    def _cat_verified(self, root: CID) -> Iterator[bytes]:
        response = self._call("cat", {"arg": str(root)}, stream=True)
        stream = _ExactReader(response)

        def get_block(cid: CID, size: int | None) -> bytes:
            if cid.codec == RAW and size is not None:
                data = stream.read(size)
                if len(data) != size:
                    raise IntegrityError(f"Kubo cat of {root} ended early")
                cid.verify(data)
                return data
            # An inner node, or a leaf of unknown size: fetch it, and skip the bytes it
            # holds itself (a raw leaf, or data inline in a dag-pb leaf) in the stream.
            data = self.block_get(str(cid))
            content = _content_of(cid, data)
            if content and stream.read(len(content)) != content:
                raise IntegrityError(f"Kubo cat of {root} disagrees with block {cid}")
            return data

        try:
            yield from unixfs.iter_file(get_block, root)
            if stream.read(1):
                raise IntegrityError(f"Kubo cat of {root} returned more bytes than its DAG holds")
        finally:
            response.close()

    def get_file(self, cid: str, dest: Path) -> Path:
        """Write a UnixFS file to ``dest`` atomically and return ``dest`` (not fsynced)."""
        return save_chunks(self.cat(cid), Path(dest))

    # -- blocks and DAG-CBOR ----------------------------------------------------------

    def block_get(self, cid: str) -> bytes:
        """The raw bytes of one block, verified against its CID."""
        parsed = parse_cid(cid)
        data = self._call("block/get", {"arg": str(parsed)}).content
        try:
            parsed.verify(data)
        except IntegrityError:
            raise IntegrityError(f"Kubo returned bytes for {parsed} that do not match it") from None
        return data

    def block_put(self, data: bytes, *, codec: int = RAW) -> str:
        """Store one block as-is with ``codec``; return its CID (checked against ours)."""
        expected = CID.for_block(codec, data)
        params = {"cid-codec": expected.codec_name, "mhtype": "sha2-256", "pin": "false"}
        answer = self._json("block/put", params, body=[data])
        return _checked_answer("block/put", answer, lambda a: str(a["Key"]), expected, "block")

    def has(self, cid: str) -> bool:
        """Whether the node holds the block locally (no network lookup)."""
        parsed = parse_cid(cid)
        try:
            self._call("block/stat", {"arg": str(parsed), "offline": "true"})
        except NotFound:
            return False
        return True

    def dag_put(self, value: Any, *, pin: bool = False) -> str:
        """Store one strict DAG-CBOR block; return its CID (checked against ours)."""
        data = dagcbor.encode(value)
        expected = CID.for_block(DAG_CBOR, data)
        params = {
            "store-codec": "dag-cbor",
            "input-codec": "dag-cbor",
            "hash": "sha2-256",
            "pin": "true" if pin else "false",
        }
        answer = self._json("dag/put", params, body=[data])
        return _checked_answer(
            "dag/put", answer, lambda a: a["Cid"]["/"], expected, "DAG-CBOR block"
        )

    def dag_get(self, cid: str) -> Any:
        """Fetch one DAG-CBOR block (verified) and decode it strictly."""
        parsed = parse_cid(cid)
        if parsed.codec != DAG_CBOR:
            raise InvalidParameter("cid", f"{parsed} is {parsed.codec_name}, not dag-cbor")
        return dagcbor.decode(self.block_get(str(parsed)))

    # -- pins -------------------------------------------------------------------------

    def pin_add(self, cid: str, *, name: str = "", expire_in: float | None = None) -> Pin:
        """Pin recursively; the name (and expiry, see module doc) go in Kubo's pin name."""
        root = parse_cid(cid)
        if expire_in is not None and not expire_in > 0:
            raise InvalidParameter("expire_in", f"must be a positive number, got {expire_in}")
        expires_at = None if expire_in is None else time.time() + expire_in
        params = {"arg": str(root), "recursive": "true"}
        kubo_name = encode_pin_name(name, expires_at)
        if kubo_name:
            params["name"] = kubo_name
        self._json("pin/add", params)
        return Pin(str(root.to_v1()), name, None if expires_at is None else float(int(expires_at)))

    def pin_rm(self, cid: str) -> None:
        """Remove a recursive pin (NotFound when it is not pinned)."""
        root = parse_cid(cid)
        self._json("pin/rm", {"arg": str(root), "recursive": "true"})

    def _kubo_pins(self) -> list[Pin]:
        answer = self._json("pin/ls", {"type": "recursive", "names": "true"})
        pins = []
        for key, info in (answer.get("Keys") or {}).items():
            name, expires_at = decode_pin_name(str((info or {}).get("Name", "")))
            pins.append(Pin(str(CID.parse(key).to_v1()), name, expires_at))
        return sorted(pins, key=lambda p: p.cid)

    def pin_ls(self) -> list[Pin]:
        """Every live recursive pin, in CID order."""
        now = time.time()
        return [p for p in self._kubo_pins() if p.expires_at is None or p.expires_at > now]

    def gc(self, *, min_age: float = 0.0) -> int:
        """Unpin expired pins, then run Kubo's ``repo/gc``; return how many blocks it removed."""
        if min_age:
            raise InvalidParameter("min_age", "Kubo's repo/gc has no grace period")
        now = time.time()
        for pin in self._kubo_pins():
            if pin.expires_at is not None and pin.expires_at <= now:
                with contextlib.suppress(NotFound):
                    self.pin_rm(pin.cid)
        removed = 0
        for item in self._ndjson(self._call("repo/gc", {"stream-errors": "true"}, stream=True)):
            if item.get("Error"):
                raise StoreUnavailable(f"Kubo repo/gc: {item['Error']}")
            if item.get("Key"):
                removed += 1
        return removed

    # -- CAR --------------------------------------------------------------------------

    def car_export(self, root: str, out: IO[bytes]) -> None:
        """Write the DAG under ``root`` as a CAR v1, every block checked on the way through."""
        parsed = parse_cid(root)
        response = self._call("dag/export", {"arg": str(parsed)}, stream=True)
        with response:
            response.raw.decode_content = True
            try:
                reader = car.CarReader(cast(IO[bytes], response.raw))
                out.write(car.encode_header(reader.roots))
                for cid, data in reader:
                    out.write(car.encode_section(cid, data))
            except InvalidCAR as exc:
                raise StoreUnavailable(f"Kubo dag/export of {parsed}: {exc.message}") from None

    def car_import(self, source: IO[bytes], *, pin: bool = True) -> list[str]:
        """Import a CAR v1 (checked block by block while it streams to Kubo); pin its roots.

        A malformed or truncated CAR aborts the upload before Kubo has read all of
        it, so Kubo pins nothing.
        """
        reader = car.CarReader(source)

        def sections() -> Iterator[bytes]:
            yield car.encode_header(reader.roots)
            for cid, data in reader:
                yield car.encode_section(cid, data)

        params = {"pin-roots": "true" if pin else "false", "stats": "false"}
        try:
            response = self._call("dag/import", params, body=sections(), replay=False, stream=True)
            items = list(self._ndjson(response))
        except requests.RequestException as exc:
            raise StoreUnavailable(f"Kubo dag/import failed: {exc}") from None
        for item in items:
            root = item.get("Root") or {}
            if root.get("PinErrorMsg"):
                raise InvalidCAR(f"Kubo could not pin CAR root: {root['PinErrorMsg']}")
        return [str(r.to_v1()) for r in reader.roots]


def _content_of(cid: CID, data: bytes) -> bytes:
    """The file bytes a block holds itself: all of a raw leaf, a dag-pb node's inline data."""
    if cid.codec == RAW:
        return data
    try:
        return unixfs.decode_unixfs(unixfs.decode_pbnode(data).data or b"").data
    except ValueError:
        return b""  # iter_file reports the malformed node
