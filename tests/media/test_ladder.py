import json
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import InvalidParameter
from kinoit.media.ladder import encoder_args, fit_size, load_ladder, parse_bitrate, parse_ladder


def rung(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "r", "codec": "h264", "height": 360, "crf": 23}
    base.update(overrides)
    return base


def ladder(**overrides: Any) -> dict[str, Any]:
    return {"rungs": [rung(**overrides)]}


def test_default_ladder_has_four_h264_rungs() -> None:
    lad = load_ladder("default")
    assert [(r.name, r.codec, r.height) for r in lad.rungs] == [
        ("1080p", "h264", 1080), ("720p", "h264", 720),
        ("480p", "h264", 480), ("360p", "h264", 360),
    ]  # fmt: skip


def test_for_source_drops_rungs_larger_than_the_source() -> None:
    lad = load_ladder("default").for_source(1280, 720)
    assert [r.name for r in lad.rungs] == ["720p", "480p", "360p"]


def test_source_smaller_than_every_rung_keeps_smallest_at_source_size() -> None:
    lad = load_ladder("default").for_source(161, 91)
    assert [r.name for r in lad.rungs] == ["360p"]
    assert lad.rungs[0].output_size(161, 91) == (160, 90)


@pytest.mark.parametrize(
    ("src", "width", "height", "upscale", "expected"),
    [
        ((1920, 1080), None, 720, False, (1280, 720)),
        ((1920, 1080), None, 480, False, (852, 480)),
        ((1080, 1920), None, 360, False, (202, 360)),
        ((1920, 800), 1280, 720, False, (1280, 532)),
        ((640, 360), None, 720, False, (640, 360)),
        ((640, 360), None, 720, True, (1280, 720)),
        ((321, 181), None, 90, False, (158, 90)),
    ],
)
def test_sizes_keep_aspect_are_even_and_never_upscale_unless_asked(
    src: tuple[int, int], width: int | None, height: int | None, upscale: bool,
    expected: tuple[int, int],
) -> None:  # fmt: skip
    w, h = fit_size(*src, width, height, upscale)
    assert (w, h) == expected
    assert w % 2 == 0 and h % 2 == 0


def test_yaml_and_json_files_load(tmp_path: Path) -> None:
    y = tmp_path / "l.yaml"
    y.write_text("rungs:\n  - {name: a, codec: hevc, width: 640, bitrate: 1M, preset: fast}\n")
    j = tmp_path / "l.json"
    j.write_text(json.dumps({"name": "mine", "rungs": [rung(codec="vp9", preset=4, crf=31)]}))
    a = load_ladder(y).rungs[0]
    assert (a.codec, a.width, a.bitrate, a.crf) == ("hevc", 640, 1_000_000, None)
    b = load_ladder(j)
    assert b.name == "mine" and b.rungs[0].preset == 4


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (ladder(crf="18 -vf drawtext"), "rungs[r].crf"),
        (ladder(codec="libx264;rm -rf /"), "rungs[r].codec"),
        (ladder(codec="mpeg2"), "rungs[r].codec"),
        (ladder(preset="veryfast -map 0"), "rungs[r].preset"),
        (ladder(pix_fmt="yuv420p,scale=1:1"), "rungs[r].pix_fmt"),
        (ladder(height="720:flags=x"), "rungs[r].height"),
        (ladder(maxrate="3M -f null"), "rungs[r].maxrate"),
        (ladder(crf=99), "rungs[r].crf"),
        (ladder(height=100000), "rungs[r].height"),
        (ladder(height=8), "rungs[r].height"),
        (ladder(crf=True), "rungs[r].crf"),
        (ladder(crf=None), "rungs[r].crf"),
        (ladder(bitrate="2M"), "rungs[r].crf"),
        (ladder(filter="hflip"), "rungs[0].filter"),
        (ladder(name="../etc"), "rungs[0].name"),
        (ladder(codec="vp9", preset="veryfast"), "rungs[r].preset"),
        (ladder(codec="av1", crf=30.5), "rungs[r].crf"),
        (ladder(bufsize="1M"), "rungs[r].bufsize"),
        ({"rungs": [], "name": "x"}, "ladder.rungs"),
        ({"rungs": [rung()], "extra": 1}, "ladder.extra"),
        ({"rungs": [rung(), rung()]}, "ladder.rungs"),
        ([rung()], "ladder"),
    ],
)
def test_bad_ladders_are_rejected_naming_the_field(doc: Any, field: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_ladder(doc)
    assert info.value.field == field


def test_unknown_ladder_name_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="neither a built-in"):
        load_ladder("nonexistent")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rungs: [\n")
    with pytest.raises(InvalidParameter, match="not valid YAML"):
        load_ladder(bad)


def test_bitrates_parse() -> None:
    assert parse_bitrate("f", "3000k") == 3_000_000
    assert parse_bitrate("f", "2.5M") == 2_500_000
    assert parse_bitrate("f", 800_000) == 800_000
    with pytest.raises(InvalidParameter):
        parse_bitrate("f", "3000kb")


def test_h264_encoder_args_are_exact() -> None:
    r = load_ladder(ladder(crf=21, maxrate="2M", preset="fast")).rungs[0]
    assert encoder_args(r, 25) == [
        "-c:v", "libx264", "-preset", "fast", "-crf", "21",
        "-maxrate", "2000000", "-bufsize", "4000000",
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-flags", "+cgop",
        "-pix_fmt", "yuv420p",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("codec", "must_have"),
    [
        ("hevc", ["-c:v", "libx265", "-x265-params", "scenecut=0:open-gop=0:log-level=error"]),
        ("vp9", ["-c:v", "libvpx-vp9", "-b:v", "0", "-cpu-used", "5", "-keyint_min", "30"]),
        ("av1", ["-c:v", "libsvtav1", "-preset", "8", "-g", "30"]),
    ],
)
def test_other_codecs_get_fixed_gop_arguments(codec: str, must_have: list[str]) -> None:
    args = encoder_args(load_ladder(ladder(codec=codec, crf=30)).rungs[0], 30)
    joined = " ".join(args)
    assert " ".join(must_have[:2]) in joined
    for token in must_have[2:]:
        assert token in args
