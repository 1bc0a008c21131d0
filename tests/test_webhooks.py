"""Standard Webhooks signing (checked with the independent `standardwebhooks`
package), the SSRF guard, and real HTTP delivery from the Redis queue."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from kinoit import webhooks
from kinoit.errors import Forbidden, InvalidParameter, Unauthorized
from kinoit.jobs import keys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# ------------------------------------------------------------------ secrets
def test_generated_secret_parses_and_is_accepted_by_the_reference() -> None:
    secret = webhooks.generate_secret()
    assert secret.startswith("whsec_")
    assert len(webhooks.parse_secret(secret)) == 32
    Webhook(secret)  # the reference library accepts it


@pytest.mark.parametrize("bad", ["", "MfKQ9r8GKYqr", "whsec_", "whsec_!!notbase64!!", "whsec_AAAA"])
def test_malformed_secret_is_invalid(bad: str) -> None:
    with pytest.raises(InvalidParameter):
        webhooks.parse_secret(bad)


# --------------------------------------------------------------- signatures
def test_signature_verifies_with_standardwebhooks() -> None:
    now = int(time.time())
    body = json.dumps(webhooks.build_payload("job.completed", "J1", {"manifest": "bafyM"})).encode()
    headers = webhooks.signature_headers(SECRET, "msg_1", now, body)
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == "job.completed"
    assert payload["data"] == {"job_id": "J1", "manifest": "bafyM"}
    assert webhooks.verify(SECRET, headers, body) == payload


def test_signature_matches_the_reference_bytes() -> None:
    from datetime import UTC, datetime

    ref = Webhook(SECRET).sign("msg_2", datetime.fromtimestamp(1_700_000_000, UTC), '{"a":1}')
    assert webhooks.sign(SECRET, "msg_2", 1_700_000_000, b'{"a":1}') == ref


def test_tampered_body_or_other_secret_is_rejected_by_both() -> None:
    now = int(time.time())
    body = b'{"type":"job.failed"}'
    headers = webhooks.signature_headers(SECRET, "msg_3", now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b'{"type":"job.completed"}', headers)
    with pytest.raises(Unauthorized):
        webhooks.verify(SECRET, headers, b'{"type":"job.completed"}')
    with pytest.raises(Unauthorized):
        webhooks.verify(webhooks.generate_secret(), headers, body)
    with pytest.raises(Unauthorized):
        webhooks.verify(SECRET, headers, body, now=now + 3600)  # replayed an hour later
    with pytest.raises(Unauthorized):
        webhooks.verify(SECRET, {}, body)


def test_payload_shape() -> None:
    payload = webhooks.build_payload("job.progress", "J9", {"done": 3, "total": 9}, now=0.5)
    assert payload == {
        "type": "job.progress",
        "timestamp": "1970-01-01T00:00:00.500Z",
        "data": {"job_id": "J9", "done": 3, "total": 9},
    }


# --------------------------------------------------------------------- SSRF
def fixed(*addresses: str) -> webhooks.Resolver:
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "ff02::1",
        "::",
    ],
)
def test_non_public_targets_are_forbidden(address: str) -> None:
    with pytest.raises(Forbidden):
        webhooks.check_callback_url("https://hooks.example.com/x", False, fixed(address))
    assert webhooks.check_callback_url("https://hooks.example.com/x", True, fixed(address))


def test_one_private_address_among_public_ones_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        webhooks.check_callback_url("http://h.example/", False, fixed("93.184.216.34", "10.0.0.1"))


def test_public_target_passes() -> None:
    url = "https://hooks.example.com:8443/kinoit?x=1"
    assert webhooks.check_callback_url(url, False, fixed("93.184.216.34")) == url


def test_literal_loopback_resolved_for_real_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        webhooks.check_callback_url("http://127.0.0.1:9/hook")
    with pytest.raises(Forbidden):
        webhooks.check_callback_url("http://[::1]:9/hook")


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "gopher://x", "http://", "http://h:99999/", "x"],
)
def test_malformed_or_non_http_urls_are_invalid(url: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        webhooks.check_callback_url(url, False, fixed("93.184.216.34"))
    assert info.value.field == "callback_url"


ATTACK_PORT = 8123


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:{ATTACK_PORT}\\@1.1.1.1/hook",  # the parser differential
        "http://1.1.1.1\\@127.0.0.1/hook",
        "http://hooks.example.com\\x/hook",
        "http://user:pw@hooks.example.com/hook",
        "http://hooks.example.com@127.0.0.1/hook",
        "http://@hooks.example.com/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0177.0.0.1/hook",
        "http://0x7f.0.0.1/hook",
        "http://127.000.000.001/hook",
        "http://[::1%25eth0]/hook",
        "http://%31%32%37.0.0.1/hook",
        "http://hooks.example.com./hook",
        "http://hooks..example.com/hook",
        "http://-hooks.example.com/hook",
        "http://hooks.example.com/a b",
        "http://hooks.example.com/a\tb",
        "http://hooks.example.com/\r\nX-Injected: 1",
        "http://hooks.example.com/hook#frag",
        "http://hooks.example.com/%zz",
        "http://ex\u00e4mple.com/hook",
        "http://hooks.example.com:0/hook",
        "http://hooks.example.com:+80/hook",
        "HTTP://hooks.example.com/hook",
        "http:/hooks.example.com/hook",
        "http://hooks.example.com?x=@127.0.0.1",
    ],
)
def test_urls_two_parsers_could_read_differently_are_refused_before_any_lookup(url: str) -> None:
    looked_up: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["93.184.216.34"]

    with pytest.raises(InvalidParameter) as info:
        webhooks.check_callback_url(url, True, resolve)
    assert info.value.field == "callback_url"
    assert looked_up == []


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:c0a8:101::1", "::127.0.0.1", "fe80::1%1"],
)
def test_ipv4_hidden_in_ipv6_is_judged_by_the_ipv4_address(address: str) -> None:
    with pytest.raises(Forbidden):
        webhooks.check_callback_url("https://hooks.example.com/x", False, fixed(address))


def test_the_target_is_pinned_to_the_address_checked_and_resolved_once() -> None:
    answers = [["93.184.216.34"], ["127.0.0.1"]]  # a rebinding resolver: public, then loopback
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), 2) - 1]

    target = webhooks.resolve_callback("https://hooks.example.com:8443/k?x=1", False, rebinding)
    assert (target.host, target.port, target.target) == ("hooks.example.com", 8443, "/k?x=1")
    assert target.address == "93.184.216.34"
    assert calls == ["hooks.example.com"]


def test_bracketed_ipv6_literal_needs_no_lookup_and_is_canonical() -> None:
    target = webhooks.resolve_callback("http://[2606:4700:0:0::1111]:81/h", False)
    assert (target.host, target.address, target.port) == (
        "[2606:4700::1111]",
        "2606:4700::1111",
        81,
    )


def test_unresolvable_host_is_invalid() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(InvalidParameter):
        webhooks.check_callback_url("https://nowhere.invalid/", False, fail)


# ----------------------------------------------------------------- delivery
@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A real HTTP server on loopback that records requests and answers queued statuses."""

    def __init__(self) -> None:
        self.requests: queue.Queue[Received] = queue.Queue()
        self.statuses: list[int] = []
        self.location = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                outer.requests.put(Received({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if outer.statuses else 204
                self.send_response(status)
                if outer.location:
                    self.send_header("location", outer.location)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.mark.redis
def test_delivery_over_http_is_verified_by_standardwebhooks(
    client: redis.Redis, receiver: Receiver
) -> None:
    msg_id = webhooks.enqueue_webhook(
        client, receiver.url, "job.completed", "J1", {"manifest": "bafyM", "outputs": {}}
    )
    assert webhooks.pending_count(client) == 1
    report = webhooks.deliver_pending(client, SECRET, allow_private=True)
    assert report.delivered == [msg_id]
    got = receiver.requests.get(timeout=5)
    assert got.headers["webhook-id"] == msg_id
    assert got.headers["content-type"] == "application/json"
    payload = Webhook(SECRET).verify(got.body, got.headers)
    assert payload["type"] == "job.completed"
    assert payload["data"]["job_id"] == "J1" and payload["data"]["manifest"] == "bafyM"
    assert webhooks.pending_count(client) == 0
    assert not client.exists(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id))


@pytest.mark.redis
def test_failed_delivery_is_retried_with_backoff_under_the_same_id(
    client: redis.Redis, receiver: Receiver
) -> None:
    receiver.statuses = [500]
    t0 = time.time()
    msg_id = webhooks.enqueue_webhook(
        client, receiver.url, "job.failed", "J1", {"reason": "x"}, now=t0
    )
    first = webhooks.deliver_pending(client, SECRET, allow_private=True, now=t0)
    assert first.retried == [msg_id]
    assert receiver.requests.get(timeout=5).headers["webhook-id"] == msg_id
    assert webhooks.next_due(client) == pytest.approx(t0 + webhooks.DEFAULT_RETRY_SCHEDULE[0])
    # not due yet: nothing is sent
    assert webhooks.deliver_pending(client, SECRET, allow_private=True, now=t0 + 1).retried == []
    assert receiver.requests.empty()
    second = webhooks.deliver_pending(client, SECRET, allow_private=True, now=t0 + 5)
    assert second.delivered == [msg_id]
    again = receiver.requests.get(timeout=5)
    assert again.headers["webhook-id"] == msg_id
    Webhook(SECRET).verify(again.body, again.headers)


@pytest.mark.redis
def test_delivery_gives_up_after_the_schedule(client: redis.Redis) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/nothing-listens"
    msg_id = webhooks.enqueue_webhook(client, url, "job.failed", "J1")
    t0 = time.time()
    r1 = webhooks.deliver_pending(client, SECRET, allow_private=True, now=t0, schedule=(1,))
    assert r1.retried == [msg_id]
    r2 = webhooks.deliver_pending(client, SECRET, allow_private=True, now=t0 + 1, schedule=(1,))
    assert r2.dead == [msg_id]
    assert webhooks.pending_count(client) == 0
    assert client.lrange(keys.WEBHOOK_DEAD_KEY, 0, -1) == [msg_id.encode()]
    error = client.hget(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id), "error")
    assert error is not None and b"ConnectionError" in error


@pytest.mark.redis
def test_delivery_rechecks_ssrf_and_never_sends_to_private_targets(
    client: redis.Redis, receiver: Receiver
) -> None:
    msg_id = webhooks.enqueue_webhook(client, receiver.url, "job.started", "J1")
    report = webhooks.deliver_pending(client, SECRET, allow_private=False)
    assert report.retried == [msg_id]
    assert receiver.requests.empty()
    error = client.hget(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id), "error")
    assert error is not None and b"Forbidden" in error


