"""Model cards of the SAVGBench joint baseline's two Hub repos, rendered by free functions.

    from savg_hub.pipelines.cards import write_model_cards
    write_model_cards("model_cards/")      # savgbench-stereo-mm-diffusion/README.md, savgbench-sr-64-256/README.md

Scores are passed in as measured (``scores={"Spatial AV-Align": 0.41, ...}``); a score that is not given is written
as "not measured (needs the official weights)", never filled in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from savg_hub.utils.files import atomic_write_text

SAVGBENCH_CITATION = """@inproceedings{shimada2026savgbench,
  title     = {{SAVGBench}: Benchmarking Spatially Aligned Audio-Video Generation},
  author    = {Shimada, Kazuki and Simon, Christian and Shibuya, Takashi and Takahashi, Shusuke and Mitsufuji, Yuki},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year      = {2026}
}"""

MM_DIFFUSION_CITATION = """@inproceedings{ruan2023mmdiffusion,
  title     = {{MM-Diffusion}: Learning Multi-Modal Diffusion Models for Joint Audio and Video Generation},
  author    = {Ruan, Ludan and Ma, Yiyang and Yang, Huan and He, Huiguo and Liu, Bei and Fu, Jianlong and
               Yuan, Nicholas Jing and Jin, Qin and Guo, Baining},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023}
}"""

GUIDED_DIFFUSION_CITATION = """@inproceedings{dhariwal2021diffusion,
  title     = {Diffusion Models Beat {GAN}s on Image Synthesis},
  author    = {Dhariwal, Prafulla and Nichol, Alexander},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2021}
}"""

NOT_MEASURED = "not measured (needs the official weights)"

JOINT_METRICS = ("FVD", "KVD", "FAD", "Temporal AV-Align", "Spatial AV-Align")
SR_METRICS = ("FVD (after SR, end to end)",)

_LICENCE = (
    "The weights are the SAVGBench authors' release (`SAVGBench_PretrainedModels_V1.zip`); their licence is the one "
    "stated in the SAVGBench repository (GitHub `SonyResearch/SAVGBench`), which applies to these converted copies "
    "unchanged. The savg_hub code that loads them is the toolkit's own."
)


def _licence_and_citation(licence: str | None, *citations: str) -> list[str]:
    """The closing sections of a card: ``## Licence`` (when given) and ``## Citation`` with the BibTeX entries."""
    lines = ["## Licence", "", licence, ""] if licence else []
    entries = [line for citation in citations for line in (citation, "")][:-1]
    return [*lines, "## Citation", "", "```bibtex", *entries, "```", ""]


def _scores_table(metrics: Sequence[str], scores: Mapping[str, float | str] | None) -> list[str]:
    scores = dict(scores or {})
    unknown = sorted(set(scores) - set(metrics))
    if unknown:
        raise ValueError(f"unknown score names {unknown}; expected some of {list(metrics)}")
    lines = ["| metric (official protocol) | value |", "| --- | --- |"]
    for name in metrics:
        value = scores.get(name)
        text = NOT_MEASURED if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
        lines.append(f"| {name} | {text} |")
    return lines


