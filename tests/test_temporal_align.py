"""Temporal AV-Align: parity with fixtures/temporal_av_align (official 04e8d5b: OpenCV 4.7, librosa 0.10.0,
audioread + ffmpeg 5.1), the undefined case, and the corrected one-to-one variant."""

from __future__ import annotations

import json

import numpy as np
import pytest

from savg_hub.evaluation.temporal import (
    TemporalAVAlignResult,
    audio_onsets,
    audio_onsets_from_librosa_y,
    gray_frames,
    librosa_load_mono,
    match_onsets_to_peaks,
    motion_curve,
    score_clip,
    strict_local_maxima,
    temporal_av_align,
    temporal_iou_corrected,
    temporal_iou_official,
    video_motion_peaks,
)
from savg_hub.media.io import read_media

CLIPS = ["t1_sync", "t2_jerky", "t3_multi"]


@pytest.fixture(scope="module")
def fixture_dir(official_fixtures):
    return official_fixtures / "temporal_av_align"


@pytest.fixture(scope="module")
def expected(fixture_dir):
    return json.loads((fixture_dir / "expected.json").read_text())


@pytest.fixture(scope="module")
def decoded(fixture_dir):
    """Each clip decoded once with PyAV (as the evaluation layer does)."""
    paths = {clip: fixture_dir / "clips" / f"{clip}.mp4" for clip in CLIPS}
    paths["e1_still"] = fixture_dir / "error_case" / "e1_still.mp4"
    return {clip: read_media(path) for clip, path in paths.items()}


@pytest.fixture(scope="module")
def result(decoded):
    clips = [(c, decoded[c].video, decoded[c].fps, decoded[c].audio, decoded[c].sample_rate) for c in CLIPS]
    return temporal_av_align(clips)


# --------------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("clip", CLIPS)
def test_video_side_parity(fixture_dir, expected, decoded, clip):
    data, want = decoded[clip], expected["per_clip"][clip]
    assert data.fps == want["fps"] and data.video.shape[0] == want["n_frames"]
    gray = gray_frames(data.video)
    reference = np.load(fixture_dir / "intermediate" / f"{clip}_gray_frames_uint8.npy")
    # PyAV (FFmpeg 8.1) vs OpenCV 4.7 decode: measured identical (max difference 0)
    assert np.abs(gray.astype(np.int16) - reference).max() <= 1
    curve, peaks = video_motion_peaks(data.video, data.fps)
    # OpenCV 5.0 vs 4.7 Farnebäck: measured relative difference <= 7.4e-10
    np.testing.assert_allclose(curve, want["flow_trajectory"], rtol=1e-6, atol=1e-9)
    assert curve[0] == curve[1]
    assert peaks.tolist() == want["video_peaks_s"]


@pytest.mark.parametrize("clip", CLIPS)
def test_audio_side_parity(fixture_dir, expected, decoded, clip):
    data, want = decoded[clip], expected["per_clip"][clip]
    y_ref = np.load(fixture_dir / "intermediate" / f"{clip}_librosa_y_22050.npy")
    env_ref = np.load(fixture_dir / "intermediate" / f"{clip}_onset_env.npy")
    # onset algorithm alone, on what librosa.load returned: measured bit-identical envelope
    env, onsets = audio_onsets_from_librosa_y(y_ref)
    assert env.dtype == np.float32 and env.shape == env_ref.shape
    np.testing.assert_allclose(env, env_ref, rtol=1e-5, atol=1e-5)
    assert onsets.tolist() == want["audio_onsets_s"]
    # full path from the mp4: same length/alignment as audioread's ffmpeg decode (80,896 samples at 16 kHz,
    # priming trimmed, tail padding kept); AAC decoders differ by <= 1 LSB of 16-bit in a handful of samples
    y = librosa_load_mono(data.audio, data.sample_rate)
    assert y.dtype == np.float32 and y.shape == y_ref.shape == (want["librosa_len"],)
    assert np.abs(y - y_ref).max() < 1e-4
    env_mp4, onsets_mp4 = audio_onsets(data.audio, data.sample_rate)
    np.testing.assert_allclose(env_mp4, env_ref, atol=1e-3)
    assert onsets_mp4.tolist() == want["audio_onsets_s"]


def test_per_clip_mean_and_results_line(expected, result):
    assert [c.clip_id for c in result.per_clip] == CLIPS
    for clip in result.per_clip:
        assert clip.official == expected["per_clip"][clip.clip_id]["iou"]  # exact floats, incl. the 3.0 quirk
    assert result.official == expected["mean_iou"] == 1.3452380952380951
    assert result.official_line() == expected["results_out"]
    assert result.num_undefined == 0


def test_error_case_is_undefined_not_a_crash(fixture_dir, decoded):
    data = decoded["e1_still"]
    want = json.loads((fixture_dir / "error_case" / "expected.json").read_text())["per_clip"]["e1_still"]
    assert want["error"]["type"] == "ZeroDivisionError"
    score = score_clip("e1_still", data.video, data.fps, data.audio, data.sample_rate)
    assert score.video_peaks.size == 0 and score.audio_onsets.size == 0
    assert np.all(score.motion_curve == score.motion_curve[0])
    np.testing.assert_allclose(score.motion_curve, want["flow_trajectory"], rtol=1e-6)
    env_ref = np.load(fixture_dir / "error_case" / "intermediate" / "e1_still_onset_env.npy")
    np.testing.assert_allclose(score.onset_envelope, env_ref, atol=1e-6)
    assert score.official is None and score.corrected is None
    only = TemporalAVAlignResult(per_clip=[score])
    assert only.official is None and only.num_undefined == 1
    with pytest.raises(ValueError, match="undefined"):
        only.official_line()


