"""`kinoit run --out DIR` into the folder of an earlier run: only the new run's MP4s stay
at the top; MP4s kinoit did not write make it refuse DIR, untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import TINY_LADDER
from tests.e2e.test_run import run_cli

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]

ONE_RUNG = {"name": "one", "rungs": [{**TINY_LADDER["rungs"][1], "name": "36p", "height": 36}]}


def test_a_second_run_into_the_same_folder_leaves_only_its_own_mp4s(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    for name, ladder in (("tiny", TINY_LADDER), ("one", ONE_RUNG)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(ladder))
        result = run_cli(
            tmp_path, "run", str(clips["short0"]), "--ladder", str(path), "--out", str(out)
        )
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.mp4")) == ["36p.mp4"]
    assert list(json.loads((out / "manifest.json").read_text())["outputs"]["mp4"]) == ["36p"]
    assert not list(out.glob(".kinoit-export-*"))

    (out / "holiday.mp4").write_bytes(b"the user's own")
    result = run_cli(tmp_path, "run", str(clips["short0"]), "--out", str(out))
    assert result.returncode == 2 and "holiday.mp4" in result.stderr
    assert "Traceback" not in result.stderr
    assert (out / "holiday.mp4").read_bytes() == b"the user's own"
    assert sorted(p.name for p in out.glob("*.mp4")) == ["36p.mp4", "holiday.mp4"]
