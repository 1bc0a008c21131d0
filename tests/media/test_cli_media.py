import json
import subprocess
from pathlib import Path

import pytest
from kinoit.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


@pytest.fixture
def ladder_file(tmp_path: Path) -> Path:
    path = tmp_path / "ladder.yaml"
    path.write_text(
        "rungs:\n  - {name: small, codec: h264, height: 48, crf: 30, preset: ultrafast}\n"
    )
    return path


def test_probe_prints_json(capsys, clip, kinoit_home) -> None:
    code, doc = run(capsys, "probe", str(clip()))
    assert code == 0 and isinstance(doc, dict)
    assert doc["fps"] == "25/1" and doc["frames"] == 55 and doc["audio"][0]["codec"] == "aac"


def test_whole_pipeline_from_the_command_line(
    capsys, clip, tmp_path: Path, ladder_file, kinoit_home
) -> None:
    src = tmp_path / "src.mp4"
    assert (
        run(capsys, "synth", str(src), "--seconds", "1.5", "--fps", "30", "--size", "96x54")[0] == 0
    )
    code, split = run(capsys, "split", str(src), str(tmp_path / "split"), "--mode", "copy")
    assert code == 0 and isinstance(split, dict)
    assert [s["frames"] for s in split["segments"]] == [30, 15]
    for seg in split["segments"]:
        path = tmp_path / "split" / seg["path"]
        code, out = run(
            capsys, "transcode", str(path), str(tmp_path / "rend"), "--ladder", str(ladder_file)
        )
        assert code == 0 and isinstance(out, dict)
        assert out["small"]["start_frame"] == seg["start_frame"]  # read from segments.json
        thumb = tmp_path / "thumbs" / f"{path.stem}.jpg"
        assert run(capsys, "thumbnail", str(path), str(thumb), "--width", "64")[0] == 0
    code, merged = run(capsys, "merge", str(tmp_path / "split"), str(tmp_path / "rend"),
                       str(tmp_path / "out"), "--thumbnails", str(tmp_path / "thumbs"))  # fmt: skip
    assert code == 0 and isinstance(merged, dict)
    assert merged["rungs"][0]["frames"] == 45
    assert Path(merged["hls"]).is_file() and Path(merged["storyboard"][1]).is_file()
    code, same = run(capsys, "compare", str(src), str(tmp_path / "out" / "small.mp4"))
    assert code == 0 and isinstance(same, dict) and same["verdict"] == "match"


def test_checksum_files_compare_and_mismatch_exits_1(
    capsys, clip, tmp_path: Path, kinoit_home
) -> None:
    src = clip()
    code, doc = run(capsys, "checksum", str(src))
    assert code == 0 and isinstance(doc, dict) and doc["algorithm"] == "dct32-block32"
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(doc))
    flipped = tmp_path / "flipped.mkv"
    argv = ["ffmpeg", "-v", "error", "-i", str(src), "-vf", "hflip", "-c:v", "ffv1", str(flipped)]
    subprocess.run(argv, check=True, timeout=60)
    assert run(capsys, "compare", str(ref), str(src))[0] == 0
    code, result = run(capsys, "compare", str(ref), str(flipped))
    assert code == 1 and isinstance(result, dict) and result["verdict"] == "mismatch"


def test_errors_exit_2_with_one_line(capsys, tmp_path: Path, kinoit_home) -> None:
    bogus = tmp_path / "x.mp4"
    bogus.write_bytes(b"garbage" * 100)
    assert main(["compare", str(bogus), str(bogus)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinoit: ") and "not a readable video" in err and "Traceback" not in err
    assert main(["split", str(bogus), str(tmp_path / "o")]) == 2
    assert main(["transcode", str(bogus), str(tmp_path / "o"), "--ladder", "nope"]) == 2
    assert "neither a built-in ladder" in capsys.readouterr().err
