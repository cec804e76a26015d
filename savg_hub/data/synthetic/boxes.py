"""Ground-truth person boxes of synthetic scenes in SVGSA24 perspective frames.

The generator knows where every person is; the dataset stores only sound-source positions. This module renders
the scene's person-id mask (:attr:`~savg_hub.data.synthetic.video.EquirectRenderer.ids`, the same ray casting
that paints the people) and sends it through the same equirect -> perspective resampling as the SVGSA24 builder
(:class:`~savg_hub.geometry.PerspectiveRenderer`, bilinear), so a box covers exactly the pixels where a person is
drawn in a dataset frame, black bars included::

    from savg_hub.data.builder import BuilderConfig
    from savg_hub.data.synthetic import sample_scene
    from savg_hub.data.synthetic.boxes import PersonBoxRenderer

    scene = sample_scene(3)
    boxes = PersonBoxRenderer(scene).boxes(2.0, BuilderConfig().view(30.0))   # [PersonBox(...), ...]

People never occlude one another and furniture never occludes them (see :mod:`.scene`), so every person's
visible pixels form one silhouette and its box is the box of its mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from savg_hub.data.synthetic.scene import SceneSpec
from savg_hub.data.synthetic.video import EquirectRenderer
from savg_hub.geometry import PerspectiveRenderer, PerspectiveView

MASK_LEVEL = 0.5
"""A perspective pixel belongs to a person when the bilinear weight of the person's equirect pixels is at
least this (pixels blended with the room by more than half are left out)."""


@dataclass(frozen=True)
class PersonBox:
    """One visible person in a perspective frame.

    Attributes:
        index: the person's index in :attr:`SceneSpec.people`.
        cls: STARSS23 class of what the person does (0/1 speech, 9 instrument).
        x0: left edge in pixels of the padded frame (pixel ``i`` spans ``[i, i + 1)``).
        y0: top edge, pixels of the padded frame (``pad_top`` included).
        x1: right edge (exclusive: last column + 1).
        y1: bottom edge (exclusive: last row + 1).
        pixels: number of frame pixels in the person's mask.
        truncated: the mask touches the border of the picture (the person is cut by the frame).
    """

    index: int
    cls: int
    x0: float
    y0: float
    x1: float
    y1: float
    pixels: int
    truncated: bool

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` in padded-frame pixels."""
        return self.x0, self.y0, self.x1, self.y1


def boxes_from_id_mask(
    ids: np.ndarray, view: PerspectiveView, renderer: PerspectiveRenderer, classes: dict[int, int],
    *, min_pixels: int = 1, level: float = MASK_LEVEL,
) -> list[PersonBox]:
    """Boxes of the people in an equirect person-id image, seen through ``view``.

    Args:
        ids: int16 ``(H, W)`` equirect person index per pixel (-1 = room), as
            :attr:`EquirectRenderer.ids`.
        view: the perspective camera (its padding is added to the rows).
        renderer: the equirect -> perspective resampler of ``view`` for ``(H, W)`` input.
        classes: person index -> STARSS23 class.
        min_pixels: drop people with fewer mask pixels in the picture.
        level: bilinear-weight threshold of a mask pixel (:data:`MASK_LEVEL`).

    Returns:
        The visible people, by person index.
    """
    if ids.ndim != 2:
        raise ValueError(f"ids must be a 2-D id image; got shape {ids.shape}")
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level must be in (0, 1]; got {level}")
    out: list[PersonBox] = []
    threshold = int(math.ceil(level * 255))
    for index in np.unique(ids):
        if index < 0:
            continue
        mask = renderer(np.where(ids == index, np.uint8(255), np.uint8(0)).astype(np.uint8)) >= threshold
        count = int(mask.sum())
        if count < max(1, int(min_pixels)):
            continue
        rows = np.nonzero(mask.any(axis=1))[0]
        cols = np.nonzero(mask.any(axis=0))[0]
        truncated = bool(rows[0] == 0 or cols[0] == 0 or rows[-1] == view.height - 1 or cols[-1] == view.width - 1)
        out.append(
            PersonBox(
                index=int(index),
                cls=int(classes.get(int(index), -1)),
                x0=float(cols[0]),
                y0=float(rows[0] + view.pad_top),
                x1=float(cols[-1] + 1),
                y1=float(rows[-1] + 1 + view.pad_top),
                pixels=count,
                truncated=truncated,
            )
        )
    return out