def test_undefined_clips_are_left_out_of_the_mean(decoded, result):
    data = decoded["e1_still"]
    still = score_clip("e1_still", data.video, data.fps, data.audio, data.sample_rate)
    mixed = TemporalAVAlignResult(per_clip=[result.per_clip[0], still, *result.per_clip[1:]])
    assert mixed.num_clips == 4 and mixed.num_undefined == 1 and mixed.undefined_clips == ["e1_still"]
    assert mixed.official == result.official
    assert mixed.to_dict()["num_undefined"] == 1


def test_corrected_variant_caps_at_one(result):
    by_id = {c.clip_id: c for c in result.per_clip}
    t3 = by_id["t3_multi"]
    assert len(t3.audio_onsets) == 3 and len(t3.video_peaks) == 1
    assert t3.official == 3.0
    assert t3.corrected == 1 / (3 + 1 - 1)  # one peak matched once
    for clip in result.per_clip:
        assert 0.0 <= clip.corrected <= 1.0 and clip.corrected <= clip.official
    assert by_id["t1_sync"].corrected == 0.75 and by_id["t2_jerky"].corrected == 0.2857142857142857
    assert result.corrected <= 1.0


# --------------------------------------------------------------------------------------------------- units


def test_grey_matches_opencv_on_bgr():
    cv2 = pytest.importorskip("cv2")
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 16, 24, 3), dtype=np.uint8)
    want = np.stack([cv2.cvtColor(np.ascontiguousarray(f[..., ::-1]), cv2.COLOR_BGR2GRAY) for f in frames])
    assert np.array_equal(gray_frames(frames), want)


def test_local_maxima_are_strict_and_skip_the_ends():
    assert strict_local_maxima([5.0, 1.0, 3.0, 3.0, 1.0, 2.0, 0.5, 9.0]).tolist() == [5]
    assert strict_local_maxima([1.0, 2.0]).tolist() == []
    curve = motion_curve(np.zeros((3, 32, 32), np.uint8))
    assert curve.shape == (3,) and curve[0] == curve[1]


def test_motion_curve_is_the_same_on_one_or_several_threads():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    gray = np.stack([np.roll(base, (i * 3) % 7, axis=1) for i in range(9)])
    one = motion_curve(gray, threads=1)
    for threads in (2, 3, None):
        # OpenCV parallelises inside a call only when called from one thread: the sums differ at ~1e-10
        np.testing.assert_allclose(motion_curve(gray, threads=threads), one, rtol=1e-8, atol=1e-12)
    assert one.shape == (9,) and one[0] == one[1] and one[1:].max() > 0.5


def test_official_iou_rule():
    fps = 4.0
    # open interval: exactly 1/fps away does not count
    assert temporal_iou_official([1.25], [1.0], fps) == 0.0
    assert temporal_iou_official([1.2], [1.0], fps) == 1.0
    # several onsets on one peak: above 1
    assert temporal_iou_official([0.9, 1.0, 1.1], [1.0], fps) == 3.0
    assert temporal_iou_official([], [1.0], fps) == 0.0
    assert temporal_iou_official([1.0], [], fps) == 0.0
    assert temporal_iou_official([], [], fps) is None
    assert temporal_iou_corrected([], [], fps) is None


def test_matching_is_maximum():
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    # smallest-difference greedy would find 1 pair here
    assert len(match_onsets_to_peaks([0.2, 0.45], [0.0, 0.3], 4.0)) == 2
    rng = np.random.default_rng(0)
    for _ in range(300):
        onsets = np.round(rng.uniform(0, 5, rng.integers(0, 8)), 2)
        peaks = np.round(rng.uniform(0, 5, rng.integers(0, 6)), 2)
        pairs = match_onsets_to_peaks(onsets, peaks, 4.0)
        assert len({a for a, _ in pairs}) == len({v for _, v in pairs}) == len(pairs)
        inside = (peaks[None, :] - 0.25 < onsets[:, None]) & (onsets[:, None] < peaks[None, :] + 0.25)
        assert all(inside[a, v] for a, v in pairs)
        if onsets.size and peaks.size:
            adjacency = inside.astype(np.int8)
            best = int((maximum_bipartite_matching(csr_matrix(adjacency), perm_type="column") >= 0).sum())
        else:
            best = 0
        assert len(pairs) == best


def test_bad_inputs_raise_value_errors():
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="fps"):
        video_motion_peaks(frames, 0.0)
    with pytest.raises(ValueError, match="uint8"):
        gray_frames(frames.astype(np.float32))
    with pytest.raises(ValueError, match="at least 2 frames"):
        video_motion_peaks(frames[:1], 4.0)
    with pytest.raises(ValueError, match="channels, samples"):
        audio_onsets(np.zeros(16000, np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        audio_onsets(np.full((2, 16000), np.nan, np.float32), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        audio_onsets(np.zeros((2, 16000), np.float32), 0)
    with pytest.raises(ValueError, match="finite"):
        temporal_iou_official([np.inf], [1.0], 4.0)


def test_round_off_bumps_of_the_flow_curve_are_not_peaks(monkeypatch):
    """Farnebäck's mean flow differs between calls in the last bits; on a still stretch those bumps must not
    become peaks (they changed from run to run), while a real peak stays."""
    from savg_hub.evaluation import temporal

    still = np.full(20, 0.000243)
    still[[3, 7, 12]] += np.array([1, 3, 2]) * 1e-17  # round-off-sized bumps (representable at this level)
    still[15] += 0.05  # a real motion peak
    monkeypatch.setattr(temporal, "motion_curve", lambda gray: still.copy())
    curve, peaks = temporal.video_motion_peaks(np.zeros((20, 8, 8, 3), np.uint8), 4.0)
    assert np.array_equal(curve, still)
    assert peaks.tolist() == [15 / 4.0]
