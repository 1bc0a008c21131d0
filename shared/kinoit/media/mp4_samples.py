"""An MP4's video samples counted from its sample table, without reading the samples.

merge proves a rung's MP4 holds every frame the checksum stage verified by counting
its video samples. Demuxing every packet to count them reads the whole file (a
2-hour 1080p rung: gigabytes) for what the ``moov`` box already states: the sample
table lists each sample's size (``stsz``), the chunks that hold them (``stsc``) and
where each chunk lies (``stco``/``co64``). :func:`video_sample_count` reads only that
table and checks that every chunk of video samples lies inside the file's ``mdat``,
so a file cut short, or a table naming bytes it does not hold, fails (MediaError).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from kinoit.errors import MediaError

# Boxes that hold other boxes on the way to a track's sample table.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
# A moov larger than this is not one merge writes (a 2-hour film's is a few MB).
_MAX_MOOV = 1 << 30


def _boxes(data: memoryview, where: str) -> Iterator[tuple[bytes, memoryview]]:
    """(type, payload) of each box in ``data`` (MediaError on a box that overruns it)."""
    at = 0
    while at < len(data):
        if len(data) - at < 8:
            raise MediaError(f"{where}: a truncated box header")
        size, kind = struct.unpack_from(">I4s", data, at)
        head = 8
        if size == 1:
            if len(data) - at < 16:
                raise MediaError(f"{where}: a truncated box header")
            (size,) = struct.unpack_from(">Q", data, at + 8)
            head = 16
        elif size == 0:
            size = len(data) - at
        if size < head or at + size > len(data):
            raise MediaError(f"{where}: box {kind!r} overruns its parent")
        yield bytes(kind), data[at + head : at + size]
        at += size


def _top_level(path: Path) -> tuple[bytes, tuple[int, int]]:
    """The ``moov`` box's payload and the (start, end) of the ``mdat`` payload."""
    moov, mdat = None, None
    size_of_file = path.stat().st_size
    with open(path, "rb") as f:
        at = 0
        while at < size_of_file:
            f.seek(at)
            head = f.read(16)
            if len(head) < 8:
                raise MediaError(f"{path}: a truncated box header")
            size, kind = struct.unpack_from(">I4s", head)
            skip = 8
            if size == 1:
                if len(head) < 16:
                    raise MediaError(f"{path}: a truncated box header")
                (size,) = struct.unpack_from(">Q", head, 8)
                skip = 16
            elif size == 0:
                size = size_of_file - at
            if size < skip or at + size > size_of_file:
                raise MediaError(f"{path}: box {kind!r} runs past the end of the file")
            if kind == b"moov":
                if size > _MAX_MOOV or moov is not None:
                    raise MediaError(f"{path}: an unexpected moov box")
                f.seek(at + skip)
                moov = f.read(size - skip)
            elif kind == b"mdat" and mdat is None:
                mdat = (at + skip, at + size)
            at += size
    if moov is None or mdat is None:
        raise MediaError(f"{path}: not an MP4 with a moov and an mdat box")
    return moov, mdat


def _table(payload: memoryview, fmt: str, width: int, where: str) -> array[int]:
    """A full box's entry table (version/flags, an entry count, then entries of
    ``width`` bytes, each read as integers of type ``fmt``), flat."""
    if len(payload) < 8:
        raise MediaError(f"{where}: a truncated table")
    (count,) = struct.unpack_from(">I", payload, 4)
    raw = payload[8 : 8 + count * width]
    if len(raw) != count * width:
        raise MediaError(f"{where}: a table shorter than its entry count")
    table = array(fmt)
    table.frombytes(raw)
    if sys.byteorder == "little":
        table.byteswap()
    return table


def _handler(trak: memoryview, where: str) -> bytes:
    for kind, payload in _boxes(trak, where):
        if kind == b"mdia":
            for sub, body in _boxes(payload, where):
                if sub == b"hdlr" and len(body) >= 12:
                    return bytes(body[8:12])
    return b""


def _stbl(trak: memoryview, where: str) -> dict[bytes, memoryview]:
    found: dict[bytes, memoryview] = {}

    def walk(data: memoryview) -> None:
        for kind, payload in _boxes(data, where):
            if kind in _CONTAINERS:
                walk(payload)
            elif kind in (b"stsz", b"stsc", b"stco", b"co64", b"stts", b"ctts", b"mdhd"):
                found[kind] = payload

    walk(trak)
    return found


def video_sample_count(path: str | Path) -> int:
    """The number of samples of the first video track of the MP4 ``path``, each one's
    bytes checked to lie inside the file's ``mdat`` (MediaError otherwise)."""
    stbl, (mdat_start, mdat_end) = _video_stbl(Path(path))
    return _checked_samples(stbl, mdat_start, mdat_end, str(path))


