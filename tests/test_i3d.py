"""I3D for FVD/KVD: parity with fixtures/i3d (official 04e8d5b), preprocessing, converter, errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from formula_weights import check_checksums, formula_state_dict
from savg_hub.convert.i3d import convert_i3d_checkpoint, convert_i3d_state_dict, load_i3d_checkpoint
from savg_hub.evaluation.fvd import I3DFeatureExtractor, official_uint8_round_trip, preprocess_fvd
from savg_hub.models.i3d import InceptionI3DModel

# Reference thread-count sensitivity of the logits is 6.3e-5 (fixtures README §6); this machine measures
# 0 (bit-identical) for the 2-clip batch and 6.1e-5 / 7.8e-5 (2 / 1 threads) for the 1-clip batch.
LOGITS_ATOL = 2e-4


@pytest.fixture(scope="module")
def i3d_dir(official_fixtures):
    return official_fixtures / "i3d"


@pytest.fixture(scope="module")
def formula_sd(i3d_dir) -> dict[str, np.ndarray]:
    state = formula_state_dict(i3d_dir)
    assert check_checksums(state, i3d_dir) == []
    return state


@pytest.fixture(scope="module")
def formula_model(formula_sd) -> InceptionI3DModel:
    model = InceptionI3DModel()
    model.load_state_dict(convert_i3d_state_dict(formula_sd), strict=True)
    return model.eval()


# ---------------------------------------------------------------------------------------------- parity


def test_state_dict_has_the_reference_names_order_and_shapes(i3d_dir):
    keys = json.loads((i3d_dir / "keys.json").read_text())
    with torch.device("meta"):
        state = InceptionI3DModel().state_dict()
    assert len(keys) == 344
    assert [name for name, _, _ in keys] == list(state)
    assert all(list(state[name].shape) == shape for name, shape, _ in keys)
    assert sum(name.endswith("conv3d.weight") for name in state) == 58
    assert sum(name.endswith("conv3d.bias") for name in state) == 1
    assert sum(name.endswith("bn.running_var") for name in state) == 57


def test_logits_match_official(i3d_dir, formula_model):
    clips = torch.from_numpy(np.load(i3d_dir / "input_clips_f16.npy").astype(np.float32))
    expected = np.load(i3d_dir / "output_logits.npy")
    with torch.inference_mode():
        output = formula_model(clips)
    assert output.logits.shape == (2, 400) and output.logits.dtype == torch.float32
    np.testing.assert_allclose(output.logits.numpy(), expected, rtol=0, atol=LOGITS_ATOL)
    with torch.inference_mode():
        (as_tuple,) = formula_model(clips[:1], return_dict=False)
    assert as_tuple.shape == (1, 400)


def test_preprocess_matches_official(i3d_dir):
    video = np.load(i3d_dir / "preprocess" / "input_video_uint8.npy")  # (1, 20, 3, 256, 256)
    expected = np.load(i3d_dir / "preprocess" / "output.npy")
    output = preprocess_fvd(video)
    assert output.shape == (1, 3, 20, 224, 224) and output.dtype == torch.float32
    np.testing.assert_allclose(output.numpy(), expected, rtol=0, atol=1e-6)  # bit-identical at 2 threads; 1 thread: 3.6e-7
    # one clip in the contract's (T, H, W, 3) layout gives the same
    single = preprocess_fvd(np.ascontiguousarray(video[0].transpose(0, 2, 3, 1)))
    torch.testing.assert_close(single, output, rtol=0, atol=0)


def test_preprocess_then_i3d_matches_official(i3d_dir, formula_model):
    video = np.load(i3d_dir / "preprocess" / "input_video_uint8.npy")
    expected = np.load(i3d_dir / "preprocess" / "output_then_i3d_logits.npy")
    logits = I3DFeatureExtractor(formula_model, device="cpu", batch_size=8).logits(video)
    assert logits.shape == (1, 400) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, rtol=0, atol=LOGITS_ATOL)


# --------------------------------------------------------------------------------------- preprocessing


def test_official_round_trip_lowers_dark_values_by_one():
    values = np.arange(256, dtype=np.uint8)
    out = official_uint8_round_trip(values)
    assert out.dtype == torch.uint8 and out.shape == (256,)
    lowered = (values.astype(int) - out.numpy().astype(int))
    assert set(lowered.tolist()) <= {0, 1}
    assert np.flatnonzero(lowered).tolist() == list(range(1, 64))  # PyTorch CPU float32 true division
    video = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 4, 5), dtype=np.uint8))
    out = official_uint8_round_trip(video)
    assert out.shape == video.shape
    expected = ((video.float() / 127.5 - 1 + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="uint8"):
        official_uint8_round_trip(video.float())


def test_preprocess_non_square_and_batch_consistency():
    rng = np.random.default_rng(1)
    clips = rng.integers(0, 256, (2, 3, 3, 144, 256), dtype=np.uint8)  # (B, T, C, H, W), landscape
    out = preprocess_fvd(clips)
    assert out.shape == (2, 3, 3, 224, 224)
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
    for index in range(2):
        one = preprocess_fvd(clips[index : index + 1])
        torch.testing.assert_close(one, out[index : index + 1], rtol=0, atol=0)
    # constant frames stay constant: 255 -> 1, 0 -> -1
    torch.testing.assert_close(preprocess_fvd(np.full((1, 2, 3, 200, 300), 255, np.uint8)), torch.ones(1, 3, 2, 224, 224), rtol=0, atol=1e-6)
    assert torch.all(preprocess_fvd(np.zeros((1, 2, 3, 300, 200), np.uint8)) == -1.0)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 3, 64, 64), np.uint8), r"\(B, T, 3, H, W\)"),  # 4-D without a trailing RGB axis
        (np.zeros((1, 2, 4, 64, 64), np.uint8), r"\(B, T, 3, H, W\)"),  # 4 channels
        (np.zeros((1, 2, 3, 64, 64), np.float32), "uint8"),
        ([[0, 1]], "np.ndarray"),
    ],
)
def test_preprocess_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        preprocess_fvd(bad)


# ---------------------------------------------------------------------------------------- model errors


@pytest.mark.parametrize(
    "shape",
    [(1, 3, 9, 224), (1, 4, 9, 224, 224), (1, 3, 8, 224, 224), (1, 3, 9, 256, 256), (1, 3, 9, 224, 200)],
)
def test_forward_rejects_bad_shapes(shape):
    with torch.device("meta"):
        model = InceptionI3DModel()
    with pytest.raises(ValueError, match=r"video must have shape \(N, 3, T >= 9, 224, 224\)"):
        model(torch.zeros(shape, device="meta"))


def test_forward_rejects_integer_video_and_bad_config():
    with torch.device("meta"):
        model = InceptionI3DModel()
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros((1, 3, 9, 224, 224), dtype=torch.uint8, device="meta"))
    with pytest.raises(ValueError, match="num_classes"):
        InceptionI3DModel(num_classes=0)
    with pytest.raises(ValueError, match="dropout"):
        InceptionI3DModel(dropout=1.0)


def test_extractor_rejects_bad_input(formula_model):
    extractor = I3DFeatureExtractor(formula_model)
    with pytest.raises(ValueError, match=r"\(N, T, 3, H, W\)"):
        extractor.logits(np.zeros((20, 256, 256, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        extractor.logits(np.zeros((1, 20, 3, 256, 256), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        I3DFeatureExtractor(formula_model, batch_size=0)
    assert extractor.logits(np.zeros((0, 20, 3, 256, 256), np.uint8)).shape == (0, 400)


# ------------------------------------------------------------------------------------------- converter


def _released_file_contents(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The state dict as ``i3d_pretrained_400.pt`` holds it: no ``num_batches_tracked`` (287 tensors)."""
    return {k: torch.from_numpy(v) for k, v in state.items() if not k.endswith("num_batches_tracked")}


