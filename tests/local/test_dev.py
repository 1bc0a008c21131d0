"""Pieces of `kinoit dev`: generated secrets and the shared private redis."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from kinoit.config import load_settings
from kinoit.local.dev import ensure_dev_secrets, generate_webhook_secret
from kinoit.local.redis_server import ensure_private_redis


def test_complete_configured_secrets_are_used_as_they_are(tmp_path: Path) -> None:
    secrets = tmp_path / "s"
    secrets.mkdir()
    (secrets / "kinoit-api-token").write_text("tok")
    (secrets / "kinoit-webhook-secret").write_text(generate_webhook_secret())
    (secrets / "kinoit-stage-secret").write_text("a stage-signing secret")
    settings = load_settings(
        {"KINOIT_HOME": str(tmp_path / "h"), "KINOIT_SECRETS_DIR": str(secrets)}
    )
    assert ensure_dev_secrets(settings) == secrets


def test_missing_secrets_are_generated_under_home_keeping_existing_ones(tmp_path: Path) -> None:
    secrets = tmp_path / "s"
    secrets.mkdir()
    (secrets / "kinoit-api-token").write_text("mine\n")
    settings = load_settings(
        {"KINOIT_HOME": str(tmp_path / "h"), "KINOIT_SECRETS_DIR": str(secrets)}
    )
    target = ensure_dev_secrets(settings)
    assert target == tmp_path / "h" / "secrets"
    assert (target / "kinoit-api-token").read_text().strip() == "mine"
    webhook = (target / "kinoit-webhook-secret").read_text().strip()
    assert webhook.startswith("whsec_") and len(webhook) > 30
    assert oct((target / "kinoit-webhook-secret").stat().st_mode & 0o777) == "0o600"
    assert ensure_dev_secrets(settings) == target  # stable on the next start
    assert (target / "kinoit-webhook-secret").read_text().strip() == webhook
    stage = (target / "kinoit-stage-secret").read_text().strip()
    assert len(stage) >= 32 and stage != webhook
    assert oct((target / "kinoit-stage-secret").stat().st_mode & 0o777) == "0o600"


@pytest.mark.redis
def test_private_redis_is_shared_and_the_last_user_stops_it(tmp_path: Path) -> None:
    import subprocess

    from kinoit.local.redis_server import USERS_KEY

    first = ensure_private_redis(tmp_path)
    other = subprocess.Popen(["sleep", "60"])  # stands for another kinoit process
    try:
        client = redis.Redis.from_url(first.url)
        second = ensure_private_redis(tmp_path)
        assert second.url == first.url and second.process is None
        client.sadd(USERS_KEY, str(other.pid))
        first.stop()  # another live user: the server keeps running
        assert client.ping()
    finally:
        other.kill()
        other.wait()
    second.stop()  # the other user is gone: the last one out shuts it down
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(first.url, socket_timeout=1).ping()


def test_a_secret_is_written_owner_only_even_over_a_readable_file(tmp_path: Path) -> None:
    from kinoit.local.dev import write_private

    path = tmp_path / "kinoit-api-token"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new\n")
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o600


def test_a_stack_given_a_dispatch_window_hands_it_to_its_orchestrate(tmp_path: Path) -> None:
    from kinoit.local.dev import DevStack

    settings = load_settings({"KINOIT_HOME": str(tmp_path / "h")})
    env = DevStack(settings=settings, dispatch_window=8).environment(tmp_path)
    assert env["KINOIT_DISPATCH_WINDOW"] == "8"
    assert load_settings(env).dispatch_window == 8
    assert "KINOIT_DISPATCH_WINDOW" not in DevStack(settings=settings).environment(tmp_path)


def _tick_thread(stack: object) -> threading.Thread:
    return next(t for t in stack._threads if t.name == "kinoit-tick")  # type: ignore[attr-defined]


@pytest.mark.redis
@pytest.mark.parametrize("tick_seconds", ["2", "0"])
def test_the_stack_ticks_orchestrate_until_orchestrate_ticks_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tick_seconds: str
) -> None:
    from kinoit.local.dev import TICK_INTERVAL_SECONDS, DevStack

    monkeypatch.setenv("KINOIT_TICK_SECONDS", tick_seconds)
    settings = load_settings({"KINOIT_HOME": str(tmp_path / "h")})
    with DevStack(settings=settings, workers=0, port=0) as stack:
        tick = _tick_thread(stack)
        tick.join(timeout=10 * TICK_INTERVAL_SECONDS)
        if tick_seconds == "0":  # nothing else ticks: the stack keeps doing it
            assert tick.is_alive()
        else:  # one tick built orchestrate in this process, which now ticks on its own
            assert not tick.is_alive()
            from kinoit.service import get_service

            background = {t.name for t in threading.enumerate()}
            assert "kinoit-orchestrate-tick" in background
            assert get_service().settings.tick_seconds == 2
