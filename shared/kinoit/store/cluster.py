"""Kubo for data, IPFS Cluster for pins.

Data calls (add, cat, dag put/get, blocks, CAR) go to Kubo through a
:class:`~kinoit.store.kubo.KuboStore`; every pin goes to the Cluster REST API
instead, which replicates it across peers and honours a name, a replication
range and an expiry natively:

- ``POST /pins/{cid}?name=&replication-min=&replication-max=&expire-at=`` pins;
- ``DELETE /pins/{cid}`` unpins;
- ``GET /pins/{cid}`` gives the status on each peer;
- ``GET /allocations?filter=pin`` streams the pinset (one JSON object per line).

Adds and imports therefore put data into Kubo unpinned and then pin through
Cluster, so there is one pin per root. Request building is pure
(:func:`pin_query`), the rest is thin HTTP with the same timeouts and the same
retrying session as the Kubo backend (:mod:`kinoit.store.http`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import requests

from kinoit.errors import InvalidParameter, KinoitError, NotFound, StoreUnavailable
from kinoit.store.base import Pin
from kinoit.store.cid import CID, RAW, parse_cid
from kinoit.store.http import CONNECT_TIMEOUT_SECONDS, retrying_session
from kinoit.store.kubo import KuboStore

# -1 is Cluster's own "pin on every peer".
DEFAULT_REPLICATION = -1
# Go's zero time, which Cluster reports for pins that never expire.
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def format_expire_at(unix_time: float) -> str:
    """RFC 3339 UTC time as Cluster parses ``expire-at``."""
    return datetime.fromtimestamp(int(unix_time), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expire_at(text: str | None) -> float | None:
    """Cluster's ``expire_at`` (RFC 3339, zero time = never) as a UNIX time."""
    if not text or text.startswith("0001-01-01"):
        return None
    # Go writes up to nine fractional digits; Python reads at most six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def pin_query(
    *,
    name: str = "",
    expires_at: float | None = None,
    replication_min: int = DEFAULT_REPLICATION,
    replication_max: int = DEFAULT_REPLICATION,
) -> dict[str, str]:
    """Query parameters of ``POST /pins/{cid}`` (InvalidParameter for a bad range)."""
    for label, value in (
        ("replication_min", replication_min),
        ("replication_max", replication_max),
    ):
        if value == 0 or value < -1:
            raise InvalidParameter(label, f"must be -1 (every peer) or >= 1, got {value}")
    if replication_max != -1 and (replication_min == -1 or replication_min > replication_max):
        raise InvalidParameter(
            "replication_min",
            f"range {replication_min}..{replication_max} is empty",
        )
    query = {
        "name": name,
        "mode": "recursive",
        "replication-min": str(replication_min),
        "replication-max": str(replication_max),
    }
    if expires_at is not None:
        query["expire-at"] = format_expire_at(expires_at)
    return query


def pin_from_json(item: Mapping[str, Any]) -> Pin:
    """A kinoit Pin from one Cluster pin object."""
    cid = item.get("cid")
    if isinstance(cid, dict):  # older API versions wrote {"/": cid}
        cid = cid.get("/")
    return Pin(
        str(CID.parse(str(cid)).to_v1()),
        str(item.get("name") or ""),
        parse_expire_at(item.get("expire_at")),
    )


@dataclass(frozen=True)
class PinStatus:
    """Where a Cluster pin stands on each peer (peer name or id -> status string)."""

    cid: str
    name: str
    peers: dict[str, str] = field(default_factory=dict)

    @property
    def pinned_everywhere(self) -> bool:
        return bool(self.peers) and all(s == "pinned" for s in self.peers.values())


