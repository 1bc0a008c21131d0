"""A real orchestrate service (real Redis, real embedded store) with the functions
replaced by a scripted double: dispatches are captured instead of POSTed, and
the test answers them through the real callback route, as the queue-worker would.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from kinoit.config import Settings, load_settings
from kinoit.jobs import EngineConfig, JobEngine, ResultCache
from kinoit.metrics import MetricsRecorder
from kinoit.service import HttpRequest, OrchestrateService, RedisNotifier
from kinoit.service.pipeline import Pipeline
from kinoit.stages.merge import read_plan
from kinoit.stages.merge_media import MEDIA_FIELDS
from kinoit.stages.signing import verify_stage_request
from kinoit.store import EmbeddedStore
from kinoit.store.cid import CID
from kinoit.store.directory import file_entry, put_tree, put_tree_entry

API_TOKEN = "test-api-token"
WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0xMjM0NTY="
STAGE_SECRET = "test-stage-signing-secret"
GATEWAY = "http://gateway.test:8080"
LADDER = {
    "name": "tiny",
    "rungs": [{"name": "90p", "codec": "h264", "height": 90, "crf": 30, "preset": "ultrafast"}],
}


@dataclass
class Call:
    """One captured async dispatch."""

    function: str
    body: dict[str, Any]
    job_id: str
    task_id: str
    attempt: int
    token: str


@dataclass
class FakeResponse:
    status_code: int = 202


@dataclass
class Harness:
    """The service under test plus the captured dispatches."""

    service: OrchestrateService
    store: EmbeddedStore
    engine: JobEngine
    calls: list[Call] = field(default_factory=list)
    segments: int = 3

    @property
    def pipeline(self) -> Pipeline:
        return self.service.pipeline

    def post(self, url: str, data: str, headers: dict[str, str], timeout: float) -> FakeResponse:
        # every dispatch is signed for the stage, its body and its callback bound
        verify_stage_request(STAGE_SECRET.encode(), headers, data.encode())
        callback = urllib.parse.urlsplit(headers["X-Callback-Url"])
        _, _, job_id, task_id, attempt = callback.path.rsplit("/", 4)
        token = urllib.parse.parse_qs(callback.query)["token"][0]
        self.calls.append(
            Call(url.rsplit("/", 1)[1], json.loads(data), job_id, task_id, int(attempt), token)
        )
        return FakeResponse()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = API_TOKEN,
        **headers: str,
    ) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
        hdrs = {k.lower().replace("_", "-"): v for k, v in headers.items()}
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        path_only, _, query = path.partition("?")
        from kinoit.errors import KinoitError

        try:
            text, status, _ = self.service.handle(
                HttpRequest(method, path_only, hdrs, dict(urllib.parse.parse_qsl(query)), raw)
            )
        except KinoitError as exc:
            return exc.http_status, exc.to_dict()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def submit(self, **fields: Any) -> str:
        body = {
            "source": self.store.add_bytes(b"source video", pin=False),
            "ladder": LADDER,
            **fields,
        }
        status, reply = self.request("POST", "/", body)
        assert status == 202, reply
        return str(reply["job_id"])

    def answer(self, call: Call, status: int = 200, result: Any = None) -> tuple[int, Any]:
        """Deliver a callback for ``call`` through the real route."""
        if result is None and status == 200:
            result = self.result_for(call)
        body = json.dumps(result).encode() if result is not None else b""
        path = f"/callback/{call.job_id}/{call.task_id}/{call.attempt}?token={call.token}"
        return self.request(
            "POST", path, body, token=None, x_function_status=str(status), x_call_id="c"
        )

    def result_for(self, call: Call) -> dict[str, Any]:
        """What the real function would answer, with real CIDs in the real store."""
        s = self.store
        body = call.body
        if call.function == "split":
            entries = [
                {
                    "index": i,
                    "cid": CID.parse(
                        s.add_bytes(f"segment {i} of {body['source']}".encode(), pin=False)
                    ),
                    "start_frame": 25 * i,
                    "end_frame": 25 * (i + 1),
                }
                for i in range(self.segments)
            ]
            index = {"pages": [CID.parse(s.dag_put(entries))], "count": len(entries)}
            source = {"frames": 25 * self.segments, "fps": "25/1", "width": 160, "height": 90}
            echo = {k: body[k] for k in ("transcode_range_seconds",) if k in body}
            return {"index": s.dag_put(index), "segments": self.segments, "audio": None,
                    "source": source, **echo}  # fmt: skip
        if call.function == "transcode-segment":
            renditions = {
                rung["name"]: s.add_bytes(
                    f"{rung['name']} of {body['segment']}".encode(), pin=False
                )
                for rung in body["ladder"]["rungs"]
            }
            return {"segment": body["segment"], "renditions": renditions,
                    "start_frame": body["start_frame"], "fps": body["fps"]}  # fmt: skip
        if call.function == "thumbnail":
            return {
                "segment": body["segment"],
                "thumbnail": s.add_bytes(b"jpg" + body["segment"].encode(), pin=False),
            }
        if call.function == "checksum":
            rung = {"max_distance": 1, "mean_distance": 0.5, "verdict": "match", "reason": "ok"}
            return {"segment": body["segment"], "renditions": body["renditions"],
                    "algorithm": "phash", "hashes": ["00ff"],
                    "rungs": {name: rung for name in body["renditions"]},
                    "ok": True, "reason": "match"}  # fmt: skip
        if call.function == "merge" and body.get("part") == "media":  # no audio, no storyboard
            return {"plan": body["plan"], "part": "media",
                    **dict.fromkeys(MEDIA_FIELDS), "audio_renditions": []}  # fmt: skip
        if call.function == "merge" and body.get("rung"):  # one rung's part
            rung = body["rung"]
            mp4_bytes = b"mp4" + body["plan"].encode() + rung.encode()
            playlist = b"#EXTM3U\n" + rung.encode()
            playlist_cid = s.add_bytes(playlist, pin=False)
            listing = {f"{rung}/index.m3u8": CID.parse(playlist_cid)}
            hls_dir = put_tree_entry(s, {"index.m3u8": file_entry(playlist_cid, len(playlist))})
            facts = {"codec": "h264", "profile": "High", "level": 30, "width": 160,
                     "height": 90, "pix_fmt": "yuv420p"}  # fmt: skip
            return {"plan": body["plan"], "rung": rung,
                    "mp4": {rung: s.add_bytes(mp4_bytes, pin=False)}, "mp4_bytes": len(mp4_bytes),
                    "hls": s.dag_put({"type": "kinoit/directory", "entries": listing}),
                    "hls_dir": str(hls_dir.cid), "hls_dir_size": hls_dir.tsize,
                    "peak": "1000.5", "average": "900.25", "facts": facts,
                    "frames": 25 * self.segments}  # fmt: skip
        if call.function == "merge":
            parts = body.get("rungs") or {}
            hls = s.dag_put({"type": "kinoit/directory", "entries": {}})
            if parts:  # the final task: the MP4s its rung tasks stored
                mp4s = {r: (p["mp4"][r], p["mp4_bytes"]) for r, p in parts.items()}
            else:  # the whole merge in one task
                mp4_bytes = b"mp4" + body["plan"].encode() + b"90p"
                mp4s = {"90p": (s.add_bytes(mp4_bytes, pin=False), len(mp4_bytes))}
            # the outputs directory as merge lays it out: the MP4s and every thumbnail
            layout = {f"{r}.mp4": file_entry(cid, size) for r, (cid, size) in mp4s.items()}
            for entry in read_plan(s, body["plan"]).entries:
                thumb = str(entry["thumbnail"])
                size = len(b"".join(s.cat(thumb)))
                layout[f"thumbs/{int(entry['index']):05d}.jpg"] = file_entry(thumb, size)
            directory = put_tree(s, layout)
            return {"plan": body["plan"], "mp4": {r: cid for r, (cid, _) in mp4s.items()},
                    "hls": hls,
                    "storyboard": None, "storyboard_vtt": None,
                    "directory": directory}  # fmt: skip
        raise AssertionError(call.function)

    def drain(
        self,
        limit: int = 1000,
        decide: Callable[[Call], tuple[int, Any] | None] | None = None,
    ) -> list[Call]:
        """Answer every captured call (and those they cause) until none is left."""
        answered = []
        for _ in range(limit):
            if not self.calls:
                return answered
            call = self.calls.pop(0)
            custom = decide(call) if decide else None
            if custom is None:
                self.answer(call)
            else:
                self.answer(call, *custom)
            answered.append(call)
        raise AssertionError("the pipeline did not settle")

    def job(self, job_id: str) -> dict[str, Any]:
        status, body = self.request("GET", f"/jobs/{job_id}")
        assert status == 200, body
        return dict(body)


def make_settings(tmp_path: Path, redis_url: str, **env: str) -> Settings:
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "kinoit-api-token").write_text(API_TOKEN)
    (secrets / "kinoit-webhook-secret").write_text(WEBHOOK_SECRET)
    (secrets / "kinoit-stage-secret").write_text(STAGE_SECRET)
    return load_settings(
        {
            "KINOIT_HOME": str(tmp_path / "home"),
            "KINOIT_SECRETS_DIR": str(secrets),
            "KINOIT_REDIS_URL": redis_url,
            "KINOIT_GATEWAY_URL": GATEWAY,
            "KINOIT_ALLOW_PRIVATE_CALLBACKS": "true",
            **env,
        }
    )


@pytest.fixture
def harness_factory(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., Harness]]:
    """Build a harness; keyword arguments become KINOIT_* settings."""
    from kinoit.jobs import callback_secret

    clients: list[redis.Redis] = []

    def build(**env: str) -> Harness:
        settings = make_settings(tmp_path, redis_url, **env)
        connection = redis.Redis.from_url(redis_url)
        clients.append(connection)
        engine = JobEngine(
            connection, EngineConfig.from_settings(settings, backoff_base=0.0, backoff_cap=0.0)
        )
        store = EmbeddedStore(settings.store_dir, durable=False)
        harness: Harness
        pipeline = Pipeline(
            settings, engine, ResultCache(connection), store,
            RedisNotifier(connection, settings), MetricsRecorder(connection),
            callback_secret(settings), post=lambda *a, **k: harness.post(*a, **k),
        )  # fmt: skip
        harness = Harness(OrchestrateService(settings, pipeline, connection), store, engine)
        return harness

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def harness(harness_factory: Callable[..., Harness]) -> Harness:
    """A harness with default settings (one active job, three attempts)."""
    return harness_factory()
