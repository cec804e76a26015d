"""Sound synthesis, FOA spatialisation and the room for synthetic recordings.

Every event's dry signal is synthesised from its own seed (speech, instruments and ten non-target sound
classes), scaled to the event's level at 1 m, and encoded into first-order ambisonics (ACN/SN3D, W Y Z X) at
the source's true, time-varying direction with :func:`savg_hub.geometry.encode_foa` (per-sample directions
interpolated from the 100-ms trajectory), together with

* the six first-order image sources of the room's surfaces (delay, 1/r attenuation, wall absorption from the
  room's RT60, their own directions),
* a diffuse reverberant tail: decaying noise impulse responses with a frequency-dependent RT60, W at full
  level and X/Y/Z at 1/sqrt(3) (an isotropic field in SN3D), and
* a diffuse pink noise floor.

Speech: a glottal pulse train with phrase-level f0 declination and accents (female 165-250 Hz, male
90-145 Hz), cascaded formant resonators moving between vowel targets at about 4 syllables/s, fricative and
plosive noise, pauses between phrases. Instruments: harmonic notes with attack/decay, vibrato and per-timbre
spectra (plucked guitar, bowed violin, struck keyboard, reed accordion).
"""

from __future__ import annotations

import math

import numpy as np

from savg_hub.data.synthetic.config import SyntheticConfig
from savg_hub.data.synthetic.scene import (
    BELL,
    CLAPPING,
    DOMESTIC,
    DOOR,
    FOOTSTEPS,
    INSTRUMENT,
    KNOCK,
    LAUGHTER,
    MUSIC,
    SPEECH_FEMALE,
    SPEECH_MALE,
    TELEPHONE,
    WATER_TAP,
    Event,
    SceneSpec,
)
from savg_hub.geometry import METADATA_FRAME_SECONDS, encode_foa, vector_to_direction

SPEED_OF_SOUND = 343.0
"""Metres per second."""

# (F1, F2, F3, F4) in Hz of an adult male voice; women scale by their formant_scale
_VOWELS = np.array(
    [
        [730, 1090, 2440, 3400],  # a
        [530, 1840, 2480, 3500],  # e
        [270, 2290, 3010, 3700],  # i
        [570, 840, 2410, 3300],  # o
        [300, 870, 2240, 3300],  # u
        [660, 1720, 2410, 3400],  # ae
        [520, 1190, 2390, 3400],  # schwa
    ],
    dtype=np.float64,
)
_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])


# ------------------------------------------------------------------------------------------------------------
# Small DSP helpers


def _fade(signal: np.ndarray, sample_rate: int, seconds: float = 0.01) -> np.ndarray:
    n = min(len(signal) // 2, int(seconds * sample_rate))
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))
        signal[:n] *= ramp
        signal[-n:] *= ramp[::-1]
    return signal


def _normalise(signal: np.ndarray) -> np.ndarray:
    peak = np.abs(signal).max(initial=0.0)
    return signal / peak if peak > 0 else signal


