"""What every stage shares: request field checks, a scratch directory that is
always removed (:mod:`kinoit.stages.scratch`), and the test-only fault injection
read from the settings."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kinoit.config import Settings
from kinoit.errors import InvalidParameter, MediaError

# Test-only knobs (read through the settings, never set in production):
# KINOIT_TEST_FAIL_STAGE=<stage>          that stage always fails with a MediaError;
# KINOIT_TEST_STAGE_DELAY=<stage>:<sec>   that stage sleeps first (to kill a worker mid-task);
# KINOIT_TEST_CORRUPT_START_FRAME=<frame> transcode negates the picture of the segment
#                                         starting at that source frame (a wrong rendition
#                                         for the verification gate to catch).
FAIL_STAGE_VAR = "KINOIT_TEST_FAIL_STAGE"
DELAY_STAGE_VAR = "KINOIT_TEST_STAGE_DELAY"
CORRUPT_START_FRAME_VAR = "KINOIT_TEST_CORRUPT_START_FRAME"


def require_cid(body: Mapping[str, Any], field: str) -> str:
    """A CID field, canonicalised to CIDv1 (InvalidParameter naming the field)."""
    from kinoit.store.cid import CID

    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidParameter(field, "expected a CID string")
    try:
        return str(CID.parse(value).to_v1())
    except Exception as exc:
        raise InvalidParameter(field, f"not a valid CID: {exc}") from None


def require_mapping(body: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A JSON object field."""
    value = body.get(field)
    if not isinstance(value, dict):
        raise InvalidParameter(field, "expected a JSON object")
    return value


def optional_int(body: Mapping[str, Any], field: str, default: int, minimum: int = 0) -> int:
    """An integer field with a default."""
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameter(field, f"expected an integer >= {minimum}")
    return value


def fetch(store: Any, cid: str, dest: Path) -> Path:
    """Write the file ``cid`` to ``dest`` (creating its folder) and return ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(store.get_file(cid, dest))


def inject_test_faults(settings: Settings, stage: str) -> None:
    """Apply the test-only fault knobs for ``stage`` (no-op unless they are set)."""
    delay = settings.extra.get(DELAY_STAGE_VAR, "")
    if delay:
        name, _, seconds = delay.partition(":")
        if name == stage:
            time.sleep(float(seconds or "1"))
    if settings.extra.get(FAIL_STAGE_VAR) == stage:
        raise MediaError(f"{stage}: injected failure ({FAIL_STAGE_VAR})")


def corrupt_test_renditions(settings: Settings, start_frame: int, paths: Iterable[Path]) -> None:
    """Replace each rendition by its negative when the corruption knob names this
    segment's first frame (no-op unless it is set)."""
    target = settings.extra.get(CORRUPT_START_FRAME_VAR, "")
    if not target or int(target) != start_frame:
        return
    from kinoit.media import ffmpeg

    for path in paths:
        negative = path.with_name("negative-" + path.name)
        argv = [
            ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-i", str(path),
            "-map", "0:v", "-vf", "negate", "-c:v", "libx264", "-preset", "ultrafast",
            str(negative),
        ]  # fmt: skip
        ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="test corruption")
        negative.replace(path)
