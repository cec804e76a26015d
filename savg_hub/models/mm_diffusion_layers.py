"""Layers of the Stereo MM-Diffusion coupled audio-video U-Net (:mod:`savg_hub.models.mm_diffusion_unet`).

Shared building blocks, kept apart from the model so that a video-only variant can reuse them:

* :class:`GroupNorm32` and :func:`video_group_norm`: GroupNorm computed in float32; video statistics are taken
  jointly over all frames (channels moved to dim 1 *unconditionally*, see :func:`video_group_norm`);
* :class:`PseudoConv3d`: the "2d+1d" video convolution (per-frame Conv2d, then a Conv1d over frames);
* :class:`SelfAttention1d`: multi-head self-attention over the last axis of ``(N, C, T)`` tokens;
* :class:`CoupledResnetBlock`: one residual block acting on both modalities, sharing the time modulation;
* :class:`CrossModalAttention`: the random-shift windowed audio <-> video attention (RS-MMA) and
  :func:`cross_attention_key_indices`, its exact key-index construction.

Tensor layouts (as in the reference implementation): video ``(B, F, C, H, W)`` (frames before channels), audio
``(B, C, L)``. Everything is written for this project from the published description of MM-Diffusion
(Ruan et al., CVPR 2023) and SAVGBench; module names are our own, see :mod:`savg_hub.convert.mm_diffusion` for
the mapping from the official checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_RESAMPLE_MODES = (None, "down", "up")


class GroupNorm32(nn.GroupNorm):
    """``nn.GroupNorm`` evaluated in float32 and cast back to the input dtype (as the reference does).

    Input ``(N, C, *)``; statistics per sample and group over ``C / num_groups`` channels and all trailing
    axes.
    """

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(N, C, *)`` any float dtype -> same shape and dtype."""
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        out = F.group_norm(hidden_states.float(), self.num_groups, weight, bias, self.eps)
        return out.to(hidden_states.dtype)


def video_group_norm(norm: GroupNorm32, video: torch.Tensor) -> torch.Tensor:
    """Apply ``norm`` to a video ``(B, F, C, H, W)``, channels moved to dim 1 for the statistics.

    Statistics are taken jointly over ``C / groups`` channels x F x H x W. The reference wrapper only moves
    the axes when ``F != C``, so with ``F == C`` it would silently normalise over frames instead of channels;
    here the transpose is unconditional, which is what the reference intends (and identical to it whenever
    ``F != C``, e.g. in every released configuration).
    """
    return norm(video.transpose(1, 2)).transpose(1, 2)


