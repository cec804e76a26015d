"""`evaluate_suite` / `savg evaluate --reference`: all metrics in one pass, equal to each metric alone, and the
same numbers with 2 worker processes as with 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_spatial_eval import tiny_seld_model, tiny_yolox

from savg_hub.cli.main import main
from savg_hub.evaluation.clips import open_clips
from savg_hub.evaluation.fad import AudioCLIPFeatureExtractor
from savg_hub.evaluation.fvd import I3DFeatureExtractor
from savg_hub.evaluation.quality import QualityEvaluator
from savg_hub.evaluation.spatial_eval import SpatialAVAlignEvaluator
from savg_hub.evaluation.suite import SuiteConfig, SuiteModels, evaluate_suite, parse_metrics
from savg_hub.evaluation.temporal import temporal_av_align
from savg_hub.media import Clip, write_clip
from savg_hub.models.audioclip import AudioCLIPAudioModel
from savg_hub.models.i3d import InceptionI3DModel

NUM = 6  # FVD/FAD windows per set


def moving_clip(seed: int, side: str) -> Clip:
    """A bright box that drifts at varying speed and jumps on three frames, and clicks panned to one side: clear
    flow peaks and onsets (on a static stretch Farnebäck's round-off noise, which varies from call to call, would
    decide where the strict local maxima are)."""
    rng = np.random.default_rng(seed)
    video = np.zeros((20, 256, 256, 3), np.uint8)
    video[:, 56:200] = rng.integers(20, 60, (1, 144, 256, 3), dtype=np.uint8)
    x = 40
    for t in range(20):  # moves every frame (no flat stretch of the flow curve), with three clear jumps
        x += 40 if t in (4, 9 + seed % 3, 15) else 2 + (t * 7 + seed) % 5
        video[t, 100:170, x % 200 : x % 200 + 40] = 230
    audio = (rng.standard_normal((2, 80_000)) * 0.003).astype(np.float32)
    loud = 0 if side == "left" else 1
    for onset in (1.0, 2.25 + 0.25 * (seed % 3), 3.75):
        start = int(onset * 16_000)
        audio[loud, start : start + 800] += 0.6 * np.exp(-np.arange(800) / 150) * rng.standard_normal(800)
    return Clip(video, np.clip(audio, -1, 1).astype(np.float32), 4.0, 16_000)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    for i in range(3):
        write_clip(root / "gen" / f"g{i}.mp4", moving_clip(i, "left"))
    for i in range(2):
        write_clip(root / "ref" / f"r{i}.mp4", moving_clip(10 + i, "right"))
    tiny_seld_model(3).save_pretrained(root / "seld")
    tiny_yolox(0).save_pretrained(root / "yolox")
    torch.manual_seed(0)
    InceptionI3DModel(width_divisor=16).save_pretrained(root / "i3d")
    torch.manual_seed(1)
    AudioCLIPAudioModel(n_fft=256, hop_length=128, win_length=200, layers=(1, 1, 1, 1), groups=2,
                        width_per_group=4, base_channels=8, embed_dim=16).save_pretrained(root / "audioclip")
    config = SuiteConfig(seld_weights=str(root / "seld"), detector="yolox-tiny", detector_weights=str(root / "yolox"),
                         i3d_weights=str(root / "i3d"), audioclip_weights=str(root / "audioclip"), threads=1,
                         chunk_size=2, num_samples=NUM, seld_batch_size=8, detector_batch_size=8)
    return root, config


def test_metric_names():
    assert parse_metrics("all") == ("spatial", "fvd", "kvd", "fad", "temporal")
    assert parse_metrics("Spatial_AV_Align, fad") == ("spatial", "fad")
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metrics("loudness")
    with pytest.raises(ValueError, match="non-empty subset"):
        SuiteConfig(metrics=())


def test_one_pass_equals_each_metric_alone(setup, tmp_path, monkeypatch):
    root, config = setup
    monkeypatch.setenv("SAVG_HOME", str(tmp_path / "home"))
    report = evaluate_suite(root / "gen", root / "ref", config, workers=0)
    assert set(report.sections) == {"spatial_av_align", "quality", "temporal_av_align"}
    assert report.num_clips == 3 and report.clips_info["reference"]["num_clips"] == 2

    models = SuiteModels.from_config(config)
    alone = models.spatial.evaluate(open_clips(root / "gen"))
    spatial = report.sections["spatial_av_align"]
    assert (spatial.num_tp, spatial.num_fn) == (alone.num_tp, alone.num_fn)
    assert spatial.calibration_scores() == alone.calibration_scores()

    clips = [clip for _, clip in open_clips(root / "gen")]
    refs = [clip for _, clip in open_clips(root / "ref")]
    quality = models.quality.evaluate(clips, refs)
    section = report.sections["quality"]
    assert (section.fvd, section.kvd, section.fad) == (quality.fvd, quality.kvd, quality.fad)
    assert section.fake_windows == quality.fake_windows and section.num_fake_windows == NUM

    temporal = temporal_av_align((c.clip_id, c.video, c.fps, c.audio, c.sample_rate) for c in clips)
    assert report.sections["temporal_av_align"].result.official == temporal.official

    written = report.write(tmp_path / "out", results_out=tmp_path / "results.out")
    lines = (tmp_path / "results.out").read_text().splitlines(keepends=True)
    assert lines[0].startswith("AV spatial each component: num_TP: ") and lines[0].endswith(" \n")
    assert lines[1].startswith("AV_final_score: ")
    assert lines[2] == str({"fvd": section.fvd, "kvd": section.kvd, "fad": section.fad}) + "\n"
    assert lines[3] == f"Temporal AV-Align: {temporal.official!r}\n"
    data = json.loads(written["results"].read_text())
    assert data["scores"]["quality.fvd"] == section.fvd
    assert data["scores"]["temporal_av_align"] == temporal.official
    assert data["stand_in_weights"] is False
    assert {w["role"] for w in data["weights"]} == {"seld", "detector", "i3d", "audioclip"}
    header = written["per_clip"].read_text().splitlines()[0]
    assert "spatial_score" in header and "temporal_official" in header

    again = evaluate_suite(root / "gen", root / "ref", config, workers=0)  # reference features from the cache
    assert again.sections["quality"].reference_cached
    assert again.sections["quality"].fvd == section.fvd


def test_two_processes_give_the_same_numbers(setup, tmp_path, monkeypatch):
    root, config = setup
    monkeypatch.setenv("SAVG_HOME", str(tmp_path / "home"))  # no cache shared between the two runs
    config = SuiteConfig(**{**config.__dict__, "whole_clip": True, "num_resamples": 20})
    one = evaluate_suite(root / "gen", root / "ref", config, processes=1, workers=0).to_dict()
    monkeypatch.setenv("SAVG_HOME", str(tmp_path / "home2"))
    two = evaluate_suite(root / "gen", root / "ref", config, processes=2).to_dict()
    assert one["scores"] == two["scores"]
    assert one["sections"]["quality"]["fake_windows"] == two["sections"]["quality"]["fake_windows"]
    assert np.isfinite([one["scores"][f"quality.whole_clip_{m}"] for m in ("fvd", "kvd", "fad", "fad_side")]).all()


def test_cli_all_metrics_with_a_reference(setup, tmp_path, monkeypatch, capsys):
    root, config = setup
    monkeypatch.setenv("SAVG_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    code = main(["evaluate", str(root / "gen"), "--reference", str(root / "ref"), "--seld-weights",
                 str(root / "seld"), "--detector", "yolox-tiny", "--detector-weights", str(root / "yolox"),
                 "--i3d-weights", str(root / "i3d"), "--audioclip-weights", str(root / "audioclip"),
                 "--threads", "1", "--out", str(out), "--results-out", str(out / "results.out"), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "FVD" in printed and "Temporal AV-Align" in printed and "Spatial AV-Align" in printed
    assert len((out / "results.out").read_text().splitlines()) in (3, 4)  # spatial lines need SELD detections
    assert json.loads((out / "results.json").read_text())["clips"]["config"]["num_samples"] == 96
