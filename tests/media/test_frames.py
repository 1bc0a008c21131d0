"""In-process decoding (kinoit.media.frames) against the ffmpeg command line on real files:
the same grid bytes, the same frames in presentation order with their timestamps, the
same errors for files that are no video, and protocol-like names read as files."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from kinoit.errors import MediaError, NotAVideo
from kinoit.media.checksum import video_signature
from kinoit.media.frames import chain_text, iter_frames, open_media
from kinoit.media.signature import GRID_H, GRID_W, IN_PROCESS_GRID, LUMA_BYTES


def encode(path: Path, *args: str, graph: str = "testsrc2=size=320x180:rate=30") -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-t", "1", *args, str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.mark.parametrize(
    "name, args",
    [
        ("bframes.mp4", ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-bf", "3", "-crf", "30"]),
        ("hevc.mkv", ["-pix_fmt", "yuv420p", "-c:v", "libx265", "-x265-params", "log-level=none"]),
        ("vp9.webm", ["-pix_fmt", "yuv420p", "-c:v", "libvpx-vp9", "-deadline", "realtime"]),
        ("offset.ts", ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-bf", "2"]),
    ],
)
def test_in_process_grid_is_the_command_lines_bytes_and_times(
    tmp_path: Path, settings, name: str, args: list[str]
) -> None:
    video = encode(tmp_path / name, *args)
    cli = video_signature(video, settings, in_process=False)
    ours = video_signature(video, settings)
    assert ours.frames == cli.frames == 30
    assert ours.planes == cli.planes
    assert ours.size == cli.size == (320, 180)
    assert ours.pts is not None and cli.pts is not None
    # relative to the first frame (an MPEG-TS starts at 1.4 s); the command line rounds
    # Matroska's milliseconds to the frame rate, we keep the file's own times
    rel = [float(p - ours.pts[0]) for p in ours.pts]
    assert rel == pytest.approx([float(p - cli.pts[0]) for p in cli.pts], abs=1e-3)
    assert rel == sorted(rel)  # presentation order, B-frames or not


def test_full_range_video_lands_on_the_limited_range_grid_like_the_command_line(
    tmp_path: Path, settings
) -> None:
    video = encode(tmp_path / "full.mp4", "-pix_fmt", "yuvj420p", "-c:v", "libx264")
    cli = np.frombuffer(video_signature(video, settings, in_process=False).planes, np.uint8)
    ours = np.frombuffer(video_signature(video, settings).planes, np.uint8)
    assert np.abs(cli.astype(int) - ours).max() <= 1
    luma = ours.reshape(30, -1)[:, :LUMA_BYTES]
    assert luma.min() >= 16 and luma.max() <= 235  # converted, not passed through


def test_filters_are_any_chain_and_iteration_may_stop_early(tmp_path: Path) -> None:
    video = encode(tmp_path / "v.mp4", "-pix_fmt", "yuv420p", "-c:v", "libx264")
    chain = [("scale", "64:36:flags=area"), ("format", "rgb24")]
    assert chain_text(chain) == "scale=64:36:flags=area,format=rgb24"
    frames = iter_frames(video, chain, timeout=60)
    first = next(frames)
    frames.close()
    assert first.index == 0 and first.pts == 0 and first.decoded == (320, 180)
    assert first.image.shape == (36, 64, 3)
    grid = next(iter_frames(video, IN_PROCESS_GRID, timeout=60))
    assert grid.image.shape == (GRID_H * 3 // 2, GRID_W)


def test_more_frames_than_allowed_is_a_media_error(tmp_path: Path) -> None:
    video = encode(tmp_path / "v.mp4", "-pix_fmt", "yuv420p", "-c:v", "libx264")
    with pytest.raises(MediaError, match="more than 10 frames"):
        list(iter_frames(video, IN_PROCESS_GRID, timeout=60, max_frames=10))


def test_files_that_are_no_video_get_probes_errors(tmp_path: Path, settings) -> None:
    video = encode(tmp_path / "v.mp4", "-pix_fmt", "yuv420p", "-c:v", "libx264")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("plain text, not a video\n" * 200)
    audio = encode(tmp_path / "tone.m4a", graph="sine=frequency=440")
    for bad in (truncated, text, audio):
        with pytest.raises(NotAVideo):
            video_signature(bad, settings)
    with pytest.raises(MediaError, match="no video stream"):
        list(iter_frames(audio, IN_PROCESS_GRID, timeout=60))


def test_a_name_like_a_protocol_is_read_as_that_file(
    tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = encode(tmp_path / "v.mp4", "-pix_fmt", "yuv420p", "-c:v", "libx264")
    (tmp_path / "concat:v.mp4").write_bytes(video.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert (
        video_signature("concat:v.mp4", settings).planes == video_signature(video, settings).planes
    )


def test_when_every_frame_is_decoded_next_the_stream_probe_decodes_none(tmp_path: Path) -> None:
    video = encode(tmp_path / "probe.mp4", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-bf", "3")
    with open_media(video, "probe") as probed:
        assert probed.streams.video[0].codec_context.format.name == "yuv420p"
    with open_media(video, "decode", probe_decode=False) as unprobed:
        context = unprobed.streams.video[0].codec_context
        assert context.format is None  # nothing decoded to learn it
        assert (context.width, context.height) == (320, 180)
    frames = list(iter_frames(video, [("format", "gray")], timeout=60))
    assert len(frames) == 30 and frames[0].image.shape == (180, 320)
