"""Training the SAVGBench joint baseline: typed configs, dataset readers, diffusion losses, EMA, the Accelerate loop.

Two models, one loop (:func:`train_diffusion`), driven by ``training/train_stereo_mm_diffusion.py`` and
``training/train_super_resolution.py``.

**Stereo MM-Diffusion** (``reference/baselines.md`` §1.1, §2.1; ``savgbench_official.md`` §8.3). Defaults of
:class:`StereoMMDiffusionTrainingConfig` are the released recipe: AdamW (lr 2e-4, weight decay 0, default betas,
no lr schedule, no gradient clipping), batch 32 global (4 per GPU x 8), dropout 0.1, linear β 1e-4 .. 0.02 over
1000 steps (float64), ε-prediction, uniform t, EMA 0.9999, fp16 training on GPU. Joint noising: one t per sample
shared by both modalities, independent Gaussian noise per modality, loss = mean-over-elements MSE(ε̂_v, ε_v) +
mean-over-elements MSE(ε̂_a, ε_a) (equal weights). The release ran about 330k steps.

**Super-resolution 64 -> 256** (§3.1). Defaults of :class:`SuperResolutionTrainingConfig`: upstream
``image_sr_train.sh`` (SAVGBench's own copy is not released): AdamW lr 1e-4, weight decay 0, batch 48 frames
(6 x 8 GPUs), fp16, EMA 0.9999, linear **1000**-step schedule for training, learned-range variance trained by
guided-diffusion's hybrid loss ``MSE(ε̂, ε) + L_vb`` (:func:`sr_hybrid_loss`), 120k steps (inferred from the released
file name). The saved pipeline samples with DDIM on the **1100**-step schedule as released
(``sampler_num_train_timesteps``; 1000 is the consistent choice). The release starts from guided-diffusion's
ImageNet upsampler (``init_from``).

**Flip augmentation.** ``flip="consistent"`` (default): with probability ``flip_probability`` (0.5) the video is
mirrored left-right **and** the stereo channels are swapped, which keeps sounds where their sources are.
``flip="legacy"``: every video is mirrored and the audio is left as it is -- what the official loader did
(``RandomHorizontalFlip(p=True)``, i.e. p = 1, without a channel swap), so the released checkpoint learned a
mirrored audio-video geometry; use it only to reproduce the release. ``flip="none"``: no augmentation. (The
reference calls the consistent flip "joint".)
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from savg_hub.training.checkpoints import (  # noqa: F401  (CHECKPOINT_PREFIX etc. re-exported for the scripts)
    CHECKPOINT_PREFIX,
    TrainerState,
    list_checkpoints,
    save_checkpoint,
    write_config,
)
from savg_hub.training.config import TrainingConfigIO

logger = logging.getLogger(__name__)

FLIP_MODES = ("consistent", "legacy", "none")
#: What the network predicts (diffusers' ``prediction_type``): ε as released, or v = √ᾱ ε − √(1 − ᾱ) x_0.
PREDICTION_TYPES = ("epsilon", "v_prediction")
MIXED_PRECISION = ("fp16", "bf16", "no")

#: The released Stereo MM-Diffusion U-Net (``reference/baselines.md`` §1.1), dropout 0.1 as in training.
OFFICIAL_UNET_CONFIG: dict[str, Any] = dict(
    video_size=[20, 3, 64, 64], audio_size=[2, 80000], model_channels=128, channel_mult=[1, 2, 3, 4],
    num_res_blocks=2, video_attention_resolutions=[2, 4, 8], audio_attention_resolutions=[],
    cross_attention_resolutions=[2, 4, 8], cross_attention_windows=[1, 4, 8], cross_attention_shift=True,
    num_heads=4, num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True, learn_sigma=False,
    dropout=0.1,
)
#: The released SR U-Net (§3.1).
OFFICIAL_SR_CONFIG: dict[str, Any] = dict(
    image_size=256, small_size=64, in_channels=3, model_channels=192, out_channels=6, num_res_blocks=2,
    attention_resolutions=[8, 16, 32], channel_mult=[1, 1, 2, 2, 4, 4], dropout=0.0, num_heads=4,
    num_head_channels=-1, use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=False,
)


# ------------------------------------------------------------------------------------------------------------
# Configs


def _model_class(kind: str):
    if kind == "stereo_mm_diffusion":
        from savg_hub.models.mm_diffusion_unet import CoupledUNetModel

        return CoupledUNetModel
    from savg_hub.models.sr_unet import SuperResUNetModel

    return SuperResUNetModel


def _check_model_keys(cls, model: dict[str, Any]) -> None:
    names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(model) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} arguments in model: {unknown}; known: {sorted(names)}")


@dataclass
class _DiffusionTrainingConfig(TrainingConfigIO):
    """Fields shared by both configs (see the subclasses for the recipe values)."""

    model: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    train_split: str = "dev"
    max_train_clips: int | None = None
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = None
    batch_size: int = 32
    max_steps: int = 330_000
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    ema_decay: float = 0.9999
    ema_warmup: bool = False
    flip: str = "consistent"
    flip_probability: float = 0.5
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 10_000
    checkpoints_total_limit: int | None = 3
    log_every: int = 100
    mixed_precision: str = "fp16"
    prediction_type: str = "epsilon"
    init_from: str | None = None

    kind = "base"  # overridden

    def __post_init__(self) -> None:
        if not isinstance(self.model, dict):
            raise ValueError(f"model must be a mapping of model arguments, got {type(self.model).__name__}")
        _check_model_keys(_model_class(self.kind), self.model)
        self.adam_betas = tuple(float(b) for b in self.adam_betas)
        for name in ("batch_size", "max_steps", "num_train_timesteps", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_train_clips", "checkpoints_total_limit"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {value}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two values in [0, 1), got {self.adam_betas}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or null, got {self.max_grad_norm}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.flip not in FLIP_MODES:
            raise ValueError(f"flip must be one of {FLIP_MODES}, got {self.flip!r}")
        if not 0 <= self.flip_probability <= 1:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")

    # -- model --------------------------------------------------------------------------------------------

    def model_kwargs(self) -> dict[str, Any]:
        """The model arguments: the class defaults overridden by :attr:`model`."""
        cls = _model_class(self.kind)
        defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                    if name != "self" and p.default is not inspect.Parameter.empty}
        return json.loads(json.dumps(defaults | self.model, default=list))

    def build_model(self) -> nn.Module:
        """A freshly initialised model of this size (seed torch first for reproducible weights)."""
        return _model_class(self.kind)(**self.model_kwargs())

    def effective_mixed_precision(self) -> str:
        """:attr:`mixed_precision` where CUDA is available, ``"no"`` otherwise (fp16 on GPU only)."""
        return self.mixed_precision if torch.cuda.is_available() else "no"

    # -- (de)serialisation --------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Build from a mapping (parsed YAML/JSON); unknown keys raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"config must be a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(names)}")
        return cls(**dict(data))

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied (validated again)."""
        return type(self).from_dict(self.to_dict() | changes)