def _video_stbl(path: Path) -> tuple[dict[bytes, memoryview], tuple[int, int]]:
    """The tables of the first video track's ``stbl`` (and its ``mdhd``), and the
    (start, end) of the ``mdat`` payload."""
    moov, mdat = _top_level(path)
    where = str(path)
    for kind, trak in _boxes(memoryview(moov), where):
        if kind == b"trak" and _handler(trak, where) == b"vide":
            return _stbl(trak, where), mdat
    raise MediaError(f"verify: {path} has no video stream")


def _checked_samples(
    stbl: dict[bytes, memoryview], mdat_start: int, mdat_end: int, where: str
) -> int:
    if b"stsz" not in stbl or b"stsc" not in stbl or not (b"stco" in stbl or b"co64" in stbl):
        raise MediaError(f"{where}: the video track has no complete sample table")
    stsz = stbl[b"stsz"]
    if len(stsz) < 12:
        raise MediaError(f"{where}: a truncated stsz")
    uniform, count = (int(v) for v in struct.unpack_from(">II", stsz, 4))
    if uniform:
        sizes: array[int] | None = None
    else:
        raw = stsz[12 : 12 + 4 * count]
        if len(raw) != 4 * count:
            raise MediaError(f"{where}: an stsz shorter than its sample count")
        sizes = array("I")
        sizes.frombytes(raw)
        if sys.byteorder == "little":
            sizes.byteswap()
    offsets = (
        _table(stbl[b"co64"], "Q", 8, where)
        if b"co64" in stbl
        else _table(stbl[b"stco"], "I", 4, where)
    )
    runs = _table(stbl[b"stsc"], "I", 12, where)  # (first chunk, samples, description)...
    sample = 0
    for r in range(0, len(runs), 3):
        first, per_chunk = runs[r] - 1, runs[r + 1]
        last = runs[r + 3] - 1 if r + 3 < len(runs) else len(offsets)
        if not 0 <= first < last <= len(offsets) or per_chunk == 0:
            raise MediaError(f"{where}: an stsc that does not fit the chunk table")
        for chunk in range(first, last):
            end = sample + per_chunk
            if end > count:
                raise MediaError(f"{where}: chunks hold more samples than stsz lists")
            size = uniform * per_chunk if sizes is None else sum(sizes[sample:end])
            if offsets[chunk] < mdat_start or offsets[chunk] + size > mdat_end:
                raise MediaError(f"{where}: video chunk {chunk} lies outside the mdat box")
            sample = end
    if sample != count:
        raise MediaError(f"{where}: chunks hold {sample} samples, stsz lists {count}")
    return count


def video_presentation_times(path: str | Path) -> tuple[int, list[int]]:
    """The track timescale and every video sample's presentation time in it, in
    decode order, from the time table (``stts``) and the composition offsets
    (``ctts``) of the first video track."""
    stbl, _ = _video_stbl(Path(path))
    where = str(path)
    mdhd = stbl.get(b"mdhd")
    if mdhd is None or len(mdhd) < 24:
        raise MediaError(f"{where}: the video track has no media header")
    (timescale,) = struct.unpack_from(">I", mdhd, 20 if mdhd[0] == 1 else 12)
    if b"stts" not in stbl or not timescale:
        raise MediaError(f"{where}: the video track has no time table")
    deltas = _table(stbl[b"stts"], "I", 8, where)
    times, t = [], 0
    for i in range(0, len(deltas), 2):
        for _ in range(deltas[i]):
            times.append(t)
            t += deltas[i + 1]
    if b"ctts" in stbl:
        offsets = _table(stbl[b"ctts"], "I", 8, where)
        signed = stbl[b"ctts"][0] == 1
        n = 0
        for i in range(0, len(offsets), 2):
            shift = offsets[i + 1] - (1 << 32 if signed and offsets[i + 1] >> 31 else 0)
            for _ in range(offsets[i]):
                if n >= len(times):
                    raise MediaError(f"{where}: ctts lists more samples than stts")
                times[n] += shift
                n += 1
    return int(timescale), times


def check_timeline(path: str | Path, fps: Fraction) -> None:
    """MediaError unless the video frames of the MP4 ``path``, in presentation order,
    are one every 1/``fps`` s, each within a quarter frame of its place (a timescale
    that cannot hold 1/fps exactly rounds): no two at one time, none missing between.

    The checksum judges each segment's frames and their timing within the segment;
    how the segments line up once merged is only seen here."""
    timescale, times = video_presentation_times(path)
    times.sort()
    step = Fraction(timescale) / fps
    for n, t in enumerate(times):
        if abs(t - times[0] - n * step) > step / 4:
            at = float(Fraction(t - times[0], timescale))
            raise MediaError(
                f"verify: {path}: frame {n} (in presentation order) is at {at:.3f}s, "
                f"not {float(n / fps):.3f}s: the merged segments do not line up"
            )