def render_stereo_mm_diffusion_card(
    repo_id: str = "savg-hub/savgbench-stereo-mm-diffusion",
    sr_repo_id: str = "savg-hub/savgbench-sr-64-256",
    dataset_id: str = "sony/svgsa24",
    scores: Mapping[str, float | str] | None = None,
) -> str:
    """Markdown card (Hub YAML front matter included) of the Stereo MM-Diffusion pipeline repo."""
    lines = [
        "---",
        "license: other",
        "license_name: savgbench",
        "library_name: diffusers",
        f"datasets: [{dataset_id}]",
        "tags: [savgbench, savg_hub, audio-video-generation, stereo, spatial-audio, mm-diffusion, unconditional]",
        "---",
        "",
        "# Stereo MM-Diffusion (SAVGBench joint baseline, base stage)",
        "",
        "The joint audio-video diffusion model of **SAVGBench** (Shimada et al., ICASSP 2026): an unconditional "
        "MM-Diffusion coupled U-Net that generates a **5-s clip of 20 RGB frames of 64x64 at 4 fps together with "
        "stereo audio (2 x 80 000 samples at 16 kHz)**, in which sounds should come from where their sources are on "
        "screen. It is the SAVGBench authors' released checkpoint (`model330011.pt`), converted to safetensors and "
        "run by savg_hub's own re-implementation (`CoupledUNetModel`, 133,676,293 parameters, ε-prediction; parity "
        "with the official code is tested on fixtures). The 256x256 clips of the benchmark come from the separate "
        f"super-resolution model [`{sr_repo_id}`](https://huggingface.co/{sr_repo_id}); `SAVGBenchJointPipeline` "
        "runs both.",
        "",
        "## How to use",
        "",
        "```python",
        "import torch",
        "from diffusers import DiffusionPipeline",
        "",
        f'pipe = DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True).to("cuda")',
        "out = pipe(batch_size=4, num_inference_steps=25, generator=torch.Generator(\"cuda\").manual_seed(0))",
        "out.frames.shape, out.audio.shape   # (4, 20, 64, 64, 3) uint8, (4, 2, 80000) float32; out.fps, out.sample_rate",
        "",
        "out = pipe(batch_size=4, sampler=\"official\")   # the released adaptive DPM-Solver++ (chooses its own steps)",
        "```",
        "",
        "Without remote code (`pip install savg_hub`): `from savg_hub.pipelines import StereoMMDiffusionPipeline; "
        f'StereoMMDiffusionPipeline.from_pretrained("{repo_id}")`. The U-Net alone: '
        f'`CoupledUNetModel.from_pretrained("{repo_id}", subfolder="unet")`. Clips to disk (mp4 with H.264 + AAC and '
        "a lossless FLAC next to it, which SELD-based metrics need): `savg_hub.pipelines.export_to_clips(out, "
        "\"generated/\")`, or from the command line `savg generate --model "
        f"{repo_id} --num-clips 96 --out generated/` and then `savg evaluate generated/`.",
        "",
        "Samplers:",
        "",
        "* **default**: diffusers' `DPMSolverMultistepScheduler` (DPM-Solver++ 2M, linear 1000-step schedule, dynamic "
        "thresholding p = 0.995 with `sample_max_value=1e4`), one instance per modality stepped in lock-step, 20-50 "
        "steps. Fast, **not bit-compatible** with the release (discrete timesteps, ends at σ = 0).",
        "* **`sampler=\"official\"`**: the release's adaptive DPM-Solver++ (order 2, data prediction, per-modality "
        "dynamic thresholding with s = max(q_0.995, 1), atol 0.0078, rtol 0.05, one step size shared by the batch "
        "and both modalities, ends at t = 1e-3), `savg_hub.schedulers.AdaptiveDPMSolverScheduler`. Its number of "
        "model evaluations depends on the batch composition: compare with published numbers at batch 4, as "
        "`run_baseline.sh`.",
        "",
        "## Official checkpoint and conversion",
        "",
        "* File: `model330011.pt` in `SAVGBench_PretrainedModels_V1.zip` (Google Drive link in the SAVGBench README); "
        "the **raw (non-EMA)** weights after about 330k steps.",
        "* Convert: `savg weights import SAVGBench_PretrainedModels_V1.zip` (registry name "
        "`stereo-mm-diffusion-savgbench`), or `savg_hub.convert.mm_diffusion.convert_mm_diffusion_checkpoint(path, "
        "out_dir)`. The file is read with `torch.load(weights_only=True)`; no pickled code runs. "
        "`savg generate --model savgbench` assembles the pipeline from the imported weights.",
        "",
        "## Training data and recipe (as released)",
        "",
        "| item | value |",
        "| --- | --- |",
        f"| data | SVGSA24 development set (`{dataset_id}`): 5-s perspective clips cut from STARSS23, 20 frames at "
        "4 fps resized (aspect kept, black padding) to 64x64, stereo audio at 16 kHz in [-1, 1], no normalisation |",
        "| clips | torchvision `VideoClips` windows of 20 frames at 4 fps, stride 1 frame |",
        "| model | channels 128, mult (1, 2, 3, 4), 2 ResBlocks, video attention and cross-attention at ds 2/4/8, windows "
        "(1, 4, 8) with random shift, scale-shift norm, ResBlock up/down |",
        "| diffusion | linear β 1e-4 .. 0.02 (float64), 1000 steps, ε-prediction, MSE on video + MSE on audio (equal "
        "weights), one t shared by both modalities, independent noise |",
        "| optimiser | AdamW, lr 2e-4, weight decay 0, no schedule, no gradient clipping |",
        "| batch | 4 per GPU x 8 GPUs = 32; fp16 training (master weights fp32) |",
        "| EMA | 0.9999 (the released file is the raw model, not the EMA) |",
        "",
        "A re-training should keep this recipe but not the flip (below).",
        "",
        "## Known issues",
        "",
        "* **Legacy flip.** The official loader builds `RandomHorizontalFlip(p=True)`, i.e. p = 1: **every training "
        "video was mirrored left-right and the stereo channels were not swapped**. The released checkpoint has "
        "therefore learned a mirrored audio-video geometry, which works against spatial alignment. savg_hub names "
        "this behaviour `legacy`; new training runs should flip `joint`ly (mirror the video and swap L/R, p = 0.5) "
        "or not at all.",
        "* **fp32 sampling.** The release samples in fp32 (`--use_fp16 True` is overridden by a later "
        "`--use_fp16 False`); fp16 changes the samples.",
        "* **GPU- and RNG-dependent.** Samples depend on the GPU kernels (and CPU thread count), on torch's RNG (noise: "
        "video first, then audio) and on Python's `random`, which draws the cross-attention window shifts at "
        "inference too (the pipeline seeds it from `generator` unless `cross_attention_generator` is given). "
        "Bit-level reproduction of published samples is not expected.",
        "* The adaptive sampler's step count is shared by the batch, so a clip depends on the other clips of its batch.",
        "",
        "## Scores",
        "",
        *_scores_table(JOINT_METRICS, scores),
        "",
        "Scores are measured with `savg evaluate` on the SVGSA24 evaluation split (official protocol, 96 clips). "
        "For published numbers see the SAVGBench paper.",
        "",
        *_licence_and_citation(_LICENCE, SAVGBENCH_CITATION, MM_DIFFUSION_CITATION),
    ]
    return "\n".join(lines)


