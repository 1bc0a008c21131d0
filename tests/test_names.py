"""The one validator for names that become paths: full match, nothing that can escape."""

from __future__ import annotations

from typing import Any

import pytest
from kinoit.errors import InvalidParameter
from kinoit.media.ladder import parse_ladder
from kinoit.names import check_name, is_name
from kinoit.stages import checksum

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HOSTILE: list[Any] = [
    "360p\n",  # a "$" pattern accepts this one
    "360p\r",
    "../../x",
    "..",
    ".",
    "/etc/cron.d/x",
    "a/b",
    "a\\b",
    "",
    "x" * 33,
    "-rf",
    "_x",
    "360P",
    "36 0p",
    "360p\x00",
    "\u0663\u0666\u0660p",  # Arabic-Indic digits: \d and str.isalnum() would say yes
    7,
    None,
    ["360p"],
]


@pytest.mark.parametrize("value", ["360p", "1080p60", "av1_low", "a", "x" * 32, "r-2"])
def test_plain_names_pass(value: str) -> None:
    assert is_name(value)
    assert check_name(value, "rung") == value


@pytest.mark.parametrize("value", HOSTILE)
def test_names_that_could_escape_or_surprise_are_refused(value: Any) -> None:
    assert not is_name(value)
    with pytest.raises(InvalidParameter) as info:
        check_name(value, "renditions")
    assert info.value.field == "renditions"


@pytest.mark.parametrize("value", [v for v in HOSTILE if isinstance(v, str)])
def test_checksum_request_refuses_every_hostile_rendition_key(value: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        checksum.parse_request({"segment": CID, "renditions": {value: CID}})
    assert info.value.field == "renditions"


def test_checksum_request_keeps_plain_rendition_keys() -> None:
    request = checksum.parse_request({"segment": CID, "renditions": {"720p": CID, "360p": CID}})
    assert list(request.renditions) == ["360p", "720p"]


@pytest.mark.parametrize("field", ["ladder", "rung"])
def test_ladder_and_rung_names_are_matched_in_full(field: str) -> None:
    rung = {"name": "360p", "height": 360}
    raw: dict[str, Any] = {"name": "mine", "rungs": [rung]}
    if field == "ladder":
        raw["name"] = "mine\n"
    else:
        rung["name"] = "360p\n"
    with pytest.raises(InvalidParameter) as info:
        parse_ladder(raw)
    assert info.value.field == ("ladder.name" if field == "ladder" else "rungs[0].name")
