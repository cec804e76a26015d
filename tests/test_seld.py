"""Stereo SELD: network, checkpoint converter and the official inference path, against the parity fixtures.

The official network is rebuilt with the fixtures' deterministic formula weights
(``tests/formula_weights.py``) and loaded through the converter, so the converter's key accounting is
exercised on the real key set.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from formula_weights import formula_state_dict

from savg_hub.convert.seld import (
    convert_seld_checkpoint,
    convert_seld_state_dict,
    load_official_seld_checkpoint,
    official_seld_key_to_savg,
)
from savg_hub.evaluation import seld as seld_eval
from savg_hub.evaluation.seld import (
    SELDInference,
    compute_seld_features,
    loop_pad_features,
    read_seld_csv,
    seld_postprocess,
    seld_window_start_frames,
    seld_window_start_times,
    write_seld_csv,
)
from savg_hub.media import read_audio
from savg_hub.models.stereo_seld import StereoSELDModel

CLIPS = ["clip_a_80000", "clip_b_80250", "clip_c_81105", "clip_d_96000", "clip_h_76800"]
TINY_CONFIG = {"block_out_channels": (4, 8), "pool_sizes": ((2, 2), (2, 2)), "num_layers": 1,
               "num_attention_heads": 2, "feedforward_dim": 16}


@pytest.fixture(scope="module")
def seld_dir(official_fixtures: Path) -> Path:
    return official_fixtures / "seld"


@pytest.fixture(scope="module")
def official_state(seld_dir: Path) -> dict[str, np.ndarray]:
    """The formula ``model_state_dict`` under the official key names."""
    return formula_state_dict(seld_dir)


@pytest.fixture(scope="module")
def official_model(official_state) -> StereoSELDModel:
    model = StereoSELDModel()
    model.load_state_dict(convert_seld_state_dict(official_state), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def e2e_predictions(official_model, seld_dir):
    """All five fixture clips through one batched ``predict`` call."""
    audios = []
    for clip in CLIPS:
        audio, rate = read_audio(seld_dir / "e2e" / "audio" / f"{clip}.wav")
        assert rate == 16000 and audio.dtype == np.float32
        audios.append(audio)
    predictions = SELDInference(official_model, batch_size=64).predict(audios)
    return dict(zip(CLIPS, predictions))


def _tiny_model(seed: int = 0) -> StereoSELDModel:
    torch.manual_seed(seed)
    model = StereoSELDModel(**TINY_CONFIG)
    with torch.no_grad():  # non-trivial BatchNorm statistics and cross-stitch weights
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
        for stitch in model.cross_stitch:
            stitch.weight.normal_(0.5, 0.3)
    return model.eval()


# --- network and converter ---------------------------------------------------------------------------------


def test_parameter_count_and_every_official_key_maps(seld_dir):
    model = StereoSELDModel()
    assert sum(p.numel() for p in model.parameters()) == 17_788_996
    keys = [name for name, _, _ in json.loads((seld_dir / "keys.json").read_text())]
    mapped = {official_seld_key_to_savg(key) for key in keys}
    assert None not in mapped and mapped == set(model.state_dict())


def test_converter_names_bad_keys_and_shapes(official_state):
    state = dict(official_state)
    state["fc_sed_track1.weight"] = np.zeros((3, 512), np.float32)
    state["module.extra"] = np.zeros(1, np.float32)
    del state["stitch2"]
    with pytest.raises(ValueError) as error:
        convert_seld_state_dict(state)
    message = str(error.value)
    assert "module.extra" in message
    assert "cross_stitch.1.weight" in message  # the model entry left without a value
    assert "fc_sed_track1.weight: shape (3, 512), expected (2, 512)" in message


def test_network_matches_official(official_model, seld_dir):
    features = torch.from_numpy(np.load(seld_dir / "network" / "input_features.npy"))
    with torch.inference_mode():
        output = official_model(features)
    sed = np.load(seld_dir / "network" / "output_sed_logits.npy")
    doa = np.load(seld_dir / "network" / "output_doa.npy")
    assert output.sed_logits.shape == output.doa.shape == (2, 1, 2, 128)
    np.testing.assert_allclose(output.sed_logits.numpy(), sed, rtol=0, atol=1e-5)
    np.testing.assert_allclose(output.doa.numpy(), doa, rtol=0, atol=1e-5)
    tuple_output = official_model(features[:1], return_dict=False)
    assert isinstance(tuple_output, tuple) and len(tuple_output) == 2


def test_official_checkpoint_loads_without_running_pickled_code(official_state, tmp_path):
    marker = tmp_path / "executed"

    class Payload:  # what an untrusted pickle could do: call exec on load
        def __reduce__(self):
            return (builtins.exec, (f"open({str(marker)!r}, 'w').close()",))

    checkpoint = {
        "model_state_dict": {key: torch.from_numpy(value) for key, value in official_state.items()},
        "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999)}]},
        "scheduler_state_dict": {"base_values": [np.float64(1e-3)], "t_initial": 25, "payload": Payload()},
        "rng_state": torch.zeros(16, dtype=torch.uint8),
        "cuda_rng_state": [torch.zeros(16, dtype=torch.uint8)],
    }
    path = tmp_path / "params_swa.pth"
    torch.save(checkpoint, path)
    state = load_official_seld_checkpoint(path)
    assert not marker.exists()
    assert set(state) == set(official_state)
    out_dir = convert_seld_checkpoint(path, tmp_path / "stereo-seld")
    assert not marker.exists()
    assert (out_dir / "config.json").is_file() and list(out_dir.glob("*.safetensors"))
    loaded = StereoSELDModel.from_pretrained(out_dir)
    np.testing.assert_array_equal(loaded.cross_stitch[2].weight.detach().numpy(), official_state["stitch3"])


def test_save_pretrained_round_trip(tmp_path):
    model = _tiny_model()
    model.save_pretrained(tmp_path / "tiny")
    loaded = StereoSELDModel.from_pretrained(tmp_path / "tiny").eval()
    assert list(loaded.config.block_out_channels) == [4, 8] and loaded.config.num_layers == 1
    features = torch.rand(2, 3, 257, 128) * 5
    with torch.inference_mode():
        expected, actual = model(features), loaded(features)
    torch.testing.assert_close(actual.sed_logits, expected.sed_logits, rtol=0, atol=0)
    torch.testing.assert_close(actual.doa, expected.doa, rtol=0, atol=0)


# --- features, windows, post-processing ---------------------------------------------------------------------


def test_features_match_official_bit_for_bit(seld_dir):
    audio, _ = read_audio(seld_dir / "e2e" / "audio" / "clip_a_80000.wav")
    features = compute_seld_features(audio)
    expected = np.load(seld_dir / "e2e" / "intermediate" / "clip_a_80000_features.npy")
    assert features.dtype == np.float32 and features.shape == (3, 257, 500)
    np.testing.assert_array_equal(features, expected)
    assert loop_pad_features(features).shape == (3, 257, 632)


def test_exact_stft_helpers_are_accurate_transforms():
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((7, 512))
    reference = np.fft.rfft(frames)
    np.testing.assert_allclose(seld_eval._rfft_official(frames), reference, rtol=0, atol=1e-12)
    y, x = (rng.standard_normal((2, 10_000)) * 10.0 ** rng.uniform(-3, 3, (2, 10_000))).astype(np.float32)
    reference_angle = np.arctan2(y.astype(np.float64), x)
    np.testing.assert_allclose(seld_eval._atan2f(y, x), reference_angle, rtol=0, atol=5e-7)
    assert seld_eval._atan2f(np.float32([0.0, -0.0, 0.0]), np.float32([-0.0, 1.0, 0.0])).tolist() == [
        np.float32(np.pi), -0.0, 0.0]
    z = (x + 1j * y).astype(np.complex64)
    np.testing.assert_allclose(seld_eval._abs_complex64(z.real, z.imag), np.abs(z.astype(np.complex128)),
                               rtol=2e-7, atol=0)
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    np.testing.assert_allclose(seld_eval._official_hann_window(), periodic_hann, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("duration", "frames"),
    [(5.0, [0, 120, 240, 359, 480]), (5.01, [0, 120, 240, 359, 480]), (6.0, [0, 120, 240, 359, 480]),
     (4.8, [0, 120, 240, 359, 480]), (3.6, [0, 120, 240]), (2.4, [0, 120, 240]), (1.0, [0])],
)
def test_window_start_rule(duration, frames):
    times = seld_window_start_times(duration)
    assert seld_window_start_frames(times).tolist() == frames
    if duration == 5.0:
        assert times.tolist() == [0.0, 1.2, 2.4, 3.5999999999999996, 4.8]


def test_postprocess_threshold_drop_and_order():
    times = seld_window_start_times(4.8)  # 5 windows, CSV frames 0..59, frames >= 48 dropped
    logits = np.full((2, 600), -5.0, np.float32)
    logits[0, :] = 0.0  # class 0 active everywhere (p = 0.5)
    logits[1, 10:20] = np.log(0.19 / 0.81)  # class 1 at frame 1: p = 0.19, below the threshold
    logits[1, 20:30] = 0.0  # class 1 active at frame 2
    doa = np.tile(np.linspace(0.0, 1.0, 600, dtype=np.float32), (2, 1))
    rows, activity, x, frames = seld_postprocess(logits, doa, times, 4.8)
    assert frames.tolist() == list(range(60))
    assert rows[:, 0].max() == 47 and len(rows) == 48 + 1
    assert rows[:3, :2].tolist() == [[0, 0], [1, 0], [2, 0]] and rows[3, :2].tolist() == [2, 1]
    np.testing.assert_allclose(activity[0], 0.5)
    np.testing.assert_allclose(x[0, 0], doa[0, :10].mean() * 256, rtol=1e-6)
    # the threshold is strict: sigmoid(0) = 0.5 exactly is not > 0.5
    assert len(seld_postprocess(logits, doa, times, 4.8, threshold=0.5)[0]) == 0


# --- end to end -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", CLIPS)
def test_end_to_end_matches_official(clip, e2e_predictions, seld_dir):
    prediction = e2e_predictions[clip]
    intermediate = seld_dir / "e2e" / "intermediate"
    summary = json.loads((seld_dir / "e2e" / "summary.json").read_text())[clip]
    assert prediction.window_start_frames.tolist() == summary["window_start_frames"]
    assert prediction.window_start_times.tolist() == summary["window_start_times_s"]
    assert prediction.duration == summary["duration_s"]
    assert prediction.num_csv_frames == summary["csv_frames_kept_below"]
    np.testing.assert_allclose(prediction.sed_logits, np.load(intermediate / f"{clip}_kept_sed_logits.npy"),
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(prediction.doa, np.load(intermediate / f"{clip}_kept_doa.npy"),
                               rtol=0, atol=1e-5)
    activity = np.load(intermediate / f"{clip}_frame_activity.npy")
    np.testing.assert_allclose(prediction.frame_activity, activity, rtol=0, atol=1e-6)
    # the closest frame to the threshold must still fall on the official side
    assert np.array_equal(prediction.frame_activity > 0.2, activity > 0.2)

    expected = read_seld_csv(seld_dir / "e2e" / "expected_csv" / f"{clip}.csv")
    assert len(prediction.rows) == len(expected) == summary["n_csv_rows"]
    expected = expected[np.lexsort((expected[:, 1], expected[:, 0]))]  # multiset comparison
    np.testing.assert_array_equal(prediction.rows[:, :2], expected[:, :2])
    np.testing.assert_allclose(prediction.rows[:, 2], expected[:, 2], rtol=0, atol=1e-3)


def test_batching_across_clips_matches_one_clip_at_a_time():
    model = _tiny_model(seed=1)
    rng = np.random.default_rng(0)
    audios = [rng.uniform(-0.5, 0.5, (2, n)).astype(np.float32) for n in (80_000, 76_800, 96_000)]
    batched = SELDInference(model, batch_size=64).predict(audios)
    single = [SELDInference(model, batch_size=8).predict([audio])[0] for audio in audios]
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a.sed_logits, b.sed_logits, rtol=0, atol=1e-5)
        np.testing.assert_allclose(a.frame_activity, b.frame_activity, rtol=0, atol=1e-6)
        assert a.rows.shape == b.rows.shape


# --- input validation and CSV I/O -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audio", "rate", "match"),
    [
        (np.zeros(16000, np.float32), 16000, "mono"),
        (np.zeros((1, 16000), np.float32), 16000, "mono"),
        (np.zeros((16000, 2), np.float32), 16000, "samples-first"),
        (np.zeros((4, 16000), np.float32), 16000, r"shape \(4, 16000\)"),
        (np.zeros((2, 16000), np.float32), 44100, "sample_rate=44100"),
        (np.zeros((2, 16000), np.int16), 16000, "int16"),
        (np.full((2, 16000), np.nan, np.float32), 16000, "NaN"),
        (np.zeros((2, 100), np.float32), 16000, "at least 160"),
    ],
)
def test_bad_audio_raises_clear_errors(audio, rate, match):
    with pytest.raises(ValueError, match=match):
        compute_seld_features(audio, rate)


def test_predict_rejects_bad_clips_before_running_the_network():
    inference = SELDInference(_tiny_model())
    with pytest.raises(ValueError, match="clip 1: .*mono"):
        inference.predict([np.zeros((2, 80_000), np.float32), np.zeros(80_000, np.float32)])
    with pytest.raises(ValueError, match="too short"):
        inference.predict([np.zeros((2, 8_000), np.float32)])  # 0.5 s: the official code fails too
    with pytest.raises(TypeError, match="list"):
        inference.predict(np.zeros((2, 80_000), np.float32))


def test_csv_round_trip_and_official_format(tmp_path):
    rows = np.array([[12.0, 0.0, 131.23456789012346], [12.0, 1.0, -87.76160286557298], [49.0, 1.0, 300.5]])
    path = write_seld_csv(tmp_path / "pred" / "clip.csv", rows)
    assert path.read_text().splitlines() == ["12.0,0.0,131.23456789012346", "12.0,1.0,-87.76160286557298",
                                             "49.0,1.0,300.5"]
    np.testing.assert_array_equal(read_seld_csv(path), rows)
    other = tmp_path / "other.csv"
    other.write_text("3,1,1.5e2\n 4 , 0 , -7\n\n")
    np.testing.assert_array_equal(read_seld_csv(other), [[3, 1, 150.0], [4, 0, -7.0]])
    other.write_text("3,1\n")
    with pytest.raises(ValueError, match="other.csv:1"):
        read_seld_csv(other)
    with pytest.raises(ValueError, match="not finite"):
        write_seld_csv(tmp_path / "bad.csv", [[1.0, 0.0, np.nan]])
    assert not (tmp_path / "bad.csv").exists()


def test_empty_csv(tmp_path):
    path = write_seld_csv(tmp_path / "empty.csv", np.zeros((0, 3)))
    assert path.stat().st_size == 0
    assert read_seld_csv(path).shape == (0, 3)
    assert read_seld_csv(write_seld_csv(tmp_path / "empty2.csv", [])).shape == (0, 3)
