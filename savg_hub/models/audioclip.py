"""The audio branch of AudioCLIP (ESResNeXt-FBSP), the feature network of SAVGBench's "FAD".

AudioCLIP (Guzhov et al., ICASSP 2022) extends CLIP with an audio head: a learnable Fourier basis front end
("FBSP", frequency B-spline wavelets: windowed complex exponentials whose centre ``fc``, bandwidth ``fb``
and window exponent ``m`` are trained) followed by a ResNeXt-50 (32x4d) trunk with AudioCLIP's attention blocks.
The official SAVGBench evaluation uses the 1024-d output of this branch, un-normalised, as the embedding for
its Fréchet distance ("FAD"). :mod:`savg_hub.evaluation.fad` runs it the way the benchmark does;
:mod:`savg_hub.convert.audioclip` converts the released ``AudioCLIP-Full-Training.pt``.

Signal path for a waveform ``(B, C, N)`` (C stereo channels, 44.1 kHz, int16-scaled float, see
:meth:`AudioCLIPAudioModel.log_power_spectrogram`):

1. ``x' = (x + 32768) * 2 / 65535 - 1`` in float32 (the int16 range is mapped to [-1, 1]);
2. frames of ``win_length`` samples every ``hop_length`` samples (zero padding split evenly around the signal
   so that frames cover it: 80,000 samples -> 141 frames, 97 zeros each side), multiplied by a periodic
   window, then zero-padded evenly to ``n_fft`` samples;
3. the FBSP basis (``n_fft // 2 + 1`` complex outputs) -> power ``re² + im²``; the first
   ``num_bands · ((n_fft // 2 + 1) // num_bands)`` bins are split into ``num_bands`` equal bands that become the
   image channels; power that is not ``> 0`` (zero, or NaN, see :class:`LearnableFourierBasis`) becomes 1e-18;
   ``10 log10``;
4. every waveform channel goes through the trunk separately; each gives a 2048-d vector (global average pool
   times the ``att5`` gate); the vectors of all channels are **summed**, then ``fc`` gives the embedding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

BatchNormStatistics = Literal["batch", "running"]
"""How the BatchNorm layers normalise: ``"batch"`` = statistics of the current batch (running statistics are
neither used nor updated), ``"running"`` = the stored running statistics."""

_LOG_POWER_FLOOR = 1e-18  # power values that are not > 0 (or NaN) are replaced by this: -180 dB
_FBSP_EPS = 1e-8
# (kernel, padding) of the depthwise convolution of the five attention gates, fixed by the AudioCLIP design.
_ATTENTION_KERNELS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((3, 1), (1, 0)),
    ((1, 5), (0, 2)),
    ((3, 1), (1, 0)),
    ((1, 5), (0, 2)),
    ((3, 5), (1, 2)),
)


@dataclass
class AudioCLIPAudioModelOutput(BaseOutput):
    """Output of :class:`AudioCLIPAudioModel`.

    Args:
        embeddings (`torch.Tensor` of shape `(B, embed_dim)`, float32):
            raw (not L2-normalised) output of the final ``fc`` layer, the vector SAVGBench's "FAD" uses.
    """

    embeddings: torch.Tensor


def _batch_norm(
    norm: nn.BatchNorm2d, x: torch.Tensor, statistics: BatchNormStatistics | None
) -> torch.Tensor:
    """Apply ``norm`` to ``x`` with the requested statistics.

    ``None`` follows the module's own mode (training: batch statistics *and* a running-statistics update;
    eval: running statistics). ``"batch"`` and ``"running"`` never change any buffer.
    """
    if statistics is None:
        return norm(x)
    if statistics == "batch":
        return F.batch_norm(x, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)


def _complex_power_of_real(base: torch.Tensor, exponent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``base ** exponent`` for real ``base`` and real ``exponent`` as a complex number ``(re, im)``.

    ``|base|^exponent · exp(i · exponent · arg(base))`` with ``arg`` = ``atan2(0, base)`` (0 or pi), evaluated
    in the same float operations as AudioCLIP's ``LinearFBSP.power`` so that the results agree to the last
    bits. As there (where the ``0 · log|base|²`` term is NaN for ``base == 0``), both parts are NaN where
    ``base == 0``.
    """
    magnitude = (base * base) ** 0.5
    magnitude_sq = magnitude * magnitude
    phase = torch.atan2(torch.zeros_like(base), base)
    modulus = magnitude_sq ** (0.5 * exponent)
    angle = exponent * phase
    angle = torch.where(magnitude_sq == 0, torch.full_like(angle, math.nan), angle)
    return modulus * torch.cos(angle), modulus * torch.sin(angle)


