"""Watching a job while it encodes, on a real `kinoit dev` (two workers, real ffmpeg):
the EVENT playlists grow while the segments are transcoded and verified, list every
segment while merge still runs, and end when the job completes; what they serve
are the very bytes of the final HLS. Fetched without a bearer header, as a
player would."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.e2e.conftest import JOB_TIMEOUT, Dev

SEGMENTS = 5
# Each transcode waits 1.5 s (two workers: segments are verified about 0.75 s apart),
# and merge waits 4 s, so the playlists are seen growing, then complete but not ended.
FAILPOINTS = "stage.transcode=sleep(1.5);stage.merge=sleep(4)"


def entries(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_preview_grows_then_ends_with_the_bytes_of_the_final_hls(
    dev_factory: Callable[..., Dev], tmp_path: Path
) -> None:
    from kinoit.local.run import export_outputs
    from kinoit.media.synth import make_clip

    # one-segment ranges of the direct transcode, so segments are verified one by one
    dev = dev_factory(KINOIT_FAILPOINTS=FAILPOINTS, KINOIT_TRANSCODE_RANGE_SECONDS="1")
    clip = make_clip(tmp_path / "clip.mp4", seconds=SEGMENTS, width=160, height=90, audio=True)
    job_id = dev.submit(dev.add(clip))
    deadline = time.monotonic() + JOB_TIMEOUT
    seen: list[tuple[str, int, bool]] = []  # (job state, segments listed, ended)
    master_url = None
    while True:
        assert time.monotonic() < deadline, seen
        text = None
        if master_url is not None:  # the playlist first: an end it shows came before the state
            text = requests.get(master_url.rsplit("/", 1)[0] + "/video/90p/index.m3u8", timeout=30)
            assert text.status_code == 200, text.text
            assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text.text
        job = dev.job(job_id)
        if text is not None:
            seen.append((job["state"], len(entries(text.text)), "#EXT-X-ENDLIST" in text.text))
        if master_url is None and job.get("preview"):
            master_url = job["preview"]["hls"]
        elif job["state"] != "running":
            break
        time.sleep(0.1)
    assert job["state"] == "completed", job
    assert master_url is not None
    final = requests.get(master_url.rsplit("/", 1)[0] + "/video/90p/index.m3u8", timeout=30).text
    seen.append(("completed", len(entries(final)), "#EXT-X-ENDLIST" in final))
    counts = [n for _, n, _ in seen]
    assert counts == sorted(counts), seen  # it only grows
    assert any(0 < n < SEGMENTS for n in counts), seen  # watchable before the end
    # every segment listed while merge ran, without an end; the end once completed
    assert any(n == SEGMENTS and not ended for _, n, ended in seen), seen
    assert all(state == "completed" for state, _, ended in seen if ended), seen
    assert all(not ended for state, _, ended in seen if state == "running"), seen
    assert seen[-1] == ("completed", SEGMENTS, True)

    base = master_url.rsplit("/", 1)[0]
    master = requests.get(master_url, timeout=30).text
    assert 'CHANNELS="2"' in master and 'LANGUAGE="und"' in master and "video/48p/" in master
    out = tmp_path / "out"
    export_outputs(dev.store(), job["manifest"], out)
    for rung in ("90p", "48p"):
        listed = entries(requests.get(f"{base}/video/{rung}/index.m3u8", timeout=30).text)
        assert listed == [f"{i:05d}.ts" for i in range(SEGMENTS)]
        for name in listed:
            served = requests.get(f"{base}/video/{rung}/{name}", timeout=30)
            assert served.status_code == 200
            assert served.headers["Content-Type"] == "video/mp2t"
            assert served.content == (out / "hls" / rung / name).read_bytes()
    audio = entries(requests.get(f"{base}/audio/index.m3u8", timeout=30).text)
    final_audio = entries((out / "hls" / "audio" / "stereo" / "index.m3u8").read_text())
    assert audio == final_audio
    for name in audio:  # split cut the audio exactly as merge did: the same blocks
        served = requests.get(f"{base}/audio/{name}", timeout=30).content
        assert served == (out / "hls" / "audio" / "stereo" / name).read_bytes()
    # the job-bound token: a wrong one is refused, a wrong job is not found
    prefix, expires, token, _ = master_url.rsplit("/", 3)
    bad = "A" * 43 if token != "A" * 43 else "B" * 43
    assert requests.get(f"{prefix}/{expires}/{bad}/master.m3u8", timeout=30).status_code == 403
    other = prefix.rsplit("/", 1)[0] + "/01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert requests.get(f"{other}/{expires}/{token}/master.m3u8", timeout=30).status_code == 404
