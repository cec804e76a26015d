"""Official FVD / KVD / FAD on decoded clips (selection + features + statistics), with tiny real networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from savg_hub.evaluation.fad import AudioCLIPFeatureExtractor
from savg_hub.evaluation.frechet import fad_official, frechet_distance_official, kernel_distance_official
from savg_hub.evaluation.fvd import I3DFeatureExtractor, official_uint8_round_trip
from savg_hub.evaluation.quality import (
    QualityEvaluator,
    WindowExcerpts,
    clip_content_id,
    official_audio_44k,
    window_excerpts,
    window_video,
)
from savg_hub.evaluation.selection import VideoTiming, official_selection, window_audio
from savg_hub.media.clip import Clip
from savg_hub.models.audioclip import AudioCLIPAudioModel
from savg_hub.models.i3d import InceptionI3DModel

NUM = 4  # windows per set: enough for the statistics, small enough for the CPU


def _clip(seed: int, name: str, silent: bool = False) -> Clip:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, size=(20, 256, 256, 3), dtype=np.uint8)
    video[:, :56] = 0
    video[:, 200:] = 0
    t = np.arange(80_000) / 16_000
    audio = np.stack([0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t), 0.2 * rng.standard_normal(80_000)])
    audio = np.zeros_like(audio) if silent else audio
    return Clip(video=video, audio=audio.astype(np.float32), fps=4.0, sample_rate=16_000, clip_id=name)


@pytest.fixture(scope="module")
def extractors():
    torch.manual_seed(0)
    i3d = InceptionI3DModel(width_divisor=8)
    torch.manual_seed(1)
    audioclip = AudioCLIPAudioModel(n_fft=256, hop_length=128, win_length=200, layers=(1, 1, 1, 1), groups=2,
                                    width_per_group=4, base_channels=8, embed_dim=16)
    return I3DFeatureExtractor(i3d, batch_size=NUM), AudioCLIPFeatureExtractor(audioclip, mode="official", batch_size=8)


def test_window_media_follow_the_official_loader():
    clip = _clip(0, "a")
    window = official_selection([VideoTiming("a", 20, 4.0)], [VideoTiming("a", 20, 4.0)])[0][0]
    frames = window_video(clip, window)
    assert frames.shape == (20, 3, 256, 256) and frames.dtype == np.uint8
    expected = official_uint8_round_trip(torch.from_numpy(clip.video[window.source_frames]).permute(0, 3, 1, 2))
    assert np.array_equal(frames, expected.numpy())
    audio = official_audio_44k(clip)
    assert audio.shape == (2, 220_500) and audio.dtype == np.float64
    assert np.array_equal(audio * 32768, np.round(audio * 32768))  # on the 16-bit grid
    with pytest.raises(ValueError, match="256, 256, 3"):
        window_video(Clip(clip.video[:, :128], clip.audio, 4.0, 16_000, clip_id="small"), window)


def test_evaluate_equals_the_official_steps_by_hand(extractors, tmp_path):
    i3d, audioclip = extractors
    fake = [_clip(i, f"gen{i}") for i in range(2)]
    real = [_clip(10 + i, f"ref{i}") for i in range(2)]
    evaluator = QualityEvaluator(i3d, audioclip, num_samples=NUM, cache_dir=tmp_path, weights_id="tiny")
    result = evaluator.evaluate(fake, real)

    fake_windows, real_windows = official_selection(
        [VideoTiming(c.clip_id, 20, 4.0) for c in fake], [VideoTiming(c.clip_id, 20, 4.0) for c in real], NUM)
    assert result.fake_windows == [(fake[w.video_index].clip_id, w.window_index) for w in fake_windows]
    assert result.real_windows == [(real[w.video_index].clip_id, w.window_index) for w in real_windows]

    def features(clips, windows):
        video = np.stack([window_video(clips[w.video_index], w) for w in windows])
        audio = np.stack([window_audio(official_audio_44k(clips[w.video_index]), w) for w in windows])
        return i3d.logits(video), audioclip.embed(audio, 44_100)

    (fi, fa), (ri, ra) = features(fake, fake_windows), features(real, real_windows)
    assert result.fvd == frechet_distance_official(fi, ri)
    assert result.kvd == kernel_distance_official(fi, ri)
    assert result.fad == fad_official(fa, ra)
    assert np.isfinite([result.fvd, result.kvd, result.fad]).all() and result.fvd > 0
    assert not result.reference_cached and result.num_silent_windows == 0

    again = evaluator.evaluate(fake, real)  # the reference features now come from the cache
    assert again.reference_cached
    assert (again.fvd, again.kvd, again.fad) == (result.fvd, result.kvd, result.fad)
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_cache_key_follows_content_and_silence_is_counted(extractors, tmp_path):
    i3d, audioclip = extractors
    fake = [_clip(0, "gen0", silent=True)]
    real = [_clip(5, "ref0")]
    evaluator = QualityEvaluator(i3d, audioclip, num_samples=NUM, cache_dir=tmp_path, weights_id="tiny")
    first = evaluator.evaluate(fake, real)
    assert first.num_silent_windows == NUM
    changed = [_clip(6, "ref0")]  # same name, other content: a new cache entry
    assert clip_content_id(changed[0]) != clip_content_id(real[0])
    second = evaluator.evaluate(fake, changed)
    assert not second.reference_cached and len(list(tmp_path.glob("*.npz"))) == 2
    with pytest.raises(ValueError, match="num_samples"):
        QualityEvaluator(i3d, audioclip, num_samples=1)


def test_whole_clip_variants_with_intervals(extractors, tmp_path):
    i3d, audioclip = extractors
    fake = [_clip(i, f"gen{i}") for i in range(3)]
    real = [_clip(20 + i, f"ref{i}") for i in range(3)]
    evaluator = QualityEvaluator(i3d, audioclip, num_samples=NUM, cache_dir=tmp_path, weights_id="tiny")
    variants = evaluator.whole_clip(fake, real, num_resamples=20)
    assert set(variants) == {"whole_clip_fvd", "whole_clip_kvd", "whole_clip_fad", "whole_clip_fad_mid",
                             "whole_clip_fad_side"}
    for name, entry in variants.items():
        assert entry["num_fake"] == 3 and entry["num_real"] == 3, name
        assert np.isfinite([entry["value"], entry["low"], entry["high"]]).all(), name
        assert entry["low"] <= entry["high"], name
    features = evaluator.whole_clip_features(fake)
    assert features["i3d"].shape == (3, 400) and features["side"].shape == (3, 16)
    # the corrected-mode embedding of a clip does not depend on the other clips of its batch
    alone = evaluator.whole_clip_features(fake[:2])
    np.testing.assert_allclose(alone["audio"], features["audio"][:2], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=">= 2 clips"):
        evaluator.whole_clip(fake[:1], real)


def test_feature_models_fall_back_to_labelled_stand_ins(tmp_path, monkeypatch):
    from savg_hub.evaluation.quality import load_quality_models, weights_id

    monkeypatch.setenv("SAVG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    i3d, audioclip, records = load_quality_models()
    assert [r.source for r in records] == ["stand-in", "stand-in"]
    assert all("random init seed 0" in r.name for r in records)
    again, _, records_again = load_quality_models()
    for a, b in zip(i3d.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    assert weights_id(records) == weights_id(records_again)
    with pytest.raises(ValueError, match="not available offline"):
        load_quality_models(allow_stand_in=False)

    folder = tmp_path / "i3d-small"
    InceptionI3DModel(width_divisor=16).save_pretrained(folder)
    i3d, _, records = load_quality_models(i3d_weights=folder)
    assert records[0].source == "user" and records[0].sha256 and i3d.model.config.width_divisor == 16
    assert records[1].source == "stand-in"


def test_window_excerpts_keep_frames_once_per_clip_and_gather_like_a_stacked_array():
    clips = {0: _clip(0, "a"), 3: _clip(1, "b")}
    timings = [VideoTiming(name, 20, 4.0) for name in ("a", "x", "y", "b")]
    windows = [w for w in official_selection(timings, timings, 40)[0] if w.video_index in clips][:12]
    excerpts = window_excerpts(clips, windows)
    stacked = np.stack([window_video(clips[w.video_index], w) for w in windows])
    assert len(excerpts.frames) == len({w.video_index for w in windows}) <= 2
    assert np.array_equal(excerpts.videos, stacked)
    batches = [batch.copy() for batch in excerpts.video_batches(5)]
    assert [len(b) for b in batches] == [5, 5, 2] and np.array_equal(np.concatenate(batches), stacked)

    part = excerpts[5:7]  # keeps only the frames its rows use
    assert np.array_equal(part.videos, stacked[5:7]) and part.labels == excerpts.labels[5:7]
    assert len(part.frames) == len({excerpts.rows[i][0] for i in (5, 6)})
    joined = WindowExcerpts.concatenate([excerpts[i : i + 1] for i in range(len(excerpts))])
    assert np.array_equal(joined.videos, stacked) and np.array_equal(joined.audio, excerpts.audio)
    assert len(joined.frames) == len(excerpts.frames)  # one-row parts of a clip share its frames
    assert len(window_excerpts(clips, [])) == 0 and window_excerpts(clips, []).videos.shape[0] == 0


def test_feature_cache_key_is_the_digest_of_the_stacked_windows(extractors, tmp_path):
    import hashlib
    import json

    i3d, audioclip = extractors
    clips = [_clip(0, "a"), _clip(1, "b")]
    windows = official_selection([VideoTiming(c.clip_id, 20, 4.0) for c in clips],
                                 [VideoTiming(c.clip_id, 20, 4.0) for c in clips], NUM)[0]
    excerpts = window_excerpts(clips, windows)
    evaluator = QualityEvaluator(i3d, audioclip, num_samples=NUM, cache_dir=tmp_path, weights_id="tiny")
    digest = hashlib.sha256()  # keys written before the frames were kept per clip stay valid
    digest.update(json.dumps({"version": 1, "weights": "tiny", "mode": "official", "batch": [NUM, 8]},
                             sort_keys=True).encode())
    digest.update(np.ascontiguousarray(excerpts.videos).tobytes())
    digest.update(np.ascontiguousarray(excerpts.audio).tobytes())
    assert evaluator._cache_key(excerpts) == digest.hexdigest()
    features = evaluator.compute_features(excerpts)
    assert np.array_equal(features.i3d, i3d.logits(excerpts.videos))
