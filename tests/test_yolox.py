"""YOLOX-tiny: parity with mmdetection (formula weights through the converter), the official detection
pipeline (preprocessing, decoding, NMS, thresholds, rescaling), the OD CSV, the Ultralytics adapter and
serialization."""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from formula_weights import formula_state_dict

from savg_hub.convert.yolox import (
    convert_yolox_checkpoint,
    convert_yolox_mmdet_state_dict,
    load_mmdet_checkpoint,
    mmdet_yolox_key_to_savg,
)
from savg_hub.evaluation.detectors import (
    PersonDetector,
    UltralyticsDetector,
    YOLOXTinyDetector,
    load_detector,
    preprocess_yolox_frames,
    read_detection_csv,
    select_class,
    write_detection_csv,
    yolox_postprocess,
    yolox_resize_geometry,
)
from savg_hub.models.yolox import YOLOXModel, YOLOXOutput

LEVELS = (("cls_score", "cls_scores"), ("bbox_pred", "bbox_preds"), ("objectness", "objectnesses"))


@pytest.fixture(scope="module")
def yolox_fixture(official_fixtures: Path) -> Path:
    return official_fixtures / "yolox_tiny"


@pytest.fixture(scope="module")
def mmdet_formula_sd(yolox_fixture: Path) -> dict[str, torch.Tensor]:
    """The fixture's mmdetection-named state dict (462 entries, formula weights)."""
    return {name: torch.from_numpy(value) for name, value in formula_state_dict(yolox_fixture).items()}


@pytest.fixture(scope="module")
def formula_model(mmdet_formula_sd: dict[str, torch.Tensor]) -> YOLOXModel:
    model = YOLOXModel()
    model.load_state_dict(convert_yolox_mmdet_state_dict(mmdet_formula_sd), strict=True)
    return model.eval()


def _random_model(seed: int = 0) -> YOLOXModel:
    torch.manual_seed(seed)
    return YOLOXModel().eval()


# ------------------------------------------------------------------------------------------------ network


def test_parity_with_mmdetection_fixture(formula_model: YOLOXModel, yolox_fixture: Path) -> None:
    images = torch.from_numpy(np.load(yolox_fixture / "input_bgr_uint8.npy")).float()
    assert images.shape == (1, 3, 416, 416)
    with torch.inference_mode():
        output = formula_model(images)
    for stem, attribute in LEVELS:
        for level in range(3):
            expected = np.load(yolox_fixture / f"{stem}_level{level}.npy")
            got = getattr(output, attribute)[level].numpy()
            assert got.shape == expected.shape, (stem, level)
            scale = float(np.abs(expected).max())
            error = float(np.abs(got - expected).max())
            # bit-identical at strides 8 and 16 and <= 7e-6 at stride 32 with >= 2 threads; with 1 thread up
            # to 1.3e-4 / 2.5e-5 of max, like the reference's own thread-count sensitivity (1.5e-4 / 1.5e-5)
            assert error <= 5e-4 and error <= 5e-5 * max(scale, 1.0), (stem, level, error, scale)


def test_fixture_key_layout_is_fully_mapped(yolox_fixture: Path) -> None:
    keys = [name for name, _, _ in json.loads((yolox_fixture / "keys.json").read_text())]
    assert len(keys) == 462
    mapped = [mmdet_yolox_key_to_savg(key) for key in keys]
    assert None not in mapped
    assert sorted(mapped) == sorted(YOLOXModel().state_dict())  # one to one, nothing left over
    assert (
        mmdet_yolox_key_to_savg("backbone.stage4.1.conv2.bn.weight")
        == "backbone.stages.3.spp.conv2.norm.weight"
    )
    assert mmdet_yolox_key_to_savg("bbox_head.multi_level_conv_obj.2.bias") == "head.2.obj_pred.bias"