@dataclass
class StereoMMDiffusionTrainingConfig(_DiffusionTrainingConfig):
    """Everything a Stereo MM-Diffusion training run depends on. Defaults: the released SAVGBench recipe.

    Args:
        model: :class:`~savg_hub.models.mm_diffusion_unet.CoupledUNetModel` arguments overriding its defaults
            (default: :data:`OFFICIAL_UNET_CONFIG`, i.e. the released network with dropout 0.1).
        dataset: SVGSA24 dataset folder (``~``/``$VARS`` expanded).
        train_split: split to train on.
        max_train_clips: only the first N clips (``None``: all).
        learning_rate: AdamW rate (constant: no schedule).
        weight_decay: AdamW (decoupled) weight decay.
        adam_betas: AdamW betas (torch defaults, as released).
        max_grad_norm: gradient clipping (``None``: none, as released).
        batch_size: global batch (clips per step over all processes; must divide by the process count).
        max_steps: optimiser steps.
        num_train_timesteps: diffusion steps T of the linear schedule.
        beta_start: β_0 of the schedule at T = 1000 (endpoints scale by ``1000 / T``).
        beta_end: β_{T-1} at T = 1000.
        ema_decay: EMA rate.
        ema_warmup: ``False`` (release): fixed rate from step 1; ``True``: ``min(decay, (1 + n) / (10 + n))``.
        flip: ``"consistent"``, ``"legacy"`` or ``"none"`` (module docstring).
        flip_probability: mirror rate of ``"consistent"`` (``"legacy"`` mirrors everything).
        seed: seed of initialisation, data order, augmentation, noise and t.
        num_workers: DataLoader worker processes.
        checkpoint_every: save a resumable checkpoint every N steps (and at the end).
        checkpoints_total_limit: keep only the newest N checkpoints.
        log_every: steps between loss logs.
        mixed_precision: Accelerate mixed precision on GPU (``"fp16"`` as released); always ``"no"`` on CPU.
        prediction_type: ``"epsilon"`` (as released) or ``"v_prediction"``: the loss is the MSE to
            v = √ᾱ_t ε − √(1 − ᾱ_t) x_0, and the saved pipeline's scheduler is configured to match. v keeps x̂_0
            well conditioned at high t, where a small ε-model's error is amplified by 1/√ᾱ_t (see the embedded
            model's card).
        init_from: start from these weights instead of a random initialisation: a ``save_pretrained`` folder of
            the model, or a pipeline folder holding it (``unet/``; for SR also ``sr_unet/``).
        cache_clips: keep the decoded, resized clips in memory (about 0.9 MB each at full size).
    """

    model: dict[str, Any] = field(default_factory=lambda: dict(OFFICIAL_UNET_CONFIG))
    cache_clips: bool = False

    kind = "stereo_mm_diffusion"

    def __post_init__(self) -> None:
        super().__post_init__()
        kwargs = self.model_kwargs()
        if kwargs.get("learn_sigma"):
            raise ValueError("learn_sigma=True is not supported: the released joint model predicts ε only")


