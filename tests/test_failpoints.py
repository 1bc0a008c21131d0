"""Named failpoints: parsed from KINOIT_FAILPOINTS, a no-op unless armed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kinoit import failpoints
from kinoit.config import load_settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.failpoints import Action, hit, parse_failpoints
from kinoit.stages import thumbnail


def test_an_unarmed_point_does_nothing() -> None:
    hit({}, "stage.split")
    hit({"stage.merge": Action("error")}, "stage.split")


def test_error_raises_a_media_error_naming_the_point() -> None:
    points = parse_failpoints("stage.thumbnail=error(disk on fire)")
    with pytest.raises(MediaError) as info:
        hit(points, "stage.thumbnail")
    assert "injected failure" in info.value.message
    assert "stage.thumbnail" in info.value.message and "disk on fire" in info.value.message


def test_sleep_pauses_for_the_given_seconds() -> None:
    points = parse_failpoints(" stage.a=sleep(0.2) ; stage.b=error ")
    assert points == {"stage.a": Action("sleep", seconds=0.2), "stage.b": Action("error")}
    started = time.monotonic()
    hit(points, "stage.a")
    assert time.monotonic() - started >= 0.2


def test_off_disarms_an_earlier_entry() -> None:
    assert parse_failpoints("stage.a=error;stage.a=off") == {}


@pytest.mark.parametrize(
    "spec", ["stage.a", "stage.a=explode", "stage.a=sleep", "stage.a=sleep(-1)", "=error"]
)
def test_a_bad_spec_names_the_variable(spec: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_failpoints(spec)
    assert info.value.field == failpoints.VARIABLE == "KINOIT_FAILPOINTS"


def test_an_armed_stage_point_fails_the_stage_before_any_work(tmp_path: Path) -> None:
    # no store, no ffmpeg: the point fires before the stage opens either
    settings = load_settings(
        {"KINOIT_HOME": str(tmp_path), "KINOIT_FAILPOINTS": "stage.thumbnail=error"}
    )
    request = thumbnail.parse_request(
        {"segment": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}
    )
    with pytest.raises(MediaError, match=r"stage\.thumbnail: injected failure"):
        thumbnail.run(request, settings)
    assert not (tmp_path / "store").exists()
