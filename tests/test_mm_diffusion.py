"""Stereo MM-Diffusion coupled U-Net: official-fixture parity, converter, window shifts, serialization."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from formula_weights import formula_state_dict

from savg_hub.convert.mm_diffusion import (
    convert_mm_diffusion_checkpoint,
    convert_mm_diffusion_state_dict,
    load_mm_diffusion_checkpoint,
    official_mm_diffusion_key_to_savg,
)
from savg_hub.models.mm_diffusion_layers import GroupNorm32, cross_attention_key_indices, video_group_norm
from savg_hub.models.mm_diffusion_unet import CoupledUNetModel, CoupledUNetOutput

# max |ours - official| <= REL_TOL * max |official|; the official outputs themselves move by 2.2e-6 (tiny)
# with the CPU thread count (fixtures README §4)
REL_TOL = 1e-5

# a small configuration for the contract tests: 2 levels, cross-attention at ds 1 and 2, audio attention at 2
MICRO_CONFIG = dict(
    video_size=(4, 3, 8, 8),
    audio_size=(2, 160),
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=1,
    video_attention_resolutions=(2,),
    audio_attention_resolutions=(2,),
    cross_attention_resolutions=(1, 2),
    cross_attention_windows=(1, 2),
    cross_attention_shift=True,
    num_heads=4,
    num_head_channels=32,
)


def _config_from_run_info(run_info: dict) -> dict:
    """Our config from the official ``create_model`` flags stored in a fixture's ``run_info.json``."""
    flags = run_info["config"]

    def ints(text: str) -> tuple[int, ...]:
        return tuple(int(v) for v in text.split(",") if int(v) != -1)

    config = dict(
        video_size=tuple(flags["video_size"]),
        audio_size=tuple(flags["audio_size"]),
        model_channels=flags["num_channels"],
        num_res_blocks=flags["num_res_blocks"],
        video_attention_resolutions=ints(flags["video_attention_resolutions"]),
        audio_attention_resolutions=ints(flags["audio_attention_resolutions"]),
        cross_attention_resolutions=ints(flags["cross_attention_resolutions"]),
        cross_attention_windows=ints(flags["cross_attention_windows"]),
        cross_attention_shift=flags["cross_attention_shift"],
        num_heads=flags["num_heads"],
        num_head_channels=flags["num_head_channels"],
        use_scale_shift_norm=flags["use_scale_shift_norm"],
        resblock_updown=flags["resblock_updown"],
        learn_sigma=flags["learn_sigma"],
        dropout=flags["dropout"],
    )
    if flags["channel_mult"]:  # "" means the 64-px default (1, 2, 3, 4)
        config["channel_mult"] = ints(flags["channel_mult"])
    return config


def _official_state(folder: Path) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(value) for name, value in formula_state_dict(folder).items()}


