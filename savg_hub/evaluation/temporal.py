"""Temporal AV-Align: do the sound onsets fall where the picture moves?

The ``official`` protocol (SAVGBench 04e8d5b, ``av_quality_evaluation/av_align_metric.py``, from TempoTokens),
reproduced on already-decoded clips (decode each mp4 once with :func:`savg_hub.media.io.read_media`):

* **Video.** Grey frames as OpenCV's ``COLOR_BGR2GRAY`` gives them from the BGR frames it decodes; Farnebäck
  flow (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2, flags 0) between
  consecutive grey frames; ``cv2.mean`` of the flow magnitude over all pixels (letterbox bars included).
  The curve has one value per frame: the value of the pair (0, 1) is duplicated at index 0, so index 1 can
  never be a peak. Peaks are strict local maxima on indices ``1 .. T-2``, at time ``i / fps``.
* **Audio.** What ``librosa.load(path)`` (librosa 0.10.0, through audioread and the ffmpeg CLI) returns,
  rebuilt without librosa: 16-bit PCM (ffmpeg's ``-f s16le``), the channel average, soxr "HQ" resampling to
  22,050 Hz (length ``ceil(N * 22050 / sr)``). Then ``onset_strength`` defaults (128-band Slaney mel power
  spectrogram, n_fft 2048, hop 512, centred zero-padded frames, ``power_to_db`` with ref 1, amin 1e-10,
  top_db 80, first difference with lag 1, no max filter, half-wave rectification, mean over bands, 3 zero
  frames librosa pads in front) and ``onset_detect`` defaults (envelope scaled to [0, 1], ``peak_pick`` with
  pre_max 1, post_max 1, pre_avg 4, post_avg 5, wait 1, delta 0.07). Onset time = ``frame * 512 / 22050`` s.
* **Per clip.** ``I`` = number of onsets ``a`` with some video peak ``v`` such that
  ``v - 1/fps < a < v + 1/fps``; ``IoU = I / (|A| + |V| - I)``. Several onsets may match one peak, so a
  clip can score **above 1** (a quirk kept in ``official``). With neither onsets nor peaks the official code
  divides by zero; here the value is ``None`` ("undefined").
* **Corpus.** The arithmetic mean of the per-clip values. The official script crashes on an undefined clip and
  writes nothing; here undefined clips are left out of the mean and counted
  (:attr:`TemporalAVAlignResult.num_undefined`).

The ``corrected`` variant (never changing ``official``) matches each video peak at most once: ``I`` is the
size of a maximum matching between onsets and peaks within the same open window, so its ``IoU`` is in [0, 1].

Decoding: PyAV and the ffmpeg CLI (what audioread runs) both trim the AAC priming samples through the mp4 edit
list and keep the tail padding (80,896 samples for a 5-s 16-kHz AAC track, hence librosa's 111,485 samples at
22,050 Hz), so PCM from :func:`~savg_hub.media.io.read_media` lines up sample for sample with the official
decode.

The numbers below are the protocol's constants, not options: the official scores depend on every one of them.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

logger = logging.getLogger(__name__)

# librosa 0.10 defaults used by librosa.load / onset_strength / onset_detect
LIBROSA_SAMPLE_RATE = 22050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
# cv2.calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0)
FARNEBACK_ARGS = (0.5, 3, 15, 3, 5, 1.2, 0)


# ----------------------------------------------------------------------------------------------------------
# video side
# ----------------------------------------------------------------------------------------------------------

def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number; got {fps}")
    return fps


def gray_frames(frames_rgb: np.ndarray) -> np.ndarray:
    """Grey frames exactly as OpenCV's ``cvtColor(bgr, COLOR_BGR2GRAY)`` gives them.

    ``COLOR_RGB2GRAY`` on RGB applies the same fixed-point weight to each colour as ``COLOR_BGR2GRAY`` on BGR,
    so the result is bit-identical to the official path without reordering channels.

    Args:
        frames_rgb (`np.ndarray`): ``uint8`` RGB frames ``(T, H, W, 3)`` in [0, 255].

    Returns:
        `np.ndarray`: ``uint8`` grey frames ``(T, H, W)``.
    """
    import cv2

    frames_rgb = np.asarray(frames_rgb)
    if frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB; got shape {frames_rgb.shape}")
    if frames_rgb.dtype != np.uint8:
        raise ValueError(f"frames must be uint8; got dtype {frames_rgb.dtype}")
    out = np.empty(frames_rgb.shape[:3], dtype=np.uint8)
    for index, frame in enumerate(frames_rgb):
        out[index] = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return out


def _pair_motion(gray: np.ndarray, i: int) -> float:
    import cv2

    flow = cv2.calcOpticalFlowFarneback(gray[i - 1], gray[i], None, *FARNEBACK_ARGS)
    magnitude = cv2.magnitude(flow[..., 0], flow[..., 1])
    return cv2.mean(magnitude)[0]


def motion_curve(gray: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Official optical-flow curve: mean Farnebäck flow magnitude per frame pair, first value duplicated.

    OpenCV's Farnebäck keeps about one core busy, so the frame pairs are spread over ``threads`` threads
    (OpenCV releases the GIL). The values agree with the one-thread curve to ~1e-10 relative (OpenCV splits its
    internal sums differently when called from several threads); peaks are picked on the curve rounded to 1e-9.

    Args:
        gray (`np.ndarray`): ``uint8`` grey frames ``(T, H, W)``, ``T >= 2``.
        threads: threads for the frame pairs (default: ``cv2.getNumThreads()``, i.e. OpenCV's setting).

    Returns:
        `np.ndarray`: ``float64`` ``(T,)`` in pixels per frame; ``curve[0] == curve[1]`` (the pair (0, 1)) and
        ``curve[i]`` is the pair ``(i - 1, i)`` for ``i >= 1``.
    """
    import cv2

    gray = np.asarray(gray)
    if gray.ndim != 3:
        raise ValueError(f"grey frames must be (T, H, W); got shape {gray.shape}")
    if gray.dtype != np.uint8:
        raise ValueError(f"grey frames must be uint8; got dtype {gray.dtype}")
    if gray.shape[0] < 2:
        raise ValueError(f"optical flow needs at least 2 frames; got {gray.shape[0]}")
    threads = max(1, cv2.getNumThreads() if threads is None else int(threads))
    values = np.empty(gray.shape[0], dtype=np.float64)
    pairs = range(1, gray.shape[0])
    if threads == 1 or len(pairs) == 1:
        values[1:] = [_pair_motion(gray, i) for i in pairs]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(threads, len(pairs))) as pool:
            values[1:] = list(pool.map(lambda i: _pair_motion(gray, i), pairs))
    values[0] = values[1]
    return values


