"""Scene description of a synthetic recording: the room, the people, fixed sound sources and the event
timeline.

Coordinates are camera-centred metres: x front (azimuth 0, the centre of the 360° video), y left, z up; the
360° camera and the microphone sit at the origin, ``camera_height`` above the floor. Azimuth/elevation follow
STARSS23 (:mod:`savg_hub.geometry`: azimuth positive to the left, in [-180, 180)).

Everything here is plain data plus pure functions of time, so the audio synthesiser, the video renderer, the
metadata writer and tests all read the same positions. :func:`sample_scene` draws a scene from a seed.

People are placed so that they never occlude one another (their angular extents stay apart at every instant)
and furniture never occludes them (furniture stands within 0.9 m of a wall, people keep 1.25 m from every
wall, and the camera keeps 2.8 m, so every camera-to-person ray stays inside the furniture-free inner
rectangle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from savg_hub.data.starss23 import METADATA_DTYPE
from savg_hub.data.synthetic.config import SyntheticConfig
from savg_hub.geometry import METADATA_FRAME_SECONDS, vector_to_direction, wrap_azimuth

SPEECH_FEMALE, SPEECH_MALE, CLAPPING, TELEPHONE, LAUGHTER, DOMESTIC = 0, 1, 2, 3, 4, 5
FOOTSTEPS, DOOR, MUSIC, INSTRUMENT, WATER_TAP, BELL, KNOCK = 6, 7, 8, 9, 10, 11, 12
TARGET_CLASSES: frozenset[int] = frozenset({SPEECH_FEMALE, SPEECH_MALE, INSTRUMENT})

INSTRUMENTS: tuple[str, ...] = ("guitar", "violin", "keyboard", "accordion")
"""Instruments a musician can hold; each has its own timbre (:mod:`.audio`) and shape (:mod:`.video`)."""

WALL_CLEARANCE = 1.25
"""Minimum distance of a person's ground position from every wall, metres."""
CAMERA_CLEARANCE = 2.8
"""Minimum distance of the camera from every wall, metres."""
FURNITURE_DEPTH = 0.9
"""Furniture stands within this distance of a wall, metres."""
PERSON_RADIUS = 0.7
"""Horizontal radius around a person's ground position holding the body, arms and instrument, metres."""
MIN_DISTANCE = 1.3
"""Closest horizontal distance of a person to the camera, metres."""

_SKIN = ((238, 205, 180), (224, 182, 150), (198, 148, 110), (160, 110, 75), (120, 80, 55), (88, 58, 40))
_HAIR = ((25, 20, 18), (60, 40, 25), (110, 75, 40), (190, 150, 90), (150, 150, 150), (130, 55, 30))
_SHIRT = (
    (200, 40, 40),
    (40, 70, 160),
    (30, 120, 70),
    (230, 200, 60),
    (240, 240, 235),
    (35, 35, 40),
    (150, 60, 150),
    (240, 130, 40),
    (120, 160, 200),
    (90, 90, 100),
    (170, 40, 90),
    (60, 150, 150),
)
_TROUSERS = ((40, 55, 90), (30, 30, 35), (150, 130, 95), (90, 90, 95), (70, 50, 40), (110, 30, 40))
_SHOES = ((25, 25, 25), (80, 50, 30), (220, 220, 220), (60, 40, 30))
_INSTRUMENT_COLOURS = {
    "guitar": ((150, 85, 40), (200, 140, 70), (30, 30, 30), (160, 30, 30)),
    "violin": ((130, 60, 20), (160, 80, 30)),
    "keyboard": ((30, 30, 32), (230, 230, 230)),
    "accordion": ((170, 20, 30), (20, 20, 22), (30, 80, 160)),
}
_WALL = ((225, 220, 205), (205, 210, 215), (230, 215, 190), (190, 200, 185), (215, 195, 190), (170, 175, 180))
_FLOOR = ((150, 105, 65), (120, 90, 60), (180, 150, 110), (110, 110, 115), (90, 70, 60), (160, 160, 150))
_FURNITURE = ((120, 80, 50), (200, 190, 170), (70, 60, 55), (160, 120, 80), (90, 100, 120), (150, 50, 45))


# ------------------------------------------------------------------------------------------------------------
# Room


@dataclass(frozen=True)
class Box:
    """An axis-aligned box of furniture.

    Attributes:
        centre: ``(x, y, z)`` centre in camera-centred metres.
        half: ``(hx, hy, hz)`` half sizes in metres.
        colour: RGB 0-255.
        kind: what it is part of (``"table"``, ``"cabinet"``, ``"shelf"``, ``"sofa"``, ``"speaker"`` ...).
    """

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    colour: tuple[int, int, int]
    kind: str

    @property
    def top(self) -> float:
        """z of the top face, metres."""
        return self.centre[2] + self.half[2]


