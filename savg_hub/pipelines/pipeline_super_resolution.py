"""The SAVGBench 64 -> 256 super-resolution stage: every frame of a video upsampled by guided-diffusion's SR
U-Net with DDIM (25 steps on the 1100-step schedule, as released), all frames of a video from the same noise.

Example::

    from savg_hub.pipelines import SuperResolutionPipeline

    pipe = SuperResolutionPipeline.from_pretrained("savg-hub/savgbench-sr-64-256")
    out = pipe(video=frames_64, generator=torch.Generator().manual_seed(0))   # (B, T, 64, 64, 3) uint8
    out.frames.shape                                                         # (B, T, 256, 256, 3) uint8
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from savg_hub.models.sr_unet import SuperResUNetModel
from savg_hub.pipelines.pipeline_output import SuperResolutionPipelineOutput
from savg_hub.pipelines.pipeline_utils import (
    SAVGPipelineMixin,
    check_output_type,
    postprocess_video,
    preprocess_video,
)


class SuperResolutionPipeline(SAVGPipelineMixin, DiffusionPipeline):
    """Frame-by-frame diffusion super-resolution of a video (SAVGBench's second stage).

    As released (``reference/baselines.md`` §3.3): the low-resolution frames in [-1, 1] condition the U-Net
    (bilinearly upsampled inside it); one noise image per video is repeated over its frames; DDIM with η = 0
    uses the first ``C`` output channels as ε, clips x̂0 to [-1, 1] and re-derives ε from it; the last step goes
    to ᾱ = 1. With a ``DDPMScheduler`` (``variance_type="learned_range"``) the full output (ε and the variance
    values) goes to the scheduler instead: the paper's "DDPM" variant.

    Args:
        unet ([`SuperResUNetModel`]):
            the SR U-Net (``small_size`` -> ``image_size``, learned sigma).
        scheduler ([`DDIMScheduler`]):
            see :func:`~savg_hub.pipelines.pipeline_utils.sr_ddim_scheduler` (the release: 1100 steps).
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["latents"]

    def __init__(self, unet: SuperResUNetModel, scheduler: DDIMScheduler) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    def check_inputs(
        self,
        video: np.ndarray | torch.Tensor | None,
        video_latents: torch.Tensor | None,
        num_inference_steps: int,
        frame_batch_size: int | None,
        output_type: str,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> torch.Tensor:
        check_output_type(output_type)
        if (video is None) == (video_latents is None):
            raise ValueError("pass exactly one of video (B, T, H, W, 3) and video_latents (B, T, 3, H, W)")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive int; got {num_inference_steps!r}")
        if frame_batch_size is not None and (not isinstance(frame_batch_size, int) or frame_batch_size < 1):
            raise ValueError(f"frame_batch_size must be a positive int or None; got {frame_batch_size!r}")
        bad = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback_on_step_end_tensor_inputs {bad} are not among {self._callback_tensor_inputs}")
        low_res = preprocess_video(video) if video is not None else torch.as_tensor(video_latents).float()
        size, channels = int(self.unet.config.small_size), int(self.unet.config.in_channels)
        if low_res.ndim != 5 or tuple(low_res.shape[2:]) != (channels, size, size):
            shape = tuple(video.shape) if video is not None else tuple(low_res.shape)
            raise ValueError(
                f"the SR model upsamples {size}x{size} frames with {channels} channels; got "
                f"{'video' if video is not None else 'video_latents'} of shape {shape}"
            )
        return low_res

    @torch.no_grad()
    def __call__(
        self,
        video: np.ndarray | torch.Tensor | None = None,
        video_latents: torch.Tensor | None = None,
        num_inference_steps: int = 25,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        frame_batch_size: int | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006
    ) -> SuperResolutionPipelineOutput | tuple:
        """Upsample every frame of ``video`` (or ``video_latents``).

        Args:
            video (`np.ndarray` or `torch.Tensor` of shape `(B, T, h, w, 3)`, *optional*):
                low-resolution frames, uint8 in [0, 255] or float in [0, 1].
            video_latents (`torch.Tensor` of shape `(B, T, 3, h, w)`, *optional*):
                low-resolution frames in model space, float in [-1, 1], not quantised (what the joint model's
                ``output_type="latent"`` returns; the release feeds these).
            num_inference_steps (`int`, *optional*, defaults to 25):
                DDIM steps (the release: 25).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                seeds the initial noise, one image ``(3, H, W)`` per video.
            latents (`torch.Tensor` of shape `(B, 3, H, W)`, *optional*):
                that initial noise, instead of drawing it.
            frame_batch_size (`int`, *optional*):
                frames per U-Net call (memory); ``None``: all ``B * T`` at once. The result does not depend on it.
            output_type (`str`, *optional*, defaults to `"np"`):
                ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict (`bool`, *optional*, defaults to `True`):
                return a [`SuperResolutionPipelineOutput`] instead of ``(frames,)``.
            callback_on_step_end (`Callable`, *optional*):
                ``f(pipe, step, timestep, callback_kwargs) -> dict`` after every step; ``"latents"`` is the
                current sample ``(B, T, 3, H, W)``.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*):
                ``["latents"]`` or ``[]``.

        Returns:
            [`SuperResolutionPipelineOutput`] with ``frames`` ``(B, T, H, W, 3)``.
        """
        # 1. Check inputs
        low_res = self.check_inputs(
            video, video_latents, num_inference_steps, frame_batch_size, output_type,
            callback_on_step_end_tensor_inputs,
        )
        device = self._execution_device
        batch, frames = int(low_res.shape[0]), int(low_res.shape[1])
        channels, size = int(self.unet.config.in_channels), int(self.unet.config.image_size)
        low_res = low_res.to(device).reshape(batch * frames, *low_res.shape[2:])

        # 2. Initial noise: one image per video, the same for all of its frames
        if latents is None:
            if isinstance(generator, list) and len(generator) != batch:
                raise ValueError(f"got {len(generator)} generators for a batch of {batch}")
            latents = randn_tensor((batch, channels, size, size), generator=generator, device=device,
                                   dtype=torch.float32)
        elif tuple(latents.shape) != (batch, channels, size, size):
            raise ValueError(f"latents must have shape {(batch, channels, size, size)}; got {tuple(latents.shape)}")
        sample = latents.to(device, torch.float32)[:, None].expand(batch, frames, channels, size, size)
        sample = sample.reshape(batch * frames, channels, size, size).clone()

        # 3. Timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        is_ddim = isinstance(self.scheduler, DDIMScheduler)
        learned_variance = getattr(self.scheduler.config, "variance_type", None) in ("learned", "learned_range")
        chunk = frame_batch_size or batch * frames

        # 4. Denoising loop
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                model_input = self.scheduler.scale_model_input(sample, t)
                output = torch.cat([
                    self.unet(x, t, lr, return_dict=False)[0].float()
                    for x, lr in zip(model_input.split(chunk), low_res.split(chunk), strict=True)
                ])
                if is_ddim:
                    sample = self.scheduler.step(
                        output[:, :channels], t, sample, eta=0.0, use_clipped_model_output=True
                    ).prev_sample
                else:
                    model_output = output if learned_variance else output[:, :channels]
                    # ancestral noise has B * T rows: a per-video generator list cannot cover it, use its first
                    step_generator = generator[0] if isinstance(generator, list) else generator
                    sample = self.scheduler.step(model_output, t, sample, generator=step_generator).prev_sample
                if callback_on_step_end is not None:
                    current = {"latents": sample.reshape(batch, frames, channels, size, size)}
                    outputs = callback_on_step_end(
                        self, i, t, {k: current[k] for k in callback_on_step_end_tensor_inputs}
                    )
                    sample = outputs.pop("latents", current["latents"]).reshape(batch * frames, channels, size, size)
                progress_bar.update()

        # 5. Postprocess
        result = postprocess_video(sample.reshape(batch, frames, channels, size, size), output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (result,)
        return SuperResolutionPipelineOutput(frames=result)
