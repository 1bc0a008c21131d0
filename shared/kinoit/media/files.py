"""Placing a file that already exists under a second name (split's copies of a
segment, merge's HLS segments)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` as ``dst`` when possible (same bytes, no copy), else copy it;
    an existing ``dst`` is replaced."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
