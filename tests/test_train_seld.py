"""Stereo SELD training: crop/target alignment, LR schedule, frame metric, train + resume, the embedded weights."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from starss_factory import Event, make_recording

from savg_hub.data.builder import BuilderConfig, build_svgsa24
from savg_hub.data.hf_dataset import DatasetFolder
from savg_hub.evaluation.seld import SELDInference
from savg_hub.evaluation.seld_metrics import seld_frame_scores
from savg_hub.models.stereo_seld import StereoSELDModel
from savg_hub.training.seld import (
    SELDCropDataset,
    SELDTrainingConfig,
    seld_learning_rate,
    seld_loss,
    swa_update_due,
    update_batch_norm,
)

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "savg_hub" / "assets" / "weights" / "stereo-seld-synthetic"


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two 6-s recordings: speech (class 0) at azimuth +30° for 0-3 s, then an instrument (class 9) at -20°."""
    root = tmp_path_factory.mktemp("seld-data")
    events = [Event(0.0, 3.0, 0, 30.0), Event(3.0, 6.0, 9, -20.0, source=1)]
    recordings = [
        make_recording(root / "src", split, "fold3_room1_mix001", events, duration=6.0, width=480, height=240,
                       seed=index)
        for index, split in enumerate(("dev-train-x", "dev-test-x"))
    ]
    config = BuilderConfig(dev_window_hop=0.5, dev_yaw_step=20.0, eval_window_hop=1.0, eval_yaw_step=20.0,
                           video_preset="ultrafast", num_workers=1)
    return build_svgsa24(recordings, root / "svgsa24", config, name="tiny", progress=False).out


def test_crop_targets_align_with_labels_and_features(tiny_dataset):
    torch.manual_seed(0)
    data = SELDCropDataset(tiny_dataset, "dev")
    meta = DatasetFolder(tiny_dataset).metadata("dev")
    assert len(data) == len(meta) >= 2
    index = next(i for i, row in enumerate(meta) if row["start_time"] == 0.0 and row["yaw"] == 0.0)
    labels = meta[index]["labels"]
    item = data.crop(index, 240)
    assert item["features"].shape == (3, 257, 128) and item["features"].dtype == torch.float32
    for key in ("activity", "x", "mask"):
        assert item[key].shape == (2, 128) and item[key].dtype == torch.float32
    # net frame t of the crop is label frame (240 + t) // 10: speech up to label frame 29, instrument after
    frames = (240 + np.arange(128)) // 10
    speech = np.isin(frames, [f for f, c in zip(labels["frame"], labels["class"]) if c == 0])
    assert speech[:60].all() and not speech[60:].any()
    np.testing.assert_array_equal(item["activity"][0].numpy(), speech.astype(np.float32))
    np.testing.assert_array_equal(item["activity"][1].numpy(), (~speech).astype(np.float32))
    np.testing.assert_array_equal(item["mask"].numpy(), item["activity"].numpy())
    x_speech = labels["x"][labels["class"].index(0)]
    x_instrument = labels["x"][labels["class"].index(1)]
    assert x_speech < 128 < x_instrument  # +30° is left of centre, -20° right
    np.testing.assert_allclose(item["x"][0, :60].numpy(), x_speech / 256, rtol=1e-6)
    np.testing.assert_allclose(item["x"][1, 60:].numpy(), x_instrument / 256, rtol=1e-6)
    # the features switch from the left source to the right one where the labels do (crop frame 60)
    magnitude = item["features"][:2].numpy()
    level_difference = np.log((magnitude[0] ** 2).sum(0) / (magnitude[1] ** 2).sum(0))
    switch = int(np.argmax(level_difference < 0))
    assert abs(switch - 60) <= 2, switch
    # a mirrored crop swaps left and right and moves x to 255 - x
    mirrored = data.crop(index, 240, swap=True)
    np.testing.assert_array_equal(mirrored["features"][0], item["features"][1])
    np.testing.assert_allclose(mirrored["x"][0, :60].numpy(), (255 - x_speech) / 256, rtol=1e-6)
    np.testing.assert_array_equal(mirrored["activity"], item["activity"])
    phase = item["features"][2].numpy()
    np.testing.assert_allclose(mirrored["features"][2].numpy(), np.where(phase > 0, 2 * np.pi - phase, 0), atol=1e-6)
    # the segment STFT of a crop equals the whole clip's centred STFT
    from savg_hub.training.seld import training_features

    whole = training_features(data.audio[index], center=True)
    for start in (0, 1, 240, 372):
        np.testing.assert_allclose(data.crop(index, start)["features"].numpy(), whole[..., start : start + 128],
                                   rtol=1e-5, atol=1e-5)
    # random crops stay inside the clip
    starts = {int(data[index]["start"]) for _ in range(20)}
    assert min(starts) >= 0 and max(starts) <= 500 - 128 and len(starts) > 1


