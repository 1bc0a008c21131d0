"""A finished job's outputs are one UnixFS directory: the CID `ipfs add -r --cid-version=1`
gives for what `kinoit run --out` writes (manifest.json aside), named in the status,
the webhook and the manifest, linking the rendition segments themselves."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from kinoit.store.base import iter_chunks
from kinoit.store.unixfs import CHUNK_SIZE, import_chunks

from tests.e2e.conftest import ReferenceRun

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]


def file_cid(path: Path) -> str:
    with path.open("rb") as stream:
        blocks = list(import_chunks(iter_chunks(stream, CHUNK_SIZE)))
    return str(blocks[-1][0])


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_status_webhook_and_manifest_name_one_directory(reference_run: ReferenceRun) -> None:
    job = reference_run.job
    assert job["state"] == "completed", job
    directory = job["outputs"]["directory"]
    assert directory.startswith("bafy")
    completed = [h for h in reference_run.hooks if h.payload["type"] == "job.completed"]
    assert completed[0].payload["data"]["outputs"]["directory"] == directory
    manifest = json.loads((reference_run.out / "manifest.json").read_text())
    assert manifest["outputs"]["directory"] == {"/": directory}
    # the per-file CIDs stay
    assert set(manifest["outputs"]["mp4"]) == {"90p", "48p"}
    assert manifest["outputs"]["hls"]["/"] and manifest["outputs"]["storyboard"]["/"]


@pytest.mark.kubo
def test_exported_folder_adds_to_the_directory_cid(
    reference_run: ReferenceRun, kubo: Any, tmp_path: Path
) -> None:
    out = reference_run.out
    folder = tmp_path / "outputs"
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("manifest.json"))
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert {"90p.mp4", "48p.mp4", "hls/master.m3u8", "hls/90p/index.m3u8", "hls/90p/00000.ts",
            "thumbs/00000.jpg", "storyboard.jpg", "storyboard.vtt"} <= set(names)  # fmt: skip
    added = kubo.cli("add", "-r", "-Q", "--only-hash", "--cid-version=1", str(folder))
    assert added.decode().strip() == reference_run.job["outputs"]["directory"]


def test_playlist_segments_are_the_rendition_segments(reference_run: ReferenceRun) -> None:
    out = reference_run.out
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["segments"]:
        for rung, link in entry["renditions"].items():
            segment = out / "hls" / rung / f"{entry['index']:05d}.ts"
            assert file_cid(segment) == link["/"]


def test_exported_files_are_readable_by_others(reference_run: ReferenceRun) -> None:
    expected = 0o666 & ~current_umask()
    files = [p for p in reference_run.out.rglob("*") if p.is_file()]
    assert len(files) > 8
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
