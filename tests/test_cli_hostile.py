"""The CLI's catalogue of bad inputs: each is one line on stderr and exit 2, never a
traceback (real ffmpeg, the real embedded store, the real console entry point)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXIT_ERROR = 2


def kinoit(
    home: Path, cwd: Path, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINOIT_")}
    env["KINOIT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "kinoit.cli", *args],
        input=stdin, cwd=cwd, env=env, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from kinoit.media.synth import make_clip

    root = tmp_path_factory.mktemp("cli-hostile")
    clip = make_clip(root / "clip.mp4", seconds=1, width=96, height=64, audio=False)
    data = clip.read_bytes()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    text = root / "notes.txt"
    text.write_text("plain text, not a video\n" * 400)
    (root / "latin1.yaml").write_bytes(b"name: caf\xe9\nrungs: []\n")
    (root / "object.yaml").write_text("!!python/object/apply:os.system ['echo pwned']\n")
    (root / "newline.yaml").write_text('rungs:\n  - {name: "360p\\n", height: 360}\n')
    (root / "huge.json").write_text('{"rungs": [{"name": "a", "height": ' + "9" * 5000 + "}]}")
    (root / "deep.yaml").write_text("rungs: " + "[" * 5000 + "]" * 5000 + "\n")
    return {"clip": clip, "truncated": truncated, "text": text, "root": root}


def cases(f: dict[str, Path]) -> list[tuple[str, list[str], bytes]]:
    root, clip = f["root"], str(f["clip"])
    out = str(root / "out")
    return [
        ("transcode --fps abc", ["transcode", clip, out, "--fps", "abc"], b""),
        ("transcode --fps 0", ["transcode", clip, out, "--fps", "0"], b""),
        ("non-UTF-8 ladder", ["transcode", clip, out, "--ladder", str(root / "latin1.yaml")], b""),
        ("!!python/object ladder", ["transcode", clip, out, "--ladder",
                                    str(root / "object.yaml")], b""),
        ("rung name with a newline", ["transcode", clip, out, "--ladder",
                                      str(root / "newline.yaml")], b""),
        ("5,000-digit number in a ladder", ["transcode", clip, out, "--ladder",
                                            str(root / "huge.json")], b""),
        ("ladder nested 5,000 deep", ["transcode", clip, out, "--ladder",
                                      str(root / "deep.yaml")], b""),
        ("dag put of a huge number", ["dag", "put"], b"9" * 5000),
        ("dag put nested 50,000 deep", ["dag", "put"], b"[" * 50_000 + b"]" * 50_000),
        ("dag put of bytes that are not UTF-8", ["dag", "put"], b'{"a": "\xff"}'),
        ("probe of a truncated MP4", ["probe", str(f["truncated"])], b""),
        ("split of a text file", ["split", str(f["text"]), out], b""),
        ("thumbnail of a text file", ["thumbnail", str(f["text"]), str(root / "t.jpg")], b""),
        ("probe of pipe: (a file name, not stdin)", ["probe", "pipe:"], b""),
        ("probe of concat:... (a file name, not a protocol)",
         ["probe", f"concat:{clip}|{clip}"], b""),
        ("probe of http:... (a file name, not a URL)", ["probe", "http://127.0.0.1:9/x.mp4"], b""),
        ("probe of a missing file", ["probe", str(root / "missing.mp4")], b""),
        ("cat of a non-CID", ["cat", "not-a-cid"], b""),
        ("split --seconds abc", ["split", clip, out, "--seconds", "abc"], b""),
        ("unknown command", ["transmogrify"], b""),
        ("run --segment-seconds 0.1", ["run", clip, "--segment-seconds", "0.1"], b""),
        ("run --segment-seconds abc", ["run", clip, "--segment-seconds", "abc"], b""),
        ("thumbnail --width abc", ["thumbnail", clip, str(root / "t.jpg"), "--width", "abc"], b""),
    ]  # fmt: skip


def test_every_bad_cli_input_is_one_line_on_stderr_and_exit_2(
    files: dict[str, Path], tmp_path: Path
) -> None:
    listed = cases(files)
    assert len(listed) >= 15
    wrong = {}
    for name, args, stdin in listed:
        done = kinoit(tmp_path / "home", tmp_path, *args, stdin=stdin)
        err = done.stderr.decode("utf-8", "replace")
        lines = err.splitlines()
        if done.returncode != EXIT_ERROR or len(lines) != 1 or "Traceback" in err:
            wrong[name] = (done.returncode, err[-600:])
    assert wrong == {}


def test_a_file_named_like_a_protocol_is_read_as_that_file(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """``concat:clip.mp4`` in the working directory is a file, not ffmpeg's concat protocol."""
    (tmp_path / "concat:clip.mp4").write_bytes(files["clip"].read_bytes())
    done = kinoit(tmp_path / "home", tmp_path, "probe", "concat:clip.mp4")
    assert done.returncode == 0, done.stderr
    assert b'"frames": 25' in done.stdout
