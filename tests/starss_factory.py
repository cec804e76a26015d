"""Hand-made STARSS23-format recordings for tests: point sources at known directions, markers in the video."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from savg_hub.data.starss23 import METADATA_DTYPE, Recording, write_metadata
from savg_hub.geometry import encode_foa, equirect_pixel
from savg_hub.media.io import write_audio, write_mp4


@dataclass
class Event:
    """A static point source active in ``[start, end)`` seconds."""

    start: float
    end: float
    cls: int
    azimuth: float
    elevation: float = 0.0
    source: int = 0
    level: float = 0.001
    distance: float = 200.0
    marker: bool = True


def make_recording(root: Path, split: str, name: str, events: list[Event], *, duration: float = 6.0,
                   width: int = 960, height: int = 480, fps: Fraction | float = Fraction(10), sample_rate: int = 24000,
                   marker_radius: float = 4.0, seed: int = 0) -> Recording:
    """Write one recording: FOA noise bursts at the events' directions, a white disk marker at each active event's
    direction on a dark textured background, and 10-fps metadata rows."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * sample_rate))
    foa = (rng.standard_normal((4, n)) * 1e-5).astype(np.float32)
    for ev in events:
        a, b = int(ev.start * sample_rate), int(min(ev.end, duration) * sample_rate)
        sig = rng.standard_normal(b - a) * ev.level
        foa[:, a:b] += encode_foa(sig, ev.azimuth, ev.elevation)
    foa_path = root / "foa_dev" / split / f"{name}.wav"
    write_audio(foa_path, foa, sample_rate)

    rate = Fraction(fps)
    num_frames = int(duration * rate)
    yy, xx = np.mgrid[0:height, 0:width]
    background = (40 + 20 * np.sin(xx / 7.0) * np.cos(yy / 5.0)).astype(np.uint8)
    frames = np.repeat(np.repeat(background[None, :, :, None], 3, axis=3), num_frames, axis=0)
    for i in range(num_frames):
        t = i / rate
        for ev in events:
            if ev.marker and ev.start <= t < ev.end:
                col, row = equirect_pixel(ev.azimuth, ev.elevation, width, height)
                mask = (xx - col) ** 2 + (yy - row) ** 2 <= marker_radius**2
                frames[i][mask] = 255
    video_path = root / "video_dev" / split / f"{name}.mp4"
    write_mp4(video_path, frames, rate, crf=12, preset="ultrafast")

    rows = []
    for ev in events:
        for f in range(int(round(duration * 10))):
            centre = (f + 0.5) / 10
            if ev.start <= centre < ev.end:
                rows.append((f, ev.cls, ev.source, ev.azimuth, ev.elevation, ev.distance))
    meta_path = root / "metadata_dev" / split / f"{name}.csv"
    write_metadata(meta_path, np.array(rows, dtype=METADATA_DTYPE))
    return Recording(name, split, foa_path, video_path, meta_path)