@dataclass(frozen=True)
class WallFeature:
    """A flat rectangle painted on a wall (door, window, picture, board).

    Attributes:
        wall: 0 = front wall (``x = x_max``), 1 = back (``x_min``), 2 = left (``y_max``), 3 = right
            (``y_min``).
        u0: start along the wall in metres (world y for walls 0/1, world x for walls 2/3).
        u1: end along the wall.
        z0: bottom height above the floor, metres.
        z1: top height above the floor, metres.
        kind: ``"door"``, ``"window"``, ``"picture"`` or ``"board"``.
        colour: main RGB 0-255.
    """

    wall: int
    u0: float
    u1: float
    z0: float
    z1: float
    kind: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Room:
    """A box room around the camera.

    Attributes:
        x_min: back wall, metres (negative).
        x_max: front wall, metres.
        y_min: right wall, metres (negative).
        y_max: left wall, metres.
        floor_z: floor height relative to the camera (``-camera_height``), metres.
        ceiling_z: ceiling height relative to the camera, metres.
        rt60: reverberation time, seconds.
        direct_to_reverb_db: ratio of the direct sound at 1 m to the diffuse tail, dB.
        wall_colour: RGB of the paint.
        floor_colour: RGB of the floor.
        floor_style: ``"planks"``, ``"tiles"`` or ``"carpet"``.
        features: doors, windows, pictures.
        furniture: boxes.
        texture_seed: seed of the procedural textures.
    """

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    floor_z: float
    ceiling_z: float
    rt60: float
    direct_to_reverb_db: float
    wall_colour: tuple[int, int, int]
    floor_colour: tuple[int, int, int]
    floor_style: str
    features: tuple[WallFeature, ...]
    furniture: tuple[Box, ...]
    texture_seed: int

    @property
    def size(self) -> tuple[float, float, float]:
        """``(length x, width y, height z)`` in metres."""
        return self.x_max - self.x_min, self.y_max - self.y_min, self.ceiling_z - self.floor_z

    def mirror(self, points: np.ndarray) -> np.ndarray:
        """First-order image sources: ``(N, 3)`` points -> ``(6, N, 3)`` mirrored in the 6 surfaces
        (x_max, x_min, y_max, y_min, floor, ceiling)."""
        points = np.asarray(points, dtype=np.float64)
        out = np.repeat(points[None], 6, axis=0)
        planes = (
            (0, self.x_max),
            (0, self.x_min),
            (1, self.y_max),
            (1, self.y_min),
            (2, self.floor_z),
            (2, self.ceiling_z),
        )
        for k, (axis, value) in enumerate(planes):
            out[k, :, axis] = 2.0 * value - points[:, axis]
        return out

    def absorption(self) -> float:
        """Mean absorption coefficient from Sabine's formula for :attr:`rt60` (clipped to [0.02, 0.95])."""
        lx, ly, lz = self.size
        volume = lx * ly * lz
        surface = 2 * (lx * ly + lx * lz + ly * lz)
        return float(np.clip(0.161 * volume / (surface * self.rt60), 0.02, 0.95))


# ------------------------------------------------------------------------------------------------------------
# People


