"""SuperResUNetModel (guided-diffusion's 64->256 SR U-Net) and its converter: parity with fixtures/sr_unet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from savg_hub.convert.sr_unet import (
    convert_sr_unet_checkpoint,
    convert_sr_unet_state_dict,
    load_sr_unet_checkpoint,
    sr_unet_key_map,
)
from savg_hub.models.sr_unet import SRAttentionBlock, SuperResUNetModel, sinusoidal_timestep_embedding
from formula_weights import check_checksums, formula_state_dict

# fixtures/README.md: the reference's thread-count sensitivity is 1.4e-5 abs / 9.6e-7 of max |out| (tiny).
# guided-diffusion's own SuperResModel, run here on the same weights, is bit-identical to ours; both differ
# from the stored outputs by ~2.5e-5 (tiny) / ~2.5e-4 (full) max abs, i.e. 1.6e-6 / 4.3e-6 of max |out|.
TINY_REL_TOL = 5e-6
FULL_REL_TOL = 1e-5

# guided-diffusion UNetModel arguments that map 1:1 onto SuperResUNetModel's config
_SHARED_ARGS = (
    "image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks", "attention_resolutions",
    "dropout", "channel_mult", "num_heads", "num_head_channels", "num_heads_upsample", "use_scale_shift_norm",
    "resblock_updown",
)

# a small config that needs no fixtures: 2 levels, attention at ds 2, 32x32 from 8x8
SMALL_CONFIG = dict(
    image_size=32, small_size=8, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
    attention_resolutions=(2,), num_heads=2,
)


def _small_model(**overrides: object) -> SuperResUNetModel:
    """A seeded model of ``SMALL_CONFIG`` (plus overrides), every parameter perturbed so that the
    zero-initialised output convolutions do not hide the rest of the network."""
    torch.manual_seed(0)
    model = SuperResUNetModel(**{**SMALL_CONFIG, **overrides})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def _tiny_config(folder: Path) -> dict:
    """SuperResUNetModel kwargs of fixtures/sr_unet/tiny, read from its run_info.json and input shapes."""
    official = json.loads((folder / "run_info.json").read_text())["config"]
    assert official["num_classes"] is None and official["use_fp16"] is False
    config = {name: official[name] for name in _SHARED_ARGS}
    config["small_size"] = int(np.load(folder / "input_low_res.npy").shape[-1])
    return config


def _inputs(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    names = ("x", "timesteps", "low_res")
    return tuple(torch.from_numpy(np.load(folder / f"input_{name}.npy")) for name in names)


def _formula_model(folder: Path, config: dict) -> SuperResUNetModel:
    """The network with the fixture's formula weights, passed through the converter (no random init)."""
    official = {name: torch.from_numpy(value) for name, value in formula_state_dict(folder).items()}
    state = convert_sr_unet_state_dict(official, config)
    with torch.device("meta"):
        model = SuperResUNetModel(**config)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _plain(config: dict) -> dict:
    """Config values as JSON gives them back (tuples become lists), without diffusers' ``_`` entries."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if not k.startswith("_")}


def _max_diff(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    diff = float(np.abs(out.astype(np.float64) - ref).max())
    return diff, diff / float(np.abs(ref).max())


def _meta_official_state(folder: Path) -> dict[str, torch.Tensor]:
    """The fixture's official key list as meta tensors (names and shapes, no values)."""
    keys = json.loads((folder / "keys.json").read_text())
    return {name: torch.empty(shape, dtype=getattr(torch, d), device="meta") for name, shape, d in keys}


def _official_state_of(model: SuperResUNetModel) -> dict[str, torch.Tensor]:
    """``model``'s weights under guided-diffusion names (the inverse of the converter)."""
    state = model.state_dict()
    return {official: state[name] for official, name in sr_unet_key_map(model).items()}


# --------------------------------------------------------------------------------------------- fixtures: tiny


def test_tiny_formula_weights_match_checksums(official_fixtures: Path) -> None:
    folder = official_fixtures / "sr_unet" / "tiny"
    assert check_checksums(formula_state_dict(folder), folder) == []


def test_tiny_forward_matches_official(official_fixtures: Path) -> None:
    folder = official_fixtures / "sr_unet" / "tiny"
    config = _tiny_config(folder)
    model = _formula_model(folder, config)
    info = json.loads((folder / "run_info.json").read_text())
    assert sum(p.numel() for p in model.parameters()) == info["n_params"] == 1_580_262
    assert len(model.state_dict()) == info["n_state_tensors"] == 270
    x, t, low_res = _inputs(folder)
    with torch.no_grad():
        out = model(x, t, low_res).sample
    ref = np.load(folder / "output.npy")
    assert out.shape == ref.shape == (2, 6, 64, 64)
    abs_diff, rel_diff = _max_diff(out.numpy(), ref)
    assert rel_diff < TINY_REL_TOL, f"max abs {abs_diff:.3g}, relative {rel_diff:.3g}"