def test_converter_rejects_missing_extra_and_misshaped_keys(
    mmdet_formula_sd: dict[str, torch.Tensor],
) -> None:
    missing = dict(mmdet_formula_sd)
    del missing["neck.out_convs.1.bn.running_var"]
    with pytest.raises(ValueError, match=r"neck\.out_convs\.1\.norm\.running_var"):
        convert_yolox_mmdet_state_dict(missing)
    extra = dict(mmdet_formula_sd, **{"bbox_head.multi_level_conv_obj.3.weight": torch.zeros(1, 96, 1, 1)})
    with pytest.raises(ValueError, match=r"unexpected keys: bbox_head\.multi_level_conv_obj\.3\.weight"):
        convert_yolox_mmdet_state_dict(extra)
    stray = dict(mmdet_formula_sd, **{"data_preprocessor.mean": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"data_preprocessor\.mean"):
        convert_yolox_mmdet_state_dict(stray)
    misshaped = dict(mmdet_formula_sd, **{"bbox_head.multi_level_conv_cls.0.bias": torch.zeros(81)})
    with pytest.raises(
        ValueError, match=r"shape mismatches: bbox_head\.multi_level_conv_cls\.0\.bias \(81,\)"
    ):
        convert_yolox_mmdet_state_dict(misshaped)
    # EMA copies written by mmdetection's EMA hook are ignored (as mmdetection does), unless asked otherwise
    with_ema = dict(mmdet_formula_sd, ema_backbone_stem_conv_conv_weight=torch.zeros(24, 12, 3, 3))
    assert len(convert_yolox_mmdet_state_dict(with_ema)) == 462
    with pytest.raises(ValueError, match="ema_backbone_stem_conv_conv_weight"):
        convert_yolox_mmdet_state_dict(with_ema, ignore_ema=False)
    with pytest.raises(ValueError, match="ema_nothing"):
        convert_yolox_mmdet_state_dict(dict(mmdet_formula_sd, ema_nothing=torch.zeros(1)))


def test_model_rejects_bad_input_and_config() -> None:
    model = _random_model()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 100, 96))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="strides"):
        YOLOXModel(strides=(8, 16, 64))


def test_save_pretrained_round_trip(tmp_path: Path) -> None:
    model = _random_model(3)
    for module in model.modules():  # non-trivial BatchNorm statistics so that the round trip is meaningful
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path / "yolox", safe_serialization=True)
    assert (tmp_path / "yolox" / "config.json").is_file()
    assert list((tmp_path / "yolox").glob("*.safetensors"))
    loaded = YOLOXModel.from_pretrained(tmp_path / "yolox").eval()

    def public(config) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if not k.startswith("_")}

    assert public(loaded.config) == public(model.config)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    images = torch.rand(2, 3, 64, 96) * 255
    with torch.inference_mode():
        first, second = model(images), loaded(images)
    for _, attribute in LEVELS:
        for a, b in zip(getattr(first, attribute), getattr(second, attribute)):
            assert torch.equal(a, b)
    assert [t.shape[-2:] for t in first.cls_scores] == [(8, 12), (4, 6), (2, 3)]


# ------------------------------------------------------------------------------------------- checkpoints


def _write_mmdet_checkpoint(path: Path, state: dict[str, torch.Tensor], legacy: bool) -> None:
    meta = {
        "mmdet_version": "2.19.0",
        "CLASSES": ("person", "bicycle"),
        "epoch": 300,
        "seed": np.int64(7),
        "hook_msgs": collections.OrderedDict(last_ckpt="x.pth"),
        "lr": np.arange(3),
    }
    state = collections.OrderedDict(state)
    state["ema_backbone_stem_conv_conv_weight"] = state["backbone.stem.conv.conv.weight"].clone()
    torch.save({"meta": meta, "state_dict": state}, path, _use_new_zipfile_serialization=not legacy)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-format", "zip-format"])
def test_checkpoint_conversion(tmp_path: Path, legacy: bool) -> None:
    state = _random_model(1).state_dict()
    mmdet_names = {mmdet_yolox_key_to_savg(k): k for k in _mmdet_keys()}
    mmdet_state = {mmdet_names[name]: value for name, value in state.items()}
    pth = tmp_path / "yolox_tiny.pth"
    _write_mmdet_checkpoint(pth, mmdet_state, legacy)

    checkpoint = load_mmdet_checkpoint(pth)
    assert checkpoint.meta["CLASSES"] == ("person", "bicycle")
    assert "numpy.ndarray" in " ".join(checkpoint.replaced_globals)  # NumPy objects are inert placeholders
    out = convert_yolox_checkpoint(pth, tmp_path / "converted")
    loaded = YOLOXModel.from_pretrained(out).state_dict()
    for name, value in state.items():
        assert torch.equal(loaded[name], value), name

    for weights in (out, pth):  # a converted folder or the .pth itself (converted in memory)
        detector = load_detector("yolox-tiny", weights=weights)
        assert isinstance(detector, YOLOXTinyDetector)
        for name, value in detector.model.state_dict().items():
            assert torch.equal(value, state[name]), name


