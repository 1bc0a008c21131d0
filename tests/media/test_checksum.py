import subprocess
from pathlib import Path

import pytest
from kinoit.errors import InvalidParameter, MediaError, NotAVideo
from kinoit.media import checksum_video, compare_checksums, split_video, transcode_segment
from kinoit.media.checksum import HASH_SIDE, hamming, hash_gray_frames

RUNGS = {
    "rungs": [
        {"name": "small", "codec": "h264", "height": 48, "crf": 32, "preset": "ultrafast"},
        {"name": "vp9", "codec": "vp9", "height": 90, "crf": 45, "preset": 8},
    ]
}


def altered(src: Path, out: Path, vf: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", vf, "-c:v", "ffv1", str(out)],
        check=True, timeout=60,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def segments(clip, tmp_path_factory: pytest.TempPathFactory):
    from kinoit.config import load_settings

    root = tmp_path_factory.mktemp("ck")
    split = split_video(
        clip(seconds=2.0, audio=False), root / "s", mode="lossless", settings=load_settings({})
    )
    return root, split


def test_hashes_are_64_bit_hex_per_frame(segments, settings) -> None:
    _, split = segments
    hashes = checksum_video(split.segments[0].path, settings=settings)
    assert len(hashes) == 25
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in hashes)


def test_legit_renditions_match(segments, settings) -> None:
    root, split = segments
    seg = split.segments[0]
    ref = checksum_video(seg.path, settings=settings)
    out = transcode_segment(seg.path, RUNGS, root / "r", settings=settings)
    for rendition in out.values():
        result = compare_checksums(ref, checksum_video(rendition.path, settings=settings))
        assert result.verdict == "match", (rendition.rung, result)


@pytest.mark.parametrize("vf", ["hflip", "vflip", "negate", "drawbox=t=fill:c=black"])
def test_altered_content_mismatches(segments, tmp_path: Path, settings, vf: str) -> None:
    _, split = segments
    seg = split.segments[0].path
    ref = checksum_video(seg, settings=settings)
    bad = altered(seg, tmp_path / "bad.mkv", vf + ",trim=end_frame=25")
    result = compare_checksums(ref, checksum_video(bad, settings=settings))
    assert result.verdict == "mismatch", result


def test_wrong_segment_mismatches(segments, settings) -> None:
    _, split = segments
    a = checksum_video(split.segments[0].path, settings=settings)
    b = checksum_video(split.segments[1].path, settings=settings)
    assert compare_checksums(a, b).verdict == "mismatch"


def test_frame_count_difference_is_a_mismatch_with_full_distance() -> None:
    ref = ["0" * 16] * 4
    result = compare_checksums(ref, ref[:3])
    assert result.distances == (0, 0, 0, 64)
    assert result.verdict == "mismatch" and "frame counts differ" in result.reason
    assert result.to_json()["max"] == 64


def test_identical_hashes_match_and_thresholds_apply() -> None:
    ref = ["ffff0000ffff0000"] * 3
    near = ["ffff0000ffff0001"] * 3
    assert compare_checksums(ref, near).to_json() | {"reason": ""} == {
        "distances": [1, 1, 1], "max": 1, "mean": 1.0, "verdict": "match", "reason": "",
        "reference_frames": 3, "candidate_frames": 3,
    }  # fmt: skip
    assert compare_checksums(ref, near, max_distance=0).verdict == "mismatch"


def test_bad_hash_input_is_rejected() -> None:
    with pytest.raises(InvalidParameter):
        hamming("zz", "00")
    with pytest.raises(InvalidParameter):
        compare_checksums([], [])


def test_raw_frames_must_be_whole() -> None:
    assert hash_gray_frames(bytes(HASH_SIDE * HASH_SIDE * 2)) == ["0000000000000000"] * 2
    with pytest.raises(MediaError):
        hash_gray_frames(b"\0" * 10)


def test_checksum_of_not_a_video(tmp_path: Path, settings) -> None:
    bad = tmp_path / "x.mkv"
    bad.write_bytes(b"nope" * 50)
    with pytest.raises(NotAVideo):
        checksum_video(bad, settings=settings)


def test_frame_range_keeps_a_copy_segments_own_frames(segments, settings) -> None:
    _, split = segments
    path = split.segments[0].path
    everything = checksum_video(path, settings=settings)
    assert checksum_video(path, frame_range=(5, 10), settings=settings) == everything[5:10]
    with pytest.raises(InvalidParameter, match="frame_range"):
        checksum_video(path, frame_range=(5, 500), settings=settings)


@pytest.mark.parametrize("algorithm", ["phash-dct64", "blockmean64", "dct32-block32"])
def test_every_algorithm_hashes_a_flip_far_from_the_original(algorithm: str) -> None:
    ramp = bytes(min(255, x * 8) for _ in range(HASH_SIDE) for x in range(HASH_SIDE))
    flipped = bytes(
        min(255, (HASH_SIDE - 1 - x) * 8) for _ in range(HASH_SIDE) for x in range(HASH_SIDE)
    )
    a = hash_gray_frames(ramp, algorithm)
    b = hash_gray_frames(flipped, algorithm)
    assert len(a[0]) == 16 and hamming(a[0], a[0]) == 0
    assert hamming(a[0], b[0]) >= 4


def test_blockmean_bits_follow_the_block_layout() -> None:
    left_dark = bytes(0 if x < 16 else 200 for _ in range(HASH_SIDE) for x in range(HASH_SIDE))
    # each row of 8 blocks: 4 dark then 4 bright -> 0x0f per row
    assert hash_gray_frames(left_dark, "blockmean64") == ["0f0f0f0f0f0f0f0f"]


def test_unknown_algorithm_is_rejected() -> None:
    with pytest.raises(InvalidParameter, match="algorithm"):
        hash_gray_frames(bytes(HASH_SIDE * HASH_SIDE), "md5")


def test_a_frozen_frame_drifts_away_as_the_content_moves(
    segments, tmp_path: Path, settings
) -> None:
    # Calibrated limitation (docs/checksum-calibration.md): a freeze is only caught once
    # the real content has moved enough within the second; the distance grows with it.
    _, split = segments
    seg = split.segments[0].path
    ref = checksum_video(seg, settings=settings)
    bad = altered(seg, tmp_path / "frozen.mkv", "loop=loop=30:size=1:start=0,trim=end_frame=25")
    result = compare_checksums(ref, checksum_video(bad, settings=settings))
    assert result.distances[0] == 0 and result.distances[-1] > result.distances[0]
