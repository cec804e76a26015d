"""The stereo SELD network of SAVGBench (official ``CNN_MHSA_FC`` with ``net_small.json``, 2 classes).

Sound event localisation and detection on stereo amplitude + inter-channel phase-difference STFT features:
for every 10-ms STFT frame it predicts, per class, an activity logit (SED) and a horizontal position (DOA,
in units of the 256-px frame width, no activation). Used by the Spatial AV-Align metric
(``savg_hub.evaluation.seld``).

Two parallel CNN branches (SED sees the two amplitude channels, DOA sees all three), linked by cross-stitch
units, each followed by a post-norm Transformer encoder and a linear head. The official checkpoint converts
with ``savg_hub.convert.seld``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn


@dataclass
class StereoSELDOutput(BaseOutput):
    """Output of :class:`StereoSELDModel`.

    Args:
        sed_logits (`torch.Tensor` of shape `(N, 1, class_num, T)`):
            sound-event activity logits (apply a sigmoid for probabilities), one track.
        doa (`torch.Tensor` of shape `(N, 1, class_num, T)`):
            raw horizontal position per class, in units of the frame width (multiply by 256 for pixels).
    """

    sed_logits: torch.Tensor
    doa: torch.Tensor


class SELDConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias) each followed by BatchNorm and ReLU, then average pooling.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        pool_size: ``(time, frequency)`` kernel (= stride) of the average pooling.
        eps: BatchNorm epsilon.
    """

    def __init__(self, in_channels: int, out_channels: int, pool_size: tuple[int, int], eps: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels, eps=eps)
        self.pool = nn.AvgPool2d(kernel_size=pool_size)
        self.act = nn.ReLU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, T, F)`` -> ``(N, C_out, T // pool_t, F // pool_f)``."""
        hidden_states = self.act(self.norm1(self.conv1(hidden_states)))
        hidden_states = self.act(self.norm2(self.conv2(hidden_states)))
        return self.pool(hidden_states)


class CrossStitch(nn.Module):
    """Per-channel 2x2 mixing of the SED and DOA feature maps, in the official (asymmetric) order.

    ``sed' = w[c,0,0] sed + w[c,0,1] doa``, then ``doa' = w[c,1,0] sed' + w[c,1,1] doa``: the DOA update reads
    the already-updated SED map, as the official network does.

    Args:
        channels: number of channels ``C`` of both maps; the parameter ``weight`` has shape ``(C, 2, 2)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, 2, 2))
        with torch.no_grad():
            self.weight.copy_(torch.eye(2).expand(channels, 2, 2))

    def forward(self, sed: torch.Tensor, doa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix two ``(N, C, T, F)`` maps; returns the new ``(sed, doa)``."""
        w = self.weight[None, :, :, :, None, None]  # (1, C, 2, 2, 1, 1)
        sed = w[:, :, 0, 0] * sed + w[:, :, 0, 1] * doa
        doa = w[:, :, 1, 0] * sed + w[:, :, 1, 1] * doa
        return sed, doa


class StereoSELDModel(ModelMixin, ConfigMixin):
    """Stereo SELD network (CNN + multi-head self-attention + FC), the SAVGBench evaluator.

    Input features ``(N, in_channels, F, T)`` (F = 257 frequency bins, T = 128 frames of 10 ms for the
    official windows): channels 0..``sed_in_channels``-1 are STFT magnitudes (left, right), the rest the
    wrapped inter-channel phase difference. The network transposes to ``(N, C, T, F)``; each branch runs
    :class:`SELDConvBlock` stages (cross-stitch units between consecutive stages), averages over frequency,
    applies a sequence-first post-norm ``nn.TransformerEncoder`` (ReLU, no positional encoding, no final norm)
    and a linear head; every output step is repeated to restore the input frame rate.

    Args:
        class_num (`int`, *optional*, defaults to 2):
            number of sound classes (SAVGBench: 0 = speech, 1 = musical instrument).
        in_channels (`int`, *optional*, defaults to 3):
            feature channels seen by the DOA branch (all of them).
        sed_in_channels (`int`, *optional*, defaults to 2):
            leading feature channels seen by the SED branch (the two magnitudes).
        block_out_channels (`tuple[int, ...]`, *optional*, defaults to `(64, 128, 256, 512)`):
            output channels of the convolution stages; the last one is the Transformer width.
        pool_sizes (`tuple[tuple[int, int], ...]`, *optional*,
            defaults to `((2, 2), (2, 2), (1, 2), (1, 2))`):
            ``(time, frequency)`` average-pooling kernel after each stage; the product of the time factors
            (4) is how often each output step is repeated.
        num_layers (`int`, *optional*, defaults to 2):
            Transformer encoder layers per branch.
        num_attention_heads (`int`, *optional*, defaults to 8):
            attention heads per layer (must divide the width).
        feedforward_dim (`int`, *optional*, defaults to 1024):
            hidden size of each layer's feed-forward block.
        dropout (`float`, *optional*, defaults to 0.2):
            Transformer dropout (inactive in eval mode).
        batch_norm_eps (`float`, *optional*, defaults to 1e-5):
            BatchNorm epsilon.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            LayerNorm epsilon of the Transformer layers.
    """

    @register_to_config
    def __init__(
        self,
        class_num: int = 2,
        in_channels: int = 3,
        sed_in_channels: int = 2,
        block_out_channels: Sequence[int] = (64, 128, 256, 512),
        pool_sizes: Sequence[Sequence[int]] = ((2, 2), (2, 2), (1, 2), (1, 2)),
        num_layers: int = 2,
        num_attention_heads: int = 8,
        feedforward_dim: int = 1024,
        dropout: float = 0.2,
        batch_norm_eps: float = 1e-5,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in block_out_channels]
        pools = [tuple(int(p) for p in pool) for pool in pool_sizes]
        if class_num < 1:
            raise ValueError(f"class_num must be >= 1, got {class_num}")
        if not 1 <= sed_in_channels <= in_channels:
            raise ValueError(
                f"sed_in_channels must be in [1, in_channels={in_channels}], got {sed_in_channels}"
            )
        if not channels or any(c < 1 for c in channels):
            raise ValueError(
                f"block_out_channels must be a non-empty list of positive ints, got {block_out_channels}"
            )
        if len(pools) != len(channels) or any(len(p) != 2 or min(p) < 1 for p in pools):
            raise ValueError(
                f"pool_sizes must hold one (time, frequency) pair of positive ints per stage "
                f"({len(channels)} stages), got {pool_sizes}"
            )
        width = channels[-1]
        if num_attention_heads < 1 or width % num_attention_heads:
            raise ValueError(f"num_attention_heads={num_attention_heads} must divide the width {width}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")

        def blocks(first: int) -> nn.ModuleList:
            ins = [first, *channels[:-1]]
            return nn.ModuleList(
                SELDConvBlock(c_in, c_out, pool, batch_norm_eps)
                for c_in, c_out, pool in zip(ins, channels, pools)
            )

        def transformer() -> nn.TransformerEncoder:
            layer = nn.TransformerEncoderLayer(
                d_model=width,
                nhead=num_attention_heads,
                dim_feedforward=feedforward_dim,
                dropout=dropout,
                activation="relu",
                layer_norm_eps=layer_norm_eps,
                batch_first=False,
                norm_first=False,
            )
            return nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)

        self.sed_blocks = blocks(sed_in_channels)
        self.doa_blocks = blocks(in_channels)
        self.cross_stitch = nn.ModuleList(CrossStitch(c) for c in channels[:-1])
        self.sed_transformer = transformer()
        self.doa_transformer = transformer()
        self.sed_head = nn.Linear(width, class_num)
        self.doa_head = nn.Linear(width, class_num)
        self.time_upsample = math.prod(p[0] for p in pools)

    def forward(
        self, features: torch.Tensor, return_dict: bool = True
    ) -> StereoSELDOutput | tuple[torch.Tensor, torch.Tensor]:
        """Run the network.

        Args:
            features (`torch.Tensor` of shape `(N, in_channels, F, T)`, float):
                STFT features (magnitudes, then phase difference in [0, 2*pi)), frequency before time.
            return_dict (`bool`, *optional*, defaults to `True`):
                return a :class:`StereoSELDOutput` instead of a tuple ``(sed_logits, doa)``.

        Returns:
            :class:`StereoSELDOutput` with ``sed_logits`` and ``doa`` of shape ``(N, 1, class_num, T')`` where
            ``T' = (T // time_upsample) * time_upsample`` (``T`` itself for T = 128).
        """
        in_channels = self.config.in_channels
        if features.ndim != 4 or features.shape[1] != in_channels:
            raise ValueError(
                f"features must have shape (N, {in_channels}, F, T), got {tuple(features.shape)}"
            )
        hidden = features.transpose(2, 3)  # (N, C, T, F)
        sed = hidden[:, : self.config.sed_in_channels]
        doa = hidden
        for index, (sed_block, doa_block) in enumerate(zip(self.sed_blocks, self.doa_blocks)):
            sed = sed_block(sed)
            doa = doa_block(doa)
            if index < len(self.cross_stitch):
                sed, doa = self.cross_stitch[index](sed, doa)
        # mean over frequency, then sequence-first (T, N, C) for the Transformer
        sed = self.sed_transformer(sed.mean(dim=3).permute(2, 0, 1))
        doa = self.doa_transformer(doa.mean(dim=3).permute(2, 0, 1))
        sed = self.sed_head(sed)  # (T, N, class_num)
        doa = self.doa_head(doa)
        sed = sed.permute(1, 2, 0).repeat_interleave(self.time_upsample, dim=2).unsqueeze(1)
        doa = doa.permute(1, 2, 0).repeat_interleave(self.time_upsample, dim=2).unsqueeze(1)
        if not return_dict:
            return (sed, doa)
        return StereoSELDOutput(sed_logits=sed, doa=doa)
