"""Files the media functions write: placing one that exists under a second name
(split's copies of a segment, merge's HLS segments), and the JSON form of a record
of one written file."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` as ``dst`` when possible (same bytes, no copy), else copy it;
    an existing ``dst`` is replaced."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def file_record_json(record: Any) -> dict[str, Any]:
    """A dataclass record of one written file as JSON: its fields, ``path`` as text."""
    body = asdict(record)
    body["path"] = str(record.path)
    return body