def _bandpass(signal: np.ndarray, low: float, high: float, sample_rate: int, order: int = 2) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    nyq = sample_rate / 2
    high = min(high, 0.95 * nyq)
    if low <= 0:
        sos = butter(order, high, btype="lowpass", fs=sample_rate, output="sos")
    else:
        sos = butter(order, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    return sosfilt(sos, signal)


def _resonator_sos(freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cascade of unity-DC-gain two-pole resonators as an ``(K, 6)`` sos array."""
    r = np.exp(-np.pi * bandwidths / sample_rate)
    theta = 2 * np.pi * np.minimum(freqs, 0.45 * sample_rate) / sample_rate
    a1, a2 = -2 * r * np.cos(theta), r * r
    sos = np.zeros((len(freqs), 6))
    sos[:, 0] = 1 + a1 + a2
    sos[:, 3], sos[:, 4], sos[:, 5] = 1.0, a1, a2
    return sos


def _time_varying_formants(
    excitation: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, sample_rate: int, block: int
) -> np.ndarray:
    """Filter ``excitation (N,)`` through resonators whose frequencies ``formants (B, K)`` change per
    block."""
    from scipy.signal import sosfilt

    out = np.empty_like(excitation)
    zi = np.zeros((formants.shape[1], 2))
    for b in range(formants.shape[0]):
        lo, hi = b * block, min((b + 1) * block, len(excitation))
        if lo >= hi:
            break
        sos = _resonator_sos(formants[b], bandwidths, sample_rate)
        out[lo:hi], zi = sosfilt(sos, excitation[lo:hi], zi=zi)
    return out


def _pulse_train(f0: np.ndarray, sample_rate: int) -> np.ndarray:
    """Unit impulses at each glottal period of the contour ``f0 (N,)`` Hz (zero where f0 <= 0)."""
    phase = np.cumsum(np.maximum(f0, 0.0) / sample_rate)
    pulses = np.zeros_like(f0)
    idx = np.nonzero(np.diff(np.floor(phase), prepend=0.0) > 0)[0]
    pulses[idx] = 1.0
    return pulses


def _decaying_partials(
    freqs: np.ndarray,
    amps: np.ndarray,
    decays: np.ndarray,
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sum of sinusoids ``amps * exp(-t / decays) * sin(2 pi f t + random phase)``, ``(n,)``."""
    t = np.arange(n) / sample_rate
    keep = freqs < 0.45 * sample_rate
    freqs, amps, decays = freqs[keep], amps[keep], decays[keep]
    phases = rng.uniform(0, 2 * np.pi, len(freqs))
    env = np.exp(-t[None, :] / decays[:, None])
    return np.sum(
        amps[:, None] * env * np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phases[:, None]), axis=0
    )


# ------------------------------------------------------------------------------------------------------------
# Speech


def synthesize_speech(
    n: int,
    sample_rate: int,
    f0: float,
    formant_scale: float,
    rng: np.random.Generator,
    *,
    laughter: bool = False,
) -> np.ndarray:
    """A speech-like (or laughter-like) signal of ``n`` samples, peak-normalised, float64 ``(n,)``.

    Args:
        n: number of samples.
        sample_rate: Hz.
        f0: mean fundamental frequency of the voice, Hz.
        formant_scale: formant frequency scaling (1 male, about 1.16 female).
        rng: random generator.
        laughter: "ha-ha-ha" bursts (breathy /a/ at about 5 per second, raised pitch) instead of speech.
    """
    duration = n / sample_rate
    voiced = np.zeros(n)
    f0_track = np.zeros(n)
    fric = {name: np.zeros(n) for name in ("s", "sh", "f", "h")}
    block = max(1, int(0.01 * sample_rate))
    num_blocks = (n + block - 1) // block
    vowel_times: list[float] = []
    vowel_ids: list[int] = []

    t = 0.0
    while t < duration:
        phrase = rng.uniform(0.8, 1.4) if laughter else rng.uniform(1.0, 3.2)
        phrase_end = min(duration, t + phrase)
        start_f0 = f0 * (rng.uniform(1.3, 1.6) if laughter else rng.uniform(1.02, 1.18))
        end_f0 = f0 * (rng.uniform(0.9, 1.1) if laughter else rng.uniform(0.78, 0.9))
        if not laughter and rng.random() < 0.2:
            end_f0 = f0 * rng.uniform(1.15, 1.3)  # a question
        p0, p1 = int(t * sample_rate), int(phrase_end * sample_rate)
        if p1 > p0:
            f0_track[p0:p1] = np.linspace(start_f0, end_f0, p1 - p0)
        s = t
        while s < phrase_end - 0.05:
            syl = rng.uniform(0.14, 0.22) if laughter else rng.uniform(0.15, 0.33)
            syl_end = min(phrase_end, s + syl)
            onset = 0.0
            if laughter:
                kind = "h"
                onset = rng.uniform(0.04, 0.07)
            elif rng.random() < 0.78:
                kind = str(rng.choice(["s", "sh", "f", "h", "plosive", "plosive", "nasal", "nasal"]))
                onset = rng.uniform(0.04, 0.11) if kind in ("s", "sh", "f") else rng.uniform(0.03, 0.07)
            else:
                kind = "none"
            onset = min(onset, 0.5 * (syl_end - s))
            c0, c1 = int(s * sample_rate), int((s + onset) * sample_rate)
            if kind in fric and c1 > c0:
                env = np.sin(np.linspace(0, np.pi, c1 - c0)) ** 0.7
                fric[kind][c0:c1] += env * (0.6 if kind in ("s", "sh") else 0.35)
            elif kind == "plosive" and c1 > c0:
                burst = min(c1, c0 + int(0.015 * sample_rate))
                split = c0 + (c1 - c0) * 2 // 3
                fric["h"][split : min(burst + (split - c0), c1)] += 0.8
            elif kind == "nasal" and c1 > c0:
                voiced[c0:c1] += 0.35 * np.sin(np.linspace(0, np.pi, c1 - c0))
            v0, v1 = c1, int(syl_end * sample_rate)
            if v1 > v0:
                stress = rng.uniform(0.55, 1.0)
                env = np.sin(np.linspace(0, np.pi, v1 - v0)) ** 0.5
                voiced[v0:v1] = np.maximum(voiced[v0:v1], stress * env)
                accent = 1.0 + (rng.uniform(0.05, 0.18) if rng.random() < 0.35 else 0.0)
                f0_track[v0:v1] *= accent * (1.0 + 0.03 * np.sin(np.linspace(0, np.pi, v1 - v0)))
                vowel_times.append((v0 + v1) / 2 / sample_rate)
                vowel_ids.append(0 if laughter else int(rng.integers(len(_VOWELS))))
            s = syl_end
        pause = rng.uniform(0.08, 0.2) if laughter else rng.uniform(0.12, 0.32)
        t = phrase_end + pause

    # slow f0 wander and jitter
    wander = 1.0 + 0.02 * np.sin(
        2 * np.pi * rng.uniform(0.5, 1.5) * np.arange(n) / sample_rate + rng.uniform(0, 6)
    )
    f0_track = np.where(voiced > 0.01, f0_track * wander, 0.0)
    excitation = _pulse_train(f0_track, sample_rate)
    # glottal pulse shape: two one-pole low-passes give the -12 dB/octave source tilt
    from scipy.signal import lfilter

    excitation = lfilter([1.0], [1.0, -0.96], excitation)
    excitation = lfilter([1.0], [1.0, -0.6], excitation)
    excitation *= voiced
    excitation += 0.02 * rng.standard_normal(n) * voiced * (3.0 if laughter else 1.0)  # aspiration
    if not vowel_times:
        vowel_times, vowel_ids = [0.0], [6]
    targets = _VOWELS[vowel_ids] * formant_scale
    centres = (np.arange(num_blocks) + 0.5) * block / sample_rate
    formants = np.stack([np.interp(centres, vowel_times, targets[:, k]) for k in range(4)], axis=1)
    formants *= 1.0 + 0.03 * np.sin(2 * np.pi * 3.1 * centres + rng.uniform(0, 6))[:, None]
    speech = _time_varying_formants(excitation, formants, _BANDWIDTHS * formant_scale, sample_rate, block)
    speech = np.diff(speech, prepend=0.0)  # lip radiation
    speech = _normalise(speech)
    noise = rng.standard_normal((4, n))
    hiss = (
        _bandpass(noise[0], 3800, 9000, sample_rate) * fric["s"]
        + _bandpass(noise[1], 2000, 5000, sample_rate) * fric["sh"]
        + _bandpass(noise[2], 1200, 9000, sample_rate) * fric["f"] * 0.6
        + _bandpass(noise[3], 400, 6000, sample_rate) * fric["h"] * 0.8
    )
    hiss = _normalise(hiss) * (0.5 if laughter else 0.3)
    return _normalise(_fade(speech + hiss, sample_rate))


# ------------------------------------------------------------------------------------------------------------
# Instruments


def _melody(
    rng: np.random.Generator, duration: float, low: int, high: int, beat: float
) -> list[tuple[float, float, int]]:
    """Legato notes ``(onset s, length s, MIDI note)`` filling ``duration``, stepping through a scale."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11]) if rng.random() < 0.6 else np.array([0, 2, 3, 5, 7, 8, 10])
    root = int(rng.integers(low, low + 12))
    pitches = np.array([root + 12 * o + s for o in range(-2, 4) for s in scale])
    pitches = pitches[(pitches >= low) & (pitches <= high)]
    position = int(rng.integers(len(pitches)))
    notes = []
    t = 0.0
    while t < duration:
        length = beat * float(rng.choice([0.5, 1, 1, 1, 2, 2, 3]))
        notes.append((t, min(length, duration - t), int(pitches[position])))
        position = int(np.clip(position + rng.choice([-2, -1, -1, 1, 1, 2, 0, 3, -3]), 0, len(pitches) - 1))
        t += length
    return notes


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def synthesize_instrument(n: int, sample_rate: int, instrument: str, rng: np.random.Generator) -> np.ndarray:
    """A melody of ``n`` samples on one instrument (``"guitar"``, ``"violin"``, ``"keyboard"``,
    ``"accordion"``), peak-normalised, float64 ``(n,)``."""
    duration = n / sample_rate
    out = np.zeros(n + sample_rate)
    beat = 60.0 / rng.uniform(80, 140)
    if instrument == "guitar":
        notes = _melody(rng, duration, 52, 79, beat)
        pluck = rng.uniform(0.12, 0.25)
        for onset, length, note in notes:
            chord = [note] if rng.random() < 0.6 else [note, note - 5, note - 8]
            for k_note, m in enumerate(chord):
                f = _midi_hz(m)
                i0 = int((onset + 0.012 * k_note) * sample_rate)
                m_len = int((length + 0.25) * sample_rate)
                k = np.arange(1, 26)
                amps = np.abs(np.sin(np.pi * k * pluck)) / k
                decays = 1.2 / (1.0 + 0.35 * (k - 1)) * (300.0 / f) ** 0.3
                tone = _decaying_partials(f * k * (1 + 0.0004 * k), amps, decays, m_len, sample_rate, rng)
                tone[: int(0.002 * sample_rate)] *= np.linspace(0, 1, int(0.002 * sample_rate))
                damp = int(length * sample_rate)
                tone[damp:] *= np.exp(-np.arange(m_len - damp) / (0.03 * sample_rate))
                out[i0 : i0 + m_len] += tone[: len(out) - i0] / len(chord) ** 0.5
    elif instrument in ("violin", "accordion"):
        low, high = (55, 88) if instrument == "violin" else (48, 81)
        notes = _melody(rng, duration, low, high, beat)
        for onset, length, note in notes:
            f = _midi_hz(note)
            m = int((length + 0.06) * sample_rate)
            t = np.arange(m) / sample_rate
            if instrument == "violin":
                vib = 1.0 + 0.005 * np.sin(2 * np.pi * rng.uniform(5.0, 6.5) * t) * np.clip(t / 0.25, 0, 1)
                k = np.arange(1, 21)
                amps = (1.0 / k) * (1.0 + 0.8 * np.exp(-(((k * f - 2800.0) / 900.0) ** 2)))
                attack = 0.07
                detune = [1.0]
            else:
                vib = np.ones(m)
                k = np.arange(1, 25)
                amps = 1.0 / k**0.75
                attack = 0.035
                detune = [1.0, 2 ** (rng.uniform(2.0, 4.0) / 1200)]
            tone = np.zeros(m)
            for d in detune:
                phase = 2 * np.pi * np.cumsum(f * d * vib) / sample_rate
                keep = k * f < 0.45 * sample_rate
                tone += np.sum(amps[keep, None] * np.sin(k[keep, None] * phase[None, :]), axis=0)
            env = np.minimum(1.0, t / attack) * np.clip((length + 0.06 - t) / 0.06, 0.0, 1.0)
            env *= 0.85 + 0.15 * np.sin(np.pi * np.clip(t / max(length, 1e-3), 0, 1))
            i0 = int(onset * sample_rate)
            out[i0 : i0 + m] += (tone * env)[: len(out) - i0]
        if instrument == "violin":
            out += (
                0.01 * _bandpass(rng.standard_normal(len(out)), 2000, 8000, sample_rate) * (np.abs(out) > 0)
            )
    elif instrument == "keyboard":
        notes = _melody(rng, duration, 55, 84, beat)
        for onset, length, note in notes:
            chord = [note] + ([note - 12 - int(rng.choice([0, 3, 4, 7]))] if rng.random() < 0.5 else [])
            for m_note in chord:
                f = _midi_hz(m_note)
                m = int((length + 0.4) * sample_rate)
                k = np.arange(1, 19)
                freqs = f * k * np.sqrt(1 + 1.5e-4 * k**2)
                amps = 1.0 / k**1.3
                decays = (1.6 / (1 + 0.25 * (k - 1))) * (260.0 / f) ** 0.4
                tone = _decaying_partials(freqs, amps, decays, m, sample_rate, rng)
                tone[: int(0.003 * sample_rate)] *= np.linspace(0, 1, int(0.003 * sample_rate))
                damp = int(length * sample_rate)
                tone[damp:] *= np.exp(-np.arange(m - damp) / (0.08 * sample_rate))
                i0 = int(onset * sample_rate)
                out[i0 : i0 + m] += tone[: len(out) - i0]
    else:
        raise ValueError(f"unknown instrument {instrument!r}")
    return _normalise(_fade(out[:n], sample_rate, 0.02))


# ------------------------------------------------------------------------------------------------------------
# Non-target classes


def _impacts(n: int, sample_rate: int, times: list[float], make) -> np.ndarray:
    out = np.zeros(n)
    for t in times:
        i0 = int(t * sample_rate)
        if i0 >= n:
            continue
        hit = make()
        out[i0 : i0 + len(hit)] += hit[: n - i0]
    return out


def synthesize_nontarget(cls: int, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A signal of ``n`` samples of a non-target STARSS23 class (2-8, 10-12), peak-normalised, float64."""
    duration = n / sample_rate
    t = np.arange(n) / sample_rate
    sr = sample_rate

    def damped(freqs: list[float], decay: float, length: float, noise: float = 0.3) -> np.ndarray:
        m = int(length * sr)
        tone = _decaying_partials(
            np.array(freqs), np.ones(len(freqs)), np.full(len(freqs), decay), m, sr, rng
        )
        click = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.004 * sr)) * noise
        return tone + click

    if cls == KNOCK:
        times, s = [], 0.05
        while s < duration - 0.1:
            for _ in range(int(rng.integers(2, 5))):
                times.append(s)
                s += rng.uniform(0.13, 0.22)
            s += rng.uniform(0.3, 0.6)
        f = rng.uniform(110, 220)
        sig = _impacts(n, sr, times, lambda: damped([f, f * 2.7, f * 5.1], 0.04, 0.15, 0.6))
    elif cls == FOOTSTEPS:
        step = rng.uniform(0.45, 0.6)
        grid = np.arange(rng.uniform(0.0, 0.2), duration, step)
        times = list(grid + rng.uniform(-0.03, 0.03, len(grid)))
        sig = _impacts(n, sr, times, lambda: damped([rng.uniform(70, 130)], 0.035, 0.12, 0.8))
        sig = _bandpass(sig, 50, 4000, sr)
    elif cls == TELEPHONE:
        f1, f2 = (rng.uniform(900, 1100), rng.uniform(1150, 1400)) if rng.random() < 0.5 else (440.0, 480.0)
        gate = ((t % 1.6) < 1.0).astype(float) if duration > 1.7 else np.ones(n)
        trill = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 20 * t))
        sig = (np.sin(2 * np.pi * f1 * t) * trill + np.sin(2 * np.pi * f2 * t) * (1 - trill)) * gate
    elif cls == BELL:
        f = rng.uniform(450, 1000)
        ratios = [0.5, 1.0, 1.19, 1.56, 2.0, 2.51, 2.66, 3.01]
        strikes = list(np.arange(0.0, max(duration - 0.2, 0.01), rng.uniform(0.6, 1.2)))
        sig = _impacts(
            n,
            sr,
            strikes,
            lambda: _decaying_partials(
                f * np.array(ratios),
                np.array([0.6, 1, 0.7, 0.5, 0.6, 0.3, 0.25, 0.2]),
                np.array([1.5, 1.2, 0.9, 0.7, 0.5, 0.4, 0.35, 0.3]),
                int(1.6 * sr),
                sr,
                rng,
            ),
        )
    elif cls == CLAPPING:
        rate = rng.uniform(3.5, 5.5)
        grid = np.arange(0.02, duration - 0.02, 1.0 / rate)
        times = list(grid + rng.uniform(-0.02, 0.02, len(grid)))

        def clap() -> np.ndarray:
            m = int(0.05 * sr)
            burst = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.008 * sr))
            centre = rng.uniform(900, 2200)
            return _bandpass(burst, centre / 1.8, centre * 1.8, sr)

        sig = _impacts(n, sr, times, clap)
    elif cls == LAUGHTER:
        return synthesize_speech(n, sr, rng.uniform(140, 260), rng.uniform(1.0, 1.2), rng, laughter=True)
    elif cls == DOOR:
        creak_len = min(duration * 0.6, rng.uniform(0.4, 1.0))
        m = int(creak_len * sr)
        f0 = 40 + 30 * np.cumsum(rng.standard_normal(m)) / np.sqrt(sr) + rng.uniform(0, 40)
        creak = _pulse_train(np.clip(f0, 20, 120), sr)
        creak = _bandpass(creak, 500, 3000, sr) * np.hanning(m)
        sig = np.zeros(n)
        sig[:m] = _normalise(creak) * 0.5
        slam = damped([rng.uniform(60, 100), rng.uniform(180, 260)], 0.08, 0.4, 1.0)
        i0 = m + int(0.05 * sr)
        if i0 < n:
            sig[i0 : i0 + len(slam)] += slam[: n - i0]
    elif cls == WATER_TAP:
        sig = _bandpass(rng.standard_normal(n), 800, 7000, sr) * (0.7 + 0.3 * np.sin(2 * np.pi * 3.3 * t))
        for s in rng.uniform(0, duration, int(25 * duration)):
            i0, m = int(s * sr), int(rng.uniform(0.005, 0.02) * sr)
            if i0 + m < n:
                f = rng.uniform(1000, 3000) * np.linspace(1.0, 1.6, m)
                sig[i0 : i0 + m] += 3.0 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)
    elif cls == MUSIC:
        beat = 60.0 / rng.uniform(95, 130)
        kicks = list(np.arange(0.0, duration, beat))
        sig = _impacts(
            n,
            sr,
            kicks,
            lambda: (
                np.sin(2 * np.pi * np.cumsum(np.linspace(120, 45, int(0.2 * sr))) / sr)
                * np.exp(-np.arange(int(0.2 * sr)) / (0.06 * sr))
            ),
        )
        hats = list(np.arange(beat / 2, duration, beat))
        sig += 0.3 * _impacts(
            n,
            sr,
            hats,
            lambda: (
                _bandpass(rng.standard_normal(int(0.04 * sr)), 6000, 11000, sr)
                * np.exp(-np.arange(int(0.04 * sr)) / (0.01 * sr))
            ),
        )
        root = _midi_hz(int(rng.integers(45, 57)))
        for k, ratio in enumerate((1.0, 1.26, 1.5, 2.0)):
            sig += (
                0.25
                * np.sin(2 * np.pi * root * ratio * t + k)
                * (0.6 + 0.4 * np.sin(2 * np.pi * t / (4 * beat)))
            )
        sig = _bandpass(sig, 120, 8000, sr)
    elif cls == DOMESTIC:
        sig = 0.05 * _bandpass(rng.standard_normal(n), 300, 5000, sr)
        clinks = sorted(rng.uniform(0, duration - 0.05, int(rng.uniform(2, 5) * duration)))
        sig += _impacts(
            n,
            sr,
            clinks,
            lambda: _decaying_partials(
                rng.uniform(1800, 6000) * np.array([1.0, 1.53, 2.31]),
                np.array([1.0, 0.6, 0.4]),
                np.array([0.09, 0.06, 0.04]),
                int(0.25 * sr),
                sr,
                rng,
            ),
        )
    else:
        raise ValueError(f"class {cls} is not a non-target class this generator synthesises")
    return _normalise(_fade(sig, sr))