class ClusterStore:
    """The Store interface with data in Kubo and pins in IPFS Cluster."""

    def __init__(
        self,
        kubo: KuboStore,
        cluster_url: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        replication_min: int = DEFAULT_REPLICATION,
        replication_max: int = DEFAULT_REPLICATION,
        session: requests.Session | None = None,
    ) -> None:
        self.kubo = kubo
        self.cluster_url = cluster_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        pin_query(replication_min=replication_min, replication_max=replication_max)  # validate
        self.replication_min = replication_min
        self.replication_max = replication_max
        self._session = session or retrying_session(retries)

    def __repr__(self) -> str:
        return f"ClusterStore({self.kubo.api_url!r}, {self.cluster_url!r})"

    # -- transport --------------------------------------------------------------------

    def _request(
        self, method: str, path: str, params: Mapping[str, str] | None = None, stream: bool = False
    ) -> requests.Response:
        """One REST call (the session retries transient failures); errors mapped."""
        url = f"{self.cluster_url}{path}"
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                stream=stream,
                timeout=(min(CONNECT_TIMEOUT_SECONDS, self.timeout), self.timeout),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise StoreUnavailable(
                f"cannot reach IPFS Cluster at {self.cluster_url}: {type(exc).__name__}"
            ) from None
        except requests.RequestException as exc:
            raise StoreUnavailable(f"IPFS Cluster {method} {path} failed: {exc}") from None
        if response.status_code < 300:
            return response
        raise self._error_for(method, path, response)

    @staticmethod
    def _error_for(method: str, path: str, response: requests.Response) -> KinoitError:
        try:
            payload = response.json()
            message = str(payload.get("message", "")) if isinstance(payload, dict) else ""
        except ValueError:
            message = response.text[:200].strip()
        finally:
            response.close()
        status = response.status_code
        if status == 404 or "not found" in message.lower():
            return NotFound(f"IPFS Cluster {method} {path}: {message or 'not found'}")
        if status == 400:
            return InvalidParameter("cluster", message or "bad request")
        return StoreUnavailable(f"IPFS Cluster {method} {path} failed ({status}): {message}")

    # -- pins -------------------------------------------------------------------------

    def pin_add(
        self,
        cid: str,
        *,
        name: str = "",
        expire_in: float | None = None,
        replication_min: int | None = None,
        replication_max: int | None = None,
    ) -> Pin:
        """Pin through Cluster with a name, replication range and optional expiry."""
        root = parse_cid(cid).to_v1()
        if expire_in is not None and not expire_in > 0:
            raise InvalidParameter("expire_in", f"must be a positive number, got {expire_in}")
        expires_at = None if expire_in is None else time.time() + expire_in
        query = pin_query(
            name=name,
            expires_at=expires_at,
            replication_min=self.replication_min if replication_min is None else replication_min,
            replication_max=self.replication_max if replication_max is None else replication_max,
        )
        response = self._request("POST", f"/pins/{root}", query)
        try:
            return pin_from_json(response.json())
        except (ValueError, KinoitError):
            return Pin(str(root), name, None if expires_at is None else float(int(expires_at)))

    def pin_rm(self, cid: str) -> None:
        """Unpin through Cluster (NotFound when it is not pinned)."""
        root = parse_cid(cid).to_v1()
        self._request("DELETE", f"/pins/{root}")

    def pin_ls(self) -> list[Pin]:
        """Every live pin of the Cluster pinset, in CID order."""
        response = self._request("GET", "/allocations", {"filter": "pin"}, stream=True)
        now = time.time()
        pins = []
        with response:
            for item in _json_stream(response):
                pin = pin_from_json(item)
                if pin.expires_at is None or pin.expires_at > now:
                    pins.append(pin)
        return sorted(pins, key=lambda p: p.cid)

    def status(self, cid: str) -> PinStatus:
        """The pin's status on every Cluster peer (``pinned``, ``pinning``, ``pin_error``…)."""
        root = parse_cid(cid).to_v1()
        info = self._request("GET", f"/pins/{root}").json()
        peers = {}
        for peer, entry in (info.get("peer_map") or {}).items():
            label = entry.get("peername") or peer
            peers[str(label)] = str(entry.get("status", "unknown"))
        return PinStatus(str(root), str(info.get("name") or ""), peers)

    # -- data: Kubo, then a Cluster pin -----------------------------------------------

    def add(self, source: IO[bytes] | Path, *, pin: bool = True, name: str = "") -> str:
        cid = self.kubo.add(source, pin=False)
        if pin:
            self.pin_add(cid, name=name)
        return cid

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "") -> str:
        cid = self.kubo.add_bytes(data, pin=False)
        if pin:
            self.pin_add(cid, name=name)
        return cid

    def cat(self, cid: str) -> Iterator[bytes]:
        return self.kubo.cat(cid)

    def get_file(self, cid: str, dest: Path) -> Path:
        return self.kubo.get_file(cid, dest)

    def dag_put(self, value: Any, *, pin: bool = False) -> str:
        cid = self.kubo.dag_put(value, pin=False)
        if pin:
            self.pin_add(cid)
        return cid

    def dag_get(self, cid: str) -> Any:
        return self.kubo.dag_get(cid)

    def block_get(self, cid: str) -> bytes:
        return self.kubo.block_get(cid)

    def block_put(self, data: bytes, *, codec: int = RAW) -> str:
        return self.kubo.block_put(data, codec=codec)

    def has(self, cid: str) -> bool:
        return self.kubo.has(cid)

    def gc(self, *, min_age: float = 0.0) -> int:
        """Collect the local Kubo node (Cluster itself drops expired pins)."""
        return self.kubo.gc(min_age=min_age)

    def car_export(self, root: str, out: IO[bytes]) -> None:
        self.kubo.car_export(root, out)

    def car_import(self, source: IO[bytes], *, pin: bool = True) -> list[str]:
        roots = self.kubo.car_import(source, pin=False)
        if pin:
            for root in roots:
                self.pin_add(root)
        return roots


def _json_stream(response: requests.Response) -> Iterator[dict[str, Any]]:
    """Objects of a Cluster streaming answer (one JSON value per line, or one array)."""
    for line in response.iter_lines():
        line = line.strip()
        if not line:
            continue
        value = json.loads(line)
        if isinstance(value, list):
            yield from (v for v in value if isinstance(v, dict))
        elif isinstance(value, dict):
            yield value
