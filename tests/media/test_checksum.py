"""The verifier on real ffmpeg output: every corruption kind of kinoit.media.corrupt is
caught on a moving and on a near-still source, every codec passes at its worst CRF,
and the pure parts (hashing, signatures, the verdict) behave."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from kinoit.errors import InvalidParameter, NotAVideo
from kinoit.media import checksum_video, compare_checksums, split_video, transcode_segment
from kinoit.media.checksum import (
    Thresholds,
    bits_to_hex,
    compare_signatures,
    hamming,
    hex_to_bits,
    judge,
    thresholds_for,
    video_signature,
    video_signatures,
)
from kinoit.media.corrupt import CORRUPTIONS, write_corrupt
from kinoit.media.scores import hash_grid, retimings
from kinoit.media.signature import (
    FRAME_BYTES,
    Signature,
    build_signatures_argv,
    parse_framecrc,
)

W, H = 320, 180
# A moving test pattern, and a near-still "talking head": a flat background with a
# face that sways a few pixels and a mouth that opens, under light grain.
SOURCES = {
    "moving": "testsrc2=size={w}x{h}:rate=25",
    "near-still": (
        "color=c=0x304860:size={w}x{h}:rate=25[bg];color=c=0xd0a080:size=60x80:rate=25[f];"
        "[bg][f]overlay=x='130+3*sin(t*2.3)':y='50+2*sin(t*3.1)'[h];"
        "color=c=0x401818:size=16x5:rate=25[m];"
        "[h][m]overlay=x='152+3*sin(t*2.3)':y='105+3*abs(sin(t*7))',noise=alls=2:allf=t"
    ),
}
WORST = [
    {"name": "h264", "codec": "h264", "height": 180, "crf": 35, "preset": "veryfast"},
    {"name": "hevc", "codec": "hevc", "height": 180, "crf": 35, "preset": "fast"},
    {"name": "vp9", "codec": "vp9", "height": 180, "crf": 50, "preset": 6},
    {"name": "av1", "codec": "av1", "height": 180, "crf": 50, "preset": 10},
    {"name": "h264-144", "codec": "h264", "height": 144, "crf": 35, "preset": "veryfast"},
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory):
    """Per content: (source file, its split with signatures, the middle segment)."""
    from kinoit.config import load_settings

    settings = load_settings({})
    root = tmp_path_factory.mktemp("verify")
    out = {}
    for name, graph in SOURCES.items():
        src = root / f"{name}.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
             graph.format(w=W, h=H) + ",format=yuv420p", "-t", "3", "-c:v", "libx264",
             "-preset", "fast", "-crf", "16", str(src)],
            check=True, timeout=120,
        )  # fmt: skip
        split = split_video(
            src, root / f"split-{name}", mode="lossless", settings=settings, signatures=True
        )
        out[name] = (src, split, split.segments[1])
    return out


def reference(sources, content: str) -> Signature:
    seg = sources[content][2]
    return Signature.from_bytes(seg.signature.read_bytes())


def test_split_writes_the_signature_a_decode_of_the_segment_gives(sources, settings) -> None:
    for _, split, _ in sources.values():
        for seg in split.segments:
            written = Signature.from_bytes(seg.signature.read_bytes())
            decoded = video_signature(seg.path, settings)
            assert written.planes == decoded.planes
            assert written.frames == seg.frames == 25
            assert written.pts == decoded.pts


@pytest.mark.parametrize("content", sorted(SOURCES))
def test_every_codec_passes_at_its_worst_crf(sources, tmp_path: Path, settings, content) -> None:
    _, split, seg = sources[content]
    ref = reference(sources, content)
    out = transcode_segment(
        seg.path, {"rungs": WORST}, tmp_path, fps=split.fps, start_frame=seg.start_frame,
        settings=settings,
    )  # fmt: skip
    assert sorted(out) == sorted(r["name"] for r in WORST)
    sigs = video_signatures([r.path for r in out.values()], settings)
    for (rung, _), sig in zip(out.items(), sigs, strict=True):
        result = compare_signatures(ref, sig)
        assert result.verdict == "match", (rung, result.reason, result.scores)
        assert result.failed is None and len(result.distances) == 25


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
@pytest.mark.parametrize("content", sorted(SOURCES))
def test_every_corruption_is_caught(sources, tmp_path: Path, settings, content, kind) -> None:
    src, _, seg = sources[content]
    other = sources["near-still" if content == "moving" else "moving"][0]
    bad = write_corrupt(kind, src, other, seg.start_frame, seg.frames, (W, H), tmp_path / "bad.mp4")
    try:
        cand = video_signature(bad, settings)
    except NotAVideo:
        return  # undecodable (bitstream damage can do that): no rendition at all
    result = compare_signatures(reference(sources, content), cand)
    assert result.verdict == "mismatch", (kind, result.scores)
    assert result.failed in ("frames", "timing", "content", "fidelity", "time")
    assert result.reason and result.reason != "all tests passed"


def test_shifted_frames_fail_the_time_test_even_when_the_picture_is_fine(
    sources, tmp_path: Path, settings
) -> None:
    src, _, seg = sources["near-still"]
    bad = write_corrupt(
        "shift +1", src, src, seg.start_frame, seg.frames, (W, H), tmp_path / "s.mp4"
    )
    cand = video_signature(bad, settings)
    result = compare_signatures(reference(sources, "near-still"), cand)
    assert result.verdict == "mismatch", result.scores
    # the time test alone condemns it: a one-frame shift fits better than "as is"
    assert result.scores["retimed"] > thresholds_for(cand.size).retimed


def test_irregular_timestamps_fail_the_timing_test(sources, tmp_path: Path, settings) -> None:
    _, _, seg = sources["moving"]
    bad = tmp_path / "late.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(seg.path), "-vf",
         "setpts=(N+gte(N\\,12))/FRAME_RATE/TB", "-fps_mode", "passthrough",
         "-c:v", "libx264", "-preset", "ultrafast", str(bad)],
        check=True, timeout=60,
    )  # fmt: skip
    result = compare_signatures(reference(sources, "moving"), video_signature(bad, settings))
    assert result.failed == "timing", result.scores
    assert result.scores["timing_error"] == pytest.approx(1.0)


def test_one_ffmpeg_decodes_every_rendition(tmp_path: Path) -> None:
    argv = build_signatures_argv([tmp_path / "a.ts", tmp_path / "b.mkv"], tmp_path)
    assert argv[0] == "ffmpeg" and argv.count("-i") == 2
    assert argv.count("-filter_complex") == 1
    assert argv.count("rawvideo") >= 2 and argv.count("framecrc") == 4


def test_frame_range_keeps_only_those_frames(sources, settings) -> None:
    seg = sources["moving"][2]
    whole = checksum_video(seg.path, settings)
    assert checksum_video(seg.path, settings, frame_range=(5, 15)) == whole[5:15]
    with pytest.raises(InvalidParameter, match="frame_range"):
        checksum_video(seg.path, settings, frame_range=(20, 40))


def test_checksum_of_not_a_video_is_a_clear_error(tmp_path: Path, settings) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(NotAVideo):
        checksum_video(junk, settings)


# ----------------------------------------------------------------- pure parts
def test_vectorised_hash_equals_imagehash_phash_and_block_means() -> None:
    import imagehash
    from PIL import Image

    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (20, 32, 32)).astype(np.uint8)
    yy, xx = np.mgrid[0:32, 0:32]
    smooth = np.stack(
        [(np.sin(xx / 5 + k) + np.cos(yy / 7 - k)) * 60 + 128 for k in range(10)]
    ).astype(np.uint8)
    frames = np.concatenate([noise, smooth])
    ours = hash_grid(frames)
    for frame, bits in zip(frames, ours, strict=True):
        low = imagehash.phash(Image.fromarray(frame, "L"), hash_size=8, highfreq_factor=4).hash
        blocks = frame.reshape(4, 8, 8, 4).mean(axis=(1, 3))
        expected = np.concatenate([low[:4].flatten(), (blocks > np.median(blocks)).flatten()])
        assert list(bits) == list(expected)


def test_the_hash_grid_is_the_exact_block_means_of_the_signature_grid() -> None:
    from kinoit.media.scores import _to_hash_grid
    from kinoit.media.signature import GRID_H, GRID_W

    rng = np.random.default_rng(3)
    luma = rng.integers(0, 256, (9, GRID_H, GRID_W)).astype(np.float32)
    luma[0] = 255.0  # the largest sums
    fy, fx = GRID_H // 32, GRID_W // 32
    expected = luma.astype(np.float64).reshape(9, 32, fy, 32, fx).mean(axis=(2, 4))
    ours = _to_hash_grid(luma)
    assert ours.shape == (9, 32, 32) and ours.dtype == np.float32
    assert np.array_equal(ours, expected.astype(np.float32))


def test_hex_and_bits_round_trip_and_hamming() -> None:
    bits = np.random.default_rng(1).integers(0, 2, (5, 64)).astype(np.uint8)
    hexes = bits_to_hex(bits)
    assert all(len(h) == 16 for h in hexes)
    assert (hex_to_bits(hexes) == bits).all()
    assert hamming(hexes[0], hexes[0]) == 0
    assert hamming("0" * 16, "f" * 16) == 64
    with pytest.raises(InvalidParameter, match="hash"):
        hex_to_bits(["xyz"])
    with pytest.raises(InvalidParameter, match="hash"):
        hamming("zz", "00")


def test_hash_only_compare_counts_missing_frames_as_all_bits() -> None:
    ref = ["0" * 16] * 4
    result = compare_checksums(ref, ref[:3])
    assert result.verdict == "mismatch" and result.failed == "frames"
    assert result.distances == (0, 0, 0, 64)
    assert compare_checksums(ref, ref).verdict == "match"
    with pytest.raises(InvalidParameter):
        compare_checksums([], [])


def test_the_verdict_names_the_first_failing_test() -> None:
    t = Thresholds()
    fine = {"timing_error": 0.0, "psnr_luma": 40.0, "psnr_chroma": 40.0, "detail": 1.0,
            "relative_error": 0.5, "relative_error_max": 1.0, "misplaced": 0.0, "retimed": 0.5,
            "retimed_gain": 0.0}  # fmt: skip
    assert judge([0] * 10, fine, t, (10, 10)) == (None, "all tests passed")
    assert judge([0] * 10, fine, t, (10, 9))[0] == "frames"
    assert judge([0] * 10, {**fine, "timing_error": 1.0}, t, (10, 10))[0] == "timing"
    assert judge([0] * 9 + [40], fine, t, (10, 10))[0] == "content"
    assert judge([0] * 10, {**fine, "psnr_chroma": 10.0}, t, (10, 10))[0] == "fidelity"
    assert judge([0] * 10, {**fine, "detail": 9.0}, t, (10, 10))[0] == "fidelity"
    assert judge([0] * 10, {**fine, "retimed": 2.0, "retimed_gain": 5.0}, t, (10, 10))[0] == "time"
    # a re-timing nobody could see (an encoder lagging a sub-pixel sway) is no failure
    assert judge([0] * 10, {**fine, "retimed": 2.0, "retimed_gain": 0.1}, t, (10, 10))[0] is None
    assert judge([0] * 10, {**fine, "misplaced": 0.9}, t, (10, 10))[0] == "time"


def test_the_colour_and_flat_area_tests_fail_as_fidelity() -> None:
    t = Thresholds(chroma_misfit=5.0, flat_detail_max=1.5)
    fine = {"psnr_luma": 40.0, "psnr_chroma": 40.0, "chroma_misfit": 1.0, "flat_detail": 1.0}
    assert judge([0] * 10, fine, t, (10, 10))[0] is None
    failed, reason = judge([0] * 10, {**fine, "chroma_misfit": 40.0}, t, (10, 10))
    assert failed == "fidelity" and "colours" in reason
    failed, reason = judge([0] * 10, {**fine, "flat_detail": 9.0}, t, (10, 10))
    assert failed == "fidelity" and "flat areas" in reason


def test_colour_scores_see_a_swap_but_not_a_desaturation() -> None:
    from kinoit.media.scores import _colour

    rng = np.random.default_rng(3)
    u = rng.normal(128, 12, (4, 1, 48, 80))
    v = 256 - u + rng.normal(0, 3, u.shape)  # orange-ish: v high where u is low
    ref = np.concatenate([u, v], axis=1).astype(np.float32)
    faded = (128 + (ref - 128) * 0.7).astype(np.float32)
    swapped = ref[:, ::-1].copy()
    assert _colour(ref, faded)["chroma_corr"] > 0.99
    assert _colour(ref, swapped)["chroma_corr"] < 0
    energy = float(((ref - 128) ** 2).mean())
    assert _colour(ref, ref)["chroma_energy"] == pytest.approx(energy)
    assert _colour(ref, faded)["chroma_misfit"] < 0.01 * energy
    assert _colour(ref, swapped)["chroma_misfit"] > energy
    # grey: nothing to swap, nothing to misfit
    grey = np.full_like(ref, 128.0) + rng.normal(0, 0.5, ref.shape).astype(np.float32)
    assert _colour(grey, grey[:, ::-1].copy())["chroma_misfit"] < 1.0


def test_chroma_error_sees_noise_and_a_swap_on_grey_footage_that_psnr_does_not() -> None:
    """Near-grey footage: an encode's chroma error stays within the source's chroma
    detail; faint chroma noise or a U/V swap errs beyond it, at a chroma PSNR (about
    36 dB) that passes any absolute floor a colourful source's encodes allow."""
    from kinoit.media.scores import _features, _fidelity, _fine, _frame_means

    rng = np.random.default_rng(5)
    frames, w, h = 8, 160, 96
    luma = rng.normal(128, 30, (frames, h, w)).clip(0, 255)
    # a faint tint that varies smoothly over the picture (chroma energy ~10 levels^2)
    tint = (
        np.sin(np.linspace(0, 3, w // 2))[None, None, :]
        * np.cos(np.linspace(0, 2, h // 2))[None, :, None]
    )
    u = 128 + 4.5 * tint + rng.normal(0, 0.3, (frames, h // 2, w // 2))
    v = 128 - 3.5 * tint + rng.normal(0, 0.3, (frames, h // 2, w // 2))

    def sig(luma, u, v) -> Signature:
        planes = np.concatenate(
            [luma.reshape(frames, -1), u.reshape(frames, -1), v.reshape(frames, -1)], axis=1
        )
        return Signature(np.rint(planes).clip(0, 255).astype(np.uint8).tobytes(), None, (w, h))

    ref = sig(luma, u, v)
    blurred = [x.copy() for x in (u, v)]  # an encode: chroma detail lost, nothing added
    for x in blurred:
        x[:] = 128 + (x - 128) * 0.5
    encode = sig(luma, *blurred)
    noisy = sig(luma, u + rng.normal(0, 4, u.shape), v + rng.normal(0, 4, v.shape))
    swapped = sig(luma, v, u)
    rf = _features(ref)
    detail = _frame_means(_fine(rf.chroma.reshape(frames * 2, h // 2, w // 2)) ** 2)
    assert float(detail.mean()) < 4.0  # near grey: next to no chroma detail
    t = thresholds_for((w, h))
    scores = {name: _fidelity(rf, _features(c), 1) for name, c in
              (("encode", encode), ("noisy", noisy), ("swapped", swapped))}  # fmt: skip
    assert scores["encode"]["chroma_error"] < t.chroma_error
    for bad in ("noisy", "swapped"):
        assert scores[bad]["psnr_chroma"] > t.psnr_chroma  # the absolute floor cannot see it
        assert scores[bad]["chroma_error"] > t.chroma_error
    failed, reason = judge([0] * frames, {**scores["noisy"], "hash_max": 0, "hash_mean": 0},
                           t, (frames, frames))  # fmt: skip
    assert failed == "fidelity" and "chroma error" in reason


def test_retimings_cover_shifts_freezes_and_reversal() -> None:
    maps = [tuple(int(c) - int(r) for r, c in zip(rows, cols, strict=True))
            for rows, cols in retimings(25)]  # fmt: skip
    assert any(set(m) == {1} and len(m) == 24 for m in maps)  # the whole segment, +1
    assert any(set(m) == {-5} and len(m) == 20 for m in maps)
    assert all(len(m) >= 4 for m in maps)
    frozen = [(rows, cols) for rows, cols in retimings(25) if len(set(cols.tolist())) == 1]
    assert len(frozen) == 21  # frozen on frame d, for every d with >= 4 frames after it


def test_signature_bytes_and_text_round_trip_and_refuse_garbage() -> None:
    from fractions import Fraction

    planes = bytes(range(256)) * (FRAME_BYTES * 3 // 256)
    sig = Signature(planes, tuple(Fraction(i, 25) for i in range(3)), (640, 360))
    assert Signature.from_bytes(sig.to_bytes()) == sig
    assert Signature.from_text(sig.to_text()) == sig
    assert sig.slice(1, 3).frames == 2
    for bad in (b"", b"{}\n", sig.to_bytes()[:-1], b'{"format": "x"}\n' + planes, b"\xff\n"):
        with pytest.raises(InvalidParameter, match="signature"):
            Signature.from_bytes(bad)
    for text in ("not base64!", 42, "aGVsbG8="):
        with pytest.raises(InvalidParameter, match="signature"):
            Signature.from_text(text)


def test_framecrc_timestamps_and_size_are_read() -> None:
    text = (
        "#tb 0: 1/90000\n#media_type 0: video\n#dimensions 0: 640x360\n"
        "0,          0,          0,     3600,   345600, 0x1\n"
        "0,       3600,       3600,     3600,   345600, 0x2\n"
    )
    pts, size = parse_framecrc(text)
    assert [float(p) for p in pts] == [0.0, 0.04] and size == (640, 360)


def test_flat_area_detail_is_judged_only_on_sizes_the_corpus_calibrated() -> None:
    from kinoit.media.checksum import SMALLEST_CALIBRATED, THRESHOLDS, thresholds_for

    calibrated = thresholds_for((256, SMALLEST_CALIBRATED))
    assert calibrated.flat_detail_max == THRESHOLDS["small"].flat_detail_max < float("inf")
    tiny = thresholds_for((160, 90))
    assert tiny.flat_detail_max == float("inf")
    assert tiny.psnr_luma == calibrated.psnr_luma  # every other test keeps its threshold