@dataclass(frozen=True)
class Person:
    """A person standing or slowly walking in the room, who talks (classes 0/1) or plays an instrument (9).

    The ground position moves on an ellipse-like path in polar coordinates around the camera:
    ``azimuth(t) = azimuth + azimuth_swing * sin(2 pi t / period + phase)`` and
    ``distance(t) = distance + distance_swing * sin(2 pi t / period + distance_phase)``.
    The body faces the camera, turned by ``facing`` degrees.

    Attributes:
        index: position in :attr:`SceneSpec.people`.
        cls: STARSS23 class of what the person does (0 female speech, 1 male speech, 9 instrument).
        height: metres.
        azimuth: centre azimuth of the path, degrees.
        azimuth_swing: amplitude of the azimuth motion, degrees (0 = stationary).
        distance: centre horizontal distance from the camera, metres.
        distance_swing: amplitude of the distance motion, metres.
        period: seconds per back-and-forth cycle.
        phase: phase of the azimuth motion, radians.
        distance_phase: phase of the distance motion, radians.
        facing: body rotation away from facing the camera, degrees (positive = turned to its left).
        build: shoulder/hip width factor (1 = average).
        skin: RGB. hair: RGB. shirt: RGB. trousers: RGB. shoes: RGB.
        long_hair: long hair falling on the back.
        short_sleeves: forearms show skin.
        instrument: one of :data:`INSTRUMENTS` for a musician, else ``None``.
        instrument_colour: RGB of the instrument.
        f0: mean fundamental frequency of the voice, Hz.
        formant_scale: vocal-tract scaling of the formants (about 1 for men, 1.15-1.2 for women).
    """

    index: int
    cls: int
    height: float
    azimuth: float
    azimuth_swing: float
    distance: float
    distance_swing: float
    period: float
    phase: float
    distance_phase: float
    facing: float
    build: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_hair: bool
    short_sleeves: bool
    instrument: str | None
    instrument_colour: tuple[int, int, int]
    f0: float
    formant_scale: float

    @property
    def walking(self) -> bool:
        """Whether the person moves."""
        return self.azimuth_swing > 0 or self.distance_swing > 0

    @property
    def scale(self) -> float:
        """Body scale relative to a 1.75 m adult."""
        return self.height / 1.75

    def polar(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Ground position as (azimuth degrees, horizontal distance metres) at times ``t`` (seconds)."""
        t = np.asarray(t, dtype=np.float64)
        w = 2.0 * np.pi / self.period
        az = self.azimuth + self.azimuth_swing * np.sin(w * t + self.phase)
        dist = self.distance + self.distance_swing * np.sin(w * t + self.distance_phase)
        return az, dist

    def ground(self, t: np.ndarray | float) -> np.ndarray:
        """Ground position ``(..., 2)`` (x, y) in metres at times ``t``."""
        az, dist = self.polar(t)
        a = np.deg2rad(az)
        return np.stack([dist * np.cos(a), dist * np.sin(a)], axis=-1)

    def frame(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Body frame at time ``t``: origin ``(3,)`` (ground point, z = 0 above the floor) and rotation
        ``(3, 3)`` whose columns are the body's forward, left and up unit vectors."""
        x, y = self.ground(t)
        heading = math.atan2(-y, -x) + math.radians(self.facing)
        forward = np.array([math.cos(heading), math.sin(heading), 0.0])
        left = np.array([-forward[1], forward[0], 0.0])
        return np.array([x, y, 0.0]), np.stack([forward, left, np.array([0.0, 0.0, 1.0])], axis=1)

    def gait(self, t: float) -> tuple[float, float]:
        """``(phase radians, speed m/s)`` of the walking cycle at time ``t`` (phase = 2 pi per 1.3-m
        stride)."""
        if not self.walking:
            return 0.0, 0.0
        grid = np.linspace(0.0, t, max(2, int(t * 20) + 2)) if t > 0 else np.zeros(2)
        xy = self.ground(grid)
        travelled = float(np.sum(np.hypot(*np.diff(xy, axis=0).T)))
        dt = 0.05
        speed = float(np.hypot(*(self.ground(t + dt) - self.ground(t - dt)))) / (2 * dt)
        return 2.0 * np.pi * travelled / 1.3, speed


def anchor_local(person: Person, anchor: str) -> np.ndarray:
    """Where a sound leaves a person, ``(3,)`` in the body frame (forward, left, up from the ground point),
    metres.

    Anchors: ``"mouth"`` (front of the face), ``"instrument"`` (the sounding body of the instrument),
    ``"hands"`` (in front of the chest), ``"feet"``. The renderer in :mod:`.video` builds the body around the
    same numbers, so the mouth is on the face and the instrument anchor inside the drawn instrument.
    """
    s, h = person.scale, person.height
    if anchor == "mouth":
        return np.array([0.085 * s, 0.0, h - 0.16 * s])
    if anchor == "hands":
        return np.array([0.3 * s, 0.0, 1.2 * s])
    if anchor == "feet":
        return np.array([0.05 * s, 0.0, 0.05])
    if anchor == "instrument":
        if person.instrument == "guitar":
            return np.array([0.2 * s, -0.04 * s, 1.0 * s])
        if person.instrument == "violin":
            return np.array([0.16 * s, 0.13 * s, 1.36 * s])
        if person.instrument == "keyboard":
            return np.array([0.38 * s, 0.0, 0.93 * s])
        if person.instrument == "accordion":
            return np.array([0.27 * s, 0.0, 1.17 * s])
        raise ValueError(f"person {person.index} holds no instrument; anchor 'instrument' is undefined")
    raise ValueError(f"unknown anchor {anchor!r}; expected mouth, instrument, hands or feet")


# ------------------------------------------------------------------------------------------------------------
# Fixed sources and events


@dataclass(frozen=True)
class Fixture:
    """A fixed sound source: a ceiling loudspeaker, a door, a phone on a table ...

    Attributes:
        name: ``"ceiling_speaker"``, ``"door"``, ``"phone"``, ``"tap"``, ``"bell"``, ``"dishes"``,
            ``"radio"``.
        position: ``(x, y, z)`` camera-centred metres.
    """

    name: str
    position: tuple[float, float, float]


@dataclass(frozen=True)
class Voice:
    """A voice that is not a person in the room (the ceiling loudspeaker's talker).

    Attributes:
        cls: 0 (female) or 1 (male).
        f0: mean fundamental frequency, Hz.
        formant_scale: vocal-tract scaling of the formants.
    """

    cls: int
    f0: float
    formant_scale: float


@dataclass(frozen=True)
class Event:
    """One sound event.

    Attributes:
        cls: STARSS23 class id.
        source: per-class instance index (the STARSS23 ``source`` column).
        start: onset, seconds.
        end: offset, seconds (exclusive).
        emitter: ``"person"`` or ``"fixture"``.
        index: index into :attr:`SceneSpec.people` or :attr:`SceneSpec.fixtures`.
        anchor: for a person, one of ``"mouth"``, ``"instrument"``, ``"hands"``, ``"feet"``; ``"point"`` for a
            fixture.
        level_db: peak level of the dry signal at 1 m, dBFS.
        seed: seed of the signal synthesis.
    """

    cls: int
    source: int
    start: float
    end: float
    emitter: str
    index: int
    anchor: str
    level_db: float
    seed: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    @property
    def is_target(self) -> bool:
        """Speech (0, 1) or instrument (9): what SVGSA24 keeps."""
        return self.cls in TARGET_CLASSES


@dataclass(frozen=True)
class SceneSpec:
    """Everything about one synthetic recording except its samples and pixels.

    Attributes:
        seed: the seed it was sampled from.
        duration: seconds.
        camera_height: metres above the floor.
        room: the room.
        people: the people.
        fixtures: fixed sound sources.
        events: the sound events, sorted by onset.
        speaker_voice: the talker heard from the ceiling loudspeaker (an off-screen target), if any.
    """

    seed: int
    duration: float
    camera_height: float
    room: Room
    people: tuple[Person, ...]
    fixtures: tuple[Fixture, ...]
    events: tuple[Event, ...] = field(default_factory=tuple)
    speaker_voice: Voice | None = None

    def positions(self, event: Event, times: np.ndarray) -> np.ndarray:
        """Camera-centred positions ``(N, 3)`` in metres of an event's source at ``times`` (seconds)."""
        times = np.atleast_1d(np.asarray(times, dtype=np.float64))
        if event.emitter == "fixture":
            return np.repeat(
                np.asarray(self.fixtures[event.index].position, dtype=np.float64)[None], len(times), 0
            )
        person = self.people[event.index]
        local = anchor_local(person, event.anchor)
        xy = person.ground(times)
        heading = np.arctan2(-xy[:, 1], -xy[:, 0]) + np.deg2rad(person.facing)
        fwd = np.stack([np.cos(heading), np.sin(heading)], axis=-1)
        left = np.stack([-fwd[:, 1], fwd[:, 0]], axis=-1)
        out = np.empty((len(times), 3))
        out[:, :2] = xy + local[0] * fwd + local[1] * left
        out[:, 2] = local[2] - self.camera_height
        return out

    def directions(self, event: Event, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(azimuth deg, elevation deg, distance m)``, each ``(N,)``, of an event's source at ``times``."""
        pos = self.positions(event, times)
        az, el = vector_to_direction(pos)
        return np.atleast_1d(az), np.atleast_1d(el), np.linalg.norm(pos, axis=-1)

    def frame_times(self, event: Event) -> tuple[np.ndarray, np.ndarray]:
        """Metadata frames an event is active in (frame centre inside ``[start, end)``) and their centre
        times.

        Returns:
            ``(frames int64 (F,), centres float64 (F,) seconds)``.
        """
        num_frames = int(math.floor(self.duration * 10 + 1e-9))
        first = max(0, int(math.ceil(event.start / METADATA_FRAME_SECONDS - 0.5 - 1e-9)))
        frames = np.arange(first, num_frames, dtype=np.int64)
        centres = (frames + 0.5) * METADATA_FRAME_SECONDS
        keep = (centres >= event.start) & (centres < event.end)
        return frames[keep], centres[keep]

    def metadata(self) -> np.ndarray:
        """STARSS23 metadata rows (:data:`~savg_hub.data.starss23.METADATA_DTYPE`): one per active event per
        100-ms frame, azimuth/elevation rounded to integer degrees (azimuth wrapped to [-180, 180)), distance
        in integer cm; sorted by frame, class, source."""
        rows = []
        for event in self.events:
            frames, centres = self.frame_times(event)
            if not len(frames):
                continue
            az, el, dist = self.directions(event, centres)
            az = np.asarray(wrap_azimuth(np.round(az)), dtype=np.float64).reshape(-1)
            for f, a, e, d in zip(frames, az, np.round(el), np.round(dist * 100.0)):
                rows.append((int(f), event.cls, event.source, float(a), float(e), float(d)))
        table = np.array(rows, dtype=METADATA_DTYPE)
        return np.sort(table, order=["frame", "cls", "source"])

    def active_counts(self) -> dict[str, float]:
        """Fractions of 100-ms frames with no event, exactly one target event and nothing else, two or more
        events, and any non-target event (statistics for tuning the curation yield)."""
        table = self.metadata()
        num_frames = int(math.floor(self.duration * 10 + 1e-9))
        counts = np.bincount(table["frame"], minlength=num_frames)[:num_frames]
        nontarget = np.zeros(num_frames, bool)
        mask = ~np.isin(table["cls"], list(TARGET_CLASSES))
        nontarget[table["frame"][mask]] = True
        return {
            "silent": float(np.mean(counts == 0)),
            "single_target": float(np.mean((counts == 1) & ~nontarget)),
            "overlap": float(np.mean(counts >= 2)),
            "nontarget": float(np.mean(nontarget)),
        }


# ------------------------------------------------------------------------------------------------------------
# Sampling


def _pick(rng: np.random.Generator, options: tuple) -> tuple:
    return options[int(rng.integers(len(options)))]


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: int = 12) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)  # type: ignore[return-value]