def test_learning_rate_schedule_matches_official_recipe():
    config = SELDTrainingConfig()
    expected = {0: 2e-4, 1: 3.6e-4, 4: 8.4e-4, 5: 1e-3,
                15: 5e-4 + 2.5e-4 * (1 + math.cos(math.pi * 10 / 25)),
                29: 5e-4 + 2.5e-4 * (1 + math.cos(math.pi * 24 / 25)), 30: 5e-4, 39: 5e-4}
    for epoch, lr in expected.items():
        assert seld_learning_rate(epoch * 1000, config) == pytest.approx(lr, rel=1e-12), epoch
        assert seld_learning_rate(epoch * 1000 + 999, config) == pytest.approx(lr, rel=1e-12), epoch
    assert [s for s in range(0, 40_001, 500) if swa_update_due(s, config)] == list(range(31_000, 40_001, 1000))
    with pytest.raises(ValueError, match="steps_per_epoch"):
        SELDTrainingConfig(steps_per_epoch=0)
    with pytest.raises(ValueError, match="unknown config keys"):
        SELDTrainingConfig.from_dict({"learning_rat": 1e-3})
    with pytest.raises(ValueError, match="128"):
        SELDTrainingConfig.from_dict({"model": {"pool_sizes": [[3, 2], [1, 2], [1, 2], [1, 2]]}})


def test_frame_metric_on_hand_made_predictions():
    reference = np.array([[0, 0, 100.0], [1, 0, 100.0], [2, 0, 100.0], [3, 1, 200.0], [4, 1, 200.0]])
    prediction = np.array([
        [0, 0, 140.0],   # TP: exactly at the 40-px tolerance
        [1, 0, 141.0],   # location FP + FN (detected, too far)
        [2, 1, 100.0],   # wrong class: FP for class 1, FN for class 0
        [3, 1, 190.0],   # TP
        [5, 1, 200.0],   # nothing there: FP
    ])                   # frame 4 class 1 missed: FN
    scores = seld_frame_scores([prediction], [reference], num_classes=2, x_tolerance=40.0)
    speech, instrument = scores.per_class
    assert (speech.location_dependent.tp, speech.location_dependent.fp, speech.location_dependent.fn) == (1, 1, 2)
    assert (instrument.location_dependent.tp, instrument.location_dependent.fp,
            instrument.location_dependent.fn) == (1, 2, 1)
    assert speech.location_dependent.f_score == pytest.approx(2 / (2 + 3))
    assert (speech.location_independent.tp, speech.location_independent.fn) == (2, 1)
    assert speech.position_error == pytest.approx((40 + 41) / 2)
    assert instrument.position_error == pytest.approx(10.0)
    assert scores.overall.location_dependent.tp == 2
    result = scores.to_dict(["speech", "instrument"])
    assert result["per_class"]["speech"]["recall"] == pytest.approx(1 / 3)
    # rows at or after num_frames are ignored; a perfect prediction scores 1
    perfect = seld_frame_scores([reference], [reference], num_frames=[3])
    assert perfect.per_class[0].location_dependent.f_score == 1.0 and perfect.per_class[1].num_pairs == 0
    with pytest.raises(ValueError, match="class 2"):
        seld_frame_scores([np.array([[0, 2, 1.0]])], [reference])


