"""Equirectangular renderer of synthetic scenes: a ray-cast box room and ray-cast people, streamed to H.264.

The room (floor, walls, ceiling with procedural textures, doors/windows/pictures, furniture boxes) is ray-cast
once per recording into a background colour and depth image. Each frame restores the pixels the people covered
in the previous frame and ray-casts every person only inside the angular bounding patch of each of their body
primitives (ellipsoids, capsules and boxes: head, hair, torso, arms, legs, shoes, instrument), Lambert-shaded
and depth-tested against the room; patches wrap around the ±180° seam. A person who stands still is ray-cast
once and reused. Pixel centres follow :func:`savg_hub.geometry.equirect_pixel` (column 0 is azimuth +180°,
azimuth grows to the left, row 0 is the zenith).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from savg_hub.data.synthetic.scene import Person, Room, SceneSpec, anchor_local
from savg_hub.utils.files import atomic_path

_AMBIENT = 0.42


# ------------------------------------------------------------------------------------------------------------
# Primitives


@dataclass
class Primitive:
    """A ray-castable solid in camera-centred metres.

    Attributes:
        kind: ``"ellipsoid"`` (``centre``, ``matrix`` = world -> unit sphere), ``"capsule"`` (``p0``, ``p1``,
            ``radius``) or ``"box"`` (``centre``, ``matrix`` = world -> box axes, ``half`` sizes).
        colour: RGB in [0, 1], ``(3,)``.
        bound_centre: centre of a sphere holding the solid, ``(3,)``.
        bound_radius: radius of that sphere, metres.
    """

    kind: str
    colour: np.ndarray
    bound_centre: np.ndarray
    bound_radius: float
    centre: np.ndarray | None = None
    matrix: np.ndarray | None = None
    half: np.ndarray | None = None
    p0: np.ndarray | None = None
    p1: np.ndarray | None = None
    radius: float = 0.0

    def intersect(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit distance ``t (E,)`` (inf on a miss) and world normals ``(E, 3)`` (not normalised) of
        unit rays ``d (E, 3)`` from the origin."""
        if self.kind == "ellipsoid":
            return hit_ellipsoids(d, self.centre, self.matrix)
        if self.kind == "capsule":
            return hit_capsules(d, self.p0, self.p1 - self.p0, np.float32(self.radius))
        return hit_boxes(d, self.centre, self.matrix, self.half)


def _rgb(colour: tuple[int, int, int]) -> np.ndarray:
    return np.asarray(colour, dtype=np.float32) / 255.0


def ellipsoid(
    centre: np.ndarray, axes: np.ndarray, radii: np.ndarray, colour: tuple[int, int, int]
) -> Primitive:
    """Ellipsoid with orthonormal ``axes`` (columns, ``(3, 3)``) and ``radii`` ``(3,)`` metres."""
    radii = np.asarray(radii, dtype=np.float64)
    matrix = (axes / radii[None, :]).T
    return Primitive(
        "ellipsoid",
        _rgb(colour),
        np.asarray(centre, float),
        float(radii.max()),
        centre=np.asarray(centre, float),
        matrix=matrix,
    )


def capsule(p0: np.ndarray, p1: np.ndarray, radius: float, colour: tuple[int, int, int]) -> Primitive:
    """Capsule: the points within ``radius`` metres of the segment ``p0``-``p1``."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    return Primitive(
        "capsule",
        _rgb(colour),
        (p0 + p1) / 2,
        float(np.linalg.norm(p1 - p0) / 2 + radius),
        p0=p0,
        p1=p1,
        radius=float(radius),
    )


def box(centre: np.ndarray, axes: np.ndarray, half: np.ndarray, colour: tuple[int, int, int]) -> Primitive:
    """Oriented box with ``axes`` (columns) and ``half`` sizes metres."""
    half = np.asarray(half, dtype=np.float64)
    return Primitive(
        "box",
        _rgb(colour),
        np.asarray(centre, float),
        float(np.linalg.norm(half)),
        centre=np.asarray(centre, float),
        matrix=np.asarray(axes, float).T,
        half=half,
    )


def _apply(matrix: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` for ``(..., 3, 3)`` matrices and ``(..., 3)`` vectors (broadcast)."""
    return np.einsum("...ij,...j->...i", matrix, vectors)


