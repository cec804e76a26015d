"""Spatial AV-Align: do the sounds a SELD model hears line up with the people a detector sees?

The ``official`` rule (SAVGBench 04e8d5b, ``compute_spatialAValign_metrics.py``), reproduced exactly:

* every SELD row (100-ms frame ``f``, any class, horizontal position ``x`` in pixels) counts once;
  ``f`` and ``x`` are truncated toward zero (``int()``);
* if the clip has no detection at all, the row is a miss (FN);
* otherwise the row maps to video frame ``k = round_half_even(f / 10 * 4)``, with ``k = 20`` clamped to 19 and any
  other ``k`` outside [0, 20) an error;
* candidate boxes are the detections on frames ``k - 1 .. k + 1``; the row is a hit (TP) if some candidate has
  ``int(x1) >= x - 40`` and ``int(x0) <= x + 40`` (closed intervals on integers; y and class are ignored);
* the score is the micro-average ``sum TP / (sum TP + sum FN)`` over all clips. With no SELD row at all the
  official script divides by zero; here the score is ``None`` ("undefined") instead.

Per-clip scores are reported alongside (a clip without SELD rows has an undefined score).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

OFFICIAL_FRAME_ERROR = "We expect frame_seld 0 and 49 is the first and last frames"


class SpatialAlignError(ValueError):
    """Input the official rule cannot score (a SELD frame that maps outside the video)."""


@dataclass(frozen=True)
class SpatialAlignConfig:
    """Parameters of the matching rule (defaults: the official ones).

    Args:
        tolerance_px: half-width of the horizontal window around the SELD position, pixels (40).
        frame_tolerance: detections on video frames ``k - t .. k + t`` are candidates (1 = ±0.25 s at 4 fps).
        seld_rate: SELD frames per second (10).
        video_fps: video frames per second (4).
        num_video_frames: frames per clip (20); ``k == num_video_frames`` is clamped to the last frame.
    """

    tolerance_px: int = 40
    frame_tolerance: int = 1
    seld_rate: float = 10.0
    video_fps: float = 4.0
    num_video_frames: int = 20


OFFICIAL = SpatialAlignConfig()


def video_frame_for_seld_frame(seld_frames: np.ndarray | int, config: SpatialAlignConfig = OFFICIAL,
                               clip_id: str = "") -> np.ndarray:
    """Official 10 -> 4 fps frame map (numpy round-half-even, ``k == 20`` -> 19); raises outside [0, 20)."""
    frames = np.asarray(seld_frames, dtype=np.int64)
    k = np.round(frames / config.seld_rate * config.video_fps).astype(np.int64)
    k[k == config.num_video_frames] = config.num_video_frames - 1
    bad = (k < 0) | (k >= config.num_video_frames)
    if bad.any():
        where = f" in clip {clip_id}" if clip_id else ""
        raise SpatialAlignError(
            f"{OFFICIAL_FRAME_ERROR}: SELD frame {int(frames[bad][0])}{where} maps to video frame {int(k[bad][0])}, "
            f"outside 0..{config.num_video_frames - 1}"
        )
    return k


def match_clip(seld_rows: np.ndarray, detections: np.ndarray, config: SpatialAlignConfig = OFFICIAL,
               clip_id: str = "") -> np.ndarray:
    """Hit (TP) flags of one clip's SELD rows.

    Args:
        seld_rows: ``(N, 3)`` rows ``frame, class, x`` (any numeric dtype; official per-clip SELD CSV).
        detections: ``(M, 6)`` rows ``frame, category, x0, y0, x1, y1`` (official per-clip OD CSV); the category is
            ignored.
        config: the matching rule.
        clip_id: for error messages.

    Returns:
        ``bool (N,)``: True where the row is a TP.
    """
    seld_rows = np.asarray(seld_rows, dtype=np.float64).reshape(-1, 3)
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
    if not len(seld_rows):
        return np.zeros(0, dtype=bool)
    if not len(detections):
        return np.zeros(len(seld_rows), dtype=bool)
    frames = np.trunc(seld_rows[:, 0]).astype(np.int64)
    x = np.trunc(seld_rows[:, 2]).astype(np.int64)
    k = video_frame_for_seld_frame(frames, config, clip_id)
    det_frame = np.trunc(detections[:, 0]).astype(np.int64)
    x0 = np.trunc(detections[:, 2]).astype(np.int64)
    x1 = np.trunc(detections[:, 4]).astype(np.int64)
    near = np.abs(det_frame[None, :] - k[:, None]) <= config.frame_tolerance
    overlap = (x1[None, :] >= (x - config.tolerance_px)[:, None]) & (x0[None, :] <= (x + config.tolerance_px)[:, None])
    return (near & overlap).any(axis=1)


@dataclass
class ClipSpatialScore:
    """One clip's counts. ``score`` is ``None`` when the SELD model detected nothing in the clip."""

    clip_id: str
    num_tp: int
    num_fn: int

    @property
    def num_detections(self) -> int:
        return self.num_tp + self.num_fn

    @property
    def score(self) -> float | None:
        return self.num_tp / self.num_detections if self.num_detections else None


