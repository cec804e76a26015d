"""Stereo MM-Diffusion and SR training: dataset flips, losses against hand computations, train/resume/load."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from savg_hub.data.hf_dataset import ShardWriter, empty_labels
from savg_hub.media.io import encode_audio_bytes, encode_mp4_bytes
from savg_hub.models.sr_unet import SuperResUNetModel
from savg_hub.training.diffusion import (
    LinearSchedule,
    StepBatchSampler,
    StereoMMDiffusionDataset,
    StereoMMDiffusionTrainingConfig,
    SuperResolutionDataset,
    SuperResolutionTrainingConfig,
    joint_diffusion_loss,
    list_checkpoints,
    resize_frames,
    sr_hybrid_loss,
)

from test_pipelines import _perturbed, eps_as_v  # noqa: E402  (every parameter nudged, seeded; ε̂ as v̂)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"
SAMPLE_RATE, FPS, FRAMES, SAMPLES = 16_000, 4.0, 20, 80_000


def _load_script(name: str):
    path = REPO / "training" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clip(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright block on the left half of dark frames (moving down over time), and left/right audio that differ."""
    rng = np.random.default_rng(seed)
    video = np.full((FRAMES, 256, 256, 3), 20, np.uint8)
    for t in range(FRAMES):
        video[t, 56 + 6 * t: 96 + 6 * t, 30 + 4 * seed: 100 + 4 * seed] = (230, 120, 40)
    time = np.arange(SAMPLES) / SAMPLE_RATE
    left = 0.5 * np.sin(2 * np.pi * (300 + 50 * seed) * time)
    right = 0.05 * rng.standard_normal(SAMPLES)
    return video, np.stack([left, right]).astype(np.float32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """An SVGSA24-format folder with 3 dev clips and 1 eval clip (256x256, 20 frames at 4 fps, stereo 16 kHz)."""
    root = tmp_path_factory.mktemp("svgsa24-tiny")
    for split, seeds in (("dev", (0, 1, 2)), ("eval", (3,))):
        with ShardWriter(root / "data" / split, f"tiny-{split}") as writer:
            for seed in seeds:
                video, audio = _clip(seed)
                writer.write({
                    "clip_id": f"{split}-{seed}",
                    "video": {"bytes": encode_mp4_bytes(video, FPS, preset="ultrafast"), "path": f"{seed}.mp4"},
                    "audio": {"bytes": encode_audio_bytes(audio, SAMPLE_RATE), "path": f"{seed}.flac"},
                    "labels": empty_labels(), "source_dataset": "test", "source_recording": f"r{seed}",
                    "start_time": 0.0, "yaw": 0.0,
                })
    return root


# ------------------------------------------------------------------------------------------------ configs


def test_defaults_are_the_official_configs_and_bad_values_raise() -> None:
    for cls, name in ((StereoMMDiffusionTrainingConfig, "stereo_mm_diffusion"),
                      (SuperResolutionTrainingConfig, "super_resolution")):
        official = cls.load(CONFIGS / f"{name}_official.yaml").to_dict()
        defaults = cls().to_dict()
        assert {k for k in defaults if defaults[k] != official[k]} == {"num_workers"}
        tiny = cls.load(CONFIGS / f"{name}_tiny.yaml")
        assert cls.from_dict(json.loads(tiny.to_json())) == tiny
        assert cls.from_dict(yaml.safe_load(tiny.to_yaml())) == tiny
        with pytest.raises(ValueError, match="flip"):
            cls(flip="mirror")
        with pytest.raises(ValueError, match="unknown config keys"):
            cls.from_dict({"learning_rat": 1e-4})
        with pytest.raises(ValueError, match="bogus"):
            cls(model={"bogus": 1})
    mm = StereoMMDiffusionTrainingConfig()
    assert (mm.learning_rate, mm.weight_decay, mm.batch_size, mm.ema_decay) == (2e-4, 0.0, 32, 0.9999)
    assert (mm.num_train_timesteps, mm.beta_start, mm.beta_end, mm.model_kwargs()["dropout"]) == (1000, 1e-4, 0.02, 0.1)
    sr = SuperResolutionTrainingConfig()
    assert (sr.learning_rate, sr.batch_size, sr.num_train_timesteps, sr.sampler_num_train_timesteps) == (1e-4, 48, 1000,
                                                                                                         1100)
    assert sr.learned_sigma
    if not torch.cuda.is_available():
        assert mm.mixed_precision == "fp16" and mm.effective_mixed_precision() == "no"


# ------------------------------------------------------------------------------------------------ data


def test_flip_modes_mirror_frames_and_swap_channels_only_when_consistent(dataset) -> None:
    size = dict(video_size=(4, 3, 16, 16), audio_size=(2, 2048))
    consistent = StereoMMDiffusionDataset(dataset, "dev", **size, flip="consistent", cache_clips=True)
    legacy = StereoMMDiffusionDataset(dataset, "dev", **size, flip="legacy", cache_clips=True)
    none = StereoMMDiffusionDataset(dataset, "dev", **size, flip="none", cache_clips=True)
    assert len(consistent) == 3
    plain = consistent.example(1, flip=False, start_frame=2)
    assert plain["video"].shape == (4, 3, 16, 16) and plain["audio"].shape == (2, 2048)
    assert plain["video"].dtype == plain["audio"].dtype == torch.float32
    assert -1.0 <= float(plain["video"].min()) and float(plain["video"].max()) <= 1.0
    # the audio window starts at the first frame's time (frame 2 = 0.5 s = sample 8000), as stored (lossless)
    reference = _clip(1)[1][:, 8000:8000 + 2048]
    np.testing.assert_allclose(plain["audio"].numpy(), reference, atol=1e-6)
    # the bright block is on the left half
    brightness = plain["video"].mean(dim=(0, 1, 2))
    assert brightness[:8].mean() > brightness[8:].mean()

    mirrored = consistent.example(1, flip=True, start_frame=2)
    torch.testing.assert_close(mirrored["video"], plain["video"].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(mirrored["audio"], plain["audio"][[1, 0]], rtol=0, atol=0)
    old = legacy.example(1, flip=True, start_frame=2)
    torch.testing.assert_close(old["video"], plain["video"].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(old["audio"], plain["audio"], rtol=0, atol=0)

    # drawn flips: legacy always, none never, consistent at p = 0.5; (index, seed) keys are deterministic
    draws = {name: [bool(ds[(0, seed)]["flipped"]) for seed in range(24)]
             for name, ds in (("consistent", consistent), ("legacy", legacy), ("none", none))}
    assert all(draws["legacy"]) and not any(draws["none"])
    assert 4 <= sum(draws["consistent"]) <= 20
    again = consistent[(0, 5)]
    torch.testing.assert_close(again["video"], consistent[(0, 5)]["video"])

    # the full-size item is the bicubic 64x64 of the 256x256 frames
    full = StereoMMDiffusionDataset(dataset, "dev", flip="none").example(0)
    assert full["video"].shape == (20, 3, 64, 64) and full["audio"].shape == (2, 80000)
    with pytest.raises(ValueError, match="flip"):
        StereoMMDiffusionDataset(dataset, "dev", flip="joint-ish")
    with pytest.raises(ValueError, match="start_frame"):
        consistent.example(0, start_frame=17)


def test_super_resolution_pairs_and_resize() -> None:
    frames = np.zeros((2, 128, 256, 3), np.uint8)
    frames[:, :, :128] = 200
    out = resize_frames(frames, 64, 64)
    assert out.shape == (2, 64, 64, 3)
    assert (out[:, :16] == 0).all() and (out[:, 48:] == 0).all()  # aspect kept: 32 rows of picture, black bars
    assert out[:, 20:44, :30].min() >= 195 and out[:, 20:44, 34:].max() <= 5


def test_super_resolution_dataset_flips_both_frames(dataset) -> None:
    data = SuperResolutionDataset(dataset, "dev", image_size=32, small_size=8, flip="consistent")
    assert len(data) == 3 * 20
    plain = data.example(21)
    assert plain["high_res"].shape == (3, 32, 32) and plain["low_res"].shape == (3, 8, 8)
    flipped = data.example(21, flip=True)
    torch.testing.assert_close(flipped["high_res"], plain["high_res"].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(flipped["low_res"], plain["low_res"].flip(-1), rtol=0, atol=0)
    degraded = data.example(21, rng=np.random.default_rng(0))
    assert degraded["low_res"].shape == (3, 8, 8) and -1 <= float(degraded["low_res"].min())


def test_step_batch_sampler_is_a_function_of_the_step() -> None:
    whole = list(StepBatchSampler(5, 4, seed=3, start_step=0, num_steps=6))
    resumed = list(StepBatchSampler(5, 4, seed=3, start_step=2, num_steps=6))
    assert resumed == whole[2:]
    first = [index for batch in whole for index, _ in batch][:10]
    assert sorted(first[:5]) == sorted(first[5:]) == list(range(5))  # epoch by epoch
    halves = [list(StepBatchSampler(5, 4, 3, 0, 6, process_index=p, num_processes=2)) for p in (0, 1)]
    assert [a + b for a, b in zip(*halves)] == whole
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(5, 3, 0, 0, 1, num_processes=2)


# ------------------------------------------------------------------------------------------------ losses


def test_joint_loss_equals_a_hand_computation() -> None:
    torch.manual_seed(0)
    config = StereoMMDiffusionTrainingConfig.load(CONFIGS / "stereo_mm_diffusion_tiny.yaml")
    model = _perturbed(config.build_model())
    generator = torch.Generator().manual_seed(1)
    video = torch.rand((2, 4, 3, 8, 8), generator=generator) * 2 - 1
    audio = torch.rand((2, 2, 1024), generator=generator) * 2 - 1
    video_noise = torch.randn(video.shape, generator=generator)
    audio_noise = torch.randn(audio.shape, generator=generator)
    t = torch.tensor([3, 871])
    with torch.no_grad():
        loss, parts = joint_diffusion_loss(model, video, audio, t, video_noise, audio_noise, LinearSchedule(),
                                           random.Random(7))
    assert math.isfinite(float(loss.detach()))

    abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
    a = torch.tensor(np.sqrt(abar[t.numpy()]), dtype=torch.float32)
    s = torch.tensor(np.sqrt(1.0 - abar[t.numpy()]), dtype=torch.float32)
    video_t = a[:, None, None, None, None] * video + s[:, None, None, None, None] * video_noise
    audio_t = a[:, None, None] * audio + s[:, None, None] * audio_noise
    with torch.no_grad():
        eps_video, eps_audio = model(video_t, audio_t, t, generator=random.Random(7), return_dict=False)
    expected = ((eps_video - video_noise) ** 2).mean() + ((eps_audio - audio_noise) ** 2).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert parts["video"] == pytest.approx(float(((eps_video - video_noise) ** 2).mean()), rel=1e-5)
    assert parts["audio"] == pytest.approx(float(((eps_audio - audio_noise) ** 2).mean()), rel=1e-5)


def test_sr_hybrid_loss_is_mse_plus_vb_in_bits() -> None:
    torch.manual_seed(0)
    config = SuperResolutionTrainingConfig.load(CONFIGS / "super_resolution_tiny.yaml")
    model = _perturbed(config.build_model())
    generator = torch.Generator().manual_seed(2)
    high = torch.rand((2, 3, 32, 32), generator=generator) * 2 - 1
    low = torch.rand((2, 3, 8, 8), generator=generator) * 2 - 1
    noise = torch.randn(high.shape, generator=generator)
    t = torch.tensor([500, 0])
    schedule = LinearSchedule()
    with torch.no_grad():
        loss, parts = sr_hybrid_loss(model, high, low, t, noise, schedule)
    assert math.isfinite(float(loss)) and parts["vb"] > 0

    # hand computation (float64) of sample 0 (t = 500: KL of Gaussians, bits per element)
    abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    x0 = high[0].double().numpy()
    eps_true = noise[0].double().numpy()
    x_t = np.sqrt(abar[500]) * x0 + np.sqrt(1 - abar[500]) * eps_true
    with torch.no_grad():
        out = model(schedule.q_sample(high, t, noise), t, low, return_dict=False)[0][0].double().numpy()
    eps, v = out[:3], out[3:]
    prev = abar[499]
    post_var = betas[500] * (1 - prev) / (1 - abar[500])
    c1 = betas[500] * np.sqrt(prev) / (1 - abar[500])
    c2 = (1 - prev) * np.sqrt(1 - betas[500]) / (1 - abar[500])
    log_var = (v + 1) / 2 * np.log(betas[500]) + (1 - (v + 1) / 2) * np.log(post_var)
    x0_hat = (x_t - np.sqrt(1 - abar[500]) * eps) / np.sqrt(abar[500])
    mean_model, mean_true = c1 * x0_hat + c2 * x_t, c1 * x0 + c2 * x_t
    kl = 0.5 * (-1 + log_var - np.log(post_var) + np.exp(np.log(post_var) - log_var)
                + (mean_true - mean_model) ** 2 * np.exp(-log_var))
    vb0 = kl.mean() / np.log(2)
    mse0 = ((eps - eps_true) ** 2).mean()
    # sample 1 (t = 0) goes through the decoder NLL: compare the batch total through sample 0's share
    with torch.no_grad():
        loss_single, parts_single = sr_hybrid_loss(model, high[:1], low[:1], t[:1], noise[:1], schedule)
    assert float(loss_single) == pytest.approx(mse0 + vb0, rel=1e-4)
    assert parts_single["vb"] == pytest.approx(vb0, rel=1e-4)
    # without learned sigma the loss is the plain ε MSE
    plain = SuperResUNetModel(**{**config.model_kwargs(), "out_channels": 3}).eval()
    with torch.no_grad():
        loss_plain, parts_plain = sr_hybrid_loss(plain, high, low, t, noise, schedule)
    assert parts_plain["vb"] == 0.0 and float(loss_plain) == pytest.approx(parts_plain["mse"])


def test_v_target_and_epsilon_invert_each_other() -> None:
    schedule = LinearSchedule()
    generator = torch.Generator().manual_seed(3)
    x0 = torch.rand((3, 2, 16), generator=generator) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.tensor([0, 400, 999])
    x_t = schedule.q_sample(x0, t, noise)
    v = schedule.target(x0, t, noise, "v_prediction")
    abar = torch.tensor(np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))[t.numpy()], dtype=torch.float32)
    expected_v = abar.sqrt()[:, None, None] * noise - (1 - abar).sqrt()[:, None, None] * x0
    torch.testing.assert_close(v, expected_v)
    torch.testing.assert_close(schedule.epsilon(x_t, t, v, "v_prediction"), noise, atol=1e-5, rtol=0)
    assert schedule.target(x0, t, noise, "epsilon") is noise
    assert schedule.epsilon(x_t, t, noise, "epsilon") is noise
    with pytest.raises(ValueError, match="sample"):
        schedule.target(x0, t, noise, "sample")


class _VFromEps(torch.nn.Module):
    """An SR ε-model as the v-model with the same ε̂ (first 3 channels; the variance channels unchanged)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, low_res: torch.Tensor, return_dict: bool = False):
        out = self.model(x_t, t, low_res, return_dict=False)[0]
        return (torch.cat([eps_as_v(x_t, t, out[:, :3]), out[:, 3:]], 1),)


def test_v_prediction_losses_regress_v_and_keep_the_vb_term() -> None:
    torch.manual_seed(0)
    schedule = LinearSchedule()
    generator = torch.Generator().manual_seed(4)
    # joint: the v-loss of a model is the MSE of its output to the v target
    config = StereoMMDiffusionTrainingConfig.load(CONFIGS / "stereo_mm_diffusion_tiny.yaml")
    model = _perturbed(config.build_model()).eval()
    video = torch.rand((2, 4, 3, 8, 8), generator=generator) * 2 - 1
    audio = torch.rand((2, 2, 1024), generator=generator) * 2 - 1
    video_noise, audio_noise = torch.randn(video.shape, generator=generator), torch.randn(audio.shape, generator=generator)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        loss, parts = joint_diffusion_loss(model, video, audio, t, video_noise, audio_noise, schedule,
                                           random.Random(7), prediction_type="v_prediction")
        out_video, out_audio = model(schedule.q_sample(video, t, video_noise), schedule.q_sample(audio, t, audio_noise),
                                     t, generator=random.Random(7), return_dict=False)
    v_video = schedule.target(video, t, video_noise, "v_prediction")
    v_audio = schedule.target(audio, t, audio_noise, "v_prediction")
    assert parts["video"] == pytest.approx(float(((out_video - v_video) ** 2).mean()), rel=1e-5)
    assert float(loss) == pytest.approx(parts["video"] + float(((out_audio - v_audio) ** 2).mean()), rel=1e-5)
    # SR: a v-model with the same ε̂ as an ε-model has the same VB term (the variance and mean come from ε̂)
    sr_config = SuperResolutionTrainingConfig.load(CONFIGS / "super_resolution_tiny.yaml")
    sr = _perturbed(sr_config.build_model()).eval()
    high = torch.rand((2, 3, 32, 32), generator=generator) * 2 - 1
    low = torch.rand((2, 3, 8, 8), generator=generator) * 2 - 1
    noise = torch.randn(high.shape, generator=generator)
    t = torch.tensor([500, 0])
    with torch.no_grad():
        _, eps_parts = sr_hybrid_loss(sr, high, low, t, noise, schedule)
        _, v_parts = sr_hybrid_loss(_VFromEps(sr), high, low, t, noise, schedule,
                                    prediction_type="v_prediction")
    assert v_parts["vb"] == pytest.approx(eps_parts["vb"], rel=1e-3)
    assert v_parts["mse"] != pytest.approx(eps_parts["mse"])


def test_prediction_type_and_init_from_are_validated(tmp_path) -> None:
    with pytest.raises(ValueError, match="prediction_type"):
        StereoMMDiffusionTrainingConfig(prediction_type="sample")
    from savg_hub.training.diffusion import _initial_model

    config = StereoMMDiffusionTrainingConfig.load(CONFIGS / "stereo_mm_diffusion_tiny.yaml")
    torch.manual_seed(5)
    source = config.build_model()
    source.save_pretrained(tmp_path / "pipe" / "unet")
    for folder in (tmp_path / "pipe", tmp_path / "pipe" / "unet"):
        model = _initial_model(config.replace(init_from=str(folder)))
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        _initial_model(config.replace(init_from=str(tmp_path)))
    bigger = config.replace(model={**config.model, "model_channels": 64})
    with pytest.raises(ValueError, match="does not match"):
        _initial_model(bigger.replace(init_from=str(tmp_path / "pipe")))


# ------------------------------------------------------------------------------------------------ the scripts


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(next((folder / "unet").glob("*.safetensors")))


def _fast_config(tmp_path: Path, name: str) -> Path:
    """The tiny config at batch 1 with a checkpoint every step (the machine running the tests is small)."""
    config = yaml.safe_load((CONFIGS / f"{name}_tiny.yaml").read_text())
    config.update(batch_size=1, checkpoint_every=1, checkpoints_total_limit=2)
    if name == "stereo_mm_diffusion":
        config["model"]["video_size"] = [2, 3, 8, 8]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_stereo_mm_diffusion_script_trains_resumes_and_saves_a_loadable_pipeline(dataset, tmp_path) -> None:
    from diffusers import DiffusionPipeline

    script = _load_script("train_stereo_mm_diffusion")
    base = ["--config", str(_fast_config(tmp_path, "stereo_mm_diffusion")), "--dataset", str(dataset),
            "--no-progress"]
    run = tmp_path / "run"
    first = script.main([*base, "--output-dir", str(run), "--max-steps", "1"])
    assert first["step"] == 1 and [step for step, _ in list_checkpoints(run)] == [1]
    checkpoint = list_checkpoints(run)[-1][1]
    saved = StereoMMDiffusionTrainingConfig.load(checkpoint / "training_config.yaml")
    assert saved.max_steps == 1 and saved.dataset == str(dataset)
    with pytest.raises(FileExistsError):
        script.main([*base, "--output-dir", str(run), "--max-steps", "3"])
    optimizer_before = torch.load(checkpoint / "optimizer.bin", weights_only=True)

    resumed = script.main([*base, "--output-dir", str(run), "--max-steps", "2", "--resume"])
    assert (resumed["start_step"], resumed["step"]) == (1, 2)
    assert [step for step, _ in list_checkpoints(run)] == [1, 2]
    optimizer_after = torch.load(list_checkpoints(run)[-1][1] / "optimizer.bin", weights_only=True)
    assert optimizer_after["state"][0]["step"] == optimizer_before["state"][0]["step"] + 1  # Adam state carried on

    # an uninterrupted run ends with the same weights: optimizer, EMA, RNG and data order were all restored
    straight = tmp_path / "straight"
    script.main([*base, "--output-dir", str(straight), "--max-steps", "2"])
    for name, value in _weights(straight / "pipeline").items():
        torch.testing.assert_close(_weights(run / "pipeline")[name], value, rtol=1e-5, atol=1e-6)

    folder = run / "pipeline"
    card = (folder / "README.md").read_text()
    assert "consistent" in card and "legacy" in card and "trust_remote_code=True" in card
    assert StereoMMDiffusionTrainingConfig.load(folder / "training_config.yaml").max_steps == 2
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    assert type(pipe).__name__ == "StereoMMDiffusionPipeline"
    pipe.set_progress_bar_config(disable=True)
    out = pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 2, 8, 8, 3) and out.frames.dtype == np.uint8
    assert out.audio.shape == (1, 2, 1024) and np.isfinite(out.audio).all()
    assert (out.fps, out.sample_rate) == (4.0, 16000)


def test_super_resolution_script_trains_resumes_and_saves_a_loadable_pipeline(dataset, tmp_path) -> None:
    from diffusers import DDIMScheduler, DiffusionPipeline

    script = _load_script("train_super_resolution")
    base = ["--config", str(_fast_config(tmp_path, "super_resolution")), "--dataset", str(dataset), "--no-progress"]
    run = tmp_path / "sr"
    script.main([*base, "--output-dir", str(run), "--max-steps", "1"])
    resumed = script.main([*base, "--output-dir", str(run), "--max-steps", "2", "--resume"])
    assert (resumed["start_step"], resumed["step"]) == (1, 2)
    assert [step for step, _ in list_checkpoints(run)] == [1, 2]
    pipe = DiffusionPipeline.from_pretrained(run / "pipeline", trust_remote_code=True)
    assert type(pipe).__name__ == "SuperResolutionPipeline" and isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.scheduler.config.num_train_timesteps == 1000
    pipe.set_progress_bar_config(disable=True)
    low = np.random.default_rng(0).integers(0, 256, (1, 2, 8, 8, 3), dtype=np.uint8)
    out = pipe(video=low, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 2, 32, 32, 3) and out.frames.dtype == np.uint8
    card = (run / "pipeline" / "README.md").read_text()
    assert "hybrid loss" in card and "stereo channels" not in card


def test_training_card_says_when_the_legacy_flip_was_used() -> None:
    from savg_hub.pipelines.cards import render_training_card

    config = StereoMMDiffusionTrainingConfig(flip="legacy").to_dict()
    card = render_training_card("stereo_mm_diffusion", config, {"step": 10, "num_parameters": 5}, name="x")
    assert "Trained with the legacy flip" in card and "**not** swapped" in card
    with pytest.raises(ValueError, match="kind"):
        render_training_card("video", config, {}, name="x")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_joint_pipeline_is_assembled_from_two_training_runs_with_a_scored_card(dataset, tmp_path) -> None:
    """training/assemble_joint_pipeline.py: base + SR runs -> a loadable SAVGBenchJointPipeline folder whose card
    carries the measured Spatial AV-Align of ground truth, samples and channel-swapped samples."""
    from savg_hub.pipelines.loading import load_pipeline

    runs = {}
    for name, script_name in (("stereo_mm_diffusion", "train_stereo_mm_diffusion"),
                              ("super_resolution", "train_super_resolution")):
        runs[name] = tmp_path / name
        _load_script(script_name).main(["--config", str(_fast_config(tmp_path, name)), "--dataset", str(dataset),
                                        "--no-progress", "--output-dir", str(runs[name]), "--max-steps", "1"])
    # a second base phase: v-prediction, started from the first run's EMA weights
    v_config = yaml.safe_load(_fast_config(tmp_path, "stereo_mm_diffusion").read_text())
    v_config["prediction_type"] = "v_prediction"
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(v_config))
    _load_script("train_stereo_mm_diffusion").main([
        "--config", str(tmp_path / "v.yaml"), "--dataset", str(dataset), "--no-progress", "--max-steps", "1",
        "--output-dir", str(tmp_path / "v"), "--init-from", str(runs["stereo_mm_diffusion"] / "pipeline")])
    assemble = _load_script("assemble_joint_pipeline")
    out = tmp_path / "joint-tiny"
    assemble.main(["--base", str(tmp_path / "v" / "pipeline"),
                   "--sr", str(runs["super_resolution"] / "pipeline"), "--out", str(out)])
    with pytest.raises(FileExistsError):
        assemble.main(["--base", str(runs["stereo_mm_diffusion"] / "pipeline"),
                       "--sr", str(runs["super_resolution"] / "pipeline"), "--out", str(out)])
    assert (out / "training" / "base" / "init" / "training.json").is_file()
    assert not (out / "training" / "sr" / "init").exists()
    pipe = load_pipeline(out)
    assert type(pipe).__name__ == "SAVGBenchJointPipeline"
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.sr_scheduler.config.prediction_type == "epsilon"
    card = (out / "README.md").read_text()
    assert "| base (Stereo MM-Diffusion), phase 1 |" in card and "ε-prediction" in card
    assert "| base (Stereo MM-Diffusion), phase 2 |" in card and "from phase 1's EMA weights, 1 steps" in card
    assert "v-prediction" in card and "--init-from" in card
    pipe.set_progress_bar_config(disable=True)
    clip = pipe(num_inference_steps=1, sr_num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    assert clip.frames.shape == (1, 2, 32, 32, 3) and clip.audio.shape == (1, 2, 1024)
    assert "not measured" in (out / "README.md").read_text()

    def results(path: Path, score: float, tp: int, fn: int, swapped: float | None = None) -> Path:
        section = {"score": score, "num_tp": tp, "num_fn": fn, "num_clips": 3, "calibration": {}}
        if swapped is not None:
            section["calibration"]["swap_lr"] = {"score": swapped, "num_tp": 1, "num_fn": 9}
        weights = [{"role": "seld", "name": "stereo-seld-synthetic"}, {"role": "detector", "name": "yolo"}]
        path.write_text(json.dumps({"sections": {"spatial_av_align": section}, "weights": weights}))
        return path

    generation = tmp_path / "generation.json"
    generation.write_text(json.dumps({"seeds": [0, 1, 2], "sampler": "DPMSolverMultistepScheduler",
                                      "num_inference_steps": 25, "sr_num_inference_steps": 10, "seconds": 30.0,
                                      "device": "cpu"}))
    copy = tmp_path / "cards" / "README.md"
    assemble.main(["--card-only", "--out", str(out), "--ground-truth", str(results(tmp_path / "gt.json", 0.99, 99, 1)),
                   "--samples", str(results(tmp_path / "s.json", 0.5, 5, 5, swapped=0.1)),
                   "--generation", str(generation), "--card-copy", str(copy), "--note", "Samples are noise."])
    card = (out / "README.md").read_text()
    assert copy.read_text() == card
    assert "| ground truth (synthetic set, eval split) | 0.9900 | 99 / 1 | 3 |" in card
    assert "| this pipeline's samples | 0.5000 | 5 / 5 | 3 |" in card
    assert "| the same samples, left/right channels swapped | 0.1000 | 1 / 9 | 3 |" in card
    assert "seeds 0..2" in card and "seld: stereo-seld-synthetic" in card and "* Samples are noise." in card
    assert "train_stereo_mm_diffusion.py" in card and "train_super_resolution.py" in card