def synthesize_event(scene: SceneSpec, event: Event, sample_rate: int) -> np.ndarray:
    """The dry signal of an event: float64 ``(round(duration * sample_rate),)`` with peak
    ``10**(level_db/20)``
    (the level at 1 m)."""
    n = int(round(event.duration * sample_rate))
    rng = np.random.default_rng(event.seed)
    if event.cls in (SPEECH_FEMALE, SPEECH_MALE):
        if event.emitter == "person":
            person = scene.people[event.index]
            f0, formants = person.f0, person.formant_scale
        else:
            if scene.speaker_voice is None:
                raise ValueError(f"speech event {event} on a fixture but the scene has no speaker voice")
            f0, formants = scene.speaker_voice.f0, scene.speaker_voice.formant_scale
        signal = synthesize_speech(n, sample_rate, f0, formants, rng)
        if event.emitter == "fixture":  # a small loudspeaker: band-limited
            signal = _normalise(_bandpass(signal, 180, 7000, sample_rate))
    elif event.cls == INSTRUMENT:
        signal = synthesize_instrument(n, sample_rate, scene.people[event.index].instrument or "guitar", rng)
    else:
        signal = synthesize_nontarget(event.cls, n, sample_rate, rng)
    return signal * 10.0 ** (event.level_db / 20.0)


