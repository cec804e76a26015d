"""Spatial conventions of STARSS23 / SVGSA24 and the conversions between 360° and perspective space.

STARSS23 conventions (used everywhere in this toolkit unless a name says otherwise):

* FOA channels are in ACN order ``(W, Y, Z, X)`` with SN3D normalisation. A plane wave ``s`` from azimuth
  ``phi`` and elevation ``theta`` encodes as ``W = s``, ``Y = s sin(phi) cos(theta)``, ``Z = s sin(theta)``,
  ``X = s cos(phi) cos(theta)``.
* Azimuth in degrees, 0 = front (centre of the 360° video), **positive anticlockwise seen from above**
  (90 = left, -90 = right), range [-180, 180). Elevation in degrees, positive up.
* Metadata frames are 100 ms long.

A *view* is a perspective camera looking horizontally at STARSS23 azimuth ``yaw`` (the azimuth that lands at the
centre of the picture). Rotating the FOA scene by ``yaw`` moves a source at azimuth ``phi`` to ``phi - yaw``, so
after :func:`rotate_foa` the picture centre is azimuth 0 and :func:`foa_to_stereo` (``L = W + Y``,
``R = W - Y``) puts a source on the left of the picture louder in the left channel.

The equirectangular to perspective conversion reproduces ``py360convert`` 1.0.4's ``e2p`` (bilinear, OpenCV
fixed-point maps). Mind its sign convention: its horizontal view angle ``u_deg`` is positive to the **right**,
the opposite of STARSS23 azimuth, so ``u_deg = -yaw``. :attr:`PerspectiveView.u_deg` gives that value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

METADATA_FRAME_SECONDS = 0.1
"""Length of one STARSS23 metadata frame in seconds."""


def wrap_azimuth(azimuth_deg: np.ndarray | float) -> np.ndarray | float:
    """Wrap azimuths in degrees to [-180, 180)."""
    wrapped = (np.asarray(azimuth_deg, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def direction_vector(azimuth_deg: np.ndarray | float, elevation_deg: np.ndarray | float) -> np.ndarray:
    """Unit vectors ``(..., 3)`` as (x front, y left, z up) for STARSS23 azimuth/elevation in degrees."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    return np.stack(np.broadcast_arrays(np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)), axis=-1)


