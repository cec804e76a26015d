"""The coupled audio-video U-Net of Stereo MM-Diffusion (SAVGBench's joint baseline), as a diffusers model.

A single U-Net denoises a video ``(B, F, C, H, W)`` and a stereo waveform ``(B, 2, L)`` together: every level
has one residual block per modality pair sharing the timestep modulation, video self-attention (spatial then
temporal), and random-shift windowed cross-modal attention (RS-MMA) that lets each video frame see a window of
the waveform and each audio segment see a window of frames. It predicts the noise ε of both modalities.

The architecture follows the official SAVGBench release (GitHub ``SonyResearch/SAVGBench`` at ``04e8d5b``, a
stereo copy of ``researchmm/MM-Diffusion``) exactly, including the order in which the random window shifts are
drawn, so that the released checkpoint ``model330011.pt`` (converted with
:mod:`savg_hub.convert.mm_diffusion`) reproduces the official outputs. See ``reference/baselines.md`` §1 for
the specification.

Example::

    import random, torch
    from savg_hub.models.mm_diffusion_unet import CoupledUNetModel

    model = CoupledUNetModel.from_pretrained("stereo-mm-diffusion/").eval()
    out = model(video, audio, torch.tensor([421]), generator=random.Random(1010))
    out.video, out.audio   # ε predictions, (1, 20, 3, 64, 64) and (1, 2, 80000)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from savg_hub.models.mm_diffusion_layers import (
    CoupledResnetBlock,
    CrossModalAttention,
    GroupNorm32,
    PseudoConv3d,
    video_group_norm,
)

#: cross-attention windows for which the reference adds a cross-attention to the middle block (exact match)
_MID_BLOCK_CROSS_ATTENTION_WINDOWS = (1, 4, 8)


@dataclass
class CoupledUNetOutput(BaseOutput):
    """Output of :class:`CoupledUNetModel`.

    Args:
        video (`torch.Tensor` of shape `(B, F, C_out, H, W)`):
            video noise prediction ε (``C_out = C``, or ``2C`` with ``learn_sigma``: ε then the variance
            values).
        audio (`torch.Tensor` of shape `(B, A_out, L)`):
            audio noise prediction ε (``A_out`` = audio channels, doubled with ``learn_sigma``).
    """

    video: torch.Tensor
    audio: torch.Tensor


class CoupledStem(nn.Module):
    """Input convolutions, no norm or activation: video ``PseudoConv3d(k=3)``, audio ``Conv1d(k=3)``.

    Args:
        video_channels: video input channels (3 for RGB).
        audio_channels: audio input channels (2 for stereo).
        out_channels: width of both outputs.
    """

    def __init__(self, video_channels: int, audio_channels: int, out_channels: int) -> None:
        super().__init__()
        self.video_conv = PseudoConv3d(video_channels, out_channels, 3)
        self.audio_conv = nn.Conv1d(audio_channels, out_channels, 3, padding="same")

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Video ``(B, F, C_v, H, W)``, audio ``(B, C_a, L)`` -> ``(B, F, C, H, W)``, ``(B, C, L)``."""
        return self.video_conv(video), self.audio_conv(audio)


class CoupledUNetBlock(nn.Module):
    """One encoder or decoder step: a residual block, then optional cross-modal attention, then (decoder only)
    an optional upsampling residual block.

    Args:
        resnet: the main residual block (it may itself downsample).
        cross_attention: cross-modal attention after it, or ``None``.
        upsampler: an upsampling residual block run last, or ``None``.
    """

    def __init__(
        self,
        resnet: CoupledResnetBlock,
        cross_attention: CrossModalAttention | None = None,
        upsampler: CoupledResnetBlock | None = None,
    ) -> None:
        super().__init__()
        self.resnet = resnet
        self.cross_attention = cross_attention
        self.upsampler = upsampler

    def forward(
        self, video: torch.Tensor, audio: torch.Tensor, temb: torch.Tensor, shift: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Video ``(B, F, C, H, W)``, audio ``(B, C, L)``, temb ``(B, E)``, cross-attention shift (frames)."""
        video, audio = self.resnet(video, audio, temb)
        if self.cross_attention is not None:
            video, audio = self.cross_attention(video, audio, shift)
        if self.upsampler is not None:
            video, audio = self.upsampler(video, audio, temb)
        return video, audio


class CoupledMidBlock(nn.Module):
    """Middle block: residual block, optional full-window cross-attention (never shifted), residual block;
    both residual blocks carry video and audio self-attention.

    Args:
        resnets: the two residual blocks.
        cross_attention: the cross-modal attention between them, or ``None``.
    """

    def __init__(
        self, resnets: Sequence[CoupledResnetBlock], cross_attention: CrossModalAttention | None
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.cross_attention = cross_attention

    def forward(
        self, video: torch.Tensor, audio: torch.Tensor, temb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Video ``(B, F, C, H, W)``, audio ``(B, C, L)``, temb ``(B, E)`` -> same shapes."""
        video, audio = self.resnets[0](video, audio, temb)
        if self.cross_attention is not None:
            video, audio = self.cross_attention(video, audio, 0)
        return self.resnets[1](video, audio, temb)


def _int_tuple(name: str, value: Sequence[int], length: int | None = None) -> tuple[int, ...]:
    values = tuple(int(v) for v in value)
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} entries, got {list(value)}")
    return values


