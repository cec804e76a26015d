"""The official per-clip CSV formats, for row-by-row comparison with the SAVGBench scripts.

* SELD: ``<dir>/<clip>.csv``, no header, rows ``frame, class, x`` written as float64 reprs
  (``12.0,0.0,131.23456789012346``, what pandas 1.5.3 writes); a 0-byte file when nothing is detected.
* Detections: ``<dir>/<clip>.csv``, no header, rows ``frame, category, x0, y0, x1, y1``; frame and category as
  integers, box corners as float32 values written with the repr of their float64 value
  (``12.345678329467773``); a 0-byte file when no box passes.

Readers accept any numeric formatting (the official readers only use ``int()`` of each field).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from savg_hub.utils.files import atomic_write_text


def read_numeric_csv(path: str | os.PathLike, num_columns: int) -> np.ndarray:
    """``float64 (N, num_columns)`` from a header-less numeric CSV; a 0-byte or blank file gives ``(0, num_columns)``."""
    path = Path(path)
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != num_columns:
            raise ValueError(f"{path}:{lineno}: expected {num_columns} columns, got {len(cells)}: {line!r}")
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: non-numeric value in {line!r}") from exc
    return np.array(rows, dtype=np.float64).reshape(-1, num_columns)


def read_seld_rows(path: str | os.PathLike) -> np.ndarray:
    """An official SELD CSV as ``float64 (N, 3)``: frame, class, x."""
    return read_numeric_csv(path, 3)


def read_detection_rows(path: str | os.PathLike) -> np.ndarray:
    """An official detection CSV as ``float64 (M, 6)``: frame, category, x0, y0, x1, y1."""
    return read_numeric_csv(path, 6)


def write_seld_rows(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write ``(N, 3)`` SELD rows in the official float64-repr format (0-byte file when empty), atomically."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    text = "".join(f"{float(f)!r},{float(c)!r},{float(x)!r}\n" for f, c, x in rows)
    return atomic_write_text(path, text)


def write_detection_rows(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write ``(M, 6)`` detection rows in the official format (0-byte file when empty), atomically."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    lines = []
    for frame, category, x0, y0, x1, y1 in rows:
        corners = ",".join(repr(float(np.float32(v))) for v in (x0, y0, x1, y1))
        lines.append(f"{int(frame)},{int(category)},{corners}\n")
    return atomic_write_text(path, "".join(lines))
