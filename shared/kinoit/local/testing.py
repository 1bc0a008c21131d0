"""Test support for function handlers: load ``functions/<name>/handler.py`` by path
and call its ``handle`` the way the python3-http template and the local gateway do.

Public so that each ``functions/<name>/handler_test.py`` (which runs against the
installed ``kinoit`` package, like its handler) stays a few lines long::

    from kinoit.local.testing import StageHandlerContract, call, load_function

    class TestSplitHandler(StageHandlerContract):
        test_file = __file__
        cid_field = "source"

    def test_something_only_split_does() -> None:
        reply = call(load_function(__file__), {"source": "..."})
        assert reply.status == 400
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kinoit.local.event import Context, format_response, make_event
from kinoit.local.functions import load_handler

Handle = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class HandlerReply:
    """A handler's return value reduced to what a client would see."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not JSON)."""
        return json.loads(self.body)


def load_function(test_file: str | Path) -> Handle:
    """The ``handle`` of ``handler.py`` beside ``test_file`` (pass ``__file__``), loaded
    once, as the local gateway loads it (NotFound when there is none)."""
    folder = Path(test_file).resolve().parent
    return load_handler(folder.parent, folder.name)


def call(
    handle: Handle,
    body: bytes | Mapping[str, Any] | list[Any] = b"",
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    path: str = "/",
) -> HandlerReply:
    """Call ``handle`` with a python3-http event and context; a mapping or list body
    is sent as JSON. The reply is normalised as the gateway does (dict, tuple, ...)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    event = make_event(raw, headers=headers, method=method, query=query, path=path)
    result = format_response(handle(event, Context()))
    return HandlerReply(result.status, result.headers, result.body)


# The stage-signing secret the contract's handlers are called with.
CONTRACT_STAGE_SECRET = b"contract-stage-signing-secret"


@contextlib.contextmanager
def stage_secrets(key: bytes = CONTRACT_STAGE_SECRET) -> Iterator[Path]:
    """A secrets dir holding ``kinoit-stage-secret`` = ``key``, named by
    ``KINOIT_SECRETS_DIR`` while the block runs (the handler reads its settings then)."""
    from kinoit.stages.signing import STAGE_SECRET_FILE

    with tempfile.TemporaryDirectory(prefix="kinoit-contract-") as folder:
        (Path(folder) / STAGE_SECRET_FILE).write_bytes(key)
        before = os.environ.get("KINOIT_SECRETS_DIR")
        os.environ["KINOIT_SECRETS_DIR"] = folder
        try:
            yield Path(folder)
        finally:
            if before is None:
                del os.environ["KINOIT_SECRETS_DIR"]
            else:
                os.environ["KINOIT_SECRETS_DIR"] = before


def signed_headers(
    body: bytes, key: bytes = CONTRACT_STAGE_SECRET, callback_url: str = "", **kwargs: Any
) -> dict[str, str]:
    """Headers of a stage request signed as orchestrate signs it."""
    from kinoit.stages.signing import CALLBACK_HEADER, sign_stage_request

    headers = sign_stage_request(key, body, callback_url, **kwargs)
    if callback_url:
        headers[CALLBACK_HEADER] = callback_url
    return headers


class StageHandlerContract:
    """The request checks every stage handler (a :func:`~kinoit.stages.http.serve_stage`
    adapter) must pass. Subclass it as ``Test<Name>Handler`` in the handler's test file,
    setting ``test_file = __file__`` and ``cid_field`` (the CID field the stage needs
    first); pytest then runs these tests against that handler."""

    test_file: ClassVar[str]
    cid_field: ClassVar[str]

    def reply(
        self,
        body: bytes | Mapping[str, Any] = b"",
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
    ) -> HandlerReply:
        """Call this class's handler, signed as orchestrate signs unless ``headers``
        are given."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        with stage_secrets():
            sent = signed_headers(raw) if headers is None else headers
            return call(load_function(self.test_file), raw, method=method, headers=sent)

    def test_unsigned_request_is_401_before_the_body_is_read(self) -> None:
        reply = self.reply(b"{nope", headers={})
        assert reply.status == 401 and reply.json["error"] == "Unauthorized"

    def test_stale_signature_is_401(self) -> None:
        raw = json.dumps({self.cid_field: "not-a-cid"}).encode()
        stale = signed_headers(raw, now=time.time() - 7200, valid_for=3600)
        reply = self.reply(raw, headers=stale)
        assert reply.status == 401 and "expired" in reply.json["message"]

    def test_signature_of_another_body_or_key_or_callback_is_401(self) -> None:
        raw = json.dumps({self.cid_field: "not-a-cid"}).encode()
        for headers in (
            signed_headers(raw + b" "),
            signed_headers(raw, key=b"some-other-stage-secret"),
            {**signed_headers(raw, callback_url="http://orchestrate/cb"),
             "X-Callback-Url": "http://attacker.example/cb"},
        ):  # fmt: skip
            reply = self.reply(raw, headers=headers)
            assert reply.status == 401, headers

    def test_rejects_other_methods(self) -> None:
        reply = self.reply(method="GET")
        assert reply.status == 405 and reply.headers["Content-Type"] == "application/json"

    def test_invalid_json_is_400_naming_the_body(self) -> None:
        reply = self.reply(b"{nope")
        assert reply.status == 400 and reply.json["field"] == "body"

    def test_missing_input_cid_is_400_naming_the_field(self) -> None:
        reply = self.reply({})
        assert reply.status == 400 and reply.json["field"] == self.cid_field
        assert reply.json["retryable"] is False

    def test_bad_cid_is_400(self) -> None:
        reply = self.reply({self.cid_field: "not-a-cid"})
        assert reply.status == 400 and reply.json["field"] == self.cid_field
