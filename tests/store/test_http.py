"""The backends' one HTTP policy: what is retried, how often and how long it waits,
over real HTTP (a local server that counts requests)."""

from __future__ import annotations

import time

import pytest
import requests
from kinoit.store.http import (
    backoff_seconds,
    retrying_session,
    single_attempt_session,
    timed_out,
)

from .fake_http import Answer, Request, fake_server


def test_backoff_doubles_from_the_first_retry() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]


@pytest.mark.parametrize(("status", "sent"), [(503, 3), (502, 3), (500, 1), (404, 1)])
def test_only_gateway_and_overload_answers_are_resent(status: int, sent: int) -> None:
    def respond(request: Request) -> Answer:
        return Answer(status, b"no")

    with fake_server(respond) as server:
        started = time.monotonic()
        response = retrying_session(2).post(server.url + "/api/v0/id", timeout=5)
        elapsed = time.monotonic() - started
        assert response.status_code == status  # the last answer, for the caller to map
        assert len(server.requests) == sent
    if sent == 3:
        assert elapsed >= backoff_seconds(1) + backoff_seconds(2)


def test_a_single_attempt_session_never_resends() -> None:
    def respond(request: Request) -> Answer:
        return Answer(503, b"busy")

    with fake_server(respond) as server:
        assert single_attempt_session().post(server.url + "/x", timeout=5).status_code == 503
        assert len(server.requests) == 1


def test_a_read_timeout_after_the_retries_is_recognised() -> None:
    def hang(request: Request) -> Answer:
        time.sleep(1.0)
        return Answer(200, b"late")

    with fake_server(hang) as server:
        with pytest.raises(requests.RequestException) as info:
            retrying_session(1).post(server.url + "/x", timeout=0.2)
        assert timed_out(info.value)
        assert len(server.requests) == 2