@dataclass
class SpatialAVAlignResult:
    """Micro-averaged Spatial AV-Align plus per-clip counts."""

    num_tp: int = 0
    num_fn: int = 0
    per_clip: list[ClipSpatialScore] = field(default_factory=list)
    config: SpatialAlignConfig = OFFICIAL

    @property
    def num_detections(self) -> int:
        return self.num_tp + self.num_fn

    @property
    def score(self) -> float | None:
        """``TP / (TP + FN)`` over all SELD detections; ``None`` (undefined) when there are none."""
        return self.num_tp / self.num_detections if self.num_detections else None

    @property
    def defined(self) -> bool:
        return self.num_detections > 0

    def official_lines(self) -> str:
        """The two lines the official script appends to ``results.out`` (trailing spaces included).

        Raises:
            ZeroDivisionError-like :class:`ValueError` when undefined: the official script writes nothing then.
        """
        if not self.defined:
            raise ValueError("Spatial AV-Align is undefined (no SELD detections); the official script writes nothing")
        return (
            f"AV spatial each component: num_TP: {self.num_tp}, num_FN: {self.num_fn}, "
            f"num_TP + num_FN: {self.num_detections} \n"
            f"AV_final_score: {self.score!r} \n"
        )

    def official_stdout(self) -> str:
        """What the official script prints (``TP FN TOTAL`` then the score)."""
        head = f"{self.num_tp} {self.num_fn} {self.num_detections}\n"
        return head + (f"{self.score!r}\n" if self.defined else "")

    def to_dict(self) -> dict:
        return {
            "score": self.score,
            "num_tp": self.num_tp,
            "num_fn": self.num_fn,
            "num_detections": self.num_detections,
            "num_clips": len(self.per_clip),
            "config": asdict(self.config),
        }


def spatial_av_align(
    clips: Iterable[tuple[str, np.ndarray, np.ndarray]], config: SpatialAlignConfig = OFFICIAL
) -> SpatialAVAlignResult:
    """Score clips given ``(clip_id, seld_rows (N, 3), detections (M, 6))`` triples (see :func:`match_clip`)."""
    result = SpatialAVAlignResult(config=config)
    for clip_id, seld_rows, detections in clips:
        hits = match_clip(seld_rows, detections, config, clip_id)
        tp = int(hits.sum())
        result.per_clip.append(ClipSpatialScore(clip_id, tp, int(len(hits) - tp)))
        result.num_tp += tp
        result.num_fn += int(len(hits) - tp)
    return result


def read_list_file(path: str | os.PathLike) -> list[str]:
    """Clip ids from an official list file (one video path per line): the base names without extension."""
    ids = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            ids.append(Path(line.split()[0]).stem)
    return ids


def spatial_av_align_from_csv(
    seld_dir: str | os.PathLike,
    detections_dir: str | os.PathLike,
    clip_ids: list[str] | None = None,
    config: SpatialAlignConfig = OFFICIAL,
) -> SpatialAVAlignResult:
    """Score official per-clip CSVs (whoever wrote them): ``<seld_dir>/<clip>.csv`` and ``<detections_dir>/<clip>.csv``.

    Args:
        seld_dir: folder of SELD CSVs (``frame, class, x``).
        detections_dir: folder of detection CSVs (``frame, category, x0, y0, x1, y1``).
        clip_ids: clips to score (default: every CSV in ``seld_dir``, sorted).
        config: the matching rule.

    Raises:
        FileNotFoundError: a clip's CSV is missing in either folder (named in the message).
    """
    from savg_hub.evaluation.csv_io import read_detection_csv, read_seld_csv

    seld_dir, detections_dir = Path(seld_dir), Path(detections_dir)
    if clip_ids is None:
        clip_ids = sorted(p.stem for p in seld_dir.glob("*.csv"))
        if not clip_ids:
            raise FileNotFoundError(f"no SELD CSVs in {seld_dir}")

    def triples():
        for clip_id in clip_ids:
            seld_path, det_path = seld_dir / f"{clip_id}.csv", detections_dir / f"{clip_id}.csv"
            for path in (seld_path, det_path):
                if not path.is_file():
                    raise FileNotFoundError(f"missing CSV for clip {clip_id}: {path}")
            yield clip_id, read_seld_csv(seld_path), read_detection_csv(det_path)

    return spatial_av_align(triples(), config)


def nan_to_none(value: float | None) -> float | None:
    """JSON-friendly: NaN -> None."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