def render_sr_card(
    repo_id: str = "savg-hub/savgbench-sr-64-256",
    base_repo_id: str = "savg-hub/savgbench-stereo-mm-diffusion",
    dataset_id: str = "sony/svgsa24",
    scores: Mapping[str, float | str] | None = None,
) -> str:
    """Markdown card (Hub YAML front matter included) of the 64 -> 256 super-resolution pipeline repo."""
    lines = [
        "---",
        "license: other",
        "license_name: savgbench",
        "library_name: diffusers",
        "pipeline_tag: image-to-image",
        f"datasets: [{dataset_id}]",
        "tags: [savgbench, savg_hub, super-resolution, video, guided-diffusion]",
        "---",
        "",
        "# SAVGBench super-resolution 64 -> 256",
        "",
        "The second stage of the **SAVGBench** joint baseline: guided-diffusion's 64->256 super-resolution U-Net "
        "(`SuperResModel`) as SAVGBench fine-tuned and configured it, applied **frame by frame** to the 20 frames of "
        f"a [`{base_repo_id}`](https://huggingface.co/{base_repo_id}) clip. It is the authors' released checkpoint "
        "(`model_SR_mmdiff_120000.pt`) converted to safetensors and run by savg_hub's re-implementation "
        "(`SuperResUNetModel`: 311,027,910 parameters, channels 192 x (1, 1, 2, 2, 4, 4), attention at 32²/16²/8² "
        "with 4 heads, learned sigma: 6 channels out, ε then the variance value; parity with the official code is "
        "tested on fixtures). The low-resolution frame is upsampled bilinearly and concatenated to the noisy frame "
        "(6 channels in); there is no noise-level conditioning.",
        "",
        "## How to use",
        "",
        "```python",
        "import torch",
        "from diffusers import DiffusionPipeline",
        "",
        f'sr = DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True).to("cuda")',
        "out = sr(video=frames_64, generator=torch.Generator(\"cuda\").manual_seed(0))  # (B, T, 64, 64, 3) uint8",
        "out.frames.shape                                                               # (B, T, 256, 256, 3) uint8",
        "```",
        "",
        "`video_latents=` takes the base model's un-quantised output in [-1, 1] (`output_type=\"latent\"`), as the "
        "release does; `frame_batch_size=` bounds memory without changing the result. End to end: "
        "`savg_hub.pipelines.SAVGBenchJointPipeline(unet=..., scheduler=..., sr_unet=..., sr_scheduler=...)`, or "
        "`savg generate --model savgbench` after importing the official weights. The U-Net alone: "
        f'`SuperResUNetModel.from_pretrained("{repo_id}", subfolder="unet")`.',
        "",
        "**Sampling as released:** DDIM, 25 steps, η = 0, on a **1100-step** linear schedule (β endpoints scaled by "
        "1000/1100; timesteps 1056, 1012, ..., 0 with \"leading\" spacing), x̂0 clipped to [-1, 1] and ε re-derived "
        "from it, ᾱ_prev = 1 at the last step (`savg_hub.pipelines.sr_ddim_scheduler()`); **every frame of a video "
        "starts from the same noise image**. A `DDPMScheduler(variance_type=\"learned_range\")` gives the paper's "
        "\"DDPM\" wording instead.",
        "",
        "## Official checkpoint and conversion",
        "",
        "* File: `model_SR_mmdiff_120000.pt` in `SAVGBench_PretrainedModels_V1.zip` (Google Drive link in the "
        "SAVGBench README), presumably 120k fine-tuning steps.",
        "* Convert: `savg weights import SAVGBench_PretrainedModels_V1.zip` (registry name `sr-savgbench`), or "
        "`savg_hub.convert.sr_unet.convert_sr_unet_checkpoint(path, out_dir)`; read with "
        "`torch.load(weights_only=True)`.",
        "",
        "## Training data and recipe",
        "",
        "| item | value |",
        "| --- | --- |",
        "| initialisation | guided-diffusion's ImageNet `64_256_upsampler.pt` (class embedding dropped) |",
        f"| data | every native frame of the SVGSA24 development videos (`{dataset_id}`) as JPEG; HR: aspect-kept "
        "bicubic resize with black padding to 256; LR: bicubic to 64, then with p = ½ Gaussian noise σ ~ U(0, 20) "
        "(0-255 scale) and with p = ½ JPEG at quality U(20, 80) |",
        "| objective | guided-diffusion hybrid loss: MSE on ε + the VB term for the learned variance |",
        "| recipe (upstream `image_sr_train.sh`; SAVGBench's copy is not released) | lr 1e-4, batch 6 x 8 GPUs, fp16, "
        "EMA 0.9999, linear 1000-step schedule |",
        "",
        "## Known issues",
        "",
        "* **1100 vs 1000 steps.** Sampling uses an 1100-step schedule while training (upstream) used 1000, so the "
        "model is told timesteps up to 1056, beyond its 0-999 training range (it sees the input as noisier than it "
        "is). Reproduced by default for parity; `sr_ddim_scheduler(1000)` gives the consistent schedule.",
        "* **fp32 sampling** as released (`--use_fp16 False`); **GPU-dependent** numerics; the noise shared by all "
        "frames is a cheap temporal-consistency trick, not temporal modelling.",
        "* The base model it upsamples was trained with the **legacy flip** (mirrored video, unswapped stereo): see "
        f"[`{base_repo_id}`](https://huggingface.co/{base_repo_id}).",
        "",
        "## Scores",
        "",
        *_scores_table(SR_METRICS, scores),
        "",
        "The SR model is scored through the end-to-end clips (`savg evaluate`); it has no score of its own in "
        "SAVGBench.",
        "",
        *_licence_and_citation(_LICENCE, SAVGBENCH_CITATION, GUIDED_DIFFUSION_CITATION),
    ]
    return "\n".join(lines)


