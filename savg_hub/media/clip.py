"""The SVGSA24 clip contract and clip files (mp4 + optional lossless sidecar audio).

A clip is 20 RGB frames of 256x256 at 4 fps (a 256x144 perspective picture letterboxed with 56-px black bars)
and 5 s of stereo audio at 16 kHz (``float32 (2, 80000)`` in [-1, 1], channel 0 = left). Anything else is an
error that names the offending value; conversion happens only when the caller asks for it.

On disk a clip is ``name.mp4`` (H.264 + AAC, or the official MP3-in-MP4). Because SELD reads inter-channel
phase, the toolkit also writes ``name.flac`` (or ``name.wav``) next to it; readers prefer that lossless
sidecar when it exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from savg_hub.media.io import MediaError, read_audio, read_media, write_audio, write_mp4

SIDECAR_EXTENSIONS = (".flac", ".wav")


@dataclass(frozen=True)
class ClipSpec:
    """Shape, rate and layout of a benchmark clip.

    Args:
        num_frames: frames per clip.
        height: frame height in pixels, bars included.
        width: frame width in pixels.
        fps: frames per second.
        sample_rate: audio sample rate in Hz.
        num_samples: audio samples per channel.
        num_channels: audio channels (2: left, right).
        pad_top: rows of black bar above the picture.
        pad_bottom: rows of black bar below the picture.
        max_codec_padding: extra samples tolerated (and dropped) after the end of a lossy-coded audio track
            (AAC/MP3 encoders pad their last frame; the official scripts tolerate this too).
    """

    num_frames: int = 20
    height: int = 256
    width: int = 256
    fps: float = 4.0
    sample_rate: int = 16_000
    num_samples: int = 80_000
    num_channels: int = 2
    pad_top: int = 56
    pad_bottom: int = 56
    max_codec_padding: int = 4096

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return self.num_samples / self.sample_rate

    @property
    def picture_height(self) -> int:
        """Rows of the perspective picture between the bars."""
        return self.height - self.pad_top - self.pad_bottom


SVGSA24_CLIP = ClipSpec()


@dataclass
class Clip:
    """One audio-video clip in memory.

    Attributes:
        video: ``uint8`` RGB ``(T, H, W, 3)``.
        audio: ``float32`` ``(C, N)`` in [-1, 1], channel 0 = left.
        fps: frames per second.
        sample_rate: audio sample rate in Hz.
        clip_id: an identifier (file stem or dataset ``clip_id``).
        meta: free-form provenance (paths, codecs).
    """

    video: np.ndarray
    audio: np.ndarray
    fps: float
    sample_rate: int
    clip_id: str = ""
    meta: dict = field(default_factory=dict)

    def validate(self, spec: ClipSpec = SVGSA24_CLIP) -> "Clip":
        """Raise :class:`MediaError` unless this clip meets ``spec`` exactly; return ``self``."""
        validate_clip(self.video, self.fps, self.audio, self.sample_rate, spec, source=self.clip_id)
        return self


def validate_clip(
    video: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int, spec: ClipSpec = SVGSA24_CLIP,
    *, source: str = "",
) -> None:
    """Check arrays against ``spec``; raise :class:`MediaError` naming the first violated rule."""
    where = f" in {source}" if source else ""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise MediaError(f"video{where} must be (T, H, W, 3) RGB; got shape {video.shape}")
    if video.dtype != np.uint8:
        raise MediaError(f"video{where} must be uint8; got {video.dtype}")
    if video.shape[0] != spec.num_frames:
        raise MediaError(f"video{where} has {video.shape[0]} frames; expected {spec.num_frames}")
    if video.shape[1:3] != (spec.height, spec.width):
        raise MediaError(
            f"video{where} is {video.shape[2]}x{video.shape[1]} (WxH); expected {spec.width}x{spec.height}"
        )
    if fps is None or abs(float(fps) - spec.fps) > 1e-3 * spec.fps:
        raise MediaError(f"video{where} runs at {fps} fps; expected {spec.fps}")
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise MediaError(f"audio{where} must be (channels, samples); got shape {audio.shape}")
    if audio.shape[0] != spec.num_channels:
        kind = "mono" if audio.shape[0] == 1 else f"{audio.shape[0]}-channel"
        raise MediaError(f"audio{where} is {kind}; expected {spec.num_channels} channels (left, right)")
    if audio.dtype != np.float32:
        raise MediaError(f"audio{where} must be float32; got {audio.dtype}")
    if int(sample_rate) != spec.sample_rate:
        raise MediaError(f"audio{where} is sampled at {sample_rate} Hz; expected {spec.sample_rate}")
    if audio.shape[1] != spec.num_samples:
        raise MediaError(f"audio{where} has {audio.shape[1]} samples; expected {spec.num_samples}")
    if not np.all(np.isfinite(audio)):
        raise MediaError(f"audio{where} contains NaN or Inf")


def find_sidecar(path: str | os.PathLike) -> Path | None:
    """The lossless audio file stored next to a clip (``name.flac`` or ``name.wav``), if any."""
    path = Path(path)
    for suffix in SIDECAR_EXTENSIONS:
        candidate = path.with_suffix(suffix)
        if candidate != path and candidate.is_file():
            return candidate
    return None


def _fit_length(audio: np.ndarray, spec: ClipSpec, lossy: bool, source: str) -> np.ndarray:
    n = audio.shape[1]
    if n == spec.num_samples:
        return audio
    if n < spec.num_samples:
        raise MediaError(f"truncated audio in {source}: {n} samples, expected {spec.num_samples}")
    if not lossy:
        raise MediaError(f"audio in {source} has {n} samples; expected {spec.num_samples}")
    if n - spec.num_samples > spec.max_codec_padding:
        raise MediaError(
            f"audio in {source} has {n} samples, {n - spec.num_samples} more than {spec.num_samples}; "
            f"more than codec padding ({spec.max_codec_padding})"
        )
    return np.ascontiguousarray(audio[:, : spec.num_samples])


def read_clip(
    path: str | os.PathLike,
    spec: ClipSpec = SVGSA24_CLIP,
    *,
    audio_path: str | os.PathLike | None | bool = True,
    resample: bool = False,
) -> Clip:
    """Read and validate one clip file.

    Args:
        path: the clip's mp4.
        spec: the contract to validate against.
        audio_path: ``True`` (default) uses a lossless sidecar (``.flac``/``.wav`` with the same stem) when one
            exists, else the mp4's own track; ``False`` always uses the mp4's track; a path names the audio file.
        resample: convert audio of another sample rate to ``spec.sample_rate`` instead of raising.

    Returns:
        A :class:`Clip` meeting ``spec``. Codec padding after the end of a lossy track is dropped.

    Raises:
        MediaError: unreadable/truncated file, or any mismatch with ``spec``.
    """
    path = Path(path)
    sidecar: Path | None
    if audio_path is True:
        sidecar = find_sidecar(path)
    elif audio_path in (False, None):
        sidecar = None
    else:
        sidecar = Path(audio_path)
    data = read_media(path, video=True, audio=sidecar is None)
    if data.video is None:
        raise MediaError(f"{path} has no video stream")
    if sidecar is not None:
        audio, rate = read_audio(sidecar)
        lossy, audio_source, codec = False, str(sidecar), sidecar.suffix.lstrip(".")
    else:
        if data.audio is None:
            raise MediaError(f"{path} has no audio stream (and no .flac/.wav sidecar)")
        audio, rate = data.audio, int(data.sample_rate)
        lossy, audio_source, codec = data.audio_is_lossy, str(path), data.audio_codec
    if audio.shape[0] != spec.num_channels:
        kind = "mono" if audio.shape[0] == 1 else f"{audio.shape[0]}-channel"
        raise MediaError(f"audio in {audio_source} is {kind}; expected {spec.num_channels} channels (left, right)")
    if rate != spec.sample_rate:
        if not resample:
            raise MediaError(
                f"audio in {audio_source} is sampled at {rate} Hz; expected {spec.sample_rate} "
                "(pass resample=True to convert)"
            )
        audio = resample_audio(audio, rate, spec.sample_rate)
        rate = spec.sample_rate
    audio = _fit_length(audio, spec, lossy or resample, audio_source)
    clip = Clip(
        video=data.video, audio=audio, fps=float(data.fps), sample_rate=rate, clip_id=path.stem,
        meta={"path": str(path), "audio_source": audio_source, "audio_codec": codec, "video_codec": data.video_codec},
    )
    return clip.validate(spec)


def resample_audio(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling of ``float32 (C, N)`` from ``rate_in`` to ``rate_out`` Hz."""
    from math import gcd

    from scipy.signal import resample_poly

    if rate_in == rate_out:
        return audio
    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(audio, int(rate_out) // g, int(rate_in) // g, axis=1).astype(np.float32)


def write_clip(
    path: str | os.PathLike,
    clip: Clip,
    *,
    spec: ClipSpec | None = SVGSA24_CLIP,
    lossless: str | None = "flac",
    audio_codec: str = "aac",
) -> tuple[Path, Path | None]:
    """Write ``clip`` as ``path`` (mp4, H.264 + AAC/MP3) plus a lossless sidecar next to it.

    Args:
        path: destination ``.mp4``.
        clip: the clip; validated against ``spec`` first (``spec=None`` skips validation).
        lossless: ``"flac"``, ``"wav"`` or ``None`` (no sidecar).
        audio_codec: ``"aac"`` or ``"mp3"`` for the track inside the mp4.

    Returns:
        ``(mp4_path, sidecar_path or None)``.
    """
    if spec is not None:
        clip.validate(spec)
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise MediaError(f"clip files are .mp4; got {path.name}")
    if lossless not in (None, "flac", "wav"):
        raise MediaError(f"lossless must be 'flac', 'wav' or None; got {lossless!r}")
    write_mp4(path, clip.video, clip.fps, clip.audio, clip.sample_rate, audio_codec=audio_codec)
    sidecar = None
    if lossless is not None:
        sidecar = write_audio(path.with_suffix("." + lossless), clip.audio, clip.sample_rate)
    return path, sidecar
