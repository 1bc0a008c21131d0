"""An MP4's video samples counted from its sample table (mp4_samples) against a demux of
every packet, on MP4s real ffmpeg wrote (faststart or not, with and without audio,
B-frames); a file cut short or a table pointing past the data fails."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from kinoit.errors import MediaError
from kinoit.media.frames import open_media
from kinoit.media.merge import verify_output
from kinoit.media.mp4_samples import check_timeline, video_presentation_times, video_sample_count


def demuxed(path: Path) -> int:
    with open_media(path, "test") as container:
        video = container.streams.video[0]
        return sum(1 for packet in container.demux(video) if packet.size)


def make_mp4(out: Path, *, faststart: bool = True, audio: bool = True, frames: int = 61) -> Path:
    argv = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size=96x64:rate=25,trim=end_frame={frames}"]  # fmt: skip
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=frequency=330:duration=2.44"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "12"]
    argv += ["-c:a", "aac"] if audio else []
    argv += ["-movflags", "+faststart"] if faststart else []
    subprocess.run([*argv, str(out)], check=True, capture_output=True, timeout=120)
    return out


@pytest.mark.parametrize(
    ("faststart", "audio"), [(True, True), (False, True), (True, False)],
    ids=["faststart with audio", "moov at the end", "video only"],
)  # fmt: skip
def test_the_sample_table_counts_what_a_demux_counts(
    tmp_path: Path, faststart: bool, audio: bool
) -> None:
    path = make_mp4(tmp_path / "a.mp4", faststart=faststart, audio=audio)
    assert video_sample_count(path) == demuxed(path) == 61
    assert verify_output(path, expected_frames=61, decode=False).frames == 61
    with pytest.raises(MediaError, match="the source has 60"):
        verify_output(path, expected_frames=60, decode=False)


def test_a_file_cut_short_fails(tmp_path: Path) -> None:
    path = make_mp4(tmp_path / "a.mp4")
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) - 3000])  # the last samples' bytes are gone
    with pytest.raises(MediaError, match=r"runs past the end|outside the mdat"):
        video_sample_count(cut)


def _patched(path: Path, box: bytes, field: Callable[[bytearray, int], tuple[int, int]]) -> Path:
    """A copy of the MP4 ``path`` with one 32-bit field of its first ``box`` rewritten:
    ``field(data, box_at)`` gives (offset, value)."""
    data = bytearray(path.read_bytes())
    offset, value = field(data, data.index(box))
    struct.pack_into(">I", data, offset, value)
    bad = path.with_name("bad.mp4")
    bad.write_bytes(bytes(data))
    return bad


def test_a_chunk_offset_past_the_data_fails(tmp_path: Path) -> None:
    def last_chunk_near_eof(data: bytearray, at: int) -> tuple[int, int]:
        (count,) = struct.unpack_from(">I", data, at + 8)
        return at + 12 + 4 * (count - 1), len(data) - 10

    bad = _patched(make_mp4(tmp_path / "a.mp4", audio=False), b"stco", last_chunk_near_eof)
    with pytest.raises(MediaError, match="outside the mdat"):
        video_sample_count(bad)


def test_a_sample_count_the_chunks_do_not_hold_fails(tmp_path: Path) -> None:
    def one_sample_fewer(data: bytearray, at: int) -> tuple[int, int]:
        (count,) = struct.unpack_from(">I", data, at + 12)
        return at + 12, count - 1

    bad = _patched(make_mp4(tmp_path / "a.mp4", audio=False), b"stsz", one_sample_fewer)
    with pytest.raises(MediaError, match=r"more samples than stsz|stsz lists"):
        video_sample_count(bad)


def test_a_file_that_is_not_mp4_fails(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x10ftypisom" + b"\x00" * 4 + b"no moov here")
    with pytest.raises(MediaError):
        video_sample_count(junk)


def _segments_then_mp4(tmp_path: Path, rate: str, *, per_file_option: bool) -> Path:
    """Three 1-s MPEG-TS segments of one x264 encode with B-frames, cut by ffmpeg's
    segment muxer with timestamps kept, joined byte-wise and remuxed to MP4 as merge
    does; without ``per_file_option`` the first file's muxer shifts its negative DTS
    (the direct transcode's bug before 2026-12-02)."""
    seg = ["-avoid_negative_ts", "disabled"]
    if per_file_option:
        seg += ["-segment_format_options", "avoid_negative_ts=disabled"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate={rate}",
         "-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "1000",
         "-force_key_frames", "expr:gte(t,n_forced)", *seg, "-f", "segment",
         "-segment_format", "mpegts", "-segment_time", "1", "-reset_timestamps", "0",
         str(tmp_path / "%02d.ts")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    parts = sorted(tmp_path.glob("*.ts"))
    assert len(parts) == 3
    out = tmp_path / "joined.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", "concat:" + "|".join(map(str, parts)),
         "-c", "copy", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


@pytest.mark.parametrize("rate", ["25", "30000/1001", "24000/1001"])
def test_merged_segments_on_one_timeline_pass_the_timeline_check(tmp_path: Path, rate: str) -> None:
    path = _segments_then_mp4(tmp_path, rate, per_file_option=True)
    frames = demuxed(path)
    timescale, times = video_presentation_times(path)
    assert len(times) == frames and timescale > 0
    check_timeline(path, Fraction(rate))
    assert verify_output(path, expected_frames=frames, decode=False, fps=Fraction(rate))


def test_merged_segments_that_overlap_fail_the_timeline_check(tmp_path: Path) -> None:
    path = _segments_then_mp4(tmp_path, "25", per_file_option=False)
    frames = demuxed(path)
    # the frame count is right: only the timeline shows that two frames overlap
    assert verify_output(path, expected_frames=frames, decode=False).frames == frames
    with pytest.raises(MediaError, match="do not line up"):
        verify_output(path, expected_frames=frames, decode=False, fps=Fraction(25))
