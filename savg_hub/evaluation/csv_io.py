"""The official per-clip CSV formats, for row-by-row comparison with the SAVGBench scripts.

* SELD: ``<dir>/<clip>.csv``, no header, rows ``frame, class, x`` written as float64 reprs
  (``12.0,0.0,131.23456789012346``, what pandas 1.5.3 writes); a 0-byte file when nothing is detected.
* Detections: ``<dir>/<clip>.csv``, no header, rows ``frame, category, x0, y0, x1, y1``; frame and category as
  integers, box corners as float32 values written with the repr of their float64 value
  (``12.345678329467773``); a 0-byte file when no box passes.

Readers accept any numeric formatting (the official readers only use ``int()`` of each field). Writers are atomic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from savg_hub.utils.files import atomic_write_text


def read_numeric_csv(path: str | os.PathLike, num_columns: int, what: str = "") -> np.ndarray:
    """``float64 (N, num_columns)`` from a header-less numeric CSV; a 0-byte or blank file gives ``(0, num_columns)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a line without exactly ``num_columns`` numeric fields (the line is named).
    """
    path = Path(path)
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        try:
            if len(cells) != num_columns:
                raise ValueError
            rows.append([float(cell) for cell in cells])
        except ValueError:
            expected = f"'{what}'" if what else f"{num_columns} numbers"
            raise ValueError(f"{path}:{lineno}: expected {expected} ({num_columns} columns), got {line!r}") from None
    return np.array(rows, dtype=np.float64).reshape(-1, num_columns)


def read_seld_csv(path: str | os.PathLike) -> np.ndarray:
    """An official SELD CSV as ``float64 (R, 3)``: frame, class, x (file order)."""
    return read_numeric_csv(path, 3, "frame,class,x")


def write_seld_csv(path: str | os.PathLike, rows: np.ndarray | Sequence[Sequence[float]]) -> Path:
    """Write ``(R, 3)`` SELD rows ``(frame, class, x_pixels)`` in the official float64-repr format, atomically.

    Raises:
        ValueError: ``rows`` is not ``(R, 3)`` or holds NaN/inf.
    """
    array = np.asarray(rows, dtype=np.float64)
    if array.size == 0:
        array = array.reshape(0, 3)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"SELD rows must have shape (R, 3) = (frame, class, x); got {array.shape}")
    if not np.isfinite(array).all():
        bad = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise ValueError(f"SELD row {bad} is not finite: {array[bad].tolist()}")
    return atomic_write_text(path, "".join(f"{f!r},{c!r},{x!r}\n" for f, c, x in array.tolist()))


def detection_rows(boxes_per_frame: Sequence[np.ndarray], category: int = 0) -> np.ndarray:
    """Per-frame boxes ``(K, 4|5)`` (x0, y0, x1, y1[, score]) -> official rows ``float64 (M, 6)``.

    Corners are rounded to float32 as the official writer stores them; the score column is dropped.
    """
    rows = []
    for frame, boxes in enumerate(boxes_per_frame):
        boxes = np.asarray(boxes)
        if boxes.size == 0:
            continue
        if boxes.ndim != 2 or boxes.shape[1] not in (4, 5):
            raise ValueError(f"frame {frame}: boxes must be (K, 4) or (K, 5), got shape {boxes.shape}")
        corners = boxes[:, :4].astype(np.float32).astype(np.float64)
        if not np.isfinite(corners).all():
            raise ValueError(f"frame {frame}: non-finite box coordinates")
        for corner in corners:
            rows.append([frame, category, *corner])
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def write_detection_csv(path: str | os.PathLike, boxes_per_frame: Sequence[np.ndarray]) -> Path:
    """Write one clip's person boxes in the official OD CSV format, atomically.

    Rows ``frame,0,x0,y0,x1,y1`` (frame = index in ``boxes_per_frame``), frames in order and, within a frame, in
    the given order; a 0-byte file when there are no boxes. (The official script sorts rows by frame with an
    unstable sort, so its order within a frame may differ; the metric does not depend on it.)
    """
    lines = [f"{int(f)},{int(c)},{x0!r},{y0!r},{x1!r},{y1!r}\n"
             for f, c, x0, y0, x1, y1 in detection_rows(boxes_per_frame).tolist()]
    return atomic_write_text(path, "".join(lines))


def read_detection_csv(path: str | os.PathLike) -> np.ndarray:
    """An official detection CSV as ``float64 (M, 6)``: frame, category, x0, y0, x1, y1 (file order)."""
    return read_numeric_csv(path, 6, "frame,category,x0,y0,x1,y1")
