"""Is this the start of a video file? A look at the first bytes, no ffmpeg.

The upload endpoint runs on orchestrate, whose image has no ffmpeg: it refuses a
file that is plainly not a video (a text file, an image, an archive) before
storing anything, from the container's signature in its first bytes. It cannot
tell a broken video from a good one; split probes the file properly and fails
the job with ``NotAVideo`` when it has no decodable video stream.
"""

from __future__ import annotations

from typing import Final

# How many leading bytes the signatures below need (three TS packets of 192 bytes).
SNIFF_BYTES: Final = 1024

# ISO base media brands of still images (HEIF, AVIF, JPEG 2000): an "ftyp" box,
# but not a video.
_IMAGE_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"avif", b"jp2 "})
# QuickTime files may start with one of these atoms instead of "ftyp".
_QUICKTIME_ATOMS: Final = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_PREFIXES: Final = (
    (b"\x1a\x45\xdf\xa3", "matroska"),  # EBML header: Matroska and WebM
    (b"FLV\x01", "flv"),
    (b"OggS", "ogg"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf"),  # ASF / WMV header GUID
    (b"nut/multimedia container", "nut"),
    (b"YUV4MPEG2 ", "yuv4mpegpipe"),
    (b"\x00\x00\x01\xba", "mpeg"),  # MPEG program stream pack header
    (b"\x00\x00\x01\xb3", "mpegvideo"),  # MPEG-1/2 elementary stream sequence header
)


def _transport_stream(head: bytes, packet: int, offset: int) -> bool:
    """Sync bytes (0x47) at the start of three consecutive packets (or of every
    packet there is, for a file shorter than three)."""
    starts = range(offset, min(len(head), offset + 3 * packet), packet)
    return len(starts) > 0 and all(head[i] == 0x47 for i in starts)


def container_of(head: bytes) -> str | None:
    """The container format ``head`` (a file's first bytes, ideally
    :data:`SNIFF_BYTES` of them) starts with, or None when it is none kinoit
    knows to hold video."""
    for prefix, name in _PREFIXES:
        if head.startswith(prefix):
            return name
    box = head[4:8]
    if box == b"ftyp":
        return None if head[8:12] in _IMAGE_BRANDS else "mp4"
    if box in _QUICKTIME_ATOMS:
        return "mov"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if len(head) >= 188 and _transport_stream(head, 188, 0):
        return "mpegts"
    if len(head) >= 192 and _transport_stream(head, 192, 4):
        return "m2ts"
    return None
