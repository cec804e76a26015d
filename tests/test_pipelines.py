"""Stereo MM-Diffusion, super-resolution and end-to-end SAVGBench pipelines on tiny real components."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler

from savg_hub.media.clip import read_clip
from savg_hub.models.mm_diffusion_unet import CoupledUNetModel
from savg_hub.models.sr_unet import SuperResUNetModel
from savg_hub.pipelines import (
    SAVGBenchJointPipeline,
    SAVGPipelineOutput,
    StereoMMDiffusionPipeline,
    SuperResolutionPipeline,
    export_to_clips,
    sr_ddim_scheduler,
    stereo_mm_diffusion_dpmsolver_scheduler,
)
from savg_hub.pipelines.export import clip_spec_for
from savg_hub.schedulers import AdaptiveDPMSolverScheduler

# 4 frames of 8x8 and 1024 stereo samples: 0.128 s at 31.25 fps / 8 kHz; SR 8 -> 32
UNET_CONFIG = dict(
    video_size=(4, 3, 8, 8), audio_size=(2, 1024), model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
    video_attention_resolutions=(2,), audio_attention_resolutions=(), cross_attention_resolutions=(1, 2),
    cross_attention_windows=(1, 2), num_heads=4, num_head_channels=32,
)
SR_CONFIG = dict(
    image_size=32, small_size=8, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
    attention_resolutions=(2,), num_heads=2,
)
FPS, SAMPLE_RATE = 31.25, 8000


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter nudged (seeded) so that the zero-initialised output convolutions do not hide the rest."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def get_dummy_components() -> dict:
    torch.manual_seed(0)
    unet = _perturbed(CoupledUNetModel(**UNET_CONFIG))
    torch.manual_seed(0)
    sr_unet = _perturbed(SuperResUNetModel(**SR_CONFIG))
    return dict(
        unet=unet, scheduler=stereo_mm_diffusion_dpmsolver_scheduler(), sr_unet=sr_unet,
        sr_scheduler=sr_ddim_scheduler(), fps=FPS, sample_rate=SAMPLE_RATE,
    )


@pytest.fixture(scope="module")
def components() -> dict:
    return get_dummy_components()


def _base(components: dict, **overrides) -> StereoMMDiffusionPipeline:
    pipe = StereoMMDiffusionPipeline(
        unet=components["unet"], scheduler=overrides.get("scheduler", components["scheduler"]), fps=FPS,
        sample_rate=SAMPLE_RATE,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _joint(components: dict) -> SAVGBenchJointPipeline:
    pipe = SAVGBenchJointPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _seed(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------------- base


def test_base_output_shapes_dtypes_and_ranges(components) -> None:
    pipe = _base(components)
    out = pipe(batch_size=2, num_inference_steps=2, generator=_seed(0))
    assert isinstance(out, SAVGPipelineOutput)
    assert out.frames.shape == (2, 4, 8, 8, 3) and out.frames.dtype == np.uint8
    assert out.audio.shape == (2, 2, 1024) and out.audio.dtype == np.float32
    assert np.abs(out.audio).max() <= 1.0
    assert (out.fps, out.sample_rate) == (FPS, SAMPLE_RATE)
    frames, audio = pipe(batch_size=1, num_inference_steps=2, generator=_seed(0), output_type="pt",
                         return_dict=False)
    assert torch.is_tensor(frames) and frames.dtype == torch.float32 and frames.shape == (1, 4, 8, 8, 3)
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    latent = pipe(batch_size=1, num_inference_steps=2, generator=_seed(0), output_type="latent")
    assert latent.frames.shape == (1, 4, 3, 8, 8) and latent.audio.shape == (1, 2, 1024)


def test_same_seed_same_clip_and_different_seeds_differ(components) -> None:
    pipe = _base(components)
    a = pipe(num_inference_steps=1, generator=_seed(3))
    b = pipe(num_inference_steps=1, generator=_seed(3))
    c = pipe(num_inference_steps=1, generator=_seed(4))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio) and not np.array_equal(a.frames, c.frames)


def test_noise_is_drawn_video_first_then_audio_and_multistep_history_is_per_modality(components) -> None:
    """The pipeline equals a hand-written loop with one DPM-Solver++ instance per modality."""
    pipe = _base(components)
    steps = 3
    out = pipe(num_inference_steps=steps, generator=_seed(5), cross_attention_generator=random.Random(7),
               output_type="latent")
    generator = _seed(5)
    video = torch.randn(1, 4, 3, 8, 8, generator=generator)
    audio = torch.randn(1, 2, 1024, generator=generator)
    schedulers = [stereo_mm_diffusion_dpmsolver_scheduler() for _ in range(2)]
    for scheduler in schedulers:
        scheduler.set_timesteps(steps)
    shifts = random.Random(7)
    with torch.no_grad():
        for t in schedulers[0].timesteps:
            eps_video, eps_audio = components["unet"](video, audio, t.reshape(1), generator=shifts, return_dict=False)
            video = schedulers[0].step(eps_video, t, video).prev_sample
            audio = schedulers[1].step(eps_audio, t, audio).prev_sample
    torch.testing.assert_close(out.frames, video, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.audio, audio, rtol=0, atol=1e-6)


def test_official_adaptive_sampler(components) -> None:
    pipe = _base(components)
    official = pipe.resolve_scheduler("official")
    assert isinstance(official, AdaptiveDPMSolverScheduler) and official.config.atol == 0.0078
    assert official.config.num_train_timesteps == 1000 and official.config.beta_end == 0.02
    # a loose tolerance keeps the random tiny U-Net to a few adaptive steps (the solver itself is tested in
    # test_schedulers.py)
    adaptive = _base(components, scheduler=AdaptiveDPMSolverScheduler(atol=0.5, rtol=0.5, h_init=2.0))
    assert adaptive.resolve_scheduler("official") is adaptive.scheduler
    a = adaptive(generator=_seed(1), output_type="latent")
    b = adaptive(sampler="official", generator=_seed(1), output_type="latent")
    torch.testing.assert_close(a.frames, b.frames, rtol=0, atol=0)
    torch.testing.assert_close(a.audio, b.audio, rtol=0, atol=0)
    scheduler = adaptive.scheduler
    assert scheduler.is_finished and scheduler.num_accepted >= 1
    assert scheduler.num_model_evaluations == 2 * (scheduler.num_accepted + scheduler.num_rejected)
    # back to DPM-Solver++ from an adaptive component: the §2.3 configuration on the same training schedule
    dpm = adaptive.resolve_scheduler("dpmsolver")
    assert isinstance(dpm, DPMSolverMultistepScheduler)
    assert dict(dpm.config) == dict(stereo_mm_diffusion_dpmsolver_scheduler().config)
    with pytest.raises(ValueError, match="sampler"):
        pipe(sampler="euler")


_ALPHAS_CUMPROD = torch.from_numpy(np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000)))


def eps_as_v(sample: torch.Tensor, timesteps: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The v̂ = (ε̂ − σ_t x_t) / α_t that gives the same x̂0 as ``eps`` at x_t = ``sample`` (linear 1000-step
    schedule; ``timesteps`` a scalar or one per sample)."""
    t = torch.as_tensor(timesteps).long().reshape(-1)
    shape = (-1, *([1] * (sample.ndim - 1)))
    alpha = _ALPHAS_CUMPROD[t].sqrt().float().reshape(shape)
    sigma = (1 - _ALPHAS_CUMPROD[t]).sqrt().float().reshape(shape)
    return (eps - sigma * sample) / alpha


