"""Reader (and writer) for the STARSS23 release layout.

::

    ROOT/foa_dev/<split>/<name>.wav        4-channel FOA, ACN/SN3D, 24 kHz
    ROOT/video_dev/<split>/<name>.mp4      equirectangular 360° video (1920x960, 29.97 fps in the release)
    ROOT/metadata_dev/<split>/<name>.csv   rows: frame, class, source, azimuth, elevation, distance (no header)

``<split>`` is e.g. ``dev-train-sony``, ``dev-train-tau``, ``dev-test-sony``, ``dev-test-tau``. Metadata frames
are 100 ms; azimuth/elevation in degrees (STARSS23 convention, see :mod:`savg_hub.geometry`); distance in cm.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from savg_hub.utils.files import atomic_write_text

STARSS23_CLASSES: tuple[str, ...] = (
    "Female speech, woman speaking",
    "Male speech, man speaking",
    "Clapping",
    "Telephone",
    "Laughter",
    "Domestic sounds",
    "Walk, footsteps",
    "Door, open or close",
    "Music",
    "Musical instrument",
    "Water tap, faucet",
    "Bell",
    "Knock",
)
"""The 13 STARSS23 sound event classes, indexed by class id."""

SPEECH_CLASSES: frozenset[int] = frozenset({0, 1})
INSTRUMENT_CLASSES: frozenset[int] = frozenset({9})
SVGSA24_CLASS_MAP: dict[int, int] = {0: 0, 1: 0, 9: 1}
"""STARSS23 class id -> SVGSA24 class (0 = speech, 1 = instrument), as ``category_id_019to001.json``."""
SVGSA24_CLASS_NAMES: tuple[str, str] = ("speech", "instrument")

FOA_SAMPLE_RATE = 24_000
FOA_CHANNELS = 4

METADATA_DTYPE = np.dtype(
    [("frame", np.int64), ("cls", np.int64), ("source", np.int64),
     ("azimuth", np.float64), ("elevation", np.float64), ("distance", np.float64)]
)
"""Structured dtype of metadata rows: frame (100 ms), class id, source index, azimuth, elevation (deg), distance (cm)."""


class STARSS23FormatError(ValueError):
    """A STARSS23-layout folder or file does not follow the release format."""


@dataclass(frozen=True)
class Recording:
    """One STARSS23 recording: its three files and where it sits in the release.

    Attributes:
        name: file stem, e.g. ``fold3_room21_mix001``.
        split: release split folder, e.g. ``dev-train-sony``.
        foa_path: 4-channel 24 kHz FOA WAV.
        video_path: equirectangular mp4 (``None`` if the release copy has no video).
        metadata_path: 10-fps label CSV.
    """

    name: str
    split: str
    foa_path: Path
    video_path: Path | None
    metadata_path: Path

    @property
    def key(self) -> str:
        """``<split>/<name>``: unique within a release."""
        return f"{self.split}/{self.name}"


def find_recordings(root: str | os.PathLike, splits: list[str] | None = None, *, require_video: bool = True) -> list[Recording]:
    """List the recordings of a STARSS23-layout folder, sorted by split then name.

    Args:
        root: folder holding ``foa_dev/``, ``metadata_dev/`` and ``video_dev/``.
        splits: restrict to these split folders (default: every split found under ``metadata_dev``).
        require_video: raise if a recording has no mp4 (the SVGSA24 builder needs video).

    Raises:
        STARSS23FormatError: missing folders or files, naming what is missing.
    """
    root = Path(root)
    meta_root = root / "metadata_dev"
    if not meta_root.is_dir():
        raise STARSS23FormatError(f"{root} is not a STARSS23 folder: {meta_root} does not exist")
    available = sorted(p.name for p in meta_root.iterdir() if p.is_dir())
    chosen = available if splits is None else list(splits)
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise STARSS23FormatError(f"split(s) {unknown} not found under {meta_root}; available: {available}")
    recordings = []
    for split in chosen:
        for meta in sorted((meta_root / split).glob("*.csv")):
            foa = root / "foa_dev" / split / f"{meta.stem}.wav"
            video = root / "video_dev" / split / f"{meta.stem}.mp4"
            if not foa.is_file():
                raise STARSS23FormatError(f"metadata {meta} has no FOA audio at {foa}")
            if not video.is_file():
                if require_video:
                    raise STARSS23FormatError(f"metadata {meta} has no 360° video at {video}")
                video = None
            recordings.append(Recording(meta.stem, split, foa, video, meta))
    return recordings


def read_metadata(path: str | os.PathLike) -> np.ndarray:
    """Read a STARSS23 metadata CSV into a structured array (:data:`METADATA_DTYPE`), sorted by frame.

    Accepts the 6-column STARSS23 rows and the 5-column STARSS22 rows (no distance, stored as NaN).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise STARSS23FormatError(f"cannot read metadata {path}: {exc}") from exc
    rows = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) not in (5, 6):
            raise STARSS23FormatError(f"{path}:{lineno}: expected 5 or 6 columns, got {len(row)}: {row}")
        try:
            values = [float(cell) for cell in row]
        except ValueError as exc:
            raise STARSS23FormatError(f"{path}:{lineno}: non-numeric value in {row}") from exc
        frame, cls, source = int(values[0]), int(values[1]), int(values[2])
        if frame < 0 or not 0 <= cls < len(STARSS23_CLASSES):
            raise STARSS23FormatError(f"{path}:{lineno}: bad frame {frame} or class {cls}")
        distance = values[5] if len(values) == 6 else np.nan
        rows.append((frame, cls, source, values[3], values[4], distance))
    table = np.array(rows, dtype=METADATA_DTYPE)
    return table[np.argsort(table["frame"], kind="stable")]