@pytest.mark.redis
def test_parser_differential_url_is_never_delivered_even_to_allowed_private_targets(
    client: redis.Redis, receiver: Receiver
) -> None:
    """The issue's attack: urlsplit saw host 1.1.1.1 and requests then sent to 127.0.0.1."""
    port = receiver.server.server_address[1]
    msg_id = webhooks.enqueue_webhook(
        client, f"http://127.0.0.1:{port}\\@1.1.1.1/hook", "job.started", "J1"
    )
    for now, allow_private in ((time.time(), False), (time.time() + 3600, True)):
        report = webhooks.deliver_pending(client, SECRET, allow_private=allow_private, now=now)
        assert report.retried == [msg_id]
    assert receiver.requests.empty()
    error = client.hget(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id), "error")
    assert error is not None and b"backslash" in error


@pytest.mark.redis
def test_delivery_connects_to_the_checked_address_without_a_second_lookup(
    client: redis.Redis, receiver: Receiver
) -> None:
    """hooks.invalid resolves nowhere but through the guard's resolver: if anything after
    the check looked the name up again the delivery would fail."""
    port = receiver.server.server_address[1]
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    msg_id = webhooks.enqueue_webhook(
        client, f"http://hooks.invalid:{port}/in?x=1", "job.started", "J1"
    )
    report = webhooks.deliver_pending(client, SECRET, allow_private=True, resolve=resolve)
    assert report.delivered == [msg_id]
    got = receiver.requests.get(timeout=5)
    assert got.headers["host"] == f"hooks.invalid:{port}"
    assert lookups == ["hooks.invalid"]