def _as_v_model(unet: CoupledUNetModel) -> CoupledUNetModel:
    """A copy of ``unet`` that outputs v̂ for the ε̂ of the original (same x̂0 at every t)."""
    import copy

    v_unet = copy.deepcopy(unet)
    forward = v_unet.forward

    def v_forward(video, audio, timesteps, **kwargs):
        eps_video, eps_audio = forward(video, audio, timesteps, **kwargs)[:2]
        return eps_as_v(video, timesteps, eps_video), eps_as_v(audio, timesteps, eps_audio)

    v_unet.forward = v_forward
    return v_unet


def test_v_prediction_pipeline_samples_what_the_equivalent_eps_model_samples(components) -> None:
    eps_pipe = _base(components)
    v_pipe = StereoMMDiffusionPipeline(
        unet=_as_v_model(components["unet"]),
        scheduler=stereo_mm_diffusion_dpmsolver_scheduler(prediction_type="v_prediction"), fps=FPS,
        sample_rate=SAMPLE_RATE,
    )
    v_pipe.set_progress_bar_config(disable=True)
    a = eps_pipe(num_inference_steps=5, generator=_seed(2), output_type="latent")
    b = v_pipe(num_inference_steps=5, generator=_seed(2), output_type="latent")
    torch.testing.assert_close(b.frames, a.frames, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(b.audio, a.audio, rtol=1e-3, atol=1e-3)
    # the other sampler keeps the prediction type of the component
    assert v_pipe.resolve_scheduler("official").config.prediction_type == "v_prediction"
    assert eps_pipe.resolve_scheduler("official").config.prediction_type == "epsilon"
    # the official solver's data prediction from v̂ is the one from the matching ε̂
    solver = AdaptiveDPMSolverScheduler(prediction_type="v_prediction", thresholding=False)
    t = torch.tensor([0.7])
    alpha, sigma = solver.marginal_alpha(t), solver.marginal_std(t)
    x, v = torch.randn(2, 50, generator=_seed(3)), torch.randn(2, 50, generator=_seed(4))
    x0 = solver.data_prediction(x, v, t)
    torch.testing.assert_close(x0, alpha * x - sigma * v)
    eps = (x - alpha * x0) / sigma
    torch.testing.assert_close(AdaptiveDPMSolverScheduler(thresholding=False).data_prediction(x, eps, t), x0,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="prediction_type"):
        AdaptiveDPMSolverScheduler(prediction_type="sample")


def test_callback_on_step_end_gets_the_named_tensors_and_can_replace_them(components) -> None:
    pipe = _base(components)
    seen = []

    def callback(p, step, timestep, kwargs):
        seen.append((step, int(timestep), sorted(kwargs)))
        assert kwargs["audio_latents"].shape == (1, 2, 1024)
        return {"audio_latents": torch.zeros_like(kwargs["audio_latents"])}

    out = pipe(num_inference_steps=3, generator=_seed(0), callback_on_step_end=callback,
               callback_on_step_end_tensor_inputs=["audio_latents"])
    assert [s for s, _, _ in seen] == [0, 1, 2]
    assert all(names == ["audio_latents"] for _, _, names in seen)
    assert np.all(out.audio == 0)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe(num_inference_steps=1, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["x"])


def test_bad_inputs_name_the_value(components) -> None:
    pipe = _base(components)
    with pytest.raises(ValueError, match="output_type"):
        pipe(output_type="pil")
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe(num_inference_steps=0)
    with pytest.raises(ValueError, match="video_latents must have shape"):
        pipe(video_latents=torch.zeros(1, 4, 3, 16, 16), audio_latents=torch.zeros(1, 2, 1024))
    with pytest.raises(ValueError, match="both"):
        pipe(video_latents=torch.zeros(1, 4, 3, 8, 8))


# ------------------------------------------------------------------------------------------------------- SR


def test_sr_schedule_as_released() -> None:
    scheduler = sr_ddim_scheduler()
    scheduler.set_timesteps(25)
    assert scheduler.timesteps.tolist() == list(range(1056, -1, -44))
    assert scheduler.config.beta_start == pytest.approx(1e-4 * 1000 / 1100)
    assert scheduler.config.beta_end == pytest.approx(0.02 * 1000 / 1100)


def test_sr_same_noise_for_every_frame_and_frame_batching_does_not_matter(components) -> None:
    pipe = SuperResolutionPipeline(unet=components["sr_unet"], scheduler=components["sr_scheduler"])
    pipe.set_progress_bar_config(disable=True)
    frame = torch.randint(0, 256, (1, 1, 8, 8, 3), generator=_seed(0), dtype=torch.uint8)
    video = torch.cat([frame.expand(1, 3, 8, 8, 3), torch.zeros(1, 1, 8, 8, 3, dtype=torch.uint8)], dim=1)
    out = pipe(video=video, num_inference_steps=2, generator=_seed(0), output_type="pt")
    assert out.frames.shape == (1, 4, 32, 32, 3)
    # identical low-res frames, identical initial noise: identical outputs
    torch.testing.assert_close(out.frames[0, 0], out.frames[0, 1], rtol=0, atol=0)
    assert not torch.equal(out.frames[0, 0], out.frames[0, 3])
    chunked = pipe(video=video, num_inference_steps=2, generator=_seed(0), output_type="pt", frame_batch_size=1)
    torch.testing.assert_close(chunked.frames, out.frames, rtol=0, atol=2e-5)  # conv batching
    # the paper's "DDPM" wording: ancestral sampling with the learned variance (all 6 output channels)
    from diffusers import DDPMScheduler

    ddpm = SuperResolutionPipeline(unet=components["sr_unet"], scheduler=DDPMScheduler(
        num_train_timesteps=1000, variance_type="learned_range", clip_sample=True))
    ddpm.set_progress_bar_config(disable=True)
    frames = ddpm(video=video, num_inference_steps=2, generator=[_seed(0)]).frames
    assert frames.shape == (1, 4, 32, 32, 3) and frames.dtype == np.uint8
    with pytest.raises(ValueError, match="8x8"):
        pipe(video=torch.zeros(1, 2, 16, 16, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="exactly one"):
        pipe()


# ---------------------------------------------------------------------------------------------- end to end


def test_joint_pipeline_end_to_end_and_callbacks_of_both_stages(components) -> None:
    pipe = _joint(components)
    seen = []

    def callback(p, step, timestep, kwargs):
        seen.append((type(p).__name__, sorted(kwargs)))
        return {}

    out = pipe(batch_size=2, num_inference_steps=2, sr_num_inference_steps=2, generator=_seed(0),
               callback_on_step_end=callback)
    assert out.frames.shape == (2, 4, 32, 32, 3) and out.frames.dtype == np.uint8
    assert out.audio.shape == (2, 2, 1024) and (out.fps, out.sample_rate) == (FPS, SAMPLE_RATE)
    assert seen == [("StereoMMDiffusionPipeline", ["audio_latents", "video_latents"])] * 2 + [
        ("SuperResolutionPipeline", ["latents"])] * 2
    with pytest.raises(ValueError, match="SR model upsamples"):
        SAVGBenchJointPipeline(**{**components, "sr_unet": SuperResUNetModel(**{**SR_CONFIG, "small_size": 16})})


def test_save_pretrained_loads_with_diffusion_pipeline_and_own_class(components, tmp_path) -> None:
    pipe = _joint(components)
    reference = pipe(num_inference_steps=1, sr_num_inference_steps=1, generator=_seed(9))
    folder = tmp_path / "savgbench-tiny"
    pipe.save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "SAVGBenchJointPipeline"]
    assert index["unet"] == ["savg_hub.models.mm_diffusion_unet", "CoupledUNetModel"]
    assert index["sr_unet"] == ["savg_hub.models.sr_unet", "SuperResUNetModel"]
    assert index["scheduler"] == ["diffusers", "DPMSolverMultistepScheduler"]
    assert (index["fps"], index["sample_rate"]) == (FPS, SAMPLE_RATE)
    stub = (folder / "pipeline.py").read_text().strip().splitlines()
    assert stub == ["from savg_hub.pipelines.pipeline_savgbench_joint import SAVGBenchJointPipeline  # noqa: F401"]

    own = SAVGBenchJointPipeline.from_pretrained(folder)
    generic = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    for loaded in (own, generic):
        assert type(loaded) is SAVGBenchJointPipeline
        assert isinstance(loaded.scheduler, DPMSolverMultistepScheduler)
        assert isinstance(loaded.sr_scheduler, DDIMScheduler)
        loaded.set_progress_bar_config(disable=True)
        out = loaded(num_inference_steps=1, sr_num_inference_steps=1, generator=_seed(9))
        np.testing.assert_array_equal(out.frames, reference.frames)
        np.testing.assert_array_equal(out.audio, reference.audio)
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(folder)
    # a fresh process that has imported nothing from savg_hub: pipeline.py brings the classes in
    code = (
        "import torch; from diffusers import DiffusionPipeline; "
        f"p = DiffusionPipeline.from_pretrained({str(folder)!r}, trust_remote_code=True); "
        "p.set_progress_bar_config(disable=True); "
        "o = p(num_inference_steps=1, sr_num_inference_steps=1, generator=torch.Generator().manual_seed(9)); "
        "print(type(p).__name__, int(o.frames.astype('int64').sum()), float(o.audio.astype('float64').sum()))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    name, frames_sum, audio_sum = result.stdout.split()[-3:]
    assert name == "SAVGBenchJointPipeline"
    assert int(frames_sum) == int(reference.frames.astype(np.int64).sum())
    # the same float32 work in another process: the last bits can differ (seen at 6e-7 relative on this sum when
    # other tests had run in this process first), so compare to 1e-5 relative
    assert float(audio_sum) == pytest.approx(float(reference.audio.astype(np.float64).sum()), rel=1e-5)
    # saving again over the same folder replaces it in place
    own.save_pretrained(folder)
    assert SAVGBenchJointPipeline.from_pretrained(folder).config.fps == FPS


def test_base_pipeline_with_adaptive_scheduler_round_trips(components, tmp_path) -> None:
    pipe = _base(components, scheduler=AdaptiveDPMSolverScheduler(atol=0.01))
    pipe.save_pretrained(tmp_path / "base")
    index = json.loads((tmp_path / "base" / "model_index.json").read_text())
    assert index["scheduler"] == ["savg_hub.schedulers.scheduling_adaptive_dpmsolver", "AdaptiveDPMSolverScheduler"]
    for loaded in (StereoMMDiffusionPipeline.from_pretrained(tmp_path / "base"),
                   DiffusionPipeline.from_pretrained(tmp_path / "base", trust_remote_code=True)):
        assert type(loaded) is StereoMMDiffusionPipeline
        assert isinstance(loaded.scheduler, AdaptiveDPMSolverScheduler) and loaded.scheduler.config.atol == 0.01


def test_export_to_clips_writes_readable_mp4_and_lossless_sidecar(components, tmp_path) -> None:
    pipe = _joint(components)
    out = pipe(batch_size=2, num_inference_steps=1, sr_num_inference_steps=1, generator=_seed(2))
    paths = export_to_clips(out, tmp_path / "clips", prefix="sample", start_index=3)
    assert [p.name for p in paths] == ["sample_00003.mp4", "sample_00004.mp4"]
    spec = clip_spec_for(out)
    for index, path in enumerate(paths):
        assert path.with_suffix(".flac").is_file()
        clip = read_clip(path, spec)
        np.testing.assert_allclose(clip.audio, out.audio[index], atol=1e-4)  # 16-bit FLAC
        assert clip.video.shape == (4, 32, 32, 3)
        # H.264 with 4:2:0 chroma at 32x32 keeps little of random-weight noise frames; brightness survives
        assert abs(float(clip.video.mean()) - float(out.frames[index].mean())) < 12
    with pytest.raises(ValueError, match="output_type"):
        export_to_clips(pipe(num_inference_steps=1, sr_num_inference_steps=1, output_type="latent"), tmp_path)


# ----------------------------------------------------------------------------------------------- model cards


def test_model_cards_render_and_match_the_committed_ones(tmp_path) -> None:
    from pathlib import Path

    from savg_hub.pipelines.cards import NOT_MEASURED, render_stereo_mm_diffusion_card, write_model_cards

    card = render_stereo_mm_diffusion_card()
    assert card.startswith("---\nlicense: other") and "legacy" in card.lower() and "trust_remote_code=True" in card
    assert card.count(NOT_MEASURED) == 5
    measured = render_stereo_mm_diffusion_card(scores={"Spatial AV-Align": 0.25})
    assert "| Spatial AV-Align | 0.25 |" in measured and measured.count(NOT_MEASURED) == 4
    with pytest.raises(ValueError, match="unknown score names"):
        render_stereo_mm_diffusion_card(scores={"CLIP score": 1.0})
    written = write_model_cards(tmp_path)
    committed = Path(__file__).resolve().parents[1] / "model_cards"
    for path in written:
        assert path.read_text() == (committed / path.parent.name / "README.md").read_text(), (
            f"model_cards/{path.parent.name} is stale: run savg_hub.pipelines.cards.write_model_cards('model_cards')"
        )


def test_weights_specs_find_the_models_inside_pipeline_folders_and_hub_pipeline_repos(components, tmp_path,
                                                                                        monkeypatch) -> None:
    """The registry's diffusion entries point at pipeline repos (as their cards describe): a pipeline folder or
    a downloaded pipeline repo resolves to the component of the asked kind."""
    import huggingface_hub

    from savg_hub import weights

    joint = tmp_path / "joint"
    _joint(components).save_pretrained(joint)
    sr_only = tmp_path / "sr"
    SuperResolutionPipeline(unet=components["sr_unet"], scheduler=components["sr_scheduler"]).save_pretrained(sr_only)
    assert weights.resolve_weights(joint, "mm-diffusion") == joint / "unet"
    assert weights.resolve_weights(joint, "sr-unet") == joint / "sr_unet"
    assert weights.resolve_weights(sr_only, "sr-unet") == sr_only / "unet"
    assert weights.load_model(joint, "sr-unet").config.small_size == components["sr_unet"].config.small_size

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("SAVG_HOME", str(tmp_path / "home"))
    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, revision=None: asked.append(repo) or str(sr_only))
    assert weights.resolve_weights("sr-savgbench", "sr-unet") == sr_only / "unet"
    assert asked == [weights.REGISTRY["sr-savgbench"].hub_repo]
