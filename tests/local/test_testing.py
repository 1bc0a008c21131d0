"""kinoit.local.testing: handlers loaded by path and called as the gateway calls them."""

from __future__ import annotations

from pathlib import Path

import pytest
from kinoit.errors import NotFound
from kinoit.local.testing import StageHandlerContract, call, load_function

HANDLER = """
import json
def handle(event, context):
    return {"statusCode": 201, "body": {"method": event.method, "path": event.path,
            "query": dict(event.query), "body": event.body.decode(),
            "auth": event.headers.get("authorization"), "host": bool(context.hostname)}}
"""


def test_a_handler_beside_the_test_file_is_called_with_a_full_event(tmp_path: Path) -> None:
    (tmp_path / "echo-fn").mkdir()
    (tmp_path / "echo-fn" / "handler.py").write_text(HANDLER)
    handle = load_function(tmp_path / "echo-fn" / "handler_test.py")
    assert handle.__module__ == "kinoit_function_echo_fn"
    reply = call(
        handle, {"a": 1}, method="put", headers={"Authorization": "t"}, query={"q": "1"},
        path="/x",
    )  # fmt: skip
    assert reply.status == 201 and reply.headers["Content-Type"] == "application/json"
    assert reply.json == {
        "method": "PUT", "path": "/x", "query": {"q": "1"}, "body": '{"a": 1}', "auth": "t",
        "host": True,
    }  # fmt: skip
    assert call(handle, b"raw").json["body"] == "raw"


def test_a_missing_handler_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_function(tmp_path / "handler_test.py")


def test_the_contract_catches_a_handler_wired_to_the_wrong_stage(tmp_path: Path) -> None:
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "handler.py").write_text(
        "from kinoit.stages import merge\n"
        "from kinoit.stages.http import serve_stage\n"
        "def handle(event, context):\n"
        "    return serve_stage(event, merge)\n"
    )

    class Contract(StageHandlerContract):
        test_file = str(tmp_path / "split" / "handler_test.py")
        cid_field = "source"

    Contract().test_rejects_other_methods()  # what every stage does still passes
    with pytest.raises(AssertionError):
        Contract().test_missing_input_cid_is_400_naming_the_field()
