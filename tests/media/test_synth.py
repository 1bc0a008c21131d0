import pytest
from kinoit.errors import InvalidParameter
from kinoit.media import probe
from kinoit.media.synth import build_synth_argv


def test_synth_argv_is_exact() -> None:
    assert build_synth_argv("o.mp4", seconds=1, fps="30000/1001", width=64, height=36, gop=15) == [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=30000/1001:duration=1.000000",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1.000000",
        "-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
        "-pix_fmt", "yuv420p", "-g", "15", "-keyint_min", "15", "-sc_threshold", "0",
        "-map", "1:a", "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", "o.mp4",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"seconds": 0}, "seconds"), ({"width": 1}, "size"), ({"rotation": 45}, "rotation"),
     ({"pix_fmt": "rgb24;x"}, "pix_fmt"), ({"fps": "x"}, "fps")],
)  # fmt: skip
def test_synth_rejects_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        build_synth_argv("o.mp4", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_clip_has_requested_properties(clip, settings) -> None:
    info = probe(clip(fps=50, seconds=1.0, width=96, height=54), settings=settings)
    assert (info.frames, info.width, info.height, len(info.audio)) == (50, 96, 54, 1)