def write_model_cards(
    root: str | os.PathLike,
    *,
    joint_scores: Mapping[str, float | str] | None = None,
    sr_scores: Mapping[str, float | str] | None = None,
) -> list[Path]:
    """Write ``root/savgbench-stereo-mm-diffusion/README.md`` and ``root/savgbench-sr-64-256/README.md``
    (atomically); returns the paths."""
    root = Path(root)
    cards = {
        "savgbench-stereo-mm-diffusion": render_stereo_mm_diffusion_card(scores=joint_scores),
        "savgbench-sr-64-256": render_sr_card(scores=sr_scores),
    }
    return [atomic_write_text(root / name / "README.md", text) for name, text in cards.items()]


FLIP_DESCRIPTIONS = {
    "consistent": "consistent horizontal flip: with probability {p} a clip's video is mirrored left-right **and** its "
                  "stereo channels are swapped, so sounds stay where their sources are on screen",
    "legacy": "legacy flip (the official SAVGBench loader): **every** video is mirrored left-right and the stereo "
              "channels are **not** swapped, so the model learns a mirrored audio-video geometry; used only to "
              "reproduce the release",
    "none": "no flip augmentation",
}


def _predicts(config: Mapping) -> str:
    """What a training config's model predicts, as the cards name it."""
    return "v-prediction" if config.get("prediction_type", "epsilon") == "v_prediction" else "ε-prediction"


