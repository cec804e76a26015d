"""Media I/O: decode each file once, write mp4 (H.264 + AAC/MP3) and lossless stereo WAV/FLAC."""

from savg_hub.media.clip import SVGSA24_CLIP, Clip, ClipSpec, find_sidecar, read_clip, resample_audio, validate_clip, write_clip
from savg_hub.media.io import (
    MediaData,
    MediaError,
    encode_audio_bytes,
    encode_mp4_bytes,
    read_audio,
    read_media,
    write_audio,
    write_mp4,
)

__all__ = [
    "SVGSA24_CLIP",
    "Clip",
    "ClipSpec",
    "MediaData",
    "MediaError",
    "encode_audio_bytes",
    "encode_mp4_bytes",
    "find_sidecar",
    "read_audio",
    "read_clip",
    "read_media",
    "resample_audio",
    "validate_clip",
    "write_audio",
    "write_clip",
    "write_mp4",
]
