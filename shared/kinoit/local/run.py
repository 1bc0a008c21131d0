"""``kinoit run``: one job on the embedded default, as a client would run it.

Starts the local gateway and workers, submits over HTTP, shows progress, and
writes the outputs to a directory. Also the local readers behind
``kinoit status``, ``kinoit watch`` and ``kinoit jobs``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from kinoit.config import Settings, default_dispatch_window
from kinoit.errors import InvalidParameter, KinoitError, NotFound, StateUnavailable
from kinoit.manifest import dumps_dag_json, expand_segments
from kinoit.names import check_name

# `kinoit run` asks for the job's state when its progress stream has a new event,
# at most this often, and at least every FOLLOW_SECONDS (the elapsed time moves on).
POLL_SECONDS = 0.25
FOLLOW_SECONDS = 1.0
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


def progress_fraction(job: Mapping[str, Any]) -> float:
    """The share of the job's tasks done, of those it will have run as far as is known
    now (pure; 1 once it completed)."""
    tasks = job.get("tasks") or {}
    done, total = int(tasks.get("done", 0)), max(expected_tasks(job), int(tasks.get("total", 0)))
    if job.get("state") == "completed":
        return 1.0
    return min(1.0, done / total) if total else 0.0


def format_progress(job: Mapping[str, Any], elapsed: float, shown: float = 0.0) -> str:
    """One status line: per-stage done/total, and an ETA from the share done so far
    (pure). ``shown``: the share an earlier line showed; the bar never goes below it,
    though tasks the fan-out adds later (a merge task per rung, the final one) can
    lower the share done."""
    stages = job.get("stages") or {}
    parts = []
    for name in STAGE_ORDER:
        counts = stages.get(name)
        if counts:
            retry = f" ({counts['retrying']} retrying)" if counts.get("retrying") else ""
            parts.append(f"{name} {counts['done']}/{counts['total']}{retry}")
    share = max(shown, progress_fraction(job))
    eta = ""
    if 0 < share < 1:
        eta = f" | ETA {elapsed * (1 - share) / share:.0f}s"
    filled = round(BAR_WIDTH * share)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    label = job.get("state", "?")
    return f"[{bar}] {label} {elapsed:5.1f}s  " + (" | ".join(parts) or "waiting") + eta


def expected_tasks(job: Mapping[str, Any]) -> int:
    """How many tasks the job will have run once it ends, as far as is known now (pure).

    Tasks are added as the fan-out unfolds (checksums after their transcodes, merge
    last), so the count so far would make the bar go backwards: once split has
    listed the segments, every transcode (re-runs included) brings one checksum
    and the job at least one merge task (one per rung, one for the audio and the
    storyboard and a final one, added once every segment is verified: the share done
    dips then, which :func:`format_progress`'s ``shown`` keeps off the bar)."""
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


# One part of a path read from a stored directory listing: no leading dot (so no
# "." or ".."), no separator, control character or space.
_LISTING_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def safe_relative(path: object) -> PurePosixPath:
    """A relative path whose every part is a plain file name (listing entries come
    from the store)."""
    parts = path.split("/") if isinstance(path, str) else []
    if not parts or not all(_LISTING_PART.fullmatch(part) for part in parts):
        raise InvalidParameter("hls", f"refusing unsafe path {path!r} in a directory listing")
    return PurePosixPath(*parts)


@dataclass(frozen=True)
class PreviousOutputs:
    """What an earlier ``kinoit run`` wrote into a directory, by its ``manifest.json``."""

    rungs: frozenset[str]
    thumbs: frozenset[str]
    files: frozenset[str]


_THUMB = re.compile(r"^[0-9]{5,}\.jpg$")
_OPTIONAL_FILES = {"storyboard": "storyboard.jpg", "storyboard_vtt": "storyboard.vtt"}


def read_previous_outputs(out_dir: Path) -> PreviousOutputs | None:
    """The outputs listed by ``out_dir/manifest.json``; None when there is none.
    A ``manifest.json`` that is not a kinoit manifest is refused (never overwritten)."""
    path = out_dir / "manifest.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
        outputs, segments = data["outputs"], data["segments"]
        rungs = frozenset(str(rung) for rung in dict(outputs["mp4"]))
        thumbs = frozenset(
            f"{int(entry['index']):05d}.jpg"
            for entry in segments
            if isinstance(entry, dict) and entry.get("thumbnail")
        )
        files = frozenset(name for key, name in _OPTIONAL_FILES.items() if outputs.get(key))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise InvalidParameter(
            "--out", f"{path} is not a kinoit manifest; refusing to overwrite it"
        ) from None
    return PreviousOutputs(rungs, thumbs, files)


def top_level_mp4s(out_dir: Path) -> set[str]:
    """Names of the files (and links) directly in ``out_dir`` ending in .mp4, any case."""
    if not out_dir.is_dir():
        return set()
    return {
        entry.name
        for entry in out_dir.iterdir()
        if entry.suffix.lower() == ".mp4" and (entry.is_symlink() or not entry.is_dir())
    }


def check_out_dir(out_dir: Path) -> PreviousOutputs | None:
    """Refuse an output directory holding MP4s that kinoit did not write there (any MP4
    not listed in a previous kinoit ``manifest.json`` of that directory): kinoit never
    overwrites or removes them, and ``DIR/<rung>.mp4`` must be the only MP4s at the top."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidParameter("--out", f"{out_dir} exists and is not a directory")
    previous = read_previous_outputs(out_dir) if out_dir.is_dir() else None
    owned = {f"{rung}.mp4" for rung in previous.rungs} if previous else set()
    foreign = sorted(top_level_mp4s(out_dir) - owned)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise InvalidParameter(
            "--out",
            f"{out_dir} holds MP4 files kinoit did not write ({shown}); "
            "move them away or choose another directory",
        )
    return previous


def export_outputs(store: Any, manifest_cid: str, out_dir: Path) -> list[Path]:
    """Write a finished job's outputs under ``out_dir``; return the files written.

    Everything is first written to a fresh hidden directory inside ``out_dir`` and
    moved into place only when complete. Outputs of an earlier run that this one does
    not write again (rung MP4s, thumbnails, storyboard listed in the old
    ``manifest.json``) are then removed; nothing else is (see :func:`check_out_dir`)."""
    previous = check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".kinoit-export-", dir=out_dir))
    try:
        relative = _write_outputs(store, manifest_cid, staging)
        written = []
        for rel in relative:  # manifest.json comes last: it stays the old one until then
            if rel == Path("manifest.json") and previous is not None:
                _remove_stale(out_dir, previous, set(relative))
            dest = out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, dest)
            written.append(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _remove_stale(out_dir: Path, previous: PreviousOutputs, kept: set[Path]) -> None:
    """Remove what the previous run listed and this one did not write again: only
    names found directly in ``out_dir`` (MP4s) or of kinoit's own fixed forms."""
    owned_mp4s = {f"{rung}.mp4" for rung in previous.rungs}
    stale = [Path(name) for name in sorted(top_level_mp4s(out_dir) & owned_mp4s)]
    stale += [Path("thumbs", name) for name in sorted(previous.thumbs) if _THUMB.match(name)]
    stale += [Path(name) for name in sorted(previous.files)]
    for rel in stale:
        path = out_dir / rel
        if rel not in kept and (path.is_symlink() or path.is_file()):
            path.unlink(missing_ok=True)


def directory_files(store: Any, root: str) -> list[tuple[Path, str]]:
    """Every file of the UnixFS directory ``root``: (relative path, CID), depth first in
    name order; a name that is not a plain file name is refused (it comes from the store)."""
    from kinoit.store.cid import CID
    from kinoit.store.directory import list_directory, stat

    def get_block(cid: CID) -> bytes:
        return bytes(store.block_get(str(cid)))

    found: list[tuple[Path, str]] = []
    stack = [(stat(get_block, CID.parse(root)), PurePosixPath())]
    while stack:
        node, rel = stack.pop()
        if node.kind != "directory":
            found.append((Path(rel), str(node.cid)))
            continue
        children = []
        for name, link in list_directory(get_block, node):
            child = rel / safe_relative(name)
            children.append((stat(get_block, link.cid), child))
        stack.extend(reversed(children))
    return found


def _write_outputs(store: Any, manifest_cid: str, out_dir: Path) -> list[Path]:
    """Write the outputs under ``out_dir`` (manifest.json last); return their relative paths."""
    from kinoit.store.cid import CID

    manifest = store.dag_get(manifest_cid)
    written: list[Path] = []

    def get(cid: Any, rel: Path) -> None:
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        store.get_file(str(cid), out_dir / rel)
        written.append(rel)

    outputs = manifest["outputs"]
    manifest = {**manifest, "segments": expand_segments(manifest, store)}
    if outputs.get("directory"):
        # the job's one UnixFS directory, file by file: `ipfs add -r` of what is written
        # here (manifest.json aside) gives outputs.directory again
        for rel, cid in directory_files(store, str(outputs["directory"])):
            get(cid, rel)
    else:  # a manifest from before outputs had one directory
        for rung, cid in sorted(outputs["mp4"].items()):
            get(cid, Path(check_name(rung, "outputs.mp4") + ".mp4"))
        listing = store.dag_get(str(outputs["hls"]))
        for rel, cid in sorted(listing["entries"].items()):
            get(cid, Path("hls", *safe_relative(rel).parts))
        for entry in manifest["segments"]:
            if entry.get("thumbnail"):
                get(entry["thumbnail"], Path("thumbs", f"{int(entry['index']):05d}.jpg"))
        for key, name in _OPTIONAL_FILES.items():
            if outputs.get(key):
                get(outputs[key], Path(name))
    text = dumps_dag_json(manifest, lambda v: isinstance(v, CID))
    (out_dir / "manifest.json").write_text(text, "utf-8")
    written.append(Path("manifest.json"))
    return written


class ProgressEvents:
    """Waits for the next event of a job's progress stream (Redis ``XREAD BLOCK``), so
    ``kinoit run`` asks for the job's state when something happened instead of four
    times a second. Without Redis it waits out the time (the state is still read)."""

    def __init__(self, redis_url: str, job_id: str) -> None:
        import redis

        from kinoit.jobs.keys import events_key

        self.key = events_key(job_id)
        self.last = "0-0"
        self.redis: Any = redis.Redis.from_url(redis_url)

    def __enter__(self) -> ProgressEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.redis.close()

    def wait(self, seconds: float) -> bool:
        """Return once an event newer than the last one seen is there (True), or after
        ``seconds`` (False)."""
        import redis

        started = time.monotonic()
        try:
            found = self.redis.xread(
                {self.key: self.last}, count=1000, block=max(1, int(seconds * 1000))
            )
        except (redis.RedisError, OSError):
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
            return False
        for _stream, entries in found or []:
            if entries:
                last = entries[-1][0]
                self.last = last.decode() if isinstance(last, bytes) else str(last)
        return bool(found)


def run_dispatch_window(workers: int, settings: Settings) -> int | None:
    """The dispatch window of a ``kinoit run`` on ``workers`` workers: the window a
    deployment of that many workers gets (:func:`kinoit.config.default_dispatch_window`),
    or None (the configured window as it is) when KINOIT_DISPATCH_WINDOW was set: the
    user's choice. A window far above the workers lets queued tasks outwait their lease
    and run twice (phone source, 32 s, window 16 on 2 workers: 9 of 41 transcodes;
    docs/benchmarks.md, "Pipeline cost")."""
    if settings.dispatch_window_set:
        return None
    return default_dispatch_window(workers)


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
    segment_seconds: str | None = None,
) -> RunOutcome:
    """Start the embedded stack, submit ``source``, follow it, export the outputs."""
    from kinoit.jobs import EngineConfig, JobEngine
    from kinoit.local.dev import DevStack
    from kinoit.media.ladder import load_ladder
    from kinoit.service.client import OrchestrateClient
    from kinoit.store import open_store

    if out_dir is not None:
        check_out_dir(out_dir)  # before any work: refuse a directory with foreign MP4s
    store = open_store(settings)
    cid = resolve_source(store, source)
    body: dict[str, Any] = {"source": cid}
    if ladder_file is not None:
        body["ladder"] = load_ladder(Path(ladder_file)).to_json()
    else:
        body["profile"] = profile or "default"
    if segment_seconds is not None:
        body["segment_seconds"] = str(segment_seconds)
    view = ProgressView(stream)
    window = run_dispatch_window(workers, settings)
    with DevStack(port=0, workers=workers, settings=settings, dispatch_window=window) as stack:
        client = OrchestrateClient(stack.gateway_url, stack.api_token())
        job_id = str(client.submit(body)["job_id"])
        stream.write(f"kinoit run: job {job_id} (source {cid})\n")
        started, shown = time.monotonic(), 0.0
        with ProgressEvents(stack.redis_url, job_id) as events:
            # The job's record read from Redis as `kinoit watch` reads it: what the
            # progress line needs (state, task counts, manifest, error), for 0.2 ms of
            # CPU a read against 2.5 for GET /jobs/<id> through this process's own
            # gateway (client and server sides, the preview fields included), four
            # times a second.
            engine = JobEngine(events.redis, EngineConfig.from_settings(settings))
            while True:
                asked = time.monotonic()
                job = engine.get_job(job_id).to_dict()
                view.update(format_progress(job, time.monotonic() - started, shown))
                shown = max(shown, progress_fraction(job))
                if job["state"] in TERMINAL:
                    break
                if timeout is not None and time.monotonic() - started > timeout:
                    client.cancel(job_id)
                    view.close()
                    raise StateUnavailable(f"job {job_id} did not finish within {timeout:.0f}s")
                events.wait(FOLLOW_SECONDS)
                time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - asked)))
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
    from kinoit.local.redis_server import ensure_private_redis

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