def _inputs(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(
        torch.from_numpy(np.load(folder / f"input_{name}.npy")) for name in ("video", "audio", "timesteps")
    )


def _max_error(got: torch.Tensor, folder: Path, name: str) -> tuple[float, float]:
    expected = np.load(folder / f"output_{name}.npy")
    assert got.shape == expected.shape
    diff = float(np.abs(got.detach().numpy() - expected).max())
    return diff, diff / float(np.abs(expected).max())


def _draws(run_info: dict) -> list[tuple[int, int, int]]:
    return [tuple(draw) for draw in run_info["randint_draws_in_order"]]


@pytest.fixture(scope="module")
def tiny_dir(official_fixtures: Path) -> Path:
    return official_fixtures / "mm_diffusion" / "tiny"


@pytest.fixture(scope="module")
def tiny_state(tiny_dir: Path) -> dict[str, torch.Tensor]:
    return _official_state(tiny_dir)


def _tiny_model(tiny_dir: Path, state: dict[str, torch.Tensor], variant: str) -> CoupledUNetModel:
    config = _config_from_run_info(json.loads((tiny_dir / variant / "run_info.json").read_text()))
    model = CoupledUNetModel(**config).eval()
    model.load_state_dict(convert_mm_diffusion_state_dict(state, config), strict=True)
    return model


def _micro_model(**overrides: object) -> CoupledUNetModel:
    torch.manual_seed(0)
    model = CoupledUNetModel(**{**MICRO_CONFIG, **overrides}).eval()
    with torch.no_grad():  # zero-initialised projections and heads would hide everything
        for param in model.parameters():
            param.normal_(0.0, 0.2)
    return model


def _micro_inputs(model: CoupledUNetModel, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    video = torch.randn(batch, *model.config.video_size, generator=generator)
    audio = torch.randn(batch, *model.config.audio_size, generator=generator)
    return video, audio, torch.arange(batch) * 400 + 7


# ---------------------------------------------------------------------------------------------------- parity


def test_tiny_parity_shift_off(tiny_dir, tiny_state):
    folder = tiny_dir / "shift_off"
    model = _tiny_model(tiny_dir, tiny_state, "shift_off")
    assert model.cross_attention_shift_ranges == []
    with torch.no_grad():
        out = model(*_inputs(folder))
    assert model.last_cross_attention_shifts == []
    for name in ("video", "audio"):
        _, relative = _max_error(getattr(out, name), folder, name)
        assert relative <= REL_TOL, (name, relative)


def test_tiny_parity_shift_on_seeded_and_explicit(tiny_dir, tiny_state):
    folder = tiny_dir / "shift_on"
    run_info = json.loads((folder / "run_info.json").read_text())
    draws = _draws(run_info)
    model = _tiny_model(tiny_dir, tiny_state, "shift_on")
    assert model.cross_attention_shift_ranges == [(low, high) for low, high, _ in draws]
    inputs = _inputs(folder)
    with torch.no_grad():
        seeded = model(*inputs, generator=random.Random(run_info["python_random_seed_before_forward"]))
        assert model.last_cross_attention_shifts == draws
        explicit = model(*inputs, cross_attention_shifts=[value for _, _, value in draws])
    assert model.last_cross_attention_shifts == draws
    for name in ("video", "audio"):
        _, relative = _max_error(getattr(seeded, name), folder, name)
        assert relative <= REL_TOL, (name, relative)
        assert torch.equal(getattr(seeded, name), getattr(explicit, name))


def test_tiny_shift_on_draws_from_global_random_like_the_reference(tiny_dir, tiny_state):
    folder = tiny_dir / "shift_on"
    run_info = json.loads((folder / "run_info.json").read_text())
    model = _tiny_model(tiny_dir, tiny_state, "shift_on")
    saved = random.getstate()
    try:
        random.seed(run_info["python_random_seed_before_forward"])
        with torch.no_grad():
            model(*_inputs(folder))
        after_model = random.random()
        random.seed(run_info["python_random_seed_before_forward"])
        for low, high, _ in _draws(run_info):
            random.randint(low, high)
        after_reference = random.random()
    finally:
        random.setstate(saved)
    assert model.last_cross_attention_shifts == _draws(run_info)
    assert after_model == after_reference  # the global generator advanced exactly as the reference's


def test_full_key_list_and_shapes(official_fixtures):
    folder = official_fixtures / "mm_diffusion" / "full"
    run_info = json.loads((folder / "run_info.json").read_text())
    keys = json.loads((folder / "keys.json").read_text())
    assert len(keys) == 1046
    official = {name: torch.empty(shape, device="meta") for name, shape, _ in keys}
    with torch.device("meta"):
        model = CoupledUNetModel()
    for key, value in _config_from_run_info(run_info).items():  # the defaults are the SAVGBench configuration
        assert model.config[key] == value, key
    converted = convert_mm_diffusion_state_dict(official)
    reference = model.state_dict()
    assert list(converted) == list(reference)
    assert all(converted[name].shape == reference[name].shape for name in reference)
    assert sum(value.numel() for value in converted.values()) == 133_676_293
    assert sum(param.numel() for param in model.parameters()) == 133_676_293
    assert model.cross_attention_shift_ranges == [(low, high) for low, high, _ in _draws(run_info)]
    names = [official_mm_diffusion_key_to_savg(name) for name, _, _ in keys]
    assert len(set(names)) == len(names)


@pytest.mark.slow
def test_full_parity(official_fixtures):
    folder = official_fixtures / "mm_diffusion" / "full"
    run_info = json.loads((folder / "run_info.json").read_text())
    config = _config_from_run_info(run_info)
    model = CoupledUNetModel(**config).eval()
    model.load_state_dict(convert_mm_diffusion_state_dict(_official_state(folder), config), strict=True)
    with torch.no_grad():
        out = model(*_inputs(folder), generator=random.Random(run_info["python_random_seed_before_forward"]))
    assert model.last_cross_attention_shifts == _draws(run_info)
    for name in ("video", "audio"):
        _, relative = _max_error(getattr(out, name), folder, name)
        assert relative <= REL_TOL, (name, relative)


# ------------------------------------------------------------------------------------------ converter


def test_converter_names_every_bad_key(tiny_dir):
    keys = json.loads((tiny_dir / "keys.json").read_text())
    config = _config_from_run_info(json.loads((tiny_dir / "shift_on" / "run_info.json").read_text()))
    official = {name: torch.empty(shape, device="meta") for name, shape, _ in keys}
    assert len(convert_mm_diffusion_state_dict(official, config)) == 726

    missing = dict(official)
    del missing["output_blocks.2.1.a_qkv.weight"]
    with pytest.raises(
        ValueError, match=r"no official key: up_blocks\.2\.cross_attention\.audio_qkv\.weight"
    ):
        convert_mm_diffusion_state_dict(missing, config)

    extra = {**official, "output_blocks.2.3.emb_layers.1.weight": torch.empty(2, 32), "label_emb.weight": 1}
    with pytest.raises(
        ValueError, match=r"unexpected keys: output_blocks\.2\.3\.emb_layers\.1\.weight, label_emb"
    ):
        convert_mm_diffusion_state_dict(extra, config)

    reshaped = {**official, "audio_out.2.audio_conv.weight": torch.empty(1, 32, 3)}
    with pytest.raises(
        ValueError, match=r"audio_out\.2\.audio_conv\.weight: shape \(1, 32, 3\), expected \(2, 32, 3\)"
    ):
        convert_mm_diffusion_state_dict(reshaped, config)

    with pytest.raises(ValueError, match="not a tensor"):
        convert_mm_diffusion_state_dict({**official, "time_embed.0.bias": [0.0] * 32}, config)

    with pytest.raises(ValueError, match="cannot convert"):  # tiny weights for the full configuration
        convert_mm_diffusion_state_dict(official)


def test_converter_casts_half_precision_and_accepts_numpy(tiny_dir, tiny_state):
    config = _config_from_run_info(json.loads((tiny_dir / "shift_on" / "run_info.json").read_text()))
    converted = convert_mm_diffusion_state_dict({k: v.half().numpy() for k, v in tiny_state.items()}, config)
    assert all(value.dtype == torch.float32 for value in converted.values())
    for official_name, value in tiny_state.items():
        torch.testing.assert_close(
            converted[official_mm_diffusion_key_to_savg(official_name)], value.half().float()
        )


def test_load_checkpoint_is_weights_only(tmp_path):
    model = _micro_model()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    loaded = load_mm_diffusion_checkpoint(path)
    assert list(loaded) == list(model.state_dict())

    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="flat mapping"):
        load_mm_diffusion_checkpoint(tmp_path / "list.pt")
    torch.save({"a": torch.zeros(1), "step": 3}, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match="not tensors: step"):
        load_mm_diffusion_checkpoint(tmp_path / "mixed.pt")
    torch.save({"a": _Unsafe()}, tmp_path / "unsafe.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_mm_diffusion_checkpoint(tmp_path / "unsafe.pt")
    with pytest.raises(FileNotFoundError):
        load_mm_diffusion_checkpoint(tmp_path / "absent.pt")


class _Unsafe:
    """A pickled object that the weights-only unpickler must refuse."""


def test_convert_checkpoint_round_trip_of_the_tiny_config(tiny_dir, tiny_state, tmp_path):
    config = _config_from_run_info(json.loads((tiny_dir / "shift_on" / "run_info.json").read_text()))
    torch.save(tiny_state, tmp_path / "model.pt")
    out_dir = convert_mm_diffusion_checkpoint(tmp_path / "model.pt", tmp_path / "converted", config=config)
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # staging folder removed
    loaded = CoupledUNetModel.from_pretrained(out_dir)
    expected = convert_mm_diffusion_state_dict(tiny_state, config)
    assert all(torch.equal(loaded.state_dict()[name], value) for name, value in expected.items())
    assert {k: loaded.config[k] for k in config} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in config.items()
    }
    assert loaded.cross_attention_shift_ranges == [
        (low, high)
        for low, high, _ in _draws(json.loads((tiny_dir / "shift_on" / "run_info.json").read_text()))
    ]


def test_save_pretrained_round_trip_keeps_outputs(tmp_path):
    model = _micro_model()
    model.save_pretrained(tmp_path / "micro")
    loaded = CoupledUNetModel.from_pretrained(tmp_path / "micro").eval()
    video, audio, t = _micro_inputs(model)
    shifts = [high for _, high in model.cross_attention_shift_ranges]
    with torch.no_grad():
        first = model(video, audio, t, cross_attention_shifts=shifts, return_dict=False)
        second = loaded(video, audio, t, cross_attention_shifts=shifts, return_dict=False)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


# ---------------------------------------------------------------------------------------------------- shifts


def test_shifts_are_controllable_and_reproducible():
    model = _micro_model()
    assert model.cross_attention_shift_ranges == [(0, 3), (0, 2), (0, 2), (0, 2), (0, 3), (0, 3)]
    video, audio, t = _micro_inputs(model)
    with torch.no_grad():
        a = model(video, audio, t, generator=random.Random(7))
        draws_a = model.last_cross_attention_shifts
        b = model(video, audio, t, generator=random.Random(7))
        assert model.last_cross_attention_shifts == draws_a
        explicit = model(video, audio, t, cross_attention_shifts=[s for _, _, s in draws_a])
        unshifted = model(video, audio, t, cross_attention_shifts=[0] * 6)
        other = model(video, audio, t, cross_attention_shifts=[3, 2, 2, 2, 3, 3])
    rng = random.Random(7)
    assert [s for _, _, s in draws_a] == [
        rng.randint(low, high) for low, high in model.cross_attention_shift_ranges
    ]
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert torch.equal(a.video, explicit.video) and torch.equal(a.audio, explicit.audio)
    assert not torch.allclose(unshifted.video, other.video)
    assert not torch.allclose(unshifted.audio, other.audio)


def test_shift_off_matches_all_zero_shifts():
    shifting = _micro_model()
    fixed = _micro_model(cross_attention_shift=False)
    video, audio, t = _micro_inputs(shifting)
    with torch.no_grad():
        expected = fixed(video, audio, t)
        got = shifting(video, audio, t, cross_attention_shifts=[0] * 6)
    assert torch.equal(expected.video, got.video) and torch.equal(expected.audio, got.audio)
    with pytest.raises(ValueError, match="has 1 entries; this model draws 0"):
        fixed(video, audio, t, cross_attention_shifts=[0])


def test_bad_shift_arguments():
    model = _micro_model()
    video, audio, t = _micro_inputs(model, batch=1)
    with pytest.raises(ValueError, match="has 5 entries; this model draws 6"):
        model(video, audio, t, cross_attention_shifts=[0] * 5)
    with pytest.raises(ValueError, match=r"out of range .*\(1, 3, \(0, 2\)\)"):
        model(video, audio, t, cross_attention_shifts=[0, 3, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="either"):
        model(video, audio, t, cross_attention_shifts=[0] * 6, generator=random.Random(0))
    with pytest.raises(TypeError, match="random.Random"):
        model(video, audio, t, generator=torch.Generator())


def test_cross_attention_key_indices_wrap_and_window():
    # SAVGBench ds 8: 20 frames of 8x8, 1250 audio tokens (62 per frame, remainder 10), window 8, shift 12
    audio_keys, video_keys = cross_attention_key_indices(20, 64, 1250, window=8, shift=12)
    assert audio_keys.shape == (20, 8 * 62) and video_keys.shape == (20, 8 * 64)
    assert audio_keys[0, 0] == 12 * 62 and audio_keys[19, 0] == (31 * 62) % 1250
    assert torch.equal(video_keys[19], torch.arange(31 * 64, 39 * 64) % 1280)
    # middle block: window = F, no shift; frame i sees 1240 of the 1250 tokens starting at 62 i (mod 1250)
    audio_keys, video_keys = cross_attention_key_indices(20, 64, 1250, window=20, shift=0)
    assert torch.equal(audio_keys[19], torch.arange(1178, 1178 + 1240) % 1250)
    assert torch.equal(video_keys[5].sort().values, torch.arange(1280))


# -------------------------------------------------------------------------------------- inputs/config


def test_input_shape_errors():
    model = _micro_model()
    video, audio, t = _micro_inputs(model)
    with pytest.raises(ValueError, match=r"audio must have shape .*\(2, 2, 159\)"):
        model(video, audio[..., :159], t)
    with pytest.raises(ValueError, match=r"audio must have shape .*\(2, 1, 160\)"):
        model(video, audio[:, :1], t)
    with pytest.raises(ValueError, match=r"video must have shape .*\(2, 3, 4, 8, 8\)"):
        model(video.transpose(1, 2), audio, t)
    with pytest.raises(ValueError, match="video batch 2 and audio batch 1 differ"):
        model(video, audio[:1], t)
    with pytest.raises(ValueError, match=r"timestep must be a scalar or have shape \(2,\), got \(3,\)"):
        model(video, audio, torch.tensor([1, 2, 3]))


def test_scalar_timestep_and_tuple_output():
    model = _micro_model(cross_attention_shift=False)
    video, audio, _ = _micro_inputs(model)
    with torch.no_grad():
        scalar = model(video, audio, 250, return_dict=False)
        batched = model(video, audio, torch.tensor([250, 250]))
    assert isinstance(batched, CoupledUNetOutput) and isinstance(scalar, tuple)
    assert batched.video.shape == video.shape and batched.audio.shape == audio.shape
    assert torch.equal(scalar[0], batched.video) and torch.equal(scalar[1], batched.audio)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(resblock_updown=False), "resblock_updown=False"),
        (dict(video_size=(4, 3, 8, 7)), "8x7 must be divisible by 2"),
        (dict(audio_size=(2, 162)), "audio length 162 must be divisible by 4"),
        (dict(cross_attention_windows=(1, 5)), "window 5 at ds=2 exceeds the 4 frames"),
        (dict(cross_attention_windows=(1,)), "cross_attention_windows must have 2 entries"),
        (dict(audio_size=(2, 8)), "shorter than the 4 frames"),
        (dict(model_channels=48), "not divisible by norm_num_groups=32"),
        (dict(num_head_channels=48), "not divisible by num_head_channels=48"),
    ],
)
def test_bad_configurations(overrides, message):
    with pytest.raises(ValueError, match=message):
        CoupledUNetModel(**{**MICRO_CONFIG, **overrides})


def test_video_norm_with_as_many_frames_as_channels():
    # the reference wrapper skips its transpose when F == C and normalises over frames; ours always transposes
    norm = GroupNorm32(4, 8)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    video = (
        torch.randn(2, 8, 8, 3, 3) * torch.arange(1.0, 9.0)[None, None, :, None, None]
    )  # (B, F=8, C=8, H, W)
    got = video_group_norm(norm, video)
    expected = F.group_norm(video.permute(0, 2, 1, 3, 4), 4, norm.weight, norm.bias, 1e-5).permute(
        0, 2, 1, 3, 4
    )
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, norm(video))

    model = _micro_model(
        video_size=(8, 3, 8, 8),
        audio_size=(2, 64),
        model_channels=8,
        norm_num_groups=4,
        num_heads=2,
        num_head_channels=8,
        cross_attention_resolutions=(2,),
        cross_attention_windows=(2,),
        audio_attention_resolutions=(),
    )
    video, audio, t = _micro_inputs(model)
    with torch.no_grad():
        out = model(video, audio, t, generator=random.Random(0))
    assert out.video.shape == (2, 8, 3, 8, 8) and out.audio.shape == (2, 2, 64)
    assert torch.isfinite(out.video).all() and torch.isfinite(out.audio).all()