@dataclass
class SuperResolutionTrainingConfig(_DiffusionTrainingConfig):
    """Everything a 64 -> 256 SR training run depends on. Defaults: the released recipe (upstream script).

    Fields as :class:`StereoMMDiffusionTrainingConfig` (``batch_size`` counts frames), plus:

    Args:
        model: :class:`~savg_hub.models.sr_unet.SuperResUNetModel` arguments (default :data:`OFFICIAL_SR_CONFIG`);
            learned sigma (``out_channels = 2 * in_channels``) trains with the hybrid loss, otherwise plain MSE.
        init_from: weights to start from (as above; the release fine-tuned guided-diffusion's ImageNet 64->256
            upsampler; ``None``: random initialisation).
        vb_weight: weight of the VB term of the hybrid loss (guided-diffusion, loss type MSE: 1, not rescaled).
        sampler_num_train_timesteps: schedule length of the saved pipeline's DDIM sampler (1100 as released,
            although training uses 1000; 1000 is the consistent choice).
        degrade: degrade the low-res frame as the release's data pipeline (Gaussian noise, JPEG).
        noise_probability: rate of the Gaussian noise (σ ~ U(0, ``max_noise_sigma``) on the 0-255 scale).
        max_noise_sigma: see above.
        jpeg_probability: rate of the JPEG re-compression (quality ~ U(``jpeg_quality``)).
        jpeg_quality: ``(low, high)`` JPEG quality range.
    """

    model: dict[str, Any] = field(default_factory=lambda: dict(OFFICIAL_SR_CONFIG))
    learning_rate: float = 1e-4
    batch_size: int = 48
    max_steps: int = 120_000
    vb_weight: float = 1.0
    sampler_num_train_timesteps: int = 1100
    degrade: bool = True
    noise_probability: float = 0.5
    max_noise_sigma: float = 20.0
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (20, 80)

    kind = "super_resolution"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.jpeg_quality = tuple(int(q) for q in self.jpeg_quality)
        if len(self.jpeg_quality) != 2 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"jpeg_quality must be (low, high) within 1..100, got {self.jpeg_quality}")
        for name in ("noise_probability", "jpeg_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_noise_sigma < 0 or self.vb_weight < 0:
            raise ValueError(f"max_noise_sigma and vb_weight must be >= 0, got {self.max_noise_sigma}, "
                             f"{self.vb_weight}")
        if self.sampler_num_train_timesteps < 1:
            raise ValueError(f"sampler_num_train_timesteps must be >= 1, got {self.sampler_num_train_timesteps}")

    @property
    def learned_sigma(self) -> bool:
        kwargs = self.model_kwargs()
        return int(kwargs["out_channels"]) == 2 * int(kwargs["in_channels"])


# ------------------------------------------------------------------------------------------------------------
# Diffusion schedule and losses


class LinearSchedule:
    """guided-diffusion's linear schedule: β = linspace(β_0 s, β_1 s, T) in float64, ``s = 1000 / T``.

    Attributes (float64 tensors of shape ``(T,)``): ``betas``, ``alphas_cumprod``, ``alphas_cumprod_prev``
    (ᾱ_{-1} = 1), ``posterior_variance``, ``posterior_log_variance_clipped``, ``posterior_mean_coef1/2``.
    """

    def __init__(self, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        if num_timesteps < 2:
            raise ValueError(f"num_timesteps must be >= 2, got {num_timesteps}")
        scale = 1000.0 / num_timesteps
        self.num_timesteps = int(num_timesteps)
        self.betas = torch.from_numpy(np.linspace(beta_start * scale, beta_end * scale, num_timesteps,
                                                  dtype=np.float64))
        alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(alphas, 0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]))
        self.posterior_mean_coef1 = self.betas * torch.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * torch.sqrt(alphas) / (1.0 - self.alphas_cumprod)

    def gather(self, values: torch.Tensor, timesteps: torch.Tensor, ndim: int) -> torch.Tensor:
        """``values[t]`` as float32 on ``timesteps``' device, shaped ``(B, 1, ..., 1)`` with ``ndim`` dims."""
        out = values.to(timesteps.device)[timesteps.long()].float()
        return out.reshape(-1, *([1] * (ndim - 1)))

    def q_sample(self, x0: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (any shape ``(B, ...)``)."""
        abar = self.alphas_cumprod
        return (self.gather(abar.sqrt(), timesteps, x0.ndim) * x0
                + self.gather((1.0 - abar).sqrt(), timesteps, x0.ndim) * noise)

    def _v_coefficients(self, prediction_type: str, timesteps: torch.Tensor,
                        ndim: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(√ᾱ_t, √(1 − ᾱ_t))`` shaped for broadcasting for ``"v_prediction"``; ``None`` for ``"epsilon"``."""
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if prediction_type == "epsilon":
            return None
        abar = self.alphas_cumprod
        return self.gather(abar.sqrt(), timesteps, ndim), self.gather((1.0 - abar).sqrt(), timesteps, ndim)

    def target(self, x0: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor,
               prediction_type: str = "epsilon") -> torch.Tensor:
        """The regression target: ε for ``"epsilon"``, v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 for ``"v_prediction"``."""
        coefficients = self._v_coefficients(prediction_type, timesteps, x0.ndim)
        if coefficients is None:
            return noise
        signal, sigma = coefficients
        return signal * noise - sigma * x0

    def epsilon(self, sample: torch.Tensor, timesteps: torch.Tensor, model_output: torch.Tensor,
                prediction_type: str = "epsilon") -> torch.Tensor:
        """ε̂ from a model output of ``prediction_type`` at x_t = ``sample``: ε̂ = √ᾱ_t v̂ + √(1 − ᾱ_t) x_t for v."""
        coefficients = self._v_coefficients(prediction_type, timesteps, sample.ndim)
        if coefficients is None:
            return model_output
        signal, sigma = coefficients
        return signal * model_output + sigma * sample


def _mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.float().reshape(x.shape[0], -1).mean(dim=1)


def joint_diffusion_loss(
    model: nn.Module,
    video: torch.Tensor,
    audio: torch.Tensor,
    timesteps: torch.Tensor,
    video_noise: torch.Tensor,
    audio_noise: torch.Tensor,
    schedule: LinearSchedule,
    shift_generator: random.Random | None = None,
    prediction_type: str = "epsilon",
) -> tuple[torch.Tensor, dict[str, float]]:
    """The Stereo MM-Diffusion training loss for one batch.

    Args:
        model: a :class:`~savg_hub.models.mm_diffusion_unet.CoupledUNetModel` (or a DDP wrapper of one).
        video: clean video ``(B, F, 3, H, W)`` float in [-1, 1].
        audio: clean waveform ``(B, 2, N)`` float in [-1, 1].
        timesteps: ``(B,)`` int64 in ``0 .. T-1``, shared by both modalities.
        video_noise: ε_v, same shape as ``video``.
        audio_noise: ε_a, same shape as ``audio`` (independent of ε_v).
        schedule: the noise schedule.
        shift_generator: draws the cross-attention window shifts (``None``: Python's global ``random``).
        prediction_type: ``"epsilon"`` or ``"v_prediction"`` (the regression target, :meth:`LinearSchedule.target`).

    Returns:
        ``(loss, {"video": ..., "audio": ...})``: ``loss`` = batch mean of per-sample
        ``mean MSE(ε̂_v, ε_v) + mean MSE(ε̂_a, ε_a)`` (or of v̂ and v; float32 scalar).
    """
    video_t = schedule.q_sample(video, timesteps, video_noise)
    audio_t = schedule.q_sample(audio, timesteps, audio_noise)
    out_video, out_audio = model(video_t, audio_t, timesteps, generator=shift_generator, return_dict=False)
    target_video = schedule.target(video, timesteps, video_noise, prediction_type)
    target_audio = schedule.target(audio, timesteps, audio_noise, prediction_type)
    video_loss = _mean_flat((out_video.float() - target_video.float()) ** 2)
    audio_loss = _mean_flat((out_audio.float() - target_audio.float()) ** 2)
    loss = (video_loss + audio_loss).mean()
    return loss, {"video": float(video_loss.mean().detach()), "audio": float(audio_loss.mean().detach())}


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log-likelihood (nats) of data ``x`` in [-1, 1] quantised to 256 levels (bins of width 2/255)
    under N(mean, e^(2 log_scale)); the outermost bins extend to ±∞ (the tanh approximation of the normal CDF)."""
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _approx_standard_normal_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def sr_hybrid_loss(
    model: nn.Module,
    high_res: torch.Tensor,
    low_res: torch.Tensor,
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    schedule: LinearSchedule,
    vb_weight: float = 1.0,
    prediction_type: str = "epsilon",
) -> tuple[torch.Tensor, dict[str, float]]:
    """The SR training loss: guided-diffusion's hybrid objective (loss type MSE, learned-range variance).

    ``loss = mean MSE(ε̂, ε) + vb_weight * L_vb`` per frame, averaged over the batch, where with the model output
    split into ε̂ and v (``out_channels = 2 C``; with ``prediction_type="v_prediction"`` the first half is v̂,
    the MSE is to the v target and ε̂ is derived from v̂ and x_t):

    * the model's variance is ``log σ² = f log β_t + (1 − f) log β̃_t`` (β̃ clipped at t = 0), ``f = (v + 1) / 2``;
    * its mean is the posterior mean of q(x_{t-1} | x_t, x̂_0) with ``x̂_0`` from the **detached** ε̂ (so L_vb
      trains only v), not clipped;
    * ``L_vb`` = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t > 0 and the discretised-Gaussian decoder NLL
      of x_0 at t = 0, both averaged over elements and in bits (not rescaled by T / 1000).

    With ``out_channels = C`` (no learned sigma) the loss is the plain ε MSE.

    Args:
        model: a :class:`~savg_hub.models.sr_unet.SuperResUNetModel` (or a wrapper).
        high_res: clean frames ``(B, C, S, S)`` in [-1, 1].
        low_res: conditioning frames ``(B, C, s, s)`` in [-1, 1].
        timesteps: ``(B,)`` int64.
        noise: ε, shape of ``high_res``.
        schedule: the training schedule.
        vb_weight: weight of ``L_vb``.
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.

    Returns:
        ``(loss, {"mse": ..., "vb": ...})``.
    """
    x_t = schedule.q_sample(high_res, timesteps, noise)
    output = model(x_t, timesteps, low_res, return_dict=False)[0].float()
    channels = high_res.shape[1]
    prediction = output[:, :channels]
    target = schedule.target(high_res, timesteps, noise, prediction_type).float()
    mse = _mean_flat((prediction - target) ** 2)
    if output.shape[1] == channels:
        loss = mse.mean()
        return loss, {"mse": float(loss.detach()), "vb": 0.0}
    if output.shape[1] != 2 * channels:
        raise ValueError(f"model output has {output.shape[1]} channels; expected {channels} or {2 * channels}")
    v = output[:, channels:]
    nd = high_res.ndim
    x_t, x0 = x_t.float(), high_res.float()
    eps = schedule.epsilon(x_t, timesteps, prediction, prediction_type)
    min_log = schedule.gather(schedule.posterior_log_variance_clipped, timesteps, nd)
    max_log = schedule.gather(torch.log(schedule.betas), timesteps, nd)
    frac = (v + 1.0) / 2.0
    model_log_variance = frac * max_log + (1.0 - frac) * min_log
    abar = schedule.alphas_cumprod
    pred_x0 = (schedule.gather(torch.sqrt(1.0 / abar), timesteps, nd) * x_t
               - schedule.gather(torch.sqrt(1.0 / abar - 1.0), timesteps, nd) * eps.detach())
    coef1 = schedule.gather(schedule.posterior_mean_coef1, timesteps, nd)
    coef2 = schedule.gather(schedule.posterior_mean_coef2, timesteps, nd)
    model_mean = coef1 * pred_x0 + coef2 * x_t
    true_mean = coef1 * x0 + coef2 * x_t
    kl = _mean_flat(normal_kl(true_mean, min_log, model_mean, model_log_variance)) / math.log(2.0)
    nll = -_mean_flat(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_variance)) / math.log(2.0)
    vb = torch.where(timesteps.to(kl.device) == 0, nll, kl)
    loss = (mse + vb_weight * vb).mean()
    return loss, {"mse": float(mse.mean().detach()), "vb": float(vb.mean().detach())}


# ------------------------------------------------------------------------------------------------------------
# EMA


class ExponentialMovingAverage:
    """EMA of a model's floating-point parameters, kept in float32 (guided-diffusion's ``update_ema``).

    ``shadow ← d · shadow + (1 − d) · param`` after every optimiser step, with ``d = decay`` (the release) or, with
    ``warmup``, ``min(decay, (1 + n) / (10 + n))`` at update ``n`` (as diffusers' ``EMAModel``). Buffers are copied.
    Has ``state_dict``/``load_state_dict`` for Accelerate's checkpointing.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = False) -> None:
        self.decay, self.warmup = float(decay), bool(warmup)
        self.num_updates = 0
        self.shadow = {name: p.detach().float().clone() for name, p in model.named_parameters()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        for name, p in model.named_parameters():
            self.shadow[name].mul_(decay).add_(p.detach().float(), alpha=1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        """Load the averaged weights into ``model`` (same architecture); returns it."""
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name].to(p.device, p.dtype))
        return model

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        if missing:
            raise ValueError(f"EMA state lacks parameters {missing[:5]}")
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name] = value.to(self.shadow[name].device, torch.float32).clone()


