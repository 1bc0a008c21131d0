"""The one HTTP policy of the IPFS backends (Kubo's RPC API, IPFS Cluster's REST API):
a ``requests`` session whose transport retries, with exponential backoff and a bound,
what another attempt may fix — a refused or reset connection, a read timeout, a
502/503/504 answer — for every method (Kubo's RPC is all POST; every call it is used
for can be sent again). A request whose body is a one-shot stream (an upload) goes
through :func:`single_attempt_session` instead; its caller rewinds the source and
waits :func:`backoff_seconds` between its own attempts.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

# Connecting to a healthy local or in-cluster node takes milliseconds.
CONNECT_TIMEOUT_SECONDS = 5.0
# The first retry waits this long, each further one twice as long.
BACKOFF_SECONDS = 0.2
# Answers of a proxy or an overloaded node, which a later attempt may not get.
RETRY_STATUSES = (502, 503, 504)


def backoff_seconds(retry: int) -> float:
    """The wait before retry number ``retry`` (1, 2, ...)."""
    return float(BACKOFF_SECONDS * 2 ** (retry - 1))


class _Backoff(Retry):
    """urllib3's Retry, waiting :func:`backoff_seconds` (urllib3 skips the first wait)."""

    def get_backoff_time(self) -> float:
        retries = len(self.history)
        return backoff_seconds(retries) if retries else 0.0


def retry_policy(retries: int) -> Retry:
    """Up to ``retries`` retries of connection errors, read timeouts and 502/503/504."""
    return _Backoff(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=0,
        allowed_methods=None,  # every method: Kubo's RPC calls are all POST
        status_forcelist=RETRY_STATUSES,
        raise_on_status=False,  # the last answer comes back and is mapped by the caller
        raise_on_redirect=False,
        respect_retry_after_header=False,
    )


def retrying_session(retries: int) -> requests.Session:
    """A session that retries per :func:`retry_policy`."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry_policy(retries))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def single_attempt_session() -> requests.Session:
    """A session that never resends (for one-shot request bodies)."""
    return retrying_session(0)


def timed_out(exc: requests.RequestException) -> bool:
    """True when the request ended on a read timeout (after the retries, requests
    reports one as a ConnectionError wrapping urllib3's MaxRetryError)."""
    if isinstance(exc, requests.Timeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, ReadTimeoutError)