def write_metadata(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write metadata rows (:data:`METADATA_DTYPE`) as a STARSS23 CSV with integer fields, atomically."""
    lines = []
    for r in np.sort(rows, order=["frame", "cls", "source"]):
        lines.append(
            f"{int(r['frame'])},{int(r['cls'])},{int(r['source'])},"
            f"{int(round(r['azimuth']))},{int(round(r['elevation']))},{int(round(r['distance']))}"
        )
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def split_of(release_split: str, mapping: dict[str, str] | None = None) -> str:
    """SVGSA24 split of a STARSS23 split folder: ``dev-train-*`` -> ``dev``, ``dev-test-*`` -> ``eval``.

    ``mapping`` (prefix -> split) overrides the default; the longest matching prefix wins.
    """
    mapping = mapping or {"dev-train": "dev", "dev-test": "eval"}
    matches = [prefix for prefix in mapping if release_split.startswith(prefix)]
    if not matches:
        raise STARSS23FormatError(f"no SVGSA24 split is configured for STARSS23 split {release_split!r}")
    return mapping[max(matches, key=len)]


class FoaReader:
    """Random-access reads of a 4-channel FOA WAV without loading the recording.

    Args:
        path: the FOA WAV (ACN/SN3D, 4 channels).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import soundfile as sf

        self.path = Path(path)
        try:
            info = sf.info(str(self.path))
        except Exception as exc:
            raise STARSS23FormatError(f"unreadable FOA file {self.path}: {exc}") from exc
        if info.channels != FOA_CHANNELS:
            raise STARSS23FormatError(f"FOA file {self.path} has {info.channels} channels; expected 4 (W, Y, Z, X)")
        self.sample_rate = int(info.samplerate)
        self.num_samples = int(info.frames)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_samples / self.sample_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as ``float32 (4, stop - start)``; parts outside the file are zeros."""
        import soundfile as sf

        if stop <= start:
            raise ValueError(f"empty range [{start}, {stop})")
        out = np.zeros((FOA_CHANNELS, stop - start), np.float32)
        lo, hi = max(start, 0), min(stop, self.num_samples)
        if hi > lo:
            data, _ = sf.read(str(self.path), start=lo, stop=hi, dtype="float32", always_2d=True)
            if data.shape[0] != hi - lo:
                raise STARSS23FormatError(f"truncated FOA file {self.path}: wanted {hi - lo} samples at {lo}")
            out[:, lo - start : hi - start] = data.T
        return out