def test_tiny_checkpoint_converts_to_pretrained_folder(official_fixtures: Path, tmp_path: Path) -> None:
    folder = official_fixtures / "sr_unet" / "tiny"
    config = _tiny_config(folder)
    checkpoint = tmp_path / "model_SR_tiny.pt"
    official = {name: torch.from_numpy(value) for name, value in formula_state_dict(folder).items()}
    torch.save(official, checkpoint)
    out_dir = convert_sr_unet_checkpoint(checkpoint, tmp_path / "converted", config=config)
    assert (out_dir / "config.json").is_file()
    assert (out_dir / "diffusion_pytorch_model.safetensors").is_file()
    model = SuperResUNetModel.from_pretrained(out_dir).eval()
    assert _plain({k: model.config[k] for k in config}) == _plain(config)
    x, t, low_res = _inputs(folder)
    with torch.no_grad():
        out = model(x, t, low_res).sample.numpy()
    assert _max_diff(out, np.load(folder / "output.npy"))[1] < TINY_REL_TOL


# --------------------------------------------------------------------------------------------- fixtures: full


def test_full_defaults_are_the_release_config(official_fixtures: Path) -> None:
    official = json.loads((official_fixtures / "sr_unet" / "full" / "run_info.json").read_text())["config"]
    with torch.device("meta"):
        config = dict(SuperResUNetModel().config)
    assert config["image_size"] == official["large_size"] == 256
    assert config["small_size"] == official["small_size"] == 64
    assert config["model_channels"] == official["num_channels"]
    assert config["out_channels"] == (6 if official["learn_sigma"] else 3)
    assert not official["class_cond"] and not official["use_fp16"]
    # SAVGBench passes "8,16,32" and uses the numbers as downsample factors; upstream guided-diffusion reads
    # resolutions and takes 256 // r. At 256 px both give {8, 16, 32}.
    factors = {int(r) for r in official["attention_resolutions"].split(",")}
    assert set(config["attention_resolutions"]) == factors == {256 // r for r in factors}
    assert tuple(config["channel_mult"]) == (1, 1, 2, 2, 4, 4)  # fixed by large_size 256 in sr_create_model
    assert config["use_new_attention_order"] is False
    for name in ("num_res_blocks", "num_heads", "num_head_channels", "num_heads_upsample",
                 "use_scale_shift_norm", "dropout", "resblock_updown"):
        assert config[name] == official[name], name


def test_full_key_list_and_shapes_convert(official_fixtures: Path) -> None:
    folder = official_fixtures / "sr_unet" / "full"
    official = _meta_official_state(folder)
    assert len(official) == 566
    converted = convert_sr_unet_state_dict(official)
    with torch.device("meta"):
        model = SuperResUNetModel()
    reference = model.state_dict()
    assert list(converted) == list(reference)  # every entry, in the model's order
    assert all(converted[k].shape == reference[k].shape for k in reference)
    assert sum(p.numel() for p in model.parameters()) == 311_027_910
    # the map is a bijection and follows the official order
    key_map = sr_unet_key_map(model)
    assert list(key_map) == list(official)


@pytest.mark.slow
def test_full_forward_matches_official(official_fixtures: Path) -> None:
    """311M-parameter forward on (1, 3, 256, 256): ~15 s to rebuild the weights, 10-60 s to run on 2 cores."""
    folder = official_fixtures / "sr_unet" / "full"
    model = _formula_model(folder, {})
    x, t, low_res = _inputs(folder)
    with torch.no_grad():
        out = model(x, t, low_res).sample.numpy()
    ref = np.load(folder / "output.npy")
    assert out.shape == ref.shape == (1, 6, 256, 256)
    abs_diff, rel_diff = _max_diff(out, ref)
    assert rel_diff < FULL_REL_TOL, f"max abs {abs_diff:.3g}, relative {rel_diff:.3g}"


# ---------------------------------------------------------------------------------------------- converter


def _small_official_state() -> dict[str, torch.Tensor]:
    return _official_state_of(_small_model())


def test_converter_round_trips_small_config() -> None:
    official = _small_official_state()
    assert "time_embed.0.weight" in official and "input_blocks.0.0.weight" in official
    assert "middle_block.1.qkv.weight" in official and "out.2.weight" in official
    converted = convert_sr_unet_state_dict(official, SMALL_CONFIG)
    assert torch.equal(converted["conv_in.weight"], official["input_blocks.0.0.weight"])
    assert torch.equal(converted["mid_block.attention.qkv.weight"], official["middle_block.1.qkv.weight"])


@pytest.mark.parametrize(
    "variant",
    [
        dict(resblock_updown=False),
        dict(use_new_attention_order=True, num_head_channels=16),
        dict(use_scale_shift_norm=False, num_heads_upsample=4, out_channels=3),
    ],
)
def test_converter_handles_other_guided_diffusion_layouts(variant: dict) -> None:
    config = {**SMALL_CONFIG, **variant}
    model = _small_model(**variant)
    converted = convert_sr_unet_state_dict(_official_state_of(model), config)
    reloaded = SuperResUNetModel(**config).eval()
    reloaded.load_state_dict(converted, strict=True)
    x, low_res = torch.randn(1, 3, 32, 32), torch.rand(1, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x, 10, low_res).sample, reloaded(x, 10, low_res).sample)
    if variant.get("resblock_updown") is False:
        assert "input_blocks.2.0.op.weight" in sr_unet_key_map(model)  # stride-2 conv between levels
        assert "output_blocks.1.2.conv.weight" in sr_unet_key_map(model)


