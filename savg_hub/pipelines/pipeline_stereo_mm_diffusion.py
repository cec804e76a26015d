"""Stereo MM-Diffusion: joint sampling of a 64x64 video and a stereo waveform with the coupled U-Net.

Example::

    import torch
    from savg_hub.pipelines import StereoMMDiffusionPipeline

    pipe = StereoMMDiffusionPipeline.from_pretrained("savg-hub/savgbench-stereo-mm-diffusion")
    out = pipe(batch_size=2, num_inference_steps=25, generator=torch.Generator().manual_seed(0))
    out.frames.shape, out.audio.shape    # (2, 20, 64, 64, 3) uint8, (2, 2, 80000) float32 at 16 kHz
    out = pipe(sampler="official")       # the released adaptive DPM-Solver++ (picks its own steps)
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable

import torch
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from savg_hub.models.mm_diffusion_unet import CoupledUNetModel
from savg_hub.pipelines.pipeline_output import SAVGPipelineOutput
from savg_hub.pipelines.pipeline_utils import (
    SAVGPipelineMixin,
    check_output_type,
    postprocess_audio,
    postprocess_video,
    stereo_mm_diffusion_dpmsolver_scheduler,
)
from savg_hub.schedulers.scheduling_adaptive_dpmsolver import AdaptiveDPMSolverScheduler

logger = logging.getLogger(__name__)

SAMPLERS = ("dpmsolver", "official")


def _first_generator(generator: torch.Generator | list[torch.Generator] | None) -> torch.Generator | None:
    if isinstance(generator, list):
        return generator[0] if generator else None
    return generator


def shift_generator_from(generator: torch.Generator | list[torch.Generator] | None) -> random.Random:
    """A ``random.Random`` for the cross-attention window shifts, seeded by one draw from ``generator`` (its
    first element for a list; torch's global generator for ``None``), so that a torch seed fixes everything."""
    first = _first_generator(generator)
    if first is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=first, device=first.device).item())
    return random.Random(seed)


