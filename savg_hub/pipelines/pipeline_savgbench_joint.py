"""SAVGBench's joint method end to end: Stereo MM-Diffusion (64x64 video + stereo audio), then the 64 -> 256
super-resolution of every frame; the audio is kept as generated.

Example::

    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained("savg-hub/savgbench-joint", trust_remote_code=True)
    out = pipe(num_inference_steps=25, generator=torch.Generator().manual_seed(0))
    out.frames.shape, out.audio.shape, out.fps, out.sample_rate   # (1, 20, 256, 256, 3), (1, 2, 80000), 4.0, 16000
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler

from savg_hub.models.mm_diffusion_unet import CoupledUNetModel
from savg_hub.models.sr_unet import SuperResUNetModel
from savg_hub.pipelines.pipeline_output import SAVGPipelineOutput
from savg_hub.pipelines.pipeline_stereo_mm_diffusion import StereoMMDiffusionPipeline
from savg_hub.pipelines.pipeline_super_resolution import SuperResolutionPipeline
from savg_hub.pipelines.pipeline_utils import SAVGPipelineMixin, check_output_type, postprocess_audio
from savg_hub.schedulers.scheduling_adaptive_dpmsolver import AdaptiveDPMSolverScheduler

_BASE_TENSORS = ("video_latents", "audio_latents")
_SR_TENSORS = ("latents",)


class SAVGBenchJointPipeline(SAVGPipelineMixin, DiffusionPipeline):
    """Unconditional spatially aligned audio-video generation with SAVGBench's joint baseline: the base stage
    ([`StereoMMDiffusionPipeline`]) then per-frame super-resolution ([`SuperResolutionPipeline`]). The full
    configuration gives 20 frames of 256x256 at 4 fps with 80 000 stereo samples at 16 kHz; smaller models give
    whatever their configs define.

    Args:
        unet ([`CoupledUNetModel`]):
            the joint video + audio ε-prediction U-Net.
        scheduler ([`DPMSolverMultistepScheduler`] or [`AdaptiveDPMSolverScheduler`]):
            the base stage's sampler.
        sr_unet ([`SuperResUNetModel`]):
            the SR U-Net; its ``small_size`` must be the joint model's frame size.
        sr_scheduler ([`DDIMScheduler`]):
            the SR stage's sampler.
        fps (`float`, *optional*, defaults to 4.0):
            frame rate of the video.
        sample_rate (`int`, *optional*, defaults to 16000):
            sample rate of the audio in Hz.
    """

    model_cpu_offload_seq = "unet->sr_unet"
    _callback_tensor_inputs = [*_BASE_TENSORS, *_SR_TENSORS]

    def __init__(
        self,
        unet: CoupledUNetModel,
        scheduler: DPMSolverMultistepScheduler | AdaptiveDPMSolverScheduler,
        sr_unet: SuperResUNetModel,
        sr_scheduler: DDIMScheduler,
        fps: float = 4.0,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        _, channels, height, width = (int(v) for v in unet.config.video_size)
        small, sr_channels = int(sr_unet.config.small_size), int(sr_unet.config.in_channels)
        if (height, width) != (small, small) or channels != sr_channels:
            raise ValueError(
                f"the joint model makes {channels}x{height}x{width} frames but the SR model upsamples "
                f"{sr_channels}x{small}x{small} frames"
            )
        if float(fps) <= 0 or int(sample_rate) <= 0:
            raise ValueError(f"fps and sample_rate must be positive; got fps={fps}, sample_rate={sample_rate}")
        self.register_modules(unet=unet, scheduler=scheduler, sr_unet=sr_unet, sr_scheduler=sr_scheduler)
        self.register_to_config(fps=float(fps), sample_rate=int(sample_rate))

    def _stages(self) -> tuple[StereoMMDiffusionPipeline, SuperResolutionPipeline]:
        base = StereoMMDiffusionPipeline(
            unet=self.unet, scheduler=self.scheduler, fps=self.config.fps, sample_rate=self.config.sample_rate
        )
        sr = SuperResolutionPipeline(unet=self.sr_unet, scheduler=self.sr_scheduler)
        for stage in (base, sr):
            stage.set_progress_bar_config(**getattr(self, "_progress_bar_config", {}))
        return base, sr

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        num_inference_steps: int = 25,
        sr_num_inference_steps: int = 25,
        sampler: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        video_latents: torch.Tensor | None = None,
        audio_latents: torch.Tensor | None = None,
        sr_latents: torch.Tensor | None = None,
        cross_attention_generator: random.Random | None = None,
        frame_batch_size: int | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["video_latents", "audio_latents", "latents"],  # noqa: B006
    ) -> SAVGPipelineOutput | tuple:
        """Generate ``batch_size`` clips.

        Args:
            batch_size (`int`, *optional*, defaults to 1):
                clips to generate (ignored when latents are given).
            num_inference_steps (`int`, *optional*, defaults to 25):
                base-stage steps (ignored by the adaptive "official" sampler).
            sr_num_inference_steps (`int`, *optional*, defaults to 25):
                DDIM steps of the SR stage (the release: 25).
            sampler (`str`, *optional*):
                base-stage sampler: ``"dpmsolver"``, ``"official"`` or ``None`` (the ``scheduler`` component).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                one random stream for everything, in this order: base video noise, base audio noise, the
                cross-attention shift seed, the SR noise (one image per video).
            video_latents (`torch.Tensor` of shape `(B, T, 3, h, w)`, *optional*):
                base-stage initial video noise (with ``audio_latents``).
            audio_latents (`torch.Tensor` of shape `(B, 2, N)`, *optional*):
                base-stage initial audio noise.
            sr_latents (`torch.Tensor` of shape `(B, 3, H, W)`, *optional*):
                SR initial noise.
            cross_attention_generator (`random.Random`, *optional*):
                drives the base model's random window shifts.
            frame_batch_size (`int`, *optional*):
                frames per SR U-Net call (memory only).
            output_type (`str`, *optional*, defaults to `"np"`):
                ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict (`bool`, *optional*, defaults to `True`):
                return a [`SAVGPipelineOutput`] instead of ``(frames, audio)``.
            callback_on_step_end (`Callable`, *optional*):
                ``f(pipe, step, timestep, callback_kwargs) -> dict``, called after every step of both stages with
                the stage's pipeline as ``pipe`` (step counts restart in the SR stage): the base stage passes
                ``video_latents``/``audio_latents``, the SR stage ``latents`` ``(B, T, 3, H, W)``.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*):
                the names to pass, among ``"video_latents"``, ``"audio_latents"`` and ``"latents"``.

        Returns:
            [`SAVGPipelineOutput`]: ``frames`` ``(B, T, H, W, 3)`` at the SR size, ``audio`` ``(B, 2, N)``,
            ``sample_rate``, ``fps``.
        """
        # 1. Check inputs
        check_output_type(output_type)
        bad = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback_on_step_end_tensor_inputs {bad} are not among {self._callback_tensor_inputs}")
        base, sr = self._stages()

        # 2. Base stage: joint 64x64 video + stereo audio, kept in model space for the SR stage (not quantised)
        low_res, audio = base(
            batch_size=batch_size,
            num_inference_steps=num_inference_steps,
            sampler=sampler,
            generator=generator,
            video_latents=video_latents,
            audio_latents=audio_latents,
            cross_attention_generator=cross_attention_generator,
            output_type="latent",
            return_dict=False,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=[n for n in callback_on_step_end_tensor_inputs if n in _BASE_TENSORS],
        )

        # 3. SR stage: every frame upsampled, the same initial noise for all frames of a video
        (frames,) = sr(
            video_latents=low_res,
            num_inference_steps=sr_num_inference_steps,
            generator=generator,
            latents=sr_latents,
            frame_batch_size=frame_batch_size,
            output_type=output_type,
            return_dict=False,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=[n for n in callback_on_step_end_tensor_inputs if n in _SR_TENSORS],
        )

        # 4. Postprocess the audio
        audio = postprocess_audio(audio, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, audio
        return SAVGPipelineOutput(
            frames=frames, audio=audio, sample_rate=int(self.config.sample_rate), fps=float(self.config.fps)
        )
