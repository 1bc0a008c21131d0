"""``kinoit run``: one job on the embedded default, as a client would run it.

Starts the local gateway and workers, submits over HTTP, shows progress, and
writes the outputs to a directory. Also the local readers behind
``kinoit status``, ``kinoit watch`` and ``kinoit jobs``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from kinoit.config import Settings
from kinoit.errors import InvalidParameter, KinoitError, NotFound, StateUnavailable
from kinoit.manifest import dumps_dag_json, expand_segments

# How often `kinoit run` asks for the job's state.
POLL_SECONDS = 0.25
# Plain progress lines (not a TTY) at most this often.
PLAIN_PROGRESS_SECONDS = 2.0
# Characters of the progress bar (tasks done over tasks known so far).
BAR_WIDTH = 20
STAGE_ORDER = ("split", "transcode", "thumbnail", "checksum", "merge")
TERMINAL = {"completed", "failed", "cancelled"}


@dataclass(frozen=True)
class RunOutcome:
    """What ``kinoit run`` reports."""

    job_id: str
    state: str
    manifest: str | None
    error: str | None
    out_dir: Path | None


def resolve_source(store: Any, source: str) -> str:
    """A path is added to the store (pinned); anything else must be a CID the store holds."""
    from kinoit.service import check_cid

    path = Path(source)
    if path.exists():
        if not path.is_file():
            raise InvalidParameter("SOURCE", f"{source} is not a file")
        return str(store.add(path, pin=True, name=f"kinoit-run-source:{path.name}"))
    try:
        cid = check_cid(source)
    except InvalidParameter:
        raise InvalidParameter("SOURCE", f"{source!r} is neither a file nor a CID") from None
    if not store.has(cid):
        raise NotFound(f"the store under this KINOIT_HOME does not hold {cid}")
    return cid


def format_progress(job: Mapping[str, Any], elapsed: float) -> str:
    """One status line: per-stage done/total, and an ETA from the tasks done so far (pure)."""
    stages = job.get("stages") or {}
    parts = []
    for name in STAGE_ORDER:
        counts = stages.get(name)
        if counts:
            retry = f" ({counts['retrying']} retrying)" if counts.get("retrying") else ""
            parts.append(f"{name} {counts['done']}/{counts['total']}{retry}")
    tasks = job.get("tasks") or {}
    done, total = int(tasks.get("done", 0)), max(expected_tasks(job), int(tasks.get("total", 0)))
    if job.get("state") == "completed":
        done = total
    eta = ""
    if 0 < done < total:
        eta = f" | ETA {elapsed * (total - done) / done:.0f}s"
    filled = round(BAR_WIDTH * done / total) if total else 0
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    label = job.get("state", "?")
    return f"[{bar}] {label} {elapsed:5.1f}s  " + (" | ".join(parts) or "waiting") + eta


def expected_tasks(job: Mapping[str, Any]) -> int:
    """How many tasks the job will have run once it ends, as far as is known now (pure).

    Tasks are added as the fan-out unfolds (checksums after their transcodes, merge
    last), so the count so far would make the bar go backwards: once split has
    listed the segments, every transcode (re-runs included) brings one checksum
    and the job one merge."""
    stages = job.get("stages") or {}

    def total(name: str) -> int:
        return int((stages.get(name) or {}).get("total", 0))

    if not total("transcode"):
        return 0
    return total("split") + 2 * total("transcode") + total("thumbnail") + max(total("merge"), 1)


class ProgressView:
    """A live status line on a TTY, or plain lines at a gentle rate otherwise."""

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.clock = clock
        self.last_line = ""
        self.last_time = 0.0

    def update(self, line: str) -> None:
        """Show ``line`` (overwriting on a TTY)."""
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        elif line != self.last_line and self.clock() - self.last_time >= PLAIN_PROGRESS_SECONDS:
            self.stream.write(line + "\n")
            self.last_time = self.clock()
        self.last_line = line

    def close(self) -> None:
        """End the live line."""
        if self.tty and self.last_line:
            self.stream.write("\n")
        elif not self.tty and self.last_line:
            self.stream.write(self.last_line + "\n")
        self.stream.flush()


def safe_relative(path: str) -> PurePosixPath:
    """A relative path with no ``..`` (listing entries come from the store)."""
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise InvalidParameter("hls", f"refusing unsafe path {path!r} in a directory listing")
    return rel


def export_outputs(store: Any, manifest_cid: str, out_dir: Path) -> list[Path]:
    """Write a finished job's outputs under ``out_dir``; return the files written."""
    from kinoit.store.cid import CID

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = store.dag_get(manifest_cid)
    written: list[Path] = []

    def get(cid: Any, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(str(cid), dest)
        written.append(dest)

    outputs = manifest["outputs"]
    for rung, cid in sorted(outputs["mp4"].items()):
        get(cid, out_dir / f"{rung}.mp4")
    listing = store.dag_get(str(outputs["hls"]))
    for rel, cid in sorted(listing["entries"].items()):
        get(cid, out_dir / "hls" / Path(*safe_relative(rel).parts))
    manifest = {**manifest, "segments": expand_segments(manifest, store.dag_get)}
    for entry in manifest["segments"]:
        if entry.get("thumbnail"):
            get(entry["thumbnail"], out_dir / "thumbs" / f"{int(entry['index']):05d}.jpg")
    if outputs.get("storyboard"):
        get(outputs["storyboard"], out_dir / "storyboard.jpg")
    if outputs.get("storyboard_vtt"):
        get(outputs["storyboard_vtt"], out_dir / "storyboard.vtt")
    text = dumps_dag_json(manifest, lambda v: isinstance(v, CID))
    (out_dir / "manifest.json").write_text(text, "utf-8")
    written.append(out_dir / "manifest.json")
    return written


def run_job(
    settings: Settings,
    source: str,
    *,
    profile: str | None = None,
    ladder_file: Path | None = None,
    out_dir: Path | None = None,
    workers: int = 2,
    stream: IO[str] = sys.stderr,
    timeout: float | None = None,
) -> RunOutcome:
    """Start the embedded stack, submit ``source``, follow it, export the outputs."""
    from kinoit.gateway.dev import DevStack
    from kinoit.media.ladder import load_ladder
    from kinoit.service.client import OrchestrateClient
    from kinoit.store import open_store

    store = open_store(settings)
    cid = resolve_source(store, source)
    body: dict[str, Any] = {"source": cid}
    if ladder_file is not None:
        body["ladder"] = load_ladder(Path(ladder_file)).to_json()
    else:
        body["profile"] = profile or "default"
    view = ProgressView(stream)
    with DevStack(port=0, workers=workers, settings=settings) as stack:
        client = OrchestrateClient(stack.gateway_url, stack.api_token())
        job_id = str(client.submit(body)["job_id"])
        stream.write(f"kinoit run: job {job_id} (source {cid})\n")
        started = time.monotonic()
        while True:
            job = client.job(job_id)
            view.update(format_progress(job, time.monotonic() - started))
            if job["state"] in TERMINAL:
                break
            if timeout is not None and time.monotonic() - started > timeout:
                client.cancel(job_id)
                view.close()
                raise StateUnavailable(f"job {job_id} did not finish within {timeout:.0f}s")
            time.sleep(POLL_SECONDS)
        view.close()
    manifest = job.get("manifest")
    if job["state"] == "completed" and manifest and out_dir is not None:
        export_outputs(store, str(manifest), out_dir)
    return RunOutcome(job_id, str(job["state"]), manifest, job.get("error"), out_dir)


# ------------------------------------------------------------ local readers
@contextlib.contextmanager
def local_redis(settings: Settings) -> Iterator[str]:
    """``KINOIT_REDIS_URL``, or this KINOIT_HOME's private redis, started for the
    duration when nothing runs it (its AOF keeps every job)."""
    from kinoit.gateway.redis_server import ensure_private_redis

    if settings.redis_url:
        yield settings.redis_url
        return
    if not (settings.home / "redis").is_dir():
        raise StateUnavailable(f"no jobs under KINOIT_HOME={settings.home}: nothing ran here yet")
    private = ensure_private_redis(settings.home)
    try:
        yield private.url
    finally:
        private.stop()


@contextlib.contextmanager
def local_engine(settings: Settings) -> Iterator[Any]:
    """A job engine on :func:`local_redis`."""
    from kinoit.jobs import EngineConfig, JobEngine, connect

    with local_redis(settings) as url:
        connection = connect(url)
        try:
            yield JobEngine(connection, EngineConfig.from_settings(settings))
        finally:
            connection.close()


def watch_job(engine: Any, job_id: str, stream: IO[str], timeout: float | None = None) -> str:
    """Print the job's progress stream until it ends; return the final state."""
    engine.get_job(job_id)  # NotFound early
    last = "0-0"
    deadline = None if timeout is None else time.monotonic() + timeout

    def show(events: list[Any]) -> str:
        for event in events:
            fields = " ".join(f"{k}={v}" for k, v in sorted(event.fields.items()))
            stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
            stream.write(f"{stamp} {event.type} {fields}".rstrip() + "\n")
        stream.flush()
        return str(events[-1].id) if events else last

    while True:
        last = show(engine.follow(job_id, last, block_ms=1000))
        state = engine.get_job(job_id).state.value
        if state in TERMINAL:
            # the final events may have landed after that read, or past its count
            while events := engine.follow(job_id, last):
                last = show(events)
            return str(state)
        if deadline is not None and time.monotonic() > deadline:
            raise KinoitError(f"job {job_id} still {state} after {timeout}s")
