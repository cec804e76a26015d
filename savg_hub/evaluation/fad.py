"""AudioCLIP embeddings for SAVGBench's "FAD" (Fréchet distance between AudioCLIP audio embeddings).

SAVGBench's "FAD" is not the VGGish/PANNs Fréchet Audio Distance: it is the Fréchet distance (× 1000) between
raw 1024-d embeddings of AudioCLIP's audio branch (:class:`~savg_hub.models.audioclip.AudioCLIPAudioModel`),
computed on 80,000-sample (≈1.81 s) stereo excerpts at 44.1 kHz. This module turns such excerpts into
embeddings, either exactly as the official release does (``mode="official"``) or as the model was meant to be
used (``mode="corrected"``). Choosing the excerpts and the Fréchet statistics live elsewhere.

Example::

    from savg_hub.models.audioclip import AudioCLIPAudioModel
    from savg_hub.evaluation.fad import AudioCLIPFeatureExtractor

    model = AudioCLIPAudioModel.from_pretrained("audioclip-audio/")
    extractor = AudioCLIPFeatureExtractor(model, device="cpu", mode="official", batch_size=8)
    features = extractor.embed(audio)        # audio: (N, 2, 80000) float in [-1, 1] at 44.1 kHz
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch

from savg_hub.models.audioclip import AudioCLIPAudioModel

logger = logging.getLogger(__name__)

ExtractionMode = Literal["official", "corrected"]
_MODES = ("official", "corrected")
_INT16_SCALE = 32768.0


class AudioCLIPFeatureExtractor:
    """Embed stereo audio excerpts with AudioCLIP's audio branch, the official way or the corrected way.

    ``mode="official"`` reproduces SAVGBench (commit 04e8d5b), quirks included:

    * **Wrong input level.** The model expects int16-scaled samples (±32768 full scale; AudioCLIP was trained
      on ``librosa`` audio × 32768) and maps them to [-1, 1] with ``(x + 32768) · 2 / 65535 - 1``. The
      benchmark feeds it audio already in [-1, 1], so the signal reaching the Fourier basis is
      ``≈ x / 32767.5`` plus a DC offset of 1.5e-5: about **90 dB too quiet**. Worse, ``x + 32768`` is
      evaluated in float32, whose spacing near 32768 is 2⁻⁸ (2⁻⁹ just below), so the waveform is **quantised
      to steps of 1/256 of full scale** (1/512 for negative samples): anything quieter than about 0.002
      (-54 dBFS) becomes silence. The resulting log-power spectrogram lies around -180 to -70 dB instead of
      the design range.
    * **BatchNorm in training mode.** The release never calls ``.eval()``, so every BatchNorm normalises with
      the statistics of the current batch. Clips are processed in consecutive groups of ``batch_size`` (8 in
      the benchmark) in the given order; each stereo channel passes the trunk separately, so each BatchNorm
      sees the ``batch_size`` clips of one channel. **A clip's embedding depends on the other clips of its
      batch and on the order of clips**; a batch of a single clip is undefined (the reference crashes), so
      ``N`` must not leave a last group of 1. Here the running statistics are neither used nor modified
      (functional BatchNorm), so the model stays usable afterwards.

    ``mode="corrected"`` fixes both: the audio is scaled to the int16 range the model was trained on
    (``x · 32768``, then the same internal map, i.e. ``≈ x`` with the training-time 1.5e-5 offset and no
    quantisation beyond float32), and BatchNorm uses the stored running statistics (eval mode). Each clip's
    embedding is then independent of batch composition (``batch_size`` only bounds memory; results agree to
    float rounding). Corrected embeddings are not comparable with official ones or with published numbers.

    In both modes the two channel vectors (2048-d each) are summed before the final ``fc``, and the raw
    (un-normalised) 1024-d ``fc`` output is returned.

    Args:
        model (`AudioCLIPAudioModel`):
            the AudioCLIP audio branch (e.g. converted with :mod:`savg_hub.convert.audioclip`); it is moved to
            ``device``; its parameters and buffers are not modified.
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`):
            where to run the model.
        mode (`str`, *optional*, defaults to `"official"`):
            ``"official"`` or ``"corrected"``, see above.
        batch_size (`int`, *optional*, defaults to 8):
            clips per forward pass; in ``"official"`` mode this is the BatchNorm group size and changes the
            results (the benchmark uses 8).
    """

    def __init__(
        self,
        model: AudioCLIPAudioModel,
        device: str | torch.device = "cpu",
        mode: ExtractionMode = "official",
        batch_size: int = 8,
    ) -> None:
        if not isinstance(model, AudioCLIPAudioModel):
            raise TypeError(f"model must be an AudioCLIPAudioModel, got {type(model).__name__}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if mode == "official" and batch_size < 2:
            raise ValueError(
                f"official mode normalises with batch statistics and needs batch_size >= 2, got {batch_size}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.mode = mode
        self.batch_size = batch_size

    @property
    def embed_dim(self) -> int:
        """Size of one embedding (1024 for AudioCLIP)."""
        return int(self.model.config.embed_dim)

    def _check_audio(self, audio: np.ndarray, sample_rate: int | None) -> None:
        if not isinstance(audio, np.ndarray):
            raise TypeError(f"audio must be a numpy array (N, 2, samples), got {type(audio).__name__}")
        if sample_rate is not None and sample_rate != self.model.config.sample_rate:
            raise ValueError(
                f"audio sample rate {sample_rate} Hz differs from the model's "
                f"{self.model.config.sample_rate} Hz; resample first (the official protocol decodes at "
                "44,100 Hz)"
            )
        if audio.ndim != 3 or audio.shape[1] != 2 or audio.shape[0] < 1 or audio.shape[2] < 1:
            raise ValueError(f"audio must have shape (N >= 1, 2 channels, samples >= 1), got {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(
                f"audio must be float in [-1, 1], got dtype {audio.dtype} (int16 PCM: divide by 32768 first)"
            )
        high, low = float(audio.max()), float(audio.min())  # no full-size temporaries (NaN propagates)
        if not (np.isfinite(high) and np.isfinite(low)):
            raise ValueError(f"audio contains {int((~np.isfinite(audio)).sum())} non-finite values")
        peak = max(high, -low)
        if peak > 1.0:
            raise ValueError(
                f"audio must lie in [-1, 1], got a peak of {peak:g} (int16-scaled? divide by 32768)"
            )
        if self.mode == "official" and audio.shape[0] % self.batch_size == 1:
            raise ValueError(
                f"official mode normalises each batch of {self.batch_size} clips with its own statistics; "
                f"{audio.shape[0]} clips leave a last batch of 1, for which that is undefined (the reference "
                "crashes); pass a different number of clips or batch_size"
            )

    @torch.inference_mode()
    def embed(self, audio: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Embeddings of stereo excerpts.

        Args:
            audio: float ``(N, 2, samples)`` in [-1, 1] at the model's sample rate (44.1 kHz), channel 0 =
                left; the benchmark uses 80,000 samples. In ``"official"`` mode the clips are grouped into
                consecutive batches of ``batch_size`` in this order, and the grouping changes the result.
            sample_rate: rate of ``audio`` in Hz, checked against the model's when given.

        Returns:
            float32 ``(N, embed_dim)`` raw embeddings.

        Raises:
            TypeError: ``audio`` is not a NumPy array.
            ValueError: wrong shape, non-float dtype, non-finite or out-of-range samples, a sample rate other
                than the model's, or (official mode) a last batch of a single clip.
        """
        self._check_audio(audio, sample_rate)
        if self.mode == "official":
            # As the release: [-1, 1] audio goes in where int16-scaled audio is expected (float32 first).
            waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
            batch_norm = "batch"
        else:
            waveform = torch.from_numpy((audio.astype(np.float64) * _INT16_SCALE).astype(np.float32))
            batch_norm = "running"
        outputs = []
        for start in range(0, waveform.shape[0], self.batch_size):
            batch = waveform[start : start + self.batch_size].to(self.device)
            outputs.append(self.model(batch, batch_norm=batch_norm).embeddings.float().cpu())
        embeddings = torch.cat(outputs).numpy()
        logger.debug(
            "embedded %d clips (%s mode, batch size %d)", len(embeddings), self.mode, self.batch_size
        )
        return embeddings
