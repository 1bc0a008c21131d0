"""The one module of kinoit.media that starts processes.

Everything else builds argument lists as pure functions; this module runs them:
always an argument list (never a shell), always a timeout, and every failure
translated into :class:`~kinoit.errors.MediaError` carrying the command and the
tail of ffmpeg's stderr.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from kinoit.errors import MediaError

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
# Enough of stderr to show ffmpeg's actual complaint without flooding a log line.
STDERR_TAIL_CHARS = 2000
# Common leading options: no banner, no stdin interaction, errors only.
QUIET = ("-hide_banner", "-nostdin", "-loglevel", "error")


@dataclass(frozen=True)
class Completed:
    """What a finished process left behind."""

    stdout: bytes
    stderr: str


def stderr_tail(stderr: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last ``limit`` characters of stderr, stripped."""
    text = stderr.strip()
    return text[-limit:]


def run(argv: Sequence[str], timeout: float, *, what: str = "") -> Completed:
    """Run ``argv`` (no shell) with a timeout; raise MediaError on any failure."""
    argv = [str(a) for a in argv]
    label = what or argv[0]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise MediaError(f"{label}: {argv[0]} is not installed (not on PATH)", argv) from None
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode("utf-8", "replace") if exc.stderr else ""
        raise MediaError(f"{label}: timed out after {timeout:g}s", argv, stderr_tail(err)) from None
    except OSError as exc:
        raise MediaError(f"{label}: could not start {argv[0]}: {exc}", argv) from None
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise MediaError(
            f"{label}: {argv[0]} exited with status {proc.returncode}", argv, stderr_tail(err)
        )
    return Completed(stdout=proc.stdout, stderr=err)
