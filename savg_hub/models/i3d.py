"""Inception-I3D (Kinetics-400), the feature network of FVD and KVD as the official SAVGBench code uses it.

The network of "Quo Vadis, Action Recognition?" (Carreira & Zisserman, 2017): an Inception-v1 inflated to 3-D.
This is the PyTorch port (piergiaj-style, as in TATS / MM-Diffusion) of the TF-Hub Kinetics-400 model that the
original FVD uses, with TensorFlow "SAME" padding computed from the input size at run time. FVD/KVD use its
400 **logits** (pre-softmax), averaged over the two output time steps of a 20-frame clip.

Module and parameter names are the reference's (``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_4b.b1b.bn.running_var``, ``logits.conv3d.bias``, ...), so the released ``i3d_pretrained_400.pt``
converts by name (``savg_hub.convert.i3d``).

Example::

    from savg_hub.models.i3d import InceptionI3DModel
    model = InceptionI3DModel.from_pretrained("i3d-kinetics400/").eval()
    logits = model(video).logits          # video (N, 3, 20, 224, 224) float in [-1, 1] -> (N, 400)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

# Channels of the four branches of each Inception block, in the reference's order: (branch 0 1x1,
# branch 1 1x1 reduce, branch 1 3x3, branch 2 1x1 reduce, branch 2 3x3, branch 3 1x1 after pooling).
_INCEPTION_CHANNELS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# The input size the network is defined for: after the five stride-2 stages the map is 7x7, which the final
# (2, 7, 7) average pool reduces to 1x1; the time axis needs >= 9 frames to leave >= 2 steps for that pool.
_INPUT_SIZE = 224
_MIN_FRAMES = 9


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding ``(front, back)`` of an axis of length ``size`` (odd pixel at the back)."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _split_same(hidden: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]
                ) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """TF "SAME" padding of a ``(N, C, T, H, W)`` map as ``(explicitly padded map, symmetric padding left)``.

    Axes padded equally on both sides are left to the operator's own zero padding (no copy of the map); only an
    asymmetric axis (the odd pixel at the back) is padded with ``F.pad``, and then all of them are.
    """
    per_axis = [_same_padding(hidden.shape[axis], kernel[axis - 2], stride[axis - 2]) for axis in (2, 3, 4)]
    if all(front == back for front, back in per_axis):
        return hidden, tuple(front for front, _ in per_axis)
    pads = [p for front_back in reversed(per_axis) for p in front_back]  # F.pad lists the last axis first
    return F.pad(hidden, pads), (0, 0, 0)


class I3DUnit3D(nn.Module):
    """3-D convolution with "SAME" padding, optionally followed by BatchNorm and ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: ``(t, h, w)`` kernel.
        stride: ``(t, h, w)`` stride.
        use_batch_norm: add ``bn`` (BatchNorm3d, momentum 0.001) after the convolution.
        use_bias: give the convolution a bias (only the logits layer has one).
        activation: apply ReLU at the end.
        batch_norm_eps: BatchNorm epsilon.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        use_batch_norm: bool = True,
        use_bias: bool = False,
        activation: bool = True,
        batch_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.activation = activation
        self.conv3d = nn.Conv3d(
            in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=use_bias
        )
        self.bn = nn.BatchNorm3d(out_channels, eps=batch_norm_eps, momentum=0.001) if use_batch_norm else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, T, H, W)`` -> ``(N, C_out, ceil(T/s_t), ceil(H/s_h), ceil(W/s_w))``."""
        hidden, padding = _split_same(hidden, self.kernel_size, self.stride)
        hidden = F.conv3d(hidden, self.conv3d.weight, self.conv3d.bias, self.stride, padding)
        if self.bn is not None:
            hidden = self.bn(hidden)
        if self.activation:
            hidden = F.relu(hidden)
        return hidden


class I3DMaxPool3dSame(nn.Module):
    """3-D max pooling with "SAME" **zero** padding (as the reference; its inputs are ReLU outputs, >= 0).

    Args:
        kernel_size: ``(t, h, w)`` window.
        stride: ``(t, h, w)`` stride.
    """

    def __init__(self, kernel_size: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, H, W)`` -> ``(N, C, ceil(T/s_t), ceil(H/s_h), ceil(W/s_w))``."""
        # The pooling's own padding is -inf, not zero; equal here because every window holds at least one real
        # value and the inputs are >= 0.
        hidden, padding = _split_same(hidden, self.kernel_size, self.stride)
        (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = self.kernel_size, self.stride, padding
        if st != 1:
            return F.max_pool3d(hidden, self.kernel_size, self.stride, padding)
        # Stride 1 in time: the max is separable, and PyTorch's 2-D pooling is much faster than its 3-D one
        # (same values: a max is exact in any order).
        n, c, t = hidden.shape[:3]
        pooled = F.max_pool2d(hidden.flatten(1, 2), (kh, kw), (sh, sw), (ph, pw)).unflatten(1, (c, t))
        if kt == 1:
            return pooled
        if pt:
            pooled = F.pad(pooled, (0, 0, 0, 0, pt, pt), value=float("-inf"))
        length = pooled.shape[2] - kt + 1
        out = pooled[:, :, :length]
        for offset in range(1, kt):
            out = torch.maximum(out, pooled[:, :, offset : offset + length])
        return out


class I3DInceptionBlock(nn.Module):
    """Inception block: four branches concatenated along channels.

    ``b0`` 1x1x1; ``b1a`` 1x1x1 -> ``b1b`` 3x3x3; ``b2a`` 1x1x1 -> ``b2b`` 3x3x3; ``b3a`` 3x3x3 max pool
    (stride 1) -> ``b3b`` 1x1x1. Output channels ``c0 + c2 + c4 + c5``.

    Args:
        in_channels: input channels.
        channels: ``(c0, c1, c2, c3, c4, c5)``, see ``_INCEPTION_CHANNELS``.
        batch_norm_eps: BatchNorm epsilon.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], batch_norm_eps: float) -> None:
        super().__init__()
        c0, c1, c2, c3, c4, c5 = channels
        eps = batch_norm_eps
        self.b0 = I3DUnit3D(in_channels, c0, batch_norm_eps=eps)
        self.b1a = I3DUnit3D(in_channels, c1, batch_norm_eps=eps)
        self.b1b = I3DUnit3D(c1, c2, kernel_size=(3, 3, 3), batch_norm_eps=eps)
        self.b2a = I3DUnit3D(in_channels, c3, batch_norm_eps=eps)
        self.b2b = I3DUnit3D(c3, c4, kernel_size=(3, 3, 3), batch_norm_eps=eps)
        self.b3a = I3DMaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = I3DUnit3D(in_channels, c5, batch_norm_eps=eps)
        self.out_channels = c0 + c2 + c4 + c5

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, T, H, W)`` -> ``(N, out_channels, T, H, W)``."""
        return torch.cat(
            [
                self.b0(hidden),
                self.b1b(self.b1a(hidden)),
                self.b2b(self.b2a(hidden)),
                self.b3b(self.b3a(hidden)),
            ],
            dim=1,
        )


@dataclass
class I3DOutput(BaseOutput):
    """Output of :class:`InceptionI3DModel`.

    Args:
        logits (`torch.Tensor` of shape `(N, num_classes)`, float):
            class logits (pre-softmax), averaged over the output time steps. These are the FVD/KVD features.
    """

    logits: torch.Tensor


class InceptionI3DModel(ModelMixin, ConfigMixin):
    """Inception-I3D video classifier (Kinetics-400), the official FVD/KVD feature network.

    Stem ``Conv3d_1a_7x7`` (stride 2) -> ``MaxPool3d_2a_3x3`` (1x3x3, stride 1x2x2) -> ``Conv3d_2b_1x1`` ->
    ``Conv3d_2c_3x3`` -> ``MaxPool3d_3a_3x3`` (1x3x3, stride 1x2x2) -> ``Mixed_3b``, ``Mixed_3c`` ->
    ``MaxPool3d_4a_3x3`` (3x3x3, stride 2) -> ``Mixed_4b`` ... ``Mixed_4f`` -> ``MaxPool3d_5a_2x2`` (2x2x2,
    stride 2) -> ``Mixed_5b``, ``Mixed_5c`` (1024 channels) -> average pool (2, 7, 7), stride 1 -> dropout ->
    ``logits`` (1x1x1 convolution with bias) -> mean over time. Every convolution except ``logits`` has no
    bias and is followed by BatchNorm and ReLU; convolutions and max pools use TensorFlow "SAME" zero padding
    computed from the input size.

    Args:
        num_classes (`int`, *optional*, defaults to 400):
            outputs of the logits layer (Kinetics-400).
        in_channels (`int`, *optional*, defaults to 3):
            input channels (RGB).
        batch_norm_eps (`float`, *optional*, defaults to 1e-5):
            BatchNorm epsilon.
        dropout (`float`, *optional*, defaults to 0.5):
            drop probability before the logits layer (the reference's ``dropout_keep_prob=0.5`` is passed to
            ``nn.Dropout`` as the drop probability); inactive in eval mode.
        width_divisor (`int`, *optional*, defaults to 1):
            every channel count is divided by this (1 = the official network). Larger values give a small
            stand-in with the same layout and receptive field, for tests and for runs without the real weights.
    """

    @register_to_config
    def __init__(
        self,
        num_classes: int = 400,
        in_channels: int = 3,
        batch_norm_eps: float = 1e-5,
        dropout: float = 0.5,
        width_divisor: int = 1,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if not batch_norm_eps > 0:
            raise ValueError(f"batch_norm_eps must be > 0, got {batch_norm_eps}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if isinstance(width_divisor, bool) or int(width_divisor) != width_divisor or not 1 <= width_divisor <= 16:
            raise ValueError(f"width_divisor must be an integer in [1, 16], got {width_divisor!r}")
        eps = batch_norm_eps

        def width(channels: int) -> int:
            return max(1, channels // int(width_divisor))

        mixed_5c = _INCEPTION_CHANNELS["Mixed_5c"]
        top = sum(width(mixed_5c[i]) for i in (0, 2, 4, 5))
        # ``logits`` first: the reference registers it before the feature layers (state-dict order).
        self.logits = I3DUnit3D(
            top, num_classes, use_batch_norm=False, use_bias=True, activation=False, batch_norm_eps=eps
        )
        self.Conv3d_1a_7x7 = I3DUnit3D(in_channels, width(64), (7, 7, 7), (2, 2, 2), batch_norm_eps=eps)
        self.MaxPool3d_2a_3x3 = I3DMaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = I3DUnit3D(width(64), width(64), batch_norm_eps=eps)
        self.Conv3d_2c_3x3 = I3DUnit3D(width(64), width(192), (3, 3, 3), batch_norm_eps=eps)
        self.MaxPool3d_3a_3x3 = I3DMaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = width(192)
        for name in ("Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f",
                     "Mixed_5b", "Mixed_5c"):
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = I3DMaxPool3dSame((3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = I3DMaxPool3dSame((2, 2, 2), (2, 2, 2))
            block = I3DInceptionBlock(channels, [width(c) for c in _INCEPTION_CHANNELS[name]], eps)
            setattr(self, name, block)
            channels = block.out_channels
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.logits_dropout = nn.Dropout(dropout)
        self._feature_layers = (
            "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
            "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
            "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
        )

    def forward(self, video: torch.Tensor, return_dict: bool = True) -> I3DOutput | tuple[torch.Tensor]:
        """Classify clips.

        Args:
            video (`torch.Tensor` of shape `(N, in_channels, T, 224, 224)`, float):
                RGB clips in [-1, 1] (see ``savg_hub.evaluation.fvd.preprocess_fvd``), ``T >= 9`` frames
                (the official FVD clips have T = 20, which leaves 2 output time steps).
            return_dict (`bool`, *optional*, defaults to `True`):
                return an :class:`I3DOutput` instead of the tuple ``(logits,)``.

        Returns:
            :class:`I3DOutput` with ``logits`` `(N, num_classes)` in the input's dtype.

        Raises:
            ValueError: ``video`` is not a floating ``(N, in_channels, T >= 9, 224, 224)`` tensor.
        """
        in_channels = self.config.in_channels
        if (
            video.ndim != 5
            or video.shape[1] != in_channels
            or video.shape[2] < _MIN_FRAMES
            or tuple(video.shape[3:]) != (_INPUT_SIZE, _INPUT_SIZE)
        ):
            expected = f"(N, {in_channels}, T >= {_MIN_FRAMES}, {_INPUT_SIZE}, {_INPUT_SIZE})"
            raise ValueError(f"video must have shape {expected}, got {tuple(video.shape)}")
        if not video.is_floating_point():
            raise ValueError(f"video must be a floating-point tensor in [-1, 1], got dtype {video.dtype}")
        hidden = video
        for name in self._feature_layers:
            hidden = getattr(self, name)(hidden)
        hidden = self.logits(self.logits_dropout(self.avg_pool(hidden)))  # (N, num_classes, T', 1, 1)
        logits = hidden[:, :, :, 0, 0].mean(dim=2)
        if not return_dict:
            return (logits,)
        return I3DOutput(logits=logits)
