"""`kinoit run` as a user runs it: a file in, outputs on disk, job id and manifest out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import TINY_LADDER

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINOIT_")}
    env.update(KINOIT_HOME=str(tmp_path / "home"), KINOIT_SECRETS_DIR=str(tmp_path / "none"))
    return subprocess.run(
        [sys.executable, "-m", "kinoit.cli", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_run_writes_playable_outputs(tmp_path: Path, clips: dict[str, Path]) -> None:
    ladder = tmp_path / "tiny.json"
    ladder.write_text(json.dumps(TINY_LADDER))
    out = tmp_path / "out"
    result = run_cli(
        tmp_path, "run", str(clips["main"]), "--ladder", str(ladder), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["manifest"].startswith("bafy") and len(lines["job"]) == 26
    assert (
        "split 2/2" in result.stderr and "transcode 2/2" in result.stderr
    )  # plain progress lines when stderr is not a TTY (a direct transcode: plan + audio)
    assert sorted(p.name for p in out.glob("*.mp4")) == ["48p.mp4", "90p.mp4"]
    assert (out / "hls" / "master.m3u8").is_file()
    assert (out / "hls" / "90p" / "index.m3u8").is_file()
    assert list((out / "thumbs").glob("*.jpg")) and (out / "storyboard.jpg").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["segments"][0]) and manifest["outputs"]["mp4"]["90p"]["/"]
    # the generated secrets are where `kinoit dev` would put them
    assert (tmp_path / "home" / "secrets" / "kinoit-api-token").is_file()
    # the job stays inspectable after `kinoit run` stopped its private redis
    job_id = lines["job"]
    status = run_cli(tmp_path, "status", job_id)
    assert status.returncode == 0 and json.loads(status.stdout)["manifest"] == lines["manifest"]
    watch = run_cli(tmp_path, "watch", job_id, "--timeout", "30")
    assert watch.returncode == 0 and "job.completed" in watch.stdout
    listing = run_cli(tmp_path, "jobs")
    assert job_id in listing.stdout and "completed" in listing.stdout


def test_run_segment_seconds_sets_the_segment_length(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    ladder = tmp_path / "tiny.json"
    ladder.write_text(json.dumps(TINY_LADDER))
    out = tmp_path / "out"
    result = run_cli(
        tmp_path, "run", str(clips["main"]), "--ladder", str(ladder), "--out", str(out),
        "--segment-seconds", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "transcode 1/1" in result.stderr  # the 2-second clip is one segment, not two
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["segments"]) == 1
    assert len(list((out / "thumbs").glob("*.jpg"))) == 1


def test_run_failure_gives_the_reason_and_a_nonzero_exit(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n" * 50)
    result = run_cli(tmp_path, "run", str(text), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "failed" in result.stderr and "NotAVideo" in result.stderr
    assert not (tmp_path / "out").exists()


def test_run_with_an_unknown_cid_is_refused_before_starting(tmp_path: Path) -> None:
    cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    result = run_cli(tmp_path, "run", cid)
    assert result.returncode == 2 and "does not hold" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_cuts_a_source_with_keyframes_on_the_boundaries_by_stream_copy(
    tmp_path: Path,
) -> None:
    # a phone-like file: a keyframe every second, on every segment boundary
    from kinoit.config import load_settings
    from kinoit.media.synth import make_clip
    from kinoit.store import open_store

    src = make_clip(tmp_path / "phone.mp4", seconds=2.2, width=160, height=90, gop=25)
    ladder = tmp_path / "tiny.json"
    ladder.write_text(json.dumps(TINY_LADDER))
    out = tmp_path / "out"
    result = run_cli(tmp_path, "run", str(src), "--ladder", str(ladder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    segments = manifest["segments"]
    assert [(s["start_frame"], s["end_frame"]) for s in segments] == [(0, 25), (25, 50), (50, 55)]
    for entry in segments:  # every rendition checked against split's signature
        assert {r["verdict"] for r in entry["checksum"]["rungs"].values()} == {"match"}
        assert {r["frames"] for r in entry["checksum"]["rungs"].values()} == {
            entry["end_frame"] - entry["start_frame"]
        }
    store = open_store(load_settings({"KINOIT_HOME": str(tmp_path / "home")}))
    segment = tmp_path / "segment.mkv"
    store.get_file(segments[1]["cid"]["/"], segment)
    codec = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name", "-of", "csv=p=0", str(segment)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert codec == "h264"  # the source's own packets, not a lossless re-encode
