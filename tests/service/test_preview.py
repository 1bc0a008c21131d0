"""The preview of a running job through the real orchestrate routes (real Redis, real
embedded store), the stages answered by the harness one by one, so each step of
the EVENT playlists is checked at a known point of the job."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kinoit.documents import AudioHls, AudioSegmentRef, SegmentRef, write_split_index
from kinoit.media.playlists import media_playlist
from kinoit.service.preview import (
    TOKEN_ROUNDING_SECONDS,
    TOKEN_SECONDS,
    audio_prefix,
    expiry,
    preview_token,
)

from tests.service.conftest import GATEWAY, Call, Harness


def take(harness: Harness, task_id: str) -> Call:
    """Remove and return the captured dispatch of ``task_id``."""
    call = next(c for c in harness.calls if c.task_id == task_id)
    harness.calls.remove(call)
    return call


def answer(harness: Harness, task_id: str, result: Any = None) -> None:
    status, reply = harness.answer(take(harness, task_id), result=result)
    assert status == 200, reply


def get(harness: Harness, url: str) -> tuple[int, Any]:
    """GET a preview URL as a player would: no bearer header."""
    path = url.split("/function/orchestrate", 1)[1]
    return harness.request("GET", path, token=None)


def entries(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def started_job(harness: Harness, audio: AudioHls | None = None) -> tuple[str, str]:
    """A submitted job whose split is answered (three segments, optionally with audio);
    its id and preview master URL."""
    job_id = harness.submit()
    assert "preview" not in harness.job(job_id)  # nothing to watch before the split
    split = take(harness, "split")
    result = harness.result_for(split)
    if audio is not None:
        refs = [SegmentRef(i, harness.store.add_bytes(b"s%d" % i, pin=False), 25 * i,
                           25 * (i + 1)) for i in range(3)]  # fmt: skip
        source = result["source"]
        result["index"] = write_split_index(harness.store, refs, source, None, audio)
    status, reply = harness.answer(split, result=result)
    assert status == 200, reply
    preview = harness.job(job_id)["preview"]
    assert preview["segments"] == 0
    assert preview["hls"].startswith(f"{GATEWAY}/function/orchestrate/preview/{job_id}/")
    return job_id, str(preview["hls"])


def test_the_event_playlist_lists_the_verified_run_from_segment_0_then_ends(
    harness: Harness,
) -> None:
    job_id, master_url = started_job(harness)
    status, master = get(harness, master_url)
    assert status == 200 and "video/90p/index.m3u8" in master
    base = master_url.rsplit("/", 1)[0]
    playlist = f"{base}/video/90p/index.m3u8"

    def listed() -> list[str]:
        status, text = get(harness, playlist)
        assert status == 200
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-TARGETDURATION:1" in text
        return entries(text)

    assert listed() == []
    # segment 1 transcoded and verified first: a hole at 0, so nothing is playable yet
    answer(harness, "transcode.1")
    answer(harness, "checksum.1")
    assert listed() == [] and harness.job(job_id)["preview"]["segments"] == 0
    answer(harness, "transcode.0")
    assert listed() == []  # transcoded, not yet verified
    answer(harness, "checksum.0")
    assert listed() == ["00000.ts", "00001.ts"]
    assert harness.job(job_id)["preview"]["segments"] == 2
    assert get(harness, f"{base}/video/90p/00001.ts")[0] == 200
    status, _ = get(harness, f"{base}/video/90p/00002.ts")
    assert status == 404  # listed only once verified
    answer(harness, "transcode.2")
    answer(harness, "checksum.2")
    status, text = get(harness, playlist)
    assert entries(text) == ["00000.ts", "00001.ts", "00002.ts"]
    assert "#EXT-X-ENDLIST" not in text  # every segment is there, the job is not done
    harness.drain()  # thumbnails, then merge
    assert harness.job(job_id)["state"] == "completed"
    status, text = get(harness, playlist)
    assert entries(text) == ["00000.ts", "00001.ts", "00002.ts"]
    assert text.rstrip().endswith("#EXT-X-ENDLIST")


def test_segments_are_the_rendition_bytes_from_the_store(harness: Harness) -> None:
    _, master_url = started_job(harness)
    transcode = take(harness, "transcode.0")
    rendition = harness.result_for(transcode)
    harness.answer(transcode, result=rendition)
    answer(harness, "checksum.0")
    base = master_url.rsplit("/", 1)[0]
    expected = b"".join(harness.store.cat(rendition["renditions"]["90p"]))
    path = f"{base}/video/90p/00000.ts".split("/function/orchestrate", 1)[1]
    from kinoit.service import HttpRequest

    body, status, headers = harness.service.handle(HttpRequest("GET", path))
    assert status == 200 and body == expected
    assert headers["Content-Type"] == "video/mp2t"
    _, status, headers = harness.service.handle(HttpRequest("GET", master_url.split(
        "/function/orchestrate", 1)[1]))  # fmt: skip
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["Cache-Control"] == "no-cache"


def test_a_mismatched_segment_is_listed_once_its_rerun_matched(harness: Harness) -> None:
    _, master_url = started_job(harness)
    playlist = master_url.rsplit("/", 1)[0] + "/video/90p/index.m3u8"
    answer(harness, "transcode.0")
    bad = take(harness, "checksum.0")
    result = harness.result_for(bad)
    result.update(ok=False, reason="90p: hash: too far")
    result["rungs"]["90p"]["verdict"] = "mismatch"
    harness.answer(bad, result=result)
    assert entries(get(harness, playlist)[1]) == []
    rerun = take(harness, "transcode.0.r2")
    redo = harness.result_for(rerun)
    harness.answer(rerun, result=redo)
    assert entries(get(harness, playlist)[1]) == []
    answer(harness, "checksum.0.r2")
    assert entries(get(harness, playlist)[1]) == ["00000.ts"]
    from kinoit.service import HttpRequest

    path = playlist.rsplit("/", 1)[0].split("/function/orchestrate", 1)[1] + "/00000.ts"
    body, status, _ = harness.service.handle(HttpRequest("GET", path))
    assert status == 200 and body == b"".join(harness.store.cat(redo["renditions"]["90p"]))


def test_a_rung_missing_from_a_segment_ends_that_rungs_playlist(harness: Harness) -> None:
    _, master_url = started_job(harness)
    base = master_url.rsplit("/", 1)[0]
    answer(harness, "transcode.0")
    answer(harness, "checksum.0")
    transcode = take(harness, "transcode.1")
    result = harness.result_for(transcode)
    result["renditions"] = {"other": result["renditions"]["90p"]}
    harness.answer(transcode, result=result)
    answer(harness, "checksum.1")
    assert entries(get(harness, f"{base}/video/90p/index.m3u8")[1]) == ["00000.ts"]
    assert get(harness, f"{base}/video/90p/00001.ts")[0] == 404


def test_tokens_are_bound_to_the_job_and_expire(harness: Harness) -> None:
    job_id, master_url = started_job(harness)
    prefix, expires, token, name = master_url.rsplit("/", 3)
    assert get(harness, master_url)[0] == 200  # no bearer header needed
    wrong = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert get(harness, f"{prefix}/{expires}/{wrong}/{name}")[0] == 403
    assert get(harness, f"{prefix}/{int(expires) + 3600}/{token}/{name}")[0] == 403
    past = int(time.time()) - 10
    secret = harness.pipeline.secret
    stale = preview_token(secret, job_id, past)
    status, reply = get(harness, f"{prefix}/{past}/{stale}/{name}")
    assert status == 403 and "expired" in reply["message"]
    # another job's valid token does not open this one
    second = harness.submit()
    theirs = preview_token(secret, second, int(expires))
    assert get(harness, f"{prefix}/{expires}/{theirs}/{name}")[0] == 403
    unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert unknown not in (job_id, second)
    fake = preview_token(secret, unknown, int(expires))
    base = prefix.rsplit("/", 1)[0]
    assert get(harness, f"{base}/{unknown}/{expires}/{fake}/{name}")[0] == 404
    assert get(harness, f"{prefix}/{expires}/{token}/video/nope/index.m3u8")[0] == 404
    assert get(harness, f"{prefix}/{expires}/{token}/../../jobs")[0] == 404


def test_the_audio_rendition_covers_the_listed_video(harness: Harness) -> None:
    cids = [harness.store.add_bytes(b"audio %d" % i, pin=False) for i in range(4)]
    durations = (1.0027, 1.0027, 1.0027, 0.02)
    segments = tuple(AudioSegmentRef(c, d, 18000) for c, d in zip(cids, durations, strict=True))
    _, master_url = started_job(harness, AudioHls("fr", 2, segments))
    base = master_url.rsplit("/", 1)[0]
    master = get(harness, master_url)[1]
    assert (
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",LANGUAGE="fr",NAME="Stereo",DEFAULT=YES,'
        'AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"'
    ) in master
    assert 'AUDIO="audio"' in master
    audio = f"{base}/audio/index.m3u8"
    assert entries(get(harness, audio)[1]) == []
    answer(harness, "transcode.0")
    answer(harness, "checksum.0")
    assert entries(get(harness, audio)[1]) == ["00000.ts"]
    assert get(harness, f"{base}/audio/00000.ts")[1] == b"audio 0"
    assert get(harness, f"{base}/audio/00001.ts")[0] == 404
    for i in (1, 2):
        answer(harness, f"transcode.{i}")
        answer(harness, f"checksum.{i}")
    assert len(entries(get(harness, audio)[1])) == 3  # the short tail starts after 3 s
    harness.drain()
    text = get(harness, audio)[1]
    assert len(entries(text)) == 4 and text.rstrip().endswith("#EXT-X-ENDLIST")


def test_expiry_is_a_day_ahead_rounded_up_to_the_hour() -> None:
    now = 1_800_000_123.5
    expires = expiry(now)
    assert expires % TOKEN_ROUNDING_SECONDS == 0
    assert now + TOKEN_SECONDS <= expires < now + TOKEN_SECONDS + TOKEN_ROUNDING_SECONDS
    assert expiry(now + 60) == expires  # the URL a client polls stays the same


def test_audio_prefix_starts_before_the_video_ends() -> None:
    audio = AudioHls("und", 2, tuple(AudioSegmentRef("x", 1.0027, 1) for _ in range(5)))
    assert [audio_prefix(audio, s, False) for s in (0.0, 1.0, 2.0, 5.0)] == [0, 1, 2, 5]
    assert audio_prefix(audio, 0.0, True) == 5


def test_event_playlists_start_at_the_beginning_and_end_only_when_told() -> None:
    growing = media_playlist([("a.ts", 1.0)], event=True, ended=False, target=2)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-START:TIME-OFFSET=0" in growing
    assert "#EXT-X-TARGETDURATION:2" in growing and "#EXT-X-ENDLIST" not in growing
    assert media_playlist([], event=True, ended=False, target=1).count("#EXTINF") == 0
    assert media_playlist([("a.ts", 1.0)], event=True, ended=True).endswith("#EXT-X-ENDLIST\n")
    with pytest.raises(Exception, match="at least one segment"):
        media_playlist([])