class PersonBoxRenderer:
    """Person boxes (and, optionally, the id image) of one synthetic scene at any time and view.

    Args:
        scene: the scene.
        width: equirect width of the recording's video in pixels (``SyntheticConfig.video_width``).
        height: equirect height (``SyntheticConfig.video_height``).
    """

    def __init__(self, scene: SceneSpec, width: int = 960, height: int = 480) -> None:
        self.scene = scene
        self.equirect = EquirectRenderer(scene, int(width), int(height), track_ids=True)
        self._classes = {p.index: p.cls for p in scene.people}
        self._perspective: dict[PerspectiveView, PerspectiveRenderer] = {}

    def perspective(self, view: PerspectiveView) -> PerspectiveRenderer:
        """The (cached) equirect -> perspective resampler of ``view`` for this scene's frame size."""
        renderer = self._perspective.get(view)
        if renderer is None:
            renderer = PerspectiveRenderer(view, self.equirect.height, self.equirect.width)
            self._perspective[view] = renderer
        return renderer

    def render(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """The equirect frame and id image at ``time`` seconds: ``(uint8 (H, W, 3) RGB, int16 (H, W))``,
        copies."""
        if not (math.isfinite(time) and time >= 0.0):
            raise ValueError(f"time must be a finite number of seconds >= 0; got {time}")
        frame = self.equirect.render(float(time))
        return frame.copy(), self.equirect.ids.copy()

    def boxes(self, time: float, view: PerspectiveView, *, min_pixels: int = 1) -> list[PersonBox]:
        """Boxes of the people visible in ``view`` at ``time`` seconds (video time of the 360° recording)."""
        _, ids = self.render(time)
        return boxes_from_id_mask(ids, view, self.perspective(view), self._classes, min_pixels=min_pixels)


def person_boxes(
    scene: SceneSpec, view: PerspectiveView, time: float, *, width: int = 960, height: int = 480,
    min_pixels: int = 1,
) -> list[PersonBox]:
    """Boxes ``(x0, y0, x1, y1)`` in the padded frame of every person visible in ``view`` at ``time`` seconds.

    One-shot form of :class:`PersonBoxRenderer` (which reuses the room rendering across calls).

    Args:
        scene: the synthetic scene.
        view: the builder's perspective view (``BuilderConfig().view(yaw)``).
        time: video time in seconds.
        width: equirect width the recording was rendered at.
        height: equirect height.
        min_pixels: drop people with fewer visible pixels.
    """
    return PersonBoxRenderer(scene, width, height).boxes(time, view, min_pixels=min_pixels)


def clip_frame_time(start_seconds: float | Fraction, frame: int, video_rate: Fraction, fps: float = 4.0) -> float:
    """Video time (seconds) of frame ``frame`` of a clip starting at ``start_seconds``, as the builder picks it.

    The builder takes source frame ``floor((start + frame / fps) * video_rate + 1/2)``; the synthetic renderer drew
    source frame ``i`` at ``i / video_rate`` seconds.
    """
    if frame < 0:
        raise ValueError(f"frame must be >= 0; got {frame}")
    rate = Fraction(video_rate)
    index = math.floor((Fraction(start_seconds) + Fraction(frame) / Fraction(fps)) * rate + Fraction(1, 2))
    return float(index / rate)


__all__ = ["MASK_LEVEL", "PersonBox", "PersonBoxRenderer", "boxes_from_id_mask", "clip_frame_time", "person_boxes"]