def render_training_card(
    kind: str,
    config: Mapping,
    run: Mapping,
    *,
    name: str,
    dataset_name: str | None = None,
    train_command: str | None = None,
    license: str = "other",
    scores: Mapping[str, float | str] | None = None,
) -> str:
    """Markdown card of a pipeline folder written by ``training/train_stereo_mm_diffusion.py`` (``kind``
    ``"stereo_mm_diffusion"``) or ``training/train_super_resolution.py`` (``"super_resolution"``).

    Args:
        kind: which model.
        config: the run's training config as a dict (``to_dict()`` of the typed config).
        run: the loop's summary (``step``, ``training_seconds``, ``num_parameters``, ``train_clips``,
            ``mixed_precision``, ``num_processes``, ``model_config``).
        name: the weights' name (card title and load path).
        dataset_name: the training dataset's name.
        train_command: the command line that trained it.
        license: Hub licence id of the weights.
        scores: measured scores (missing ones are written as "not measured").
    """
    if kind not in ("stereo_mm_diffusion", "super_resolution"):
        raise ValueError(f"kind must be 'stereo_mm_diffusion' or 'super_resolution', got {kind!r}")
    joint = kind == "stereo_mm_diffusion"
    model = dict(run.get("model_config") or config.get("model") or {})
    flip = str(config.get("flip", "consistent"))
    if flip not in FLIP_DESCRIPTIONS:
        raise ValueError(f"unknown flip mode {flip!r}")
    flip_text = FLIP_DESCRIPTIONS[flip].format(p=config.get("flip_probability"))
    if kind == "super_resolution" and flip != "none":
        flip_text = ("every frame pair mirrored left-right (`legacy`)" if flip == "legacy" else
                     f"frame pairs mirrored left-right with probability {config.get('flip_probability')}")
    dataset = dataset_name or Path(str(config.get("dataset") or "SVGSA24")).name
    metrics = JOINT_METRICS if joint else SR_METRICS
    score_lines = _scores_table(metrics, scores)
    score_lines = [line.replace(NOT_MEASURED, "not measured") for line in score_lines]
    steps = int(run.get("step", 0))
    timesteps = int(config.get("num_train_timesteps", 1000))
    v_prediction = config.get("prediction_type", "epsilon") == "v_prediction"
    predicts = _predicts(config) + (" (v = √ᾱ ε − √(1 − ᾱ) x0)" if v_prediction else "")
    target = "v" if v_prediction else "ε"
    if joint:
        video, audio = model.get("video_size"), model.get("audio_size")
        title = f"# {name}: Stereo MM-Diffusion trained with savg_hub"
        what = (f"An unconditional Stereo MM-Diffusion coupled U-Net (`CoupledUNetModel`, "
                f"{int(run.get('num_parameters', 0)):,} parameters) generating video of shape (F, C, H, W) = "
                f"{tuple(video or ())} with stereo audio {tuple(audio or ())}, trained by "
                "`training/train_stereo_mm_diffusion.py`. Weights: the EMA of the training weights.")
        usage = [
            "```python",
            "import torch",
            "from diffusers import DiffusionPipeline",
            "",
            f'pipe = DiffusionPipeline.from_pretrained("{name}", trust_remote_code=True)',
            "out = pipe(batch_size=1, num_inference_steps=25, generator=torch.Generator().manual_seed(0))",
            "out.frames, out.audio   # (B, F, H, W, 3) uint8, (B, 2, N) float32",
            "```",
        ]
        objective = (f"linear β {config.get('beta_start')} .. {config.get('beta_end')} (at 1000 steps) over "
                     f"{timesteps} steps, {predicts}, one t per clip shared by video and audio, independent noise, "
                     f"loss MSE(video {target}) + MSE(audio {target}) with equal weights")
    else:
        title = f"# {name}: SAVGBench super-resolution trained with savg_hub"
        what = (f"guided-diffusion's super-resolution U-Net (`SuperResUNetModel`, {int(run.get('num_parameters', 0)):,}"
                f" parameters, {model.get('small_size')} -> {model.get('image_size')}, applied frame by frame) trained "
                "by `training/train_super_resolution.py`. Weights: the EMA of the training weights.")
        usage = [
            "```python",
            "import torch",
            "from diffusers import DiffusionPipeline",
            "",
            f'sr = DiffusionPipeline.from_pretrained("{name}", trust_remote_code=True)',
            "out = sr(video=low_res_frames, generator=torch.Generator().manual_seed(0))   # (B, T, h, w, 3) uint8",
            "```",
        ]
        learned = int(model.get("out_channels", 6)) == 2 * int(model.get("in_channels", 3))
        objective = (f"linear β over {timesteps} steps, {predicts}"
                     + (f", learned-range variance, guided-diffusion hybrid loss MSE({target}) + {config.get('vb_weight')}"
                        " x L_vb (KL / decoder NLL in bits, not rescaled)" if learned else f", MSE({target})")
                     + f"; the saved DDIM sampler uses a {config.get('sampler_num_train_timesteps')}-step schedule")
    rows = [
        ("data", f"split `{config.get('train_split')}` of `{dataset}` ({run.get('train_clips')} clips)"),
        ("augmentation", flip_text),
        ("objective", objective),
        ("optimiser", f"AdamW, lr {config.get('learning_rate')}, weight decay {config.get('weight_decay')}, betas "
                      f"{list(config.get('adam_betas') or [])}, gradient clipping {config.get('max_grad_norm')}"),
        ("batch", f"{config.get('batch_size')} ({run.get('num_processes', 1)} process(es))"),
        ("steps", f"{steps:,}"),
        ("EMA", f"{config.get('ema_decay')}" + (" with warm-up" if config.get("ema_warmup") else "")),
        ("precision", str(run.get("mixed_precision", "no"))),
        ("training time", f"{float(run.get('training_seconds', 0.0)) / 60:.1f} min"),
    ]
    if config.get("init_from"):
        rows.insert(2, ("initialisation", f"the weights of `{config.get('init_from')}` (steps counted from there)"))
    if not joint and config.get("degrade"):
        rows.insert(2, ("low-res degradation",
                        f"Gaussian noise σ ~ U(0, {config.get('max_noise_sigma')}) at p = {config.get('noise_probability')}, "
                        f"JPEG quality U{tuple(config.get('jpeg_quality') or ())} at p = {config.get('jpeg_probability')}"))
    lines = [
        "---",
        f"license: {license}",
        "library_name: diffusers",
        "tags: [savgbench, savg_hub, " + ("audio-video-generation, stereo, mm-diffusion" if joint
                                          else "super-resolution, video, guided-diffusion") + "]",
        "---",
        "",
        title,
        "",
        what,
        "",
        "## How to use",
        "",
        *usage,
        "",
        "## Training",
        "",
        "| item | value |",
        "| --- | --- |",
        *[f"| {key} | {value} |" for key, value in rows],
        "",
    ]
    if train_command:
        lines += ["Command:", "", "```bash", train_command, "```", ""]
    lines += ["The full typed config is `training_config.yaml` next to this card.", "", "## Known issues", ""]
    if not joint:
        lines.append("* The SR model has no audio, so the flip mode only mirrors frames; the joint model it follows "
                     "decides the audio-video geometry.")
    elif flip == "legacy":
        lines.append("* **Trained with the legacy flip** (mirrored video, unswapped stereo), as the official SAVGBench "
                     "checkpoint was: its audio-video geometry is mirrored; expect low Spatial AV-Align.")
    else:
        lines.append("* The official SAVGBench checkpoint was trained with the legacy flip (every video mirrored, "
                     f"stereo not swapped); this model used `{flip}` instead.")
    lines += ["* Samples depend on the GPU kernels, the thread count and the RNG; fp16 sampling changes them.", "",
              "## Scores", "", *score_lines, "",
              *_licence_and_citation(None, SAVGBENCH_CITATION,
                                     MM_DIFFUSION_CITATION if joint else GUIDED_DIFFUSION_CITATION)]
    return "\n".join(lines)


