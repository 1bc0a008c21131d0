"""IPFS Cluster pins: the requests we build, and the HTTP exchange against a scripted peer.

No IPFS Cluster binary is installed here (see docs), so the REST exchange is checked
against a loopback server that answers like Cluster's REST API does.
"""

from __future__ import annotations

import time

import pytest
from kinoit.errors import InvalidParameter, NotFound, StoreUnavailable
from kinoit.store.cluster import (
    ClusterStore,
    format_expire_at,
    parse_expire_at,
    pin_from_json,
    pin_query,
)
from kinoit.store.kubo import KuboStore

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