# ------------------------------------------------------------------------------------------------------------
# Room acoustics and spatialisation


def _trajectory(
    scene: SceneSpec, event: Event, i0: int, n: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """The 100-ms trajectory of an event's source: metadata frame-centre times ``(G,)`` covering samples
    ``[i0, i0 + n)`` with a frame of margin, and the source positions ``(G, 3)`` at those times (per-sample
    positions are interpolated linearly between them)."""
    first = int(math.floor(i0 / sample_rate / METADATA_FRAME_SECONDS)) - 1
    last = int(math.ceil((i0 + n) / sample_rate / METADATA_FRAME_SECONDS)) + 1
    grid = (np.arange(first, last + 1) + 0.5) * METADATA_FRAME_SECONDS
    return grid, scene.positions(event, grid)


def _interp_points(grid: np.ndarray, points: np.ndarray, times: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(times, grid, points[:, k]) for k in range(3)], axis=-1)


def _add_path(out: np.ndarray, signal: np.ndarray, points: np.ndarray, start: int, gain: np.ndarray) -> None:
    """Encode ``signal * gain`` arriving from ``points (n, 3)`` into ``out (4, N)`` starting at ``start``."""
    total = out.shape[1]
    lo, hi = max(0, start), min(total, start + len(signal))
    if hi <= lo:
        return
    sl = slice(lo - start, hi - start)
    az, el = vector_to_direction(points[sl])
    out[:, lo:hi] += encode_foa(signal[sl] * gain[sl], az, el)