def test_converter_names_missing_and_unexpected_keys() -> None:
    official = _small_official_state()
    del official["middle_block.2.out_layers.3.weight"]
    official["label_emb.weight"] = torch.zeros(1000, 128)
    with pytest.raises(ValueError, match=r"unexpected keys: label_emb\.weight") as error:
        convert_sr_unet_state_dict(official, SMALL_CONFIG)
    assert "missing keys: middle_block.2.out_layers.3.weight" in str(error.value)


def test_converter_names_shape_and_value_errors() -> None:
    official = _small_official_state()
    official["out.2.weight"] = torch.zeros(3, 32, 3, 3)  # epsilon-only weights into a learned-sigma config
    official["time_embed.0.bias"] = [0.0] * 128
    message = r"out\.2\.weight: shape \(3, 32, 3, 3\), expected \(6, 32, 3, 3\)"
    with pytest.raises(ValueError, match=message) as error:
        convert_sr_unet_state_dict(official, SMALL_CONFIG)
    assert "time_embed.0.bias (list, not a tensor)" in str(error.value)


def test_converter_rejects_the_release_weights_for_another_config(official_fixtures: Path) -> None:
    official = _meta_official_state(official_fixtures / "sr_unet" / "full")
    with pytest.raises(ValueError, match="shape"):
        convert_sr_unet_state_dict(official, {"model_channels": 128})


class _Payload:
    """A pickled object that a weights-only load must refuse (never constructed by the loader)."""


def test_load_checkpoint_is_weights_only(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"input_blocks.0.0.weight": torch.zeros(1), "extra": _Payload()}, unsafe)
    with pytest.raises(ValueError, match="weights_only"):
        load_sr_unet_checkpoint(unsafe)
    not_a_dict = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(ValueError, match="state dict"):
        load_sr_unet_checkpoint(not_a_dict)
    with pytest.raises(FileNotFoundError):
        load_sr_unet_checkpoint(tmp_path / "absent.pt")


# ---------------------------------------------------------------------------------------------- model


def test_save_pretrained_round_trip(tmp_path: Path) -> None:
    model = _small_model()
    model.save_pretrained(tmp_path / "sr")
    loaded = SuperResUNetModel.from_pretrained(tmp_path / "sr").eval()
    assert _plain(loaded.config) == _plain(model.config)
    torch.manual_seed(1)
    x, low_res, t = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 8, 8) * 2 - 1, torch.tensor([3, 700])
    with torch.no_grad():
        expected = model(x, t, low_res).sample
        assert torch.equal(loaded(x, t, low_res).sample, expected)
        assert torch.equal(loaded(x, t, low_res, return_dict=False)[0], expected)
    assert expected.shape == (2, 6, 32, 32)


def test_scalar_timestep_broadcasts() -> None:
    model = _small_model()
    x, low_res = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        batch = model(x, torch.tensor([250, 250]), low_res).sample
        assert torch.equal(model(x, 250, low_res).sample, batch)
        assert torch.equal(model(x, torch.tensor(250), low_res).sample, batch)
        assert torch.equal(model(x, torch.tensor([250]), low_res).sample, batch)


