"""`kinoit add|cat|dag|pin|gc|car`, in-process through kinoit.cli.main and once as a program."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kinoit.cli import main
from kinoit.cli import store as cli_store
from kinoit.store.cid import CID, RAW
from kinoit.store.unixfs import CHUNK_SIZE

from .conftest import free_port_closed, our_cid, payload
from .fake_http import Answer, Request, fake_server

HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def set_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main(list(argv))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_add_prints_the_cid_alone_and_cat_the_bytes(
    kinoit_home: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = payload(2 * CHUNK_SIZE + 7)
    path = tmp_path / "video.bin"
    path.write_bytes(data)
    code, out, err = run(capsysbinary, "add", str(path))
    assert code == 0 and err == ""
    cid = out.decode().strip()
    assert out == f"{cid}\n".encode() and cid.startswith("bafybei")
    code, out, _ = run(capsysbinary, "cat", cid)
    assert code == 0 and out == data


def test_add_from_stdin(
    kinoit_home: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    set_stdin(monkeypatch, b"hello world\n")
    assert run(capsysbinary, "add", "-") == (0, f"{HELLO}\n".encode(), "")


def test_dag_put_and_get_speak_dag_json(
    kinoit_home: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    set_stdin(monkeypatch, b"hello world\n")
    run(capsysbinary, "add", "-")
    doc = {"b": {"/": {"bytes": "aGk"}}, "file": {"/": HELLO}, "n": [1, 2.5, None]}
    set_stdin(monkeypatch, json.dumps(doc).encode())
    code, out, _ = run(capsysbinary, "dag", "put", "--pin")
    cid = out.decode().strip()
    assert code == 0 and cid.startswith("bafyrei")
    code, out, _ = run(capsysbinary, "dag", "get", cid)
    assert code == 0
    assert json.loads(out) == doc


def test_pins_gc_and_expiry(kinoit_home: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    path = kinoit_home / "a.txt"
    path.write_bytes(b"hello world\n")
    run(capsysbinary, "add", "--no-pin", str(path))
    assert run(capsysbinary, "pin", "ls") == (0, b"", "")
    code, out, _ = run(capsysbinary, "pin", "add", HELLO, "--name", "job-1", "--expire-in", "3600")
    assert (code, out) == (0, f"{HELLO}\n".encode())
    code, out, _ = run(capsysbinary, "pin", "ls")
    cid, name, expiry = out.decode().strip().split("\t")
    assert (cid, name) == (HELLO, "job-1") and expiry.endswith("Z")
    assert run(capsysbinary, "gc") == (0, b"removed 0 blocks\n", "")
    assert run(capsysbinary, "pin", "rm", HELLO)[0] == 0
    assert run(capsysbinary, "gc") == (0, b"removed 1 blocks\n", "")
    code, _, err = run(capsysbinary, "cat", HELLO)
    assert code == 2 and "not found" in err


def test_car_export_and_import(
    kinoit_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    data = payload(3 * CHUNK_SIZE)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    cid = run(capsysbinary, "add", str(src))[1].decode().strip()
    car = tmp_path / "f.car"
    assert run(capsysbinary, "car", "export", cid, "-o", str(car)) == (0, b"", "")
    code, out, _ = run(capsysbinary, "car", "export", cid)
    assert code == 0 and out == car.read_bytes()
    monkeypatch.setenv("KINOIT_HOME", str(tmp_path / "other-home"))
    assert run(capsysbinary, "car", "import", str(car)) == (0, f"{cid}\n".encode(), "")
    assert run(capsysbinary, "cat", cid)[1] == data


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["cat", "not-a-cid"], b"", "not a CID"),
        (["cat", HELLO], b"", "not found"),
        (["dag", "get", HELLO], b"", "not dag-cbor"),
        (["dag", "put"], b'{"a": NaN}', "NaN"),
        (["dag", "put"], b"", "expected a dag-json"),
        (["pin", "rm", HELLO], b"", "not pinned"),
        (["pin", "add", HELLO, "--expire-in", "-1"], b"", "positive"),
        (["add", "/definitely/not/here"], b"", "no such file"),
        (["car", "import", "-"], b"\x05garbage", "CAR"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    kinoit_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    argv: list[str],
    stdin: bytes,
    message: str,
) -> None:
    set_stdin(monkeypatch, stdin)
    code, out, err = run(capsysbinary, *argv)
    assert code == 2
    assert out == b""
    assert err.startswith("kinoit: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_kubo_down_is_store_unavailable(
    kinoit_home: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setenv("KINOIT_IPFS_API", f"http://127.0.0.1:{free_port_closed()}")
    monkeypatch.setenv("KINOIT_HTTP_RETRIES", "1")
    code, _, err = run(capsysbinary, "cat", HELLO)
    assert code == 2 and "cannot reach Kubo" in err and err.count("\n") == 1


def test_the_installed_program(kinoit_home: Path, tmp_path: Path) -> None:
    program = Path(sys.executable).parent / "kinoit"
    env = dict(os.environ)
    added = subprocess.run(
        [program, "add", "-"], input=b"hello world\n", capture_output=True, env=env, timeout=60
    )
    assert (added.returncode, added.stdout, added.stderr) == (0, f"{HELLO}\n".encode(), b"")
    cat = subprocess.run([program, "cat", HELLO], capture_output=True, env=env, timeout=60)
    assert cat.stdout == b"hello world\n"
    bad = subprocess.run([program, "cat", "Qmnope"], capture_output=True, env=env, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.decode().startswith("kinoit: not a CID")
    assert b"Traceback" not in bad.stderr


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_for_big_files_on_a_tty(
    kinoit_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    monkeypatch.setattr(cli_store, "PROGRESS_MIN_BYTES", 2 * CHUNK_SIZE)
    big = tmp_path / "big.bin"
    big.write_bytes(payload(3 * CHUNK_SIZE))
    small = tmp_path / "small.bin"
    small.write_bytes(b"tiny")
    tty = _FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["add", str(small)]) == 0
    assert tty.getvalue() == ""
    assert main(["add", str(big)]) == 0
    drawn = tty.getvalue()
    assert "adding [" in drawn and "100%" in drawn and drawn.endswith("\n")
    out = capsysbinary.readouterr().out.decode().split()
    assert out[1].startswith("bafybei")  # stdout still holds the CID alone


# -- bad input through the installed program ------------------------------------------------


def _program(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> tuple[int, bytes, str]:
    program = Path(sys.executable).parent / "kinoit"
    done = subprocess.run([program, *argv], input=stdin, capture_output=True, env=env, timeout=60)
    return done.returncode, done.stdout, done.stderr.decode()


def assert_one_line_error(result: tuple[int, bytes, str], message: str) -> None:
    code, out, err = result
    assert code == 2, err
    assert out == b""
    assert err.startswith("kinoit: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture
def damaged_home(kinoit_home: Path, tmp_path: Path) -> dict[str, Any]:
    """A store with one intact file, one file with a leaf corrupted on disk, and CAR files."""
    env = dict(os.environ)
    intact = program_add(env, payload(2 * CHUNK_SIZE + 1, seed=31))
    damaged_data = payload(2 * CHUNK_SIZE + 1, seed=32)
    damaged = program_add(env, damaged_data)
    leaf = next(cid for cid in our_cid(damaged_data)[1] if cid.codec == RAW)
    leaf_path = kinoit_home / "store" / "blocks" / f"{leaf.digest[0]:02x}" / str(leaf)
    leaf_path.write_bytes(b"\x00" + leaf_path.read_bytes()[1:])
    car = tmp_path / "intact.car"
    assert _program(["car", "export", intact, "-o", str(car)], env)[0] == 0
    (tmp_path / "truncated.car").write_bytes(car.read_bytes()[:-1000])
    (tmp_path / "malformed.car").write_bytes(b"\x0agarbage!!" + car.read_bytes()[11:])
    return {"env": env, "damaged": damaged, "leaf": str(leaf), "dir": tmp_path}


def program_add(env: dict[str, str], data: bytes) -> str:
    code, out, err = _program(["add", "-"], env, data)
    assert code == 0, err
    return out.decode().strip()


def test_program_bad_store_input_is_one_line_each(damaged_home: dict[str, Any]) -> None:
    env, work = damaged_home["env"], damaged_home["dir"]
    assert_one_line_error(_program(["cat", "bafy-not-a-cid"], env), "not a CID")
    assert_one_line_error(_program(["cat", HELLO], env), "not found")
    assert_one_line_error(_program(["cat", damaged_home["damaged"]], env), "corrupted on disk")
    assert_one_line_error(_program(["dag", "get", damaged_home["leaf"]], env), "not dag-cbor")
    fresh = {**env, "KINOIT_HOME": str(work / "fresh-home")}
    for car, message in (("truncated.car", "truncated CAR"), ("malformed.car", "malformed CAR")):
        assert_one_line_error(_program(["car", "import", str(work / car)], fresh), message)
        assert _program(["pin", "ls"], fresh) == (0, b"", "")  # nothing half-imported is pinned


def test_program_kubo_down_or_failing_is_one_line(kinoit_home: Path) -> None:
    down = {**os.environ, "KINOIT_IPFS_API": f"http://127.0.0.1:{free_port_closed()}"}
    down["KINOIT_HTTP_RETRIES"] = "0"
    assert_one_line_error(_program(["cat", HELLO], down), "cannot reach Kubo")

    def internal_error(request: Request) -> Answer:
        return Answer(500, {"Message": "datastore closed", "Code": 0, "Type": "error"})

    with fake_server(internal_error) as server:
        failing = {**os.environ, "KINOIT_IPFS_API": server.url, "KINOIT_HTTP_RETRIES": "0"}
        assert_one_line_error(_program(["pin", "ls"], failing), "datastore closed")
        assert_one_line_error(_program(["add", "-"], failing, b"x"), "datastore closed")


@pytest.mark.kubo
def test_program_against_a_real_kubo_answering_errors(kinoit_home: Path, kubo: Any) -> None:
    env = {**os.environ, "KINOIT_IPFS_API": kubo.api_url, "KINOIT_HTTP_RETRIES": "0"}
    unknown = str(CID.for_block(RAW, b"never added anywhere"))
    assert_one_line_error(_program(["pin", "rm", unknown], env), "not pinned")
    assert_one_line_error(_program(["cat", unknown], env), "not found")
