"""merge's file adds: the HLS segments, links to the fetched renditions, are not read
and hashed again (their CIDs are known); every other file is added."""

from __future__ import annotations

import os
from pathlib import Path

from kinoit.stages.merge import add_files, fetched_files
from kinoit.store import EmbeddedStore


def test_linked_renditions_keep_their_cid_and_other_files_are_added(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", durable=False)
    rendition = tmp_path / "fetched" / "00000.ts"
    rendition.parent.mkdir()
    rendition.write_bytes(b"segment bytes" * 1000)
    cid = store.add(rendition, pin=False)
    hls = tmp_path / "hls"
    (hls / "720p").mkdir(parents=True)
    os.link(rendition, hls / "720p" / "00000.ts")
    (hls / "720p" / "index.m3u8").write_text("#EXTM3U\n")
    known = fetched_files({"720p": [rendition]}, {"720p": [cid]})
    added = add_files(store, hls, known)
    assert added["720p/00000.ts"] == (cid, rendition.stat().st_size)
    playlist = store.add(hls / "720p" / "index.m3u8", pin=False)
    assert added["720p/index.m3u8"] == (playlist, len("#EXTM3U\n"))
    # the known CID is taken as it is: the linked file is not read again
    marker = store.add_bytes(b"another file", pin=False)
    assert add_files(store, hls, {k: marker for k in known})["720p/00000.ts"][0] == marker
    # without links every file is added: the same CIDs
    assert add_files(store, hls) == added
