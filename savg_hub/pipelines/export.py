"""Write generated clips to disk: mp4 (H.264 + AAC) plus a lossless sidecar per clip."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from savg_hub.media.clip import SVGSA24_CLIP, Clip, ClipSpec, write_clip
from savg_hub.pipelines.pipeline_output import SAVGPipelineOutput


def clip_spec_for(output: SAVGPipelineOutput) -> ClipSpec:
    """The :class:`~savg_hub.media.clip.ClipSpec` that ``output``'s clips meet: the SVGSA24 contract when the
    shapes and rates are the benchmark's, otherwise one with the output's own sizes (and no bars)."""
    _, num_frames, height, width, _ = (int(v) for v in output.frames.shape)
    channels, num_samples = (int(v) for v in output.audio.shape[1:])
    spec = ClipSpec(
        num_frames=num_frames, height=height, width=width, fps=float(output.fps),
        sample_rate=int(output.sample_rate), num_samples=num_samples, num_channels=channels, pad_top=0,
        pad_bottom=0,
    )
    same = all(getattr(spec, name) == getattr(SVGSA24_CLIP, name) for name in
               ("num_frames", "height", "width", "fps", "sample_rate", "num_samples", "num_channels"))
    return SVGSA24_CLIP if same else spec


def _as_uint8_frames(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    if torch.is_tensor(frames):
        frames = frames.detach().cpu()
        if frames.is_floating_point():
            frames = (frames.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be (B, T, H, W, 3) (output_type 'np' or 'pt', not 'latent'); got shape {frames.shape}"
        )
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (output_type 'np') or a float tensor ('pt'); got {frames.dtype}")
    return frames


def export_to_clips(
    output: SAVGPipelineOutput,
    out_dir: str | os.PathLike,
    prefix: str = "clip",
    *,
    start_index: int = 0,
    spec: ClipSpec | None = None,
    lossless: str = "flac",
) -> list[Path]:
    """Write every clip of a pipeline output as ``out_dir/{prefix}_{index:05d}.mp4`` (H.264 + AAC) with a
    lossless stereo sidecar (``.flac`` or ``.wav``) next to it, each file atomically.

    Args:
        output: a [`SAVGPipelineOutput`] with ``output_type`` ``"np"`` or ``"pt"``.
        out_dir: destination folder (created).
        prefix: file-name prefix.
        start_index: index of the first clip (to continue a numbering across batches).
        spec: the contract each clip is validated against; ``None``: :func:`clip_spec_for` ``(output)``.
        lossless: ``"flac"`` or ``"wav"``.

    Returns:
        The mp4 paths, in batch order.
    """
    if lossless not in ("flac", "wav"):
        raise ValueError(f"lossless must be 'flac' or 'wav'; got {lossless!r}")
    if not prefix or os.sep in prefix:
        raise ValueError(f"prefix must be a non-empty file-name prefix; got {prefix!r}")
    frames = _as_uint8_frames(output.frames)
    audio = output.audio.detach().cpu().float().numpy() if torch.is_tensor(output.audio) else np.asarray(output.audio)
    if audio.ndim != 3 or audio.shape[0] != frames.shape[0]:
        raise ValueError(f"audio must be (B, 2, N) with B = {frames.shape[0]}; got shape {audio.shape}")
    spec = spec or clip_spec_for(output)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, (video, waveform) in enumerate(zip(frames, audio, strict=True)):
        name = f"{prefix}_{start_index + offset:05d}"
        clip = Clip(video=video, audio=np.ascontiguousarray(waveform, dtype=np.float32), fps=float(output.fps),
                    sample_rate=int(output.sample_rate), clip_id=name)
        path, _ = write_clip(out_dir / f"{name}.mp4", clip, spec=spec, lossless=lossless)
        paths.append(path)
    return paths