def video_pointwise_conv(conv: nn.Conv3d, video: torch.Tensor) -> torch.Tensor:
    """A ``Conv3d`` over ``(F, H, W)`` on a video ``(B, F, C_in, H, W)`` -> ``(B, F, C_out, H, W)``."""
    return conv(video.transpose(1, 2)).transpose(1, 2)


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Softmax attention ``softmax(q k^T / sqrt(d)) v`` over the last two axes, as the reference computes it.

    q and k are each scaled by ``d^(-1/4)`` before the product (steadier in half precision) and the softmax
    runs in float32.

    Args:
        query: ``(..., T_q, d)``.
        key: ``(..., T_k, d)``.
        value: ``(..., T_k, d)``.

    Returns:
        ``(..., T_q, d)`` in the input dtype.
    """
    scale = query.shape[-1] ** -0.25
    weight = torch.matmul(query * scale, (key * scale).transpose(-1, -2))
    weight = torch.softmax(weight.float(), dim=-1).to(weight.dtype)
    return torch.matmul(weight, value)


class PseudoConv3d(nn.Module):
    """The "2d+1d" video convolution: a per-frame ``Conv2d`` then a ``Conv1d`` over frames, no activation
    between.

    Both use stride 1 and zero 'same' padding. Parameters: ``spatial`` (``Conv2d(in, out, k)``) and
    ``temporal`` (``Conv1d(out, out, k)``).

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        kernel_size: kernel size of both convolutions (odd).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(in_channels, out_channels, kernel_size, padding="same")
        self.temporal = nn.Conv1d(out_channels, out_channels, kernel_size, padding="same")

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, F, C_in, H, W)`` -> ``(B, F, C_out, H, W)``."""
        b, f, c, h, w = video.shape
        hidden = self.spatial(video.reshape(b * f, c, h, w))
        c_out = hidden.shape[1]
        # every pixel's time series becomes one batch entry: (B*H*W, C_out, F)
        hidden = hidden.view(b, f, c_out, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c_out, f)
        hidden = self.temporal(hidden)
        return hidden.view(b, h, w, c_out, f).permute(0, 4, 3, 1, 2).contiguous()


class SelfAttention1d(nn.Module):
    """Residual multi-head self-attention over the token axis of ``(N, C, T)``.

    ``out = x + proj_out(MHA(qkv(GN(x))))``.

    ``qkv`` is a 1x1 ``Conv1d(C, 3C)`` whose output rows are ``[all q | all k | all v]``; head ``i`` of q is
    rows ``i*d .. (i+1)*d`` with ``d = C / num_heads``. ``proj_out`` is zero-initialised.

    Args:
        channels: token width ``C`` (divisible by ``num_heads`` and ``norm_num_groups``).
        num_heads: attention heads.
        norm_num_groups: GroupNorm groups.
    """

    def __init__(self, channels: int, num_heads: int, norm_num_groups: int = 32) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention channels {channels} are not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.norm = GroupNorm32(norm_num_groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(N, C, T)`` -> ``(N, C, T)``; the norm's statistics are per entry of N."""
        n, c, t = hidden_states.shape
        head_dim = c // self.num_heads
        qkv = self.qkv(self.norm(hidden_states))
        q, k, v = (x.reshape(n * self.num_heads, head_dim, t).transpose(1, 2) for x in qkv.chunk(3, dim=1))
        out = attention(q, k, v).transpose(1, 2).reshape(n, c, t)
        return hidden_states + self.proj_out(out)