def _spatial_row(label: str, data: Mapping | None) -> str:
    """A Spatial AV-Align table row from a ``results.json`` section (``score``, ``num_tp``, ``num_fn``, clips)."""
    if not data:
        return f"| {label} | not measured | | |"
    score = data.get("score")
    text = "undefined (no SELD detection)" if score is None else f"{float(score):.4f}"
    return f"| {label} | {text} | {data.get('num_tp')} / {data.get('num_fn')} | {data.get('num_clips', '')} |"


def render_embedded_joint_card(
    base: Mapping,
    sr: Mapping,
    *,
    name: str,
    ground_truth: Mapping | None = None,
    samples: Mapping | None = None,
    generation: Mapping | None = None,
    evaluator: str = "",
    notes: Sequence[str] = (),
) -> str:
    """Card of the embedded default joint pipeline (small base + SR models trained here on the synthetic set).

    Args:
        base: ``{"config": ..., "run": ..., "command": ..., "init": ...}`` of the base-stage training run (its
            ``training.json`` and typed config; ``init``: the same for the run it started from, or ``None``).
        sr: the same for the SR stage.
        name: the folder / weights name.
        ground_truth: the ``spatial_av_align`` section of ``results.json`` for the dataset's clips.
        samples: the same for the pipeline's samples, with its ``calibration`` (``swap_lr``: channels swapped).
        generation: ``generation.json`` of the sampled clips (steps, seeds, sampler, seconds).
        evaluator: which SELD / detector weights scored them.
        notes: observations on this model's samples, listed first under "Known issues".
    """
    bc, br, sc, srun = base["config"], base["run"], sr["config"], sr["run"]
    bm, sm = dict(br.get("model_config") or bc.get("model") or {}), dict(srun.get("model_config") or sc.get("model") or {})
    def control(name: str) -> dict | None:
        found = (samples or {}).get("calibration", {}).get(name)
        return dict(found, num_clips=samples.get("num_clips")) if found else None
    gen = dict(generation or {})
    seeds = gen.get("seeds") or []
    gen_text = (f"{len(seeds)} clips, seeds {seeds[0]}..{seeds[-1]}, base sampler {gen.get('sampler')} with "
                f"{gen.get('num_inference_steps')} steps, SR DDIM {gen.get('sr_num_inference_steps')} steps, "
                f"{float(gen.get('seconds', 0)) / max(len(seeds), 1):.0f} s per clip on {gen.get('device')}"
                if seeds else "not recorded")

    def phases(stage: Mapping) -> list[Mapping]:
        """The stage's runs, first first (each later one started from the weights of the one before)."""
        chain = [stage]
        while chain[-1].get("init"):
            chain.append(chain[-1]["init"])
        return chain[::-1]

    def minutes(stage: Mapping) -> float:
        return sum(float(p["run"].get("training_seconds", 0.0)) for p in phases(stage)) / 60

    def stage_rows(stage: Mapping, what: str) -> list[str]:
        chain = phases(stage)
        rows = []
        for index, phase in enumerate(chain):
            config, run = phase["config"], phase["run"]
            label = what if len(chain) == 1 else f"{what}, phase {index + 1}"
            start = f"from phase {index}'s EMA weights, " if index else ""
            predicts = _predicts(config)
            rows.append(
                f"| {label} | {int(run.get('num_parameters', 0)):,} | {start}{int(run.get('step', 0)):,} steps of "
                f"batch {config.get('batch_size')}, {predicts}, AdamW lr {config.get('learning_rate')}, EMA "
                f"{config.get('ema_decay')}{' (warm-up)' if config.get('ema_warmup') else ''}, flip "
                f"`{config.get('flip')}` | {float(run.get('training_seconds', 0.0)) / 60:.0f} min |"
            )
        return rows

    commands = [str(p.get("command", "")) for stage in (base, sr) for p in phases(stage)]

    lines = [
        "---",
        "license: apache-2.0",
        "library_name: diffusers",
        "tags: [savgbench, savg_hub, audio-video-generation, stereo, spatial-audio, mm-diffusion, embedded]",
        "---",
        "",
        f"# {name}: the embedded default joint pipeline of savg_hub",
        "",
        "A **small** `SAVGBenchJointPipeline` shipped inside the package so that `savg generate` and the app's "
        "Generate tab work offline: a Stereo MM-Diffusion base stage making "
        f"{tuple(bm.get('video_size') or ())} video (frames, channels, height, width) with stereo audio "
        f"{tuple(bm.get('audio_size') or ())} (5 s at 16 kHz), then per-frame super-resolution "
        f"{sm.get('small_size')} -> {sm.get('image_size')}, so clips have the SVGSA24 shape (20 frames of 256x256 at "
        f"4 fps, stereo 16 kHz). Both stages were trained by this toolkit's scripts on CPU ({minutes(base):.0f} and "
        f"{minutes(sr):.0f} min), "
        "on the synthetic SVGSA24 set (rendered rooms with people who talk or play). It shows how the pipeline, "
        "the training scripts and the metrics fit together. **It is not a research baseline**: use the official "
        "SAVGBench weights (`savg weights import`, `savg generate --model savgbench`) for that.",
        "",
        "## How to use",
        "",
        "```bash",
        "savg generate --num-clips 4 --seed 0 --out generated/     # no --model: this pipeline",
        "savg evaluate generated/ --metrics spatial",
        "```",
        "",
        "```python",
        "from savg_hub.pipelines.loading import load_pipeline",
        "pipe = load_pipeline()          # this folder; or SAVGBenchJointPipeline.from_pretrained(folder)",
        "out = pipe(num_inference_steps=25, sr_num_inference_steps=10)",
        "out.frames.shape, out.audio.shape   # (1, 20, 256, 256, 3) uint8, (1, 2, 80000) float32",
        "```",
        "",
        "## Training",
        "",
        "| stage | parameters | recipe | time (CPU) |",
        "| --- | --- | --- | --- |",
        *stage_rows(base, "base (Stereo MM-Diffusion)"),
        *stage_rows(sr, "super-resolution"),
        "",
        f"Data: split `{bc.get('train_split')}` of the synthetic SVGSA24 set ({br.get('train_clips')} clips). "
        "Flip `consistent`: a mirrored video has its stereo channels swapped, so sounds stay with their sources "
        "(the official loader's `legacy` flip does not swap them). Both configs are in `training/configs/` "
        "(`stereo_mm_diffusion_embedded.yaml`, `super_resolution_embedded.yaml`) and next to each stage here "
        "(`training/base/`, `training/sr/`; the records of an earlier phase in `init/` below them); the commands, "
        "phase by phase:",
        "",
        "```bash",
        *commands,
        "```",
        "",
        "## Spatial AV-Align (official protocol, embedded evaluator)",
        "",
        "| clips | score | TP / FN | clips scored |",
        "| --- | --- | --- | --- |",
        _spatial_row("ground truth (synthetic set, eval split)", ground_truth),
        _spatial_row("this pipeline's samples", samples),
        _spatial_row("the same samples, left/right channels swapped", control("swap_lr")),
        _spatial_row("the same samples, video mirrored", control("flip_video")),
        "",
        f"Samples: {gen_text}. Scored with {evaluator or 'the default evaluator'}: small models trained on the "
        "same synthetic scenes, so the numbers show how the metric behaves, not values comparable with the paper.",
        "",
        "## Known issues",
        "",
        *[f"* {note}" for note in notes],
        "* Trained for a few CPU hours at a small size, far from convergence; FVD/KVD/FAD against real "
        "clips are meaningless at this scale. The same scripts and configs continue the runs (`--resume`) or "
        "train them on a GPU.",
        "* Samples depend on the thread count and the RNG (noise: video first, then audio, then the SR noise; the "
        "cross-attention shifts are drawn from the same generator).",
        "",
        *_licence_and_citation("Apache-2.0 (weights trained here from random initialisation on data generated by savg_hub).", SAVGBENCH_CITATION, MM_DIFFUSION_CITATION),
    ]
    return "\n".join(lines)
