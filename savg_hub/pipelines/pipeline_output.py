"""The output dataclass shared by the SAVGBench pipelines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils import BaseOutput


@dataclass
class SAVGPipelineOutput(BaseOutput):
    """Generated audio-video clips.

    Args:
        frames (`np.ndarray` or `torch.Tensor`):
            video of shape `(B, T, H, W, 3)`: uint8 RGB in [0, 255] (``output_type="np"``) or float32 in [0, 1]
            (``"pt"``); with ``output_type="latent"`` the raw sample in the model's layout `(B, T, 3, H, W)`,
            float in about [-1, 1].
        audio (`np.ndarray` or `torch.Tensor`):
            stereo waveform of shape `(B, 2, N)`, float32 (left first), clipped to [-1, 1] except for
            ``"latent"``; ``N = duration * sample_rate``.
        sample_rate (`int`):
            audio sample rate in Hz.
        fps (`float`):
            video frame rate.
    """

    frames: np.ndarray | torch.Tensor
    audio: np.ndarray | torch.Tensor
    sample_rate: int
    fps: float


@dataclass
class SuperResolutionPipelineOutput(BaseOutput):
    """Upsampled video.

    Args:
        frames (`np.ndarray` or `torch.Tensor`):
            `(B, T, H, W, 3)` uint8 (``output_type="np"``) or float32 in [0, 1] (``"pt"``); ``"latent"``: the
            raw sample `(B, T, 3, H, W)` in about [-1, 1].
    """

    frames: np.ndarray | torch.Tensor