def test_loss_and_batch_norm_update():
    logits = torch.zeros(2, 1, 2, 8)
    doa = torch.full((2, 1, 2, 8), 0.5)
    activity = torch.zeros(2, 2, 8)
    mask = torch.zeros(2, 2, 8)
    mask[0, 0, :4] = 1
    x = torch.full((2, 2, 8), 0.25)
    loss, parts = seld_loss(logits, doa, activity, x, mask)
    assert parts["sed"] == pytest.approx(math.log(2)) and parts["doa"] == pytest.approx(0.0625)
    assert float(loss) == pytest.approx(0.5 * math.log(2) + 0.5 * 0.0625)
    model = StereoSELDModel(block_out_channels=(4, 4, 4, 8), num_attention_heads=2, feedforward_dim=8).eval()
    batches = [torch.randn(2, 3, 257, 16) * (i + 1) for i in range(3)]
    assert update_batch_norm(model, batches) == 3
    norm = model.sed_blocks[0].norm1
    assert norm.momentum == 0.1 and int(norm.num_batches_tracked) == 3 and not model.training


def _load_script():
    spec = importlib.util.spec_from_file_location("train_seld", REPO / "training" / "train_seld.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_save_resume_continue(tiny_dataset, tmp_path):
    script = _load_script()
    config = yaml.safe_load((REPO / "training" / "configs" / "seld_synthetic_small.yaml").read_text())
    config.update(
        model={"block_out_channels": [4, 4, 8, 8], "num_attention_heads": 2, "feedforward_dim": 8, "num_layers": 1},
        dataset=str(tiny_dataset), batch_size=2, max_steps=4, steps_per_epoch=2, warmup_epochs=1, cosine_epochs=1,
        swa_start_epoch=1, bn_update_batches=2, checkpoint_every=2, checkpoints_total_limit=None, eval_every=2,
        eval_max_clips=2, final_eval_max_clips=2, log_every=1,
    )
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    first = script.main(["--config", str(config_path), "--output-dir", str(out), "--max-steps", "2", "--no-progress"])
    assert first["step"] == 2 and first["swa_models_averaged"] == 0
    assert [step for step, _ in script.list_checkpoints(out)] == [2]
    checkpoint = out / "checkpoints" / "checkpoint-0000002"
    assert json.loads((checkpoint / "training_config.json").read_text())["max_steps"] == 2
    assert (checkpoint / "training_config.yaml").is_file()
    with pytest.raises(FileExistsError):
        script.main(["--config", str(config_path), "--output-dir", str(out), "--no-progress"])

    second = script.main(["--config", str(config_path), "--output-dir", str(out), "--resume", "--no-progress"])
    assert second["step"] == 4 and second["swa_models_averaged"] == 1  # SWA after pseudo-epoch 2 > 1
    assert [step for step, _ in script.list_checkpoints(out)] == [2, 4]
    history = [json.loads(line) for line in (out / "eval_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [2, 4]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["num_clips"] == 2 and set(evaluation["per_class"]) == {"speech", "instrument"}
    assert len(evaluation["weights_sha256"]) == 64
    model = StereoSELDModel.from_pretrained(out / "model")
    assert list(model.config.block_out_channels) == [4, 4, 8, 8]
    assert (out / "model" / "training_config.yaml").is_file()

    # score the saved network on the whole eval split and render its model card from the run
    card = tmp_path / "card" / "README.md"
    measured = script.main(["--config", str(config_path), "--output-dir", str(tmp_path / "scored"),
                            "--evaluate", str(out / "model"), "--model-card", str(card), "--run-dir", str(out)])
    assert measured["num_clips"] == DatasetFolder(tiny_dataset).num_rows("eval")
    text = card.read_text()
    assert text.startswith("---\nlicense: apache-2.0") and "| speech |" in text and "| instrument |" in text
    assert "--evaluate" in text and "SAVGBench" in text and "synthetic" in text


@pytest.mark.skipif(not (EMBEDDED / "config.json").is_file(), reason="embedded SELD weights not trained yet")
def test_embedded_weights_load_and_run(tiny_dataset, tmp_path, monkeypatch):
    model = StereoSELDModel.from_pretrained(EMBEDDED)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    from savg_hub.training.seld import iter_split_audio

    audio = next(iter_split_audio(tiny_dataset, "eval"))
    prediction = SELDInference(model, batch_size=8).predict([audio])[0]
    assert prediction.sed_logits.shape == (1, 2, 600) and prediction.rows.shape[1] == 3
    assert prediction.rows[:, 0].max() < 50

    monkeypatch.setenv("SAVG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from savg_hub import weights

    assert weights.default_weights("stereo-seld") == ("stereo-seld-synthetic", False)
    assert weights.resolve_weights("stereo-seld-synthetic", "stereo-seld") == weights.ASSETS / "stereo-seld-synthetic"
