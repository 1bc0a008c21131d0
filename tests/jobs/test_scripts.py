"""The engine's Lua files: every script loads, ships with the package, and the typed
effects are applied exactly as written (against a real Redis)."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

import pytest
import redis
from kinoit.jobs import keys, scripts
from kinoit.jobs.effects import (
    HashIncrement,
    HashIncrementFloat,
    SetAdd,
    StoreValue,
    encode_effects,
)

PACKAGE = Path(scripts.__file__).resolve().parents[1]
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def test_every_lua_file_is_package_data() -> None:
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]
    lua = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.lua"))
    assert lua, "no Lua files found"
    unshipped = [f for f in lua if not any(fnmatch.fnmatch(f, g) for g in patterns["kinoit"])]
    assert unshipped == []


def test_every_script_file_is_loaded_and_every_library_used() -> None:
    folder = PACKAGE / "jobs" / "lua"
    assert {p.stem for p in folder.glob("*.lua")} == set(scripts.LIBRARIES)
    used = {lib for libs in scripts.LIBRARIES.values() for lib in libs}
    assert {p.stem for p in (folder / "lib").glob("*.lua")} == used
    source = scripts.source("complete_step")
    assert source.index("local function parse") < source.index("local function add_tasks")
    assert source.rstrip().endswith("return cjson.encode(reply)")


def test_job_key_templates_rebuild_the_job_keys() -> None:
    job_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    rebuilt = [before + job_id + after for before, after in keys.job_key_templates()]
    assert rebuilt == keys.job_keys(job_id)


@pytest.mark.redis
def test_effects_are_applied_exactly(client: redis.Redis) -> None:
    apply = client.register_script(scripts.source("apply_effects"))
    effects = [
        HashIncrement("t:h", "n", 2),
        HashIncrement("t:h", "n"),
        HashIncrementFloat("t:h", "sum", 0.1),
        HashIncrementFloat("t:h", "sum", 0.2),
        SetAdd("t:s", "transcode"),
        StoreValue("t:v", '{"cid":"x"}'),
    ]
    assert apply(keys=[], args=[encode_effects(effects)]) == 1
    assert client.hget("t:h", "n") == b"3"
    assert float(client.hget("t:h", "sum") or 0) == pytest.approx(0.3)
    assert client.smembers("t:s") == {b"transcode"}
    assert client.get("t:v") == b'{"cid":"x"}'


@pytest.mark.redis
def test_an_unknown_effect_is_refused_by_the_script(client: redis.Redis) -> None:
    apply = client.register_script(scripts.source("apply_effects"))
    raw = json.dumps([["del", "t:v"]])
    client.set("t:v", "kept")
    with pytest.raises(redis.ResponseError, match="unknown effect"):
        apply(keys=[], args=[raw])
    assert client.get("t:v") == b"kept"
