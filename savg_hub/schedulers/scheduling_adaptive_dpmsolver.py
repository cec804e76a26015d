"""The adaptive multimodal DPM-Solver++ (orders 1/2) that SAVGBench's released sampling script uses.

The official Stereo MM-Diffusion sampler (``run_baseline.sh``) is DPM-Solver's ``method='adaptive'`` with
``order=2`` ("DPM-Solver-12") in data-prediction form with dynamic thresholding, run jointly on the video and
the audio: both modalities share one continuous time ``s`` and one step size ``h`` in log-SNR, chosen from the
largest error estimate over the batch and the modalities (``reference/baselines.md`` §2.2). diffusers has no
adaptive DPM-Solver, so this scheduler implements it, holding the state of every modality.

The sampler asks for two model evaluations per attempt; the loop is driven by the scheduler::

    scheduler.set_timesteps(device=device)
    sample = (video_noise, audio_noise)
    while not scheduler.is_finished:
        model_input = scheduler.model_input(sample)            # the point to evaluate
        t = scheduler.timestep                                 # its integer model time, shape (1,)
        eps = unet(*model_input, t.expand(batch))               # ε of every modality
        sample = scheduler.step(eps, t, sample).prev_sample    # tuple, one tensor per modality
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

__all__ = ["AdaptiveDPMSolverScheduler", "AdaptiveDPMSolverSchedulerOutput"]

#: torch.quantile refuses inputs with more elements than this
_QUANTILE_MAX_ELEMENTS = 1 << 24


@dataclass
class AdaptiveDPMSolverSchedulerOutput(BaseOutput):
    """Output of :meth:`AdaptiveDPMSolverScheduler.step`.

    Args:
        prev_sample (`tuple[torch.Tensor, ...]`):
            the current accepted state ``x_s``, one tensor per modality (unchanged until an attempt is accepted).
        accepted (`bool` or `None`):
            ``None`` after the first evaluation of an attempt; after the second, whether the attempt was accepted.
        time (`float`):
            the continuous time ``s`` of ``prev_sample`` (1.0 at the start, ``t_eps`` at the end).
        error (`float` or `None`):
            the joint error estimate ``E`` of the finished attempt (accepted when ``E <= 1``).
    """

    prev_sample: tuple[torch.Tensor, ...]
    accepted: bool | None
    time: float
    error: float | None


def _betas(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str,
           trained_betas: Sequence[float] | None) -> np.ndarray:
    if trained_betas is not None:
        betas = np.asarray(trained_betas, dtype=np.float64)
        if betas.shape != (num_train_timesteps,):
            raise ValueError(
                f"trained_betas has {betas.shape[0]} entries; num_train_timesteps is {num_train_timesteps}"
            )
        return betas
    if beta_schedule != "linear":
        raise ValueError(f"beta_schedule must be 'linear' (the SAVGBench schedule); got {beta_schedule!r}")
    return np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float64)


def _interpolate(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``fp(xp)`` at ``x`` with linear extrapolation beyond both ends.

    ``xp`` must be increasing, 1-D with at least 2 points; ``x`` any shape.
    """
    index = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.shape[0] - 1)
    x0, x1 = xp[index - 1], xp[index]
    f0, f1 = fp[index - 1], fp[index]
    return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


