"""Submission parsing (pure)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from kinoit.errors import InvalidParameter
from kinoit.service.spec import format_seconds, parse_job_spec, parse_segment_seconds


def parse(body: dict[str, Any]) -> Any:
    return parse_job_spec(
        body,
        check_cid=lambda c: c.upper(),
        resolve_ladder=lambda profile, ladder: {"profile": profile, "ladder": ladder},
        check_callback_url=lambda u: u,
    )


def test_defaults_to_the_default_profile_and_one_second() -> None:
    spec = parse({"source": "abc"})
    assert spec.source == "ABC" and spec.profile == "default"
    assert spec.segment_seconds == "1" and spec.callback_url is None
    assert spec.ladder == {"profile": "default", "ladder": None}


def test_inline_ladder_clears_the_profile() -> None:
    spec = parse({"source": "abc", "ladder": {"rungs": [1]}})
    assert spec.profile is None and spec.ladder["ladder"] == {"rungs": [1]}


def test_reuse_key_ignores_metadata_and_callback() -> None:
    a = parse({"source": "abc", "metadata": {"a": 1}, "callback_url": "http://x"})
    b = parse({"source": "abc"})
    assert a.reuse_key() == b.reuse_key()
    assert parse({"source": "abc", "segment_seconds": 2}).reuse_key() != b.reuse_key()


def test_spec_round_trips_through_its_dict() -> None:
    from kinoit.service.spec import JobSpec

    spec = parse({"source": "abc", "metadata": {"k": "v"}, "keep_intermediates": True})
    assert JobSpec.from_dict(spec.to_dict(), spec.metadata) == spec


@pytest.mark.parametrize("value", [0, 0.4, 11, "abc", True, None, [1]])
def test_segment_seconds_out_of_range_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_segment_seconds(value)
    assert info.value.field == "segment_seconds"


def test_segment_seconds_canonical_text() -> None:
    assert format_seconds(parse_segment_seconds("2")) == "2"
    assert format_seconds(parse_segment_seconds(0.5)) == "0.5"
    assert format_seconds(Fraction(2, 3)) == "2/3"


def test_keep_intermediates_must_be_boolean() -> None:
    with pytest.raises(InvalidParameter) as info:
        parse({"source": "abc", "keep_intermediates": "yes"})
    assert info.value.field == "keep_intermediates"


@pytest.mark.parametrize("value", [0, -5, 1.5, "3600", True, 10**12])
def test_outputs_expiry_must_be_whole_positive_seconds(value: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse({"source": "abc", "outputs_expire_in": value})
    assert info.value.field == "outputs_expire_in"


def test_outputs_expiry_round_trips_and_does_not_change_the_result() -> None:
    from kinoit.service.spec import JobSpec

    spec = parse({"source": "abc", "outputs_expire_in": 3600})
    assert JobSpec.from_dict(spec.to_dict(), {}).outputs_expire_in == 3600
    assert spec.reuse_key() == parse({"source": "abc"}).reuse_key()