def reverb_tail(room, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Diffuse-field impulse responses ``float64 (4, L)`` (W, Y, Z, X): decaying noise, frequency-dependent
    RT60 (longer in the bass, shorter in the treble), energy ``10**(-direct_to_reverb_db / 10)`` in W, X/Y/Z
    at 1/sqrt(3) of W (isotropic, SN3D)."""
    from scipy.signal import butter, sosfilt

    length = int(min(2.5, 1.2 * room.rt60 + 0.05) * sample_rate)
    t = np.arange(length) / sample_rate
    onset = (
        2.0
        * min(abs(room.x_min), room.x_max, abs(room.y_min), room.y_max, abs(room.floor_z), room.ceiling_z)
        / SPEED_OF_SOUND
    )
    ramp = np.clip((t - onset) / 0.01, 0.0, 1.0)
    noise = rng.standard_normal((4, length))
    bands = (("lowpass", 500.0, 1.2), ("bandpass", (500.0, 4000.0), 1.0), ("highpass", 4000.0, 0.55))
    ir = np.zeros((4, length))
    for kind, cutoff, factor in bands:
        sos = butter(2, cutoff, btype=kind, fs=sample_rate, output="sos")
        decay = np.exp(-6.91 * t / (room.rt60 * factor))
        ir += sosfilt(sos, noise, axis=1) * decay
    ir *= ramp
    ir[1:] /= math.sqrt(3.0)
    energy = float(np.sum(ir[0] ** 2))
    ir *= math.sqrt(10.0 ** (-room.direct_to_reverb_db / 10.0) / energy)
    return ir


def noise_floor(num_samples: int, level_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Diffuse pink-ish background noise ``float64 (4, N)`` with W at RMS ``level_dbfs``, X/Y/Z at
    1/sqrt(3)."""
    from scipy.signal import lfilter

    white = rng.standard_normal((4, num_samples))
    # sum of three one-pole low-passes and a little white: close to -3 dB/octave over the speech band
    pink = (
        lfilter([0.05], [1, -0.995], white, axis=1)
        + lfilter([0.1], [1, -0.96], white, axis=1)
        + lfilter([0.2], [1, -0.75], white, axis=1)
        + 0.1 * white
    )
    pink[0] *= 10.0 ** (level_dbfs / 20.0) / max(float(np.sqrt(np.mean(pink[0] ** 2))), 1e-12)
    for k in range(1, 4):
        pink[k] *= (
            10.0 ** (level_dbfs / 20.0) / math.sqrt(3.0) / max(float(np.sqrt(np.mean(pink[k] ** 2))), 1e-12)
        )
    return pink


def render_foa(scene: SceneSpec, config: SyntheticConfig) -> np.ndarray:
    """The recording's FOA audio: ``float32 (4, config.num_samples)``, ACN order (W, Y, Z, X), SN3D.

    Each event is encoded along its direct path (gain ``1 / distance``) and its six first-order reflections
    (gain ``sqrt(1 - alpha) / image distance``, delayed by the extra path length), and feeds the diffuse tail;
    the noise floor is added last.
    """
    from scipy.signal import lfilter, oaconvolve

    sr = config.sample_rate
    total = config.num_samples
    out = np.zeros((4, total))
    send = np.zeros(total)
    room = scene.room
    reflect = math.sqrt(1.0 - room.absorption())
    for event in scene.events:
        signal = synthesize_event(scene, event, sr)
        i0 = int(round(event.start * sr))
        n = len(signal)
        grid, points = _trajectory(scene, event, i0, n, sr)
        times = (i0 + np.arange(n)) / sr
        direct = _interp_points(grid, points, times)
        dist = np.linalg.norm(direct, axis=-1)
        _add_path(out, signal, direct, i0, 1.0 / np.maximum(dist, 0.3))
        mirrored = room.mirror(points)
        dull = lfilter([0.6], [1.0, -0.4], signal)  # surfaces absorb the treble a little more
        for image in mirrored:
            path = _interp_points(grid, image, times)
            image_dist = np.linalg.norm(path, axis=-1)
            delay = int(round((image_dist.mean() - dist.mean()) / SPEED_OF_SOUND * sr))
            _add_path(out, dull, path, i0 + delay, reflect / np.maximum(image_dist, 0.3))
        hi = min(total, i0 + n)
        send[i0:hi] += signal[: hi - i0]
    rng = np.random.default_rng(np.random.SeedSequence([scene.seed, 0xA0D10]))
    ir = reverb_tail(room, sr, rng)
    out += oaconvolve(send[None, :], ir, axes=1)[:, :total]
    out += noise_floor(total, config.noise_floor_dbfs, rng)
    return out.astype(np.float32)
