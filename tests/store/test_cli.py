"""`kinoit add|cat|dag|pin|gc|car`, in-process through kinoit.cli.main and once as a program."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kinoit.cli import main
from kinoit.cli import store as cli_store
from kinoit.store.unixfs import CHUNK_SIZE

from .conftest import free_port_closed, payload

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
