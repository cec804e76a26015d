"""Spatial AV-Align matcher: parity with fixtures/spatial_av_align (official 04e8d5b), edge cases, CSV formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from savg_hub.evaluation.csv_io import read_detection_csv, read_seld_csv, write_detection_csv, write_seld_csv
from savg_hub.evaluation.spatial import (
    OFFICIAL_FRAME_ERROR,
    SpatialAlignError,
    match_clip,
    read_list_file,
    spatial_av_align,
    spatial_av_align_from_csv,
    video_frame_for_seld_frame,
)

CASES = ["case1_boundary_truncation", "case2_frame_mapping", "case3_empty_files", "case4_realistic"]


@pytest.mark.parametrize("case", CASES)
def test_parity_with_official_cases(official_fixtures, case):
    folder = official_fixtures / "spatial_av_align" / case
    expected = json.loads((folder / "expected.json").read_text())
    ids = read_list_file(folder / "list_path_video.txt")
    result = spatial_av_align_from_csv(folder / "seld", folder / "od", ids)
    assert (result.num_tp, result.num_fn) == (expected["num_TP"], expected["num_FN"])
    assert result.score == expected["score"]  # bit-exact float
    assert result.official_lines() == expected["results_out"]
    assert result.official_stdout() == expected["stdout"]
    per_clip = {c.clip_id: c for c in result.per_clip}
    for clip_id, counts in expected["per_clip"].items():
        if "error" in counts:  # the official script divides by zero on a clip without SELD rows
            assert counts["error"]["type"] == "ZeroDivisionError"
            assert per_clip[clip_id].num_detections == 0 and per_clip[clip_id].score is None
        else:
            assert (per_clip[clip_id].num_tp, per_clip[clip_id].num_fn) == (counts["num_TP"], counts["num_FN"])


def test_no_detections_is_undefined_not_a_crash(official_fixtures):
    folder = official_fixtures / "spatial_av_align" / "error_zero_division"
    expected = json.loads((folder / "expected.json").read_text())
    assert expected["error"]["type"] == "ZeroDivisionError"
    result = spatial_av_align_from_csv(folder / "seld", folder / "od", read_list_file(folder / "list_path_video.txt"))
    assert result.score is None and not result.defined
    assert result.official_stdout() == expected["stdout"]
    with pytest.raises(ValueError, match="undefined"):
        result.official_lines()


def test_out_of_range_frame_is_a_clear_error(official_fixtures):
    folder = official_fixtures / "spatial_av_align" / "error_frame_assert"
    expected = json.loads((folder / "expected.json").read_text())
    assert expected["error"]["message"] == OFFICIAL_FRAME_ERROR
    with pytest.raises(SpatialAlignError, match="SELD frame 52 in clip clip_y1 maps to video frame 21"):
        spatial_av_align_from_csv(folder / "seld", folder / "od", read_list_file(folder / "list_path_video.txt"))


def test_frame_map_table():
    expected = [0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 7, 7, 8, 8, 8, 9, 9, 10, 10, 10, 11, 11, 12, 12, 12,
                13, 13, 14, 14, 14, 15, 15, 16, 16, 16, 17, 17, 18, 18, 18, 19, 19, 19]
    assert video_frame_for_seld_frame(np.arange(50)).tolist() == expected


def test_truncation_and_boundaries():
    boxes = np.array([[10, 0, 140.0, 0, 200.0, 0]])  # a box from x=140 to x=200 on frame 10
    rows = np.array([[25, 0, 100.0], [25, 0, 99.99], [25, 1, 240.9], [25, 1, 241.0]])  # frame 25 -> k=10
    assert match_clip(rows, boxes).tolist() == [True, False, True, False]
    assert match_clip(rows, np.zeros((0, 6))).tolist() == [False] * 4
    assert match_clip(np.zeros((0, 3)), boxes).tolist() == []


def test_csv_round_trip_official_format(tmp_path):
    seld = np.array([[12, 0, 131.23456789012346], [13, 1, -87.76160286557298]])
    write_seld_csv(tmp_path / "s.csv", seld)
    assert (tmp_path / "s.csv").read_text() == "12.0,0.0,131.23456789012346\n13.0,1.0,-87.76160286557298\n"
    np.testing.assert_array_equal(read_seld_csv(tmp_path / "s.csv"), seld)
    det = [np.zeros((0, 5))] * 3 + [np.array([[12.345678, 56.0, 80.5, 199.9, 0.9]])]
    write_detection_csv(tmp_path / "d.csv", det)
    assert (tmp_path / "d.csv").read_text().startswith("3,0,12.345678329467773,56.0,80.5,")
    write_seld_csv(tmp_path / "empty.csv", np.zeros((0, 3)))
    assert (tmp_path / "empty.csv").stat().st_size == 0 and read_seld_csv(tmp_path / "empty.csv").shape == (0, 3)
    with pytest.raises(ValueError, match="6 columns"):
        read_detection_csv(tmp_path / "s.csv")


def test_missing_csv_is_named(tmp_path):
    (tmp_path / "seld").mkdir()
    (tmp_path / "od").mkdir()
    write_seld_csv(tmp_path / "seld" / "c1.csv", np.array([[0, 0, 10.0]]))
    with pytest.raises(FileNotFoundError, match="c1"):
        spatial_av_align_from_csv(tmp_path / "seld", tmp_path / "od")


def test_micro_average_and_per_clip():
    rows_a = np.array([[0, 0, 50.0], [1, 0, 50.0]])
    rows_b = np.array([[0, 0, 200.0]])
    boxes = np.array([[0, 0, 30.0, 0, 70.0, 0]])
    result = spatial_av_align([("a", rows_a, boxes), ("b", rows_b, boxes), ("c", np.zeros((0, 3)), boxes)])
    assert (result.num_tp, result.num_fn) == (2, 1) and result.score == pytest.approx(2 / 3)
    assert [c.score for c in result.per_clip] == [1.0, 0.0, None]