def _sample_room(rng: np.random.Generator, config: SyntheticConfig) -> tuple[Room, list[Fixture]]:
    lx, ly = rng.uniform(2 * CAMERA_CLEARANCE + 0.2, 10.0), rng.uniform(2 * CAMERA_CLEARANCE + 0.2, 9.0)
    height = rng.uniform(2.7, 3.6)
    cx = rng.uniform(CAMERA_CLEARANCE, lx - CAMERA_CLEARANCE)
    cy = rng.uniform(CAMERA_CLEARANCE, ly - CAMERA_CLEARANCE)
    x_min, x_max, y_min, y_max = -cx, lx - cx, -cy, ly - cy
    floor_z = -config.camera_height
    ceiling_z = height - config.camera_height
    wall_len = {0: (y_min, y_max), 1: (y_min, y_max), 2: (x_min, x_max), 3: (x_min, x_max)}
    occupied: dict[int, list[tuple[float, float]]] = {w: [] for w in range(4)}

    def free_slot(wall: int, width: float) -> float | None:
        lo, hi = wall_len[wall]
        for _ in range(20):
            u0 = rng.uniform(lo + 0.3, hi - 0.3 - width)
            if all(u0 + width + 0.2 < a or u0 > b + 0.2 for a, b in occupied[wall]):
                occupied[wall].append((u0, u0 + width))
                return u0
        return None

    features: list[WallFeature] = []
    fixtures: list[Fixture] = []
    door_wall = int(rng.integers(4))
    u0 = free_slot(door_wall, 0.9)
    if u0 is not None:
        features.append(
            WallFeature(
                door_wall,
                u0,
                u0 + 0.9,
                0.0,
                2.05,
                "door",
                _jitter(rng, _pick(rng, ((140, 95, 60), (235, 235, 230), (90, 60, 40)))),
            )
        )
        fixtures.append(
            Fixture(
                "door", _wall_point(door_wall, u0 + 0.45, floor_z + 1.1, x_min, x_max, y_min, y_max, 0.05)
            )
        )
    for _ in range(int(rng.integers(0, 3))):
        wall, width = int(rng.integers(4)), rng.uniform(1.0, 2.0)
        u0 = free_slot(wall, width)
        if u0 is not None:
            features.append(
                WallFeature(wall, u0, u0 + width, 0.9, min(2.3, height - 0.3), "window", (175, 205, 235))
            )
    for _ in range(int(rng.integers(1, 4))):
        wall, width = int(rng.integers(4)), rng.uniform(0.4, 1.2)
        u0 = free_slot(wall, width)
        if u0 is not None:
            z0 = rng.uniform(1.3, 1.7)
            kind = "board" if width > 1.0 and rng.random() < 0.5 else "picture"
            colour = (245, 245, 245) if kind == "board" else _jitter(rng, _pick(rng, _SHIRT), 30)
            features.append(
                WallFeature(wall, u0, u0 + width, z0, z0 + width * rng.uniform(0.6, 0.9), kind, colour)
            )

    furniture: list[Box] = []
    surfaces: list[tuple[float, float, float]] = []  # tops where small things stand
    for _ in range(int(rng.integers(2, 6))):
        kind = _pick(rng, ("table", "cabinet", "shelf", "sofa", "cabinet"))
        wall = int(rng.integers(4))
        width = {
            "table": rng.uniform(1.2, 1.8),
            "cabinet": rng.uniform(0.8, 1.8),
            "shelf": rng.uniform(0.7, 1.2),
            "sofa": rng.uniform(1.6, 2.2),
        }[kind]
        depth = {
            "table": rng.uniform(0.6, FURNITURE_DEPTH - 0.05),
            "cabinet": rng.uniform(0.4, 0.55),
            "shelf": rng.uniform(0.3, 0.4),
            "sofa": rng.uniform(0.8, FURNITURE_DEPTH - 0.02),
        }[kind]
        u0 = free_slot(wall, width)
        if u0 is None:
            continue
        colour = _jitter(rng, _pick(rng, _FURNITURE))
        boxes = _furniture_boxes(
            kind, wall, u0, width, depth, colour, floor_z, x_min, x_max, y_min, y_max, rng
        )
        furniture.extend(boxes)
        if kind in ("table", "cabinet"):
            top = boxes[0]
            surfaces.append((top.centre[0], top.centre[1], top.top))
    order = rng.permutation(len(surfaces))
    for name, k in zip(("phone", "tap", "bell", "dishes", "radio"), order):
        x, y, z = surfaces[k]
        fixtures.append(Fixture(name, (x + rng.uniform(-0.15, 0.15), y + rng.uniform(-0.15, 0.15), z + 0.05)))

    room = Room(
        x_min=x_min,
        x_max=x_max,
        y_min=y_min,
        y_max=y_max,
        floor_z=floor_z,
        ceiling_z=ceiling_z,
        rt60=float(rng.uniform(*config.rt60_seconds)),
        direct_to_reverb_db=float(rng.uniform(*config.direct_to_reverb_db)),
        wall_colour=_jitter(rng, _pick(rng, _WALL), 8),
        floor_colour=_jitter(rng, _pick(rng, _FLOOR), 10),
        floor_style=_pick(rng, ("planks", "tiles", "carpet", "planks")),
        features=tuple(features),
        furniture=tuple(furniture),
        texture_seed=int(rng.integers(2**31)),
    )
    return room, fixtures


