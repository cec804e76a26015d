"""SAVGBench's 64 -> 256 super-resolution U-Net (guided-diffusion's ``SuperResModel``) as a diffusers model.

SAVGBench upsamples every generated 64x64 frame to 256x256 with guided-diffusion's image super-resolution
U-Net (``model_SR_mmdiff_120000.pt``, fine-tuned from the ImageNet 64->256 upsampler). This module is an
independent re-implementation of that network with the same arithmetic:

* the low-resolution frame is bilinearly upsampled (``align_corners=False``) to the sample's size and
  concatenated **after** the noisy sample on the channel axis (``2 * in_channels`` channels in);
* the timestep goes through a sinusoidal embedding (``[cos, sin]``, width ``model_channels``, max period
  10000) and ``Linear -> SiLU -> Linear`` to ``4 * model_channels``;
* the body is a flat list of input blocks (each one skip connection), a middle block (ResBlock, attention,
  ResBlock) and a flat list of output blocks, exactly as guided-diffusion's ``UNetModel``; ResBlocks use
  scale-shift (FiLM) normalisation and do the up/down-sampling themselves (``resblock_updown``);
* attention is guided-diffusion's ``AttentionBlock`` with the fused 1x1 ``qkv`` projection in the legacy
  per-head row order (or the newer q/k/v-first order), ``ch ** -0.25`` on q and k, softmax in float32;
* every GroupNorm (32 groups, eps 1e-5) is computed in float32.

The output has ``out_channels`` channels: for the release (learned sigma) ε (channels 0-2), then the variance
interpolation value v (channels 3-5) of guided-diffusion's ``LEARNED_RANGE`` parameterisation.

Official checkpoints convert with :mod:`savg_hub.convert.sr_unet`. Example::

    from savg_hub.models.sr_unet import SuperResUNetModel

    model = SuperResUNetModel.from_pretrained("savgbench-sr-unet/").eval()
    out = model(x_t, timestep, low_res).sample  # (N, 6, 256, 256): eps, then v
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

GROUP_NORM_GROUPS = 32
"""Groups of every GroupNorm in the network (guided-diffusion's ``normalization``)."""


@dataclass
class SuperResUNetOutput(BaseOutput):
    """Output of :class:`SuperResUNetModel`.

    Args:
        sample (`torch.Tensor` of shape `(N, out_channels, H, W)`, model dtype):
            the network output. With learned sigma (``out_channels == 2 * in_channels``, the release) the
            first ``in_channels`` channels are the predicted noise ε (about unit variance) and the rest the
            variance interpolation value v (about [-1, 1]): ``log σ² = f·log β_t + (1 − f)·log β̃_t`` with
            ``f = (v + 1) / 2``.
    """

    sample: torch.Tensor


def sinusoidal_timestep_embedding(
    timesteps: torch.Tensor, dim: int, max_period: float = 10000.0
) -> torch.Tensor:
    """Sinusoidal timestep embedding in guided-diffusion's layout (cosines first, then sines).

    Args:
        timesteps (`torch.Tensor` of shape `(N,)`): timestep indices, integer or fractional (any real dtype).
        dim (`int`): embedding width; an odd width gets one trailing zero column.
        max_period (`float`, *optional*, defaults to 10000): controls the lowest frequency.

    Returns:
        `torch.Tensor` of shape `(N, dim)`, float32: ``[cos(t·f_0..f_{h-1}), sin(t·f_0..f_{h-1})]`` with
        ``h = dim // 2`` and ``f_i = exp(-ln(max_period) · i / h)``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def _zero_init(module: nn.Module) -> None:
    """Zero every parameter of ``module`` (guided-diffusion's ``zero_module``)."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)


class GroupNorm32(nn.GroupNorm):
    """``nn.GroupNorm`` computed in float32 for any input/parameter dtype; returns the input dtype."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        out = F.group_norm(hidden_states.float(), self.num_groups, weight, bias, self.eps)
        return out.to(hidden_states.dtype)


class TimestepEmbedding(nn.Module):
    """``Linear(model_channels -> 4C) -> SiLU -> Linear(4C -> 4C)`` on the sinusoidal embedding.

    Args:
        in_channels: width of the sinusoidal embedding (``model_channels``).
        embed_channels: output width (``4 * model_channels``).
    """

    def __init__(self, in_channels: int, embed_channels: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, embed_channels)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(embed_channels, embed_channels)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels)`` -> ``(N, embed_channels)``."""
        return self.linear_2(self.act(self.linear_1(embedding)))


class SRResBlock(nn.Module):
    """guided-diffusion ``ResBlock`` (2-D): GN-SiLU-conv, timestep modulation, GN-SiLU-dropout-conv, skip.

    With ``up``/``down`` the block resamples (nearest x2 / 2x2 average pooling) both the residual branch,
    between its SiLU and first convolution, and the skip input. ``conv2`` starts at zero (as upstream).

    Args:
        in_channels: input channels (a multiple of 32).
        out_channels: output channels (a multiple of 32); a 1x1 ``conv_shortcut`` is used when they differ.
        embed_channels: width of the timestep embedding.
        dropout: dropout probability before the second convolution.
        use_scale_shift_norm: modulate as ``GN(h)·(1 + scale) + shift`` (else add the projected embedding
            before the second normalisation).
        up: upsample by 2 (nearest).
        down: downsample by 2 (average pooling).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        embed_channels: int,
        dropout: float,
        use_scale_shift_norm: bool,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        if up and down:
            raise ValueError("a ResBlock cannot both upsample and downsample")
        self.use_scale_shift_norm = use_scale_shift_norm
        self.up = up
        self.down = down
        self.norm1 = GroupNorm32(GROUP_NORM_GROUPS, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        emb_out_channels = 2 * out_channels if use_scale_shift_norm else out_channels
        self.time_emb_proj = nn.Linear(embed_channels, emb_out_channels)
        self.norm2 = GroupNorm32(GROUP_NORM_GROUPS, out_channels)
        self.dropout = nn.Dropout(p=dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )
        self.act = nn.SiLU()
        _zero_init(self.conv2)

    def _resample(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(hidden_states, scale_factor=2, mode="nearest")
        if self.down:
            return F.avg_pool2d(hidden_states, kernel_size=2, stride=2)
        return hidden_states

    def forward(self, hidden_states: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` and ``(N, embed_channels)`` -> ``(N, out_channels, H', W')``.

        ``H' = 2H`` when upsampling, ``H / 2`` when downsampling, else ``H`` (same for W).
        """
        h = self.act(self.norm1(hidden_states))
        h = self.conv1(self._resample(h))
        skip = self._resample(hidden_states)
        emb_out = self.time_emb_proj(self.act(emb)).to(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = torch.chunk(emb_out, 2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + emb_out)
        h = self.conv2(self.dropout(self.act(h)))
        if self.conv_shortcut is not None:
            skip = self.conv_shortcut(skip)
        return skip + h


class SRAttentionBlock(nn.Module):
    """guided-diffusion ``AttentionBlock``: full self-attention over all pixels, residual.

    ``qkv`` is a 1x1 ``Conv1d(C -> 3C)``. In the legacy order (``new_attention_order=False``, the release) its
    output rows are grouped per head: head ``h`` owns rows ``[3·d·h, 3·d·(h+1))`` split into q, k, v of ``d``
    rows each. In the new order the rows are q (all heads), then k, then v. q and k are each scaled by
    ``d ** -0.25``; the softmax runs in float32.

    Args:
        channels: feature channels C (a multiple of 32).
        num_heads: attention heads (must divide C).
        new_attention_order: row order of the fused ``qkv`` projection (see above).
    """

    def __init__(self, channels: int, num_heads: int, new_attention_order: bool = False) -> None:
        super().__init__()
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"num_heads={num_heads} must be >= 1 and divide the channel count {channels}")
        self.num_heads = num_heads
        self.new_attention_order = new_attention_order
        self.norm = GroupNorm32(GROUP_NORM_GROUPS, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, kernel_size=1)
        self.proj_out = nn.Conv1d(channels, channels, kernel_size=1)
        _zero_init(self.proj_out)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        batch, channels, *spatial = hidden_states.shape
        x = hidden_states.reshape(batch, channels, -1)
        qkv = self.qkv(self.norm(x))  # (N, 3C, T)
        length = qkv.shape[-1]
        head_dim = channels // self.num_heads
        scale = 1 / math.sqrt(math.sqrt(head_dim))
        if self.new_attention_order:
            q, k, v = qkv.chunk(3, dim=1)
            q = (q * scale).reshape(batch * self.num_heads, head_dim, length)
            k = (k * scale).reshape(batch * self.num_heads, head_dim, length)
            v = v.reshape(batch * self.num_heads, head_dim, length)
        else:
            q, k, v = qkv.reshape(batch * self.num_heads, 3 * head_dim, length).split(head_dim, dim=1)
            q, k = q * scale, k * scale
        weight = torch.einsum("bct,bcs->bts", q, k)  # (N·heads, T, T)
        weight = torch.softmax(weight.float(), dim=-1).to(weight.dtype)
        attended = torch.einsum("bts,bcs->bct", weight, v).reshape(batch, channels, length)
        return (x + self.proj_out(attended)).reshape(batch, channels, *spatial)


class SRDownsample(nn.Module):
    """Stride-2 3x3 convolution (used between levels when ``resblock_updown`` is False).

    Args:
        channels: input and output channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H/2, W/2)``."""
        return self.conv(hidden_states)


class SRUpsample(nn.Module):
    """Nearest x2 upsampling then a 3x3 convolution (used between levels when ``resblock_updown`` is False).

    Args:
        channels: input and output channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, C, 2H, 2W)``."""
        return self.conv(F.interpolate(hidden_states, scale_factor=2, mode="nearest"))


class SRUNetBlock(nn.ModuleDict):
    """One guided-diffusion ``TimestepEmbedSequential`` entry: named members applied in insertion order.

    Members are ``resnet`` / ``resnet_1`` / ``resnet_2`` (:class:`SRResBlock`), ``attention``
    (:class:`SRAttentionBlock`), ``downsampler`` / ``upsampler`` (a resampling :class:`SRResBlock`, or
    :class:`SRDownsample` / :class:`SRUpsample`). The position of a member in the dict is its index in the
    official ``TimestepEmbedSequential``.
    """

    def forward(self, hidden_states: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` and ``(N, embed_channels)`` -> the last member's output."""
        for module in self.values():
            if isinstance(module, SRResBlock):
                hidden_states = module(hidden_states, emb)
            else:
                hidden_states = module(hidden_states)
        return hidden_states


class SuperResUNetModel(ModelMixin, ConfigMixin):
    """guided-diffusion's super-resolution U-Net (``SuperResModel``), defaults = the SAVGBench release.

    The release, ``model_SR_mmdiff_120000.pt``: 256x256 output from 64x64 frames, 192 base channels,
    channel multipliers (1, 1, 2, 2, 4, 4), 2 ResBlocks per level, attention at downsample factors 8, 16 and
    32 (feature maps of 32², 16², 8²) with 4 heads, scale-shift norm, ResBlock up/down-sampling, learned
    sigma (6 output channels); 566 tensors, 311,027,910 parameters. No class conditioning. As upstream, the
    last convolution of every residual branch and of the output head starts at zero.

    Args:
        image_size (`int`, *optional*, defaults to 256):
            side of the (square) high-resolution sample and output, in pixels; a multiple of
            ``2 ** (len(channel_mult) - 1)``.
        small_size (`int`, *optional*, defaults to 64):
            side of the (square) low-resolution conditioning frame, in pixels (``<= image_size``).
        in_channels (`int`, *optional*, defaults to 3):
            channels of the sample and of the low-resolution frame (the first convolution sees twice as many).
        model_channels (`int`, *optional*, defaults to 192):
            base channel count C; the timestep embedding has ``4 * C`` channels.
        out_channels (`int`, *optional*, defaults to 6):
            output channels (``2 * in_channels`` for learned sigma: ε then v; ``in_channels`` for ε only).
        num_res_blocks (`int`, *optional*, defaults to 2):
            ResBlocks per level on the way down (the way up has one more per level).
        attention_resolutions (`tuple[int, ...]`, *optional*, defaults to `(8, 16, 32)`):
            **downsample factors** (powers of two below ``2 ** len(channel_mult)``) at which ResBlocks are
            followed by self-attention; 8, 16, 32 at 256 px means 32², 16² and 8² feature maps. The middle
            block always has attention.
        channel_mult (`tuple[int, ...]`, *optional*, defaults to `(1, 1, 2, 2, 4, 4)`):
            channel multiplier per level (level ``i`` works at downsample factor ``2 ** i``); every
            ``mult * model_channels`` must be a multiple of 32 (GroupNorm groups).
        dropout (`float`, *optional*, defaults to 0.0):
            dropout probability in the ResBlocks, in [0, 1).
        num_heads (`int`, *optional*, defaults to 4):
            attention heads in the down path and the middle block (when ``num_head_channels == -1``).
        num_head_channels (`int`, *optional*, defaults to -1):
            fixed channels per head (overrides ``num_heads`` and ``num_heads_upsample``); -1 = head counts.
        num_heads_upsample (`int`, *optional*, defaults to -1):
            attention heads in the up path; -1 = ``num_heads``.
        use_scale_shift_norm (`bool`, *optional*, defaults to `True`):
            FiLM-style ``GN(h)·(1 + scale) + shift`` timestep conditioning in the ResBlocks.
        resblock_updown (`bool`, *optional*, defaults to `True`):
            resample between levels with ResBlocks (else a stride-2 conv / nearest-upsample + conv).
        use_new_attention_order (`bool`, *optional*, defaults to `False`):
            row order of the fused ``qkv`` projection: False = legacy per-head order (the release), True =
            q, k, v blocks first.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        image_size: int = 256,
        small_size: int = 64,
        in_channels: int = 3,
        model_channels: int = 192,
        out_channels: int = 6,
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (8, 16, 32),
        channel_mult: Sequence[int] = (1, 1, 2, 2, 4, 4),
        dropout: float = 0.0,
        num_heads: int = 4,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = True,
        resblock_updown: bool = True,
        use_new_attention_order: bool = False,
    ) -> None:
        super().__init__()
        mults = [int(m) for m in channel_mult]
        attention_ds = {int(ds) for ds in attention_resolutions}
        _validate_config(
            image_size, small_size, in_channels, model_channels, out_channels, num_res_blocks, attention_ds,
            mults, dropout, num_heads, num_head_channels, num_heads_upsample,
        )
        heads_up = num_heads if num_heads_upsample == -1 else num_heads_upsample

        def attention(channels: int, heads: int) -> SRAttentionBlock:
            if num_head_channels != -1:
                heads = channels // num_head_channels
            return SRAttentionBlock(channels, heads, new_attention_order=use_new_attention_order)

        def resnet(c_in: int, c_out: int, up: bool = False, down: bool = False) -> SRResBlock:
            return SRResBlock(c_in, c_out, embed_channels, dropout, use_scale_shift_norm, up=up, down=down)

        embed_channels = 4 * model_channels
        self.time_embedding = TimestepEmbedding(model_channels, embed_channels)

        ch = mults[0] * model_channels
        self.conv_in = nn.Conv2d(2 * in_channels, ch, kernel_size=3, padding=1)
        skip_channels = [ch]
        self.down_blocks = nn.ModuleList()
        ds = 1
        for level, mult in enumerate(mults):
            for _ in range(num_res_blocks):
                block = SRUNetBlock({"resnet": resnet(ch, mult * model_channels)})
                ch = mult * model_channels
                if ds in attention_ds:
                    block["attention"] = attention(ch, num_heads)
                self.down_blocks.append(block)
                skip_channels.append(ch)
            if level != len(mults) - 1:
                sampler = resnet(ch, ch, down=True) if resblock_updown else SRDownsample(ch)
                self.down_blocks.append(SRUNetBlock({"downsampler": sampler}))
                skip_channels.append(ch)
                ds *= 2

        self.mid_block = SRUNetBlock(
            {"resnet_1": resnet(ch, ch), "attention": attention(ch, num_heads), "resnet_2": resnet(ch, ch)}
        )

        self.up_blocks = nn.ModuleList()
        for level in reversed(range(len(mults))):
            for index in range(num_res_blocks + 1):
                out_ch = mults[level] * model_channels
                block = SRUNetBlock({"resnet": resnet(ch + skip_channels.pop(), out_ch)})
                ch = out_ch
                if ds in attention_ds:
                    block["attention"] = attention(ch, heads_up)
                if level and index == num_res_blocks:
                    block["upsampler"] = resnet(ch, ch, up=True) if resblock_updown else SRUpsample(ch)
                    ds //= 2
                self.up_blocks.append(block)

        self.norm_out = GroupNorm32(GROUP_NORM_GROUPS, ch)
        self.act_out = nn.SiLU()
        self.conv_out = nn.Conv2d(ch, out_channels, kernel_size=3, padding=1)
        _zero_init(self.conv_out)
        self.gradient_checkpointing = False

    def _check_inputs(
        self, sample: torch.Tensor, timestep: torch.Tensor | float | int, low_res: torch.Tensor
    ) -> torch.Tensor:
        """Validate shapes and dtypes; return the timesteps as a ``(N,)`` tensor on the sample's device."""
        config = self.config
        size, small, channels = config.image_size, config.small_size, config.in_channels
        if not isinstance(sample, torch.Tensor) or not isinstance(low_res, torch.Tensor):
            raise ValueError(
                "sample and low_res must be tensors, got "
                f"{type(sample).__name__} and {type(low_res).__name__}"
            )
        if sample.ndim != 4 or tuple(sample.shape[1:]) != (channels, size, size):
            raise ValueError(
                f"sample must have shape (N, {channels}, {size}, {size}), got {tuple(sample.shape)}"
            )
        batch = sample.shape[0]
        if low_res.ndim != 4 or tuple(low_res.shape) != (batch, channels, small, small):
            raise ValueError(
                f"low_res must have shape ({batch}, {channels}, {small}, {small}) to match sample "
                f"{tuple(sample.shape)}, got {tuple(low_res.shape)}"
            )
        for name, tensor in (("sample", sample), ("low_res", low_res)):
            if not tensor.is_floating_point():
                raise ValueError(
                    f"{name} must be a floating-point tensor (scaled to [-1, 1]), got {tensor.dtype}"
                )
        if not isinstance(timestep, torch.Tensor):
            if isinstance(timestep, bool) or not isinstance(timestep, (int, float)):
                raise ValueError(f"timestep must be a number or a tensor, got {type(timestep).__name__}")
            timestep = torch.tensor([timestep], device=sample.device)
        if timestep.is_complex() or timestep.dtype == torch.bool:
            raise ValueError(f"timestep must be real-valued, got dtype {timestep.dtype}")
        if timestep.ndim == 0:
            timestep = timestep[None]
        if timestep.ndim != 1 or timestep.shape[0] not in (1, batch):
            raise ValueError(
                f"timestep must be a scalar or have shape ({batch},), got {tuple(timestep.shape)}"
            )
        return timestep.to(sample.device).expand(batch)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        low_res: torch.Tensor,
        return_dict: bool = True,
    ) -> SuperResUNetOutput | tuple[torch.Tensor]:
        """Predict the noise (and variance value) of a noisy high-resolution frame from its low-res frame.

        Args:
            sample (`torch.Tensor` of shape `(N, in_channels, image_size, image_size)`, float):
                the noisy sample x_t (x_0 scaled to [-1, 1], plus Gaussian noise).
            timestep (`torch.Tensor` of shape `(N,)` or a scalar, integer or float):
                diffusion step indices (release: 0..1099 of a 1100-step grid; trained on 0..999); a scalar or
                a one-element tensor is used for the whole batch.
            low_res (`torch.Tensor` of shape `(N, in_channels, small_size, small_size)`, float):
                the low-resolution frame in [-1, 1] (RGB); upsampled bilinearly (``align_corners=False``)
                inside.
            return_dict (`bool`, *optional*, defaults to `True`):
                return a :class:`SuperResUNetOutput` instead of a one-element tuple.

        Returns:
            :class:`SuperResUNetOutput` (or ``(sample,)``) with ``sample`` of shape
            `(N, out_channels, image_size, image_size)` in the model's dtype: ε, then v with learned sigma.

        Raises:
            ValueError: a shape, dtype or timestep that does not fit the configuration (named in the message).
        """
        timesteps = self._check_inputs(sample, timestep, low_res)
        dtype = self.conv_in.weight.dtype
        upsampled = F.interpolate(low_res, size=sample.shape[-2:], mode="bilinear", align_corners=False)
        hidden = torch.cat([sample, upsampled], dim=1).to(dtype)

        t_emb = sinusoidal_timestep_embedding(timesteps, self.config.model_channels)
        emb = self.time_embedding(t_emb.to(self.time_embedding.linear_1.weight.dtype))

        checkpointing = torch.is_grad_enabled() and self.gradient_checkpointing

        def run(block: SRUNetBlock, hidden_states: torch.Tensor) -> torch.Tensor:
            if checkpointing:
                return self._gradient_checkpointing_func(block, hidden_states, emb)
            return block(hidden_states, emb)

        hidden = self.conv_in(hidden)
        skips = [hidden]
        for block in self.down_blocks:
            hidden = run(block, hidden)
            skips.append(hidden)
        hidden = run(self.mid_block, hidden)
        for block in self.up_blocks:
            hidden = run(block, torch.cat([hidden, skips.pop()], dim=1))
        out = self.conv_out(self.act_out(self.norm_out(hidden)))
        if not return_dict:
            return (out,)
        return SuperResUNetOutput(sample=out)


def _validate_config(
    image_size: int,
    small_size: int,
    in_channels: int,
    model_channels: int,
    out_channels: int,
    num_res_blocks: int,
    attention_ds: set[int],
    mults: list[int],
    dropout: float,
    num_heads: int,
    num_head_channels: int,
    num_heads_upsample: int,
) -> None:
    """Raise ``ValueError`` naming the first configuration value the network cannot be built with."""
    for name, value in (("in_channels", in_channels), ("model_channels", model_channels),
                        ("out_channels", out_channels), ("num_res_blocks", num_res_blocks)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not mults or any(m < 1 for m in mults):
        raise ValueError(f"channel_mult must be a non-empty list of positive ints, got {mults}")
    bad_widths = [m * model_channels for m in mults if (m * model_channels) % GROUP_NORM_GROUPS]
    if bad_widths:
        raise ValueError(
            f"every channel_mult * model_channels must be a multiple of {GROUP_NORM_GROUPS} (GroupNorm "
            f"groups); model_channels={model_channels}, channel_mult={mults} gives {bad_widths}"
        )
    factor = 2 ** (len(mults) - 1)
    if image_size < 1 or image_size % factor:
        raise ValueError(
            f"image_size must be a positive multiple of {factor} for {len(mults)} levels, got {image_size}"
        )
    if not 1 <= small_size <= image_size:
        raise ValueError(f"small_size must be in [1, image_size={image_size}], got {small_size}")
    valid_ds = {2**level for level in range(len(mults))}
    if not attention_ds <= valid_ds:
        raise ValueError(
            f"attention_resolutions are downsample factors and must be among {sorted(valid_ds)}, "
            f"got {sorted(attention_ds)}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    widths = [m * model_channels for level, m in enumerate(mults) if 2**level in attention_ds] + [
        mults[-1] * model_channels
    ]
    if num_head_channels != -1:
        if num_head_channels < 1 or any(w % num_head_channels for w in widths):
            raise ValueError(
                "num_head_channels must be -1 or a positive divisor of every attention width "
                f"{sorted(set(widths))}, got {num_head_channels}"
            )
        return
    for name, heads in (("num_heads", num_heads), ("num_heads_upsample", num_heads_upsample)):
        if name == "num_heads_upsample" and heads == -1:
            continue
        if heads < 1 or any(w % heads for w in widths):
            raise ValueError(
                f"{name} must be a positive divisor of every attention width {sorted(set(widths))}, "
                f"got {heads}"
            )