# ------------------------------------------------------------------------------------------------------------
# Data


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Aspect-kept bicubic resize with centred black padding (the release's loaders).

    Args:
        frames: uint8 ``(T, h, w, 3)``.
        height: target height.
        width: target width.

    Returns:
        uint8 ``(T, height, width, 3)``; the input itself when it already has that size. Resizing uses torch's
        antialiased bicubic interpolation (as torchvision's tensor ``resize``), rounded and clamped.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, h, w, 3), got {frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]
    if (h, w) == (height, width):
        return frames
    scale = min(height / h, width / w)
    new_h, new_w = max(1, int(h * scale)), max(1, int(w * scale))
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = nn.functional.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.zeros((frames.shape[0], height, width, 3), np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[:, top:top + new_h, left:left + new_w] = x
    return out


def to_model_space(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` to float32 ``(..., 3, H, W)`` in [-1, 1] as ``x / 127.5 − 1``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    return x.movedim(-1, -3).contiguous()


def _decode_row(reader, split: str, index: int):
    from savg_hub.data.hf_dataset import example_to_clip

    return example_to_clip(reader.row(split, index))


def _rng(key: int | None) -> np.random.Generator:
    if key is None:
        key = int(torch.randint(0, 2**62, ()).item())
    return np.random.default_rng(key)


class _SplitDataset(torch.utils.data.Dataset):
    def __init__(self, folder: str | os.PathLike, split: str, flip: str, flip_probability: float,
                 max_clips: int | None) -> None:
        from savg_hub.data.hf_dataset import DatasetFolder

        if flip not in FLIP_MODES:
            raise ValueError(f"flip must be one of {FLIP_MODES}, got {flip!r}")
        if not 0 <= flip_probability <= 1:
            raise ValueError(f"flip_probability must be in [0, 1], got {flip_probability}")
        self.folder, self.split = Path(folder), split
        self.reader = DatasetFolder(folder)
        self.num_clips = self.reader.num_rows(split)
        if max_clips is not None:
            self.num_clips = min(self.num_clips, int(max_clips))
        if self.num_clips == 0:
            raise ValueError(f"split {split!r} of {folder} has no clips")
        self.flip, self.flip_probability = flip, float(flip_probability)

    def draw_flip(self, rng: np.random.Generator) -> bool:
        """Whether an item is mirrored: always for ``legacy``, at ``flip_probability`` for ``consistent``."""
        if self.flip == "legacy":
            return True
        return self.flip == "consistent" and bool(rng.random() < self.flip_probability)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """``key``: an index (augmentation drawn from torch's RNG) or ``(index, seed)`` (deterministic)."""
        index, seed = (key, None) if isinstance(key, (int, np.integer)) else (int(key[0]), int(key[1]))
        return self.draw(int(index), _rng(seed))


class StereoMMDiffusionDataset(_SplitDataset):
    """Clips of one split of an SVGSA24 dataset folder at the joint model's resolution.

    Each item: ``video`` float32 ``(F, 3, H, W)`` in [-1, 1] (frames resized aspect-kept bicubic, black-padded,
    ``x / 127.5 − 1``), ``audio`` float32 ``(2, N)`` in [-1, 1] as stored (L, R; no normalisation), ``flipped``
    bool, ``index`` int64. With fewer than the clip's 20 frames (tiny models) a window of ``F`` frames starting
    at a random frame is used, and the audio from the window's start, truncated or zero-padded to ``N``.

    Flip (``flip``): ``"consistent"`` mirrors the frames and swaps the two audio channels (at
    ``flip_probability``); ``"legacy"`` mirrors every clip's frames and leaves the audio as it is -- the official
    SAVGBench/MM-Diffusion loader's behaviour (``RandomHorizontalFlip(p=True)``, i.e. p = 1); ``"none"``.

    Args:
        folder: SVGSA24 dataset folder.
        split: split name.
        video_size: ``(F, 3, H, W)`` of the model.
        audio_size: ``(2, N)`` of the model.
        flip: flip mode.
        flip_probability: mirror rate of ``"consistent"``.
        max_clips: only the first N clips.
        cache_clips: keep decoded, resized clips in memory.
    """

    def __init__(self, folder: str | os.PathLike, split: str = "dev",
                 video_size: tuple[int, int, int, int] = (20, 3, 64, 64), audio_size: tuple[int, int] = (2, 80000),
                 flip: str = "consistent", flip_probability: float = 0.5, max_clips: int | None = None,
                 cache_clips: bool = False) -> None:
        super().__init__(folder, split, flip, flip_probability, max_clips)
        self.video_size = tuple(int(v) for v in video_size)
        self.audio_size = tuple(int(v) for v in audio_size)
        if len(self.video_size) != 4 or self.video_size[1] != 3 or len(self.audio_size) != 2:
            raise ValueError(f"video_size must be (F, 3, H, W) and audio_size (2, N); got {video_size}, {audio_size}")
        if self.audio_size[0] != 2:
            raise ValueError(f"audio_size must have 2 (stereo) channels, got {audio_size}")
        self.cache: dict[int, tuple[np.ndarray, np.ndarray, float, int]] | None = {} if cache_clips else None

    def __len__(self) -> int:
        return self.num_clips

    def clip(self, index: int) -> tuple[np.ndarray, np.ndarray, float, int]:
        """``(frames uint8 (20, H, W, 3) at the model size, audio float32 (2, 80000), fps, sample_rate)``."""
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} out of range ({self.num_clips} clips)")
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        clip = _decode_row(self.reader, self.split, index)
        frames = resize_frames(clip.video, self.video_size[2], self.video_size[3])
        item = (frames, np.ascontiguousarray(clip.audio, np.float32), float(clip.fps), int(clip.sample_rate))
        if self.cache is not None:
            self.cache[index] = item
        return item

    def example(self, index: int, flip: bool = False, start_frame: int = 0) -> dict[str, torch.Tensor]:
        """The item of clip ``index``, mirrored as the flip mode says when ``flip``, frames from ``start_frame``."""
        frames, audio, fps, rate = self.clip(index)
        num_frames, length = self.video_size[0], self.audio_size[1]
        if not 0 <= start_frame <= frames.shape[0] - num_frames:
            raise ValueError(f"start_frame={start_frame} outside [0, {frames.shape[0] - num_frames}] "
                             f"for {num_frames}-frame windows of {frames.shape[0]}-frame clips")
        window = frames[start_frame:start_frame + num_frames]
        first = int(round(start_frame * rate / fps))
        segment = np.zeros((2, length), np.float32)
        part = audio[:, first:first + length]
        segment[:, :part.shape[1]] = part
        if flip:
            window = window[:, :, ::-1]
            if self.flip == "consistent":
                segment = segment[::-1]
        return {"video": to_model_space(window), "audio": torch.from_numpy(np.ascontiguousarray(segment)),
                "flipped": torch.tensor(bool(flip)), "index": torch.tensor(index, dtype=torch.int64)}

    def draw(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        frames = self.clip(index)[0]
        start = int(rng.integers(0, frames.shape[0] - self.video_size[0] + 1))
        return self.example(index, self.draw_flip(rng), start)


def degrade_low_res(frame: np.ndarray, rng: np.random.Generator, noise_probability: float = 0.5,
                    max_noise_sigma: float = 20.0, jpeg_probability: float = 0.5,
                    jpeg_quality: tuple[int, int] = (20, 80)) -> np.ndarray:
    """The release's SR low-res degradation of a uint8 ``(h, w, 3)`` RGB frame: with ``noise_probability``
    Gaussian noise σ ~ U(0, ``max_noise_sigma``) (0-255 scale), then rounded and clipped; then with
    ``jpeg_probability`` a JPEG round trip at quality ~ U{low..high} (OpenCV). Returns uint8 ``(h, w, 3)``."""
    import cv2

    out = frame
    if rng.random() < noise_probability:
        sigma = rng.uniform(0.0, max_noise_sigma)
        out = np.clip(np.round(out.astype(np.float64) + rng.normal(0.0, sigma, out.shape)), 0, 255).astype(np.uint8)
    if rng.random() < jpeg_probability:
        quality = int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(out[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"JPEG encoding failed at quality {quality}")
        out = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(out)


class SuperResolutionDataset(_SplitDataset):
    """(low-res, high-res) frame pairs from one split of an SVGSA24 dataset folder; item ``i`` is frame
    ``i % 20`` of clip ``i // 20``.

    Each item: ``high_res`` float32 ``(3, S, S)`` in [-1, 1] (aspect-kept bicubic resize + black padding to S; a
    no-op for 256 -> 256), ``low_res`` float32 ``(3, s, s)`` in [-1, 1] (OpenCV bicubic ``INTER_CUBIC`` from the
    high-res frame, then :func:`degrade_low_res` when ``degrade``), ``flipped`` bool. Flip mirrors both frames
    (``"consistent"`` at ``flip_probability``, ``"legacy"`` always; there is no audio to swap).

    Args:
        folder: SVGSA24 dataset folder.
        split: split name.
        image_size: S.
        small_size: s.
        flip: flip mode.
        flip_probability: mirror rate of ``"consistent"``.
        max_clips: only the first N clips.
        degrade: apply the low-res degradation.
        degradation: keyword arguments of :func:`degrade_low_res`.
        cache_size: decoded clips kept (least recently used dropped).
    """

    FRAMES_PER_CLIP = 20

    def __init__(self, folder: str | os.PathLike, split: str = "dev", image_size: int = 256, small_size: int = 64,
                 flip: str = "consistent", flip_probability: float = 0.5, max_clips: int | None = None,
                 degrade: bool = True, degradation: Mapping[str, Any] | None = None, cache_size: int = 4) -> None:
        super().__init__(folder, split, flip, flip_probability, max_clips)
        if not 1 <= small_size <= image_size:
            raise ValueError(f"need 1 <= small_size <= image_size, got {small_size}, {image_size}")
        self.image_size, self.small_size = int(image_size), int(small_size)
        self.degrade, self.degradation = bool(degrade), dict(degradation or {})
        self.cache_size = max(1, int(cache_size))
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.num_clips * self.FRAMES_PER_CLIP

    def frames(self, clip_index: int) -> np.ndarray:
        """uint8 ``(20, S, S, 3)`` high-res frames of a clip."""
        if clip_index in self._cache:
            self._cache[clip_index] = self._cache.pop(clip_index)
            return self._cache[clip_index]
        clip = _decode_row(self.reader, self.split, clip_index)
        frames = resize_frames(clip.video, self.image_size, self.image_size)
        self._cache[clip_index] = frames
        while len(self._cache) > self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        return frames

    def example(self, index: int, flip: bool = False, rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        """Pair ``index``, mirrored when ``flip``, degraded with ``rng`` (``None``: no degradation)."""
        import cv2

        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range ({len(self)} frames)")
        high = self.frames(index // self.FRAMES_PER_CLIP)[index % self.FRAMES_PER_CLIP]
        if flip:
            high = np.ascontiguousarray(high[:, ::-1])
        low = cv2.resize(high, (self.small_size, self.small_size), interpolation=cv2.INTER_CUBIC)
        if self.degrade and rng is not None:
            low = degrade_low_res(low, rng, **self.degradation)
        return {"high_res": to_model_space(high), "low_res": to_model_space(low), "flipped": torch.tensor(bool(flip)),
                "index": torch.tensor(index, dtype=torch.int64)}

    def draw(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return self.example(index, self.draw_flip(rng), rng)


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, seed)`` keys for steps ``start_step .. num_steps - 1``, a pure function of the step.

    The global stream walks seeded permutations of the items epoch after epoch; step ``s`` takes positions
    ``[s B, (s + 1) B)`` of it and process ``p`` of ``P`` the slice ``[p B / P, (p + 1) B / P)``. The seed of each
    key drives that item's augmentation. So a resumed run sees exactly the data of an uninterrupted one.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, start_step: int, num_steps: int,
                 process_index: int = 0, num_processes: int = 1) -> None:
        if batch_size % num_processes:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {num_processes} processes")
        self.num_items, self.batch_size, self.seed = int(num_items), int(batch_size), int(seed)
        self.start_step, self.num_steps = int(start_step), int(num_steps)
        self.per_process = batch_size // num_processes
        self.offset = process_index * self.per_process
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.num_items, generator=generator)}
        return self._perms[epoch]

    def __len__(self) -> int:
        return max(0, self.num_steps - self.start_step)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.num_steps):
            keys = []
            for j in range(self.offset, self.offset + self.per_process):
                position = step * self.batch_size + j
                index = int(self._perm(position // self.num_items)[position % self.num_items])
                keys.append((index, step_seed(self.seed, step, j)))
            yield keys


def step_seed(seed: int, step: int, slot: int = 0) -> int:
    """A 62-bit seed for ``(seed, step, slot)``."""
    return int(np.random.SeedSequence([int(seed), int(step), int(slot)]).generate_state(1, np.uint64)[0]) % (2**62)


# ------------------------------------------------------------------------------------------------------------
# Checkpoints


def _make_dataset(config: _DiffusionTrainingConfig) -> _SplitDataset:
    kwargs = config.model_kwargs()
    if isinstance(config, StereoMMDiffusionTrainingConfig):
        return StereoMMDiffusionDataset(config.dataset_path(), config.train_split, kwargs["video_size"],
                                        kwargs["audio_size"], config.flip, config.flip_probability,
                                        config.max_train_clips, config.cache_clips)
    degradation = dict(noise_probability=config.noise_probability, max_noise_sigma=config.max_noise_sigma,
                       jpeg_probability=config.jpeg_probability, jpeg_quality=config.jpeg_quality)
    return SuperResolutionDataset(config.dataset_path(), config.train_split, kwargs["image_size"],
                                  kwargs["small_size"], config.flip, config.flip_probability, config.max_train_clips,
                                  config.degrade, degradation)


#: Where a pipeline folder keeps each model's weights, in order of preference.
_INIT_SUBFOLDERS = {"stereo_mm_diffusion": ("unet",), "super_resolution": ("sr_unet", "unet")}


def resolve_init_folder(init_from: str | os.PathLike, kind: str) -> Path:
    """The model folder an ``init_from`` value names (``~`` and ``$VARS`` expanded): itself when it holds
    ``config.json``, else the ``kind`` model's component folder of a pipeline folder (``unet/``; for
    ``"super_resolution"`` also ``sr_unet/``, first)."""
    folder = Path(os.path.expandvars(os.path.expanduser(str(init_from))))
    if (folder / "config.json").is_file():
        return folder
    for name in _INIT_SUBFOLDERS[kind]:
        if (folder / name / "config.json").is_file():
            return folder / name
    raise FileNotFoundError(
        f"init_from={str(init_from)!r}: no config.json there nor under {list(_INIT_SUBFOLDERS[kind])}"
    )


def _initial_model(config: _DiffusionTrainingConfig) -> nn.Module:
    model = config.build_model()
    if config.init_from:
        folder = resolve_init_folder(config.init_from, config.kind)
        source = _model_class(config.kind).from_pretrained(str(folder))
        try:
            model.load_state_dict(source.state_dict(), strict=True)
        except RuntimeError as error:
            raise ValueError(f"init_from={config.init_from!r} does not match the configured model: {error}") from error
        logger.info("initialised from %s", folder)
    return model


def train_diffusion(
    config: _DiffusionTrainingConfig,
    output_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    on_finish=None,
) -> dict[str, Any]:
    """Run (or continue) a training run of either model.

    Output folder: ``checkpoints/checkpoint-<step>/`` (Accelerate state: model, optimizer, grad scaler, RNG, EMA,
    step; + the config), ``training_config.{json,yaml}``. At the end, on the main process,
    ``on_finish(ema_model, state_dict)`` builds the final artefacts (the scripts save a pipeline folder).

    Returns:
        ``{"step", "start_step", "training_seconds", "num_parameters", "train_items", "loss", "final": ...}``
        (``final``: what ``on_finish`` returned).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    output_dir = Path(output_dir)
    accelerator = Accelerator(mixed_precision=config.effective_mixed_precision())
    if config.mixed_precision != "no" and accelerator.mixed_precision == "no":
        logger.info("no CUDA device: training in fp32 (mixed_precision=%r applies on GPU only)",
                    config.mixed_precision)
    set_seed(config.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_config(output_dir, config)
    found = list_checkpoints(output_dir)
    if not resume and found:
        raise FileExistsError(f"{output_dir} already holds checkpoints; pass --resume or another --output-dir")
    if resume and not found:
        raise FileNotFoundError(f"--resume: no checkpoint under {output_dir / 'checkpoints'}")

    dataset = _make_dataset(config)
    model = _initial_model(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=config.adam_betas,
                                  weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    ema = ExponentialMovingAverage(accelerator.unwrap_model(model), config.ema_decay, config.ema_warmup)
    state = TrainerState()
    accelerator.register_for_checkpointing(state, ema)
    if resume:
        step, folder = found[-1]
        accelerator.load_state(str(folder))
        logger.info("resumed from %s (step %d)", folder, state.step)
    start_step = state.step

    sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, start_step, config.max_steps,
                               accelerator.process_index, accelerator.num_processes)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    kwargs = config.model_kwargs()
    schedule = LinearSchedule(config.num_train_timesteps, config.beta_start, config.beta_end)
    device = accelerator.device
    bar = tqdm(total=config.max_steps, initial=state.step, desc=f"train {config.kind}", unit="step",
               disable=not progress or not accelerator.is_main_process, dynamic_ncols=True)
    session_start, elapsed_before = time.perf_counter(), state.elapsed
    running = None
    for batch in loader:
        generator = torch.Generator().manual_seed(step_seed(config.seed, state.step, 10_000 + accelerator.process_index))
        if isinstance(config, StereoMMDiffusionTrainingConfig):
            video, audio = batch["video"], batch["audio"]
            t = torch.randint(0, schedule.num_timesteps, (video.shape[0],), generator=generator)
            video_noise = torch.randn(video.shape, generator=generator)
            audio_noise = torch.randn(audio.shape, generator=generator)
            shifts = random.Random(step_seed(config.seed, state.step, 20_000 + accelerator.process_index))
            with accelerator.autocast():
                loss, parts = joint_diffusion_loss(model, video.to(device), audio.to(device), t.to(device),
                                                   video_noise.to(device), audio_noise.to(device), schedule, shifts,
                                                   config.prediction_type)
        else:
            high, low = batch["high_res"], batch["low_res"]
            t = torch.randint(0, schedule.num_timesteps, (high.shape[0],), generator=generator)
            noise = torch.randn(high.shape, generator=generator)
            with accelerator.autocast():
                loss, parts = sr_hybrid_loss(model, high.to(device), low.to(device), t.to(device), noise.to(device),
                                             schedule, config.vb_weight, config.prediction_type)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {state.step + 1}")
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if config.max_grad_norm is not None:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        ema.update(accelerator.unwrap_model(model))
        state.step += 1
        state.elapsed = elapsed_before + time.perf_counter() - session_start
        running = value if running is None else 0.98 * running + 0.02 * value
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", **{k: f"{v:.4f}" for k, v in parts.items()})
        if state.step % config.log_every == 0:
            logger.info("step %d loss %.5f (%s)", state.step, running,
                        ", ".join(f"{k} {v:.4f}" for k, v in parts.items()))
        if state.step % config.checkpoint_every == 0 or state.step == config.max_steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_checkpoint(accelerator, output_dir, state.step, config)
    bar.close()
    accelerator.wait_for_everyone()

    result: dict[str, Any] = {
        "step": state.step, "start_step": start_step, "training_seconds": state.elapsed,
        "num_parameters": sum(p.numel() for p in accelerator.unwrap_model(model).parameters()),
        "train_items": len(dataset), "train_clips": dataset.num_clips, "loss": running,
        "mixed_precision": accelerator.mixed_precision, "num_processes": accelerator.num_processes,
        "model_config": kwargs,
    }
    if accelerator.is_main_process and on_finish is not None:
        final = _model_class(config.kind)(**kwargs)
        ema.copy_to(final)
        final.eval()
        result["final"] = on_finish(final, result)
    accelerator.end_training()
    return result