def _wall_point(
    wall: int, u: float, z: float, x_min: float, x_max: float, y_min: float, y_max: float, inset: float
) -> tuple[float, float, float]:
    if wall == 0:
        return (x_max - inset, u, z)
    if wall == 1:
        return (x_min + inset, u, z)
    if wall == 2:
        return (u, y_max - inset, z)
    return (u, y_min + inset, z)


def _furniture_boxes(
    kind: str,
    wall: int,
    u0: float,
    width: float,
    depth: float,
    colour: tuple[int, int, int],
    floor_z: float,
    x_min: float,
    x_max: float,
    y_min: float,
    y_max: float,
    rng: np.random.Generator,
) -> list[Box]:
    """Boxes of one piece of furniture standing against ``wall``; the first box is its top or main body."""

    def box(
        u_lo: float,
        u_hi: float,
        d_lo: float,
        d_hi: float,
        z_lo: float,
        z_hi: float,
        col: tuple[int, int, int],
        part: str,
    ) -> Box:
        # d is the distance from the wall
        if wall in (0, 1):
            xs = (x_max - d_hi, x_max - d_lo) if wall == 0 else (x_min + d_lo, x_min + d_hi)
            ys = (u_lo, u_hi)
        else:
            ys = (y_max - d_hi, y_max - d_lo) if wall == 2 else (y_min + d_lo, y_min + d_hi)
            xs = (u_lo, u_hi)
        centre = ((xs[0] + xs[1]) / 2, (ys[0] + ys[1]) / 2, floor_z + (z_lo + z_hi) / 2)
        half = ((xs[1] - xs[0]) / 2, (ys[1] - ys[0]) / 2, (z_hi - z_lo) / 2)
        return Box(centre, half, col, part)

    u1 = u0 + width
    darker = tuple(int(c * 0.7) for c in colour)
    if kind == "table":
        top = 0.74
        out = [box(u0, u1, 0.02, depth, top - 0.04, top, colour, "table")]
        for ua in (u0 + 0.03, u1 - 0.08):
            for da in (0.05, depth - 0.05):
                out.append(box(ua, ua + 0.05, da, da + 0.05, 0.0, top - 0.04, darker, "table"))
        return out
    if kind == "cabinet":
        tall = rng.uniform(0.75, 1.0)
        return [
            box(u0, u1, 0.0, depth, 0.0, tall, colour, "cabinet"),
            box(u0 + 0.03, u1 - 0.03, depth, depth + 0.01, 0.1, tall - 0.05, darker, "cabinet"),
        ]
    if kind == "shelf":
        tall = rng.uniform(1.7, 2.1)
        out = [
            box(u0, u1, 0.0, depth, tall - 0.03, tall, colour, "shelf"),
            box(u0, u1, 0.0, 0.03, 0.0, tall, darker, "shelf"),
            box(u0, u0 + 0.03, 0.0, depth, 0.0, tall, colour, "shelf"),
            box(u1 - 0.03, u1, 0.0, depth, 0.0, tall, colour, "shelf"),
        ]
        levels = np.linspace(0.05, tall - 0.03, 5)
        for z_lo, z_hi in zip(levels[:-1], levels[1:]):
            out.append(box(u0, u1, 0.0, depth, z_lo, z_lo + 0.03, colour, "shelf"))
            fill = rng.uniform(0.4, 0.95)
            book_colour = _jitter(rng, _pick(rng, _SHIRT), 30)
            out.append(
                box(
                    u0 + 0.05,
                    u0 + 0.05 + fill * (width - 0.1),
                    0.03,
                    depth - 0.05,
                    z_lo + 0.03,
                    z_lo + 0.03 + (z_hi - z_lo) * rng.uniform(0.5, 0.85),
                    book_colour,
                    "books",
                )
            )
        return out
    # sofa
    return [
        box(u0, u1, 0.0, depth, 0.0, 0.45, colour, "sofa"),
        box(u0, u1, 0.0, 0.22, 0.45, 0.85, colour, "sofa"),
        box(u0, u0 + 0.18, 0.0, depth, 0.45, 0.62, darker, "sofa"),
        box(u1 - 0.18, u1, 0.0, depth, 0.45, 0.62, darker, "sofa"),
    ]


