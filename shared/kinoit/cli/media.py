"""CLI commands of the media group: one subcommand per stage, on local files.

Every command prints JSON on stdout. ``compare`` exits 0 on a match, 1 on a
mismatch and 2 on an error (as every command does on an error).
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import load_settings
from kinoit.errors import InvalidParameter
from kinoit.media import (
    ALGORITHM,
    DEFAULT_SPLIT_MODE,
    compare_checksums,
    load_ladder,
    load_split,
    make_clip,
    make_thumbnail,
    probe,
    split_video,
    transcode_segment,
)
from kinoit.media.checksum import VERIFIER, checksums, compare_signatures, video_signature
from kinoit.media.merge_job import merge_job, rendition_segments
from kinoit.media.signature import Signature
from kinoit.media.split import SEGMENTS_JSON, SPLIT_MODES
from kinoit.media.thumbnail import DEFAULT_THUMBNAIL_WIDTH

EXIT_MISMATCH = 1


def _print(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _probe(args: argparse.Namespace) -> int:
    _print(probe(args.file, settings=load_settings()).to_json())
    return 0


def _split(args: argparse.Namespace) -> int:
    result = split_video(
        args.file, args.outdir, seconds=args.seconds, mode=args.mode, settings=load_settings()
    )
    doc = result.to_json()
    doc["manifest"] = str(result.manifest)
    _print(doc)
    return 0


def _fps(text: str) -> Fraction:
    """A positive frame rate such as 25 or 30000/1001."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a frame rate like 30000/1001, got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"frame rate must be positive, got {text!r}")
    return value


def _input(text: str) -> str:
    """An input file path, made absolute: ffmpeg reads ``concat:x``, ``http:x`` or
    ``pipe:`` as protocols, never a path that starts with ``/``."""
    if not text or "\x00" in text:
        raise argparse.ArgumentTypeError("expected a file path")
    return str(Path(text).absolute())


def _frame_range(text: str) -> tuple[int, int]:
    try:
        first, end = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected FIRST:END frame numbers, got {text!r}"
        ) from None
    return first, end


def _segment_context(segment: Path) -> dict[str, Any]:
    """start_frame, fps and frame_range of a segment that sits in a split directory."""
    manifest = segment.parent / SEGMENTS_JSON
    if not manifest.is_file():
        return {}
    split = load_split(manifest)
    for seg in split.segments:
        if seg.path.name == segment.name:
            return {
                "start_frame": seg.start_frame,
                "fps": split.fps,
                "frame_range": seg.frame_range,
            }
    return {}


def _transcode(args: argparse.Namespace) -> int:
    segment = Path(args.segment)
    context = _segment_context(segment)
    start = args.start_frame if args.start_frame is not None else context.get("start_frame", 0)
    fps = args.fps or context.get("fps")
    frame_range = args.frame_range or context.get("frame_range")
    out = transcode_segment(
        segment, load_ladder(args.ladder), args.outdir, fps=fps, start_frame=start,
        frame_range=frame_range, settings=load_settings(),
    )  # fmt: skip
    _print({name: r.to_json() for name, r in out.items()})
    return 0


def _thumbnail(args: argparse.Namespace) -> int:
    frame_range = args.frame_range or _segment_context(Path(args.video)).get("frame_range")
    path = make_thumbnail(
        args.video, args.out, width=args.width, frame_range=frame_range, settings=load_settings()
    )
    _print({"path": str(path), "bytes": path.stat().st_size})
    return 0


def _checksum(args: argparse.Namespace) -> int:
    frame_range = args.frame_range or _segment_context(Path(args.video)).get("frame_range")
    sig = video_signature(args.video, load_settings(), frame_range=frame_range)
    _print({"algorithm": ALGORITHM, "verifier": VERIFIER, "frames": checksums(sig),
            "signature": sig.to_text()})  # fmt: skip
    return 0