def vector_to_direction(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`direction_vector`: ``(..., 3)`` (x front, y left, z up) to (azimuth, elevation) degrees."""
    vectors = np.asarray(vectors, dtype=np.float64)
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    azimuth = np.rad2deg(np.arctan2(y, x))
    elevation = np.rad2deg(np.arctan2(z, np.hypot(x, y)))
    return wrap_azimuth(azimuth), elevation


def foa_gains(azimuth_deg: np.ndarray | float, elevation_deg: np.ndarray | float) -> np.ndarray:
    """ACN/SN3D first-order encoding gains ``(..., 4)`` = (W, Y, Z, X) for the given directions in degrees."""
    vec = direction_vector(azimuth_deg, elevation_deg)
    ones = np.ones(vec.shape[:-1])
    return np.stack([ones, vec[..., 1], vec[..., 2], vec[..., 0]], axis=-1)


def encode_foa(
    signal: np.ndarray, azimuth_deg: np.ndarray | float, elevation_deg: np.ndarray | float
) -> np.ndarray:
    """Encode a mono plane wave into FOA.

    Args:
        signal: ``(N,)`` samples.
        azimuth_deg: scalar or ``(N,)`` per-sample azimuth (a moving source).
        elevation_deg: scalar or ``(N,)`` per-sample elevation.

    Returns:
        ``float32 (4, N)`` in ACN order (W, Y, Z, X), SN3D.
    """
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"signal must be 1-D; got shape {signal.shape}")
    gains = foa_gains(azimuth_deg, elevation_deg)
    if gains.ndim == 1:
        return (gains[:, None] * signal[None, :]).astype(np.float32)
    if gains.shape[0] != signal.shape[0]:
        raise ValueError(f"per-sample directions have {gains.shape[0]} entries for {signal.shape[0]} samples")
    return (gains.T * signal[None, :]).astype(np.float32)


def rotate_foa(foa: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Rotate an FOA scene about the vertical axis so that a source at azimuth ``phi`` appears at ``phi - yaw``.

    Args:
        foa: ``(4, N)`` ACN/SN3D (W, Y, Z, X).
        yaw_deg: rotation in degrees (STARSS23 azimuth of the new front).

    Returns:
        ``(4, N)`` of the input dtype. W and Z are unchanged.
    """
    foa = np.asarray(foa)
    if foa.ndim != 2 or foa.shape[0] != 4:
        raise ValueError(f"FOA must be (4, N) in ACN order (W, Y, Z, X); got shape {foa.shape}")
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    out = np.empty_like(foa)
    out[0] = foa[0]
    out[2] = foa[2]
    out[1] = c * foa[1] - s * foa[3]
    out[3] = c * foa[3] + s * foa[1]
    return out


def foa_to_stereo(foa: np.ndarray) -> np.ndarray:
    """Mid/side stereo from FOA: ``left = W + Y``, ``right = W - Y``. ``(4, N) -> (2, N)``."""
    foa = np.asarray(foa)
    if foa.ndim != 2 or foa.shape[0] != 4:
        raise ValueError(f"FOA must be (4, N) in ACN order (W, Y, Z, X); got shape {foa.shape}")
    return np.stack([foa[0] + foa[1], foa[0] - foa[1]])


def equirect_pixel(
    azimuth_deg: np.ndarray | float, elevation_deg: np.ndarray | float, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel (column, row) of a direction in a ``height x width`` equirectangular image.

    Pixel centres are at integers; column 0 is the left edge (azimuth +180), azimuth 0 is at ``width/2 - 0.5``
    and the azimuth grows to the left; row 0 is the top (elevation +90). Same mapping as ``py360convert``.
    """
    u = -np.deg2rad(wrap_azimuth(azimuth_deg))
    v = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    col = (u / (2 * np.pi) + 0.5) * width - 0.5
    row = (-v / np.pi + 0.5) * height - 0.5
    return col, row


def equirect_directions(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth ``(width,)`` and elevation ``(height,)`` in degrees of the pixel centres of an equirect image."""
    cols = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    azimuth = wrap_azimuth(-(((cols + 0.5) / width) - 0.5) * 360.0)
    elevation = -(((rows + 0.5) / height) - 0.5) * 180.0
    return azimuth, elevation


@dataclass(frozen=True)
class PerspectiveView:
    """A horizontal perspective camera inside a 360° scene, and its letterboxed output frame.

    Args:
        yaw_deg: STARSS23 azimuth (degrees, positive left) at the centre of the picture.
        hfov_deg: horizontal field of view in degrees (SVGSA24: 100).
        width: picture width in pixels (256).
        height: picture height in pixels (144).
        vfov_deg: vertical field of view; ``None`` keeps pixels square,
            ``2 atan(tan(hfov/2) * height / width)`` (67.6° for 100°, 256x144), the same rule as the
            DCASE2025 stereo SELD generator. The paper states only the horizontal FOV and the picture size.
        pad_top: black rows above the picture in the output frame (56).
        pad_bottom: black rows below the picture (56).
    """

    yaw_deg: float = 0.0
    hfov_deg: float = 100.0
    width: int = 256
    height: int = 144
    vfov_deg: float | None = None
    pad_top: int = 56
    pad_bottom: int = 56

    def __post_init__(self) -> None:
        if not 0.0 < self.hfov_deg < 180.0:
            raise ValueError(f"hfov_deg must be in (0, 180); got {self.hfov_deg}")
        if self.vfov_deg is not None and not 0.0 < self.vfov_deg < 180.0:
            raise ValueError(f"vfov_deg must be in (0, 180); got {self.vfov_deg}")
        if self.width < 2 or self.height < 2:
            raise ValueError(f"picture must be at least 2x2; got {self.width}x{self.height}")
        if self.pad_top < 0 or self.pad_bottom < 0:
            raise ValueError(f"padding must be >= 0; got top={self.pad_top} bottom={self.pad_bottom}")

    @property
    def u_deg(self) -> float:
        """``py360convert.e2p``'s horizontal angle for this view (positive right): ``-yaw`` wrapped."""
        return float(-wrap_azimuth(self.yaw_deg))

    @property
    def vertical_fov_deg(self) -> float:
        """Vertical field of view in degrees (derived when ``vfov_deg`` is None)."""
        if self.vfov_deg is not None:
            return float(self.vfov_deg)
        half = math.tan(math.radians(self.hfov_deg) / 2) * self.height / self.width
        return math.degrees(2 * math.atan(half))

    @property
    def frame_height(self) -> int:
        """Height of the letterboxed frame."""
        return self.height + self.pad_top + self.pad_bottom

    @property
    def _half_extents(self) -> tuple[float, float]:
        return math.tan(math.radians(self.hfov_deg) / 2), math.tan(math.radians(self.vertical_fov_deg) / 2)

    def project(
        self, azimuth_deg: np.ndarray | float, elevation_deg: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel position of directions in the letterboxed frame.

        Args:
            azimuth_deg: STARSS23 azimuth(s) in degrees, in the scene's frame (before rotation by ``yaw``).
            elevation_deg: elevation(s) in degrees.

        Returns:
            ``(x, y, on_screen)``: float64 sub-pixel column and row in the padded frame (pixel centres at
            integers; ``y`` includes ``pad_top``), and a bool array, True where the direction is in front of the
            camera and inside the picture (``-0.5 <= x <= width - 0.5`` and likewise for rows). ``x``/``y`` are NaN
            for directions behind the camera.
        """
        az = np.deg2rad(wrap_azimuth(np.asarray(azimuth_deg, dtype=np.float64) - self.yaw_deg))
        el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
        az, el = np.broadcast_arrays(az, el)
        forward = np.cos(az) * np.cos(el)
        right = -np.sin(az) * np.cos(el)
        up = np.sin(el)
        x_max, y_max = self._half_extents
        with np.errstate(divide="ignore", invalid="ignore"):
            px = np.where(forward > 0, right / forward, np.nan)
            py = np.where(forward > 0, up / forward, np.nan)
        col = (px + x_max) / (2 * x_max) * (self.width - 1)
        row = (y_max - py) / (2 * y_max) * (self.height - 1)
        with np.errstate(invalid="ignore"):
            on_screen = (
                (forward > 0)
                & (col >= -0.5) & (col <= self.width - 0.5)
                & (row >= -0.5) & (row <= self.height - 0.5)
            )
        return col, row + self.pad_top, on_screen

    def sampling_map(self, in_height: int, in_width: int) -> tuple[np.ndarray, np.ndarray]:
        """Equirect sub-pixel coordinates ``(map_x, map_y)``, each float32 ``(height, width)``, per output pixel.

        Computed with the same float32 operations as ``py360convert`` 1.0.4 (``xyzpers``, ``xyz2uv``, ``uv2coor``).
        """
        from scipy.spatial.transform import Rotation

        x_max, y_max = self._half_extents
        grid = np.ones((self.height, self.width, 3), np.float32)
        x_rng = np.linspace(-x_max, x_max, num=self.width, dtype=np.float32)
        y_rng = np.linspace(-y_max, y_max, num=self.height, dtype=np.float32)
        grid[..., :2] = np.stack(np.meshgrid(x_rng, -y_rng), -1)
        u = -float(np.deg2rad(self.u_deg))
        rot_y = Rotation.from_rotvec(u * np.array([0.0, 1.0, 0.0])).as_matrix()
        xyz = grid.dot(rot_y).astype(np.float32)
        lon = np.arctan2(xyz[..., 0:1], xyz[..., 2:3])
        lat = np.arctan2(xyz[..., 1:2], np.hypot(xyz[..., 0:1], xyz[..., 2:3]))
        map_x = (lon / (2 * np.pi) + 0.5) * in_width - 0.5
        map_y = (-lat / np.pi + 0.5) * in_height - 0.5
        return map_x[..., 0].astype(np.float32), map_y[..., 0].astype(np.float32)

    def letterbox(self, picture: np.ndarray) -> np.ndarray:
        """Pad a ``(..., height, width, C)`` picture with black bars to ``(..., frame_height, width, C)``."""
        if picture.shape[-3:-1] != (self.height, self.width):
            raise ValueError(f"picture is {picture.shape[-3:-1]}; expected {(self.height, self.width)}")
        pad = [(0, 0)] * picture.ndim
        pad[-3] = (self.pad_top, self.pad_bottom)
        return np.pad(picture, pad)


class PerspectiveRenderer:
    """Fast equirectangular -> perspective conversion for one view and one input size.

    The sampling map is computed once (OpenCV fixed-point, exactly as ``py360convert`` builds it) and every
    frame is a single ``cv2.remap`` over all channels with horizontal wrap-around, with no per-frame padding
    copy. Output equals ``py360convert.e2p(frame, (hfov, vfov), view.u_deg, 0, (height, width))`` for views
    that stay clear of the poles (every horizontal view with a vertical FOV below 180°).

    Args:
        view: the camera.
        in_height: equirect height in pixels.
        in_width: equirect width in pixels (``2 * in_height`` for a full sphere).
    """

    def __init__(self, view: PerspectiveView, in_height: int, in_width: int) -> None:
        import cv2

        self.view = view
        self.in_height, self.in_width = int(in_height), int(in_width)
        map_x, map_y = view.sampling_map(self.in_height, self.in_width)
        # py360convert adds 1 (its 1-pixel padding) before converting to fixed point; do the same so the
        # fractional parts round identically, then remove the offset from the integer part.
        fixed_xy, fixed_frac = cv2.convertMaps(map_x + 1, map_y + 1, cv2.CV_16SC2, nninterpolation=False)
        fixed_xy = fixed_xy.astype(np.int32) - 1
        rows = fixed_xy[..., 1]
        if rows.min() < 0 or rows.max() + 1 > self.in_height - 1:
            raise ValueError(f"view {view} reaches the poles of a {in_width}x{in_height} equirect image")
        # Wrap columns into [0, W) ourselves: cv2's BORDER_WRAP then only sees the x+1 neighbour at the seam.
        fixed_xy[..., 0] %= self.in_width
        self._map_xy = fixed_xy.astype(np.int16)
        self._map_frac = fixed_frac

    def __call__(self, equirect: np.ndarray) -> np.ndarray:
        """``(in_height, in_width[, C])`` -> ``(view.height, view.width[, C])``, same dtype."""
        import cv2

        if equirect.shape[:2] != (self.in_height, self.in_width):
            raise ValueError(f"equirect frame is {equirect.shape[:2]}; expected {(self.in_height, self.in_width)}")
        return cv2.remap(equirect, self._map_xy, self._map_frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)

    def render_frame(self, equirect: np.ndarray) -> np.ndarray:
        """Perspective picture letterboxed to ``(frame_height, width, C)``."""
        return self.view.letterbox(self(equirect))