class AdaptiveDPMSolverScheduler(SchedulerMixin, ConfigMixin):
    """SAVGBench's adaptive multimodal DPM-Solver++ (data prediction, dynamic thresholding, shared step size).

    **Continuous-time wrapper of the discrete schedule** (DPM-Solver's ``NoiseScheduleVP('discrete')``): grid
    points ``t_n = (n + 1) / N`` (``N = num_train_timesteps``) carry ``log α_n = ½ log ᾱ_n`` (``ᾱ`` from the
    float64 betas, then float32 as released); ``log α(t)`` interpolates them linearly (extrapolating outside),
    ``σ(t) = sqrt(1 - α²)``, ``λ(t) = log α - log σ``; ``λ⁻¹`` maps ``λ`` to ``log α = -½ log(1 + e^{-2λ})`` and
    interpolates ``t`` on the flipped table. The model sees ``t_in = int((t - 1/N) · N)`` in ``0 .. N-1``.

    **Data prediction with dynamic thresholding, per modality:** ``x̂0 = (x - σ ε̂) / α``, then with
    ``q = quantile_p(|x̂0|)`` over each sample's elements, ``s = max(q, sample_max_value)`` and
    ``x̂0 = clamp(x̂0, -s, s) / s``. Note: ``sample_max_value`` is the *floor* of ``s`` (the official
    ``thresholding_max_val``); unlike diffusers' ``DPMSolverMultistepScheduler`` there is no upper bound.

    **Adaptive DPM-Solver-12** (``solver_order=2``; ``1`` gives the first-order only variant "DPM-Solver-1",
    which has no error estimate and is not adaptive, so only 2 is supported): from ``s = 1``, ``h = h_init``, each
    attempt proposes ``t = λ⁻¹(λ_s + h)``, a first-order (DPM-Solver++ 1) and a second-order singlestep
    (``r1 = ½``) solution, the error ``E = max over batch and modalities of RMS((x_high - x_low) / δ)`` with
    ``δ = max(atol, rtol · max(|x_low|, |x_prev|))``; it is accepted when ``E <= 1``; then
    ``h = min(theta · h · E^{-1/2}, λ(t_eps) - λ_s)``. Sampling stops when ``|s - t_eps| <= t_err``; there is no
    final denoising step. Two model evaluations per attempt (the first evaluation is repeated after a rejected
    attempt, as released: with random-shift cross-attention it is not a pure function of its inputs).

    Args:
        num_train_timesteps (`int`, *optional*, defaults to 1000):
            length ``N`` of the discrete training schedule.
        beta_start (`float`, *optional*, defaults to 1e-4):
            first β of the linear schedule.
        beta_end (`float`, *optional*, defaults to 0.02):
            last β of the linear schedule.
        beta_schedule (`str`, *optional*, defaults to `"linear"`):
            only ``"linear"`` (built in float64 as guided-diffusion does).
        trained_betas (`list[float]`, *optional*):
            explicit betas (length ``N``), overriding the schedule.
        solver_order (`int`, *optional*, defaults to 2):
            order of the higher solution; only 2 (the release) is supported.
        atol (`float`, *optional*, defaults to 0.0078):
            absolute error tolerance (in data units).
        rtol (`float`, *optional*, defaults to 0.05):
            relative error tolerance.
        h_init (`float`, *optional*, defaults to 0.05):
            first step size in log-SNR ``λ``.
        theta (`float`, *optional*, defaults to 0.9):
            safety factor of the step-size update.
        t_eps (`float`, *optional*, defaults to 1e-3):
            end time (continuous, in (0, 1]).
        t_err (`float`, *optional*, defaults to 1e-5):
            stop when ``|s - t_eps|`` is at most this.
        thresholding (`bool`, *optional*, defaults to `True`):
            dynamic thresholding of the data prediction.
        dynamic_thresholding_ratio (`float`, *optional*, defaults to 0.995):
            the quantile ``p`` of ``|x̂0|``.
        sample_max_value (`float`, *optional*, defaults to 1.0):
            floor of the threshold ``s`` (see above).
        joint_error_norm (`str`, *optional*, defaults to `"max_over_batch_and_modalities"`):
            how the per-sample, per-modality errors combine into one step decision; only the released rule.
        prediction_type (`str`, *optional*, defaults to `"epsilon"`):
            what the model predicts: ``"epsilon"`` (the release) or ``"v_prediction"``
            (``x̂0 = α_t x - σ_t v̂``).
    """

    order = 2

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: list[float] | None = None,
        solver_order: int = 2,
        atol: float = 0.0078,
        rtol: float = 0.05,
        h_init: float = 0.05,
        theta: float = 0.9,
        t_eps: float = 1e-3,
        t_err: float = 1e-5,
        thresholding: bool = True,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        joint_error_norm: str = "max_over_batch_and_modalities",
        prediction_type: str = "epsilon",
    ) -> None:
        if solver_order != 2:
            raise ValueError(f"solver_order must be 2 (adaptive DPM-Solver-12, the release); got {solver_order}")
        if joint_error_norm != "max_over_batch_and_modalities":
            raise ValueError(
                f"joint_error_norm must be 'max_over_batch_and_modalities'; got {joint_error_norm!r}"
            )
        if not 0.0 < t_eps < 1.0:
            raise ValueError(f"t_eps must be in (0, 1); got {t_eps}")
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction'; got {prediction_type!r}")
        if not 0.0 < dynamic_thresholding_ratio <= 1.0:
            raise ValueError(f"dynamic_thresholding_ratio must be in (0, 1]; got {dynamic_thresholding_ratio}")
        if min(atol, rtol, h_init, theta, t_err) <= 0:
            raise ValueError(
                f"atol, rtol, h_init, theta and t_err must be positive; got {atol}, {rtol}, {h_init}, {theta}, "
                f"{t_err}"
            )
        betas = _betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - betas)).to(torch.float32)
        self.alphas_cumprod = alphas_cumprod
        #: continuous grid t_n = (n + 1) / N, float32 (increasing)
        self.t_array = torch.linspace(0.0, 1.0, num_train_timesteps + 1, dtype=torch.float32)[1:]
        #: log α_n = ½ log ᾱ_n on that grid (decreasing)
        self.log_alpha_array = 0.5 * torch.log(alphas_cumprod)
        self.init_noise_sigma = 1.0
        self.timesteps = torch.empty(0, dtype=torch.long)
        self._reset(torch.device("cpu"))

    # ----------------------------------------------------------------------------- continuous-time schedule

    def marginal_log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        """``log α(t)``, float32, same shape as ``t`` (continuous time in (0, 1])."""
        t = torch.as_tensor(t, dtype=torch.float32)
        return _interpolate(t, self.t_array.to(t.device), self.log_alpha_array.to(t.device))

    def marginal_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``α(t) = exp(log α(t))``."""
        return torch.exp(self.marginal_log_mean_coeff(t))

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        """``σ(t) = sqrt(1 - α(t)²)``."""
        return torch.sqrt(1.0 - torch.exp(2.0 * self.marginal_log_mean_coeff(t)))

    def marginal_lambda(self, t: torch.Tensor) -> torch.Tensor:
        """Half log-SNR ``λ(t) = log α(t) - log σ(t)``."""
        log_mean_coeff = self.marginal_log_mean_coeff(t)
        log_std = 0.5 * torch.log(1.0 - torch.exp(2.0 * log_mean_coeff))
        return log_mean_coeff - log_std

    def inverse_lambda(self, lamb: torch.Tensor) -> torch.Tensor:
        """The time ``t`` with ``λ(t) = lamb``, through ``log α = -½ log(1 + e^{-2λ})`` on the flipped table."""
        lamb = torch.as_tensor(lamb, dtype=torch.float32)
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lamb), -2.0 * lamb)
        xp = torch.flip(self.log_alpha_array.to(lamb.device), [0])
        fp = torch.flip(self.t_array.to(lamb.device), [0])
        return _interpolate(log_alpha, xp, fp)

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        """Integer timestep the ε-model sees at continuous time ``t``: ``int((t - 1/N) · N)`` (int64)."""
        n = self.config.num_train_timesteps
        t = torch.as_tensor(t, dtype=torch.float32)
        return ((t - 1.0 / n) * n).to(torch.int64)

    # ------------------------------------------------------------------------------------------ solver state

    def _reset(self, device: torch.device) -> None:
        one = torch.ones(1, dtype=torch.float32, device=device)
        self._s = one * 1.0
        self._lambda_s = self.marginal_lambda(self._s)
        self._lambda_end = self.marginal_lambda(one * self.config.t_eps)
        self._h = one * self.config.h_init
        self._x_prev: tuple[torch.Tensor, ...] | None = None
        self._stage = 0
        self._pending: dict | None = None
        self.num_model_evaluations = 0
        self.num_accepted = 0
        self.num_rejected = 0

    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None) -> None:
        """Reset the solver to ``s = 1`` (pure noise). The adaptive solver picks its own steps, so
        ``num_inference_steps`` must be ``None``: the release's ``steps=80`` is ignored too."""
        if num_inference_steps is not None:
            raise ValueError(
                f"the adaptive solver chooses its own steps; num_inference_steps must be None, got "
                f"{num_inference_steps}"
            )
        self._reset(torch.device(device) if device is not None else torch.device("cpu"))
        self.timesteps = self.model_time(self._s)

    @property
    def is_finished(self) -> bool:
        """Whether ``s`` has reached ``t_eps`` (within ``t_err``)."""
        return bool(torch.abs(self._s - self.config.t_eps).mean() <= self.config.t_err)

    @property
    def time(self) -> float:
        """The continuous time ``s`` of the accepted state."""
        return float(self._s.item())

    @property
    def progress(self) -> float:
        """Fraction of the log-SNR range from ``s = 1`` to ``t_eps`` already covered, in [0, 1]."""
        start = self.marginal_lambda(torch.ones(1))
        covered = (self._lambda_s.cpu() - start) / (self._lambda_end.cpu() - start)
        return float(covered.clamp(0.0, 1.0).item())

    def _eval_time(self) -> torch.Tensor:
        return self._s if self._stage == 0 else self._pending["s1"]

    @property
    def timestep(self) -> torch.Tensor:
        """Integer model timestep (int64, shape ``(1,)``) of the next evaluation."""
        return self.model_time(self._eval_time())

    def model_input(self, sample: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The point at which the model must be evaluated next: ``sample`` itself at the first evaluation of
        an attempt, the intermediate state ``x_{s1}`` at the second."""
        if self.is_finished:
            raise RuntimeError("the solver has finished; call set_timesteps() to start again")
        return tuple(sample) if self._stage == 0 else self._pending["x_s1"]

    def _threshold(self, x0: torch.Tensor) -> torch.Tensor:
        flat = x0.reshape(x0.shape[0], -1).abs()
        rows = max(1, _QUANTILE_MAX_ELEMENTS // max(1, flat.shape[1]))
        q = torch.cat([
            torch.quantile(chunk, self.config.dynamic_thresholding_ratio, dim=1) for chunk in flat.split(rows)
        ])
        s = torch.clamp(q, min=self.config.sample_max_value).reshape(-1, *([1] * (x0.ndim - 1)))
        return torch.clamp(x0, -s, s) / s

    def data_prediction(self, sample: torch.Tensor, model_output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x̂0 = (x - σ_t ε̂) / α_t`` of one modality (``x̂0 = α_t x - σ_t v̂`` for ``prediction_type="v_prediction"``),
        thresholded when configured (float32)."""
        sample = sample.to(torch.float32)
        alpha = self.marginal_alpha(t).to(sample.device)
        sigma = self.marginal_std(t).to(sample.device)
        if self.config.prediction_type == "v_prediction":
            x0 = alpha * sample - sigma * model_output.to(torch.float32)
        else:
            x0 = (sample - sigma * model_output.to(torch.float32)) / alpha
        return self._threshold(x0) if self.config.thresholding else x0

    def _check(self, model_output: Sequence[torch.Tensor], sample: Sequence[torch.Tensor]) -> None:
        if len(model_output) != len(sample) or not sample:
            raise ValueError(
                f"model_output has {len(model_output)} modalities and sample {len(sample)}; they must match"
            )
        for index, (eps, x) in enumerate(zip(model_output, sample, strict=True)):
            if eps.shape != x.shape:
                raise ValueError(
                    f"modality {index}: model_output shape {tuple(eps.shape)} differs from sample shape "
                    f"{tuple(x.shape)}"
                )

    def step(
        self,
        model_output: Sequence[torch.Tensor],
        timestep: torch.Tensor | int | None,
        sample: Sequence[torch.Tensor],
        return_dict: bool = True,
    ) -> AdaptiveDPMSolverSchedulerOutput | tuple:
        """Consume the ε predictions at the point :meth:`model_input` returned and advance the solver.

        Args:
            model_output (`tuple[torch.Tensor, ...]`):
                ε of every modality at :meth:`model_input` ``(sample)``, in the same shapes as ``sample``.
            timestep (`torch.Tensor` or `int`, *optional*):
                the model timestep used (checked against :attr:`timestep` when given).
            sample (`tuple[torch.Tensor, ...]`):
                the current accepted state (what the previous call returned, or the initial noise).
            return_dict (`bool`, *optional*, defaults to `True`):
                return an :class:`AdaptiveDPMSolverSchedulerOutput` instead of a tuple.

        Returns:
            :class:`AdaptiveDPMSolverSchedulerOutput` (or ``(prev_sample, accepted, time, error)``).
        """
        if self.is_finished:
            raise RuntimeError("the solver has finished; call set_timesteps() to start again")
        sample = tuple(x.to(torch.float32) for x in sample)
        self._check(model_output, sample)
        if timestep is not None:
            expected = int(self.timestep.item())
            got = torch.as_tensor(timestep).reshape(-1)
            if got.numel() == 0 or bool((got.to(torch.int64).cpu() != expected).any()):
                raise ValueError(f"timestep {timestep} is not the requested model timestep {expected}")
        self.num_model_evaluations += 1
        if self._stage == 0:
            accepted, error = None, None
            self._first_evaluation(model_output, sample)
        else:
            sample, accepted, error = self._second_evaluation(model_output, sample)
        if self._stage == 0:
            self.timesteps = self.model_time(self._s)
        if not return_dict:
            return sample, accepted, self.time, error
        return AdaptiveDPMSolverSchedulerOutput(prev_sample=sample, accepted=accepted, time=self.time, error=error)

    def _first_evaluation(self, model_output: Sequence[torch.Tensor], sample: tuple[torch.Tensor, ...]) -> None:
        s = self._s
        t = self.inverse_lambda(self._lambda_s + self._h)
        lambda_t = self.marginal_lambda(t)
        h = lambda_t - self._lambda_s
        r1 = 0.5
        s1 = self.inverse_lambda(self._lambda_s + r1 * h)
        sigma_s, sigma_t, sigma_s1 = self.marginal_std(s), self.marginal_std(t), self.marginal_std(s1)
        alpha_t, alpha_s1 = self.marginal_alpha(t), self.marginal_alpha(s1)
        phi_1, phi_11 = torch.expm1(-h), torch.expm1(-r1 * h)
        d_s = tuple(self.data_prediction(x, eps, s) for x, eps in zip(sample, model_output, strict=True))
        x_low = tuple((sigma_t / sigma_s) * x - (alpha_t * phi_1) * d for x, d in zip(sample, d_s, strict=True))
        x_s1 = tuple((sigma_s1 / sigma_s) * x - (alpha_s1 * phi_11) * d for x, d in zip(sample, d_s, strict=True))
        self._pending = dict(t=t, s1=s1, d_s=d_s, x_low=x_low, x_s1=x_s1, r1=r1, sigma_t=sigma_t,
                             sigma_s=sigma_s, alpha_t=alpha_t, phi_1=phi_1)
        self._stage = 1

    def _second_evaluation(
        self, model_output: Sequence[torch.Tensor], sample: tuple[torch.Tensor, ...]
    ) -> tuple[tuple[torch.Tensor, ...], bool, float]:
        p = self._pending
        cfg = self.config
        d_s1 = tuple(
            self.data_prediction(x, eps, p["s1"]) for x, eps in zip(p["x_s1"], model_output, strict=True)
        )
        coeff = p["alpha_t"] * p["phi_1"]
        x_high = tuple(
            (p["sigma_t"] / p["sigma_s"]) * x - coeff * d0 - (0.5 / p["r1"]) * coeff * (d1 - d0)
            for x, d0, d1 in zip(sample, p["d_s"], d_s1, strict=True)
        )
        x_prev = self._x_prev if self._x_prev is not None else sample
        errors = []
        for high, low, prev in zip(x_high, p["x_low"], x_prev, strict=True):
            delta = torch.maximum(torch.full_like(low, cfg.atol), cfg.rtol * torch.maximum(low.abs(), prev.abs()))
            ratio = ((high - low) / delta).reshape(low.shape[0], -1)
            errors.append(torch.sqrt(torch.square(ratio).mean(dim=-1)).max())
        error = torch.stack(errors).max()
        accepted = bool(error <= 1.0)
        if accepted:
            sample = x_high
            self._x_prev = p["x_low"]
            self._s = p["t"]
            self._lambda_s = self.marginal_lambda(self._s)
            self.num_accepted += 1
        else:
            self.num_rejected += 1
        grow = torch.float_power(error, -1.0 / self.order).float() if error > 0 else torch.tensor(math.inf)
        self._h = torch.minimum(cfg.theta * self._h * grow.to(self._h.device), self._lambda_end - self._lambda_s)
        self._pending = None
        self._stage = 0
        return sample, accepted, float(error)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
