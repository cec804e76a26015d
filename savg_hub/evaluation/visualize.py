"""Overlay videos of Spatial AV-Align, like the SAVGBench paper's figure.

Each video frame shows the person boxes found on it (white; the boxes of the neighbouring frames, which the
official rule also accepts, in grey), and every SELD detection that maps to it (10-fps rows -> 4-fps frames by the
official map) as a marker at its horizontal position with the ±40 px band the rule checks, green when the
detection is a hit and red when it is a miss. The top bar names the clip and its running hit count; the clip's
stereo audio is muxed in.

Example::

    evaluator.evaluate("generated/", on_clip=lambda clip, out: write_overlay_video(f"vis/{out.clip_id}.mp4", clip, out))
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from savg_hub.evaluation.spatial import OFFICIAL, SpatialAlignConfig, video_frame_for_seld_frame
from savg_hub.media.overlay import BOX_COLOR, HIT_COLOR, MISS_COLOR, draw_box, draw_marker, draw_text, draw_vband

NEIGHBOUR_BOX_COLOR = (140, 140, 140)
CLASS_NAMES = ("speech", "instrument")


def overlay_frames(
    video: np.ndarray,
    seld_rows: np.ndarray,
    detections: np.ndarray,
    hits: np.ndarray,
    *,
    config: SpatialAlignConfig = OFFICIAL,
    title: str = "",
    pad_top: int = 56,
    pad_bottom: int = 56,
) -> np.ndarray:
    """Draw the matcher's view of one clip on a copy of its frames.

    Args:
        video: uint8 RGB ``(T, H, W, 3)``.
        seld_rows: ``(R, 3)`` official SELD rows ``frame, class, x`` (10-fps frames, pixels).
        detections: ``(M, 6)`` official detection rows ``frame, category, x0, y0, x1, y1``.
        hits: bool ``(R,)``: which SELD rows are hits.
        config: the matching rule (band half-width, frame tolerance, frame map).
        title: text for the top bar (e.g. the clip id).
        pad_top, pad_bottom: rows of the letterbox bars (the band covers the picture between them).

    Returns:
        uint8 ``(T, H, W, 3)``, a new array.
    """
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 (T, H, W, 3); got {video.dtype} {video.shape}")
    seld_rows = np.asarray(seld_rows, dtype=np.float64).reshape(-1, 3)
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
    hits = np.asarray(hits, dtype=bool).reshape(-1)
    if len(hits) != len(seld_rows):
        raise ValueError(f"hits has {len(hits)} entries for {len(seld_rows)} SELD rows")
    frames = video.copy()
    height = frames.shape[1]
    picture = (pad_top, max(pad_top + 1, height - pad_bottom))
    mapped = (video_frame_for_seld_frame(np.trunc(seld_rows[:, 0]).astype(np.int64), config)
              if len(seld_rows) else np.zeros(0, np.int64))
    det_frames = np.trunc(detections[:, 0]).astype(np.int64)
    tolerance = config.tolerance_px
    running_hits = running_rows = 0
    for k, frame in enumerate(frames):
        for j in np.nonzero((np.abs(det_frames - k) <= config.frame_tolerance) & (det_frames != k))[0]:
            _, _, x0, y0, x1, y1 = detections[j]
            draw_box(frame, x0, y0, x1, y1, NEIGHBOUR_BOX_COLOR)
        for j in np.nonzero(det_frames == k)[0]:
            _, _, x0, y0, x1, y1 = detections[j]
            draw_box(frame, x0, y0, x1, y1, BOX_COLOR, thickness=2)
        rows = np.nonzero(mapped == k)[0]
        for j in rows:
            x = float(np.trunc(seld_rows[j, 2]))
            color = HIT_COLOR if hits[j] else MISS_COLOR
            draw_vband(frame, x - tolerance, x + tolerance, color, alpha=0.18, y0=picture[0], y1=picture[1])
        for j in rows:
            x = float(np.trunc(seld_rows[j, 2]))
            cls = int(seld_rows[j, 1])
            color = HIT_COLOR if hits[j] else MISS_COLOR
            y = (picture[0] + picture[1]) / 2 + (14 if cls == 1 else -14)
            draw_marker(frame, min(max(x, 0), frame.shape[1] - 1), y, color)
            text_x = x + 9 if x < frame.shape[1] - 20 else x - 18  # keep the class letter inside the frame
            draw_text(frame, "S" if cls == 0 else "I", max(text_x, 0), y + 4, color)
        running_hits += int(hits[rows].sum())
        running_rows += len(rows)
        label = f"{title}  " if title else ""
        draw_text(frame, f"{label}t={k / config.video_fps:.2f}s  hits {running_hits}/{running_rows}", 4, 14)
        draw_text(frame, "green: hit  red: miss  band: +-%d px" % tolerance, 4, height - 8, (200, 200, 200), 0.3)
    return frames


def write_overlay_video(path: str | os.PathLike, clip, outputs, *, config: SpatialAlignConfig = OFFICIAL) -> Path:
    """Write one clip's overlay as an mp4 (H.264 + AAC, the clip's stereo audio), atomically.

    Args:
        path: destination ``.mp4``.
        clip: the decoded :class:`~savg_hub.media.clip.Clip`.
        outputs: its :class:`~savg_hub.evaluation.spatial_eval.ClipOutputs`.
        config: the matching rule used.
    """
    from savg_hub.media.io import write_mp4

    frames = overlay_frames(clip.video, outputs.seld_rows, outputs.detections, outputs.hits, config=config,
                            title=str(outputs.clip_id))
    return write_mp4(path, frames, clip.fps, clip.audio, clip.sample_rate)


__all__ = ["overlay_frames", "write_overlay_video"]
