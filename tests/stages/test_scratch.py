"""Stage scratch directories: named by owner, removed after a stage, and swept once
their owner was SIGKILLed, without touching anything kinoit did not make."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kinoit.config import Settings, load_settings
from kinoit.errors import ConfigurationError
from kinoit.stages import scratch
from kinoit.stages.scratch import (
    STALE_AFTER_SECONDS,
    ScratchOwner,
    host_tag,
    is_stale,
    parse_scratch_name,
    scratch_dir,
    scratch_root,
    sweep_stale_scratch,
)

OLD = time.time() - STALE_AFTER_SECONDS - 60

HOLD_SCRATCH = """
import sys, time
from kinoit.stages.scratch import scratch_dir
with scratch_dir("transcode") as work:
    (work / "part.mp4").write_bytes(b"x")
    print(work, flush=True)
    time.sleep(60)
"""


def settings_for(root: Path) -> Settings:
    return load_settings({"KINOIT_HOME": str(root / "home"), "KINOIT_SCRATCH_DIR": str(root)})


def test_names_record_stage_pid_and_host() -> None:
    owner = parse_scratch_name("transcode-segment.4242.node-1.ab_c9")
    assert owner == ScratchOwner("transcode-segment", 4242, "node-1")
    for name in ("keep-me", "kinoit-split-abc", "split.12.host", "split.x.host.abc", "../a.1.h.b"):
        assert parse_scratch_name(name) is None, name
    assert host_tag("a.b_c") == "a-b-c" and host_tag("") == "localhost"


def test_only_old_dirs_of_dead_owners_on_this_host_are_stale() -> None:
    owner = ScratchOwner("split", 7, "here")
    dead, live = (lambda pid: False), (lambda pid: True)
    assert is_stale(owner, STALE_AFTER_SECONDS, "here", dead)
    assert not is_stale(owner, STALE_AFTER_SECONDS - 1, "here", dead)
    assert not is_stale(owner, STALE_AFTER_SECONDS, "here", live)
    assert not is_stale(owner, STALE_AFTER_SECONDS, "elsewhere", dead)


def test_a_stage_dir_lives_under_the_root_and_is_removed_however_it_ends(tmp_path: Path) -> None:
    with scratch_dir("split", settings_for(tmp_path)) as work:
        owner = parse_scratch_name(work.name)
        assert work.parent == tmp_path and owner is not None
        assert (owner.stage, owner.pid, owner.host) == ("split", os.getpid(), host_tag())
    assert not work.exists()
    with pytest.raises(RuntimeError), scratch_dir("merge", settings_for(tmp_path)) as work:
        raise RuntimeError("stage failed")
    assert not work.exists()


def test_a_sigkilled_owners_dir_is_swept_and_nothing_else(tmp_path: Path) -> None:
    env = {**os.environ, "KINOIT_SCRATCH_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRATCH], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    left = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert (left / "part.mp4").exists()  # what a killed worker leaves behind

    host = host_tag()
    foreign = tmp_path / "keep-me"
    foreign.mkdir()
    other_host = tmp_path / f"split.{proc.pid}.not-{host}.abc"
    other_host.mkdir()
    mine_live = tmp_path / f"split.{os.getpid()}.{host}.abc"
    mine_live.mkdir()
    fresh_dead = tmp_path / f"merge.{proc.pid}.{host}.fresh"
    fresh_dead.mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    link = tmp_path / f"thumbnail.{proc.pid}.{host}.link"
    link.symlink_to(outside, target_is_directory=True)
    plain_file = tmp_path / f"checksum.{proc.pid}.{host}.file"
    plain_file.write_text("not a dir")
    for path in (left, foreign, other_host, mine_live, link, plain_file):
        os.utime(path, (OLD, OLD), follow_symlinks=False)

    assert sweep_stale_scratch(tmp_path) == [left]
    assert not left.exists()
    for kept in (foreign, other_host, mine_live, fresh_dead, link, plain_file, outside):
        assert kept.exists() or kept.is_symlink(), kept


def test_the_next_stage_sweeps_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scratch, "_last_sweep", {})
    stale = tmp_path / f"split.999999999.{host_tag()}.abc"  # no such pid
    stale.mkdir()
    os.utime(stale, (OLD, OLD))
    with scratch_dir("split", settings_for(tmp_path)):
        assert not stale.exists()
    stale.mkdir()
    os.utime(stale, (OLD, OLD))
    with scratch_dir("split", settings_for(tmp_path)):
        assert stale.exists()  # swept at most once a minute per process


def test_the_default_root_is_per_user_and_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    settings = load_settings({"KINOIT_HOME": str(tmp_path / "home")})
    root = scratch_root(settings)
    assert root == tmp_path / f"kinoit-scratch-{os.getuid()}"
    assert root.stat().st_mode & 0o777 == 0o700
    root.rmdir()
    (tmp_path / "elsewhere").mkdir()
    root.symlink_to(tmp_path / "elsewhere")  # planted by someone: refused, not followed
    with pytest.raises(ConfigurationError, match="KINOIT_SCRATCH_DIR"):
        scratch_root(settings)
