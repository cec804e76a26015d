"""Drawing primitives for overlay videos (labels, detector boxes, SELD positions), on ``uint8 (H, W, 3)`` RGB frames.

All functions draw in place and return the frame; coordinates are pixels of the frame (floats are rounded).
"""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]

SPEECH_COLOR: Color = (0, 220, 255)
INSTRUMENT_COLOR: Color = (255, 160, 0)
HIT_COLOR: Color = (40, 220, 60)
MISS_COLOR: Color = (240, 40, 40)
BOX_COLOR: Color = (255, 255, 255)


def _check(frame: np.ndarray) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 (H, W, 3); got {frame.dtype} {frame.shape}")
    return frame


def draw_marker(frame: np.ndarray, x: float, y: float, color: Color, radius: int = 6, thickness: int = 2) -> np.ndarray:
    """A circle with a centre cross at ``(x, y)``."""
    import cv2

    _check(frame)
    centre = (int(round(x)), int(round(y)))
    cv2.circle(frame, centre, radius, color, thickness, lineType=cv2.LINE_AA)
    cv2.drawMarker(frame, centre, color, cv2.MARKER_CROSS, radius, 1, line_type=cv2.LINE_AA)
    return frame


def draw_box(frame: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color = BOX_COLOR,
             thickness: int = 1) -> np.ndarray:
    """An axis-aligned rectangle from ``(x0, y0)`` to ``(x1, y1)``."""
    import cv2

    _check(frame)
    cv2.rectangle(frame, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), color, thickness,
                  lineType=cv2.LINE_AA)
    return frame


def draw_vband(frame: np.ndarray, x0: float, x1: float, color: Color, alpha: float = 0.25,
               y0: int = 0, y1: int | None = None) -> np.ndarray:
    """A translucent vertical band covering columns ``[x0, x1]`` (clipped to the frame), rows ``[y0, y1)``."""
    _check(frame)
    width = frame.shape[1]
    lo, hi = max(0, int(round(x0))), min(width - 1, int(round(x1)))
    if hi < lo:
        return frame
    region = frame[y0:y1, lo : hi + 1].astype(np.float32)
    region = (1 - alpha) * region + alpha * np.asarray(color, np.float32)
    frame[y0:y1, lo : hi + 1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return frame


def draw_text(frame: np.ndarray, text: str, x: float, y: float, color: Color = (255, 255, 255),
              scale: float = 0.35) -> np.ndarray:
    """Small text with a dark outline, its baseline starting at ``(x, y)``."""
    import cv2

    _check(frame)
    origin = (int(round(x)), int(round(y)))
    cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return frame