def _half_width_deg(distance: np.ndarray) -> np.ndarray:
    """Angular half-width of a person's bounding cylinder seen from the camera, degrees."""
    return np.rad2deg(np.arcsin(np.clip(PERSON_RADIUS / np.maximum(distance, 1e-6), 0.0, 1.0)))


def _sample_person(rng: np.random.Generator, index: int, cls: int, config: SyntheticConfig) -> dict:
    female = cls == SPEECH_FEMALE or (cls == INSTRUMENT and rng.random() < 0.5)
    height = rng.uniform(1.55, 1.75) if female else rng.uniform(1.65, 1.92)
    instrument = _pick(rng, INSTRUMENTS) if cls == INSTRUMENT else None
    return dict(
        index=index,
        cls=cls,
        height=float(height),
        facing=float(rng.uniform(-25, 25)),
        build=float(rng.uniform(0.9, 1.1) * (0.93 if female else 1.0)),
        skin=_jitter(rng, _pick(rng, _SKIN), 8),
        hair=_jitter(rng, _pick(rng, _HAIR), 10),
        shirt=_jitter(rng, _pick(rng, _SHIRT), 25),
        trousers=_jitter(rng, _pick(rng, _TROUSERS), 12),
        shoes=_pick(rng, _SHOES),
        long_hair=bool(rng.random() < (0.75 if female else 0.1)),
        short_sleeves=bool(rng.random() < 0.4),
        instrument=instrument,
        instrument_colour=_pick(rng, _INSTRUMENT_COLOURS[instrument]) if instrument else (0, 0, 0),
        f0=float(rng.uniform(165, 250) if female else rng.uniform(90, 145)),
        formant_scale=float(rng.uniform(1.12, 1.2) if female else rng.uniform(0.95, 1.03)),
    )