def test_converter_fills_num_batches_tracked_like_the_released_file(formula_sd):
    released = _released_file_contents(formula_sd)
    assert len(released) == 287
    converted = convert_i3d_state_dict(released)
    assert len(converted) == 344
    assert converted["Mixed_5c.b3b.bn.num_batches_tracked"].item() == 0
    assert torch.equal(converted["logits.conv3d.bias"], released["logits.conv3d.bias"])
    # float64 values are cast to the model's float32
    as_double = dict(released, **{"logits.conv3d.bias": released["logits.conv3d.bias"].double()})
    assert convert_i3d_state_dict(as_double)["logits.conv3d.bias"].dtype == torch.float32


def test_converter_names_missing_unexpected_and_mismatched_keys(formula_sd):
    state = {k: torch.from_numpy(v) for k, v in formula_sd.items()}
    missing = dict(state)
    del missing["Mixed_4d.b2b.conv3d.weight"]
    with pytest.raises(ValueError, match=r"missing keys: Mixed_4d\.b2b\.conv3d\.weight"):
        convert_i3d_state_dict(missing)
    extra = dict(state, **{"module.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected keys: module\.extra\.weight"):
        convert_i3d_state_dict(extra)
    wrong = dict(state, **{"logits.conv3d.weight": torch.zeros(600, 1024, 1, 1, 1)})
    with pytest.raises(ValueError, match=r"logits\.conv3d\.weight: shape \(600, 1024, 1, 1, 1\), expected"):
        convert_i3d_state_dict(wrong)
    not_tensor = dict(state, **{"logits.conv3d.bias": [0.0] * 400})
    with pytest.raises(ValueError, match=r"logits\.conv3d\.bias \(list, not a tensor\)"):
        convert_i3d_state_dict(not_tensor)
    int_weight = dict(state, **{"logits.conv3d.bias": torch.zeros(400, dtype=torch.int64)})
    with pytest.raises(ValueError, match="dtype torch.int64"):
        convert_i3d_state_dict(int_weight)


def test_checkpoint_conversion_round_trip(tmp_path, formula_sd, formula_model):
    released = _released_file_contents(formula_sd)
    checkpoint = tmp_path / "i3d_pretrained_400.pt"
    torch.save(released, checkpoint)
    assert set(load_i3d_checkpoint(checkpoint)) == set(released)
    out_dir = convert_i3d_checkpoint(checkpoint, tmp_path / "i3d")
    assert (out_dir / "config.json").is_file()
    assert list(out_dir.glob("*.safetensors"))
    config = json.loads((out_dir / "config.json").read_text())
    assert config["_class_name"] == "InceptionI3DModel"
    assert (config["num_classes"], config["in_channels"], config["batch_norm_eps"], config["dropout"]) == (
        400, 3, 1e-5, 0.5)
    loaded = InceptionI3DModel.from_pretrained(out_dir)
    assert type(loaded) is InceptionI3DModel and not loaded.training
    loaded_state = loaded.state_dict()
    reference_state = formula_model.state_dict()
    assert list(loaded_state) == list(reference_state)
    for name, value in reference_state.items():  # identical tensors -> identical outputs
        assert loaded_state[name].dtype == value.dtype and torch.equal(loaded_state[name], value), name


def test_checkpoint_loader_refuses_non_state_dicts_and_pickled_code(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_i3d_checkpoint(tmp_path / "absent.pt")
    as_list = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], as_list)
    with pytest.raises(ValueError, match="expected a dict of tensors"):
        load_i3d_checkpoint(as_list)
    not_tensors = tmp_path / "numbers.pt"
    torch.save({"logits.conv3d.bias": 1.0}, not_tensors)
    with pytest.raises(ValueError, match="not tensors: logits.conv3d.bias"):
        load_i3d_checkpoint(not_tensors)
    marker = tmp_path / "executed"
    malicious = tmp_path / "malicious.pt"
    torch.save({"x": _Exploit(str(marker))}, malicious)
    with pytest.raises(pickle.UnpicklingError):
        load_i3d_checkpoint(malicious)
    assert not marker.exists()


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_width_divisor_gives_a_small_stand_in_with_the_same_layout():
    small = InceptionI3DModel(width_divisor=8).eval()
    full_keys = set(InceptionI3DModel().state_dict())
    assert set(small.state_dict()) == full_keys  # same modules, narrower
    assert sum(p.numel() for p in small.parameters()) < 300_000
    with torch.no_grad():
        logits = small(torch.zeros(2, 3, 20, 224, 224)).logits
    assert logits.shape == (2, 400)
    with pytest.raises(ValueError, match="width_divisor"):
        InceptionI3DModel(width_divisor=0)


@pytest.mark.parametrize("kernel,stride,shape", [((3, 3, 3), (1, 1, 1), (2, 3, 5, 9, 8)),
                                                 ((1, 3, 3), (1, 2, 2), (2, 3, 4, 11, 12)),
                                                 ((2, 2, 2), (2, 2, 2), (1, 2, 5, 7, 6))])
def test_same_max_pool_equals_zero_padded_3d_pooling(kernel, stride, shape):
    """The separable / operator-padded pooling gives exactly the reference's F.pad(zeros) + max_pool3d."""
    from savg_hub.models.i3d import I3DMaxPool3dSame, _same_padding

    x = torch.rand(shape)  # non-negative, as the ReLU outputs the network pools
    pads = [p for axis in (4, 3, 2) for p in _same_padding(shape[axis], kernel[axis - 2], stride[axis - 2])]
    expected = torch.nn.functional.max_pool3d(torch.nn.functional.pad(x, pads), kernel, stride)
    assert torch.equal(I3DMaxPool3dSame(kernel, stride)(x), expected)
