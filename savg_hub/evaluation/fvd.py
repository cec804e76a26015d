"""FVD/KVD video features as the official SAVGBench evaluator computes them: preprocessing and I3D logits.

Official path (``av_quality_evaluation/evaluator.py`` + ``evaluations/fvd/fvd.py`` of commit 04e8d5b):

1. the dataset turns uint8 frames into float ``x / 127.5 - 1`` and the evaluator turns them back with
   ``((v + 1) * 127.5).clamp(0, 255)`` and a truncating cast, both in float32 on the CPU; this lowers the
   values 1..63 by one (:func:`official_uint8_round_trip`);
2. per clip ``(T, C, H, W)``: ``/ 255``, bilinear resize (``align_corners=False``, no antialias) of the
   shorter side to 224 with the other side ``ceil``-ed, centre crop to 224x224, layout ``(C, T, H, W)``,
   ``- 0.5``; then the batch ``* 2`` (:func:`preprocess_fvd`);
3. the 400 Kinetics logits of :class:`~savg_hub.models.i3d.InceptionI3DModel` in eval mode, batches of 8
   (:class:`I3DFeatureExtractor`).

Example::

    from savg_hub.models.i3d import InceptionI3DModel
    from savg_hub.evaluation.fvd import I3DFeatureExtractor, official_uint8_round_trip

    extractor = I3DFeatureExtractor(InceptionI3DModel.from_pretrained("i3d-kinetics400/"), device="cpu")
    # videos: uint8 (N, 20, 3, 256, 256) -> features float32 (N, 400)
    features = extractor.logits(official_uint8_round_trip(videos))
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from savg_hub.models.i3d import InceptionI3DModel

FVD_RESOLUTION = 224
_LOOKUP_CHUNK = 1 << 22


def _as_uint8_tensor(video: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(video)) if isinstance(video, np.ndarray) else video
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or np.ndarray, got {type(video).__name__}")
    if tensor.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 in [0, 255], got dtype {tensor.dtype}")
    return tensor


def official_uint8_round_trip(video: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The official dataset -> evaluator float32 round trip of uint8 frames (reference §6.3).

    ``v = x.float() / 127.5 - 1`` (dataset), then ``((v + 1) * 127.5).clamp(0, 255).to(uint8)``
    (evaluator), both in float32 on the CPU as the official code runs them. With PyTorch's CPU true division
    this maps every value 1..63 to one less and leaves the others unchanged. The ops are evaluated once on the
    256 possible values and applied as a lookup table (elementwise, so the result is identical).

    Args:
        video (`torch.Tensor` or `np.ndarray`, uint8, any shape): pixel values in [0, 255].

    Returns:
        `torch.Tensor` uint8 of the same shape, on ``video``'s device (CPU for NumPy input).

    Raises:
        ValueError: ``video`` is not uint8.
    """
    tensor = _as_uint8_tensor(video, "video")
    values = torch.arange(256, dtype=torch.uint8)
    table = ((values.float() / 127.5 - 1 + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    flat = tensor.reshape(-1)
    out = torch.empty_like(flat)
    if tensor.device.type == "cpu":  # OpenCV's table lookup: no index temporaries, ~20x faster than indexing
        import cv2

        lut, source, target = table.numpy(), flat.numpy(), out.numpy()
        for start in range(0, flat.numel(), _LOOKUP_CHUNK):
            stop = min(start + _LOOKUP_CHUNK, flat.numel())
            target[start:stop] = cv2.LUT(source[start:stop].reshape(-1, 1), lut).reshape(-1)
        return out.reshape(tensor.shape)
    table = table.to(tensor.device)
    for start in range(0, flat.numel(), _LOOKUP_CHUNK):  # bounded int64 index temporaries
        out[start : start + _LOOKUP_CHUNK] = table[flat[start : start + _LOOKUP_CHUNK].long()]
    return out.reshape(tensor.shape)


def _preprocess_clips(frames: torch.Tensor, resolution: int) -> torch.Tensor:
    """``(B, T, C, H, W)`` uint8 -> ``(B, C, T, res, res)`` float32 in [-1, 1], the official operations."""
    batch, num_frames, channels, height, width = frames.shape
    video = frames.reshape(batch * num_frames, channels, height, width).float().div_(255.0)
    scale = resolution / min(height, width)
    if height < width:
        target_size = (resolution, math.ceil(width * scale))
    else:
        target_size = (math.ceil(height * scale), resolution)
    video = F.interpolate(video, size=target_size, mode="bilinear", align_corners=False)
    height, width = video.shape[-2:]
    top = (height - resolution) // 2
    left = (width - resolution) // 2
    video = video[:, :, top : top + resolution, left : left + resolution]
    video = video.reshape(batch, num_frames, channels, resolution, resolution)
    video = video.permute(0, 2, 1, 3, 4).contiguous()
    return video.sub_(0.5).mul_(2)  # in place: the same float32 operations without two more copies


def preprocess_fvd(
    videos: torch.Tensor | np.ndarray,
    device: str | torch.device | None = None,
    resolution: int = FVD_RESOLUTION,
) -> torch.Tensor:
    """The official FVD preprocessing of uint8 clips into the I3D input.

    Per clip: ``/ 255``; bilinear resize (``align_corners=False``, no antialias) so that the shorter side is
    ``resolution`` and the other ``ceil(side * resolution / shorter)``; centre crop (offset
    ``(size - resolution) // 2``); layout ``(C, T, H, W)``; ``- 0.5``; ``* 2``. For 256x256 frames this is a
    256 -> 224 bilinear resize.

    Args:
        videos (`torch.Tensor` or `np.ndarray`, uint8):
            either ``(B, T, C, H, W)`` (the official evaluator's layout) or one clip ``(T, H, W, 3)`` (the
            clip contract's frame layout); values in [0, 255]; ``C`` must be 3.
        device (`str` or `torch.device`, *optional*):
            where to compute (the official run used its GPU; bilinear results can differ in the last float32
            bits between devices); defaults to ``videos``' device (CPU for NumPy input).
        resolution (`int`, *optional*, defaults to 224): output height and width.

    Returns:
        `torch.Tensor` float32 ``(B, 3, T, resolution, resolution)`` in [-1, 1] (``B = 1`` for a single clip).

    Raises:
        ValueError: ``videos`` is not uint8 or not one of the two layouts.
    """
    frames = _as_uint8_tensor(videos, "videos")
    if frames.ndim == 4 and frames.shape[-1] == 3:
        frames = frames.permute(0, 3, 1, 2).unsqueeze(0)
    elif frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(
            f"videos must be uint8 (B, T, 3, H, W) or one clip (T, H, W, 3), got shape {tuple(frames.shape)}"
        )
    if min(frames.shape) < 1:
        raise ValueError(f"videos must not be empty, got shape {tuple(frames.shape)}")
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    if device is not None:
        frames = frames.to(device)
    return _preprocess_clips(frames, resolution)


class I3DFeatureExtractor:
    """I3D logits of uint8 clips for FVD/KVD: :func:`preprocess_fvd` + :class:`InceptionI3DModel`, batched.

    Args:
        model (:class:`InceptionI3DModel`): the I3D network (put into eval mode and moved to ``device``).
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`):
            where preprocessing and the network run.
        batch_size (`int`, *optional*, defaults to 8): clips per forward pass (the official evaluator uses 8).
    """

    def __init__(
        self, model: InceptionI3DModel, device: str | torch.device = "cpu", batch_size: int = 8
    ) -> None:
        if not isinstance(model, InceptionI3DModel):
            raise ValueError(f"model must be an InceptionI3DModel, got {type(model).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size

    def logits(self, videos: torch.Tensor | np.ndarray) -> np.ndarray:
        """The 400 I3D logits of each clip.

        Args:
            videos (`torch.Tensor` or `np.ndarray`, uint8 ``(N, T, 3, H, W)``): clips in [0, 255], ``T >= 9``
                (official: T = 20, 256x256, after :func:`official_uint8_round_trip`).

        Returns:
            `np.ndarray` float32 ``(N, num_classes)``.

        Raises:
            ValueError: ``videos`` is not uint8 ``(N, T, 3, H, W)``.
        """
        frames = _as_uint8_tensor(videos, "videos")
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"videos must be uint8 (N, T, 3, H, W), got shape {tuple(frames.shape)}")
        outputs = []
        with torch.inference_mode():
            for start in range(0, frames.shape[0], self.batch_size):
                batch = preprocess_fvd(frames[start : start + self.batch_size], device=self.device)
                outputs.append(self.model(batch).logits.float().cpu())
        if not outputs:
            return np.zeros((0, self.model.config.num_classes), dtype=np.float32)
        return torch.cat(outputs).numpy()