def test_legacy_qkv_rows_are_grouped_per_head() -> None:
    """Legacy row order = per head [q_h; k_h; v_h]; regrouping the rows as [q; k; v] gives the new order."""
    torch.manual_seed(0)
    channels, heads = 64, 4
    legacy = SRAttentionBlock(channels, heads, new_attention_order=False)
    new = SRAttentionBlock(channels, heads, new_attention_order=True)
    with torch.no_grad():
        for parameter in legacy.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
        new.load_state_dict(legacy.state_dict())
        head_dim = channels // heads
        # legacy row index of (part p in q/k/v, head h, row r) is h*3d + p*d + r; new order is p*C + h*d + r
        order = torch.arange(3 * channels).reshape(heads, 3, head_dim).transpose(0, 1).reshape(-1)
        new.qkv.weight.copy_(legacy.qkv.weight[order])
        new.qkv.bias.copy_(legacy.qkv.bias[order])
        x = torch.randn(2, channels, 4, 4)
        torch.testing.assert_close(new(x), legacy(x), rtol=1e-6, atol=1e-6)
        unpermuted = SRAttentionBlock(channels, heads, new_attention_order=True)
        unpermuted.load_state_dict(legacy.state_dict())
        assert not torch.allclose(unpermuted(x), legacy(x), atol=1e-3)  # the row order matters


def test_timestep_embedding_is_cos_then_sin() -> None:
    emb = sinusoidal_timestep_embedding(torch.tensor([0, 7]), 6)
    assert emb.shape == (2, 6) and emb.dtype == torch.float32
    assert torch.equal(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))
    freqs = torch.exp(-np.log(10000.0) * torch.arange(3, dtype=torch.float32) / 3)
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(7 * freqs), torch.sin(7 * freqs)]))
    assert sinusoidal_timestep_embedding(torch.tensor([1.0]), 5)[0, -1] == 0  # odd width: zero pad


@pytest.mark.parametrize(
    ("sample_shape", "low_res_shape", "timestep", "message"),
    [
        ((2, 3, 64, 64), (2, 3, 8, 8), 1, r"sample must have shape \(N, 3, 32, 32\), got \(2, 3, 64, 64\)"),
        ((2, 6, 32, 32), (2, 3, 8, 8), 1, r"sample must have shape \(N, 3, 32, 32\), got \(2, 6, 32, 32\)"),
        ((3, 32, 32), (2, 3, 8, 8), 1, r"sample must have shape .* got \(3, 32, 32\)"),
        ((2, 3, 32, 32), (2, 3, 16, 16), 1, r"low_res must have shape \(2, 3, 8, 8\) .* \(2, 3, 16, 16\)"),
        ((2, 3, 32, 32), (1, 3, 8, 8), 1, r"low_res must have shape \(2, 3, 8, 8\) .* got \(1, 3, 8, 8\)"),
        ((2, 3, 32, 32), (2, 3, 8, 8), torch.tensor([1, 2, 3]), r"timestep must be a scalar or .* \(2,\)"),
        ((2, 3, 32, 32), (2, 3, 8, 8), torch.ones(2, 1), r"got \(2, 1\)"),
        ((2, 3, 32, 32), (2, 3, 8, 8), "10", r"timestep must be a number or a tensor, got str"),
    ],
)
def test_wrong_inputs_raise(
    sample_shape: tuple, low_res_shape: tuple, timestep: object, message: str
) -> None:
    model = SuperResUNetModel(**SMALL_CONFIG)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(sample_shape), timestep, torch.zeros(low_res_shape))


def test_integer_frames_raise() -> None:
    model = SuperResUNetModel(**SMALL_CONFIG)
    with pytest.raises(ValueError, match=r"low_res must be a floating-point tensor .* got torch\.uint8"):
        model(torch.zeros(1, 3, 32, 32), 5, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(attention_resolutions=(3,)), r"attention_resolutions are downsample factors .* got \[3\]"),
        (dict(attention_resolutions=(4,)), r"must be among \[1, 2\], got \[4\]"),
        (dict(num_heads=3), r"num_heads must be a positive divisor .* got 3"),
        (dict(num_heads_upsample=5), r"num_heads_upsample must be a positive divisor .* got 5"),
        (dict(num_head_channels=24), r"num_head_channels must be -1 or a positive divisor .* got 24"),
        (dict(model_channels=48), r"multiple of 32 .* gives \[48\]"),
        (dict(image_size=31), r"image_size must be a positive multiple of 2 .* got 31"),
        (dict(small_size=64), r"small_size must be in \[1, image_size=32\], got 64"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (dict(channel_mult=()), r"channel_mult must be a non-empty list"),
    ],
)
def test_bad_config_raises(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SuperResUNetModel(**{**SMALL_CONFIG, **overrides})


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    model = _small_model()
    x, low_res, t = torch.randn(1, 3, 32, 32), torch.rand(1, 3, 8, 8), torch.tensor([100])

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(x, t, low_res).sample.square().mean().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = grads()
    model.enable_gradient_checkpointing()
    checkpointed = grads()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-6, msg=name)
