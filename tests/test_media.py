"""Media I/O: one decode per file, mp4 (AAC and MP3-in-MP4) and lossless WAV/FLAC, strict clip validation."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import numpy as np
import pytest

from savg_hub.media import (
    SVGSA24_CLIP,
    Clip,
    MediaError,
    read_audio,
    read_clip,
    read_media,
    write_audio,
    write_clip,
    write_mp4,
)


def _clip(seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    video = np.zeros((20, 256, 256, 3), np.uint8)
    for t in range(20):
        video[t, 56:200] = np.clip(40 + 8 * t + rng.integers(0, 20, (144, 256, 3)), 0, 255)
    audio = np.zeros((2, 80000), np.float32)
    audio[:, 20000:20400] = rng.uniform(-0.5, 0.5, (2, 400))  # a burst to check alignment
    audio[1] *= 0.5
    return Clip(video=video, audio=audio, fps=4.0, sample_rate=16000, clip_id="c")


def _lag(decoded: np.ndarray, reference: np.ndarray) -> int:
    corr = np.correlate(decoded[:30000], reference[19900:20500], "valid")
    return int(np.argmax(np.abs(corr))) - 19900


def test_clip_round_trip_prefers_lossless_sidecar(tmp_path):
    clip = _clip()
    mp4, sidecar = write_clip(tmp_path / "a.mp4", clip)
    assert sidecar == tmp_path / "a.flac" and sidecar.is_file()
    back = read_clip(mp4)
    assert back.meta["audio_source"].endswith("a.flac")
    assert back.video.shape == (20, 256, 256, 3) and back.video.dtype == np.uint8
    np.testing.assert_allclose(back.audio, clip.audio, atol=2**-22)  # 24-bit FLAC
    assert np.abs(back.video.astype(int) - clip.video.astype(int)).mean() < 3  # H.264 at CRF 18
    assert back.video[:, :50].max() < 20  # the black bars stay black


@pytest.mark.parametrize("codec", ["aac", "mp3"])
def test_lossy_tracks_decode_aligned_and_trimmed(tmp_path, codec):
    clip = _clip()
    mp4, _ = write_clip(tmp_path / f"{codec}.mp4", clip, lossless=None, audio_codec=codec)
    media = read_media(mp4)
    assert media.audio_is_lossy and media.audio.shape[1] >= 80000  # codec padding
    back = read_clip(mp4)
    assert back.audio.shape == (2, 80000)
    assert _lag(back.audio[0], clip.audio[0]) == 0
    # left is louder than right as written
    assert np.abs(back.audio[0]).sum() > 1.5 * np.abs(back.audio[1]).sum()


def test_reads_official_mp3_in_mp4_made_by_ffmpeg(tmp_path):
    """moviepy writes an .mp3 with libmp3lame, then stream-copies it into the mp4 (official format)."""
    clip = _clip()
    wav = write_audio(tmp_path / "a.wav", clip.audio, 16000)
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), "-c:a", "libmp3lame", str(tmp_path / "a.mp3")],
                   check=True)
    silent = tmp_path / "v.mp4"
    write_mp4(silent, clip.video, 4.0)
    official = tmp_path / "official.mp4"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(silent), "-i", str(tmp_path / "a.mp3"),
                    "-map", "0:v", "-map", "1:a", "-c", "copy", str(official)], check=True)
    back = read_clip(official)
    assert back.meta["audio_codec"].startswith("mp3")
    assert _lag(back.audio[0], clip.audio[0]) == 0


def test_read_media_decodes_once_both_streams(tmp_path):
    clip = _clip()
    mp4, _ = write_clip(tmp_path / "a.mp4", clip, lossless=None)
    media = read_media(mp4.read_bytes())  # bytes work too
    assert media.video.shape == (20, 256, 256, 3) and media.fps == 4.0
    assert media.audio.shape[0] == 2 and media.sample_rate == 16000
    video_only = read_media(mp4, audio=False)
    assert video_only.audio is None and video_only.video is not None


def test_fractional_frame_rate(tmp_path):
    frames = np.zeros((12, 64, 128, 3), np.uint8)
    write_mp4(tmp_path / "ntsc.mp4", frames, Fraction(30000, 1001))
    media = read_media(tmp_path / "ntsc.mp4")
    assert media.video.shape == (12, 64, 128, 3)
    assert media.fps == pytest.approx(29.97, abs=1e-3)


def test_wav_and_flac_round_trip(tmp_path):
    audio = np.random.default_rng(1).uniform(-0.9, 0.9, (2, 1000)).astype(np.float32)
    for name, atol in (("x.wav", 0.0), ("x.flac", 2**-22)):
        write_audio(tmp_path / name, audio, 16000)
        back, rate = read_audio(tmp_path / name)
        assert rate == 16000
        np.testing.assert_allclose(back, audio, atol=atol)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: setattr(c, "video", c.video[:19]), "19 frames; expected 20"),
        (lambda c: setattr(c, "video", c.video[:, :, :128]), "128x256"),
        (lambda c: setattr(c, "fps", 5.0), "5.0 fps"),
        (lambda c: setattr(c, "audio", c.audio[:1]), "mono"),
        (lambda c: setattr(c, "audio", np.zeros((4, 80000), np.float32)), "4-channel"),
        (lambda c: setattr(c, "sample_rate", 44100), "44100 Hz"),
        (lambda c: setattr(c, "audio", c.audio[:, :79999]), "79999 samples"),
        (lambda c: setattr(c, "video", c.video.astype(np.float32)), "uint8"),
    ],
)
def test_validation_names_the_bad_value(mutate, message):
    clip = _clip()
    mutate(clip)
    with pytest.raises(MediaError, match=message):
        clip.validate(SVGSA24_CLIP)


def test_file_level_errors(tmp_path):
    clip = _clip()
    mp4, _ = write_clip(tmp_path / "a.mp4", clip, lossless=None)
    with pytest.raises(MediaError, match="not found"):
        read_clip(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="unreadable"):
        read_clip(tmp_path / "junk.mp4")
    data = mp4.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated|corrupt"):
        read_media(tmp_path / "cut.mp4")
    # wrong sample rate is refused unless conversion is asked for
    write_audio(tmp_path / "b.wav", np.zeros((2, 44100 * 5), np.float32), 44100)
    write_mp4(tmp_path / "b.mp4", clip.video, 4.0)
    with pytest.raises(MediaError, match="44100 Hz"):
        read_clip(tmp_path / "b.mp4")
    converted = read_clip(tmp_path / "b.mp4", resample=True)
    assert converted.audio.shape == (2, 80000)
    # a mono sidecar is refused
    write_audio(tmp_path / "b.wav", np.zeros((1, 80000), np.float32), 16000)
    with pytest.raises(MediaError, match="mono"):
        read_clip(tmp_path / "b.mp4")
    # a truncated lossless sidecar is refused
    write_audio(tmp_path / "b.wav", np.zeros((2, 70000), np.float32), 16000)
    with pytest.raises(MediaError, match="truncated"):
        read_clip(tmp_path / "b.mp4")


def test_writers_are_atomic(tmp_path):
    with pytest.raises(MediaError):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 63, 64, 3), np.uint8), 4.0)  # odd height
    with pytest.raises(MediaError):
        write_audio(tmp_path / "x.flac", np.full((2, 10), 2.0, np.float32), 16000)  # would clip
    assert list(tmp_path.iterdir()) == []
