"""Draw a clip's ground-truth labels over its video (what the app's dataset view shows)."""

from __future__ import annotations

import numpy as np

from savg_hub.media.overlay import INSTRUMENT_COLOR, SPEECH_COLOR, draw_marker, draw_text

CLASS_NAMES = ("speech", "instrument")
CLASS_COLORS = (SPEECH_COLOR, INSTRUMENT_COLOR)


def label_frame_for_video_frame(index: int, fps: float, label_rate: float = 10.0) -> int:
    """The 100-ms label frame containing the start of video frame ``index`` (4 fps: 0, 2, 5, 7, 10, ...)."""
    return int(np.floor(index * label_rate / fps + 1e-9))


def draw_labels(video: np.ndarray, labels: dict[str, list], fps: float = 4.0) -> np.ndarray:
    """Copy of ``video`` (``uint8 (T, H, W, 3)``) with each label drawn on the frames it belongs to.

    Args:
        video: the clip's frames.
        labels: a dataset row's ``labels`` (``frame``, ``class``, ``x``, ``y`` lists).
        fps: video frame rate (labels are at 10 fps).
    """
    out = video.copy()
    frames = np.asarray(labels.get("frame", []), dtype=int)
    for index in range(out.shape[0]):
        target = label_frame_for_video_frame(index, fps)
        for j in np.nonzero(frames == target)[0]:
            cls = int(labels["class"][j])
            color = CLASS_COLORS[cls] if 0 <= cls < len(CLASS_COLORS) else (255, 255, 255)
            x, y = float(labels["x"][j]), float(labels["y"][j])
            draw_marker(out[index], x, y, color)
            name = CLASS_NAMES[cls] if 0 <= cls < len(CLASS_NAMES) else str(cls)
            draw_text(out[index], name, x + 8, y - 8, color)
    return out
