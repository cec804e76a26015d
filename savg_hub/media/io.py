"""Reading and writing audio-video files.

One decode per file: :func:`read_media` demuxes an mp4 once and returns both the frames and the PCM.
Video is ``uint8`` RGB ``(T, H, W, 3)``; audio is ``float32`` ``(C, N)`` in [-1, 1], channel 0 = left.

Writers produce mp4 with H.264 video (yuv420p) and an AAC audio track (what browsers play), optionally
MP3-in-MP4 (what the official SAVGBench code writes through moviepy), and lossless stereo WAV/FLAC. Every
writer is atomic: the file appears complete or not at all.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from savg_hub.utils.files import atomic_path

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac"})
LOSSY_AUDIO_CODECS = frozenset({"aac", "mp3", "mp3float", "opus", "libopus", "vorbis", "libvorbis", "mp2"})

_MP4_AUDIO_ENCODERS = {"aac": "aac", "mp3": "libmp3lame"}


class MediaError(ValueError):
    """A media file or array is unreadable, truncated, or not in the expected format."""


@dataclass
class MediaData:
    """Decoded contents of one media file.

    Attributes:
        video: ``uint8`` RGB frames ``(T, H, W, 3)``, or ``None`` when the file has no video (or it was skipped).
        fps: average frame rate of the video stream in frames per second.
        audio: ``float32`` PCM ``(C, N)`` in [-1, 1], channel 0 = left, or ``None``.
        sample_rate: audio sample rate in Hz.
        audio_codec: decoder name of the audio stream (``"aac"``, ``"mp3float"``, ``"flac"``, ``"pcm_f32le"`` ...).
        video_codec: decoder name of the video stream.
        source: where the data came from (a path or ``"<bytes>"``), for error messages.
    """

    video: np.ndarray | None = None
    fps: float | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    audio_codec: str | None = None
    video_codec: str | None = None
    source: str = ""

    @property
    def audio_is_lossy(self) -> bool:
        """Whether the audio went through a lossy codec (decoded length may include codec padding)."""
        return self.audio_codec is not None and self.audio_codec in LOSSY_AUDIO_CODECS


def _source_name(source: str | os.PathLike | bytes) -> str:
    return "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


def _open_input(source: str | os.PathLike | bytes):
    import av

    name = _source_name(source)
    if not isinstance(source, (bytes, bytearray)) and not Path(source).is_file():
        raise MediaError(f"media file not found: {name}")
    try:
        return av.open(io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else str(source))
    except Exception as exc:  # av raises many error types; all mean "cannot open"
        raise MediaError(f"unreadable media file {name}: {exc}") from exc


def _frame_to_planar_float(frame, resampler) -> np.ndarray:
    out = [chunk.to_ndarray() for chunk in resampler.resample(frame)]
    return np.concatenate(out, axis=1) if out else np.zeros((frame.layout.nb_channels, 0), np.float32)


def read_media(source: str | os.PathLike | bytes, *, video: bool = True, audio: bool = True) -> MediaData:
    """Decode a media file once and return its frames and/or PCM.

    Args:
        source: a path (mp4/mov/mkv/webm/avi, or wav/flac for audio only) or the file's bytes.
        video: decode the first video stream.
        audio: decode the first audio stream.

    Returns:
        :class:`MediaData`. Streams that are absent stay ``None``.

    Raises:
        MediaError: the file is missing, unreadable or truncated (fewer frames than its header declares, or
            a decode error part-way).
    """
    name = _source_name(source)
    if not isinstance(source, (bytes, bytearray)) and Path(source).suffix.lower() in AUDIO_EXTENSIONS:
        if not audio:
            return MediaData(source=name)
        pcm, rate, codec = _read_audio_soundfile(source)
        return MediaData(audio=pcm, sample_rate=rate, audio_codec=codec, source=name)

    import av

    container = _open_input(source)
    with container:
        vstream = container.streams.video[0] if (video and container.streams.video) else None
        astream = container.streams.audio[0] if (audio and container.streams.audio) else None
        streams = [s for s in (vstream, astream) if s is not None]
        frames: list[np.ndarray] = []
        chunks: list[np.ndarray] = []
        resampler = av.AudioResampler(format="fltp") if astream is not None else None
        if vstream is not None:
            vstream.thread_type = "AUTO"
        try:
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if packet.stream is vstream:
                        frames.append(frame.to_ndarray(format="rgb24"))
                    else:
                        chunks.append(_frame_to_planar_float(frame, resampler))
            if resampler is not None:
                tail = resampler.resample(None)
                chunks.extend(chunk.to_ndarray() for chunk in tail)
        except av.error.FFmpegError as exc:
            raise MediaError(f"truncated or corrupt media file {name}: {exc}") from exc

        data = MediaData(source=name)
        if vstream is not None:
            declared = int(vstream.frames or 0)
            if declared and len(frames) < declared:
                raise MediaError(
                    f"truncated video in {name}: decoded {len(frames)} frames, the header declares {declared}"
                )
            if not frames:
                raise MediaError(f"no video frames could be decoded from {name}")
            rate = vstream.average_rate or vstream.guessed_rate
            if not rate:
                raise MediaError(f"video stream of {name} has no frame rate")
            data.video = np.stack(frames)
            data.fps = float(rate)
            data.video_codec = vstream.codec_context.name
        if astream is not None:
            pcm = np.concatenate(chunks, axis=1) if chunks else np.zeros((astream.channels, 0), np.float32)
            data.audio = np.ascontiguousarray(pcm, dtype=np.float32)
            data.sample_rate = int(astream.rate)
            data.audio_codec = astream.codec_context.name
            if data.audio.shape[1] == 0:
                raise MediaError(f"no audio samples could be decoded from {name}")
        return data


def _read_audio_soundfile(path: str | os.PathLike) -> tuple[np.ndarray, int, str]:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as handle:
            declared = handle.frames
            pcm = handle.read(dtype="float32", always_2d=True)
            codec = f"{handle.format.lower()}_{handle.subtype.lower()}"
            rate = int(handle.samplerate)
    except FileNotFoundError as exc:
        raise MediaError(f"audio file not found: {path}") from exc
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        raise MediaError(f"unreadable audio file {path}: {exc}") from exc
    if pcm.shape[0] < declared:
        raise MediaError(f"truncated audio file {path}: read {pcm.shape[0]} samples, the header declares {declared}")
    if pcm.shape[0] == 0:
        raise MediaError(f"audio file {path} holds no samples")
    return np.ascontiguousarray(pcm.T), rate, codec


def read_audio(source: str | os.PathLike | bytes) -> tuple[np.ndarray, int]:
    """Read the first audio stream of any supported file: ``(float32 (C, N), sample_rate)``."""
    data = read_media(source, video=False, audio=True)
    if data.audio is None:
        raise MediaError(f"{data.source} has no audio stream")
    return data.audio, int(data.sample_rate)


def _check_audio_array(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise MediaError(f"audio must be (channels, samples); got shape {audio.shape}")
    if audio.shape[0] > 8:
        raise MediaError(f"audio has {audio.shape[0]} channels; did you pass (samples, channels)?")
    if not np.issubdtype(audio.dtype, np.floating):
        raise MediaError(f"audio must be floating point in [-1, 1]; got dtype {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise MediaError("audio contains NaN or Inf")
    if int(sample_rate) <= 0:
        raise MediaError(f"sample_rate must be positive; got {sample_rate}")
    return audio.astype(np.float32, copy=False)


def write_audio(
    path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *, subtype: str | None = None
) -> Path:
    """Write lossless PCM ``(C, N)`` to ``.wav`` (float32 by default) or ``.flac`` (24-bit by default), atomically."""
    import soundfile as sf

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        raise MediaError(f"lossless audio must be .wav or .flac; got {path.name}")
    audio = _check_audio_array(audio, sample_rate)
    if subtype is None:
        subtype = "FLOAT" if suffix == ".wav" else "PCM_24"
    if subtype.startswith("PCM") and np.abs(audio).max(initial=0.0) > 1.0:
        raise MediaError(f"audio exceeds [-1, 1] (peak {np.abs(audio).max():.4f}); it would clip in {subtype}")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio.T, int(sample_rate), subtype=subtype, format=suffix[1:].upper())
    return path


def encode_audio_bytes(audio: np.ndarray, sample_rate: int, *, format: str = "flac", subtype: str | None = None) -> bytes:
    """Encode lossless PCM ``(C, N)`` to FLAC (24-bit) or WAV (float32) bytes in memory."""
    import soundfile as sf

    audio = _check_audio_array(audio, sample_rate)
    fmt = format.lower()
    if fmt not in ("flac", "wav"):
        raise MediaError(f"in-memory lossless audio format must be flac or wav; got {format!r}")
    subtype = subtype or ("PCM_24" if fmt == "flac" else "FLOAT")
    if subtype.startswith("PCM") and np.abs(audio).max(initial=0.0) > 1.0:
        raise MediaError(f"audio exceeds [-1, 1] (peak {np.abs(audio).max():.4f}); it would clip in {subtype}")
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, int(sample_rate), subtype=subtype, format=fmt.upper())
    return buffer.getvalue()


def _check_video_array(video: np.ndarray) -> np.ndarray:
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise MediaError(f"video must be (T, H, W, 3) RGB; got shape {video.shape}")
    if video.dtype != np.uint8:
        raise MediaError(f"video must be uint8; got dtype {video.dtype}")
    if video.shape[0] == 0:
        raise MediaError("video has no frames")
    if video.shape[1] % 2 or video.shape[2] % 2:
        raise MediaError(f"H.264 yuv420p needs even height and width; got {video.shape[1]}x{video.shape[2]}")
    return video


def _fps_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    if not np.isfinite(fps) or fps <= 0:
        raise MediaError(f"fps must be positive; got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_mp4(
    path: str | os.PathLike,
    video: np.ndarray,
    fps: float | Fraction,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    *,
    audio_codec: str = "aac",
    audio_bitrate: int = 128_000,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Write an mp4 with H.264 video and, if given, an AAC (or ``"mp3"``) audio track, atomically.

    Args:
        path: destination ``.mp4``.
        video: ``uint8`` ``(T, H, W, 3)`` RGB, even H and W.
        fps: frame rate (a float or an exact ``Fraction`` such as ``Fraction(30000, 1001)``).
        audio: optional ``float32`` ``(C, N)`` in [-1, 1]; 1 or 2 channels.
        sample_rate: audio sample rate in Hz (required with ``audio``).
        audio_codec: ``"aac"`` (browsers) or ``"mp3"`` (the official SAVGBench format).
        audio_bitrate: bits per second of the audio track.
        crf: x264 constant rate factor (lower is better quality; 18 is visually lossless).
        preset: x264 speed preset.
    """
    import av

    path = Path(path)
    video = _check_video_array(video)
    rate = _fps_fraction(fps)
    if audio is not None:
        if sample_rate is None:
            raise MediaError("sample_rate is required when audio is given")
        audio = _check_audio_array(audio, sample_rate)
        if audio.shape[0] not in (1, 2):
            raise MediaError(f"mp4 audio must be mono or stereo; got {audio.shape[0]} channels")
        if audio_codec not in _MP4_AUDIO_ENCODERS:
            raise MediaError(f"audio_codec must be one of {sorted(_MP4_AUDIO_ENCODERS)}; got {audio_codec!r}")
    with atomic_path(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = int(video.shape[2]), int(video.shape[1])
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(int(crf)), "preset": preset}
            astream = None
            if audio is not None:
                layout = "stereo" if audio.shape[0] == 2 else "mono"
                astream = container.add_stream(_MP4_AUDIO_ENCODERS[audio_codec], rate=int(sample_rate), layout=layout)
                astream.bit_rate = int(audio_bitrate)
            for index, image in enumerate(video):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = index
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))
            if astream is not None:
                clipped = np.clip(audio, -1.0, 1.0)
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(clipped), format="fltp", layout=astream.layout.name
                )
                frame.sample_rate = int(sample_rate)
                frame.pts = 0
                target = astream.codec_context.format.name
                if target != "fltp":
                    converter = av.AudioResampler(format=target, layout=astream.layout.name, rate=int(sample_rate))
                    converted = converter.resample(frame) + converter.resample(None)
                else:
                    converted = [frame]
                for chunk in converted:
                    container.mux(astream.encode(chunk))
                container.mux(astream.encode(None))
    return path


def encode_mp4_bytes(video: np.ndarray, fps: float | Fraction, audio: np.ndarray | None = None,
                     sample_rate: int | None = None, **kwargs) -> bytes:
    """Like :func:`write_mp4` but returns the file's bytes (encoded through a temporary file)."""
    with tempfile.TemporaryDirectory(prefix="savg-mp4-") as tmpdir:
        target = Path(tmpdir) / "clip.mp4"
        write_mp4(target, video, fps, audio, sample_rate, **kwargs)
        return target.read_bytes()
