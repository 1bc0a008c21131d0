"""transcode-segment for the verification tests: the real stage, then every
rendition of the segment that starts at source frame ``$CORRUPT_START_FRAME`` is
replaced by a really wrong one for the checksum gate to catch: its negative
picture, or with ``$CORRUPT_KIND`` one of kinoit.media.corrupt's kinds made from
the rendition's own frames (``frozen``, ``heavy noise``...); in a direct transcode's
range, that segment's renditions. With ``$CORRUPT_ONCE`` (a file path), only while
that file does not exist. Other segments, and every segment when the variable is
unset, pass through unchanged.

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
CORRUPT_KIND = "CORRUPT_KIND"
# a file: corrupt only while it does not exist (then it is created), so the re-run is good
CORRUPT_ONCE = "CORRUPT_ONCE"


def corrupt(kind: str, source: Path, dest: Path, frames: int, settings: Settings) -> None:
    """``dest``: corruption ``kind`` of the rendition ``source`` (all its frames)."""
    from kinoit.media.corrupt import write_corrupt
    from kinoit.media.probe import probe

    info = probe(source, settings=settings, detect_vfr=False)
    size = (info.display_width, info.display_height)
    write_corrupt(kind, source, source, 0, frames, size, dest, settings.ffmpeg_timeout_seconds)


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
    def run(
        request: transcode.TranscodeRequest | transcode.RangeRequest, settings: Settings
    ) -> dict[str, Any]:
        result = transcode.run(request, settings)
        target = os.environ.get(CORRUPT_START_FRAME, "")
        # a direct transcode's range: the segment of the range that starts there
        parts = result.get("segments", [result])
        hit = [part for part in parts if target and int(target) == part["start_frame"]]
        once = os.environ.get(CORRUPT_ONCE, "")
        if not hit or (once and Path(once).exists()):
            return result
        if once:
            Path(once).touch()
        extensions = {r.name: r.container for r in parse_ladder(request.ladder).rungs}
        store = open_store(settings)
        with tempfile.TemporaryDirectory(prefix="corrupt-") as tmp:
            work = Path(tmp)
            for rung, cid in hit[0]["renditions"].items():
                original = store.get_file(cid, work / f"{rung}.{extensions[rung]}")
                wrong = work / f"wrong-{rung}.{extensions[rung]}"
                kind = os.environ.get(CORRUPT_KIND, "")
                if kind:
                    corrupt(kind, original, wrong, int(hit[0]["frames"][rung]), settings)
                else:
                    negate(original, wrong, settings)
                hit[0]["renditions"][rung] = store.add(wrong, pin=False)
        return result


def handle(event: Any, context: Any) -> Reply:
    return serve_stage(event, CorruptingTranscode)
