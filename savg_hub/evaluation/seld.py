"""Official SAVGBench SELD inference: stereo audio -> per-clip ``(frame, class, x)`` detections.

Reproduces the official path (commit 04e8d5b, ``stereo_seld_infer``) number for number, but batches the
1.28-s windows of many clips together and keeps the network resident:

1. features (:func:`compute_seld_features`): the stereo signal is trimmed to a multiple of 160 samples, 352
   zeros are prepended, and a ``center=False`` STFT (n_fft 512, hop 160, periodic Hann) gives
   ``[|X_L|, |X_R|, angle(X_R) - angle(X_L) wrapped to [0, 2*pi)]``, ``(3, 257, T)``, 100 frames/s;
2. loop padding (last 4 frames prepended, first 128 appended) and windows of 128 frames starting at
   ``int(t * 100)`` for ``t`` in :func:`seld_window_start_times` (``[0, 120, 240, 359, 480]`` for 5 s);
3. the network on every window; net frames ``[4, 124)`` of each window are kept;
4. post-processing (:func:`seld_postprocess`): per 100-ms CSV frame and class, mean sigmoid activity and
   activity-weighted position; a row ``(frame, class, x * 256)`` when the activity is > 0.2.

The official code runs one clip at a time (a zero-padded batch of 8 windows); in eval mode the network has
no interaction between batch items, so :class:`SELDInference` gives the same numbers (to float32 rounding of
the convolutions) with any batch composition. Rows are sorted by ``(frame, class)`` (stable); the official
code sorts by frame only, with NumPy's unstable quicksort, so within one frame its class order can differ.
The metric does not depend on that order.

Example::

    model = StereoSELDModel.from_pretrained("stereo-seld/")
    seld = SELDInference(model, device="cuda", batch_size=64)
    for prediction, name in zip(seld.predict([audio_a, audio_b]), ["a", "b"]):
        write_seld_csv(f"pred_seld/{name}.csv", prediction.rows)
"""

from __future__ import annotations

import base64
import functools
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from savg_hub.models.stereo_seld import StereoSELDModel
from savg_hub.evaluation.csv_io import read_seld_csv, write_seld_csv  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

# The official inference protocol (util/args.py, seld_predictor.py of SAVGBench 04e8d5b).
SELD_SAMPLE_RATE = 16_000  # Hz
SELD_FFT_SIZE = 512
SELD_HOP_SIZE = 160  # samples: 10-ms STFT frames, 100 frames/s
SELD_PRE_PAD = SELD_FFT_SIZE - SELD_HOP_SIZE  # 352 zeros before the signal
SELD_FRAME_RATE = SELD_SAMPLE_RATE // SELD_HOP_SIZE  # 100 net frames per second
SELD_WINDOW_FRAMES = 128  # net input window (1.27 s)
SELD_WINDOW_HOP_S = 1.2  # window hop in seconds
SELD_WINDOW_HOP_FRAMES = 120
SELD_WINDOW_MARGIN = (SELD_WINDOW_FRAMES - SELD_WINDOW_HOP_FRAMES) // 2  # 4 frames dropped on each side
SELD_CSV_FRAME_RATE = 10  # CSV frames per second (100 ms)
SELD_NET_FRAMES_PER_CSV_FRAME = SELD_FRAME_RATE // SELD_CSV_FRAME_RATE  # 10
SELD_CSV_FRAMES_PER_WINDOW = SELD_WINDOW_HOP_FRAMES // SELD_NET_FRAMES_PER_CSV_FRAME  # 12
SELD_FRAME_WIDTH = 256  # pixels: x = doa * 256
SELD_THRESHOLD = 0.2  # activity threshold (strict >)


