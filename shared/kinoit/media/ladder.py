"""Rendition ladders: schema validation and ffmpeg encoder arguments (pure).

A ladder is YAML or JSON::

    name: my-ladder            # optional
    rungs:
      - name: 720p             # [a-z0-9][a-z0-9_-]*, used as a directory name
        codec: h264            # h264 (libx264), hevc (libx265), vp9 (libvpx-vp9), av1 (libsvtav1)
        height: 720            # and/or width; aspect kept, dimensions even
        upscale: false         # never enlarge the source unless true
        crf: 23                # or bitrate; maxrate/bufsize optional caps
        maxrate: 3000k
        bufsize: 6000k
        preset: veryfast       # x264/x265 names; VP9 cpu-used 0..8; SVT-AV1 0..13
        pix_fmt: yuv420p

Every value is checked against this schema and re-rendered by kinoit before it
reaches ffmpeg, so no option or filter can be smuggled in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kinoit.errors import InvalidParameter
from kinoit.names import NAME, check_name

# A ladder file is a short document; anything larger is a mistake or an attack.
MAX_LADDER_BYTES = 64 * 1024
# More rungs than this is not a streaming ladder.
MAX_RUNGS = 16
# Smallest and largest frame edge a rung may ask for.
MIN_EDGE, MAX_EDGE = 16, 8192
# 1 kbit/s .. 1 Gbit/s covers every sane rendition bitrate.
MIN_BITRATE, MAX_BITRATE = 1_000, 1_000_000_000
# Rung names become directory and playlist names: checked by kinoit.names (fullmatch).
RUNG_NAME = NAME
BITRATE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([kKmM]?)$")

X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow",
)  # fmt: skip


@dataclass(frozen=True)
class CodecSpec:
    """What kinoit allows for one codec, and how it maps onto an ffmpeg encoder."""

    encoder: str
    crf_range: tuple[float, float]
    presets: tuple[str, ...] | tuple[int, int]
    default_preset: str | int
    pix_fmts: tuple[str, ...]
    container: str  # file extension of rendition segments


CODECS: dict[str, CodecSpec] = {
    "h264": CodecSpec(
        "libx264", (0, 51), X26X_PRESETS, "veryfast",
        ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le"), "ts",
    ),
    "hevc": CodecSpec(
        "libx265", (0, 51), X26X_PRESETS, "fast",
        ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le"), "ts",
    ),
    "vp9": CodecSpec(
        "libvpx-vp9", (0, 63), (0, 8), 5,
        ("yuv420p", "yuv444p", "yuv420p10le"), "mkv",
    ),
    "av1": CodecSpec("libsvtav1", (1, 63), (0, 13), 8, ("yuv420p", "yuv420p10le"), "mkv"),
}  # fmt: skip

RUNG_KEYS = frozenset(
    {"name", "codec", "width", "height", "upscale", "crf", "bitrate", "maxrate", "bufsize",
     "preset", "pix_fmt"}
)  # fmt: skip
LADDER_KEYS = frozenset({"name", "rungs"})


@dataclass(frozen=True)
class Rung:
    """One validated rendition of the ladder."""

    name: str
    codec: str
    width: int | None = None
    height: int | None = None
    upscale: bool = False
    crf: float | None = None
    bitrate: int | None = None
    maxrate: int | None = None
    bufsize: int | None = None
    preset: str | int = "veryfast"
    pix_fmt: str = "yuv420p"

    @property
    def spec(self) -> CodecSpec:
        """The codec's encoder and limits."""
        return CODECS[self.codec]

    @property
    def container(self) -> str:
        """Extension of this rung's segment files: ``ts`` (H.264/HEVC) or ``mkv`` (VP9/AV1)."""
        return self.spec.container

    def output_size(self, src_width: int, src_height: int) -> tuple[int, int]:
        """Output size for a source: aspect kept, both edges even, never larger unless upscale."""
        return fit_size(src_width, src_height, self.width, self.height, self.upscale)

    def fits(self, src_width: int, src_height: int) -> bool:
        """False when this rung would have to enlarge the source (and upscale is off)."""
        if self.upscale:
            return True
        if self.height is not None and self.height > src_height:
            return False
        return not (self.width is not None and self.width > src_width)

    def to_json(self) -> dict[str, Any]:
        """The rung as a plain mapping (omitting unset values)."""
        body: dict[str, Any] = {"name": self.name, "codec": self.codec}
        for key in ("width", "height", "crf", "bitrate", "maxrate", "bufsize"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        body.update(upscale=self.upscale, preset=self.preset, pix_fmt=self.pix_fmt)
        return body


def _even(value: float) -> int:
    return max(2, int(value / 2) * 2)


def fit_size(
    src_width: int, src_height: int, width: int | None, height: int | None, upscale: bool = False
) -> tuple[int, int]:
    """Fit (width, height) keeping the source aspect; rounded down to even; capped at the source."""
    if src_width <= 0 or src_height <= 0:
        raise InvalidParameter("source size", f"must be positive, got {src_width}x{src_height}")
    scales = []
    if width is not None:
        scales.append(width / src_width)
    if height is not None:
        scales.append(height / src_height)
    scale = min(scales) if scales else 1.0
    if not upscale:
        scale = min(scale, 1.0)
    return _even(src_width * scale + 1e-9), _even(src_height * scale + 1e-9)


@dataclass(frozen=True)
class Ladder:
    """A named, ordered set of rungs (largest first by convention)."""

    name: str
    rungs: tuple[Rung, ...]

    def for_source(self, width: int, height: int) -> Ladder:
        """Drop rungs that would enlarge a widthxheight source.

        When every rung is larger than the source, the smallest one is kept and
        encodes at the source's own size, so a tiny video still gets a rendition.
        """
        kept = tuple(r for r in self.rungs if r.fits(width, height))
        if not kept and self.rungs:
            smallest = min(self.rungs, key=lambda r: (r.height or 0, r.width or 0))
            kept = (replace(smallest, width=None, height=None),)
        return Ladder(self.name, kept)

    def rung(self, name: str) -> Rung:
        """The rung called ``name``."""
        for r in self.rungs:
            if r.name == name:
                return r
        raise InvalidParameter("rung", f"no rung named {name!r} in ladder {self.name!r}")

    def to_json(self) -> dict[str, Any]:
        """The ladder as a plain mapping."""
        return {"name": self.name, "rungs": [r.to_json() for r in self.rungs]}


def parse_bitrate(field: str, value: object) -> int:
    """``"3000k"``, ``"3M"``, ``"2.5M"`` or an integer in bit/s, as bit/s."""
    if isinstance(value, bool):
        raise InvalidParameter(field, f"expected a bitrate like '3000k', got {value!r}")
    if isinstance(value, int):
        bits = value
    elif isinstance(value, str) and (m := BITRATE.match(value.strip())):
        factor = {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]
        bits = int(float(m.group(1)) * factor)
    else:
        raise InvalidParameter(field, f"expected a bitrate like '3000k' or '3M', got {value!r}")
    if not MIN_BITRATE <= bits <= MAX_BITRATE:
        raise InvalidParameter(
            field, f"{bits} bit/s is out of range [{MIN_BITRATE}, {MAX_BITRATE}]"
        )
    return bits


def _edge(field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(field, f"expected an integer number of pixels, got {value!r}")
    if not MIN_EDGE <= value <= MAX_EDGE:
        raise InvalidParameter(field, f"{value} is out of range [{MIN_EDGE}, {MAX_EDGE}]")
    return value


def parse_rung(raw: object, where: str) -> Rung:
    """Validate one rung mapping; every error names the offending field."""
    if not isinstance(raw, Mapping):
        raise InvalidParameter(where, f"expected a mapping, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in RUNG_KEYS)
    if unknown:
        raise InvalidParameter(f"{where}.{unknown[0]}", "unknown key")
    name = check_name(raw.get("name"), f"{where}.name")
    where = f"rungs[{name}]"
    codec = raw.get("codec", "h264")
    if not isinstance(codec, str) or codec not in CODECS:
        raise InvalidParameter(
            f"{where}.codec", f"unsupported codec {codec!r}; expected one of {sorted(CODECS)}"
        )
    spec = CODECS[codec]
    width = _edge(f"{where}.width", raw.get("width"))
    height = _edge(f"{where}.height", raw.get("height"))
    if width is None and height is None:
        raise InvalidParameter(f"{where}.height", "a rung needs a width or a height")
    upscale = raw.get("upscale", False)
    if not isinstance(upscale, bool):
        raise InvalidParameter(f"{where}.upscale", f"expected true or false, got {upscale!r}")
    crf_raw = raw.get("crf")
    crf: float | None = None
    if crf_raw is not None:
        if isinstance(crf_raw, bool) or not isinstance(crf_raw, int | float):
            raise InvalidParameter(f"{where}.crf", f"expected a number, got {crf_raw!r}")
        low, high = spec.crf_range
        if not low <= crf_raw <= high:
            raise InvalidParameter(f"{where}.crf", f"{crf_raw} is out of range [{low}, {high}]")
        crf = float(crf_raw)
        if codec in ("vp9", "av1") and crf != int(crf):
            raise InvalidParameter(f"{where}.crf", f"{codec} takes an integer crf, got {crf_raw}")
    bitrate = parse_bitrate(f"{where}.bitrate", raw["bitrate"]) if "bitrate" in raw else None
    maxrate = parse_bitrate(f"{where}.maxrate", raw["maxrate"]) if "maxrate" in raw else None
    bufsize = parse_bitrate(f"{where}.bufsize", raw["bufsize"]) if "bufsize" in raw else None
    if (crf is None) == (bitrate is None):
        raise InvalidParameter(f"{where}.crf", "give exactly one of crf or bitrate")
    if bufsize is not None and maxrate is None:
        raise InvalidParameter(f"{where}.bufsize", "bufsize needs maxrate")
    if maxrate is not None and bufsize is None:
        bufsize = 2 * maxrate
    if bitrate is not None and maxrate is not None and maxrate < bitrate:
        raise InvalidParameter(f"{where}.maxrate", "must be >= bitrate")
    preset = raw.get("preset", spec.default_preset)
    if isinstance(spec.presets[0], str):
        if not isinstance(preset, str) or preset not in spec.presets:
            raise InvalidParameter(
                f"{where}.preset", f"expected one of {list(spec.presets)}, got {preset!r}"
            )
    else:
        low_p, high_p = int(spec.presets[0]), int(spec.presets[1])
        if isinstance(preset, bool) or not isinstance(preset, int) or not low_p <= preset <= high_p:
            raise InvalidParameter(
                f"{where}.preset",
                f"{codec} takes an integer preset in [{low_p}, {high_p}], got {preset!r}",
            )
    pix_fmt = raw.get("pix_fmt", "yuv420p")
    if not isinstance(pix_fmt, str) or pix_fmt not in spec.pix_fmts:
        raise InvalidParameter(
            f"{where}.pix_fmt", f"{codec} supports {list(spec.pix_fmts)}, got {pix_fmt!r}"
        )
    return Rung(
        name=name, codec=codec, width=width, height=height, upscale=upscale, crf=crf,
        bitrate=bitrate, maxrate=maxrate, bufsize=bufsize, preset=preset, pix_fmt=pix_fmt,
    )  # fmt: skip


def parse_ladder(raw: object, default_name: str = "custom") -> Ladder:
    """Validate a ladder document (already parsed from YAML or JSON)."""
    if not isinstance(raw, Mapping):
        raise InvalidParameter(
            "ladder", f"expected a mapping with 'rungs', got {type(raw).__name__}"
        )
    unknown = sorted(str(k) for k in raw if k not in LADDER_KEYS)
    if unknown:
        raise InvalidParameter(f"ladder.{unknown[0]}", "unknown key")
    name = check_name(raw.get("name", default_name), "ladder.name")
    rungs_raw = raw.get("rungs")
    if not isinstance(rungs_raw, Sequence) or isinstance(rungs_raw, str) or not rungs_raw:
        raise InvalidParameter("ladder.rungs", "expected a non-empty list of rungs")
    if len(rungs_raw) > MAX_RUNGS:
        raise InvalidParameter("ladder.rungs", f"at most {MAX_RUNGS} rungs, got {len(rungs_raw)}")
    rungs = tuple(parse_rung(r, f"rungs[{i}]") for i, r in enumerate(rungs_raw))
    names = [r.name for r in rungs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidParameter("ladder.rungs", f"duplicate rung name {duplicates[0]!r}")
    return Ladder(name, rungs)


BUILTIN_LADDERS = ("default",)


def _parse_text(text: str, source: str) -> object:
    try:
        if source.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        # YAML's messages span lines (mark, snippet): one line for a CLI or a JSON error
        detail = " ".join(str(exc).split())[:300]
        raise InvalidParameter("ladder", f"{source}: not valid YAML/JSON: {detail}") from None
    except (ValueError, RecursionError) as exc:  # a huge integer, nesting too deep
        raise InvalidParameter(
            "ladder", f"{source}: unacceptable value: {str(exc)[:120]}"
        ) from None


def load_ladder(spec: str | Path | Mapping[str, Any] | Ladder) -> Ladder:
    """A built-in ladder by name (``"default"``), a YAML/JSON file, or a mapping; validated."""
    if isinstance(spec, Ladder):
        return spec
    if isinstance(spec, Mapping):
        return parse_ladder(spec)
    if isinstance(spec, str) and spec in BUILTIN_LADDERS:
        text = resources.files("kinoit.media").joinpath(f"ladders/{spec}.yaml").read_text("utf-8")
        return parse_ladder(_parse_text(text, f"{spec}.yaml"), spec)
    path = Path(spec)
    if not path.is_file():
        raise InvalidParameter(
            "ladder", f"{spec!s} is neither a built-in ladder {list(BUILTIN_LADDERS)} nor a file"
        )
    if path.stat().st_size > MAX_LADDER_BYTES:
        raise InvalidParameter("ladder", f"{path}: larger than {MAX_LADDER_BYTES} bytes")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("ladder", f"{path}: not UTF-8 text") from None
    return parse_ladder(_parse_text(text, path.name), path.stem.lower()[:32])


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def encoder_args(rung: Rung, gop: int) -> list[str]:
    """Encoder options for one rung: fixed GOP of ``gop`` frames, closed, IDR first, no scenecut."""
    args = ["-c:v", rung.spec.encoder]
    rate: list[str] = []
    if rung.bitrate is not None:
        rate += ["-b:v", str(rung.bitrate)]
    if rung.maxrate is not None and rung.bufsize is not None:
        rate += ["-maxrate", str(rung.maxrate), "-bufsize", str(rung.bufsize)]
    if rung.codec == "h264":
        args += ["-preset", str(rung.preset)]
        if rung.crf is not None:
            args += ["-crf", _num(rung.crf)]
        args += rate
        args += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-flags", "+cgop"]
    elif rung.codec == "hevc":
        args += ["-preset", str(rung.preset)]
        if rung.crf is not None:
            args += ["-crf", _num(rung.crf)]
        args += rate
        args += [
            "-g", str(gop), "-keyint_min", str(gop),
            "-x265-params", "scenecut=0:open-gop=0:log-level=error",
        ]  # fmt: skip
    elif rung.codec == "vp9":
        if rung.crf is not None:
            args += ["-crf", _num(rung.crf)]
            if rung.bitrate is None:
                args += ["-b:v", "0"]
        args += rate
        args += [
            "-deadline", "good", "-cpu-used", str(rung.preset), "-row-mt", "1",
            "-g", str(gop), "-keyint_min", str(gop),
        ]  # fmt: skip
    else:  # av1
        args += ["-preset", str(rung.preset)]
        if rung.crf is not None:
            args += ["-crf", _num(rung.crf)]
        args += rate
        args += ["-g", str(gop)]
    args += ["-pix_fmt", rung.pix_fmt]
    return args
