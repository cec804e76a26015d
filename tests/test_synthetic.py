"""The synthetic STARSS23-format scene generator: layout, determinism, audio-visual agreement, curation."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt, stft

from savg_hub.data.builder import BuilderConfig, plan_recording
from savg_hub.data.starss23 import STARSS23_CLASSES, find_recordings, read_metadata
from savg_hub.data.synthetic import (
    INSTRUMENTS,
    TARGET_CLASSES,
    SyntheticConfig,
    generate_recording,
    generate_starss23,
    plan_recordings,
    sample_scene,
)
from savg_hub.data.synthetic.audio import render_foa, synthesize_instrument, synthesize_speech
from savg_hub.data.synthetic.video import EquirectRenderer
from savg_hub.geometry import equirect_pixel, wrap_azimuth
from savg_hub.media.io import read_media

SMALL = SyntheticConfig(duration=8.0, video_width=480, video_height=240, video_preset="ultrafast")
SR = 24_000


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    recordings = generate_starss23(root, 3, seed=0, config=SMALL, progress=False)
    return root, recordings


def _solo_frames(metadata: np.ndarray, num_frames: int) -> np.ndarray:
    counts = np.bincount(metadata["frame"], minlength=num_frames)
    return counts == 1


def _circular_mean_deg(az: np.ndarray) -> float:
    return float(np.degrees(np.angle(np.mean(np.exp(1j * np.radians(az))))))


# ------------------------------------------------------------------------------------------------------------


def test_layout_formats_and_splits(release):
    root, recordings = release
    found = find_recordings(root)
    assert [r.key for r in found] == sorted(r.key for r in recordings)
    assert {r.split for r in found} == {"dev-train-synth", "dev-test-synth"}
    assert {r.name for r in found} == {"fold3_room1_mix001", "fold3_room2_mix001", "fold4_room1_mix001"}
    for rec in found:
        info = sf.info(str(rec.foa_path))
        assert (info.channels, info.samplerate, info.frames) == (4, SR, SMALL.num_samples)
        media = read_media(rec.video_path, audio=False)
        assert media.video.shape == (SMALL.num_video_frames, 240, 480, 3)
        assert SMALL.num_video_frames == math.ceil(8.0 * 30000 / 1001)
        assert media.fps == pytest.approx(30000 / 1001, rel=1e-6)
        meta = read_metadata(rec.metadata_path)
        assert len(meta) > 0
        assert meta["frame"].min() >= 0 and meta["frame"].max() < 80
        assert np.all((meta["azimuth"] >= -180) & (meta["azimuth"] < 180))
        assert np.all(np.abs(meta["elevation"]) <= 90) and np.all(meta["distance"] > 50)
        assert np.all(meta["azimuth"] == np.round(meta["azimuth"]))
        assert set(meta["cls"].tolist()) <= set(range(len(STARSS23_CLASSES)))
        # each (class, source) track is active at most once per frame
        keys = meta["frame"] * 1000 + meta["cls"] * 50 + meta["source"]
        assert len(np.unique(keys)) == len(keys)


def test_split_planning():
    assert [p[0] for p in plan_recordings(1)] == ["dev-train-synth"]
    assert [p[0] for p in plan_recordings(2)] == ["dev-train-synth", "dev-test-synth"]
    plan = plan_recordings(6, seed=3)
    assert [p[0] for p in plan].count("dev-test-synth") == 2
    assert len({p[2] for p in plan}) == 6 and plan == plan_recordings(6, seed=3)
    with pytest.raises(ValueError, match="num_recordings"):
        plan_recordings(0)
    with pytest.raises(ValueError, match="test_fraction"):
        plan_recordings(3, test_fraction=1.0)


def test_deterministic_by_seed(tmp_path):
    config = SyntheticConfig(duration=6.0, video_width=320, video_height=160, video_preset="ultrafast")
    a = generate_recording(tmp_path / "a", "dev-train-synth", "fold3_room1_mix001", 11, config)
    b = generate_recording(tmp_path / "b", "dev-train-synth", "fold3_room1_mix001", 11, config)
    c = generate_recording(tmp_path / "c", "dev-train-synth", "fold3_room1_mix001", 12, config)
    audio_a, audio_b, audio_c = (sf.read(str(r.foa_path), dtype="float32")[0] for r in (a, b, c))
    assert np.array_equal(audio_a, audio_b)
    assert audio_a.shape == audio_c.shape and not np.array_equal(audio_a, audio_c)
    assert a.metadata_path.read_text() == b.metadata_path.read_text()
    assert a.metadata_path.read_text() != c.metadata_path.read_text()
    video_a, video_b, video_c = (read_media(r.video_path, audio=False).video for r in (a, b, c))
    assert np.array_equal(video_a, video_b)
    assert not np.array_equal(video_a, video_c)


def test_config_validation():
    with pytest.raises(ValueError, match="2:1"):
        SyntheticConfig(video_width=640, video_height=240)
    with pytest.raises(ValueError, match="duration"):
        SyntheticConfig(duration=5.0)
    with pytest.raises(ValueError, match="video_preset"):
        SyntheticConfig(video_preset="warp")
    with pytest.raises(ValueError, match="people"):
        SyntheticConfig(people=(3, 2))
    with pytest.raises(ValueError, match="walking_probability"):
        SyntheticConfig(walking_probability=1.5)
    with pytest.raises(ValueError, match="seed"):
        sample_scene(-1, SMALL)
    assert SyntheticConfig(fps=25.0).frame_rate == Fraction(25)


def test_person_drawn_where_the_metadata_puts_the_sound():
    """At the equirect pixel of every on-screen target event of a person (mouth or instrument), the renderer's
    ID buffer names that person and the frame differs from the empty room; moving people included."""
    checked = walking_checked = 0
    for seed in range(6):
        scene = sample_scene(seed, SMALL)
        renderer = EquirectRenderer(scene, 480, 240, track_ids=True)
        empty = EquirectRenderer(dataclasses.replace(scene, people=()), 480, 240).background
        meta = scene.metadata()
        for event in scene.events:
            if not event.is_target or event.emitter != "person":
                continue
            frames, centres = scene.frame_times(event)
            rows = meta[(meta["cls"] == event.cls) & (meta["source"] == event.source)]
            for frame_index, t in list(zip(frames, centres))[:: max(1, len(frames) // 4)]:
                row = rows[rows["frame"] == frame_index][0]
                picture = renderer.render(float(t))
                col, r = equirect_pixel(row["azimuth"], row["elevation"], 480, 240)
                rr, cc = int(round(float(r))), int(round(float(col))) % 480
                window = renderer.ids[rr - 1 : rr + 2, [(cc - 1) % 480, cc, (cc + 1) % 480]]
                assert (window == event.index).sum() >= 5, (seed, event, t)
                assert np.abs(picture[rr, cc].astype(int) - empty[rr, cc].astype(int)).sum() > 0
                checked += 1
                walking_checked += scene.people[event.index].walking
    assert checked >= 30 and walking_checked >= 3


def test_person_across_the_seam():
    """A person standing behind the camera (azimuth 180°) is drawn on both edges of the equirect frame."""
    scene = sample_scene(1, SMALL)
    person = dataclasses.replace(
        scene.people[0], azimuth=180.0, azimuth_swing=0.0, distance_swing=0.0, distance=2.0, index=0
    )
    walker = dataclasses.replace(person, azimuth_swing=2.0, period=20.0, phase=0.0)
    for body in (person, walker):
        one = dataclasses.replace(scene, people=(body,), events=())
        renderer = EquirectRenderer(one, 480, 240, track_ids=True)
        renderer.render(0.0)
        covered = renderer.ids == 0
        assert covered[:, :20].any() and covered[:, -20:].any()
        assert not covered[:, 100:380].any()


def test_video_frames_match_the_renderer(release):
    _, recordings = release
    rec = recordings[0]
    scene = sample_scene(plan_recordings(3, seed=0)[0][2], SMALL)
    renderer = EquirectRenderer(scene, 480, 240)
    video = read_media(rec.video_path, audio=False).video
    fps = SMALL.frame_rate
    for index in (0, 100, len(video) - 1):
        expected = renderer.render(float(index / fps)).astype(np.float32)
        assert np.abs(video[index].astype(np.float32) - expected).mean() < 4.0


def test_foa_direction_matches_metadata():
    """Active intensity (band-limited W*X, W*Y) of solo target events points where the metadata says."""
    sos = butter(4, [200, 4000], btype="bandpass", fs=SR, output="sos")
    config = dataclasses.replace(SMALL, duration=12.0)
    errors, speech_errors = [], []
    for seed in range(5):
        scene = sample_scene(seed, config)
        foa = render_foa(scene, config).astype(np.float64)
        filtered = sosfiltfilt(sos, foa, axis=1)
        freqs, times, spec = stft(foa, fs=SR, nperseg=512)
        band = (freqs > 200) & (freqs < 4000)
        meta = scene.metadata()
        solo = _solo_frames(meta, 120)
        for event in scene.events:
            if not event.is_target:
                continue
            frames, _ = scene.frame_times(event)
            frames = frames[solo[frames]]
            if len(frames) < 10:
                continue
            reference = _circular_mean_deg(scene.directions(event, (frames + 0.5) * 0.1)[0])
            # time-domain mean intensity
            idx = np.concatenate([np.arange(f * 2400, (f + 1) * 2400) for f in frames])
            w, y, _, x = filtered[:, idx]
            estimate = math.degrees(math.atan2(np.mean(w * y), np.mean(w * x)))
            if event.cls in (0, 1):
                speech_errors.append(abs(wrap_azimuth(estimate - reference)))
            # per-bin normalised intensity (robust to coherent reverberation of tonal sources)
            cols = np.isin(np.floor(times * 10).astype(int), frames)
            sw, sy, sx = spec[0][band][:, cols], spec[1][band][:, cols], spec[3][band][:, cols]
            iy, ix = np.real(np.conj(sw) * sy), np.real(np.conj(sw) * sx)
            strong = np.abs(sw) ** 2 > np.percentile(np.abs(sw) ** 2, 70)
            norm = np.hypot(ix, iy)[strong] + 1e-30
            estimate = math.degrees(math.atan2(np.sum(iy[strong] / norm), np.sum(ix[strong] / norm)))
            errors.append(abs(wrap_azimuth(estimate - reference)))
    assert len(speech_errors) >= 5 and len(errors) >= 8
    assert np.median(speech_errors) < 10.0 and np.mean(np.array(speech_errors) < 15.0) >= 0.8
    assert np.median(errors) < 8.0 and np.mean(np.array(errors) < 15.0) >= 0.85


def _pause_fraction(signal: np.ndarray) -> float:
    frames = signal[: len(signal) // 480 * 480].reshape(-1, 480)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return float(np.mean(rms < 0.05 * rms.max()))


def _centroid_spread(signal: np.ndarray) -> float:
    frames = signal[: len(signal) // 480 * 480].reshape(-1, 480)
    spec = np.abs(np.fft.rfft(frames * np.hanning(480), axis=1)) ** 2
    freqs = np.fft.rfftfreq(480, 1 / SR)
    loud = np.sqrt(np.mean(frames**2, axis=1)) > 0.1 * np.sqrt(np.mean(frames**2, axis=1)).max()
    centroid = (spec[loud] * freqs).sum(1) / spec[loud].sum(1)
    return float(np.std(np.log(centroid)))


def test_speech_and_instruments_differ():
    n = 4 * SR
    speech = [
        synthesize_speech(n, SR, f0, scale, np.random.default_rng(k))
        for k, (f0, scale) in enumerate([(210, 1.16), (120, 1.0), (240, 1.18), (95, 0.98)])
    ]
    music = [
        synthesize_instrument(n, SR, inst, np.random.default_rng(k)) for k, inst in enumerate(INSTRUMENTS * 2)
    ]
    for sig in speech + music:
        assert sig.shape == (n,) and np.isfinite(sig).all() and np.abs(sig).max() == pytest.approx(1.0)
    # speech pauses between phrases and at consonants; instruments play legato
    assert min(_pause_fraction(s) for s in speech) > 0.04
    assert max(_pause_fraction(s) for s in music) < 0.02
    # formant transitions make the spectral centroid wander far more than in held notes
    assert min(_centroid_spread(s) for s in speech) > max(_centroid_spread(s) for s in music)
    # voices: female f0 (165-250 Hz) clearly above male (90-145 Hz)
    f0 = [_median_f0(s) for s in speech]
    assert min(f0[0], f0[2]) > 160 and max(f0[1], f0[3]) < 150


def _median_f0(signal: np.ndarray) -> float:
    """Median autocorrelation pitch (70-400 Hz) of the loud 40-ms frames."""
    size = 960
    frames = signal[: len(signal) // size * size].reshape(-1, size)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    lags = np.arange(SR // 400, SR // 70)
    pitches = []
    for frame in frames[rms > 0.3 * rms.max()]:
        ac = np.correlate(frame, frame, mode="full")[size - 1 :]
        pitches.append(SR / lags[np.argmax(ac[lags])])
    return float(np.median(pitches))


def test_timeline_classes_and_offscreen_sources():
    config = dataclasses.replace(SMALL, duration=30.0)
    classes: set[int] = set()
    offscreen = 0
    single = []
    for seed in range(16):
        scene = sample_scene(seed, config)
        meta = scene.metadata()
        classes |= set(meta["cls"].tolist())
        target = np.isin(meta["cls"], list(TARGET_CLASSES))
        offscreen += int(np.sum(target & (meta["elevation"] > 40)))
        single.append(scene.active_counts()["single_target"])
        for event in scene.events:
            if event.is_target:
                assert event.duration <= config.turn_seconds[1] + 1e-6
    assert {0, 1, 9} <= classes
    assert len(classes - TARGET_CLASSES) >= 5  # non-target classes for curation to reject
    assert offscreen > 0  # speech from the ceiling loudspeaker (elevation 45-70°)
    assert 0.6 < np.mean(single) < 0.95


def test_levels_and_real_curation(release):
    """Target events land mostly at stereo peaks 0.2-0.9 after the SVGSA24 +38 dB, and the real builder's
    curation keeps some windows and rejects others."""
    root, _ = release
    sos = butter(4, 100, btype="highpass", fs=SR, output="sos")
    peaks = []
    for seed in range(4):
        scene = sample_scene(seed, dataclasses.replace(SMALL, duration=12.0))
        foa = sosfiltfilt(
            sos, render_foa(scene, dataclasses.replace(SMALL, duration=12.0)).astype(np.float64), axis=1
        )
        foa *= 10 ** (38 / 20)
        for event in scene.events:
            if not event.is_target:
                continue
            yaw = math.radians(
                _circular_mean_deg(scene.directions(event, np.array([event.start, event.end]))[0])
            )
            seg = foa[:, int(event.start * SR) : int(event.end * SR)]
            side = math.cos(yaw) * seg[1] - math.sin(yaw) * seg[3]
            peaks.append(max(np.abs(seg[0] + side).max(), np.abs(seg[0] - side).max()))
    peaks = np.array(peaks)
    assert len(peaks) >= 10
    assert 0.2 < np.median(peaks) < 0.9
    assert np.mean((peaks > 0.1) & (peaks < 1.5)) >= 0.8
    kept = candidates = 0
    for rec in find_recordings(root):
        plan = plan_recording(rec, "dev", BuilderConfig())
        kept += len(plan.clips)
        candidates += plan.candidates
    assert 0 < kept < candidates