def check_seld_audio(audio: np.ndarray, sample_rate: int = SELD_SAMPLE_RATE) -> np.ndarray:
    """Validate one clip's audio for SELD and return it as ``float32 (2, N)``.

    Args:
        audio: floating-point stereo PCM ``(2, N)``, channel 0 = left, nominally in [-1, 1].
        sample_rate: its sample rate in Hz; must be 16000 (no silent resampling).

    Raises:
        ValueError: mono or multichannel audio, samples-first layout, non-float dtype, non-finite samples,
            fewer than 160 samples, or a sample rate other than 16000 Hz.
    """
    if sample_rate != SELD_SAMPLE_RATE:
        raise ValueError(
            f"SELD expects audio at {SELD_SAMPLE_RATE} Hz, got sample_rate={sample_rate}; resample first "
            "(e.g. savg_hub.media.clip.resample_audio; the official code uses librosa's soxr_hq)"
        )
    audio = np.asarray(audio)
    if audio.ndim == 1 or (audio.ndim == 2 and audio.shape[0] == 1):
        raise ValueError(f"SELD needs stereo audio (2, N); got mono audio of shape {audio.shape}")
    if audio.ndim != 2 or audio.shape[0] != 2:
        hint = " (samples-first? pass audio.T)" if audio.ndim == 2 and audio.shape[1] == 2 else ""
        raise ValueError(f"SELD needs stereo audio of shape (2, N); got shape {audio.shape}{hint}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"SELD needs floating-point audio in [-1, 1]; got dtype {audio.dtype}")
    if audio.shape[1] < SELD_HOP_SIZE:
        raise ValueError(f"SELD needs at least {SELD_HOP_SIZE} samples; got {audio.shape[1]}")
    audio = audio.astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        raise ValueError("SELD audio contains NaN or infinite samples")
    return audio


# --------------------------------------------------------------------------------------------------------
# Bit-exact official STFT.
#
# The official features come from librosa 0.10.0: a scipy 1.10.1 Hann window, NumPy 1.23.5's pocketfft in
# float64 rounded to complex64, then NumPy's float32 ``abs`` and ``angle`` (glibc 2.36 ``atan2f``). Wherever
# the spectrum is well conditioned, any accurate STFT agrees with them to float32 rounding. The phase
# difference is ill-conditioned in three situations that real recordings rarely hit and synthetic test
# signals hit all the time: digital silence (the sign of an exact zero decides between 0 and pi), exactly
# proportional channels (a one-ulp difference between the two phases decides between 0 and 2*pi) and bins
# that hold only FFT round-off (the phase is the round-off's). There the official value is an artefact of
# those libraries, and the network sees it. To reproduce the official numbers everywhere, the helpers below
# perform the same floating-point operations in the same order: the window values as the official
# environment produced them, pocketfft's radix-4/radix-2 real FFT with its own twiddle factors, fdlibm's
# float arctangent as glibc 2.36 ships it, and NumPy's AVX-512 complex64 absolute value. They were checked
# bit for bit against NumPy 1.23.5 and glibc 2.36 on random inputs and on the parity fixtures. NumPy 1.23
# uses AVX-512 kernels for ``abs`` and ``cos`` when the processor has them, as the fixtures' machine did; on
# other processors the official code itself gives slightly different values in the degenerate bins.

# Periodic 512-point Hann window, exactly as ``scipy.signal.get_window("hann", 512)`` returns it under scipy
# 1.10.1 + NumPy 1.23.5 on AVX-512 hardware (NumPy's SIMD float64 cosine); little-endian float64, base64.
# 232 of its 512 values differ from a correctly rounded Hann window (by at most 2.2e-16), which is enough to
# change the round-off bins described above.
_OFFICIAL_HANN_512_B64 = (
    "AAAAAAAAAAAAgKSNLL0DPwCIl9n7vCM/AIgiBEA0Nj8ABCUNObxDPwCkHOM01U4/AMZ3/lIyVj8A+KRCAzVePwBubRcuuWM/gMMs"
    "SQH1aD8AFzCPx81uPwAwipqjoXI/gLrWPaAqdj+Amb3NtgF6P8AVrWPBJn4/APHbi8tMgT8AahQBBq2DP2Aamp74M4Y/wE5jc4rh"
    "iD+gpDgRobWLPwDluY0gsI4/wMO4wXXokD+waXuJ8YuSP6BID3JzQpQ/QCKdk+oLlj8g7zJLReiXP9DucTtx15k/IOhDTVvZmz/A"
    "kZew7+2dP7AOku6MCqA/IO6ZSWInoT8w+zrubE2iP9iVa4ahfKM/sMuwYfS0pD84tpF1WfalPyhRDl7EQKc/cMQZXiiUqD8gHRhg"
    "ePCpP2hwX/amVas/OGO8W6bDrD+IEvpzaDquP8BVbczeua8/YKtBTv2gsD+8vCljVmmxPwxHmuvyNbI/vKMqBMsGsz8A+Kuf1tuz"
    "P8SreIcNtbQ/cHnFW2eStT98FPST23O2P/xh535hWbc/sEFZQ/BCuD8A4zHgfjC5P/ii4CwEIro/EHC22XYXuz/Ir0FwzRC8P/ii"
    "q1P+Db0/AEUXwf8Ovj9MogHQxxO/PxzRUTkmDsA/pKAqu0GUwD9AG/lBMRzBP9QAIJDvpcE/pK4qVncxwj9oiAEzw77CP4YPH7TN"
    "TcM/QqbFVZHewz/o/DWDCHHEP8Am5pYtBcU/2lS52vqaxT8sNDiIajLGP5Ttych2y8Y/WMTttRlmxz9cUnVZTQLIP5Jev60LoMg/"
    "HkzznU4/yT+YHz0GEODJPy4YCrRJgso/RNpFZvUlyz9QKZjNDMvLP3Yuo4yJccw/bklCOGUZzT/AaclXmcLNP+jsRGUfbc4/KAC6"
    "zfAYzz+WgmfxBsbPP6SyA5ItOtA/lkOIVvOR0D/ihPxjUerQPz6OPFJEQ9E/0B1ns8ic0T+PcP8T2/bRP55RD/t3UdI/HWBJ6pus"
    "0j88iSteQwjTPxW2Ic5qZNM/T6uorA7B0z+MGXFnKx7UPzDdgme9e9Q/HmxgEcHZ1D8ScCrFMjjVP0uMw94Ol9U/AE30tVH21T9W"
    "P4+e91XWP34wlej8tdY/YpJZ4F0W1z/FBKfOFnfXPykB5Pgj2Nc/Oag3oYE52D87r64GLJvYPyhsYGUf/dg/7P6T9ldf2T9+luXw"
    "0cHZPzTQa4iJJNo/DjDd7nqH2j9rsLVTouraP7JnXOT7Tds/o0JJzIOx2z+e0So1NhXcP6UnDEcPedw/esl6KAvd3D9+q6z+JUHd"
    "P8I8pu1bpd0/8n1gGKkJ3j9/Iu+gCW7eP6O6pqh50t4/zeRCUPU23z/jhAy4eJvfPwAAAAAAAOA/j735o0My4D+ajd5XhWTgP6+i"
    "rCvDluA/wW6IL/vI4D8Hwc9zK/vgP6DhLAlSLeE/QqqpAG1f4T9Em8JrepHhPy7seVx4w+E/MZdq5WT14T+vXtsZPifiPyfM0Q0C"
    "WeI/yycl1q6K4j/6Z5GIQrziP+cXyju77eI/wjSNBxcf4z+KALYEVFDjP+zJT01wgeM/Y6io/Gmy4z/kK2QvP+PjP2z/jQPuE+Q/"
    "nn2smHRE5D/QNtMP0XTkP8FntYsBpeQ/VWC4MATV5D+B2QUl1wTlP9s5npB4NOU/+MdqneZj5T/yyU93H5PlP2iRPkwhwuU/OnNH"
    "TOrw5T9ZqqupeB/mP/Yk75jKTeY/YjvqUN575j/yT9sKsqnmPzBXeAJE1+Y/uUcAdpIE5z8YcUymmzHnP+O44dZdXuc/j70BTteK"
    "5z823rtUBrfnP68m/jbp4uc/XB+mQ34O6D/2f5HMwznoP8fEria4ZOg/kKUNqlmP6D+kbe+xprnoP2Q015yd4+g/rfWZzDwN6T9w"
    "iW6mgjbpP/Z5/ZJtX+k/Grhw/vuH6T/6LINYLLDpP1wokBT91+k/aquiqWz/6T/qjoSSeSbqP5yEzU0iTeo/9PLxXWVz6j/MqlFJ"
    "QZnqP1B2Rpq0vuo/x4Ay373j6j9wlo6qWwjrPyA8+JKMLOs/550/M09Q6z9YVHUqonPrP8z/9xuElus/MbmBr/O46z/YVzWR79rr"
    "P7iLq3F2/Os/uMv/BYcd7D9gF90HID7sP6KLijVAXuw/CMr3UeZ97D/+MckkEZ3sP6LrY3q/u+w/ocP5I/DZ7D/K15T3offsP8ET"
    "I9DTFO0/cX2BjYQx7T/SUIcUs03tP4nqEE9eae0/AIEKLIWE7T+Iq3qfJp/tPx63jKJBue0/aMiaM9XS7T+UyjdW4OvtP6QqORNi"
    "BO4/2F7AeFkc7j/MOUSaxTPuP/oImpClSu4/Ln7+efhg7j+5Yx56vXbuP+4aH7rzi+4/nOSmaJqg7j9F8+S5sLTuP6JGmec1yO4/"
    "TVAcMSnb7j8eYWbbie3uPxXfFjFX/+4/ckN7gpAQ7z+/4JUlNSHvP4pwJHZEMe8/h2im1b1A7z/uFmOroE/vP7uFb2TsXe8/siS0"
    "c6Br7z/iOfJRvHjvP2wYyX0/he8/bh27eymR7z/FcjLWeZzvP5aXhR0wp+8/WK7750ux7z88kNDRzLrvP9SlOH2yw+8/zYRkkvzL"
    "7z+LUoS/qtPvP6Dryri82u8/6c9wODLh7z8807b+CufvP5KS6NFG7O8/hK1efuXw7z8dxIDW5vTvP9c4x7JK+O8/v7a88RD77z+v"
    "e/93Of3vP4hmQjDE/u8/bslNC7H/7z8AAAAAAADwP27JTQux/+8/iGZCMMT+7z+ve/93Of3vP7+2vPEQ++8/1zjHskr47z8dxIDW"
    "5vTvP4StXn7l8O8/kpLo0Ubs7z8807b+CufvP+nPcDgy4e8/oOvKuLza7z+LUoS/qtPvP82EZJL8y+8/1KU4fbLD7z88kNDRzLrv"
    "P1iu++dLse8/lpeFHTCn7z/FcjLWeZzvP24du3spke8/bBjJfT+F7z/iOfJRvHjvP7IktHOga+8/u4VvZOxd7z/uFmOroE/vP4do"
    "ptW9QO8/inAkdkQx7z+/4JUlNSHvP3JDe4KQEO8/Fd8WMVf/7j8eYWbbie3uP01QHDEp2+4/okaZ5zXI7j9F8+S5sLTuP5zkpmia"
    "oO4/7hofuvOL7j+5Yx56vXbuPy5+/nn4YO4/+giakKVK7j/MOUSaxTPuP9hewHhZHO4/pCo5E2IE7j+UyjdW4OvtP2jImjPV0u0/"
    "HreMokG57T+Iq3qfJp/tPwCBCiyFhO0/ieoQT15p7T/SUIcUs03tP3F9gY2EMe0/wRMj0NMU7T/K15T3offsP6HD+SPw2ew/outj"
    "er+77D/+MckkEZ3sPwjK91Hmfew/oouKNUBe7D9gF90HID7sP7jL/wWHHew/uIurcXb86z/YVzWR79rrPzG5ga/zuOs/zP/3G4SW"
    "6z9YVHUqonPrP+edPzNPUOs/IDz4kows6z9wlo6qWwjrP8eAMt+94+o/UHZGmrS+6j/MqlFJQZnqP/by8V1lc+o/nITNTSJN6j/s"
    "joSSeSbqP2qroqls/+k/XiiQFP3X6T/6LINYLLDpPxm4cP77h+k/9nn9km1f6T9uiW6mgjbpP631mcw8Dek/ZDTXnJ3j6D+mbe+x"
    "prnoP5ClDapZj+g/yMSuJrhk6D/2f5HMwznoP10fpkN+Dug/ryb+Nuni5z803rtUBrfnP4+9AU7Xiuc/4bjh1l1e5z8YcUymmzHn"
    "P7lHAHaSBOc/MVd4AkTX5j/yT9sKsqnmP2Q76lDee+Y/9iTvmMpN5j9bqqupeB/mPzpzR0zq8OU/ZpE+TCHC5T/yyU93H5PlP/bH"
    "ap3mY+U/3DmekHg05T+A2QUl1wTlP1ZguDAE1eQ/wWe1iwGl5D/SNtMP0XTkP559rJh0ROQ/av+NA+4T5D/kK2QvP+PjP2GoqPxp"
    "suM/7clPTXCB4z+JALYEVFDjP8M0jQcXH+M/5hfKO7vt4j/6Z5GIQrziP8snJdauiuI/KczRDQJZ4j+vXtsZPifiPy+XauVk9eE/"
    "Lux5XHjD4T9Cm8JrepHhP0KqqQBtX+E/nuEsCVIt4T8Iwc9zK/vgP8BuiC/7yOA/sKKsK8OW4D+ajd5XhWTgP5G9+aNDMuA/AAAA"
    "AAAA4D/fhAy4eJvfP83kQlD1Nt8/obqmqHnS3j+BIu+gCW7eP/B9YBipCd4/xDym7Vul3T98q6z+JUHdP37JeigL3dw/pScMRw95"
    "3D+i0So1NhXcP6NCScyDsds/rmdc5PtN2z9rsLVTouraPwww3e56h9o/NtBriIkk2j98luXw0cHZP+7+k/ZXX9k/JmxgZR/92D8/"
    "r64GLJvYPzmoN6GBOdg/LQHk+CPY1z/FBKfOFnfXP16SWeBdFtc/fjCV6Py11j9VP4+e91XWPwFN9LVR9tU/SozD3g6X1T8UcCrF"
    "MjjVPxxsYBHB2dQ/NN2CZ7171D+MGXFnKx7UP0urqKwOwdM/FbYhzmpk0z84iSteQwjTPx1gSeqbrNI/nlEP+3dR0j+PcP8T2/bR"
    "P9AdZ7PInNE/Po48UkRD0T/ihPxjUerQP5pDiFbzkdA/pLIDki060D+OgmfxBsbPPygAus3wGM8/4OxEZR9tzj/AaclXmcLNP25J"
    "QjhlGc0/di6jjIlxzD9QKZjNDMvLP0raRWb1Jcs/LhgKtEmCyj+gHz0GEODJPx5M851OP8k/il6/rQugyD9cUnVZTQLIP1LE7bUZ"
    "Zsc/lO3JyHbLxj8sNDiIajLGP9pUudr6msU/wCbmli0FxT/u/DWDCHHEP0KmxVWR3sM/jA8ftM1Nwz9oiAEzw77CP56uKlZ3McI/"
    "1AAgkO+lwT86G/lBMRzBP6SgKrtBlMA/HNFROSYOwD9MogHQxxO/PwBFF8H/Dr4/BKOrU/4NvT/Ir0FwzRC8Pxxwttl2F7s/+KLg"
    "LAQiuj/04jHgfjC5P7BBWUPwQrg/9GHnfmFZtz98FPST23O2P3B5xVtnkrU/xKt4hw21tD8A+Kuf1tuzP8SjKgTLBrM/DEea6/I1"
    "sj/AvCljVmmxP2CrQU79oLA/sFVtzN65rz+IEvpzaDquPyhjvFumw6w/aHBf9qZVqz8gHRhgePCpP4DEGV4olKg/KFEOXsRApz9I"
    "tpF1WfalP7DLsGH0tKQ/4JVrhqF8oz8w+zrubE2iPxjumUliJ6E/sA6S7owKoD+gkZew7+2dPyDoQ01b2Zs/0O5xO3HXmT9A7zJL"
    "ReiXP0AinZPqC5Y/sEgPcnNClD+waXuJ8YuSP7DDuMF16JA/AOW5jSCwjj+ApDgRobWLP8BOY3OK4Yg/IBqanvgzhj8AahQBBq2D"
    "PwDx24vLTIE/ABatY8Emfj+Amb3NtgF6P8C61j2gKnY/ADCKmqOhcj8AFzCPx81uP4DDLEkB9Wg/gG1tFy65Yz8A+KRCAzVePwDG"
    "d/5SMlY/AKQc4zTVTj8ABCUNObxDPwCIIgRANDY/AIiX2fu8Iz8AgKSNLL0DPw=="
)


@functools.lru_cache(maxsize=1)
def _official_hann_window() -> np.ndarray:
    """The official 512-point analysis window, ``float64 (512,)`` (read-only)."""
    window = np.frombuffer(base64.b64decode("".join(_OFFICIAL_HANN_512_B64)), dtype="<f8").astype(np.float64)
    window.setflags(write=False)
    return window


def _exact_fma(a: float, b: float, c: float) -> float:
    """``a * b + c`` with a single rounding (C ``fma``), via exact rational arithmetic."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


# pocketfft's minimax polynomials for cos(pi*a) - 1 and sin(pi*a) on |a| <= 1/4 (highest degree first)
_POCKETFFT_COSM1 = (-1.0369917389758117e-4, 1.9294935641298806e-3, -2.5806887942825395e-2,
                    2.3533063028328211e-1, -1.3352627688538006e+0, 4.0587121264167623e+0,
                    -4.9348022005446790e+0)
_POCKETFFT_SIN = (4.6151442520157035e-4, -7.3700183130883555e-3, 8.2145868949323936e-2,
                  -5.9926452893214921e-1, 2.5501640398732688e+0, -5.1677127800499516e+0)


def _pocketfft_sincosm1pi(a: float) -> tuple[float, float]:
    """``(cos(pi a) - 1, sin(pi a))`` for |a| <= 1/4, rounded exactly as pocketfft computes them."""
    square = a * a
    poly = _POCKETFFT_COSM1[0]
    for coefficient in _POCKETFFT_COSM1[1:]:
        poly = _exact_fma(poly, square, coefficient)
    cos_m1 = poly * square
    poly = _POCKETFFT_SIN[0]
    for coefficient in _POCKETFFT_SIN[1:]:
        poly = _exact_fma(poly, square, coefficient)
    return cos_m1, _exact_fma(a, 3.1415926535897931, poly * (square * a))


@functools.cache
def _pocketfft_twiddles(n: int) -> tuple[np.ndarray, np.ndarray]:
    """pocketfft's float64 ``cos, sin`` of ``2 pi m / n`` for ``m`` in ``[0, n/2)``, ``n`` a multiple of 8."""
    count = (n + 4) >> 3  # first octant, m <= n/8
    cos_m1 = [0.0] * count
    sin = [0.0] * count
    cos = [1.0] + [0.0] * (count - 1)
    block = math.isqrt(count)
    for m in range(1, block):
        cos_m1[m], sin[m] = _pocketfft_sincosm1pi(2.0 * m / n)
    for start in range(block, count, block):
        # angle addition: (start + j) from start and the small angles j < block
        c0, s0 = _pocketfft_sincosm1pi(2.0 * start / n)
        cos[start], sin[start] = c0 + 1.0, s0
        for j in range(1, min(block, count - start)):
            cos[start + j] = ((c0 * cos_m1[j] - s0 * sin[j] + c0) + cos_m1[j]) + 1.0
            sin[start + j] = (c0 * sin[j] + s0 * cos_m1[j]) + s0 + sin[j]
    for m in range(1, block):
        cos[m] = cos_m1[m] + 1.0
    half, quarter, eighth = n // 2, n // 4, n // 8
    out_cos = np.zeros(half)
    out_sin = np.zeros(half)
    out_cos[:count], out_sin[:count] = cos, sin
    out_cos[eighth] = out_sin[eighth] = 0.707106781186547524400844362104849
    for m in range(eighth + 1, quarter):  # second octant by symmetry about pi/4
        out_cos[m], out_sin[m] = out_sin[quarter - m], out_cos[quarter - m]
    for m in range(quarter, half):  # second quadrant: rotate by pi/2
        out_cos[m], out_sin[m] = -out_sin[m - quarter], out_cos[m - quarter]
    return out_cos, out_sin


_HALF_SQRT2 = 0.70710678118654752440


def _radix2_pass(data: np.ndarray, ido: int, l1: int, wr: np.ndarray, wi: np.ndarray) -> np.ndarray:
    """One pocketfft ``radf2`` pass on a batch: ``data (B, 2*l1*ido)`` -> ``(B, 2*l1*ido)``."""
    cc = data.reshape(data.shape[0], 2, l1, ido)
    ch = np.empty((data.shape[0], l1, 2, ido))
    a, b = cc[:, 0], cc[:, 1]
    ch[:, :, 0, 0] = a[..., 0] + b[..., 0]
    ch[:, :, 1, ido - 1] = a[..., 0] - b[..., 0]
    if ido % 2 == 0:
        ch[:, :, 1, 0] = -b[..., ido - 1]
        ch[:, :, 0, ido - 1] = a[..., ido - 1]
    if ido > 2:
        re, im = slice(1, ido - 2, 2), slice(2, ido - 1, 2)  # (real, imag) pairs i-1, i for i = 2, 4, ...
        mirror_re, mirror_im = slice(ido - 3, 0, -2), slice(ido - 2, 1, -2)  # ic-1, ic with ic = ido - i
        rot_re = wr[0] * b[..., re] + wi[0] * b[..., im]
        rot_im = wr[0] * b[..., im] - wi[0] * b[..., re]
        ch[:, :, 0, re] = a[..., re] + rot_re
        ch[:, :, 1, mirror_re] = a[..., re] - rot_re
        ch[:, :, 0, im] = rot_im + a[..., im]
        ch[:, :, 1, mirror_im] = rot_im - a[..., im]
    return ch.reshape(data.shape[0], -1)


def _radix4_pass(data: np.ndarray, ido: int, l1: int, wr: np.ndarray, wi: np.ndarray) -> np.ndarray:
    """One pocketfft ``radf4`` pass on a batch: ``data (B, 4*l1*ido)`` -> ``(B, 4*l1*ido)``."""
    cc = data.reshape(data.shape[0], 4, l1, ido)
    ch = np.empty((data.shape[0], l1, 4, ido))
    c0, c1, c2, c3 = cc[:, 0], cc[:, 1], cc[:, 2], cc[:, 3]
    sum13 = c3[..., 0] + c1[..., 0]
    ch[:, :, 2, 0] = c3[..., 0] - c1[..., 0]
    sum02 = c0[..., 0] + c2[..., 0]
    ch[:, :, 1, ido - 1] = c0[..., 0] - c2[..., 0]
    ch[:, :, 0, 0] = sum02 + sum13
    ch[:, :, 3, ido - 1] = sum02 - sum13
    if ido % 2 == 0:
        last = ido - 1
        t_im = -_HALF_SQRT2 * (c1[..., last] + c3[..., last])
        t_re = _HALF_SQRT2 * (c1[..., last] - c3[..., last])
        ch[:, :, 0, last] = c0[..., last] + t_re
        ch[:, :, 2, last] = c0[..., last] - t_re
        ch[:, :, 3, 0] = t_im + c2[..., last]
        ch[:, :, 1, 0] = t_im - c2[..., last]
    if ido > 2:
        re, im = slice(1, ido - 2, 2), slice(2, ido - 1, 2)
        mirror_re, mirror_im = slice(ido - 3, 0, -2), slice(ido - 2, 1, -2)

        def rotate(block: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:  # conj(w_j) * block
            return (wr[j] * block[..., re] + wi[j] * block[..., im],
                    wr[j] * block[..., im] - wi[j] * block[..., re])

        r1, i1 = rotate(c1, 0)
        r2, i2 = rotate(c2, 1)
        r3, i3 = rotate(c3, 2)
        sum_r13, diff_r31 = r3 + r1, r3 - r1
        sum_i13, diff_i13 = i1 + i3, i1 - i3
        sum_r02, diff_r02 = c0[..., re] + r2, c0[..., re] - r2
        sum_i02, diff_i02 = c0[..., im] + i2, c0[..., im] - i2
        ch[:, :, 0, re] = sum_r02 + sum_r13
        ch[:, :, 3, mirror_re] = sum_r02 - sum_r13
        ch[:, :, 0, im] = sum_i13 + sum_i02
        ch[:, :, 3, mirror_im] = sum_i13 - sum_i02
        ch[:, :, 2, re] = diff_r02 + diff_i13
        ch[:, :, 1, mirror_re] = diff_r02 - diff_i13
        ch[:, :, 2, im] = diff_r31 + diff_i02
        ch[:, :, 1, mirror_im] = diff_r31 - diff_i02
    return ch.reshape(data.shape[0], -1)


@functools.cache
def _pocketfft_plan(n: int) -> tuple[tuple[int, int, int, np.ndarray, np.ndarray], ...]:
    """Passes ``(radix, ido, l1, wr, wi)`` of pocketfft's real forward FFT of length ``n`` (power of 2)."""
    if n < 8 or n & (n - 1):
        raise ValueError(f"the exact real FFT supports powers of two >= 8, got n={n}")
    radices = []
    rest = n
    while rest % 4 == 0:
        radices.append(4)
        rest //= 4
    if rest == 2:  # pocketfft puts the single factor 2 first
        radices = [2, *radices]
    cos, sin = _pocketfft_twiddles(n)
    passes = []
    l1 = 1
    for radix in radices:
        ido = n // (l1 * radix)
        m = np.arange(1, (ido - 1) // 2 + 1)
        wr = np.stack([cos[j * l1 * m] for j in range(1, radix)])
        wi = np.stack([sin[j * l1 * m] for j in range(1, radix)])
        passes.append((radix, ido, l1, wr, wi))
        l1 *= radix
    return tuple(reversed(passes))  # applied from the last factor to the first


def _rfft_official(frames: np.ndarray) -> np.ndarray:
    """Real FFT of ``float64 (..., n)`` rows, bit-exact with NumPy 1.23: ``complex128 (..., n/2 + 1)``."""
    n = frames.shape[-1]
    data = np.ascontiguousarray(frames, dtype=np.float64).reshape(-1, n)
    for radix, ido, l1, wr, wi in _pocketfft_plan(n):
        data = (_radix4_pass if radix == 4 else _radix2_pass)(data, ido, l1, wr, wi)
    # half-complex order r0, r1, i1, ..., r_{n/2}
    out = np.zeros((data.shape[0], n // 2 + 1), dtype=np.complex128)
    out.real[:, 0] = data[:, 0]
    out.real[:, 1 : n // 2] = data[:, 1 : n - 1 : 2]
    out.imag[:, 1 : n // 2] = data[:, 2 : n - 1 : 2]
    out.real[:, n // 2] = data[:, n - 1]
    return out.reshape(*frames.shape[:-1], n // 2 + 1)


def _f32(text: str) -> np.float32:
    return np.float32(float(text))  # C semantics: decimal -> double -> float


# fdlibm's float arctangent (glibc 2.36 ``atanf``/``atan2f``): breakpoints 7/16, 11/16, 19/16, 39/16
_ATAN_HI = np.array([_f32(v) for v in ("4.6364760399e-01", "7.8539812565e-01", "9.8279368877e-01",
                                       "1.5707962513e+00")], dtype=np.float32)
_ATAN_LO = np.array([_f32(v) for v in ("5.0121582440e-09", "3.7748947079e-08", "3.4473217170e-08",
                                       "7.5497894159e-08")], dtype=np.float32)
_ATAN_POLY = [_f32(v) for v in ("3.3333334327e-01", "-2.0000000298e-01", "1.4285714924e-01",
                                "-1.1111110449e-01", "9.0908870101e-02", "-7.6918758452e-02",
                                "6.6610731184e-02", "-5.8335702866e-02", "4.9768779427e-02",
                                "-3.6531571299e-02", "1.6285819933e-02")]
_PI_F32 = _f32("3.1415927410e+00")
_HALF_PI_F32 = _f32("1.5707963705e+00")
_PI_LO_F32 = _f32("-8.7422776573e-08")


def _atanf(x: np.ndarray) -> np.ndarray:
    """glibc 2.36 ``atanf`` on a float32 array (finite inputs), bit-exact, float32."""
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.int32)
    magnitude_bits = bits & 0x7FFFFFFF
    ax = np.abs(x)
    one, two, three_halves = np.float32(1.0), np.float32(2.0), np.float32(1.5)
    interval = np.searchsorted(np.array([0x3EE00000, 0x3F300000, 0x3F980000, 0x401C0000]), magnitude_bits,
                               side="right") - 1  # -1: |x| < 7/16; 0..3: reduced around 0.5, 1, 1.5, inf
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        reduced = np.select(
            [interval < 0, interval == 0, interval == 1, interval == 2],
            [x, (two * ax - one) / (two + ax), (ax - one) / (ax + one),
             (ax - three_halves) / (one + three_halves * ax)],
            -one / ax,
        ).astype(np.float32)
    z = reduced * reduced
    w = z * z
    p = _ATAN_POLY
    odd = z * (p[0] + w * (p[2] + w * (p[4] + w * (p[6] + w * (p[8] + w * p[10])))))
    even = w * (p[1] + w * (p[3] + w * (p[5] + w * (p[7] + w * p[9]))))
    small = reduced - reduced * (odd + even)
    index = np.clip(interval, 0, 3)
    large = _ATAN_HI[index] - ((reduced * (odd + even) - _ATAN_LO[index]) - reduced)
    large = np.where(bits < 0, -large, large)
    out = np.where(interval < 0, small, large)
    out = np.where(magnitude_bits < 0x39800000, x, out)  # |x| < 2**-12: atan(x) = x
    saturated = _ATAN_HI[3] + _ATAN_LO[3]
    saturate = magnitude_bits >= 0x4C000000  # |x| >= 2**25
    out = np.where(saturate, np.where(bits > 0, saturated, -saturated), out)
    return out.astype(np.float32)


def _atan2f(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """glibc 2.36 ``atan2f(y, x)`` on float32 arrays (finite inputs, signed zeros honoured), bit-exact."""
    y = np.asarray(y, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    x_bits, y_bits = x.view(np.int32), y.view(np.int32)
    x_mag, y_mag = x_bits & 0x7FFFFFFF, y_bits & 0x7FFFFFFF
    quadrant = ((y_bits >> 31) & 1) | ((x_bits >> 30) & 2)  # 2 * sign(x) + sign(y)
    exponent_gap = (y_mag - x_mag) >> 23
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        z = _atanf(np.abs(y / x))
    z = np.where(exponent_gap > 26, _HALF_PI_F32 + np.float32(0.5) * _PI_LO_F32, z)
    z = np.where((x_bits < 0) & (exponent_gap < -26), np.float32(0.0), z).astype(np.float32)
    out = np.select([quadrant == 0, quadrant == 1, quadrant == 2],
                    [z, -z, _PI_F32 - (z - _PI_LO_F32)], (z - _PI_LO_F32) - _PI_F32)
    out = np.where(x_mag == 0, np.where(y_bits < 0, -_HALF_PI_F32, _HALF_PI_F32), out)
    out = np.where(y_mag == 0, np.select([quadrant < 2, quadrant == 2], [y, _PI_F32], -_PI_F32), out)
    out = np.where(x_bits == 0x3F800000, _atanf(y), out)  # x == 1.0
    return out.astype(np.float32)


def _abs_complex64(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    """``|re + i im|`` in float32 as NumPy's AVX-512 complex64 ``absolute`` computes it, bit-exact.

    ``big * sqrt(fma(q, q, 1))`` with ``q = small / big``; the fused ``q*q + 1`` is rounded once to float32
    (``q*q`` is exact in float64; a float64 sum that lands on a float32 rounding midpoint is resolved with
    its exact error term).
    """
    x, y = np.abs(re), np.abs(im)
    big, small = np.maximum(x, y), np.minimum(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (small / big).astype(np.float64)
    square = ratio * ratio  # exact
    total = 1.0 + square
    error = square - (total - 1.0)  # exact rounding error of the float64 sum
    rounded = total.astype(np.float32)
    scaled = total * 2.0**24  # a float32 rounding midpoint in [1, 2) is an odd multiple of 2**-24
    midpoint = (scaled == np.floor(scaled)) & (np.mod(scaled, 2.0) == 1.0) & (error != 0)
    rounded = np.where(midpoint, (total + np.sign(error) * 2.0**-24).astype(np.float32), rounded)
    out = big * np.sqrt(rounded)
    return np.where(big == 0, np.float32(0.0), out).astype(np.float32)


def compute_seld_features(audio: np.ndarray, sample_rate: int = SELD_SAMPLE_RATE) -> np.ndarray:
    """Official ``amp_phasediff`` STFT features of one stereo clip, bit-exact with the official code.

    The last ``N % 160`` samples are dropped, 352 zeros are prepended, and each channel goes through a
    ``center=False`` STFT (n_fft 512, hop 160, periodic Hann, no scaling) computed in float64 and rounded to
    complex64, as librosa does; magnitudes and phases are taken in float32 (see the note above
    ``_OFFICIAL_HANN_512_B64`` on why the exact arithmetic is reproduced).

    Args:
        audio: float stereo PCM ``(2, N)`` at 16 kHz, channel 0 = left.
        sample_rate: sample rate of ``audio`` in Hz (must be 16000).

    Returns:
        ``float32 (3, 257, T)``, ``T = N // 160`` frames of 10 ms (frame t covers samples
        ``[160 t - 352, 160 t + 160)``): ``|X_L|``, ``|X_R|`` and ``angle(X_R) - angle(X_L)`` in [0, 2*pi).
    """
    audio = check_seld_audio(audio, sample_rate)
    length = audio.shape[1] - audio.shape[1] % SELD_HOP_SIZE
    signal = np.concatenate([np.zeros((2, SELD_PRE_PAD), np.float32), audio[:, :length]], axis=1)
    frames = np.lib.stride_tricks.sliding_window_view(signal, SELD_FFT_SIZE, axis=1)[:, ::SELD_HOP_SIZE]
    spectrum = _rfft_official(_official_hann_window() * frames).astype(np.complex64)  # (2, T, 257)
    spectrum = spectrum.transpose(0, 2, 1)  # (2, 257, T)
    magnitude = _abs_complex64(spectrum.real, spectrum.imag)
    phase = _atan2f(spectrum.imag, spectrum.real)
    difference = phase[1] - phase[0]
    difference = np.where(difference < 0, difference + np.float32(2 * np.pi), difference).astype(np.float32)
    return np.concatenate([magnitude, difference[None]], axis=0)


def seld_window_start_times(duration: float) -> np.ndarray:
    """Official window start times in seconds, ``float64 (W,)``.

    ``np.arange(0, stop, 1.2)`` with ``stop = duration + 1.2`` when ``duration % 1.2`` is 0 or within 1e-10
    of 1.2, else ``stop = duration``. Examples: 5.0 s -> ``[0, 1.2, 2.4, 3.5999999999999996, 4.8]``; 6.0 s
    -> 5 windows (``6.0 % 1.2`` is 2.2e-16); 4.8 s -> 5 windows (the last reads only loop padding).
    """
    if not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    remainder = duration % SELD_WINDOW_HOP_S
    exact = remainder == 0 or abs(remainder - SELD_WINDOW_HOP_S) < 1e-10
    stop = duration + SELD_WINDOW_HOP_S if exact else duration
    return np.arange(0, stop, SELD_WINDOW_HOP_S)


def seld_window_start_frames(start_times: np.ndarray) -> np.ndarray:
    """Start frames ``int(t * 100)`` (truncation: 3.5999999999999996 s -> 359), ``int64 (W,)``."""
    return np.array([int(t * SELD_FRAME_RATE) for t in start_times], dtype=np.int64)


def loop_pad_features(features: np.ndarray) -> np.ndarray:
    """Circular padding along time: last 4 frames prepended, first 128 appended, ``(C, F, T + 132)``."""
    return np.concatenate(
        [features[..., -SELD_WINDOW_MARGIN:], features, features[..., :SELD_WINDOW_FRAMES]], axis=-1
    )


def seld_postprocess(
    sed_logits: np.ndarray,
    doa: np.ndarray,
    start_times: np.ndarray,
    duration: float,
    threshold: float = SELD_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Official post-processing of the kept network outputs of one clip.

    Args:
        sed_logits: kept SED logits ``(class_num, 120 W)`` (or ``(1, class_num, 120 W)``), window-major.
        doa: kept DOA outputs, same shape (units of the frame width).
        start_times: window start times in seconds ``(W,)``.
        duration: clip duration in seconds; rows with frame >= ``int(duration * 10)`` are dropped.
        threshold: a row is emitted when the mean activity is strictly greater.

    Returns:
        ``rows`` float64 ``(R, 3)`` of ``(frame, class, x_pixels)`` sorted by (frame, class), stable;
        ``activity`` float64 ``(class_num, 12 W)``: mean sigmoid per CSV frame;
        ``x`` float64 ``(class_num, 12 W)``: activity-weighted position in pixels per CSV frame;
        ``frames`` int64 ``(12 W,)``: CSV frame index ``int(t_w * 10) + k`` of each column.
    """
    sed_logits = np.asarray(sed_logits)
    doa = np.asarray(doa)
    if sed_logits.ndim == 3:
        sed_logits, doa = sed_logits[0], doa[0]
    num_windows = len(start_times)
    expected = SELD_WINDOW_HOP_FRAMES * num_windows
    if sed_logits.ndim != 2 or sed_logits.shape[1] != expected or doa.shape != sed_logits.shape:
        raise ValueError(
            f"kept outputs must be (class_num, {expected}) for {num_windows} windows; "
            f"got sed_logits {sed_logits.shape}, doa {doa.shape}"
        )
    class_num = sed_logits.shape[0]
    blocks = (class_num, num_windows * SELD_CSV_FRAMES_PER_WINDOW, SELD_NET_FRAMES_PER_CSV_FRAME)
    probability = 1.0 / (1.0 + np.exp(-sed_logits.astype(np.float64))).reshape(blocks)
    position = doa.astype(np.float64).reshape(blocks)
    activity = probability.mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):  # all-zero activity (never emitted) gives NaN
        x = (probability * position).sum(axis=-1) / probability.sum(axis=-1) * SELD_FRAME_WIDTH
    window_frames = np.array([int(t * SELD_CSV_FRAME_RATE) for t in start_times], dtype=np.int64)
    frames = (window_frames[:, None] + np.arange(SELD_CSV_FRAMES_PER_WINDOW)).reshape(-1)
    frame_grid, class_grid = np.meshgrid(frames, np.arange(class_num))  # (class_num, 12 W) each
    keep = (activity > threshold) & (frame_grid < int(duration * SELD_CSV_FRAME_RATE))
    rows = np.stack([frame_grid[keep], class_grid[keep], x[keep]], axis=1).astype(np.float64)
    order = np.lexsort((rows[:, 1], rows[:, 0]))  # stable sort by (frame, class)
    return rows[order], activity, x, frames


@dataclass
class SELDPrediction:
    """SELD result for one clip (official protocol).

    Attributes:
        rows: float64 ``(R, 3)``: ``(frame, class, x)``, frame = 100-ms index, class 0 = speech,
            1 = instrument, x = horizontal position in pixels of the 256-px frame (not clipped); sorted by
            (frame, class). What :func:`write_seld_csv` writes.
        duration: seconds of audio used (after trimming to a multiple of 10 ms).
        window_start_times: float64 ``(W,)`` window start times in seconds.
        window_start_frames: int64 ``(W,)`` window start STFT frames (``[0, 120, 240, 359, 480]`` for 5 s).
        sed_logits: float32 ``(1, class_num, 120 W)``: kept SED logits (net frames [4, 124) of each window).
        doa: float32 ``(1, class_num, 120 W)``: kept DOA outputs (units of the frame width).
        frame_activity: float64 ``(class_num, 12 W)``: mean sigmoid per CSV frame (what the threshold sees).
        frame_x: float64 ``(class_num, 12 W)``: activity-weighted position in pixels per CSV frame (NaN only
            where every activity underflows to 0, which is never emitted).
        csv_frames: int64 ``(12 W,)``: CSV frame index of each column of ``frame_activity``.
        num_csv_frames: ``int(duration * 10)``; rows at or after this frame are dropped.
    """

    rows: np.ndarray
    duration: float
    window_start_times: np.ndarray
    window_start_frames: np.ndarray
    sed_logits: np.ndarray
    doa: np.ndarray
    frame_activity: np.ndarray
    frame_x: np.ndarray
    csv_frames: np.ndarray
    num_csv_frames: int


@dataclass
class _ClipPlan:
    padded: np.ndarray  # (3, 257, T + 132) float32
    duration: float
    start_times: np.ndarray
    start_frames: np.ndarray


class SELDInference:
    """Batched official SELD inference over many clips, with the network kept resident on ``device``.

    Windows of all clips passed to :meth:`predict` are stacked into batches of ``batch_size``; results are
    the official ones (eval-mode network: batch items do not interact).

    Args:
        model: the network (e.g. ``StereoSELDModel.from_pretrained(...)``); moved to ``device`` and put in
            eval mode.
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`): where the network runs.
        batch_size (`int`, *optional*, defaults to 64): windows per forward pass (5 per 5-s clip).
        threshold (`float`, *optional*, defaults to 0.2): activity threshold (strict ``>``).
    """

    def __init__(
        self,
        model: StereoSELDModel,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        threshold: float = SELD_THRESHOLD,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.threshold = float(threshold)

    def _plan(self, audio: np.ndarray, sample_rate: int, index: int) -> _ClipPlan:
        try:
            features = compute_seld_features(audio, sample_rate)
        except ValueError as error:
            raise ValueError(f"clip {index}: {error}") from None
        duration = features.shape[-1] * SELD_HOP_SIZE / SELD_SAMPLE_RATE
        start_times = seld_window_start_times(duration)
        start_frames = seld_window_start_frames(start_times)
        padded = loop_pad_features(features)
        if start_frames[-1] + SELD_WINDOW_FRAMES > padded.shape[-1]:
            raise ValueError(
                f"clip {index}: {duration} s is too short for the official windowing (the window at frame "
                f"{start_frames[-1]} needs {start_frames[-1] + SELD_WINDOW_FRAMES} padded frames, "
                f"have {padded.shape[-1]}); the official code fails on it too"
            )
        return _ClipPlan(padded, duration, start_times, start_frames)

    @torch.inference_mode()
    def predict(
        self, audios: Sequence[np.ndarray], sample_rate: int = SELD_SAMPLE_RATE
    ) -> list[SELDPrediction]:
        """Run the official SELD path on many clips at once.

        Args:
            audios: one float stereo array ``(2, N)`` per clip, channel 0 = left, 16 kHz; lengths may differ.
            sample_rate: sample rate of every clip in Hz (must be 16000).

        Returns:
            one :class:`SELDPrediction` per clip, in order.

        The features of all given clips are held in memory (about 2 MB per 5-s clip) until their windows have
        run; pass very large sets in chunks of a few hundred clips.
        """
        if isinstance(audios, np.ndarray):
            raise TypeError(f"audios must be a list of (2, N) arrays, got one array of shape {audios.shape}")
        plans = [self._plan(audio, sample_rate, index) for index, audio in enumerate(audios)]
        jobs = [(c, w) for c, plan in enumerate(plans) for w in range(len(plan.start_frames))]
        class_num = self.model.config.class_num
        kept_sed = [np.empty((class_num, SELD_WINDOW_HOP_FRAMES * len(plan.start_frames)), np.float32)
                    for plan in plans]
        kept_doa = [np.empty_like(array) for array in kept_sed]
        dtype = next(self.model.parameters()).dtype
        margin = slice(SELD_WINDOW_MARGIN, SELD_WINDOW_MARGIN + SELD_WINDOW_HOP_FRAMES)
        for begin in range(0, len(jobs), self.batch_size):
            chunk = jobs[begin : begin + self.batch_size]
            windows = []
            for c, w in chunk:
                start = int(plans[c].start_frames[w])
                windows.append(plans[c].padded[..., start : start + SELD_WINDOW_FRAMES])
            batch = torch.from_numpy(np.stack(windows)).to(self.device, dtype)
            output = self.model(batch)
            if output.sed_logits.shape[-1] != SELD_WINDOW_FRAMES:
                raise ValueError(
                    f"the model maps {SELD_WINDOW_FRAMES} input frames to {output.sed_logits.shape[-1]}; the "
                    "official windowing needs the same number"
                )
            sed = output.sed_logits[:, 0, :, margin].float().cpu().numpy()
            doa = output.doa[:, 0, :, margin].float().cpu().numpy()
            for row, (c, w) in enumerate(chunk):
                columns = slice(w * SELD_WINDOW_HOP_FRAMES, (w + 1) * SELD_WINDOW_HOP_FRAMES)
                kept_sed[c][:, columns] = sed[row]
                kept_doa[c][:, columns] = doa[row]
            logger.debug("SELD batch of %d windows (%d/%d)", len(chunk), begin + len(chunk), len(jobs))
        predictions = []
        for plan, sed, doa in zip(plans, kept_sed, kept_doa):
            rows, activity, x, frames = seld_postprocess(
                sed, doa, plan.start_times, plan.duration, self.threshold
            )
            predictions.append(
                SELDPrediction(
                    rows=rows,
                    duration=plan.duration,
                    window_start_times=plan.start_times,
                    window_start_frames=plan.start_frames,
                    sed_logits=sed[None],
                    doa=doa[None],
                    frame_activity=activity,
                    frame_x=x,
                    csv_frames=frames,
                    num_csv_frames=int(plan.duration * SELD_CSV_FRAME_RATE),
                )
            )
        return predictions
