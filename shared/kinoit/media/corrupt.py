"""What broken workers produce: a catalogue of corrupted renditions, to prove a verifier.

Each kind writes, from a source file and a segment's frame range, the wrong
frames at a rung's size, encoded like a rendition (H.264) with regular
timestamps, so only the picture and time tests can catch it. The calibration
benchmark and the verification tests build their corpora from it; nothing in
the pipeline uses it.

Kinds: ``src`` takes frames from the whole source at an offset (shifted
seconds, the adjacent second); ``other`` from another video; ``drop`` removes
one frame and keeps the count; ``vf`` applies a filter to the segment's own
frames at the rung's size; ``bsf`` damages the bitstream (decoder garbage).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from kinoit.errors import InvalidParameter
from kinoit.media import ffmpeg

CORRUPTIONS: Final[dict[str, dict[str, Any]]] = {
    "shift -5": {"src": -5}, "shift -3": {"src": -3}, "shift -1": {"src": -1},
    "shift +1": {"src": 1}, "shift +3": {"src": 3}, "shift +5": {"src": 5},
    "adjacent second": {"src": "next"},
    "other video": {"other": True},
    "reversed": {"vf": "reverse"},
    "frozen": {"vf": "loop=loop=-1:size=1:start=0"},
    "half frozen": {"vf": "loop=loop=-1:size=1:start={half}"},
    "duplicated frame": {"vf": "loop=loop=1:size=1:start={half}"},
    "dropped frame (count kept)": {"drop": True},
    "dropped frame": {"vf": "select='not(eq(n\\,{half}))'"},
    "noise": {"vf": "noise=alls=40:allf=t"},
    "heavy noise": {"vf": "noise=alls=100:allf=t"},
    "red/blue swap": {"vf": "colorchannelmixer=rr=0:rb=1:br=1:bb=0"},
    "chroma swap": {"vf": "swapuv"},
    "wrong colours": {"vf": "hue=h=120"},
    "hflip": {"vf": "hflip"},
    "vflip": {"vf": "vflip"},
    "black": {"vf": "drawbox=t=fill:c=black"},
    "inverted": {"vf": "negate"},
    "green decoder frames": {"vf": "lutyuv=y=0:u=0:v=0:enable='between(n,{half},{half}+3)'"},
    "crop-zoom": {"vf": "crop=iw*0.8:ih*0.8,scale={w}:{h}"},
    "blocking garbage": {"vf": "scale=iw/24:ih/24:flags=neighbor,scale={w}:{h}:flags=neighbor"},
    "bitstream damage": {"bsf": True},
    "truncated": {"vf": "trim=end_frame={half}"},
}  # fmt: skip
ENCODE: Final = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-an")
REGULAR: Final = "setpts=N/FRAME_RATE/TB,format=yuv420p"


def _ff(*args: str) -> list[str]:
    return [ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", *args]


def build_corrupt_argvs(
    kind: str, src: Path, other: Path, first: int, frames: int, size: tuple[int, int],
    out: Path,
) -> Iterator[list[str]]:  # fmt: skip
    """The ffmpeg commands that write corruption ``kind`` of source frames
    [first, first + frames) at ``size`` into ``out`` (pure; run them in order)."""
    try:
        spec = CORRUPTIONS[kind]
    except KeyError:
        raise InvalidParameter("kind", f"expected one of {sorted(CORRUPTIONS)}") from None
    w, h = size
    scale = f"scale={w}:{h}:flags=bicubic,setsar=1"
    enc = [*ENCODE, "-fps_mode", "passthrough"]
    if "src" in spec or "other" in spec:
        start = first + (frames if spec.get("src") == "next" else int(spec.get("src", 0)))
        vf = f"trim=start_frame={start}:end_frame={start + frames},{scale},{REGULAR}"
        yield _ff("-i", str(other if "other" in spec else src), "-vf", vf, *enc, str(out))
        return
    if "drop" in spec:
        vf = (
            f"trim=start_frame={first}:end_frame={first + frames + 1},"
            f"select='not(eq(n\\,{frames // 2}))',{scale},{REGULAR}"
        )
        yield _ff("-i", str(src), "-vf", vf, *enc, str(out))
        return
    own = f"trim=start_frame={first}:end_frame={first + frames},setpts=N/FRAME_RATE/TB,{scale}"
    if spec.get("bsf"):
        clean, damaged = out.with_suffix(".clean.ts"), out.with_suffix(".damaged.ts")
        yield _ff("-i", str(src), "-vf", f"{own},format=yuv420p", *enc, "-f", "mpegts", str(clean))
        yield _ff("-i", str(clean), "-c", "copy", "-bsf:v", "noise=amount=300", str(damaged))
        yield _ff("-err_detect", "ignore_err", "-i", str(damaged), "-vf", REGULAR, *enc, str(out))
        return
    vf = spec["vf"].format(half=frames // 2, w=w, h=h)
    keep = "" if "trim" in vf or "select" in vf else f",trim=end_frame={frames}"
    yield _ff("-i", str(src), "-vf", f"{own},{vf}{keep},{REGULAR}", *enc, str(out))


def write_corrupt(
    kind: str, src: Path, other: Path, first: int, frames: int, size: tuple[int, int],
    out: Path, timeout: float = 600.0,
) -> Path:  # fmt: skip
    """Write one corrupted rendition (see :func:`build_corrupt_argvs`) and return ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for argv in build_corrupt_argvs(kind, src, other, first, frames, size, out):
            ffmpeg.run(argv, timeout, what=f"corrupt {kind}")
    finally:
        for temp in (out.with_suffix(".clean.ts"), out.with_suffix(".damaged.ts")):
            temp.unlink(missing_ok=True)
    return out