class CoupledResnetBlock(nn.Module):
    """Residual block over both modalities with a shared timestep modulation (MM-Diffusion's ``ResBlock``).

    Order of operations, per modality:

    1. ``h = conv1(SiLU(norm1(x)))``: video ``PseudoConv3d(k=3)``, audio ``Conv1d(k=3)`` with
       ``audio_dilation``;
    2. if ``resample``: resample ``h`` *and* the shortcut input ``x`` (video: 2x on H and W only, average
       pooling down / nearest up; audio: 4x, average pooling down / nearest up);
    3. ``(scale, shift) = time_emb_proj(SiLU(temb))``, shared by both modalities;
       ``h = norm2(h) * (1 + scale) + shift`` (or ``norm2(h + emb)`` without ``use_scale_shift_norm``), then
       SiLU, dropout and the zero-initialised 1x1 ``conv2`` (``Conv3d`` 1x1x1 for video, ``Conv1d`` k=1 for
       audio);
    4. ``out = shortcut(x) + h`` (``*_conv_shortcut`` 1x1 convolutions when the channel count changes);
    5. video: spatial self-attention (tokens = H*W pixels of each frame) then temporal self-attention (tokens
       = the F frames of each pixel), if ``video_attention``; audio self-attention over L, if
       ``audio_attention``.

    Args:
        in_channels: input channels of both modalities.
        out_channels: output channels of both modalities.
        temb_channels: width of the timestep embedding.
        audio_dilation: dilation of the audio input convolution.
        dropout: dropout probability before ``conv2``.
        use_scale_shift_norm: FiLM-style ``(1 + scale), shift`` modulation instead of an additive embedding.
        resample: ``None``, ``"down"`` or ``"up"``.
        video_attention: add spatial and temporal video self-attention.
        audio_attention: add audio self-attention.
        num_heads: heads of those self-attentions.
        norm_num_groups: GroupNorm groups.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        *,
        audio_dilation: int = 1,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = True,
        resample: str | None = None,
        video_attention: bool = False,
        audio_attention: bool = False,
        num_heads: int = 4,
        norm_num_groups: int = 32,
    ) -> None:
        super().__init__()
        if resample not in _RESAMPLE_MODES:
            raise ValueError(f"resample must be one of {_RESAMPLE_MODES}, got {resample!r}")
        self.resample = resample
        self.use_scale_shift_norm = use_scale_shift_norm
        self.video_norm1 = GroupNorm32(norm_num_groups, in_channels)
        self.video_conv1 = PseudoConv3d(in_channels, out_channels, 3)
        self.audio_norm1 = GroupNorm32(norm_num_groups, in_channels)
        self.audio_conv1 = nn.Conv1d(in_channels, out_channels, 3, padding="same", dilation=audio_dilation)
        self.time_emb_proj = nn.Linear(
            temb_channels, 2 * out_channels if use_scale_shift_norm else out_channels
        )
        self.video_norm2 = GroupNorm32(norm_num_groups, out_channels)
        self.video_conv2 = nn.Conv3d(out_channels, out_channels, 1)
        self.audio_norm2 = GroupNorm32(norm_num_groups, out_channels)
        self.audio_conv2 = nn.Conv1d(out_channels, out_channels, 1)
        for conv in (self.video_conv2, self.audio_conv2):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.dropout = nn.Dropout(dropout)
        self.nonlinearity = nn.SiLU()
        if in_channels != out_channels:
            self.video_conv_shortcut: nn.Conv3d | None = nn.Conv3d(in_channels, out_channels, 1)
            self.audio_conv_shortcut: nn.Conv1d | None = nn.Conv1d(in_channels, out_channels, 1)
        else:
            self.video_conv_shortcut = None
            self.audio_conv_shortcut = None
        if video_attention:
            self.spatial_attention: SelfAttention1d | None = SelfAttention1d(
                out_channels, num_heads, norm_num_groups
            )
            self.temporal_attention: SelfAttention1d | None = SelfAttention1d(
                out_channels, num_heads, norm_num_groups
            )
        else:
            self.spatial_attention = None
            self.temporal_attention = None
        self.audio_attention = (
            SelfAttention1d(out_channels, num_heads, norm_num_groups) if audio_attention else None
        )

    def _resample_video(self, video: torch.Tensor) -> torch.Tensor:
        b, f, c, h, w = video.shape  # H and W only, frames are never resampled
        frames = video.reshape(b * f, c, h, w)
        if self.resample == "down":
            frames = F.avg_pool2d(frames, kernel_size=2, stride=2)
        else:
            frames = F.interpolate(frames, scale_factor=2, mode="nearest")
        return frames.view(b, f, c, frames.shape[-2], frames.shape[-1])

    def _resample_audio(self, audio: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool1d(audio, kernel_size=4, stride=4)
        return F.interpolate(audio, scale_factor=4, mode="nearest")

    def forward(
        self, video: torch.Tensor, audio: torch.Tensor, temb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Video ``(B, F, C_in, H, W)``, audio ``(B, C_in, L)``, temb ``(B, temb_channels)`` -> video
        ``(B, F, C_out, H', W')``, audio ``(B, C_out, L')`` (``H' = H/2, L' = L/4`` down; ``2H, 4L`` up)."""
        video_h = self.video_conv1(self.nonlinearity(video_group_norm(self.video_norm1, video)))
        audio_h = self.audio_conv1(self.nonlinearity(self.audio_norm1(audio)))
        if self.resample is not None:
            video_h, video = self._resample_video(video_h), self._resample_video(video)
            audio_h, audio = self._resample_audio(audio_h), self._resample_audio(audio)

        emb = self.time_emb_proj(self.nonlinearity(temb)).to(video_h.dtype)
        if self.use_scale_shift_norm:
            scale, shift = emb.chunk(2, dim=1)
            video_h = video_group_norm(self.video_norm2, video_h) * (1 + scale[:, None, :, None, None])
            video_h = video_h + shift[:, None, :, None, None]
            audio_h = self.audio_norm2(audio_h) * (1 + scale[:, :, None]) + shift[:, :, None]
        else:
            video_h = video_group_norm(self.video_norm2, video_h + emb[:, None, :, None, None])
            audio_h = self.audio_norm2(audio_h + emb[:, :, None])
        video_h = video_pointwise_conv(self.video_conv2, self.dropout(self.nonlinearity(video_h)))
        audio_h = self.audio_conv2(self.dropout(self.nonlinearity(audio_h)))

        if self.video_conv_shortcut is not None:
            video = video_pointwise_conv(self.video_conv_shortcut, video)
            audio = self.audio_conv_shortcut(audio)
        video = video + video_h
        audio = audio + audio_h

        if self.spatial_attention is not None:
            b, f, c, h, w = video.shape
            tokens = video.reshape(b * f, c, h * w)  # pixels of each frame
            tokens = self.spatial_attention(tokens)
            tokens = (
                tokens.view(b, f, c, h * w).permute(0, 3, 2, 1).reshape(b * h * w, c, f)
            )  # frames per pixel
            tokens = self.temporal_attention(tokens)
            video = tokens.view(b, h, w, c, f).permute(0, 4, 3, 1, 2).contiguous()
        if self.audio_attention is not None:
            audio = self.audio_attention(audio)
        return video, audio


