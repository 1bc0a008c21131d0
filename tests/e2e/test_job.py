"""A client's view: submit to `kinoit dev`, get verified webhooks, check the outputs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import requests
from kinoit.local.testing import signed_headers
from standardwebhooks import Webhook as StandardWebhook

from tests.e2e.conftest import STAGE_SECRET, WEBHOOK_SECRET, Dev, ReferenceRun

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def count_frames(path: Path) -> int:
    info = ffprobe(path, "-select_streams", "v:0", "-count_frames", "-show_entries",
                   "stream=nb_read_frames")  # fmt: skip
    return int(info["streams"][0]["nb_read_frames"])


def stream_durations(path: Path) -> dict[str, float]:
    info = ffprobe(path, "-show_entries", "stream=codec_type,duration")
    return {s["codec_type"]: float(s["duration"]) for s in info["streams"]}


def test_job_end_to_end_with_verified_webhooks(
    reference_run: ReferenceRun, clips: dict[str, Path]
) -> None:
    job, hooks, out, source = (
        reference_run.job,
        reference_run.hooks,
        reference_run.out,
        reference_run.source,
    )
    job_id = job["job_id"]
    assert job["state"] == "completed", job
    verifier = StandardWebhook(WEBHOOK_SECRET)
    for hook in hooks:
        verified = verifier.verify(hook.body, hook.headers)  # raises on a bad signature
        assert verified["data"]["job_id"] == job_id
        assert hook.payload["data"]["metadata"] == {"title": "e2e"}
    types = [h.payload["type"] for h in hooks]
    assert types[0] == "job.accepted" and "job.started" in types
    assert types.count("job.completed") == 1
    done = next(h for h in hooks if h.payload["type"] == "job.completed")
    assert done.payload["data"]["manifest"] == job["manifest"]
    assert set(done.payload["data"]["outputs"]["mp4"]) == {"90p", "48p"}
    assert job["tasks"]["leased"] == 0 and job["tasks"]["failed"] == 0

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["cid"] == {"/": source}
    assert manifest["source"]["frames"] == 50
    assert manifest["source"]["bytes"] == clips["main"].stat().st_size
    assert manifest["source"]["fps"] == "25/1"
    assert [s["index"] for s in manifest["segments"]] == [0, 1]
    assert [(s["start_frame"], s["end_frame"]) for s in manifest["segments"]] == [(0, 25), (25, 50)]
    for rung in ("90p", "48p"):
        mp4 = out / f"{rung}.mp4"
        assert count_frames(mp4) == 50
        durations = stream_durations(mp4)
        assert abs(durations["audio"] - durations["video"]) <= 1 / 25 + 1e-3  # A/V in sync
    assert sorted(p.name for p in out.glob("*.mp4")) == ["48p.mp4", "90p.mp4"]

    master = (out / "hls" / "master.m3u8").read_text()
    for rung in ("90p", "48p"):
        assert f"{rung}/index.m3u8" in master
        playlist = (out / "hls" / rung / "index.m3u8").read_text()
        total = sum(
            Fraction(line.split(":", 1)[1].rstrip(",")).limit_denominator(1000)
            for line in playlist.splitlines()
            if line.startswith("#EXTINF:")
        )
        assert abs(float(total) - 2.0) < 0.05
        for line in playlist.splitlines():
            if line and not line.startswith("#"):
                assert (out / "hls" / rung / line).is_file()
    assert count_frames(out / "hls" / "master.m3u8") == 50
    assert len(list((out / "thumbs").glob("*.jpg"))) == 2
    assert (out / "storyboard.jpg").is_file()


def test_resubmitting_reuses_the_manifest(
    dev_factory: Callable[..., Dev], clips: dict[str, Path]
) -> None:
    dev = dev_factory()
    source = dev.add(clips["short1"])
    first = dev.wait_state(dev.submit(source), {"completed", "failed"})
    assert first["state"] == "completed"
    started = time.monotonic()
    again = dev.submit(source)
    job = dev.wait_state(again, {"completed", "failed"}, timeout=60)
    assert job["manifest"] == first["manifest"]
    assert time.monotonic() - started < 10


def test_missing_or_wrong_token_is_401(dev_factory: Callable[..., Dev]) -> None:
    dev = dev_factory(workers=1)
    assert dev.call("GET", "/jobs", token=None).status_code == 401
    assert dev.call("POST", json={"source": "x"}, token="wrong").status_code == 401
    assert dev.call("GET", "/jobs").status_code == 200


def test_ssrf_callback_is_refused(dev_factory: Callable[..., Dev], clips: dict[str, Path]) -> None:
    dev = dev_factory(workers=1, KINOIT_ALLOW_PRIVATE_CALLBACKS="false")
    source = dev.add(clips["main"])
    for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data", "file:///etc"):
        response = dev.call("POST", json={"source": source, "callback_url": url})
        assert response.status_code in (400, 403), (url, response.text)
        assert response.status_code == 403 or response.json()["field"] == "callback_url"
    assert dev.call("GET", "/jobs").json()["jobs"] == []


def test_forged_and_duplicate_callbacks(
    dev_factory: Callable[..., Dev], clips: dict[str, Path]
) -> None:
    from kinoit.config import load_settings
    from kinoit.jobs import callback_secret, callback_token

    dev = dev_factory()
    job_id = dev.submit(dev.add(clips["short0"]))
    job = dev.wait_state(job_id, {"completed", "failed"})
    assert job["state"] == "completed"
    before = job["stages"]
    path = f"/callback/{job_id}/transcode.0/1"
    headers = {"X-Function-Status": "200", "X-Call-Id": "replayed"}
    forged = dev.call("POST", path + "?token=" + "A" * 43, token=None, headers=headers, json={})
    assert forged.status_code == 403
    secret = callback_secret(load_settings({"KINOIT_SECRETS_DIR": dev.env["KINOIT_SECRETS_DIR"]}))
    token = callback_token(secret, job_id, "transcode.0", 1)
    body = {"segment": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            "renditions": {}}  # fmt: skip
    for _ in range(2):  # a redelivered (late, duplicate) callback is counted once
        replay = dev.call("POST", f"{path}?token={token}", token=None, headers=headers, json=body)
        assert replay.status_code == 200 and replay.json()["status"] in {"duplicate", "ignored"}
    assert dev.job(job_id)["stages"] == before


def test_gateway_routes_sync_and_async_calls(dev_factory: Callable[..., Dev]) -> None:
    dev = dev_factory(workers=1)
    unsigned = requests.post(f"{dev.url}/function/split", data=b"{}", timeout=30)
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "Unauthorized"
    signed = signed_headers(b"{}", STAGE_SECRET.encode())
    response = requests.post(f"{dev.url}/function/split", data=b"{}", headers=signed, timeout=30)
    assert response.status_code == 400 and response.json()["field"] == "source"
    queued = requests.post(f"{dev.url}/async-function/thumbnail", data=b"{}", timeout=30)
    assert queued.status_code == 202 and queued.headers["X-Call-Id"]
    too_big = requests.post(f"{dev.url}/async-function/thumbnail", data=b"x" * 256_001, timeout=30)
    assert too_big.status_code == 413
    assert requests.post(f"{dev.url}/function/nope", timeout=30).status_code == 404


@pytest.mark.kubo
def test_a_job_on_kubo_gives_the_same_manifest_cid(
    dev_factory: Callable[..., Dev], clips: dict[str, Path], kubo: Any, reference_run: ReferenceRun
) -> None:
    from kinoit.config import load_settings
    from kinoit.store import open_store

    dev = dev_factory(KINOIT_IPFS_API=kubo.api_url)
    store = open_store(load_settings({"KINOIT_IPFS_API": kubo.api_url}))
    source = store.add(clips["main"])
    assert source == reference_run.source  # same CID from Kubo and the embedded store
    job = dev.wait_state(dev.submit(source), {"completed", "failed"})
    assert job["state"] == "completed", job
    assert job["manifest"] == reference_run.job["manifest"]
    assert any(p.cid == job["manifest"] for p in store.pin_ls())
