"""Stage-request signatures: body, expiry and callback URL bound; constant-time check."""

from __future__ import annotations

from pathlib import Path

import pytest
from kinoit.config import load_settings
from kinoit.errors import ConfigurationError, Unauthorized
from kinoit.stages.signing import (
    SIGNATURE_HEADER,
    sign_stage_request,
    stage_key,
    verify_stage_request,
)

KEY = b"0123456789abcdef-stage"
BODY = b'{"segment":"bafy"}'


def test_a_signed_request_verifies_until_it_expires() -> None:
    headers = sign_stage_request(KEY, BODY, "http://o/cb", now=1000.0, valid_for=60)
    verify_stage_request(KEY, {**headers, "x-callback-url": "http://o/cb"}, BODY, now=1059.0)
    with pytest.raises(Unauthorized, match="expired"):
        verify_stage_request(KEY, {**headers, "X-Callback-Url": "http://o/cb"}, BODY, now=1061.0)


@pytest.mark.parametrize(
    "header",
    ["", "v1=abc", "t=,v1=abc", "t=12x,v1=abc", "t=99999999999999,v1=abc", "t=2000000000", "junk"],
)
def test_malformed_signatures_are_unauthorized(header: str) -> None:
    with pytest.raises(Unauthorized):
        verify_stage_request(KEY, {SIGNATURE_HEADER: header}, BODY, now=0.0)


def test_a_later_expiry_cannot_be_written_in() -> None:
    headers = sign_stage_request(KEY, BODY, now=1000.0, valid_for=60)
    mac = headers[SIGNATURE_HEADER].split(",v1=")[1]
    with pytest.raises(Unauthorized, match="does not match"):
        verify_stage_request(KEY, {SIGNATURE_HEADER: f"t=9999999999,v1={mac}"}, BODY, now=2000.0)


def test_the_key_comes_from_the_secret_file_and_must_be_long_enough(tmp_path: Path) -> None:
    settings = load_settings({"KINOIT_SECRETS_DIR": str(tmp_path)})
    with pytest.raises(ConfigurationError, match="kinoit-stage-secret"):
        stage_key(settings)
    (tmp_path / "kinoit-stage-secret").write_text("short\n")
    with pytest.raises(ConfigurationError, match="at least"):
        stage_key(settings)
    (tmp_path / "kinoit-stage-secret").write_text("a-long-enough-stage-secret\n")
    assert stage_key(settings) == b"a-long-enough-stage-secret"