MOTION_CURVE_DECIMALS = 9
"""Peaks are picked on the flow curve rounded to 1e-9 px per frame. Farnebäck's mean flow varies from call to
call in the last bits (1e-20 to 1e-16 px, e.g. with the buffers' memory alignment), so on a still stretch of video
the official strict local maxima are decided by round-off and change from run to run; rounding removes those
noise peaks and keeps every real one (the official fixtures' peaks are unchanged)."""


def strict_local_maxima(curve: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices ``i`` in ``1 .. n-2`` with ``curve[i-1] < curve[i] > curve[i+1]`` (``find_local_max_indexes``).

    Returns:
        `np.ndarray`: ``int64`` indices in increasing order.
    """
    curve = np.asarray(curve, dtype=np.float64).reshape(-1)
    if curve.size < 3:
        return np.zeros(0, dtype=np.int64)
    middle = curve[1:-1]
    return (np.flatnonzero((curve[:-2] < middle) & (middle > curve[2:])) + 1).astype(np.int64)


def video_motion_peaks(frames_rgb: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Official video side: motion curve and the times of its peaks.

    Args:
        frames_rgb (`np.ndarray`): ``uint8`` RGB frames ``(T, H, W, 3)``, ``T >= 2``.
        fps (`float`): frame rate in frames per second.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: ``curve`` ``float64 (T,)`` (see :func:`motion_curve`) and
        ``peak_times`` ``float64 (P,)`` in seconds (``i / fps``) of the strict local maxima of the curve rounded to
        :data:`MOTION_CURVE_DECIMALS` decimals.
    """
    fps = _check_fps(fps)
    curve = motion_curve(gray_frames(frames_rgb))
    return curve, strict_local_maxima(np.round(curve, MOTION_CURVE_DECIMALS)) / fps


# ----------------------------------------------------------------------------------------------------------
# audio side
# ----------------------------------------------------------------------------------------------------------

def quantize_s16(audio: np.ndarray) -> np.ndarray:
    """The 16-bit round trip of audioread's ffmpeg decode: ``clip(rint(x * 32768), -32768, 32767) / 32768``.

    ffmpeg converts float samples with ``av_clip_int16(lrintf(x * 32768))`` (round half to even) and librosa
    divides by 32768. Samples outside [-1, 1) that a lossy decoder produces are clipped, as in the official
    path.

    Args:
        audio (`np.ndarray`): float PCM of any shape, nominally in [-1, 1].

    Returns:
        `np.ndarray`: ``float32``, same shape, on the 1/32768 grid in [-1, 32767/32768].
    """
    scaled = np.asarray(audio, dtype=np.float32) * np.float32(32768.0)
    return (np.clip(np.rint(scaled), -32768, 32767) / np.float32(32768.0)).astype(np.float32)


def resample_soxr_hq(y: np.ndarray, sample_rate: int, target_rate: int = LIBROSA_SAMPLE_RATE) -> np.ndarray:
    """``librosa.resample(y, orig_sr=sr, target_sr=22050, res_type="soxr_hq")``: soxr HQ, fixed length.

    Args:
        y (`np.ndarray`): ``float32`` mono ``(N,)``.
        sample_rate (`int`): rate of ``y`` in Hz.
        target_rate (`int`, *optional*, defaults to 22050): output rate in Hz.

    Returns:
        `np.ndarray`: ``float32`` ``(ceil(N * target_rate / sample_rate),)``; ``y`` itself when the rates
        match.
    """
    for name, rate in (("sample_rate", sample_rate), ("target_rate", target_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not (
            math.isfinite(rate) and rate > 0 and int(rate) == rate
        ):
            raise ValueError(f"{name} must be a positive whole number of Hz; got {rate!r}")
    sample_rate, target_rate = int(sample_rate), int(target_rate)
    if sample_rate == target_rate:
        return y
    try:
        import soxr
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            "Temporal AV-Align resamples audio with soxr (the resampler librosa uses): pip install soxr"
        ) from exc
    n_out = int(np.ceil(y.shape[-1] * (float(target_rate) / sample_rate)))
    out = np.asarray(soxr.resample(y, int(sample_rate), int(target_rate), quality="soxr_hq"), dtype=y.dtype)
    if out.shape[-1] > n_out:
        out = out[:n_out]
    elif out.shape[-1] < n_out:
        out = np.pad(out, (0, n_out - out.shape[-1]))
    return out


def librosa_load_mono(audio: np.ndarray, sample_rate: int, *, pcm16: bool = True) -> np.ndarray:
    """What ``librosa.load(mp4)`` (0.10, defaults) returns, from PCM the caller decoded once.

    Args:
        audio (`np.ndarray`): float PCM ``(C, N)`` in [-1, 1] at ``sample_rate`` (e.g. ``MediaData.audio``).
        sample_rate (`int`): rate in Hz.
        pcm16 (`bool`, *optional*, defaults to `True`): apply the 16-bit round trip of audioread's ffmpeg
            decode (:func:`quantize_s16`), as for any mp4. Pass `False` for audio librosa would read through
            soundfile (WAV/FLAC files), which it gets as float without that step.

    Returns:
        `np.ndarray`: ``float32`` mono ``(ceil(N * 22050 / sample_rate),)`` at 22,050 Hz.
    """
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] == 0 or audio.shape[1] == 0:
        raise ValueError(f"audio must be (channels, samples), both non-empty; got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be floating point in [-1, 1]; got dtype {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or Inf")
    y = quantize_s16(audio) if pcm16 else audio.astype(np.float32, copy=False)
    y = np.mean(y, axis=0) if y.shape[0] > 1 else y[0]
    return resample_soxr_hq(np.ascontiguousarray(y, dtype=np.float32), sample_rate)


_F_SP = 200.0 / 3  # Slaney mel scale: linear below 1 kHz, logarithmic above
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    hz = np.array(hz, dtype=np.float64, ndmin=1)
    mel = hz / _F_SP
    log_region = hz >= _MIN_LOG_HZ
    mel[log_region] = _MIN_LOG_MEL + np.log(hz[log_region] / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.array(mel, dtype=np.float64, ndmin=1)
    hz = _F_SP * mel
    log_region = mel >= _MIN_LOG_MEL
    hz[log_region] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel[log_region] - _MIN_LOG_MEL))
    return hz


