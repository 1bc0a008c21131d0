"""Named failpoints: places in the code where a test can make kinoit fail or stall.

After etcd's gofail and TiKV's fail-rs. Production code marks a place with
:func:`hit`; a point does nothing unless it is armed, and only a test harness
arms points, through ``KINOIT_FAILPOINTS`` (read by :mod:`kinoit.config` into
``Settings.failpoints``, so every process started with it — the gateway, each
worker — sees the same points)::

    KINOIT_FAILPOINTS="stage.thumbnail=error;stage.transcode=sleep(3)"

An entry is ``name=action``, entries are separated by ``;``. Actions:

``error`` / ``error(message)``
    raise :class:`~kinoit.errors.MediaError` (as a failing ffmpeg would), its
    message saying ``injected failure`` and naming the point.
``sleep(seconds)``
    pause, e.g. so that a test can kill the worker in the middle of a task.
``crash``
    end the process at once (``os._exit``: no cleanup, no finally blocks), as a
    power cut or SIGKILL would: for crash tests of multi-step writes.
``off``
    nothing (the same as leaving the point out).

The points (grep ``failpoints.hit`` for the list): ``stage.<name>`` at the start
of the work of each stage (split, transcode, thumbnail, checksum, merge; transcode
and thumbnail through ``stages.common.segment_work``), ``stage.split.range`` at the
start of a range task's work (a split in ranges, :mod:`kinoit.media.ranges`); ``job_end.owed``,
``job_end.ended`` and ``job_end.webhook_queued`` between the steps of a job's end
(:mod:`kinoit.service.endings`); ``upload.close`` before an uploaded file's root is
pinned (:mod:`kinoit.service.uploads`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from kinoit.errors import InvalidParameter, MediaError

VARIABLE = "KINOIT_FAILPOINTS"
# The exit status of a process ended by a ``crash`` point (a test can tell it apart).
CRASH_EXIT_STATUS = 86

_ENTRY = re.compile(r"^(?P<name>[a-z][a-z0-9_.-]*)=(?P<kind>[a-z]+)(?:\((?P<arg>[^()]*)\))?$")


@dataclass(frozen=True)
class Action:
    """What an armed point does when it is hit."""

    kind: str  # "error", "sleep", "crash" or "off"
    message: str = ""
    seconds: float = 0.0


Failpoints = Mapping[str, Action]


def parse_failpoints(spec: str) -> dict[str, Action]:
    """``name=action;...`` as armed points (InvalidParameter naming the variable)."""
    points: dict[str, Action] = {}
    for raw in spec.split(";"):
        entry = raw.strip()
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if match is None:
            raise InvalidParameter(VARIABLE, f"expected name=action, got {entry!r}")
        name, kind, arg = match["name"], match["kind"], match["arg"]
        if kind == "error":
            points[name] = Action("error", message=arg or "")
        elif kind == "sleep":
            try:
                seconds = float(arg or "")
            except ValueError:
                raise InvalidParameter(VARIABLE, f"{name}: sleep needs seconds") from None
            if not seconds >= 0:
                raise InvalidParameter(VARIABLE, f"{name}: sleep needs seconds >= 0")
            points[name] = Action("sleep", seconds=seconds)
        elif kind == "crash" and arg is None:
            points[name] = Action("crash")
        elif kind == "off" and arg is None:
            points.pop(name, None)
        else:
            raise InvalidParameter(VARIABLE, f"{name}: unknown action {kind!r}")
    return points


def hit(points: Failpoints, name: str) -> None:
    """Run the action armed at ``name``; nothing when it is not armed."""
    action = points.get(name)
    if action is None:
        return
    if action.kind == "crash":
        os._exit(CRASH_EXIT_STATUS)
    if action.kind == "sleep":
        time.sleep(action.seconds)
    elif action.kind == "error":
        detail = f": {action.message}" if action.message else ""
        raise MediaError(f"{name}: injected failure (failpoint){detail}")