class LearnableFourierBasis(nn.Module):
    """AudioCLIP's learnable Fourier basis ("FBSP"): a complex linear map from a frame to frequency bins.

    For output bin ``k`` and input sample ``j`` of ``n`` (``t_j = pi · linspace(-1, 1, n)_j + 1e-8``) the
    basis function is ``sqrt(fb_k) · sinc(fb_k t_j / (m_k + 1e-8))^{m_k} · exp(-i fc_k t_j)``, divided by
    ``sqrt(n)`` when ``normalized``; ``sinc(x) = sin(x)/x`` (1 at 0) and the power of a real base is taken as
    a complex number (see :func:`_complex_power_of_real`). Initial values ``m = 0``, ``fb = 1``, ``fc = k``
    give a rectangular-window DFT basis. There is no bias.

    Where ``fb_k < 0`` the square root is NaN and so is the whole bin: the model then floors its power to
    1e-18 (-180 dB), exactly as the reference does (``where(power > 0, power, 1e-18)``).

    Args:
        out_features: number of complex output bins (``n_fft // 2 + 1``).
        normalized: divide the basis by ``sqrt(in_features)``.
    """

    def __init__(self, out_features: int, normalized: bool) -> None:
        super().__init__()
        self.out_features = out_features
        self.normalized = normalized
        self.m = nn.Parameter(torch.zeros(out_features))
        self.fb = nn.Parameter(torch.ones(out_features))
        self.fc = nn.Parameter(torch.arange(out_features, dtype=torch.get_default_dtype()))

    def basis(self, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary parts of the basis, each ``(out_features, in_features)``, parameters' dtype."""
        t = (
            math.pi * torch.linspace(-1.0, 1.0, in_features, dtype=self.m.dtype, device=self.m.device)
            + _FBSP_EPS
        )
        t = t[None, :]
        m = self.m[:, None]
        fb = self.fb[:, None]
        fc = self.fc[:, None]
        kernel_re = torch.cos(fc * t)
        kernel_im = -torch.sin(fc * t)
        scale = fb.sqrt()
        x = fb * t / (m + _FBSP_EPS)
        window = torch.where(x == 0, torch.ones_like(x), torch.sin(x) / x)
        window_re, window_im = _complex_power_of_real(window, m)
        basis_re = scale * (window_re * kernel_re - window_im * kernel_im)
        basis_im = scale * (window_re * kernel_im + window_im * kernel_re)
        if self.normalized:
            basis_re = basis_re / (in_features**0.5)
            basis_im = basis_im / (in_features**0.5)
        return basis_re, basis_im

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real frames ``(..., in_features)`` -> ``(real, imag)``, each ``(..., out_features)``."""
        basis_re, basis_im = self.basis(frames.shape[-1])
        return F.linear(frames, basis_re), F.linear(frames, basis_im)

    def extra_repr(self) -> str:
        return f"out_features={self.out_features}, normalized={self.normalized}"


class AttentionGate(nn.Module):
    """AudioCLIP's attention block: a sigmoid gate computed from a stage's input, multiplied onto its output.

    ``sigmoid(BN(conv_point(conv_depth(adaptive_max_pool(x, size)))))``; ``conv_depth`` is depthwise (with
    bias), ``conv_point`` a 1x1 convolution (with bias).

    Args:
        in_channels: channels of the stage input.
        out_channels: channels of the stage output (= of the gate).
        kernel_size: ``(h, w)`` kernel of the depthwise convolution.
        padding: ``(h, w)`` zero padding of the depthwise convolution.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], padding: tuple[int, int]
    ) -> None:
        super().__init__()
        self.conv_depth = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=padding, groups=in_channels
        )
        self.conv_point = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(
        self, x: torch.Tensor, size: Sequence[int], statistics: BatchNormStatistics | None = None
    ) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> gate ``(B, out_channels, *size)`` in (0, 1)."""
        x = F.adaptive_max_pool2d(x, tuple(size))
        x = self.conv_point(self.conv_depth(x))
        return torch.sigmoid(_batch_norm(self.bn, x, statistics))


class Bottleneck(nn.Module):
    """ResNeXt bottleneck (torchvision "v1.5": the stride sits on the grouped 3x3 convolution).

    Args:
        in_channels: input channels.
        width: channels of the two inner convolutions.
        out_channels: output channels.
        stride: stride of the 3x3 convolution (and of the projection shortcut).
        groups: groups of the 3x3 convolution.
        project: add a 1x1 convolution + BatchNorm shortcut (``downsample``).
    """

    def __init__(
        self, in_channels: int, width: int, out_channels: int, stride: int, groups: int, project: bool
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(
            width, width, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = (
            nn.ModuleList(
                [
                    nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                ]
            )
            if project
            else None
        )

    def forward(self, x: torch.Tensor, statistics: BatchNormStatistics | None = None) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, ceil(H / stride), ceil(W / stride))``."""
        out = F.relu(_batch_norm(self.bn1, self.conv1(x), statistics))
        out = F.relu(_batch_norm(self.bn2, self.conv2(out), statistics))
        out = _batch_norm(self.bn3, self.conv3(out), statistics)
        if self.downsample is not None:
            conv, norm = self.downsample
            x = _batch_norm(norm, conv(x), statistics)
        return F.relu(out + x)