@lru_cache(maxsize=8)
def slaney_mel_filterbank(sample_rate: int = LIBROSA_SAMPLE_RATE, n_fft: int = N_FFT,
                          n_mels: int = N_MELS) -> np.ndarray:
    """Triangular mel filters on the Slaney scale, Slaney area normalisation, ``fmin = 0``, ``fmax = sr / 2``.

    The construction of ``librosa.filters.mel`` (htk=False, norm="slaney", dtype float32).

    Returns:
        `np.ndarray`: ``float32`` ``(n_mels, 1 + n_fft // 2)`` (read-only; cached).
    """
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    min_mel, max_mel = _hz_to_mel_slaney(np.array([0.0, sample_rate / 2.0]))
    mel_f = _mel_to_hz_slaney(np.linspace(min_mel, max_mel, n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    weights.setflags(write=False)
    return weights


def _power_spectrogram(y: np.ndarray) -> np.ndarray:
    """``|STFT|^2`` as librosa computes it: periodic Hann, centred zero-padded frames; float32 (1025, M)."""
    from scipy.signal import get_window

    window = get_window("hann", N_FFT, fftbins=True)  # float64, as librosa applies it
    padded = np.pad(y, (N_FFT // 2, N_FFT // 2), mode="constant")
    n_frames = 1 + (padded.shape[0] - N_FFT) // HOP_LENGTH
    step = padded.strides[0]
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(N_FFT, n_frames), strides=(step, step * HOP_LENGTH), writeable=False
    )
    # librosa: float32 frames x float64 window, float64 FFT, stored as complex64 in a Fortran-ordered matrix
    spectrum = np.asfortranarray(np.fft.rfft(window[:, None] * frames, axis=0).astype(np.complex64))
    return np.abs(spectrum) ** 2


def onset_strength(y: np.ndarray, sample_rate: int = LIBROSA_SAMPLE_RATE) -> np.ndarray:
    """``librosa.onset.onset_strength(y=y, sr=sample_rate)`` with its 0.10 defaults.

    Mel power spectrogram (n_fft 2048, hop 512, 128 Slaney bands up to ``sr / 2``), ``power_to_db`` (ref 1.0,
    amin 1e-10, top_db 80), ``max(0, S[:, t] - S[:, t - 1])`` averaged over bands, then
    ``lag + n_fft // (2 hop)`` = 3 zeros in front and the tail cut to the number of STFT frames.

    Args:
        y (`np.ndarray`): ``float32`` mono ``(N,)`` at ``sample_rate``.
        sample_rate (`int`, *optional*, defaults to 22050): rate of ``y`` in Hz (sets the mel scale).

    Returns:
        `np.ndarray`: ``float32`` ``(1 + N // 512,)`` onset strength (dB, mean over bands); frame ``t`` is at
        ``t * 512 / sample_rate`` s.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] == 0:
        raise ValueError(f"y must be mono (N,) with N > 0; got shape {y.shape}")
    if y.dtype != np.float32:
        raise ValueError(f"y must be float32 (as librosa.load returns); got dtype {y.dtype}")
    power = _power_spectrogram(y)
    mel = np.einsum("...ft,mf->...mt", power, slaney_mel_filterbank(int(sample_rate)), optimize=True)
    log_mel = 10.0 * np.log10(np.maximum(1e-10, mel))
    log_mel -= 10.0 * np.log10(np.maximum(1e-10, 1.0))
    log_mel = np.maximum(log_mel, log_mel.max() - 80.0)
    lag = 1
    flux = np.maximum(0.0, log_mel[..., lag:] - log_mel[..., :-lag])
    envelope = np.mean(flux, axis=-2)
    envelope = np.pad(envelope, (lag + N_FFT // (2 * HOP_LENGTH), 0), mode="constant")
    return envelope[: log_mel.shape[-1]].astype(np.float32, copy=False)


def peak_pick(x: np.ndarray, pre_max: int, post_max: int, pre_avg: int, post_avg: int, delta: float,
              wait: int) -> np.ndarray:
    """``librosa.util.peak_pick`` (0.10).

    Picks frames ``n`` with ``x[n] == max(x[n - pre_max : n + post_max])``,
    ``x[n] >= mean(x[n - pre_avg : n + post_avg]) + delta`` (windows truncated at the ends), ``x[n] != 0``,
    and more than ``wait`` frames after the previously picked one.

    Args:
        x (`np.ndarray`): ``float32`` envelope ``(M,)``.

    Returns:
        `np.ndarray`: ``int64`` frame indices.
    """
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"peak_pick needs a 1-D envelope; got shape {x.shape}")
    for name, value in (("pre_max", pre_max), ("pre_avg", pre_avg), ("wait", wait), ("delta", delta)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative; got {value}")
    for name, value in (("post_max", post_max), ("post_avg", post_avg)):
        if value <= 0:
            raise ValueError(f"{name} must be positive; got {value}")
    pre_max, post_max, pre_avg, post_avg, wait = (
        int(np.ceil(v)) for v in (pre_max, post_max, pre_avg, post_avg, wait)
    )
    n = x.shape[0]
    mov_max = maximum_filter1d(x, pre_max + post_max, mode="constant", cval=x.min(),
                               origin=int(np.ceil(0.5 * (pre_max - post_max))))
    mov_avg = uniform_filter1d(x, pre_avg + post_avg, mode="nearest",
                               origin=int(np.ceil(0.5 * (pre_avg - post_avg))))
    # truncated windows at both ends: the mean over the part of the window inside the signal
    for i in [*range(min(pre_avg, n)), *range(max(n - post_avg, 0), n)]:
        mov_avg[i] = np.mean(x[max(i - pre_avg, 0): i + post_avg])
    detections = x * (x == mov_max)
    detections = detections * (detections >= (mov_avg + delta))
    peaks: list[int] = []
    last = -np.inf
    for i in np.flatnonzero(detections):
        if i > last + wait:
            peaks.append(int(i))
            last = i
    return np.asarray(peaks, dtype=np.int64)


def onset_frames(envelope: np.ndarray, sample_rate: int = LIBROSA_SAMPLE_RATE) -> np.ndarray:
    """``librosa.onset.onset_detect(onset_envelope=envelope, sr=sample_rate)`` (0.10 defaults), in frames.

    The envelope is shifted and scaled to [0, 1] (``/ (max + tiny)``); an all-zero or non-finite envelope has
    no onsets. Peak picking uses the windows librosa derives from the rate; at 22,050 Hz with hop 512:
    pre_max 1, post_max 1, pre_avg 4, post_avg 5, wait 1, delta 0.07.

    Returns:
        `np.ndarray`: ``int64`` onset frame indices.
    """
    envelope = np.asarray(envelope)
    if envelope.ndim != 1:
        raise ValueError(f"onset envelope must be 1-D; got shape {envelope.shape}")
    normalised = envelope - np.min(envelope)
    normalised /= np.max(normalised) + np.finfo(normalised.dtype).tiny
    if not normalised.any() or not np.all(np.isfinite(normalised)):
        return np.zeros(0, dtype=np.int64)
    sr = float(sample_rate)
    return peak_pick(
        normalised,
        pre_max=0.03 * sr // HOP_LENGTH,
        post_max=0.00 * sr // HOP_LENGTH + 1,
        pre_avg=0.10 * sr // HOP_LENGTH,
        post_avg=0.10 * sr // HOP_LENGTH + 1,
        delta=0.07,
        wait=0.03 * sr // HOP_LENGTH,
    )


def audio_onsets_from_librosa_y(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Onset envelope and onset times of a 22,050-Hz mono signal (what ``librosa.load`` returned).

    Returns:
        `tuple[np.ndarray, np.ndarray]`: ``envelope`` ``float32 (M,)`` and ``onset_times`` ``float64 (K,)``
        in seconds.
    """
    envelope = onset_strength(y, LIBROSA_SAMPLE_RATE)
    frames = onset_frames(envelope, LIBROSA_SAMPLE_RATE)
    return envelope, (frames * HOP_LENGTH).astype(np.int64) / float(LIBROSA_SAMPLE_RATE)


def audio_onsets(audio: np.ndarray, sample_rate: int, *, pcm16: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Official audio side: onset envelope and onset times of a clip's PCM.

    Args:
        audio (`np.ndarray`): float PCM ``(C, N)`` in [-1, 1] at ``sample_rate`` (stereo or mono).
        sample_rate (`int`): rate in Hz.
        pcm16 (`bool`, *optional*, defaults to `True`): see :func:`librosa_load_mono`.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: ``envelope`` ``float32 (M,)`` (un-normalised onset strength at
        22,050 Hz, hop 512) and ``onset_times`` ``float64 (K,)`` in seconds (``frame * 512 / 22050``).
    """
    return audio_onsets_from_librosa_y(librosa_load_mono(audio, sample_rate, pcm16=pcm16))


# ----------------------------------------------------------------------------------------------------------
# scores
# ----------------------------------------------------------------------------------------------------------

def _times(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    times = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name} must be finite times in seconds; got {times}")
    return times


def temporal_iou_official(onsets: Sequence[float] | np.ndarray, peaks: Sequence[float] | np.ndarray,
                          fps: float) -> float | None:
    """Official per-clip IoU (``calc_intersection_over_union``); can exceed 1.

    ``I`` counts onsets ``a`` with some peak ``v`` such that ``v - 1/fps < a < v + 1/fps`` (several onsets may
    use the same peak); ``IoU = I / (|A| + |V| - I)``.

    Args:
        onsets: audio onset times in seconds.
        peaks: video peak times in seconds.
        fps (`float`): frame rate; the window is ±1/fps, open.

    Returns:
        `float | None`: the IoU, or ``None`` with neither an onset nor a peak (the official code raises
        ``ZeroDivisionError`` there).
    """
    onsets, peaks, fps = _times(onsets, "onsets"), _times(peaks, "peaks"), _check_fps(fps)
    window = 1 / fps
    intersection = 0
    if onsets.size and peaks.size:
        inside = ((peaks[None, :] - window) < onsets[:, None]) & (onsets[:, None] < (peaks[None, :] + window))
        intersection = int(inside.any(axis=1).sum())
    union = onsets.size + peaks.size - intersection
    return intersection / union if union else None


def match_onsets_to_peaks(onsets: Sequence[float] | np.ndarray, peaks: Sequence[float] | np.ndarray,
                          fps: float) -> list[tuple[int, int]]:
    """A maximum one-to-one matching of onsets to peaks with ``|a - v| < 1/fps`` (the official open window).

    A sweep in time order gives each onset the earliest still-free peak inside its window. All windows have
    the same width, so sorting onsets sorts both ends of their windows: a peak passed over because it lies
    left of the current window lies left of every later window, and taking the earliest feasible peak leaves
    later onsets the peaks most useful to them (the exchange argument for interval scheduling), so the
    matching is maximum.
    Greedy by smallest time difference is *not*: peaks 0.0, 0.3 and onsets 0.2, 0.45 at ±0.25 s give it one
    pair instead of two.

    Returns:
        `list[tuple[int, int]]`: ``(onset_index, peak_index)`` pairs into the given arrays.
    """
    onsets, peaks, fps = _times(onsets, "onsets"), _times(peaks, "peaks"), _check_fps(fps)
    window = 1 / fps
    peak_order = np.argsort(peaks, kind="stable")
    pairs: list[tuple[int, int]] = []
    j = 0
    for a_index in np.argsort(onsets, kind="stable"):
        a = onsets[a_index]
        while j < peak_order.size and not a < peaks[peak_order[j]] + window:
            j += 1  # this peak's window ends before a, hence before every later onset
        if j < peak_order.size and peaks[peak_order[j]] - window < a:
            pairs.append((int(a_index), int(peak_order[j])))
            j += 1
    return pairs


def temporal_iou_corrected(onsets: Sequence[float] | np.ndarray, peaks: Sequence[float] | np.ndarray,
                           fps: float) -> float | None:
    """Corrected per-clip IoU in [0, 1]: each peak matched at most once.

    ``I`` = size of a maximum onset/peak matching (:func:`match_onsets_to_peaks`);
    ``IoU = I / (|A| + |V| - I)``.

    Returns:
        `float | None`: the IoU, or ``None`` with neither an onset nor a peak.
    """
    onsets, peaks = _times(onsets, "onsets"), _times(peaks, "peaks")
    intersection = len(match_onsets_to_peaks(onsets, peaks, fps))
    union = onsets.size + peaks.size - intersection
    return intersection / union if union else None


@dataclass
class ClipTemporalScore:
    """One clip's Temporal AV-Align analysis.

    Attributes:
        clip_id: the clip's name.
        fps: frame rate used for peak times and the ±1/fps window.
        motion_curve: ``float64 (T,)`` official flow curve, pixels per frame.
        video_peaks: ``float64`` peak times in seconds.
        onset_envelope: ``float32 (M,)`` un-normalised onset strength (22,050 Hz, hop 512).
        audio_onsets: ``float64`` onset times in seconds.
        official: official IoU (may exceed 1); ``None`` if undefined.
        corrected: one-to-one IoU in [0, 1]; ``None`` if undefined.
    """

    clip_id: str
    fps: float
    motion_curve: np.ndarray
    video_peaks: np.ndarray
    onset_envelope: np.ndarray
    audio_onsets: np.ndarray
    official: float | None
    corrected: float | None

    def to_dict(self) -> dict:
        """JSON-friendly row (times as lists of floats)."""
        return {
            "clip_id": self.clip_id,
            "fps": self.fps,
            "video_peaks_s": [float(v) for v in self.video_peaks],
            "audio_onsets_s": [float(v) for v in self.audio_onsets],
            "official": self.official,
            "corrected": self.corrected,
        }


def _mean_defined(values: Iterable[float | None]) -> float | None:
    total, count = 0, 0
    for value in values:
        if value is not None:
            total += value  # running sum from int 0, one division at the end: as the official script
            count += 1
    return total / count if count else None


@dataclass
class TemporalAVAlignResult:
    """Temporal AV-Align over a set of clips: per-clip values, means, undefined count."""

    per_clip: list[ClipTemporalScore] = field(default_factory=list)

    @property
    def official(self) -> float | None:
        """Mean official IoU over the clips with a defined value, in clip order; ``None`` if there is none."""
        return _mean_defined(c.official for c in self.per_clip)

    @property
    def corrected(self) -> float | None:
        """Mean corrected IoU over the clips with a defined value; ``None`` if there is none."""
        return _mean_defined(c.corrected for c in self.per_clip)

    @property
    def num_clips(self) -> int:
        return len(self.per_clip)

    @property
    def num_undefined(self) -> int:
        """Clips with neither an onset nor a video peak (the official script crashes on the first one)."""
        return sum(c.official is None for c in self.per_clip)

    @property
    def undefined_clips(self) -> list[str]:
        return [c.clip_id for c in self.per_clip if c.official is None]

    def official_line(self) -> str:
        """The line the official script appends to ``results.out``: ``Temporal AV-Align: <repr>\\n``.

        Computed over the defined clips. The official script writes nothing when any clip is undefined
        (``ZeroDivisionError``): check :attr:`num_undefined` before comparing with published numbers.

        Raises:
            ValueError: no clip has a defined value.
        """
        score = self.official
        if score is None:
            raise ValueError(
                f"Temporal AV-Align is undefined: none of the {self.num_clips} clips has an onset or a "
                "video peak"
            )
        return f"Temporal AV-Align: {score!r}\n"

    def to_dict(self) -> dict:
        """Corpus scores, counts and per-clip rows, JSON-friendly."""
        return {
            "official": self.official,
            "corrected": self.corrected,
            "num_clips": self.num_clips,
            "num_undefined": self.num_undefined,
            "undefined_clips": self.undefined_clips,
            "per_clip": [c.to_dict() for c in self.per_clip],
        }


def score_clip(clip_id: str, frames_rgb: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int, *,
               pcm16: bool = True) -> ClipTemporalScore:
    """Analyse one decoded clip: official video and audio sides, official and corrected IoU.

    Args:
        clip_id (`str`): name for the report.
        frames_rgb (`np.ndarray`): ``uint8`` RGB ``(T, H, W, 3)``.
        fps (`float`): frame rate in frames per second.
        audio (`np.ndarray`): float PCM ``(C, N)`` in [-1, 1].
        sample_rate (`int`): audio rate in Hz.
        pcm16 (`bool`, *optional*, defaults to `True`): see :func:`librosa_load_mono`.
    """
    fps = _check_fps(fps)
    curve, peaks = video_motion_peaks(frames_rgb, fps)
    envelope, onsets = audio_onsets(audio, sample_rate, pcm16=pcm16)
    official = temporal_iou_official(onsets, peaks, fps)
    corrected = temporal_iou_corrected(onsets, peaks, fps)
    if official is None:
        logger.warning("Temporal AV-Align undefined for clip %s: no audio onset and no video peak", clip_id)
    return ClipTemporalScore(clip_id, fps, curve, peaks, envelope, onsets, official, corrected)


def temporal_av_align(
    clips: Iterable[tuple[str, np.ndarray, float, np.ndarray, int]], *, pcm16: bool = True
) -> TemporalAVAlignResult:
    """Temporal AV-Align of decoded clips.

    Args:
        clips: ``(clip_id, frames_rgb uint8 (T, H, W, 3), fps, audio float (C, N), sample_rate)`` tuples, e.g.
            from one :func:`savg_hub.media.io.read_media` per file.
        pcm16 (`bool`, *optional*, defaults to `True`): see :func:`librosa_load_mono`.

    Returns:
        :class:`TemporalAVAlignResult`; its ``official`` mean is over the defined clips, in the order given.
    """
    result = TemporalAVAlignResult()
    for clip_id, frames_rgb, fps, audio, sample_rate in clips:
        result.per_clip.append(score_clip(clip_id, frames_rgb, fps, audio, sample_rate, pcm16=pcm16))
    if result.num_undefined:
        logger.warning("Temporal AV-Align: %d of %d clips undefined (left out of the mean): %s",
                       result.num_undefined, result.num_clips, ", ".join(result.undefined_clips))
    return result


def temporal_av_align_from_files(paths: Iterable[str | os.PathLike]) -> TemporalAVAlignResult:
    """Decode each file once (:func:`savg_hub.media.io.read_media`) and score it (``clip_id`` = file stem).

    Raises:
        ValueError: a file has no video or no audio stream.
    """
    from pathlib import Path

    from savg_hub.media.io import read_media

    def decoded():
        for path in paths:
            data = read_media(path)
            if data.video is None or data.audio is None:
                missing = "video" if data.video is None else "audio"
                raise ValueError(f"Temporal AV-Align needs video and audio; {path} has no {missing} stream")
            yield Path(path).stem, data.video, float(data.fps), data.audio, int(data.sample_rate)

    return temporal_av_align(decoded())
