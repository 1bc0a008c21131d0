"""IPFS Cluster pins: the requests we build, and the HTTP exchange against a scripted peer.

The pure request building and the error mapping run against a scripted loopback
server (answers a real peer will not give on demand); the rest against a real
one-peer IPFS Cluster driving the session's Kubo (skipped when scripts/install
could not build ipfs-cluster-service).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import InvalidParameter, NotFound, StoreUnavailable
from kinoit.store.cid import CID
from kinoit.store.cluster import (
    ClusterStore,
    format_expire_at,
    parse_expire_at,
    pin_from_json,
    pin_query,
)
from kinoit.store.embedded import EmbeddedStore
from kinoit.store.kubo import KuboStore

from .conftest import Cluster
from .fake_http import Answer, Request, fake_server

CID_V1 = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_pin_query_with_name_range_and_expiry() -> None:
    query = pin_query(
        name="job-1", expires_at=1_800_000_000.7, replication_min=2, replication_max=3
    )
    assert query == {
        "name": "job-1",
        "mode": "recursive",
        "replication-min": "2",
        "replication-max": "3",
        "expire-at": "2027-01-15T08:00:00Z",
    }
    assert "expire-at" not in pin_query()
    assert pin_query()["replication-min"] == "-1"


@pytest.mark.parametrize(("low", "high"), [(0, 1), (-2, -1), (3, 2), (-1, 2)])
def test_pin_query_refuses_bad_ranges(low: int, high: int) -> None:
    with pytest.raises(InvalidParameter):
        pin_query(replication_min=low, replication_max=high)


def test_expire_at_round_trip_and_go_zero_time() -> None:
    assert parse_expire_at(format_expire_at(1_800_000_000)) == 1_800_000_000
    assert parse_expire_at("0001-01-01T00:00:00Z") is None
    assert parse_expire_at("2027-01-15T08:00:00.123456789Z") == pytest.approx(1_800_000_000.123456)
    assert parse_expire_at("2027-01-15T09:00:00+01:00") == 1_800_000_000
    assert parse_expire_at("") is None


def test_pin_from_json_accepts_both_cid_forms() -> None:
    pin = pin_from_json({"cid": CID_V1, "name": "n", "expire_at": "2027-01-15T08:00:00Z"})
    assert (pin.cid, pin.name, pin.expires_at) == (CID_V1, "n", 1_800_000_000.0)
    assert pin_from_json({"cid": {"/": CID_V1}}).cid == CID_V1


def _cluster(url: str) -> ClusterStore:
    # The Kubo side is unused by pin calls; a closed port proves nothing reaches it.
    return ClusterStore(KuboStore("http://127.0.0.1:9", retries=0), url, retries=1)


def test_pin_add_rm_ls_status_over_http() -> None:
    expires = time.time() + 3600

    def respond(request: Request) -> Answer:
        if request.method == "POST" and request.path == f"/pins/{CID_V1}":
            return Answer(
                200,
                {
                    "cid": CID_V1,
                    "name": request.query["name"][0],
                    "expire_at": request.query["expire-at"][0],
                },
            )
        if request.method == "DELETE":
            return Answer(200, {"cid": CID_V1})
        if request.path == "/allocations":
            return Answer(
                lines=[
                    {"cid": CID_V1, "name": "live", "expire_at": "0001-01-01T00:00:00Z"},
                    {
                        "cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                        "name": "old",
                        "expire_at": "2001-01-01T00:00:00Z",
                    },
                ]
            )
        if request.path == f"/pins/{CID_V1}":
            return Answer(
                200,
                {
                    "cid": CID_V1,
                    "name": "live",
                    "peer_map": {
                        "p1": {"peername": "a", "status": "pinned"},
                        "p2": {"peername": "b", "status": "pinning"},
                    },
                },
            )
        return Answer(404, {"code": 404, "message": "not found"})

    with fake_server(respond) as server:
        store = _cluster(server.url)
        pin = store.pin_add(
            CID_V1, name="job-1", expire_in=3600, replication_min=1, replication_max=2
        )
        assert pin.name == "job-1"
        assert pin.expires_at is not None and abs(pin.expires_at - expires) < 5
        sent = server.requests[-1]
        assert sent.query["replication-min"] == ["1"] and sent.query["replication-max"] == ["2"]
        assert sent.query["mode"] == ["recursive"]
        assert [p.name for p in store.pin_ls()] == ["live"]  # the expired one is hidden
        status = store.status(CID_V1)
        assert status.peers == {"a": "pinned", "b": "pinning"}
        assert not status.pinned_everywhere
        store.pin_rm(CID_V1)
        assert server.requests[-1].method == "DELETE"


def test_cluster_errors_are_mapped() -> None:
    def respond(request: Request) -> Answer:
        if request.method == "DELETE":
            return Answer(404, {"code": 404, "message": "pin not found"})
        if request.method == "POST":
            return Answer(400, {"code": 400, "message": "bad replication"})
        return Answer(503, {"code": 503, "message": "no leader"})

    with fake_server(respond) as server:
        store = _cluster(server.url)
        with pytest.raises(NotFound):
            store.pin_rm(CID_V1)
        with pytest.raises(InvalidParameter, match="bad replication"):
            store.pin_add(CID_V1)
        with pytest.raises(StoreUnavailable, match="no leader"):
            store.pin_ls()
        assert [r.path for r in server.requests].count("/allocations") == 2  # one retry


def test_cluster_down_is_store_unavailable() -> None:
    store = _cluster("http://127.0.0.1:9")
    with pytest.raises(StoreUnavailable, match="cannot reach IPFS Cluster"):
        store.pin_ls()


# -- a real IPFS Cluster peer -------------------------------------------------------------


@pytest.fixture
def cluster_store(cluster: Cluster) -> ClusterStore:
    return ClusterStore(KuboStore(cluster.kubo_api_url, timeout=30), cluster.api_url, timeout=30)


def wait_pinned(store: ClusterStore, cid: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not store.status(cid).pinned_everywhere:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{cid} not pinned after {timeout}s: {store.status(cid)}")
        time.sleep(0.1)


@pytest.mark.kubo
def test_real_cluster_pins_adds_and_dags(cluster_store: ClusterStore, kubo: Any) -> None:
    data = b"pinned through cluster\n"
    cid = cluster_store.add_bytes(data, name="clip-1")
    wait_pinned(cluster_store, cid)
    pins = {p.cid: p for p in cluster_store.pin_ls()}
    assert pins[cid].name == "clip-1" and pins[cid].expires_at is None
    assert b"".join(cluster_store.cat(cid)) == data
    # Cluster pinned it in Kubo, not kinoit's add: Kubo's own pin list shows it.
    assert cid in kubo.cli("pin", "ls", "--type=recursive").decode()
    manifest = cluster_store.dag_put({"clip": CID.parse(cid)}, pin=True)
    wait_pinned(cluster_store, manifest)
    assert cluster_store.dag_get(manifest) == {"clip": CID.parse(cid)}


@pytest.mark.kubo
def test_real_cluster_expiry_replication_and_unpin(cluster_store: ClusterStore) -> None:
    cid = cluster_store.add_bytes(b"short lived\n", pin=False)
    pin = cluster_store.pin_add(
        cid, name="job-9", expire_in=3600, replication_min=1, replication_max=1
    )
    assert pin.name == "job-9"
    assert pin.expires_at is not None and abs(pin.expires_at - (time.time() + 3600)) < 60
    listed = {p.cid: p for p in cluster_store.pin_ls()}[cid]
    assert listed.expires_at == pin.expires_at
    cluster_store.pin_rm(cid)
    assert cid not in {p.cid for p in cluster_store.pin_ls()}
    with pytest.raises(NotFound, match="not part of the pinset"):
        cluster_store.pin_rm(cid)


@pytest.mark.kubo
def test_real_cluster_car_import_pins_the_roots(
    cluster_store: ClusterStore, tmp_path: Path
) -> None:
    source = EmbeddedStore(tmp_path / "s")
    data = b"from a CAR\n" * 50_000
    cid = source.add_bytes(data)
    car = io.BytesIO()
    source.car_export(cid, car)
    assert cluster_store.car_import(io.BytesIO(car.getvalue())) == [cid]
    wait_pinned(cluster_store, cid)
    assert b"".join(cluster_store.cat(cid)) == data


@pytest.mark.kubo
def test_real_cluster_refuses_a_bad_cid(cluster_store: ClusterStore) -> None:
    response = cluster_store._session.post(f"{cluster_store.cluster_url}/pins/bafybad", timeout=10)
    assert response.status_code == 400
    with pytest.raises(InvalidParameter, match="decoding Cid"):
        cluster_store._request("POST", "/pins/bafybad")
