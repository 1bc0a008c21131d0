"""transcode-segment for the verification tests: the real stage, then every
rendition of the segment that starts at source frame ``$CORRUPT_START_FRAME`` is
replaced by its negative picture (a really wrong rendition for the checksum gate
to catch). Other segments, and every segment when the variable is unset, pass
through unchanged.

Served by the e2e tests' ``kinoit dev`` through KINOIT_FUNCTIONS_DIR
(tests/e2e/conftest.py ``functions_with``); never part of an image.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from kinoit.config import Settings
from kinoit.media import ffmpeg
from kinoit.media.ladder import parse_ladder
from kinoit.stages import transcode
from kinoit.stages.http import Reply, serve_stage
from kinoit.store import open_store

CORRUPT_START_FRAME = "CORRUPT_START_FRAME"


def negate(source: Path, dest: Path, settings: Settings) -> None:
    argv = [
        ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-i", str(source),
        "-map", "0:v", "-vf", "negate", "-c:v", "libx264", "-preset", "ultrafast",
        str(dest),
    ]  # fmt: skip
    ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="test corruption")


class CorruptingTranscode:
    """The transcode stage, with the renditions of one segment negated."""

    parse_request = staticmethod(transcode.parse_request)

    @staticmethod
    def run(request: transcode.TranscodeRequest, settings: Settings) -> dict[str, Any]:
        result = transcode.run(request, settings)
        target = os.environ.get(CORRUPT_START_FRAME, "")
        if not target or int(target) != request.start_frame:
            return result
        extensions = {r.name: r.container for r in parse_ladder(request.ladder).rungs}
        store = open_store(settings)
        with tempfile.TemporaryDirectory(prefix="corrupt-") as tmp:
            work = Path(tmp)
            for rung, cid in result["renditions"].items():
                original = store.get_file(cid, work / f"{rung}.{extensions[rung]}")
                negative = work / f"negative-{rung}.{extensions[rung]}"
                negate(original, negative, settings)
                result["renditions"][rung] = store.add(negative, pin=False)
        return result


def handle(event: Any, context: Any) -> Reply:
    return serve_stage(event, CorruptingTranscode)