def hit_ellipsoids(d: np.ndarray, centre: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray/ellipsoid intersection for rays ``d (E, 3)`` from the origin.

    Args:
        d: unit directions ``(E, 3)``.
        centre: ``(E, 3)`` or ``(3,)`` ellipsoid centres.
        matrix: ``(E, 3, 3)`` or ``(3, 3)``, world -> unit-sphere coordinates (without the translation).

    Returns:
        ``t (E,)`` float32 distance (inf on a miss) and normals ``(E, 3)``.
    """
    o = -_apply(matrix, centre)
    dl = _apply(matrix, d)
    a = np.sum(dl * dl, axis=-1)
    b = np.sum(o * dl, axis=-1)
    c = np.sum(o * o, axis=-1) - 1.0
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / a
    t = np.where((disc > 0) & (t > 0), t, np.inf).astype(np.float32)
    with np.errstate(invalid="ignore"):
        local = o + np.where(np.isfinite(t), t, 0.0)[:, None] * dl
    return t, np.einsum("...ji,...j->...i", matrix, local)


def hit_capsules(
    d: np.ndarray, p0: np.ndarray, axis: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ray/capsule intersection for rays ``d (E, 3)`` from the origin; capsules are the points within
    ``radius (E,)`` of the segments ``p0 (E, 3)`` to ``p0 + axis``. Returns ``t (E,)`` (inf on a miss) and
    normals ``(E, 3)``."""
    oa = -p0
    baba = np.sum(axis * axis, axis=-1)
    bard = np.sum(axis * d, axis=-1)
    baoa = np.sum(axis * oa, axis=-1)
    rdoa = np.sum(d * oa, axis=-1)
    oaoa = np.sum(oa * oa, axis=-1)
    a = baba - bard * bard
    b = baba * rdoa - baoa * bard
    c = baba * oaoa - baoa * baoa - radius * radius * baba
    h = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t_body = (-b - np.sqrt(h)) / a
        y = baoa + t_body * bard
    body = (h > 0) & (y > 0) & (y < baba) & (t_body > 0)
    # else the end sphere beyond which the infinite cylinder was hit (a sphere lies inside the cylinder)
    end = np.where((y >= baba)[..., None], p0 + axis, p0)
    bb = -np.sum(end * d, axis=-1)
    hh = bb * bb - (np.sum(end * end, axis=-1) - radius * radius)
    with np.errstate(invalid="ignore"):
        t_cap = -bb - np.sqrt(hh)
    cap = ~body & (h > 0) & (hh > 0) & (t_cap > 0)
    t = np.where(body, t_body, np.where(cap, t_cap, np.inf)).astype(np.float32)
    with np.errstate(invalid="ignore"):
        point = np.where(np.isfinite(t), t, 0.0)[:, None] * d
        k = np.clip(np.sum((point - p0) * axis, axis=-1) / baba, 0.0, 1.0)
    return t, point - (p0 + k[..., None] * axis)


def hit_boxes(
    d: np.ndarray, centre: np.ndarray, matrix: np.ndarray, half: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ray/oriented-box intersection (slab test) for rays ``d (E, 3)`` from the origin; ``matrix`` maps world
    to box axes (``(E, 3, 3)`` or ``(3, 3)``), ``half`` sizes ``(E, 3)`` or ``(3,)``. Returns ``t (E,)`` (inf
    on a miss) and unit normals ``(E, 3)``."""
    o = -_apply(matrix, centre)
    dl = _apply(matrix, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dl
        t1 = (-half - o) * inv
        t2 = (half - o) * inv
    lo, hi = np.fmin(t1, t2), np.fmax(t1, t2)
    axis = np.argmax(np.nan_to_num(lo, nan=-np.inf), axis=-1)
    t_near = np.take_along_axis(lo, axis[:, None], axis=-1)[:, 0]
    t_far = np.min(hi, axis=-1)
    t = np.where((t_far >= t_near) & (t_near > 0), t_near, np.inf).astype(np.float32)
    sign = -np.sign(np.take_along_axis(dl, axis[:, None], axis=-1))
    rows = np.broadcast_to(matrix, (len(d), 3, 3)) if np.ndim(matrix) == 2 else matrix
    normal = np.take_along_axis(rows, axis[:, None, None].repeat(3, axis=2), axis=1)[:, 0, :] * sign
    return t, normal


# ------------------------------------------------------------------------------------------------------------
# People


def _frame_from(u: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Orthonormal axes (columns) whose first axis is ``u`` and second is closest to ``hint``."""
    u = u / np.linalg.norm(u)
    v = hint - (hint @ u) * u
    v = v / np.linalg.norm(v)
    return np.stack([u, v, np.cross(u, v)], axis=1)


def person_primitives(person: Person, t: float, floor_z: float) -> list[Primitive]:
    """The body of a person at time ``t`` as world-space primitives (camera-centred metres).

    Built in the body frame of :meth:`~savg_hub.data.synthetic.scene.Person.frame` around the anchors of
    :func:`~savg_hub.data.synthetic.scene.anchor_local`, so the mouth anchor lies on the face and the
    instrument anchor inside the instrument.
    """
    origin, basis = person.frame(t)
    origin = origin + np.array([0.0, 0.0, floor_z])
    s, h, b = person.scale, person.height, person.build
    eye = np.eye(3)

    def w(p) -> np.ndarray:
        return origin + basis @ np.asarray(p, float)

    def ell(c, radii, colour, axes=eye):
        return ellipsoid(w(c), basis @ axes, np.asarray(radii) * s, colour)

    def cap(a, c, r, colour):
        return capsule(w(a), w(c), r * s, colour)

    prims: list[Primitive] = []
    phase, speed = person.gait(t)
    swing = min(0.5, 0.9 * speed) * math.sin(phase)
    # legs
    hip_z = 0.92 * s
    thigh, shin = 0.44 * s, hip_z - 0.44 * s - 0.08
    for side, sgn in ((1, 1.0), (-1, -1.0)):
        angle = sgn * swing
        bend = max(0.0, math.sin(phase + (0 if sgn > 0 else math.pi))) * min(0.6, 1.2 * speed)
        hip = np.array([0.0, side * 0.09 * s * b, hip_z])
        knee = hip + thigh * np.array([math.sin(angle), 0.0, -math.cos(angle)])
        ankle = knee + shin * np.array([math.sin(angle - bend), 0.0, -math.cos(angle - bend)])
        prims.append(cap(hip, knee, 0.075, person.trousers))
        prims.append(cap(knee, ankle, 0.058, person.trousers))
        prims.append(ell(ankle + np.array([0.06 * s, 0.0, -0.035]), (0.13, 0.05, 0.045), person.shoes))
    # trunk, neck, head, hair
    prims.append(ell((0.0, 0.0, 0.95 * s), (0.11, 0.17 * b, 0.12), person.trousers))
    prims.append(ell((0.0, 0.0, 1.2 * s), (0.12, 0.19 * b, 0.3), person.shirt))
    prims.append(cap((0.0, -0.15 * s * b, 1.41 * s), (0.0, 0.15 * s * b, 1.41 * s), 0.065, person.shirt))
    head = np.array([0.0, 0.0, h - 0.115 * s])
    prims.append(cap((0.0, 0.0, 1.42 * s), head - np.array([0.0, 0.0, 0.06 * s]), 0.05, person.skin))
    prims.append(ell(head, (0.095, 0.08, 0.115), person.skin))
    prims.append(ell(head + np.array([-0.02 * s, 0.0, 0.025 * s]), (0.098, 0.087, 0.105), person.hair))
    if person.long_hair:
        prims.append(ell(head + np.array([-0.055 * s, 0.0, -0.1 * s]), (0.06, 0.1, 0.17), person.hair))
    for sgn in (1.0, -1.0):
        prims.append(
            ell(head + np.array([0.086 * s, sgn * 0.032 * s, 0.018 * s]), (0.012, 0.014, 0.009), (30, 25, 25))
        )
    prims.append(ell(head + np.array([0.088 * s, 0.0, -0.052 * s]), (0.01, 0.025, 0.008), (150, 60, 60)))
    # arms (shoulder, elbow, wrist in the body frame) and the instrument
    sleeve = person.skin if person.short_sleeves else person.shirt
    arms: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    inst = person.instrument
    if inst is None:
        for sgn in (1.0, -1.0):
            a = -sgn * swing * 0.8
            shoulder = np.array([0.0, sgn * 0.2 * s * b, 1.41 * s])
            elbow = shoulder + 0.29 * s * np.array([math.sin(a), sgn * 0.12, -math.cos(a)])
            wrist = elbow + 0.26 * s * np.array([math.sin(a) + 0.15, sgn * 0.03, -math.cos(a)])
            arms.append((shoulder, elbow, wrist))
    else:
        anchor = anchor_local(person, "instrument")
        colour = person.instrument_colour
        if inst == "guitar":
            u = np.array([0.0, 1.0, 0.5])
            u /= np.linalg.norm(u)
            front = np.array([1.0, 0.0, 0.0])
            axes = np.stack([front, u, np.cross(front, u)], axis=1)  # (top normal, along the neck, across)
            prims.append(ell(anchor, (0.055, 0.2, 0.18), colour, axes))
            prims.append(ell(anchor + 0.2 * s * u, (0.05, 0.14, 0.13), colour, axes))
            prims.append(
                ell(
                    anchor + 0.07 * s * u + np.array([0.045 * s, 0, 0]),
                    (0.01, 0.045, 0.045),
                    (20, 15, 10),
                    axes,
                )
            )
            prims.append(
                cap(
                    anchor + 0.3 * s * u + np.array([0.02 * s, 0, 0]),
                    anchor + 0.72 * s * u + np.array([0.02 * s, 0, 0]),
                    0.025,
                    (60, 40, 25),
                )
            )
            arms.append(
                (
                    np.array([0.0, -0.2 * s * b, 1.41 * s]),
                    np.array([0.05 * s, -0.27 * s, 1.15 * s]),
                    anchor + np.array([0.08 * s, -0.02 * s, 0.02 * s]),
                )
            )
            arms.append(
                (
                    np.array([0.0, 0.2 * s * b, 1.41 * s]),
                    np.array([0.12 * s, 0.3 * s, 1.12 * s]),
                    anchor + 0.62 * s * u + np.array([0.05 * s, 0, 0]),
                )
            )
        elif inst == "violin":
            u = np.array([1.0, 0.45, -0.2])
            u /= np.linalg.norm(u)
            axes = _frame_from(u, np.array([0.0, 0.0, 1.0]))
            prims.append(ell(anchor, (0.18, 0.1, 0.04), colour, axes[:, [0, 2, 1]]))
            prims.append(cap(anchor + 0.16 * s * u, anchor + 0.42 * s * u, 0.016, (40, 25, 15)))
            arms.append(
                (
                    np.array([0.0, 0.2 * s * b, 1.41 * s]),
                    np.array([0.22 * s, 0.32 * s, 1.18 * s]),
                    anchor + 0.4 * s * u,
                )
            )
            wrist = np.array([0.32 * s, -0.12 * s, 1.25 * s])
            arms.append(
                (np.array([0.0, -0.2 * s * b, 1.41 * s]), np.array([0.12 * s, -0.32 * s, 1.12 * s]), wrist)
            )
            prims.append(
                cap(
                    wrist + np.array([0.0, -0.1 * s, 0.0]),
                    wrist + np.array([-0.05 * s, 0.55 * s, 0.12 * s]),
                    0.007,
                    (200, 180, 140),
                )
            )
        elif inst == "keyboard":
            prims.append(box(w(anchor), basis, np.array([0.13, 0.34, 0.045]) * s, colour))
            prims.append(
                box(
                    w(anchor + np.array([0.02 * s, 0.0, 0.047 * s])),
                    basis,
                    np.array([0.09, 0.33, 0.006]) * s,
                    (235, 235, 230),
                )
            )
            for sgn in (1.0, -1.0):
                foot = np.array([anchor[0], sgn * 0.28 * s, 0.0])
                prims.append(
                    cap(
                        foot + np.array([0.1 * s, 0, 0]),
                        anchor + np.array([-0.05 * s, sgn * 0.28 * s, -0.05 * s]),
                        0.015,
                        (40, 40, 40),
                    )
                )
                prims.append(
                    cap(
                        foot - np.array([0.1 * s, 0, 0]),
                        anchor + np.array([0.05 * s, sgn * 0.28 * s, -0.05 * s]),
                        0.015,
                        (40, 40, 40),
                    )
                )
                arms.append(
                    (
                        np.array([0.0, sgn * 0.2 * s * b, 1.41 * s]),
                        np.array([0.12 * s, sgn * 0.26 * s, 1.13 * s]),
                        anchor + np.array([0.0, sgn * 0.14 * s, 0.08 * s]),
                    )
                )
        else:  # accordion
            prims.append(box(w(anchor), basis, np.array([0.1, 0.2, 0.19]) * s, colour))
            for k in range(3):
                prims.append(
                    box(
                        w(anchor + np.array([0.101 * s, 0.0, (-0.1 + 0.1 * k) * s])),
                        basis,
                        np.array([0.003, 0.2, 0.012]) * s,
                        (20, 20, 20),
                    )
                )
            prims.append(
                box(
                    w(anchor + np.array([0.0, 0.215 * s, 0.0])),
                    basis,
                    np.array([0.09, 0.015, 0.18]) * s,
                    (235, 235, 225),
                )
            )
            for sgn in (1.0, -1.0):
                arms.append(
                    (
                        np.array([0.0, sgn * 0.2 * s * b, 1.41 * s]),
                        np.array([0.08 * s, sgn * 0.31 * s, 1.13 * s]),
                        anchor + np.array([0.02 * s, sgn * 0.24 * s, 0.02 * s]),
                    )
                )
    for shoulder, elbow, wrist in arms:
        prims.append(cap(shoulder, elbow, 0.047, person.shirt))
        prims.append(cap(elbow, wrist, 0.039, sleeve))
        hand_dir = wrist - elbow
        prims.append(
            ell(wrist + 0.05 * s * hand_dir / np.linalg.norm(hand_dir), (0.045, 0.045, 0.045), person.skin)
        )
    return prims


# ------------------------------------------------------------------------------------------------------------
# The room


def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Smooth noise in [-1, 1] of ``shape`` with features about ``cell`` pixels wide."""
    import cv2

    small = rng.uniform(-1, 1, (max(2, int(shape[0] / cell) + 2), max(2, int(shape[1] / cell) + 2))).astype(
        np.float32
    )
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _floor_texture(room: Room, ppm: float, rng: np.random.Generator) -> np.ndarray:
    lx, ly, _ = room.size
    rows, cols = int(ly * ppm) + 2, int(lx * ppm) + 2
    base = np.asarray(room.floor_colour, np.float32) / 255
    tex = np.ones((rows, cols, 3), np.float32) * base
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32) / ppm
    if room.floor_style == "planks":
        width = rng.uniform(0.14, 0.22)
        plank = np.floor(yy / width)
        offset = (plank * 0.37 % 1.0) * 2.0
        tint = 1.0 + 0.12 * np.sin(plank * 12.9898 + np.floor((xx + offset) / 1.8) * 78.233)
        grain = (
            1.0
            + 0.05
            * _value_noise(rng, (rows, cols // 8 + 2), 3)[:, np.minimum(np.arange(cols) // 8, cols // 8 + 1)]
        )
        seams = ((yy % width) < 0.008) | (((xx + offset) % 1.8) < 0.006)
        tex *= (tint * grain * np.where(seams, 0.55, 1.0))[..., None]
    elif room.floor_style == "tiles":
        size = rng.uniform(0.3, 0.6)
        tint = 1.0 + 0.06 * np.sin(np.floor(xx / size) * 12.9898 + np.floor(yy / size) * 78.233)
        grout = ((xx % size) < 0.01) | ((yy % size) < 0.01)
        tex *= (tint * np.where(grout, 0.7, 1.0))[..., None]
    else:
        tex *= (
            1.0 + 0.06 * _value_noise(rng, (rows, cols), 0.5 * ppm) + 0.05 * rng.uniform(-1, 1, (rows, cols))
        )[..., None]
    return tex


def _wall_texture(room: Room, wall: int, ppm: float, rng: np.random.Generator) -> np.ndarray:
    """Texture of one wall: rows = height from the ceiling (row 0) down to the floor, cols = along it."""
    import cv2

    lx, ly, lz = room.size
    length = ly if wall in (0, 1) else lx
    u_origin = room.y_min if wall in (0, 1) else room.x_min
    rows, cols = int(lz * ppm) + 2, int(length * ppm) + 2
    base = np.asarray(room.wall_colour, np.float32) / 255
    tex = np.ones((rows, cols, 3), np.float32) * base
    tex *= (1.0 + 0.025 * _value_noise(rng, (rows, cols), 0.4 * ppm))[..., None]
    skirting = int(0.1 * ppm)
    tex[rows - skirting :] *= 0.75

    def rect(u0: float, u1: float, z0: float, z1: float) -> tuple[int, int, int, int]:
        c0, c1 = int((u0 - u_origin) * ppm), int((u1 - u_origin) * ppm)
        r0, r1 = int((lz - z1) * ppm), int((lz - z0) * ppm)
        return max(r0, 0), min(r1, rows), max(c0, 0), min(c1, cols)

    for f in room.features:
        if f.wall != wall:
            continue
        r0, r1, c0, c1 = rect(f.u0, f.u1, f.z0, f.z1)
        colour = np.asarray(f.colour, np.float32) / 255
        frame = max(1, int(0.05 * ppm))
        if f.kind == "door":
            tex[r0:r1, c0:c1] = colour * 0.8
            tex[r0 + frame : r1, c0 + frame : c1 - frame] = colour
            for k in range(2):
                pr0 = r0 + frame + int((0.15 + 0.45 * k) * (r1 - r0) * 0.9)
                cv2.rectangle(
                    tex,
                    (c0 + 3 * frame, pr0),
                    (c1 - 3 * frame, pr0 + int(0.35 * (r1 - r0))),
                    tuple(float(v) for v in colour * 0.85),
                    max(1, frame // 2),
                )
            knob_r, knob_c = r0 + int(0.52 * (r1 - r0)), c1 - 3 * frame
            cv2.circle(tex, (knob_c, knob_r), max(1, frame), (0.8, 0.75, 0.4), -1)
        elif f.kind == "window":
            grad = np.linspace(0.95, 0.75, max(r1 - r0, 1), dtype=np.float32)[:, None, None]
            tex[r0:r1, c0:c1] = np.array([0.62, 0.78, 0.95], np.float32) * grad + 0.05
            tex[r0:r1, c0 : c0 + frame] = tex[r0:r1, c1 - frame : c1] = 0.93
            tex[r0 : r0 + frame, c0:c1] = tex[r1 - frame : r1, c0:c1] = 0.93
            mid_c, mid_r = (c0 + c1) // 2, (r0 + r1) // 2
            tex[r0:r1, mid_c - frame // 2 : mid_c + frame // 2 + 1] = 0.93
            tex[mid_r - frame // 2 : mid_r + frame // 2 + 1, c0:c1] = 0.93
        else:
            tex[r0:r1, c0:c1] = 0.25 if f.kind == "picture" else 0.55
            inner = tex[r0 + frame : r1 - frame, c0 + frame : c1 - frame]
            inner[:] = colour
            if f.kind == "picture" and inner.size:
                blob = _value_noise(rng, inner.shape[:2], max(3.0, inner.shape[0] / 3))
                other = rng.uniform(0.1, 0.9, 3).astype(np.float32)
                inner[:] = np.where((blob > 0.1)[..., None], other, colour)
    return tex


def _ceiling_texture(room: Room, ppm: float, rng: np.random.Generator) -> np.ndarray:
    lx, ly, _ = room.size
    rows, cols = int(ly * ppm) + 2, int(lx * ppm) + 2
    tex = np.full((rows, cols, 3), 0.9, np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32) / ppm
    panel = rng.uniform(0.6, 1.2)
    grid = ((xx % panel) < 0.015) | ((yy % panel) < 0.015)
    tex[grid] = 0.72
    lamps = (
        (np.floor(xx / panel) % 3 == 1)
        & (np.floor(yy / panel) % 2 == 1)
        & ((xx % panel) > 0.1 * panel)
        & ((xx % panel) < 0.9 * panel)
        & ((yy % panel) > 0.3 * panel)
        & ((yy % panel) < 0.7 * panel)
    )
    tex[lamps] = 2.4  # emissive: stays bright after shading
    return tex


def _sample_texture(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``tex (rows, cols, 3)`` at column ``u`` and row ``v`` pixel coordinates ``(K,)``."""
    import cv2

    k = len(u)
    if k == 0:
        return np.zeros((0, 3), np.float32)
    width = 1024
    rows = (k + width - 1) // width
    pad = rows * width - k
    map_x = np.pad(u.astype(np.float32), (0, pad)).reshape(rows, width)
    map_y = np.pad(v.astype(np.float32), (0, pad)).reshape(rows, width)
    out = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:k]


def _light_position(room: Room) -> np.ndarray:
    return np.array([0.3 * (room.x_min + room.x_max), 0.3 * (room.y_min + room.y_max), room.ceiling_z - 0.3])


def _lambert(px, py, pz, nx, ny, nz, light: np.ndarray) -> np.ndarray:
    lx, ly, lz = light[0] - px, light[1] - py, light[2] - pz
    dist2 = lx * lx + ly * ly + lz * lz
    norm = np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-9
    cos = (nx * lx + ny * ly + nz * lz) / (norm * np.sqrt(dist2) + 1e-9)
    return _AMBIENT + (1 - _AMBIENT) * np.clip(cos, 0.0, 1.0) * np.minimum(1.0, 9.0 / (dist2 + 3.0))


# ------------------------------------------------------------------------------------------------------------
# Renderer


class EquirectRenderer:
    """Renders a scene's equirectangular frames.

    Args:
        scene: the scene.
        width: frame width in pixels (``2 * height``).
        height: frame height in pixels.
        track_ids: also maintain :attr:`ids`, the person index (-1 = room) of each pixel of the last frame.
    """

    def __init__(self, scene: SceneSpec, width: int, height: int, *, track_ids: bool = False) -> None:
        if width != 2 * height or height < 2:
            raise ValueError(f"equirect frames must be 2:1; got {width}x{height}")
        self.scene = scene
        self.width, self.height = int(width), int(height)
        self.track_ids = track_ids
        rows = np.arange(self.height, dtype=np.float64)
        el = np.deg2rad(-(((rows + 0.5) / self.height) - 0.5) * 180.0)
        self._cos_el = np.cos(el).astype(np.float32)
        self._sin_el = np.sin(el).astype(np.float32)
        self.background, self.background_depth = self._render_room()
        self.background_ids = np.full((self.height, self.width), -1, np.int16)
        """Person index per background pixel (-1 = room): where the people who stand still are."""
        for person in scene.people:
            if not person.walking:
                self._composite(
                    person, 0.0, self.background, self.background_depth, self.background_ids, None
                )
        self.frame = self.background.copy()
        self.depth = self.background_depth.copy()
        self.ids = self.background_ids.copy() if track_ids else None
        self._dirty: list[tuple[int, int, slice]] = []

    # -- geometry helpers ------------------------------------------------------------------------------------
    def _col(self, az_deg: np.ndarray | float) -> np.ndarray | float:
        return (-np.asarray(az_deg) / 360.0 + 0.5) * self.width - 0.5

    def _row(self, el_deg: np.ndarray | float) -> np.ndarray | float:
        return (-np.asarray(el_deg) / 180.0 + 0.5) * self.height - 0.5

    def _col_dirs(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        az = -((cols + 0.5) / self.width - 0.5) * 2.0 * np.pi
        return np.cos(az).astype(np.float32), np.sin(az).astype(np.float32)

    def _sphere_box(self, c: np.ndarray, radius: float, ref_az: float) -> tuple[int, int, int, int] | None:
        dist = float(np.linalg.norm(c))
        horizontal = math.hypot(c[0], c[1])
        if dist <= radius * 1.001 or horizontal <= radius * 1.001:
            return None  # the camera is inside the bound (never for scenes drawn by sample_scene)
        el = math.degrees(math.asin(c[2] / dist))
        alpha = math.degrees(math.asin(radius / dist))
        half = math.degrees(math.asin(radius / horizontal))
        az = ref_az + ((math.degrees(math.atan2(c[1], c[0])) - ref_az + 180.0) % 360.0 - 180.0)
        r0 = max(0, int(math.floor(self._row(min(90.0, el + alpha)))))
        r1 = min(self.height, int(math.ceil(self._row(max(-90.0, el - alpha)))) + 1)
        c0 = int(math.floor(self._col(az + half)))
        c1 = int(math.ceil(self._col(az - half))) + 1
        if r1 <= r0 or c1 <= c0:
            return None
        return r0, r1, c0, c1

    def _pixel_box(self, prim: Primitive, ref_az: float) -> tuple[int, int, int, int] | None:
        """Rows ``[r0, r1)`` and unwrapped columns ``[c0, c1)`` (near ``ref_az``) that can see ``prim``."""
        if prim.kind != "capsule":
            return self._sphere_box(prim.bound_centre, prim.bound_radius, ref_az)
        # a capsule lies within the union of its end spheres' boxes (plus a pixel for the segment's bulge)
        a = self._sphere_box(prim.p0, prim.radius, ref_az)
        b = self._sphere_box(prim.p1, prim.radius, ref_az)
        if a is None or b is None:
            return self._sphere_box(prim.bound_centre, prim.bound_radius, ref_az)
        return (
            max(0, min(a[0], b[0]) - 1),
            min(self.height, max(a[1], b[1]) + 1),
            min(a[2], b[2]) - 1,
            max(a[3], b[3]) + 1,
        )

    # -- room ------------------------------------------------------------------------------------------------
    def _render_room(self) -> tuple[np.ndarray, np.ndarray]:
        room = self.scene.room
        rng = np.random.default_rng(room.texture_seed)
        w, h = self.width, self.height
        ppm = float(np.clip(w / 12.0, 48.0, 180.0))
        cos_az, sin_az = self._col_dirs(np.arange(w))
        dx = self._cos_el[:, None] * cos_az[None, :]
        dy = self._cos_el[:, None] * sin_az[None, :]
        dz = np.broadcast_to(self._sin_el[:, None], (h, w))
        with np.errstate(divide="ignore"):
            tx = np.where(dx > 0, room.x_max / dx, room.x_min / dx)
            ty = np.where(dy > 0, room.y_max / dy, room.y_min / dy)
            tz = np.where(dz > 0, room.ceiling_z / dz, room.floor_z / dz)
        tx, ty, tz = (np.where(np.isfinite(a) & (a > 0), a, np.inf) for a in (tx, ty, tz))
        t = np.minimum(np.minimum(tx, ty), tz).astype(np.float32)
        px, py, pz = t * dx, t * dy, t * dz
        # surface ids: 0 front (x_max), 1 back, 2 left (y_max), 3 right, 4 floor, 5 ceiling
        surface = np.where(
            t == tz, np.where(dz > 0, 5, 4), np.where(t == tx, np.where(dx > 0, 0, 1), np.where(dy > 0, 2, 3))
        ).astype(np.int8)
        colour = np.zeros((h, w, 3), np.float32)
        normals = {0: (-1, 0, 0), 1: (1, 0, 0), 2: (0, -1, 0), 3: (0, 1, 0), 4: (0, 0, 1), 5: (0, 0, -1)}
        light = _light_position(room)
        lz = room.ceiling_z - room.floor_z
        for sid in range(6):
            sel = surface == sid
            if not sel.any():
                continue
            sx, sy, sz = px[sel], py[sel], pz[sel]
            if sid == 4:
                tex = _floor_texture(room, ppm, rng)
                values = _sample_texture(tex, (sx - room.x_min) * ppm, (sy - room.y_min) * ppm)
            elif sid == 5:
                tex = _ceiling_texture(room, ppm, rng)
                values = _sample_texture(tex, (sx - room.x_min) * ppm, (sy - room.y_min) * ppm)
            else:
                tex = _wall_texture(room, sid, ppm, rng)
                u = (sy - room.y_min) if sid in (0, 1) else (sx - room.x_min)
                values = _sample_texture(tex, u * ppm, (lz - (sz - room.floor_z)) * ppm)
            n = normals[sid]
            shade = _lambert(sx, sy, sz, np.float32(n[0]), np.float32(n[1]), np.float32(n[2]), light)
            colour[sel] = values * shade[:, None]
        # furniture
        grain = 1.0 + 0.04 * _value_noise(rng, (h, w), max(2.0, w / 400))
        for item in room.furniture:
            prim = box(np.array(item.centre), np.eye(3), np.array(item.half), item.colour)
            bbox = self._pixel_box(prim, 0.0)
            if bbox is None:
                continue
            r0, r1, c0, c1 = bbox
            cols = np.arange(c0, c1)
            ca, sa = self._col_dirs(cols)
            bx = self._cos_el[r0:r1, None] * ca[None, :]
            by = self._cos_el[r0:r1, None] * sa[None, :]
            bz = np.broadcast_to(self._sin_el[r0:r1, None], bx.shape)
            flat_t, flat_n = prim.intersect(np.stack([bx.ravel(), by.ravel(), bz.ravel()], axis=-1))
            tt = flat_t.reshape(bx.shape)
            nx, ny, nz = (flat_n[:, k].reshape(bx.shape) for k in range(3))
            wrapped = cols % w
            current = t[r0:r1][:, wrapped]
            hit = tt < current
            if not hit.any():
                continue
            th = tt[hit]
            shade = _lambert(th * bx[hit], th * by[hit], th * bz[hit], nx[hit], ny[hit], nz[hit], light)
            patch = colour[r0:r1][:, wrapped]
            patch[hit] = prim.colour[None, :] * shade[:, None] * grain[r0:r1][:, wrapped][hit][:, None]
            colour[r0:r1, wrapped] = patch
            current[hit] = tt[hit]
            t[r0:r1, wrapped] = current
        rgb = np.clip(colour * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return rgb, t

    # -- people ----------------------------------------------------------------------------------------------
    def _column_slices(self, c0: int, c1: int) -> list[tuple[slice, slice]]:
        """Patch and frame column slices covering unwrapped columns ``[c0, c1)``, split at the seam."""
        out = []
        c = c0
        while c < c1:
            wrapped = c % self.width
            n = min(c1 - c, self.width - wrapped)
            out.append((slice(c - c0, c - c0 + n), slice(wrapped, wrapped + n)))
            c += n
        return out

    def person_patch(
        self, person: Person, t: float
    ) -> tuple[int, int, int, int, np.ndarray, np.ndarray] | None:
        """Ray-cast one person at time ``t`` inside its angular bounding patch.

        Returns:
            ``(r0, r1, c0, c1, depth, rgb)``: rows ``[r0, r1)`` and unwrapped columns ``[c0, c1)`` (take them
            modulo the width), ``float32 (r1 - r0, c1 - c0)`` ray distance in metres (inf where the person is
            not hit) and ``uint8 (..., 3)`` colours; ``None`` when the person covers no pixel.
        """
        prims = person_primitives(person, t, self.scene.room.floor_z)
        ref_az = float(person.polar(t)[0])
        boxes = [self._pixel_box(p, ref_az) for p in prims]
        valid = [b for b in boxes if b is not None]
        if not valid:
            return None
        r0 = min(b[0] for b in valid)
        r1 = max(b[1] for b in valid)
        c0 = min(b[2] for b in valid)
        c1 = min(max(b[3] for b in valid), c0 + self.width)
        height, width = r1 - r0, c1 - c0
        # gather the pixels of every primitive's box into one flat list, then intersect kind by kind
        flat, owner = [], []
        for k, bb in enumerate(boxes):
            if bb is None:
                continue
            rows = np.arange(bb[0] - r0, bb[1] - r0)
            cols = np.arange(bb[2] - c0, min(bb[3], c1) - c0)
            flat.append((rows[:, None] * width + cols[None, :]).ravel())
            owner.append(np.full(flat[-1].size, k, np.int32))
        idx = np.concatenate(flat)
        pid = np.concatenate(owner)
        rows, cols = idx // width + r0, idx % width
        ca_all, sa_all = self._col_dirs(np.arange(c0, c1))
        ce = self._cos_el[rows]
        d = np.stack([ce * ca_all[cols], ce * sa_all[cols], self._sin_el[rows]], axis=-1)
        dist = np.full(len(idx), np.inf, np.float32)
        normal = np.zeros((len(idx), 3), np.float32)
        kinds = np.array([p.kind for p in prims])
        for kind in ("ellipsoid", "capsule", "box"):
            members = [k for k, p in enumerate(prims) if p.kind == kind]
            if not members:
                continue
            sel = np.nonzero(kinds[pid] == kind)[0]
            if not len(sel):
                continue
            lookup = np.zeros(len(prims), np.int32)
            lookup[members] = np.arange(len(members))
            which = lookup[pid[sel]]
            if kind == "ellipsoid":
                centres = np.stack([prims[k].centre for k in members]).astype(np.float32)
                mats = np.stack([prims[k].matrix for k in members]).astype(np.float32)
                dist[sel], normal[sel] = hit_ellipsoids(d[sel], centres[which], mats[which])
            elif kind == "capsule":
                p0 = np.stack([prims[k].p0 for k in members]).astype(np.float32)
                axis = np.stack([prims[k].p1 - prims[k].p0 for k in members]).astype(np.float32)
                radius = np.array([prims[k].radius for k in members], np.float32)
                dist[sel], normal[sel] = hit_capsules(d[sel], p0[which], axis[which], radius[which])
            else:
                centres = np.stack([prims[k].centre for k in members]).astype(np.float32)
                mats = np.stack([prims[k].matrix for k in members]).astype(np.float32)
                halves = np.stack([prims[k].half for k in members]).astype(np.float32)
                dist[sel], normal[sel] = hit_boxes(d[sel], centres[which], mats[which], halves[which])
        depth = np.full(height * width, np.inf, np.float32)
        np.minimum.at(depth, idx, dist)
        win = np.nonzero(np.isfinite(dist) & (dist == depth[idx]))[0]
        point = dist[win, None] * d[win]
        n = normal[win]
        shade = _lambert(
            point[:, 0], point[:, 1], point[:, 2], n[:, 0], n[:, 1], n[:, 2], _light_position(self.scene.room)
        )
        colours = np.stack([p.colour for p in prims])
        col = np.zeros((height * width, 3), np.float32)
        col[idx[win]] = colours[pid[win]] * shade[:, None]
        depth = depth.reshape(height, width)
        rgb = np.clip(col.reshape(height, width, 3) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return r0, r1, c0, c1, depth, rgb

    def _composite(
        self,
        person: Person,
        t: float,
        frame: np.ndarray,
        depth: np.ndarray,
        ids: np.ndarray | None,
        dirty: list | None,
    ) -> None:
        patch = self.person_patch(person, t)
        if patch is None:
            return
        r0, r1, c0, c1, pdepth, prgb = patch
        for pcols, fcols in self._column_slices(c0, c1):
            current = depth[r0:r1, fcols]
            visible = pdepth[:, pcols] < current
            current[visible] = pdepth[:, pcols][visible]
            frame[r0:r1, fcols][visible] = prgb[:, pcols][visible]
            if ids is not None:
                ids[r0:r1, fcols][visible] = person.index
            if dirty is not None:
                dirty.append((r0, r1, fcols))

    def render(self, t: float) -> np.ndarray:
        """The frame at time ``t`` seconds: ``uint8 (height, width, 3)`` RGB.

        People who stand still are part of the background (ray-cast once); walking people are ray-cast per
        frame. The returned array is the renderer's own buffer, overwritten by the next call: copy it to
        keep it.
        """
        for r0, r1, cols in self._dirty:
            self.frame[r0:r1, cols] = self.background[r0:r1, cols]
            self.depth[r0:r1, cols] = self.background_depth[r0:r1, cols]
            if self.ids is not None:
                self.ids[r0:r1, cols] = self.background_ids[r0:r1, cols]
        self._dirty = []
        for person in self.scene.people:
            if person.walking:
                self._composite(person, t, self.frame, self.depth, self.ids, self._dirty)
        return self.frame


# ------------------------------------------------------------------------------------------------------------
# Streaming H.264 writer


class StreamingVideoWriter:
    """Write RGB frames to an H.264 mp4 one at a time (memory independent of the length), atomically.

    Use as a context manager; the file appears at ``path`` only when the block ends without an exception.

    Args:
        path: destination ``.mp4``.
        width: frame width (even).
        height: frame height (even).
        fps: frame rate (exact fraction).
        crf: x264 constant rate factor.
        preset: x264 preset.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction,
        *,
        crf: int = 23,
        preset: str = "veryfast",
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs an even frame size; got {width}x{height}")
        self.path = Path(path)
        self.width, self.height, self.fps = int(width), int(height), Fraction(fps)
        self.crf, self.preset = int(crf), preset
        self.frames_written = 0

    def __enter__(self) -> StreamingVideoWriter:
        import av

        self._atomic = atomic_path(self.path, suffix=".mp4")
        tmp = self._atomic.__enter__()
        self._container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        self._stream = stream
        return self

    def write(self, rgb: np.ndarray) -> None:
        """Encode one ``uint8 (height, width, 3)`` RGB frame."""
        import av

        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frame must be uint8 {(self.height, self.width, 3)}; got {rgb.dtype} {rgb.shape}"
            )
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames_written
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._container.mux(self._stream.encode(None))
            self._container.close()
        finally:
            self._atomic.__exit__(exc_type, exc, tb)
        return False


def write_video(
    path: str | os.PathLike,
    scene: SceneSpec,
    width: int,
    height: int,
    fps: Fraction,
    num_frames: int,
    *,
    crf: int = 23,
    preset: str = "veryfast",
) -> Path:
    """Render ``num_frames`` frames (frame ``i`` at ``i / fps`` seconds) and stream them to an H.264 mp4."""
    renderer = EquirectRenderer(scene, width, height)
    with StreamingVideoWriter(path, width, height, fps, crf=crf, preset=preset) as writer:
        for index in range(num_frames):
            writer.write(renderer.render(float(index / fps)))
    return Path(path)
