"""The one check for every name that becomes part of a file path.

Rung names, ladder names and the keys of any mapping that a stage or the CLI
turns into a file or directory name (``renditions``, a manifest's ``mp4``) pass
through :func:`check_name`. The pattern is matched in full (``fullmatch``): a
pattern ending in ``$`` also accepts a trailing newline, so ``"360p\\n"`` would
pass and create ``out/360p\\n/``.
"""

from __future__ import annotations

import re

from kinoit.errors import InvalidParameter

# Lower-case letters, digits, "_" and "-", starting with a letter or digit: never
# ".", "..", a separator, a control character or an absolute path.
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,31}"
NAME = re.compile(NAME_PATTERN)


def is_name(value: object) -> bool:
    """True when ``value`` is a string that may become a file name."""
    return isinstance(value, str) and NAME.fullmatch(value) is not None


def check_name(value: object, field: str) -> str:
    """``value`` when it is a safe name, else InvalidParameter naming ``field``."""
    if not is_name(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise InvalidParameter(field, f"expected a name matching {NAME_PATTERN}, got {shown}")
    assert isinstance(value, str)
    return value