def _side(path: str) -> Signature | list[str]:
    """A video's signature, or what a JSON file written by `kinoit checksum` holds
    (its signature; only its hashes if it is from a kinoit without signatures)."""
    p = Path(path)
    if p.suffix == ".json" and p.is_file():
        try:
            doc = json.loads(p.read_text("utf-8"))
            frames = doc["frames"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidParameter("checksum", f"{p}: not a kinoit checksum file: {exc}") from None
        if doc.get("algorithm") != ALGORITHM or not isinstance(frames, list):
            raise InvalidParameter("checksum", f"{p}: expected algorithm {ALGORITHM}")
        if "signature" in doc:
            return Signature.from_text(doc["signature"])
        return [str(f) for f in frames]
    return video_signature(p, load_settings())


def _compare(args: argparse.Namespace) -> int:
    ref, cand = _side(args.ref), _side(args.cand)
    if isinstance(ref, Signature) and isinstance(cand, Signature):
        result = compare_signatures(ref, cand)
    else:  # a hashes-only file: only the frame count and content tests can run
        as_hashes = [checksums(s) if isinstance(s, Signature) else s for s in (ref, cand)]
        result = compare_checksums(as_hashes[0], as_hashes[1])
    _print(result.to_json())
    return 0 if result.verdict == "match" else EXIT_MISMATCH


def _merge(args: argparse.Namespace) -> int:
    split = load_split(args.splitdir)
    stems = [s.path.stem for s in split.segments]
    renditions = rendition_segments(args.renditions, stems)
    thumbs = None
    if args.thumbnails:
        tdir = Path(args.thumbnails)
        thumbs = []
        for stem in stems:
            found = [tdir / f"{stem}{ext}" for ext in (".jpg", ".webp", ".png")]
            match = next((p for p in found if p.is_file()), None)
            if match is None:
                raise InvalidParameter("thumbnails", f"no thumbnail {stem}.jpg|webp|png in {tdir}")
            thumbs.append(match)
    result = merge_job(
        renditions, split.audio, args.outdir, fps=split.fps,
        segment_frames=[s.frames for s in split.segments], thumbnails=thumbs,
        hls=not args.no_hls, settings=load_settings(),
    )  # fmt: skip
    _print(result.to_json())
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def _synth(args: argparse.Namespace) -> int:
    width, height = args.size
    path = make_clip(
        args.out, seconds=args.seconds, fps=args.fps, width=width, height=height,
        audio=not args.no_audio, rotation=args.rotation, vfr=args.vfr, gop=args.gop,
    )  # fmt: skip
    _print({"path": str(path), "bytes": path.stat().st_size})
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands to the parser."""
    p = sub.add_parser("probe", help="print what a video contains (JSON)")
    p.add_argument("file", type=_input)
    p.set_defaults(handler=_probe)

    p = sub.add_parser("split", help="cut a video into frame-exact segments + audio")
    p.add_argument("file", type=_input)
    p.add_argument("outdir")
    p.add_argument("--seconds", type=float, default=1.0, help="segment length (default 1)")
    p.add_argument("--mode", choices=SPLIT_MODES, default=DEFAULT_SPLIT_MODE)
    p.set_defaults(handler=_split)

    p = sub.add_parser("transcode", help="render every ladder rung of one segment")
    p.add_argument("segment", type=_input)
    p.add_argument("outdir")
    p.add_argument("--ladder", default="default", help="'default' or a YAML/JSON file")
    p.add_argument(
        "--start-frame", type=int, help="first frame in the source (default: segments.json)"
    )
    p.add_argument("--fps", type=_fps, help="frame rate as a rational, e.g. 30000/1001")
    p.add_argument("--frame-range", type=_frame_range, help="copy mode trim FIRST:END")
    p.set_defaults(handler=_transcode)

    p = sub.add_parser("thumbnail", help="write a poster frame (.jpg/.webp/.png)")
    p.add_argument("video", type=_input)
    p.add_argument("out")
    p.add_argument("--width", type=int, default=DEFAULT_THUMBNAIL_WIDTH)
    p.add_argument("--frame-range", type=_frame_range, help="only frames FIRST:END")
    p.set_defaults(handler=_thumbnail)

    p = sub.add_parser("checksum", help="perceptual hash of every frame + signature (JSON)")
    p.add_argument("video", type=_input)
    p.add_argument("--frame-range", type=_frame_range, help="only frames FIRST:END")
    p.set_defaults(handler=_checksum)

    p = sub.add_parser("compare", help="verify CAND against REF (videos or checksum files)")
    p.add_argument("ref", type=_input)
    p.add_argument("cand", type=_input)
    p.set_defaults(handler=_compare)

    p = sub.add_parser("merge", help="rendition segments -> MP4 per rung + HLS (+ storyboard)")
    p.add_argument("splitdir", type=_input, help="directory with segments.json (and audio)")
    p.add_argument(
        "renditions", type=_input, help="directory with one subdirectory of segments per rung"
    )
    p.add_argument("outdir")
    p.add_argument("--thumbnails", help="directory of per-segment thumbnails for a storyboard")
    p.add_argument("--no-hls", action="store_true")
    p.set_defaults(handler=_merge)

    p = sub.add_parser("synth", help="generate a test clip (pattern + tone)")
    p.add_argument("out")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--fps", default="25")
    p.add_argument("--size", type=_size, default=(320, 180), help="WIDTHxHEIGHT")
    p.add_argument("--no-audio", action="store_true")
    p.add_argument("--rotation", type=int, choices=(0, 90, 180, 270))
    p.add_argument("--vfr", action="store_true", help="variable frame rate")
    p.add_argument("--gop", type=int, help="keyframe interval in frames")
    p.set_defaults(handler=_synth)
