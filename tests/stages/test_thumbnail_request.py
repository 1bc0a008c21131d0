"""The thumbnail stage's request: the split facts it may carry, checked field by field."""

from __future__ import annotations

from fractions import Fraction

import pytest
from kinoit.errors import InvalidParameter
from kinoit.stages import thumbnail

SEGMENT = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_frames_and_rate_are_read_when_given() -> None:
    request = thumbnail.parse_request({"segment": SEGMENT, "frames": 30, "fps": "30000/1001"})
    assert (request.frames, request.fps) == (30, Fraction(30000, 1001))
    bare = thumbnail.parse_request({"segment": SEGMENT})
    assert (bare.frames, bare.fps, bare.width) == (None, None, 320)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"fps": "fast"}, "fps"), ({"fps": "-25"}, "fps"), ({"frames": -1}, "frames"),
     ({"frames": "25"}, "frames")],
)  # fmt: skip
def test_a_bad_frame_count_or_rate_names_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        thumbnail.parse_request({"segment": SEGMENT, **body})
    assert info.value.field == field
