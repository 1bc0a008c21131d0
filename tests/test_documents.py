"""The paged DAG-CBOR documents, against the real embedded store."""

from __future__ import annotations

from pathlib import Path

from kinoit.documents import (
    MergePlan,
    SegmentRef,
    read_pages,
    read_split_index,
    write_merge_plan,
    write_pages,
    write_split_index,
)
from kinoit.store import EmbeddedStore
from kinoit.store.cid import CID


def test_pages_keep_order_and_size(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, durable=False)
    pages = write_pages(store, list(range(7)), 3)
    assert len(pages) == 3 and all(isinstance(p, CID) for p in pages)
    assert [len(store.dag_get(str(p))) for p in pages] == [3, 3, 1]
    assert list(read_pages(store, pages)) == list(range(7))
    assert write_pages(store, [], 3) == []


def test_split_index_round_trip(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, durable=False)
    segments = [
        SegmentRef(i, store.add_bytes(f"segment {i}".encode(), pin=False), 25 * i, 25 * i + 25)
        for i in range(3)
    ]
    audio = store.add_bytes(b"audio", pin=False)
    cid = write_split_index(store, segments, {"fps": "25/1"}, audio)
    index = store.dag_get(cid)
    assert index["count"] == 3 and index["audio"] == CID.parse(audio)
    assert index["source"] == {"fps": "25/1"}
    assert list(read_split_index(store, cid)) == segments
    assert segments[1].frames == 25


def test_merge_plan_round_trip(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, durable=False)
    entries = [{"index": i} for i in range(3)]
    cid = write_merge_plan(store, entries, {"fps": "25/1"}, None, "1", {"name": "tiny"})
    plan = MergePlan.from_dag(store.dag_get(cid))
    assert plan.audio is None and plan.segment_seconds == "1"
    assert plan.ladder == {"name": "tiny"} and plan.source == {"fps": "25/1"}
    assert list(read_pages(store, plan.pages)) == entries


def test_a_document_that_is_not_a_split_index_is_an_invalid_index(tmp_path: Path) -> None:
    import pytest
    from kinoit.errors import InvalidParameter

    store = EmbeddedStore(tmp_path, durable=False)
    not_pages = store.dag_put({"pages": "nope"})
    bad_entry = store.dag_put({"pages": [CID.parse(store.dag_put([{"index": "x"}]))]})
    for cid in (store.dag_put([1, 2]), not_pages, bad_entry):
        with pytest.raises(InvalidParameter) as info:
            list(read_split_index(store, cid))
        assert info.value.field == "index"


def test_a_page_that_is_not_a_list_of_entries_is_named(tmp_path: Path) -> None:
    import pytest
    from kinoit.errors import InvalidParameter

    store = EmbeddedStore(tmp_path, durable=False)
    good = CID.parse(store.dag_put([{"index": 0}]))
    for bad in (
        store.dag_put({"index": 1}),
        store.dag_put([{"index": 1}, 2]),
        store.add_bytes(b"x"),
    ):
        pages = [good, CID.parse(bad)]
        with pytest.raises(InvalidParameter) as info:
            list(read_pages(store, pages, "plan.pages", dict))
        assert info.value.field == "plan.pages[1]"
    assert list(read_pages(store, [good, good], "plan.pages", dict)) == [{"index": 0}] * 2