def _mmdet_keys() -> list[str]:
    """All mmdetection YOLOX-tiny names, derived by inverting the mapping on the model's own keys."""
    keys = []
    for name in YOLOXModel().state_dict():
        for candidate in _inverse_candidates(name):
            if mmdet_yolox_key_to_savg(candidate) == name:
                keys.append(candidate)
                break
        else:
            raise AssertionError(f"no mmdetection name maps to {name}")
    return keys


def _inverse_candidates(name: str) -> list[str]:
    out = name.replace(".norm.", ".bn.")
    parts = out.split(".")
    if parts[0] == "backbone" and parts[1] == "stages":
        stage = int(parts[2]) + 1
        position = {"downsample": 0, "spp": 1, "csp": 2 if stage == 4 else 1}[parts[3]]
        return [".".join(["backbone", f"stage{stage}", str(position), *parts[4:]])]
    if parts[0] == "head":
        level, module = parts[1], parts[2]
        if module.endswith("_convs"):
            return [".".join(["bbox_head", f"multi_level_{module}", level, *parts[3:]])]
        kind = module.removesuffix("_pred")
        return [".".join(["bbox_head", f"multi_level_conv_{kind}", level, *parts[3:]])]
    return [out]


def test_hostile_checkpoint_is_refused(tmp_path: Path) -> None:
    class Hostile:
        def __reduce__(self):  # would run a shell command if unpickled with code execution
            import os

            return os.system, ("exit 3",)

    for legacy in (True, False):
        path = tmp_path / f"hostile_{legacy}.pth"
        torch.save(
            {"state_dict": {"w": torch.zeros(1)}, "meta": {"x": Hostile()}},
            path,
            _use_new_zipfile_serialization=not legacy,
        )
        with pytest.raises(ValueError, match="refus"):
            load_mmdet_checkpoint(path)


# -------------------------------------------------------------------------------------- official pipeline