class AudioCLIPAudioModel(ModelMixin, ConfigMixin):
    """AudioCLIP's audio branch (ESResNeXt-FBSP with attention), as used by SAVGBench's "FAD".

    The parameter names are those of the reference ``ESResNeXtFBSP`` module (``conv1``, ``bn1``,
    ``layer{1..4}.{i}.*``, ``att{1..5}.*``, ``fc``, ``fbsp.{m,fb,fc}``), so a checkpoint converts by dropping
    the ``audio.`` prefix (:mod:`savg_hub.convert.audioclip`). The analysis window is not a parameter: it is
    rebuilt from the config (SciPy ``get_window(window, win_length, fftbins=True)``, i.e. periodic) as the
    non-persistent buffer ``analysis_window``.

    BatchNorm statistics are chosen per call (``forward(..., batch_norm=...)``): the official benchmark runs
    the model in training mode (per-batch statistics of each channel's batch of clips); correct inference uses
    the running statistics. See :class:`savg_hub.evaluation.fad.AudioCLIPFeatureExtractor`.

    Args:
        sample_rate (`int`, *optional*, defaults to 44100):
            sampling rate in Hz the basis was trained for; the model does not resample (callers check).
        n_fft (`int`, *optional*, defaults to 2048):
            frame length after zero padding; the basis has ``n_fft // 2 + 1`` complex outputs (1025).
        hop_length (`int`, *optional*, defaults to 561):
            frame step in samples (12.7 ms at 44.1 kHz).
        win_length (`int`, *optional*, defaults to 1654):
            window length in samples (37.5 ms), at most ``n_fft``.
        window (`str`, *optional*, defaults to `"blackmanharris"`):
            SciPy window name, built periodic (``fftbins=True``).
        normalized (`bool`, *optional*, defaults to `True`):
            divide the Fourier basis by ``sqrt(n_fft)``.
        num_bands (`int`, *optional*, defaults to 3):
            equal frequency bands the first ``num_bands * ((n_fft // 2 + 1) // num_bands)`` bins are split
            into; they are the image channels of the trunk (3 bands of 341 bins).
        layers (`tuple[int, ...]`, *optional*, defaults to `(3, 4, 6, 3)`):
            bottleneck blocks per stage (ResNeXt-50); exactly four stages.
        groups (`int`, *optional*, defaults to 32):
            groups of the 3x3 convolutions (ResNeXt cardinality).
        width_per_group (`int`, *optional*, defaults to 4):
            channels per group of the first stage's 3x3 convolution (doubling per stage: 32x4d).
        base_channels (`int`, *optional*, defaults to 64):
            stem width; stage ``s`` (0..3) has ``base_channels · 2^s`` planes and ``4 ×`` that many outputs.
        apply_attention (`bool`, *optional*, defaults to `True`):
            use AudioCLIP's five attention gates (after each stage and on the pooled features).
        embed_dim (`int`, *optional*, defaults to 1024):
            output size of the final ``fc`` (with bias).
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int = 561,
        win_length: int = 1654,
        window: str = "blackmanharris",
        normalized: bool = True,
        num_bands: int = 3,
        layers: tuple[int, ...] = (3, 4, 6, 3),
        groups: int = 32,
        width_per_group: int = 4,
        base_channels: int = 64,
        apply_attention: bool = True,
        embed_dim: int = 1024,
    ) -> None:
        super().__init__()
        for name, value in (
            ("sample_rate", sample_rate),
            ("n_fft", n_fft),
            ("hop_length", hop_length),
            ("win_length", win_length),
            ("num_bands", num_bands),
            ("groups", groups),
            ("width_per_group", width_per_group),
            ("base_channels", base_channels),
            ("embed_dim", embed_dim),
        ):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if (n_fft // 2 + 1) // num_bands < 1:
            raise ValueError(f"num_bands={num_bands} leaves no bin per band for n_fft={n_fft}")
        if len(layers) != 4 or any(int(n) != n or n < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {layers!r}")

        self.register_buffer("analysis_window", self._make_window(window, win_length), persistent=False)
        self.fbsp = LearnableFourierBasis(n_fft // 2 + 1, normalized)

        self.conv1 = nn.Conv2d(num_bands, base_channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        in_channels = base_channels
        for stage, blocks in enumerate(layers):
            planes = base_channels * 2**stage
            out_channels = 4 * planes
            width = planes // base_channels * width_per_group * groups
            stride = 1 if stage == 0 else 2
            stage_blocks = [
                Bottleneck(
                    in_channels if i == 0 else out_channels,
                    width,
                    out_channels,
                    stride if i == 0 else 1,
                    groups,
                    project=i == 0 and (stride != 1 or in_channels != out_channels),
                )
                for i in range(int(blocks))
            ]
            self.add_module(f"layer{stage + 1}", nn.ModuleList(stage_blocks))
            if apply_attention:
                kernel, padding = _ATTENTION_KERNELS[stage]
                self.add_module(f"att{stage + 1}", AttentionGate(in_channels, out_channels, kernel, padding))
            in_channels = out_channels
        if apply_attention:
            kernel, padding = _ATTENTION_KERNELS[4]
            self.att5 = AttentionGate(in_channels, in_channels, kernel, padding)
        self.fc = nn.Linear(in_channels, embed_dim)

    @staticmethod
    def _make_window(window: str, win_length: int) -> torch.Tensor:
        """Periodic SciPy window, float32 ``(win_length,)`` (float64, then cast, as the reference does)."""
        from scipy.signal import get_window

        return torch.from_numpy(get_window(window, win_length, fftbins=True)).to(torch.float32)

    def _frames(self, signal: torch.Tensor) -> torch.Tensor:
        """``(R, N)`` -> windowed, zero-padded frames ``(R, T, n_fft)``.

        ``T = 1`` if ``N <= win_length`` else ``1 + ceil((N - win_length) / hop_length)``; the signal is zero
        padded to ``(T - 1) · hop + win_length`` samples, ``floor(pad / 2)`` on the left.
        """
        win_length, hop_length, n_fft = self.config.win_length, self.config.hop_length, self.config.n_fft
        length = signal.shape[-1]
        num_frames = 1 if length <= win_length else 1 + math.ceil((length - win_length) / hop_length)
        pad = max((num_frames - 1) * hop_length + win_length - length, 0)
        signal = F.pad(signal, (pad // 2, pad - pad // 2))
        frames = signal.unfold(-1, win_length, hop_length) * self.analysis_window
        extra = n_fft - win_length
        return F.pad(frames, (extra // 2, extra - extra // 2))

    def log_power_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """The trunk input: FBSP log power in dB, split into frequency bands.

        Args:
            waveform: ``(B, C, N)`` float audio at ``sample_rate`` on the **int16 scale** (full scale ±32768,
                as AudioCLIP was trained); it is cast to float32 and mapped to [-1, 1] by
                ``(x + 32768) · 2 / 65535 - 1`` before framing.

        Returns:
            float32 ``(B, C, num_bands, bins_per_band, T)`` in dB (``10 log10`` power; floored at -180 dB),
            ``bins_per_band = (n_fft // 2 + 1) // num_bands``, ``T`` frames (141 for 80,000 samples).
        """
        if waveform.ndim != 3 or waveform.shape[-1] < 1 or waveform.shape[1] < 1:
            raise ValueError(
                f"waveform must be (batch, channels, samples), got shape {tuple(waveform.shape)}"
            )
        batch, channels, length = waveform.shape
        x = waveform.to(self.fbsp.m.dtype)
        x = (x + 32768.0) * 2.0 / 65535.0 - 1.0
        with torch.no_grad():
            frames = self._frames(x.reshape(batch * channels, length))
        real, imag = self.fbsp(frames)  # (B·C, T, n_fft // 2 + 1)
        num_bands = self.config.num_bands
        per_band = real.shape[-1] // num_bands
        power = real * real + imag * imag
        power = power[..., : num_bands * per_band].reshape(batch, channels, -1, num_bands, per_band)
        power = power.permute(0, 1, 3, 4, 2)
        power = torch.where(power > 0.0, power, torch.full_like(power, _LOG_POWER_FLOOR))
        return torch.log10(power) * 10.0

    def _pooled_features(self, x: torch.Tensor, statistics: BatchNormStatistics | None) -> torch.Tensor:
        """Trunk on one channel's band images ``(B, num_bands, H, W)`` -> ``(B, 4 · 8 · base_channels)``."""
        x = F.relu(_batch_norm(self.bn1, self.conv1(x), statistics))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        for stage in range(1, 5):
            gate_input = x
            for block in getattr(self, f"layer{stage}"):
                x = block(x, statistics)
            if self.config.apply_attention:
                x = x * getattr(self, f"att{stage}")(gate_input, x.shape[-2:], statistics)
        pooled = F.adaptive_avg_pool2d(x, (1, 1))
        if self.config.apply_attention:
            pooled = pooled * self.att5(x, pooled.shape[-2:], statistics)
        return torch.flatten(pooled, 1)

    def embed_spectrogram(
        self, log_power: torch.Tensor, batch_norm: BatchNormStatistics | None = None
    ) -> torch.Tensor:
        """Trunk + channel sum + ``fc`` on a precomputed :meth:`log_power_spectrogram`.

        Args:
            log_power: float32 ``(B, C, num_bands, bins_per_band, T)`` in dB.
            batch_norm: see :meth:`forward`.

        Returns:
            float32 ``(B, embed_dim)`` raw embeddings.
        """
        if batch_norm not in (None, "batch", "running"):
            raise ValueError(f"batch_norm must be None, 'batch' or 'running', got {batch_norm!r}")
        if log_power.ndim != 5 or log_power.shape[2] != self.config.num_bands:
            raise ValueError(
                f"log_power must be (batch, channels, {self.config.num_bands}, bins, frames), "
                f"got shape {tuple(log_power.shape)}"
            )
        batch, channels = log_power.shape[:2]
        uses_batch_statistics = batch_norm == "batch" or (batch_norm is None and self.training)
        if uses_batch_statistics:
            if batch < 2:
                raise ValueError(
                    f"BatchNorm with batch statistics needs at least 2 clips per batch, got {batch} "
                    "(the pooled 1x1 features of a single clip have no variance)"
                )
            per_channel = [self._pooled_features(log_power[:, c], batch_norm) for c in range(channels)]
        else:
            # Fixed statistics: every clip is normalised on its own, so the channels can share one trunk pass.
            flat = self._pooled_features(log_power.flatten(0, 1), batch_norm)
            per_channel = list(flat.unflatten(0, (batch, channels)).unbind(1))
        return self.fc(torch.stack(per_channel, dim=-1).sum(dim=-1))

    def forward(
        self,
        waveform: torch.Tensor,
        batch_norm: BatchNormStatistics | None = None,
        return_dict: bool = True,
    ) -> AudioCLIPAudioModelOutput | tuple[torch.Tensor]:
        """Embed a batch of multi-channel waveforms.

        Args:
            waveform (`torch.Tensor` of shape `(B, C, N)`):
                float audio at ``sample_rate``, int16-scaled (±32768 full scale); see
                :meth:`log_power_spectrogram`.
            batch_norm (`str`, *optional*):
                ``"batch"``: every BatchNorm normalises with the statistics of the current batch (for each
                channel separately, since channels pass the trunk one at a time; needs ``B >= 2``), buffers
                untouched: the official SAVGBench behaviour. ``"running"``: the running statistics (per-clip
                results that do not depend on the batch). ``None``: follow ``self.training`` as
                ``nn.BatchNorm2d`` does.
            return_dict (`bool`, *optional*, defaults to `True`):
                return an :class:`AudioCLIPAudioModelOutput` instead of a tuple.

        Returns:
            :class:`AudioCLIPAudioModelOutput` with float32 ``embeddings`` ``(B, embed_dim)``, or a tuple.
        """
        if batch_norm not in (None, "batch", "running"):
            raise ValueError(f"batch_norm must be None, 'batch' or 'running', got {batch_norm!r}")
        embeddings = self.embed_spectrogram(self.log_power_spectrogram(waveform), batch_norm)
        if not return_dict:
            return (embeddings,)
        return AudioCLIPAudioModelOutput(embeddings=embeddings)
