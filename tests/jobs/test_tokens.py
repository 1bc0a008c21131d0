"""Callback tokens: bound to job, task and attempt; forged ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from kinoit.config import load_settings
from kinoit.errors import InvalidParameter
from kinoit.jobs import callback_secret, callback_token, verify_callback_token

SECRET = b"0123456789abcdef0123456789abcdef"


def test_token_verifies_for_its_own_job_task_attempt() -> None:
    token = callback_token(SECRET, "J1", "s00001", 2)
    assert len(token) == 43 and "=" not in token
    assert verify_callback_token(SECRET, "J1", "s00001", 2, token)


@pytest.mark.parametrize(
    ("job", "task", "attempt"),
    [("J2", "s00001", 2), ("J1", "s00002", 2), ("J1", "s00001", 3)],
)
def test_token_for_another_job_task_or_attempt_is_refused(
    job: str, task: str, attempt: int
) -> None:
    token = callback_token(SECRET, "J1", "s00001", 2)
    assert not verify_callback_token(SECRET, job, task, attempt, token)


def test_forged_or_malformed_token_is_refused() -> None:
    good = callback_token(SECRET, "J1", "t", 1)
    assert not verify_callback_token(b"another-secret-another-secret!!", "J1", "t", 1, good)
    assert not verify_callback_token(
        SECRET, "J1", "t", 1, good[:-1] + ("A" if good[-1] != "A" else "B")
    )
    assert not verify_callback_token(SECRET, "J1", "t", 1, "")
    assert not verify_callback_token(SECRET, "J1", "t", 1, "é" * 43)


def test_callback_secret_prefers_dedicated_file_then_derives_from_webhook_secret(
    tmp_path: Path,
) -> None:
    env = {"KINOIT_SECRETS_DIR": str(tmp_path), "KINOIT_HOME": str(tmp_path)}
    with pytest.raises(InvalidParameter):
        callback_secret(load_settings(env))
    (tmp_path / "kinoit-webhook-secret").write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
    derived = callback_secret(load_settings(env))
    assert derived != b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" and len(derived) == 32
    (tmp_path / "kinoit-callback-secret").write_text("dedicated\n")
    assert callback_secret(load_settings(env)) == b"dedicated"
