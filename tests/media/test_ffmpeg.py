import sys

import pytest
from kinoit.errors import MediaError
from kinoit.media import ffmpeg


def test_success_returns_stdout_and_stderr() -> None:
    done = ffmpeg.run(
        [sys.executable, "-c", "import sys; print('hi'); print('warn', file=sys.stderr)"], 30
    )
    assert done.stdout == b"hi\n" and done.stderr.strip() == "warn"


def test_failure_carries_command_and_stderr_tail() -> None:
    argv = [
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('x' * 5000 + 'THE END'); sys.exit(3)",
    ]
    with pytest.raises(MediaError, match="status 3") as info:
        ffmpeg.run(argv, 30, what="demo")
    assert info.value.command == argv
    assert info.value.stderr_tail.endswith("THE END")
    assert len(info.value.stderr_tail) == ffmpeg.STDERR_TAIL_CHARS


def test_timeout_kills_and_raises() -> None:
    with pytest.raises(MediaError, match=r"timed out after 0\.2s"):
        ffmpeg.run([sys.executable, "-c", "import time; time.sleep(30)"], 0.2)


def test_missing_binary() -> None:
    with pytest.raises(MediaError, match="not installed"):
        ffmpeg.run(["kinoit-no-such-binary-xyz"], 5)


def test_arguments_are_never_interpreted_by_a_shell(tmp_path) -> None:
    marker = tmp_path / "pwned"
    done = ffmpeg.run(
        [sys.executable, "-c", "import sys; print(sys.argv[1])", f"; touch {marker}"], 30
    )
    assert done.stdout.decode().strip() == f"; touch {marker}"
    assert not marker.exists()