@pytest.mark.redis
def test_redirects_are_not_followed_to_a_private_address(client: redis.Redis) -> None:
    first, second = Receiver(), Receiver()
    try:
        first.statuses = [307]
        first.location = second.url
        msg_id = webhooks.enqueue_webhook(client, first.url, "job.completed", "J1")
        report = webhooks.deliver_pending(client, SECRET, allow_private=True)
        assert report.retried == [msg_id]
        assert first.requests.get(timeout=5).headers["webhook-id"] == msg_id
        assert second.requests.empty()
        error = client.hget(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id), "error")
        assert error == b"HTTP 307"
    finally:
        first.close()
        second.close()


@pytest.mark.redis
def test_progress_is_throttled_by_time_and_step(client: redis.Redis) -> None:
    send = webhooks.should_send_progress
    assert send(client, "J1", 1, 100, now=0.0)  # first progress
    assert not send(client, "J1", 2, 100, now=1.0)  # too soon, too small
    assert send(client, "J1", 12, 100, now=2.0)  # advanced by >= 10 %
    assert not send(client, "J1", 13, 100, now=3.0)
    assert send(client, "J1", 14, 100, now=8.0)  # interval passed
    assert not send(client, "J1", 14, 100, now=100.0)  # no progress, no webhook
    assert not send(client, "J1", 0, 0, now=100.0)


@pytest.mark.redis
def test_progress_throttle_has_one_winner_under_concurrency(client: redis.Redis) -> None:
    wins: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        got = webhooks.should_send_progress(client, "J2", 50, 100, now=10.0)
        with lock:
            wins.append(got)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert wins.count(True) == 1


def test_queue_with_redis_down_is_state_unavailable() -> None:
    from kinoit.errors import StateUnavailable
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tests.conftest import free_port

    dead = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(StateUnavailable):
        webhooks.enqueue_webhook(dead, "https://hooks.example.com/", "job.started", "J1")
    with pytest.raises(StateUnavailable):
        webhooks.deliver_pending(dead, SECRET)