def test_preprocessing_matches_cv2_bgr_resize() -> None:
    frames = np.random.default_rng(1).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    images, scale_factor = preprocess_yolox_frames(frames)
    assert images.dtype == torch.float32 and images.shape == (2, 3, 416, 416)
    assert scale_factor == (1.625, 1.625)
    for index in range(2):
        expected = cv2.resize(
            np.ascontiguousarray(frames[index, :, :, ::-1]), (416, 416), interpolation=cv2.INTER_LINEAR
        )
        np.testing.assert_array_equal(images[index].permute(1, 2, 0).numpy(), expected.astype(np.float32))

    # other sizes: keep ratio (long side 416), pad bottom/right to a square with 114
    wide = np.full((1, 240, 320, 3), 7, dtype=np.uint8)
    assert yolox_resize_geometry(240, 320) == (312, 416, (1.3, 1.3))
    images, scale_factor = preprocess_yolox_frames(wide)
    assert images.shape == (1, 3, 416, 416) and scale_factor == (1.3, 1.3)
    assert torch.all(images[0, :, :312] == 7) and torch.all(images[0, :, 312:] == 114)
    assert yolox_resize_geometry(144, 256)[:2] == (234, 416)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_yolox_frames(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        preprocess_yolox_frames(frames[0])


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _handmade_output() -> YOLOXOutput:
    """Head outputs for a 416x416 input: everything negligible except a few hand-placed level-0 priors."""
    sizes = (52, 26, 13)
    cls = [torch.full((1, 80, s, s), -30.0) for s in sizes]
    reg = [torch.zeros(1, 4, s, s) for s in sizes]
    obj = [torch.full((1, 1, s, s), -30.0) for s in sizes]

    def place(
        row: int, col: int, label: int, p_cls: float, p_obj: float, dx: float, w: float, h: float
    ) -> None:
        cls[0][0, label, row, col] = _logit(p_cls)
        obj[0][0, 0, row, col] = _logit(p_obj)
        reg[0][0, :, row, col] = torch.tensor([dx, 0.25, math.log(w / 8), math.log(h / 8)])

    # A: person, score 0.9 * 0.9 = 0.81; centre (0.5*8 + 20*8, 0.25*8 + 10*8) = (164, 82), 40x80 at 416 px
    place(10, 20, 0, 0.9, 0.9, 0.5, 40, 80)
    # B: person shifted right by 6 px (IoU 34/46 = 0.74 > 0.65 with A), lower score 0.72 -> suppressed
    place(10, 21, 0, 0.9, 0.8, 0.25, 40, 80)
    # C: person shifted right by 12 px (IoU 28/52 = 0.54 with A), score 0.64 -> kept
    place(10, 22, 0, 0.8, 0.8, 0.0, 40, 80)
    # D: class 5 exactly on A, score 0.5 -> kept by class-aware NMS, not a person
    place(10, 19, 5, 0.5, 1.0 - 1e-7, 1.5, 40, 80)
    # E: person far away, score 0.25: survives score_thr 0.01 but not the person threshold 0.3
    place(40, 40, 0, 0.5, 0.5, 0.0, 16, 16)
    # F: person, score 0.005 < 0.01: removed before NMS
    place(45, 5, 0, 0.1, 0.05, 0.0, 16, 16)
    return YOLOXOutput(cls_scores=tuple(cls), bbox_preds=tuple(reg), objectnesses=tuple(obj))


def test_decoding_nms_thresholds_and_rescaling() -> None:
    ((boxes, scores, labels),) = yolox_postprocess(_handmade_output(), (8, 16, 32), (1.625, 1.625))
    # A, C, D, E survive, by decreasing score; B is suppressed by A (same class), F is below score_thr
    np.testing.assert_allclose(scores.numpy(), [0.81, 0.64, 0.5, 0.25], rtol=1e-5)
    assert labels.tolist() == [0, 0, 5, 0]
    a = np.array([144, 42, 184, 122]) / 1.625  # 416-px box back in 256-px frame pixels
    np.testing.assert_allclose(boxes[0].numpy(), a, rtol=1e-6)
    np.testing.assert_allclose(boxes[1].numpy(), a + [12 / 1.625, 0, 12 / 1.625, 0], rtol=1e-6)
    np.testing.assert_allclose(boxes[2].numpy(), a, rtol=1e-6)
    np.testing.assert_allclose(boxes[3].numpy(), np.array([312, 314, 328, 330]) / 1.625, rtol=1e-6)

    persons = select_class(boxes, scores, labels)
    assert persons.dtype == np.float32 and persons.shape == (2, 5)
    np.testing.assert_allclose(persons[0], [*a, 0.81], rtol=1e-5)


def test_person_threshold_is_strict_and_compared_in_float64() -> None:
    boxes = torch.zeros(3, 4)
    labels = torch.zeros(3, dtype=torch.int64)
    scores = torch.tensor([0.3, 0.29999998, 0.31], dtype=torch.float32)
    # float32(0.3) = 0.30000001192... > 0.3 in float64, as the official NumPy 1.23 comparison
    np.testing.assert_array_equal(select_class(boxes, scores, labels)[:, 4], np.float32([0.3, 0.31]))
    equal = float(np.float32(0.31))  # a score equal to the threshold is dropped (strict)
    np.testing.assert_array_equal(select_class(boxes, scores, labels, min_score=equal).shape, (0, 5))


def test_yolox_detector_batches_consistently(formula_model: YOLOXModel) -> None:
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    frames[:, :56] = 0  # letterbox bars
    frames[:, 200:] = 0
    batched = YOLOXTinyDetector(formula_model, batch_size=2)
    assert isinstance(batched, PersonDetector)
    one_by_one = YOLOXTinyDetector(formula_model, batch_size=1)
    first, second = batched.detect(frames), one_by_one.detect(frames)
    assert len(first) == len(second) == 2
    for a, b in zip(first, second):
        assert a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 5
        assert np.all(a[:, 4] > 0.3) and np.all(np.diff(a[:, 4]) <= 0)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    assert sum(len(a) for a in first) > 0  # the formula network does fire on these frames
    assert batched.detect(np.zeros((0, 256, 256, 3), np.uint8)) == []


# ----------------------------------------------------------------------------------------------- OD CSV


def test_detection_csv_round_trip_and_format(tmp_path: Path) -> None:
    boxes = [
        np.array([[12.345678, -3.5, 140.99899, 200.0, 0.9]], dtype=np.float32),
        np.zeros((0, 5), np.float32),
        np.array([[1.0, 2.0, 3.0, 4.0], [300.25, 5.0, 6.0, 7.0]], dtype=np.float64),
    ]
    path = write_detection_csv(tmp_path / "od" / "clip.csv", boxes)
    lines = path.read_text().splitlines()
    assert lines[0] == "0,0,12.345678329467773,-3.5,140.99899291992188,200.0"
    assert lines[1:] == ["2,0,1.0,2.0,3.0,4.0", "2,0,300.25,5.0,6.0,7.0"]
    table = read_detection_csv(path)
    assert table.shape == (3, 6)
    np.testing.assert_array_equal(table[:, :2], [[0, 0], [2, 0], [2, 0]])
    np.testing.assert_array_equal(table[0, 2:], np.float32([12.345678, -3.5, 140.99899, 200.0]))
    assert list(tmp_path.joinpath("od").iterdir()) == [path]  # nothing left behind by the atomic write

    empty = write_detection_csv(tmp_path / "empty.csv", [np.zeros((0, 5), np.float32)] * 20)
    assert empty.stat().st_size == 0 and read_detection_csv(empty).shape == (0, 6)
    other = tmp_path / "other.csv"
    other.write_text("3,0,1,2,3.5e1,4\n")
    np.testing.assert_array_equal(read_detection_csv(other), [[3, 0, 1, 2, 35, 4]])
    other.write_text("3,0,1,2\n")
    with pytest.raises(ValueError, match="6 columns"):
        read_detection_csv(other)
    with pytest.raises(ValueError, match=r"\(K, 4\) or \(K, 5\)"):
        write_detection_csv(tmp_path / "bad.csv", [np.zeros((2, 3))])


# ------------------------------------------------------------------------------------------- Ultralytics


def test_ultralytics_detector_on_a_random_tiny_model(tmp_path: Path) -> None:
    ultralytics = pytest.importorskip("ultralytics")
    torch.manual_seed(0)
    yolo = ultralytics.YOLO("yolov8n.yaml")  # built from the packaged YAML: random weights, no download
    yolo.model.names = {i: ("person" if i == 0 else f"thing{i}") for i in range(80)}
    weights = tmp_path / "tiny.pt"
    yolo.save(weights)

    detector = UltralyticsDetector(weights, person_class="person", conf=0.01, imgsz=128, batch_size=2)
    assert isinstance(detector, PersonDetector) and detector.class_id == 0
    frames = np.random.default_rng(0).integers(0, 256, (3, 96, 128, 3), dtype=np.uint8)
    result = detector.detect(frames)
    assert len(result) == 3
    for rows in result:
        assert rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[1] == 5
        assert np.all(rows[:, 4] >= 0.01) and np.all(np.diff(rows[:, 4]) <= 0)
        assert np.all(rows[:, [0, 2]] <= 128) and np.all(rows[:, [1, 3]] <= 96) and np.all(rows[:, :4] >= 0)

    spec_detector = load_detector(f"ultralytics:{weights}")
    assert isinstance(spec_detector, UltralyticsDetector) and spec_detector.class_id == 0
    with pytest.raises(ValueError, match="'cyclist' not in the model's names"):
        UltralyticsDetector(weights, person_class="cyclist")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        UltralyticsDetector(tmp_path / "yolov8n.pt")


def test_load_detector_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown detector spec 'yolox'"):
        load_detector("yolox")
    with pytest.raises(ValueError, match="names no model file"):
        load_detector("ultralytics:")
    with pytest.raises(ValueError, match="no registered default weights"):
        load_detector("yolox-tiny")
    with pytest.raises(FileNotFoundError):
        load_detector("yolox-tiny", weights=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="not used with"):
        load_detector("ultralytics:model.pt", weights="x.pt")