def _place_people(
    rng: np.random.Generator, room: Room, traits: list[dict], config: SyntheticConfig
) -> list[Person]:
    """Paths that keep every person inside the clear area and apart (in angle) from everyone else."""
    n = len(traits)
    grid = np.arange(0.0, config.duration + 0.1, 0.1)
    inner = (
        room.x_min + WALL_CLEARANCE,
        room.x_max - WALL_CLEARANCE,
        room.y_min + WALL_CLEARANCE,
        room.y_max - WALL_CLEARANCE,
    )
    grouped = rng.random() < config.grouped_probability
    for attempt in range(400):
        shrink = 0.5 ** (attempt // 100)
        group_centre = float(rng.uniform(-180, 180))
        people = []
        for trait in traits:
            walking = rng.random() < config.walking_probability * (0.5 if trait["cls"] == INSTRUMENT else 1.0)
            if grouped and attempt < 300:
                az = float(wrap_azimuth(group_centre + rng.uniform(-55, 55)))
            else:
                az = float(rng.uniform(-180, 180))
            dist_max = _max_distance(az, inner)
            if dist_max < MIN_DISTANCE + 0.05:
                break
            dist = float(rng.uniform(MIN_DISTANCE, min(4.5, dist_max)))
            people.append(
                Person(
                    azimuth=az,
                    distance=dist,
                    azimuth_swing=float(rng.uniform(8, 35) * shrink) if walking else 0.0,
                    distance_swing=float(rng.uniform(0.0, 0.6) * shrink) if walking else 0.0,
                    period=float(rng.uniform(14, 32)),
                    phase=float(rng.uniform(0, 2 * np.pi)),
                    distance_phase=float(rng.uniform(0, 2 * np.pi)),
                    **trait,
                )
            )
        if len(people) < n:
            continue
        if _paths_ok(people, grid, inner):
            return people
    raise RuntimeError("could not place the people of a synthetic scene; lower SyntheticConfig.people")


def _max_distance(azimuth: float, inner: tuple[float, float, float, float]) -> float:
    """Distance from the camera to the border of the clear rectangle along ``azimuth``."""
    a = math.radians(azimuth)
    dx, dy = math.cos(a), math.sin(a)
    limits = []
    x_lo, x_hi, y_lo, y_hi = inner
    if dx > 1e-9:
        limits.append(x_hi / dx)
    elif dx < -1e-9:
        limits.append(x_lo / dx)
    if dy > 1e-9:
        limits.append(y_hi / dy)
    elif dy < -1e-9:
        limits.append(y_lo / dy)
    return min(limits)


def _paths_ok(people: list[Person], grid: np.ndarray, inner: tuple[float, float, float, float]) -> bool:
    x_lo, x_hi, y_lo, y_hi = inner
    polar = []
    for person in people:
        az, dist = person.polar(grid)
        xy = person.ground(grid)
        if dist.min() < MIN_DISTANCE or dist.max() > 5.0:
            return False
        if xy[:, 0].min() < x_lo or xy[:, 0].max() > x_hi or xy[:, 1].min() < y_lo or xy[:, 1].max() > y_hi:
            return False
        polar.append((az, _half_width_deg(dist)))
    for i in range(len(people)):
        for j in range(i + 1, len(people)):
            sep = np.abs(wrap_azimuth(polar[i][0] - polar[j][0]))
            if np.any(sep < polar[i][1] + polar[j][1] + 4.0):
                return False
    return True


def _ceiling_speaker(rng: np.random.Generator, room: Room) -> tuple[Fixture, list[Box]]:
    elevation = math.radians(rng.uniform(47, 68))
    z = room.ceiling_z - 0.12
    horizontal = z / math.tan(elevation)
    az = math.radians(rng.uniform(-180, 180))
    x, y = horizontal * math.cos(az), horizontal * math.sin(az)
    boxes = [
        Box((x, y, room.ceiling_z - 0.06), (0.2, 0.2, 0.06), (40, 40, 44), "speaker"),
        Box((x, y, room.ceiling_z - 0.125), (0.15, 0.15, 0.005), (90, 90, 95), "speaker"),
    ]
    return Fixture("ceiling_speaker", (x, y, z)), boxes


_NONTARGET_SECONDS = {
    KNOCK: (0.5, 1.5),
    DOOR: (0.8, 2.0),
    TELEPHONE: (2.0, 5.0),
    WATER_TAP: (2.0, 6.0),
    BELL: (0.8, 2.5),
    MUSIC: (3.0, 8.0),
    DOMESTIC: (1.0, 4.0),
    FOOTSTEPS: (2.0, 5.0),
    CLAPPING: (1.0, 4.0),
    LAUGHTER: (0.8, 2.5),
}


def _nontarget_emitters(people: list[Person], fixtures: list[Fixture]) -> list[tuple[int, str, int, str]]:
    by_name = {f.name: k for k, f in enumerate(fixtures)}
    out: list[tuple[int, str, int, str]] = []
    if "door" in by_name:
        out += [(KNOCK, "fixture", by_name["door"], "point"), (DOOR, "fixture", by_name["door"], "point")]
    for name, cls in (("phone", TELEPHONE), ("tap", WATER_TAP), ("bell", BELL), ("dishes", DOMESTIC)):
        if name in by_name:
            out.append((cls, "fixture", by_name[name], "point"))
    music = by_name.get("ceiling_speaker", by_name.get("radio"))
    if music is not None:
        out.append((MUSIC, "fixture", music, "point"))
    for person in people:
        if person.walking:
            out.append((FOOTSTEPS, "person", person.index, "feet"))
        out.append((CLAPPING, "person", person.index, "hands"))
        if person.cls != INSTRUMENT:
            out.append((LAUGHTER, "person", person.index, "mouth"))
    return out


def _sample_events(
    rng: np.random.Generator,
    config: SyntheticConfig,
    people: list[Person],
    fixtures: list[Fixture],
    voice: Voice | None,
) -> list[Event]:
    targets: list[tuple[int, str, int, str]] = [
        (p.cls, "person", p.index, "instrument" if p.cls == INSTRUMENT else "mouth") for p in people
    ]
    weights = [1.0] * len(targets)
    if voice is not None:
        speaker = next(k for k, f in enumerate(fixtures) if f.name == "ceiling_speaker")
        targets.append((voice.cls, "fixture", speaker, "point"))
        weights.append(0.25)
    nontargets = _nontarget_emitters(people, fixtures)
    raw: list[tuple[tuple[int, str, int, str], float, float]] = []

    def target_azimuth(target: tuple[int, str, int, str], time: float) -> float:
        if target[1] == "person":
            return float(people[target[2]].polar(time)[0])
        x, y, _ = fixtures[target[2]].position
        return math.degrees(math.atan2(y, x))

    def choose_target(exclude: tuple | None, time: float) -> tuple[int, str, int, str]:
        # the next talker is more often a neighbour of the last one (within 90°): conversations form groups
        w = np.array([0.0 if (t == exclude and len(targets) > 1) else wt for t, wt in zip(targets, weights)])
        if exclude is not None:
            ref = target_azimuth(exclude, time)
            far = np.array([abs(wrap_azimuth(target_azimuth(t, time) - ref)) > 90.0 for t in targets])
            w = np.where(far, w * config.far_turn_weight, w)
        if w.sum() <= 0:
            w = np.array([0.0 if t == exclude else 1.0 for t in targets]) if len(targets) > 1 else np.ones(1)
        return targets[int(rng.choice(len(targets), p=w / w.sum()))]

    def nontarget_event(start: float) -> tuple[tuple[int, str, int, str], float, float]:
        emitter = nontargets[int(rng.integers(len(nontargets)))]
        return emitter, start, start + rng.uniform(*_NONTARGET_SECONDS[emitter[0]])

    def gap() -> float:
        if rng.random() < config.long_gap_probability:
            return float(rng.uniform(0.5, 2.0))
        return float(rng.uniform(*config.gap_seconds))

    t = float(rng.uniform(0.0, 0.6))
    last: tuple | None = None
    while t < config.duration - 0.4:
        if nontargets and rng.random() < config.nontarget_probability:
            item = nontarget_event(t)
            raw.append(item)
            t = item[2] + gap()
            continue
        emitter = choose_target(last, t)
        end = t + float(rng.uniform(*config.turn_seconds))
        raw.append((emitter, t, end))
        last = emitter
        if len(targets) > 1 and rng.random() < config.overlap_probability:
            other = choose_target(emitter, t)
            start = t + (end - t) * float(rng.uniform(0.4, 0.85))
            other_end = start + float(rng.uniform(1.0, 4.0))
            raw.append((other, start, other_end))
            last = other
            end = max(end, other_end)
        if nontargets and rng.random() < config.nontarget_overlay_probability:
            item = nontarget_event(float(rng.uniform(t, end)))
            raw.append(item)
        t = end + gap()

    # clip to the recording, drop slivers, and never let one emitter overlap itself
    raw.sort(key=lambda item: item[1])
    busy: dict[tuple, float] = {}
    kept: list[tuple[tuple[int, str, int, str], float, float]] = []
    for emitter, start, end in raw:
        start = max(start, busy.get(emitter, -1.0) + 0.1)
        end = min(end, config.duration)
        if end - start < 0.3:
            continue
        busy[emitter] = end
        kept.append((emitter, start, end))

    instance: dict[tuple, int] = {}
    per_class: dict[int, int] = {}
    events = []
    for emitter, start, end in kept:
        cls = emitter[0]
        if emitter not in instance:
            instance[emitter] = per_class.get(cls, 0)
            per_class[cls] = instance[emitter] + 1
        level = float(rng.uniform(*config.source_peak_dbfs))
        if rng.random() < config.loud_event_probability:
            level += float(rng.uniform(*config.loud_event_gain_db))
        events.append(
            Event(
                cls=cls,
                source=instance[emitter],
                start=round(start, 4),
                end=round(end, 4),
                emitter=emitter[1],
                index=emitter[2],
                anchor=emitter[3],
                level_db=level,
                seed=int(rng.integers(2**31)),
            )
        )
    return events


def sample_scene(seed: int, config: SyntheticConfig | None = None) -> SceneSpec:
    """Draw a scene (room, people, fixed sources, event timeline) from a seed; deterministic.

    Args:
        seed: any non-negative integer.
        config: generator settings (default :class:`SyntheticConfig`).
    """
    config = config or SyntheticConfig()
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5A76]))
    room, fixtures = _sample_room(rng, config)
    voice = None
    if rng.random() < config.offscreen_probability:
        speaker, boxes = _ceiling_speaker(rng, room)
        fixtures.append(speaker)
        room = replace(room, furniture=room.furniture + tuple(boxes))
        voice_cls = int(rng.integers(2))
        voice = Voice(
            voice_cls,
            float(rng.uniform(170, 240) if voice_cls == 0 else rng.uniform(95, 140)),
            float(rng.uniform(1.12, 1.2) if voice_cls == 0 else rng.uniform(0.95, 1.03)),
        )
    count = int(rng.integers(config.people[0], config.people[1] + 1))
    classes = []
    for _ in range(count):
        classes.append(
            INSTRUMENT
            if rng.random() < config.musician_probability
            else (SPEECH_FEMALE if rng.random() < 0.5 else SPEECH_MALE)
        )
    traits = [_sample_person(rng, k, cls, config) for k, cls in enumerate(classes)]
    people = _place_people(rng, room, traits, config)
    events = _sample_events(rng, config, people, fixtures, voice)
    return SceneSpec(
        seed=int(seed),
        duration=float(config.duration),
        camera_height=config.camera_height,
        room=room,
        people=tuple(people),
        fixtures=tuple(fixtures),
        events=tuple(events),
        speaker_voice=voice,
    )
