"""DCASE-style frame-level SELD scores for SAVGBench's 2-class, horizontal-position output.

A prediction or reference *event* is a row ``(frame, class, x)``: ``frame`` a 100-ms index, ``class`` 0 (speech)
or 1 (instrument), ``x`` the horizontal position in pixels of the 256-px frame. Within one clip, frame and class,
predictions and references are paired greedily by increasing ``|x_pred - x_ref|`` (each used at most once):

* location-dependent: a pair is a true positive when ``|x_pred - x_ref| <= x_tolerance`` (40 px, the Spatial
  AV-Align tolerance); unpaired or too-distant predictions are false positives, unpaired or too-distant
  references false negatives;
* location-independent: every pair is a true positive (detection only);
* position error: mean ``|x_pred - x_ref|`` in pixels over the location-independent pairs.

Scores are micro-averaged over clips and frames, per class and over all classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SPATIAL_AV_ALIGN_TOLERANCE = 40.0  # pixels
"""The Spatial AV-Align matching tolerance: a sound is where its source is when within 40 px."""


@dataclass
class DetectionCounts:
    """True positives, false positives and false negatives of one class (or all classes)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; 1.0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; 1.0 when nothing was to be found."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f_score(self) -> float:
        """``2 tp / (2 tp + fp + fn)``; 1.0 when there is nothing to predict and nothing was predicted."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 1.0

    def add(self, other: "DetectionCounts") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def to_dict(self) -> dict[str, float]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision, "recall": self.recall,
                "f_score": self.f_score}


@dataclass
class ClassScores:
    """Scores of one class (or of all classes together)."""

    location_dependent: DetectionCounts = field(default_factory=DetectionCounts)
    location_independent: DetectionCounts = field(default_factory=DetectionCounts)
    position_error_sum: float = 0.0  # pixels, over location-independent pairs
    num_pairs: int = 0

    @property
    def position_error(self) -> float:
        """Mean absolute position error in pixels over detected frames (NaN when none)."""
        return self.position_error_sum / self.num_pairs if self.num_pairs else float("nan")

    def add(self, other: "ClassScores") -> None:
        self.location_dependent.add(other.location_dependent)
        self.location_independent.add(other.location_independent)
        self.position_error_sum += other.position_error_sum
        self.num_pairs += other.num_pairs

    def to_dict(self) -> dict:
        ld, li = self.location_dependent, self.location_independent
        return {
            "f_score": ld.f_score,
            "precision": ld.precision,
            "recall": ld.recall,
            "location_independent_f_score": li.f_score,
            "location_independent_precision": li.precision,
            "location_independent_recall": li.recall,
            "position_error_px": self.position_error,
            "num_matched_frames": self.num_pairs,
            "counts": ld.to_dict(),
            "location_independent_counts": li.to_dict(),
        }


@dataclass
class SELDScores:
    """Frame-level SELD scores over a set of clips.

    Attributes:
        per_class: one :class:`ClassScores` per class index.
        overall: all classes pooled (micro average).
        x_tolerance: the location threshold in pixels.
        num_clips: clips scored.
    """

    per_class: list[ClassScores]
    overall: ClassScores
    x_tolerance: float
    num_clips: int

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict:
        names = list(class_names) if class_names is not None else [str(c) for c in range(len(self.per_class))]
        if len(names) != len(self.per_class):
            raise ValueError(f"class_names has {len(names)} names for {len(self.per_class)} classes: {names}")
        return {
            "x_tolerance_px": self.x_tolerance,
            "num_clips": self.num_clips,
            "per_class": {name: scores.to_dict() for name, scores in zip(names, self.per_class)},
            "overall": self.overall.to_dict(),
        }


def _as_rows(rows: np.ndarray | Sequence, what: str, index: int) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{what} of clip {index} must be (R, 3) rows of (frame, class, x); got shape {array.shape}")
    if not np.isfinite(array[:, :2]).all():
        raise ValueError(f"{what} of clip {index} has non-finite frame or class values")
    return array


def _pair(pred_x: np.ndarray, ref_x: np.ndarray) -> np.ndarray:
    """Greedy one-to-one pairing by increasing distance; returns the paired distances, ascending."""
    if not len(pred_x) or not len(ref_x):
        return np.zeros(0)
    distance = np.abs(pred_x[:, None] - ref_x[None, :])
    distance = np.where(np.isnan(distance), np.inf, distance)
    order = np.argsort(distance, axis=None, kind="stable")
    used_p, used_r, paired = set(), set(), []
    for flat in order:
        p, r = divmod(int(flat), len(ref_x))
        if p in used_p or r in used_r:
            continue
        used_p.add(p)
        used_r.add(r)
        paired.append(distance[p, r])
        if len(paired) == min(len(pred_x), len(ref_x)):
            break
    return np.asarray(paired)


def seld_frame_scores(
    predictions: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    num_classes: int = 2,
    x_tolerance: float = SPATIAL_AV_ALIGN_TOLERANCE,
    num_frames: Sequence[int] | None = None,
) -> SELDScores:
    """Score per-clip SELD predictions against reference labels, frame by frame.

    Args:
        predictions: one ``(R, 3)`` array of ``(frame, class, x_pixels)`` per clip (e.g.
            :attr:`~savg_hub.evaluation.seld.SELDPrediction.rows`).
        references: one ``(G, 3)`` array of ``(frame, class, x_pixels)`` per clip (the dataset labels).
        num_classes: class indices must lie in ``[0, num_classes)``.
        x_tolerance: location threshold in pixels (inclusive), > 0.
        num_frames: optional per-clip frame count; rows at or after it are ignored on both sides.

    Returns:
        :class:`SELDScores`.

    Raises:
        ValueError: mismatched clip counts, malformed rows, class indices out of range, bad tolerance.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} prediction sets for {len(references)} reference sets")
    if not x_tolerance > 0:
        raise ValueError(f"x_tolerance must be > 0 pixels, got {x_tolerance}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if num_frames is not None and len(num_frames) != len(references):
        raise ValueError(f"num_frames has {len(num_frames)} entries for {len(references)} clips")
    per_class = [ClassScores() for _ in range(num_classes)]
    for index, (pred, ref) in enumerate(zip(predictions, references)):
        pred, ref = _as_rows(pred, "predictions", index), _as_rows(ref, "references", index)
        for name, rows in (("predictions", pred), ("references", ref)):
            bad = (rows[:, 1] < 0) | (rows[:, 1] >= num_classes) | (rows[:, 1] != np.round(rows[:, 1]))
            if bad.any():
                raise ValueError(f"{name} of clip {index} have class {rows[bad, 1][0]} outside 0..{num_classes - 1}")
        if num_frames is not None:
            pred = pred[pred[:, 0] < num_frames[index]]
            ref = ref[ref[:, 0] < num_frames[index]]
        keys = {(int(f), int(c)) for f, c in np.concatenate([pred[:, :2], ref[:, :2]])}
        for frame, cls in keys:
            p = pred[(pred[:, 0] == frame) & (pred[:, 1] == cls), 2]
            r = ref[(ref[:, 0] == frame) & (ref[:, 1] == cls), 2]
            paired = _pair(p, r)
            scores = per_class[cls]
            near = int(np.count_nonzero(paired <= x_tolerance))
            scores.location_dependent.add(DetectionCounts(near, len(p) - near, len(r) - near))
            scores.location_independent.add(DetectionCounts(len(paired), len(p) - len(paired), len(r) - len(paired)))
            finite = paired[np.isfinite(paired)]
            scores.position_error_sum += float(finite.sum())
            scores.num_pairs += len(finite)
    overall = ClassScores()
    for scores in per_class:
        overall.add(scores)
    return SELDScores(per_class=per_class, overall=overall, x_tolerance=float(x_tolerance),
                      num_clips=len(references))
