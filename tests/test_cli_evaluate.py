"""`savg evaluate`, `savg seld`, `savg detect`, `savg spatial-align`: files written, official text, round trip."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from test_spatial_eval import (  # noqa: F401  (one_torch_thread: an autouse fixture)
    BrightBoxDetector,
    LevelSELD,
    one_sided_clip,
    one_torch_thread,
    tiny_seld_model,
    tiny_yolox,
)

from savg_hub.cli.main import main
from savg_hub.evaluation.report import EvaluationReport, report_for_spatial
from savg_hub.evaluation.spatial_eval import SpatialAVAlignEvaluator
from savg_hub.evaluation.visualize import overlay_frames
from savg_hub.media import read_media, write_clip
from savg_hub.media.overlay import HIT_COLOR, MISS_COLOR
from savg_hub.weights import file_sha256


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli")
    clips = root / "clips"
    write_clip(clips / "left.mp4", one_sided_clip(30, 60, "left", 0))
    write_clip(clips / "right.mp4", one_sided_clip(196, 226, "right", 1), lossless=None, audio_codec="mp3")
    tiny_seld_model(3).save_pretrained(root / "seld")
    tiny_yolox(0).save_pretrained(root / "yolox")
    out = root / "out"
    code = main(["evaluate", str(clips), "--metrics", "spatial", "--seld-weights", str(root / "seld"),
                 "--detector", "yolox-tiny", "--detector-weights", str(root / "yolox"), "--out", str(out),
                 "--results-out", str(out / "results.out"), "--visualize", "--csv", "--no-progress"])
    torch.set_num_threads(previous)
    assert code == 0
    return root, clips, out


def test_evaluate_writes_results_json_per_clip_csv_results_out_and_videos(setup, capsys):
    root, clips, out = setup
    results = json.loads((out / "results.json").read_text())
    assert results["format"] == "savg-results-v1"
    assert results["protocol"] == {"name": "official", "version": "savgbench-04e8d5b"}
    spatial = results["sections"]["spatial_av_align"]
    assert results["clips"]["num_clips"] == 2 and results["clips"]["kind"] == "files"
    assert results["clips"]["revision"].startswith("files-")
    # random-weight YOLOX finds nobody: every SELD detection is a miss, on every calibration variant too
    assert spatial["num_tp"] == 0 and spatial["num_fn"] > 0 and results["scores"]["spatial_av_align"] == 0.0
    assert set(spatial["calibration"]) == {"swap_lr", "flip_video", "swap_and_flip", "mono"}
    assert results["scores"]["spatial_av_align.mono"] == 0.0
    by_role = {w["role"]: w for w in results["weights"]}
    assert by_role["seld"]["sha256"] == file_sha256(root / "seld") and by_role["seld"]["source"] == "user"
    assert by_role["detector"]["sha256"] == file_sha256(root / "yolox")
    assert results["stand_in_weights"] is False
    assert "torch" in results["environment"]["packages"] and "numpy" in results["environment"]["packages"]
    assert results["seconds"] > 0
    with open(out / "per_clip.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["clip_id"] for r in rows] == ["left", "right"]
    assert {"spatial_tp", "spatial_fn", "spatial_score", "spatial_swap_lr_score"} <= set(rows[0])
    assert sum(int(r["spatial_fn"]) for r in rows) == spatial["num_fn"]
    n = spatial["num_fn"]
    assert (out / "results.out").read_text() == (
        f"AV spatial each component: num_TP: 0, num_FN: {n}, num_TP + num_FN: {n} \nAV_final_score: 0.0 \n")
    assert sorted(p.name for p in (out / "pred_seld").iterdir()) == ["left.csv", "right.csv"]
    assert (out / "pred_od" / "left.csv").read_text() == ""  # official: a 0-byte file when no box passes
    video = read_media(out / "visualize" / "left.mp4")
    assert video.video.shape == (20, 256, 256, 3) and video.audio.shape[0] == 2


def test_seld_detect_spatial_align_round_trip_equals_evaluate(setup, capsys, tmp_path):
    root, clips, out = setup
    assert main(["seld", str(clips), "--out", str(tmp_path / "seld"), "--weights", str(root / "seld"),
                 "--no-progress"]) == 0
    assert main(["detect", str(clips / "left.mp4"), str(clips / "right.mp4"), "--out", str(tmp_path / "od"),
                 "--detector", "yolox-tiny", "--weights", str(root / "yolox"), "--no-progress"]) == 0
    for clip_id in ("left", "right"):
        np.testing.assert_allclose(np.loadtxt(tmp_path / "seld" / f"{clip_id}.csv", delimiter=",", ndmin=2),
                                   np.loadtxt(out / "pred_seld" / f"{clip_id}.csv", delimiter=",", ndmin=2),
                                   rtol=0, atol=1e-4)
    (tmp_path / "list_path_video.txt").write_text(f"{clips}//left.mp4\n{clips}//right.mp4\n")
    capsys.readouterr()
    results_out = tmp_path / "results.out"
    assert main(["spatial-align", "--seld", str(tmp_path / "seld"), "--detections", str(tmp_path / "od"),
                 "--list", str(tmp_path / "list_path_video.txt"), "--results-out", str(results_out)]) == 0
    printed = capsys.readouterr().out
    assert printed == (out / "results.out").read_text() == results_out.read_text()


def test_round_trip_with_hits_through_the_python_api(tmp_path, capsys):
    # position-aware stand-ins give hits; CSVs written by the API score the same through `savg spatial-align`
    clips = [("a", one_sided_clip(30, 60, "left", 0)), ("b", one_sided_clip(30, 60, "right", 1))]
    result = SpatialAVAlignEvaluator(LevelSELD(), BrightBoxDetector()).evaluate(clips)
    assert 0 < result.num_tp < result.official.num_detections
    result.write_official_csvs(tmp_path / "seld", tmp_path / "od")
    assert main(["spatial-align", "--seld", str(tmp_path / "seld"), "--detections", str(tmp_path / "od")]) == 0
    assert capsys.readouterr().out == result.official_lines()
    report = report_for_spatial(result, source="api")
    written = report.write(tmp_path / "report", results_out=tmp_path / "results.out")
    assert (tmp_path / "results.out").read_text() == result.official_lines()
    report.write(tmp_path / "report", results_out=tmp_path / "results.out", append_results_out=True)
    assert (tmp_path / "results.out").read_text() == 2 * result.official_lines()
    data = json.loads(written["results"].read_text())
    assert data["scores"]["spatial_av_align"] == result.score
    assert data["scores"]["spatial_av_align.swap_and_flip"] == result.calibration_scores()["swap_and_flip"]
    assert data["weights"] == [] and data["stand_in_weights"] is False


def test_report_sections_are_extensible_and_flag_stand_ins(tmp_path):
    class Quality:  # how an FVD/KVD/FAD section plugs in
        name = "quality"

        def to_dict(self):
            return {"fvd": 1218.8477783203125, "kvd": 55.60466751187866, "fad": 9.357064962387085,
                    "headline": ["fvd", "kvd", "fad"]}

        def per_clip_table(self):
            return [{"clip_id": "a", "temporal_like": 0.5}]

        def official_lines(self):
            return str({"fvd": 1218.8477783203125, "kvd": 55.60466751187866, "fad": 9.357064962387085}) + "\n"

    clips = [("a", one_sided_clip(30, 60, "left", 0))]
    result = SpatialAVAlignEvaluator(LevelSELD(), BrightBoxDetector(), calibration=False).evaluate(clips)
    report = EvaluationReport(sections={}, weights=[{"role": "seld", "stand_in": True, "sha256": "x"}])
    report.add(Quality()).add(result)
    text = report.results_out_text()
    assert text.splitlines()[0].startswith("AV spatial each component") and text.splitlines()[2].startswith("{'fvd'")
    data = report.to_dict()
    assert data["scores"]["quality.fvd"] == 1218.8477783203125 and data["stand_in_weights"] is True
    assert "stand-in" in data["warnings"][0]
    rows = report.per_clip_rows()
    assert rows == [{"clip_id": "a", "temporal_like": 0.5, "spatial_tp": 50, "spatial_fn": 0, "spatial_score": 1.0,
                     "num_person_boxes": 20}]


def test_overlay_marks_hits_green_and_misses_red():
    video = np.zeros((20, 256, 256, 3), np.uint8)
    rows = np.array([[0, 0, 40.0], [0, 1, 200.0]])
    detections = np.array([[0, 0, 20, 60, 70, 190]], np.float64)
    frames = overlay_frames(video, rows, detections, np.array([True, False]))
    band_hit, band_miss = frames[0, 70, 10].astype(int), frames[0, 70, 230].astype(int)
    assert band_hit[1] > band_hit[0] and band_miss[0] > band_miss[1]  # green tint at the hit, red at the miss
    assert tuple(frames[0, 128 - 14, 40 + 6]) == HIT_COLOR or frames[0, 100:130, 30:50, 1].max() > 150
    assert frames[0, 120:150, 190:210, 0].max() > 200 and MISS_COLOR[0] > 200
    assert frames[5].max() > 0 and video.max() == 0  # text on every frame; input untouched


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--metrics", "spatial,fvd"]) == 2
    assert "need a reference set (--reference)" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--metrics", "loudness"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--metrics", "spatial", "--reference", "sony/svgsa24:eval"]) == 2
    assert "--reference is only used by fvd, kvd and fad" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--seld-weights", str(tmp_path)]) == 2
    assert "no clips" in capsys.readouterr().err
    (tmp_path / "seld").mkdir()
    (tmp_path / "od").mkdir()
    (tmp_path / "seld" / "x.csv").write_text("")
    (tmp_path / "od" / "x.csv").write_text("")
    assert main(["spatial-align", "--seld", str(tmp_path / "seld"), "--detections", str(tmp_path / "od")]) == 1
    assert "undefined" in capsys.readouterr().err