class StereoMMDiffusionPipeline(SAVGPipelineMixin, DiffusionPipeline):
    """Unconditional joint generation of video and stereo audio with Stereo MM-Diffusion (SAVGBench's joint
    baseline, base stage: 64x64 video at ``fps``, stereo audio at ``sample_rate``).

    Samplers: the ``scheduler`` component, by default diffusers' ``DPMSolverMultistepScheduler`` configured as in
    ``reference/baselines.md`` §2.3 (fast, approximate: not bit-compatible with the release), stepped with one
    instance per modality so that each keeps its own multistep history; or
    :class:`~savg_hub.schedulers.AdaptiveDPMSolverScheduler`, the released adaptive DPM-Solver++ ("official"),
    which holds both modalities and shares one step size over the batch. ``sampler=`` picks either at call time.
    Any other diffusers ε-prediction scheduler with ``set_timesteps``/``step`` also works (two instances).

    Args:
        unet ([`CoupledUNetModel`]):
            the coupled audio-video ε-prediction U-Net; its config fixes the video ``(T, 3, H, W)`` and audio
            ``(2, N)`` shapes.
        scheduler ([`DPMSolverMultistepScheduler`] or [`AdaptiveDPMSolverScheduler`]):
            the default sampler (see :func:`~savg_hub.pipelines.pipeline_utils.stereo_mm_diffusion_dpmsolver_scheduler`).
        fps (`float`, *optional*, defaults to 4.0):
            frame rate of the generated video (the SAVGBench clip: 20 frames at 4 fps).
        sample_rate (`int`, *optional*, defaults to 16000):
            sample rate of the generated audio in Hz.
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["video_latents", "audio_latents"]

    def __init__(
        self,
        unet: CoupledUNetModel,
        scheduler: DPMSolverMultistepScheduler | AdaptiveDPMSolverScheduler,
        fps: float = 4.0,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        if float(fps) <= 0 or int(sample_rate) <= 0:
            raise ValueError(f"fps and sample_rate must be positive; got fps={fps}, sample_rate={sample_rate}")
        self.register_modules(unet=unet, scheduler=scheduler)
        self.register_to_config(fps=float(fps), sample_rate=int(sample_rate))

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """``(T, 3, H, W)`` of one generated video (model layout)."""
        return tuple(int(v) for v in self.unet.config.video_size)

    @property
    def audio_shape(self) -> tuple[int, int]:
        """``(channels, samples)`` of one generated waveform."""
        return tuple(int(v) for v in self.unet.config.audio_size)

    def resolve_scheduler(self, sampler: str | None) -> SchedulerMixin:
        """The scheduler a call with ``sampler`` uses: the component itself for ``None`` or a matching kind;
        otherwise a new one of the requested kind on the component's training schedule."""
        if sampler is None:
            return self.scheduler
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS} or None; got {sampler!r}")
        config = self.scheduler.config
        schedule = dict(
            num_train_timesteps=int(config.num_train_timesteps),
            beta_start=float(config.beta_start),
            beta_end=float(config.beta_end),
        )
        if getattr(config, "beta_schedule", "linear") != "linear" or getattr(config, "trained_betas", None):
            raise ValueError(
                f"sampler={sampler!r} needs the linear training schedule; the pipeline's scheduler has "
                f"beta_schedule={getattr(config, 'beta_schedule', None)!r}"
            )
        schedule["prediction_type"] = str(getattr(config, "prediction_type", "epsilon"))
        if sampler == "official":
            if isinstance(self.scheduler, AdaptiveDPMSolverScheduler):
                return self.scheduler
            return AdaptiveDPMSolverScheduler(**schedule)
        if isinstance(self.scheduler, DPMSolverMultistepScheduler):
            return self.scheduler
        return stereo_mm_diffusion_dpmsolver_scheduler(**schedule)

    def check_inputs(
        self,
        batch_size: int,
        num_inference_steps: int,
        video_latents: torch.Tensor | None,
        audio_latents: torch.Tensor | None,
        output_type: str,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> int:
        check_output_type(output_type)
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive int; got {num_inference_steps!r}")
        bad = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs {bad} are not among {self._callback_tensor_inputs}"
            )
        if (video_latents is None) != (audio_latents is None):
            raise ValueError("pass both video_latents and audio_latents, or neither")
        if video_latents is None:
            if not isinstance(batch_size, int) or batch_size < 1:
                raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
            return batch_size
        batch = video_latents.shape[0]
        if tuple(video_latents.shape) != (batch, *self.video_shape):
            raise ValueError(
                f"video_latents must have shape (B, *{self.video_shape}); got {tuple(video_latents.shape)}"
            )
        if tuple(audio_latents.shape) != (batch, *self.audio_shape):
            raise ValueError(
                f"audio_latents must have shape ({batch}, *{self.audio_shape}); got {tuple(audio_latents.shape)}"
            )
        return batch

    def prepare_latents(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
        device: torch.device,
        video_latents: torch.Tensor | None = None,
        audio_latents: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial noise x_T: the video ``(B, T, 3, H, W)`` drawn first, then the audio ``(B, 2, N)`` (as the
        release does), standard normal float32; given latents are used as they are."""
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch_size}")
        if video_latents is None:
            video_latents = randn_tensor(
                (batch_size, *self.video_shape), generator=generator, device=device, dtype=torch.float32
            )
            audio_latents = randn_tensor(
                (batch_size, *self.audio_shape), generator=generator, device=device, dtype=torch.float32
            )
        return video_latents.to(device, torch.float32), audio_latents.to(device, torch.float32)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        num_inference_steps: int = 25,
        sampler: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        video_latents: torch.Tensor | None = None,
        audio_latents: torch.Tensor | None = None,
        cross_attention_generator: random.Random | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["video_latents", "audio_latents"],  # noqa: B006
    ) -> SAVGPipelineOutput | tuple:
        """Generate ``batch_size`` clips.

        Args:
            batch_size (`int`, *optional*, defaults to 1):
                clips to generate (ignored when latents are given).
            num_inference_steps (`int`, *optional*, defaults to 25):
                denoising steps of a step-count scheduler; ignored by the adaptive ("official") sampler, which
                picks its own steps (as the release ignores ``steps=80``).
            sampler (`str`, *optional*):
                ``"dpmsolver"`` (DPM-Solver++ 2M, §2.3), ``"official"`` (adaptive DPM-Solver++, §2.2) or ``None``
                (the ``scheduler`` component).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                seeds the initial noise (video, then audio) and, unless ``cross_attention_generator`` is given,
                one draw that seeds the cross-attention window shifts: the same seed gives the same clips.
            video_latents (`torch.Tensor` of shape `(B, T, 3, H, W)`, *optional*):
                initial video noise x_T (with ``audio_latents``).
            audio_latents (`torch.Tensor` of shape `(B, 2, N)`, *optional*):
                initial audio noise x_T.
            cross_attention_generator (`random.Random`, *optional*):
                drives the random window shifts (``random.Random(1010)`` with the official noise reproduces the
                release's draws).
            output_type (`str`, *optional*, defaults to `"np"`):
                ``"np"`` (uint8 frames, numpy audio), ``"pt"`` (float tensors) or ``"latent"`` (raw samples).
            return_dict (`bool`, *optional*, defaults to `True`):
                return a [`SAVGPipelineOutput`] instead of ``(frames, audio)``.
            callback_on_step_end (`Callable`, *optional*):
                ``f(pipe, step, timestep, callback_kwargs) -> dict`` after every step (every accepted step of the
                adaptive sampler); returned tensors named in ``callback_on_step_end_tensor_inputs`` replace the
                current samples.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*):
                which of ``"video_latents"`` (``(B, T, 3, H, W)``) and ``"audio_latents"`` (``(B, 2, N)``), the
                current noisy samples, go into ``callback_kwargs``.

        Returns:
            [`SAVGPipelineOutput`] with ``frames`` ``(B, T, H, W, 3)`` and ``audio`` ``(B, 2, N)`` (see its
            docstring for dtypes and ranges), ``sample_rate`` and ``fps``.
        """
        # 1. Check inputs
        batch_size = self.check_inputs(
            batch_size, num_inference_steps, video_latents, audio_latents, output_type,
            callback_on_step_end_tensor_inputs,
        )
        device = self._execution_device
        scheduler = self.resolve_scheduler(sampler)

        # 2. Prepare the initial noise (video first, then audio) and the window-shift generator
        video, audio = self.prepare_latents(batch_size, generator, device, video_latents, audio_latents)
        if cross_attention_generator is None:
            cross_attention_generator = shift_generator_from(generator)

        def denoise(video_in: torch.Tensor, audio_in: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
            timestep = t.reshape(-1)[:1].to(device).expand(batch_size)
            eps_video, eps_audio = self.unet(
                video_in, audio_in, timestep, generator=cross_attention_generator, return_dict=False
            )
            return eps_video.float(), eps_audio.float()

        def callback(step: int, t: torch.Tensor, video: torch.Tensor, audio: torch.Tensor) -> tuple:
            if callback_on_step_end is None:
                return video, audio
            current = {"video_latents": video, "audio_latents": audio}
            outputs = callback_on_step_end(self, step, t, {k: current[k] for k in callback_on_step_end_tensor_inputs})
            return outputs.pop("video_latents", video), outputs.pop("audio_latents", audio)

        # 3. Denoising loop
        if isinstance(scheduler, AdaptiveDPMSolverScheduler):
            # 3a. the released adaptive solver: both modalities in one scheduler, shared step size
            scheduler.set_timesteps(device=device)
            sample = (video, audio)
            step = 0
            with self.progress_bar(total=100) as progress_bar:
                while not scheduler.is_finished:
                    t = scheduler.timestep
                    output = scheduler.step(denoise(*scheduler.model_input(sample), t), t, sample)
                    sample = output.prev_sample
                    if output.accepted:
                        sample = callback(step, t, *sample)
                        step += 1
                    progress_bar.update(int(100 * scheduler.progress) - progress_bar.n)
            video, audio = sample
        else:
            # 3b. step-count schedulers: one instance per modality, stepped in lock-step on the same timesteps
            video_scheduler = scheduler
            audio_scheduler = type(scheduler).from_config(scheduler.config)
            video_scheduler.set_timesteps(num_inference_steps, device=device)
            audio_scheduler.set_timesteps(num_inference_steps, device=device)
            extra = {}
            if "generator" in inspect.signature(scheduler.step).parameters:
                extra["generator"] = generator
            timesteps = video_scheduler.timesteps
            with self.progress_bar(total=len(timesteps)) as progress_bar:
                for i, t in enumerate(timesteps):
                    video_in = video_scheduler.scale_model_input(video, t)
                    audio_in = audio_scheduler.scale_model_input(audio, t)
                    eps_video, eps_audio = denoise(video_in, audio_in, t)
                    video = video_scheduler.step(eps_video, t, video, **extra).prev_sample
                    audio = audio_scheduler.step(eps_audio, t, audio, **extra).prev_sample
                    video, audio = callback(i, t, video, audio)
                    progress_bar.update()

        # 4. Postprocess
        frames = postprocess_video(video, output_type)
        audio = postprocess_audio(audio, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, audio
        return SAVGPipelineOutput(
            frames=frames, audio=audio, sample_rate=int(self.config.sample_rate), fps=float(self.config.fps)
        )