class CoupledUNetModel(ModelMixin, ConfigMixin):
    """The Stereo MM-Diffusion coupled audio-video U-Net (ε-prediction), configured as in SAVGBench by
    default.

    Inputs: video ``(B, F, C, H, W)`` in [-1, 1] (frames before channels), audio ``(B, A, L)`` (raw waveform,
    A = 2 for stereo, left first), integer timesteps ``(B,)`` in ``0 .. 999`` (not rescaled). Outputs: the ε
    predictions in the same layouts (:class:`CoupledUNetOutput`).

    Structure (levels ``k = 0 .. len(channel_mult)-1``, ``ds = 2^k``): a stem; per level ``num_res_blocks``
    :class:`~savg_hub.models.mm_diffusion_layers.CoupledResnetBlock` s (video attention when ``ds`` is in
    ``video_attention_resolutions``, audio attention when in ``audio_attention_resolutions``), each followed
    by a :class:`~savg_hub.models.mm_diffusion_layers.CrossModalAttention` when ``ds`` is in
    ``cross_attention_resolutions``, then (except the last level) a downsampling residual block (video 2x on
    H, W; audio 4x); a middle block; the mirrored decoder with ``num_res_blocks + 1`` blocks per level fed
    with the encoder activations concatenated on the channel axis, the last block of each level (but level 0)
    ending with an upsampling residual block; GroupNorm-SiLU-conv heads (video ``Conv3d`` 3x3x3, audio
    ``Conv1d`` k=3). The audio input convolution of the ``c``-th residual block has dilation ``2^(c mod
    audio_dilation_cycle)`` (``c`` counts up from 1 in the encoder, stays for the middle block, counts down in
    the decoder).

    **Window shifts.** With ``cross_attention_shift``, every encoder/decoder cross-attention with window
    ``Wn`` uses a shift ``s`` in ``[0, F - Wn]`` frames, drawn with ``random.randint(0, F - Wn)`` once per
    block call in execution order (encoder then decoder; the middle block never shifts), at inference too, as
    the reference does. :attr:`cross_attention_shift_ranges` lists the ranges,
    :attr:`last_cross_attention_shifts` the values used by the last call.

    Args:
        video_size (`tuple[int, int, int, int]`, *optional*, defaults to `(20, 3, 64, 64)`):
            ``(F, C, H, W)``: frames, channels, height, width of the video (5 s at 4 fps, 64x64 RGB).
        audio_size (`tuple[int, int]`, *optional*, defaults to `(2, 80000)`):
            ``(channels, length)`` of the waveform (stereo, 5 s at 16 kHz).
        model_channels (`int`, *optional*, defaults to 128):
            base width; also the width of the timestep embedding.
        channel_mult (`tuple[int, ...]`, *optional*, defaults to `(1, 2, 3, 4)`):
            width multiplier per level.
        num_res_blocks (`int`, *optional*, defaults to 2):
            residual blocks per encoder level (the decoder has one more).
        video_attention_resolutions (`tuple[int, ...]`, *optional*, defaults to `(2, 4, 8)`):
            downsampling factors ``ds`` with video self-attention.
        audio_attention_resolutions (`tuple[int, ...]`, *optional*, defaults to `()`):
            downsampling factors with audio self-attention (the reference's ``-1``: none; the middle block
            always has it).
        cross_attention_resolutions (`tuple[int, ...]`, *optional*, defaults to `(2, 4, 8)`):
            downsampling factors with cross-modal attention.
        cross_attention_windows (`tuple[int, ...]`, *optional*, defaults to `(1, 4, 8)`):
            window in frames for each entry of ``cross_attention_resolutions``. Exactly ``(1, 4, 8)`` also
            adds a full-window (``F`` frames), unshifted cross-attention to the middle block (the reference's
            rule).
        cross_attention_shift (`bool`, *optional*, defaults to `True`):
            randomly shift the windows (see above).
        num_heads (`int`, *optional*, defaults to 4):
            heads of every self-attention (video spatial/temporal and audio).
        num_head_channels (`int`, *optional*, defaults to 64):
            head width of the cross-modal attentions (heads = channels / 64); ``-1`` uses ``num_heads`` heads.
        use_scale_shift_norm (`bool`, *optional*, defaults to `True`):
            FiLM-style ``norm(h) * (1 + scale) + shift`` time modulation instead of an additive embedding.
        resblock_updown (`bool`, *optional*, defaults to `True`):
            resample with residual blocks. Only ``True`` is supported: with ``False`` the reference decoder
            never upsamples.
        learn_sigma (`bool`, *optional*, defaults to `False`):
            also output variance values (doubles the output channels of both heads). The SAVGBench code
            hard-codes 2 audio output channels, so only ``False`` matches a released model.
        dropout (`float`, *optional*, defaults to 0.0):
            dropout in the residual blocks (SAVGBench trained with 0.1).
        audio_dilation_cycle (`int`, *optional*, defaults to 10):
            the audio dilation of the ``c``-th residual block is ``2^(c mod audio_dilation_cycle)``.
        norm_num_groups (`int`, *optional*, defaults to 32):
            GroupNorm groups; every width must be divisible by it.
    """

    @register_to_config
    def __init__(
        self,
        video_size: tuple[int, int, int, int] = (20, 3, 64, 64),
        audio_size: tuple[int, int] = (2, 80000),
        model_channels: int = 128,
        channel_mult: tuple[int, ...] = (1, 2, 3, 4),
        num_res_blocks: int = 2,
        video_attention_resolutions: tuple[int, ...] = (2, 4, 8),
        audio_attention_resolutions: tuple[int, ...] = (),
        cross_attention_resolutions: tuple[int, ...] = (2, 4, 8),
        cross_attention_windows: tuple[int, ...] = (1, 4, 8),
        cross_attention_shift: bool = True,
        num_heads: int = 4,
        num_head_channels: int = 64,
        use_scale_shift_norm: bool = True,
        resblock_updown: bool = True,
        learn_sigma: bool = False,
        dropout: float = 0.0,
        audio_dilation_cycle: int = 10,
        norm_num_groups: int = 32,
    ) -> None:
        super().__init__()
        frames, video_channels, height, width = _int_tuple("video_size", video_size, 4)
        audio_channels, audio_length = _int_tuple("audio_size", audio_size, 2)
        channel_mult = _int_tuple("channel_mult", channel_mult)
        video_attn = _int_tuple("video_attention_resolutions", video_attention_resolutions)
        audio_attn = _int_tuple("audio_attention_resolutions", audio_attention_resolutions)
        cross_res = _int_tuple("cross_attention_resolutions", cross_attention_resolutions)
        windows = _int_tuple("cross_attention_windows", cross_attention_windows, len(cross_res))
        self._check_config(
            frames,
            height,
            width,
            audio_length,
            model_channels,
            channel_mult,
            num_res_blocks,
            cross_res,
            windows,
            cross_attention_shift,
            num_heads,
            num_head_channels,
            resblock_updown,
            audio_dilation_cycle,
            norm_num_groups,
        )
        levels = len(channel_mult)
        temb_channels = model_channels

        self.time_proj = Timesteps(model_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(model_channels, temb_channels, act_fn="silu")

        def resnet(cin: int, cout: int, dilation_counter: int, **kwargs: object) -> CoupledResnetBlock:
            return CoupledResnetBlock(
                cin,
                cout,
                temb_channels,
                audio_dilation=2 ** (dilation_counter % audio_dilation_cycle),
                dropout=dropout,
                use_scale_shift_norm=use_scale_shift_norm,
                num_heads=num_heads,
                norm_num_groups=norm_num_groups,
                **kwargs,
            )

        def cross_attention(channels: int, window: int) -> CrossModalAttention:
            heads = num_heads if num_head_channels == -1 else channels // num_head_channels
            return CrossModalAttention(channels, heads, window, norm_num_groups)

        ch = channel_mult[0] * model_channels
        self.conv_in = CoupledStem(video_channels, audio_channels, ch)
        skip_channels = [ch]
        self.down_blocks = nn.ModuleList()
        shift_windows: list[int] = []  # windows of the shifting cross-attentions, in execution order
        ds, counter = 1, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                out_ch = mult * model_channels
                block_resnet = resnet(
                    ch, out_ch, counter, video_attention=ds in video_attn, audio_attention=ds in audio_attn
                )
                counter += 1
                ch = out_ch
                xattn = None
                if ds in cross_res:
                    window = windows[cross_res.index(ds)]
                    xattn = cross_attention(ch, window)
                    if cross_attention_shift:
                        shift_windows.append(window)
                self.down_blocks.append(CoupledUNetBlock(block_resnet, xattn))
                skip_channels.append(ch)
            if level != levels - 1:
                self.down_blocks.append(CoupledUNetBlock(resnet(ch, ch, counter, resample="down")))
                counter += 1
                skip_channels.append(ch)
                ds *= 2

        mid_xattn = cross_attention(ch, frames) if windows == _MID_BLOCK_CROSS_ATTENTION_WINDOWS else None
        self.mid_block = CoupledMidBlock(
            [resnet(ch, ch, counter, video_attention=True, audio_attention=True) for _ in range(2)], mid_xattn
        )

        counter -= 1
        self.up_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for index in range(num_res_blocks + 1):
                out_ch = mult * model_channels
                block_resnet = resnet(
                    ch + skip_channels.pop(),
                    out_ch,
                    counter,
                    video_attention=ds in video_attn,
                    audio_attention=ds in audio_attn,
                )
                counter -= 1
                ch = out_ch
                xattn = None
                if ds in cross_res:
                    window = windows[cross_res.index(ds)]
                    xattn = cross_attention(ch, window)
                    if cross_attention_shift:
                        shift_windows.append(window)
                upsampler = None
                if level and index == num_res_blocks:
                    upsampler = resnet(ch, ch, counter, resample="up")
                    ds //= 2
                self.up_blocks.append(CoupledUNetBlock(block_resnet, xattn, upsampler))

        out_factor = 2 if learn_sigma else 1
        self.video_norm_out = GroupNorm32(norm_num_groups, ch)
        self.video_conv_out = nn.Conv3d(ch, video_channels * out_factor, 3, padding="same")
        self.audio_norm_out = GroupNorm32(norm_num_groups, ch)
        self.audio_conv_out = nn.Conv1d(ch, audio_channels * out_factor, 3, padding="same")
        for conv in (self.video_conv_out, self.audio_conv_out):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.nonlinearity = nn.SiLU()

        self._shift_windows = tuple(shift_windows)
        self.last_cross_attention_shifts: list[tuple[int, int, int]] = []

    @staticmethod
    def _check_config(
        frames: int,
        height: int,
        width: int,
        audio_length: int,
        model_channels: int,
        channel_mult: tuple[int, ...],
        num_res_blocks: int,
        cross_res: tuple[int, ...],
        windows: tuple[int, ...],
        shift: bool,
        num_heads: int,
        num_head_channels: int,
        resblock_updown: bool,
        audio_dilation_cycle: int,
        norm_num_groups: int,
    ) -> None:
        if not resblock_updown:
            raise ValueError(
                "resblock_updown=False is not supported: the reference decoder would never upsample"
            )
        if min(frames, height, width, audio_length, model_channels, num_res_blocks, audio_dilation_cycle) < 1:
            raise ValueError(
                "video_size, audio_size, model_channels, num_res_blocks and audio_dilation_cycle "
                "must be positive"
            )
        if not channel_mult or min(channel_mult) < 1:
            raise ValueError(
                f"channel_mult must be a non-empty list of positive ints, got {list(channel_mult)}"
            )
        levels = len(channel_mult)
        factor = 2 ** (levels - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"video height/width {height}x{width} must be divisible by {factor} "
                f"({levels} levels halve them {levels - 1} times)"
            )
        if audio_length % 4 ** (levels - 1):
            raise ValueError(
                f"audio length {audio_length} must be divisible by {4 ** (levels - 1)} "
                f"({levels} levels divide it by 4 {levels - 1} times)"
            )
        for mult in channel_mult:
            width_ch = mult * model_channels
            if width_ch % norm_num_groups:
                raise ValueError(f"width {width_ch} is not divisible by norm_num_groups={norm_num_groups}")
            if width_ch % num_heads:
                raise ValueError(f"width {width_ch} is not divisible by num_heads={num_heads}")
        for ds, window in zip(cross_res, windows, strict=True):
            if window < 1:
                raise ValueError(f"cross_attention_windows must be >= 1 frame, got {list(windows)}")
            if ds < 1 or ds & (ds - 1) or ds.bit_length() > levels:
                continue  # never reached: no cross-attention at this factor (as in the reference)
            level = ds.bit_length() - 1
            width_ch = channel_mult[level] * model_channels
            if num_head_channels != -1 and width_ch % num_head_channels:
                raise ValueError(
                    f"cross-attention width {width_ch} at ds={ds} is not divisible by "
                    f"num_head_channels={num_head_channels}"
                )
            if audio_length // 4**level < frames:
                raise ValueError(
                    f"audio length {audio_length // 4**level} at ds={ds} is shorter than the "
                    f"{frames} frames: no audio token per frame for cross-attention"
                )
            if shift and window > frames:
                raise ValueError(
                    f"cross-attention window {window} at ds={ds} exceeds the {frames} frames "
                    "(the shift is drawn in [0, F - window])"
                )
        if tuple(windows) == _MID_BLOCK_CROSS_ATTENTION_WINDOWS:
            width_ch = channel_mult[-1] * model_channels
            if num_head_channels != -1 and width_ch % num_head_channels:
                raise ValueError(
                    f"middle cross-attention width {width_ch} is not divisible by "
                    f"num_head_channels={num_head_channels}"
                )
            if audio_length // 4 ** (levels - 1) < frames:
                raise ValueError(
                    f"audio length {audio_length // 4 ** (levels - 1)} in the middle block is shorter "
                    f"than the {frames} frames"
                )

    @property
    def cross_attention_shift_ranges(self) -> list[tuple[int, int]]:
        """``(low, high)`` of the ``random.randint`` draw of each shifting cross-attention, in execution order
        (empty when ``cross_attention_shift`` is off). SAVGBench: 15 draws, ranges 0..19, 0..16, 0..12."""
        frames = int(self.config.video_size[0])
        return [(0, frames - window) for window in self._shift_windows]

    def _resolve_shifts(self, shifts: Sequence[int] | None, generator: random.Random | None) -> list[int]:
        ranges = self.cross_attention_shift_ranges
        if shifts is not None:
            if generator is not None:
                raise ValueError("pass either cross_attention_shifts or generator, not both")
            shifts = [int(s) for s in shifts]
            if len(shifts) != len(ranges):
                raise ValueError(
                    f"cross_attention_shifts has {len(shifts)} entries; this model draws {len(ranges)} "
                    f"shifts per call (ranges {ranges})"
                )
            bad = [
                (i, s, r)
                for i, (s, r) in enumerate(zip(shifts, ranges, strict=True))
                if not r[0] <= s <= r[1]
            ]
            if bad:
                raise ValueError(
                    "cross_attention_shifts out of range (index, value, (low, high)): "
                    + ", ".join(map(str, bad))
                )
            return shifts
        if generator is None:
            source = random  # Python's global generator: the official behaviour
        elif isinstance(generator, random.Random):
            source = generator
        else:
            raise TypeError(
                f"generator must be a random.Random (it drives random.randint), got {type(generator)}"
            )
        return [source.randint(low, high) for low, high in ranges]

    def _check_inputs(
        self, video: torch.Tensor, audio: torch.Tensor, timestep: torch.Tensor | int | float
    ) -> torch.Tensor:
        video_size = tuple(int(v) for v in self.config.video_size)
        audio_size = tuple(int(v) for v in self.config.audio_size)
        if video.ndim != 5 or tuple(video.shape[1:]) != video_size:
            raise ValueError(
                f"video must have shape (B, F, C, H, W) = (B, *{video_size}), got {tuple(video.shape)}"
            )
        if audio.ndim != 3 or tuple(audio.shape[1:]) != audio_size:
            raise ValueError(
                f"audio must have shape (B, channels, length) = (B, *{audio_size}), got {tuple(audio.shape)}"
            )
        batch = video.shape[0]
        if audio.shape[0] != batch:
            raise ValueError(f"video batch {batch} and audio batch {audio.shape[0]} differ")
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], device=video.device)
        if timestep.ndim == 0 or timestep.shape == (1,):
            timestep = timestep.reshape(1).expand(batch)
        if timestep.shape != (batch,):
            raise ValueError(
                f"timestep must be a scalar or have shape ({batch},), got {tuple(timestep.shape)}"
            )
        return timestep.to(video.device)

    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        timestep: torch.Tensor | int | float,
        *,
        cross_attention_shifts: Sequence[int] | None = None,
        generator: random.Random | None = None,
        return_dict: bool = True,
    ) -> CoupledUNetOutput | tuple[torch.Tensor, torch.Tensor]:
        """Predict the noise of a noisy video and waveform at ``timestep``.

        Args:
            video (`torch.Tensor` of shape `(B, F, C, H, W)`):
                noisy video, float (clean data in [-1, 1]); cast to the model's dtype.
            audio (`torch.Tensor` of shape `(B, A, L)`):
                noisy waveform, float (clean data in [-1, 1]); cast to the model's dtype.
            timestep (`torch.Tensor` of shape `(B,)`, or a scalar):
                diffusion step index ``0 .. 999`` per sample (shared by both modalities).
            cross_attention_shifts (`list[int]`, *optional*):
                explicit window shifts, one per entry of :attr:`cross_attention_shift_ranges` (execution
                order, each within its range); all zeros = no shift. Must be empty/``None`` when shifting is
                off.
            generator (`random.Random`, *optional*):
                draws the shifts with ``randint(low, high)`` in execution order when
                ``cross_attention_shifts`` is not given. ``None`` uses Python's global ``random`` (advancing
                it), as the reference does: seeding ``random.seed(k)`` or passing ``random.Random(k)`` gives
                the same draws.
            return_dict (`bool`, *optional*, defaults to `True`):
                return a :class:`CoupledUNetOutput` instead of a tuple ``(video, audio)``.

        Returns:
            :class:`CoupledUNetOutput` (or a tuple) with ε for video ``(B, F, C_out, H, W)`` and audio
            ``(B, A_out, L)``. The shifts used are left in :attr:`last_cross_attention_shifts` as
            ``(low, high, value)`` tuples.

        Raises:
            ValueError: a video/audio shape other than the configured one, batch sizes that differ, a
                timestep of the wrong shape, or bad explicit shifts.
        """
        timestep = self._check_inputs(video, audio, timestep)
        shifts = self._resolve_shifts(cross_attention_shifts, generator)
        self.last_cross_attention_shifts = [
            (low, high, s) for (low, high), s in zip(self.cross_attention_shift_ranges, shifts, strict=True)
        ]
        shift_iter = iter(shifts)

        def next_shift(block: CoupledUNetBlock) -> int:
            if block.cross_attention is None or not self.config.cross_attention_shift:
                return 0
            return next(shift_iter)

        dtype = self.dtype
        temb = self.time_embedding(self.time_proj(timestep).to(dtype))
        video, audio = self.conv_in(video.to(dtype), audio.to(dtype))
        skips = [(video, audio)]
        for block in self.down_blocks:
            video, audio = block(video, audio, temb, next_shift(block))
            skips.append((video, audio))
        video, audio = self.mid_block(video, audio, temb)
        for block in self.up_blocks:
            skip_video, skip_audio = skips.pop()
            video = torch.cat([video, skip_video], dim=2)
            audio = torch.cat([audio, skip_audio], dim=1)
            video, audio = block(video, audio, temb, next_shift(block))

        video = self.nonlinearity(video_group_norm(self.video_norm_out, video))
        video = self.video_conv_out(video.transpose(1, 2)).transpose(1, 2)
        audio = self.audio_conv_out(self.nonlinearity(self.audio_norm_out(audio)))
        if not return_dict:
            return video, audio
        return CoupledUNetOutput(video=video, audio=audio)