def cross_attention_key_indices(
    num_frames: int,
    tokens_per_frame: int,
    audio_length: int,
    window: int,
    shift: int,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key positions of the windowed cross-modal attention, one row per frame (the reference construction).

    With ``apf = audio_length // num_frames`` audio tokens per frame and ``S = tokens_per_frame``:

    * video frame ``i`` attends to the audio tokens ``((i + shift) * apf + j) mod audio_length``,
      ``j = 0 .. window*apf - 1`` (wrapping modulo the full audio length, remainder tokens included);
    * audio segment ``i`` attends to the video tokens ``((i + shift) * S + j) mod (num_frames * S)``,
      ``j = 0 .. window*S - 1`` (``window`` whole frames, cyclic).

    Returns:
        ``(audio_keys, video_keys)``: int64 tensors of shapes ``(F, window*apf)`` (indices into the audio
        tokens) and ``(F, window*S)`` (indices into the ``f*S + y*W + x`` video tokens).

    Raises:
        ValueError: fewer audio tokens than frames (``apf == 0``) or a non-positive window.
    """
    apf = audio_length // num_frames
    if apf < 1:
        raise ValueError(
            f"audio length {audio_length} gives no audio token per frame for {num_frames} frames"
        )
    if window < 1:
        raise ValueError(f"cross-attention window must be >= 1 frame, got {window}")
    frames = torch.arange(num_frames, device=device)[:, None] + shift
    audio_keys = (frames * apf + torch.arange(window * apf, device=device)[None]) % audio_length
    video_tokens = num_frames * tokens_per_frame
    video_keys = (
        frames * tokens_per_frame + torch.arange(window * tokens_per_frame, device=device)[None]
    ) % video_tokens
    return audio_keys, video_keys


class CrossModalAttention(nn.Module):
    """Random-shift windowed multimodal attention (RS-MMA): video queries attend to audio keys and vice versa.

    Tokens: the ``F*H*W`` video positions (``(B, C, F*H*W)``, order f, y, x) and the ``L`` audio positions.
    Each modality has its own GroupNorm (``video_norm``/``audio_norm``, statistics over all its tokens) and
    1x1 ``qkv`` ``Conv1d(C, 3C)`` (rows ``[q | k | v]``); heads = ``num_heads``, head width ``d = C /
    num_heads``. For frame ``i`` (see :func:`cross_attention_key_indices` for the key sets):

    * the H*W video queries of frame ``i`` attend to ``window * apf`` audio tokens starting at segment
      ``i+shift``;
    * the audio queries ``[i*apf, (i+1)*apf)`` attend to ``window`` video frames starting at frame
      ``i+shift``; the last frame's queries run to the end of the audio, so it also takes the ``L mod F``
      remainder tokens.

    Outputs are added residually after zero-initialised projections: ``video_proj_out`` (``Conv3d`` 1x1x1) and
    ``audio_proj_out`` (``Conv1d`` k=1). The softmax runs in float32 (the reference keeps the activation dtype
    here; the two differ only in half precision).

    Args:
        channels: width ``C`` of both modalities.
        num_heads: attention heads (``C / num_head_channels`` in the model).
        window: window length in frames.
        norm_num_groups: GroupNorm groups.
    """

    def __init__(self, channels: int, num_heads: int, window: int, norm_num_groups: int = 32) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"cross-attention channels {channels} are not divisible by {num_heads} heads")
        if window < 1:
            raise ValueError(f"cross-attention window must be >= 1 frame, got {window}")
        self.num_heads = num_heads
        self.window = window
        self.video_norm = GroupNorm32(norm_num_groups, channels)
        self.audio_norm = GroupNorm32(norm_num_groups, channels)
        self.video_qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.audio_qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.video_proj_out = nn.Conv3d(channels, channels, 1)
        self.audio_proj_out = nn.Conv1d(channels, channels, 1)
        for conv in (self.video_proj_out, self.audio_proj_out):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(
        self, video: torch.Tensor, audio: torch.Tensor, shift: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Video ``(B, F, C, H, W)``, audio ``(B, C, L)``, window shift in frames -> same shapes.

        ``shift`` is any integer (taken cyclically); the model draws it in ``[0, F - window]``.
        """
        b, f, c, h, w = video.shape
        length = audio.shape[-1]
        s = h * w
        heads = self.num_heads
        head_dim = c // heads
        apf = length // f
        audio_keys, video_keys = cross_attention_key_indices(f, s, length, self.window, shift, video.device)

        video_tokens = video.transpose(1, 2).reshape(b, c, f * s)
        vq, vk, vv = self.video_qkv(self.video_norm(video_tokens)).chunk(3, dim=1)
        aq, ak, av = self.audio_qkv(self.audio_norm(audio)).chunk(3, dim=1)

        def split_heads(x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B*heads, d, T)
            return x.reshape(b * heads, head_dim, x.shape[-1])

        def gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # -> (B*heads, F, K, d)
            return split_heads(x)[:, :, index].permute(0, 2, 3, 1)

        # video queries, frame by frame: (B*heads, F, S, d) against (B*heads, F, window*apf, d)
        query = split_heads(vq).view(b * heads, head_dim, f, s).permute(0, 2, 3, 1)
        video_out = attention(query, gather(ak, audio_keys), gather(av, audio_keys))
        video_out = video_out.permute(0, 3, 1, 2).reshape(b, c, f, h, w)  # channel = head * d + i
        video = video + self.video_proj_out(video_out).transpose(1, 2)

        # audio queries, segment by segment; the remainder goes with the last frame
        key, value = gather(vk, video_keys), gather(vv, video_keys)
        audio_q = split_heads(aq)
        query = audio_q[:, :, : f * apf].reshape(b * heads, head_dim, f, apf).permute(0, 2, 3, 1)
        audio_out = attention(query, key, value).permute(0, 3, 1, 2).reshape(b * heads, head_dim, f * apf)
        if length > f * apf:
            rest = audio_q[:, :, f * apf :].transpose(1, 2)
            rest = attention(rest, key[:, -1], value[:, -1]).transpose(1, 2)
            audio_out = torch.cat([audio_out, rest], dim=2)
        audio = audio + self.audio_proj_out(audio_out.reshape(b, c, length))
        return video, audio
