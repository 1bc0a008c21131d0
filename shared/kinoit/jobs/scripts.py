"""The engine's Lua scripts, loaded from the package's ``lua/`` folder.

Each script is a file of its own (``lua/<name>.lua``, whose header names its KEYS,
ARGV and reply); the helpers several scripts share live in ``lua/lib/`` and are
prepended in the order :data:`LIBRARIES` gives. Each runs atomically in Redis.

Per-job scripts take the eight per-job keys of :func:`kinoit.jobs.keys.job_keys`
as KEYS[1..8] (job, counts, tasks, payloads, pending, leases, retries, events)
followed by the global keys named in each script; the sweep and promote scripts
build per-job keys from :func:`kinoit.jobs.keys.job_key_templates`. Replies with
more than one part are JSON objects with named fields. kinoit targets one Redis
(with AOF), not Redis Cluster.
"""

from __future__ import annotations

import functools
from importlib import resources

# The library files each script needs, in order (the prelude first).
LIBRARIES: dict[str, tuple[str, ...]] = {
    "add_tasks": ("prelude", "add_tasks"),
    "lease": ("prelude",),
    "lease_next": ("prelude", "lease_next"),
    "complete": ("prelude", "complete"),
    "complete_step": ("prelude", "add_tasks", "complete", "lease_next", "effects"),
    "fail": ("prelude",),
    "sweep": ("prelude",),
    "stop": ("prelude",),
    "finish": ("prelude",),
    "promote": ("prelude",),
    "apply_effects": ("effects",),
}


def _read(*parts: str) -> str:
    return resources.files("kinoit.jobs").joinpath("lua", *parts).read_text(encoding="utf-8")


@functools.cache
def source(name: str) -> str:
    """The whole source of script ``name``: its libraries, then its own file."""
    libraries = LIBRARIES[name]
    return "".join(_read("lib", f"{lib}.lua") for lib in libraries) + _read(f"{name}.lua")
