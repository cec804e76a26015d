"""Geometry: STARSS23 conventions, FOA rotation/stereo, equirect -> perspective, projection, a full round trip."""

from __future__ import annotations

import numpy as np
import py360convert
import pytest

from savg_hub.geometry import (
    PerspectiveRenderer,
    PerspectiveView,
    direction_vector,
    encode_foa,
    equirect_pixel,
    foa_gains,
    foa_to_stereo,
    rotate_foa,
    vector_to_direction,
    wrap_azimuth,
)


def test_conventions():
    # azimuth positive anticlockwise: 90 = left; ACN order W, Y, Z, X
    np.testing.assert_allclose(foa_gains(90, 0), [1, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(foa_gains(0, 0), [1, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(foa_gains(0, 90), [1, 0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(foa_gains(-90, 0), [1, -1, 0, 0], atol=1e-12)
    assert wrap_azimuth(190) == -170 and wrap_azimuth(-180) == -180 and wrap_azimuth(180) == -180
    az, el = vector_to_direction(direction_vector([30, -120], [10, -5]))
    np.testing.assert_allclose(az, [30, -120]) and np.testing.assert_allclose(el, [10, -5])


@pytest.mark.parametrize("azimuth", [-150.0, -60.0, 0.0, 45.0, 135.0])
@pytest.mark.parametrize("yaw", [-90.0, 0.0, 30.0, 170.0])
def test_rotation_moves_source_to_azimuth_minus_yaw(azimuth, yaw):
    signal = np.random.default_rng(0).standard_normal(2000)
    rotated = rotate_foa(encode_foa(signal, azimuth, 20.0), yaw)
    expected = encode_foa(signal, azimuth - yaw, 20.0)
    np.testing.assert_allclose(rotated, expected, atol=1e-5)


def test_stereo_is_mid_side():
    foa = encode_foa(np.ones(4), 90.0, 0.0)  # hard left
    np.testing.assert_allclose(foa_to_stereo(foa), [[2, 2, 2, 2], [0, 0, 0, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="ACN"):
        foa_to_stereo(np.zeros((2, 4)))


def test_equirect_pixel_matches_py360convert_grid():
    width, height = 360, 180
    col, row = equirect_pixel(0.0, 0.0, width, height)
    assert (col, row) == (179.5, 89.5)
    col, _ = equirect_pixel(90.0, 0.0, width, height)  # left of centre
    assert col == pytest.approx(89.5)


def test_vertical_fov_square_pixels():
    view = PerspectiveView()
    assert view.vertical_fov_deg == pytest.approx(2 * np.degrees(np.arctan(np.tan(np.radians(50)) * 144 / 256)))
    assert view.frame_height == 256 and view.u_deg == 0.0
    assert PerspectiveView(yaw_deg=30).u_deg == -30.0


@pytest.mark.parametrize("yaw", list(range(-180, 180, 10)))
def test_renderer_equals_py360convert_e2p(yaw):
    """Acceptance: perspective frames agree with py360convert.e2p within 1 grey level (here: exactly)."""
    rng = np.random.default_rng(yaw + 1000)
    height, width = 240, 480
    coarse = rng.integers(0, 256, (height // 8, width // 8, 3)).astype(np.uint8)
    equirect = np.kron(coarse, np.ones((8, 8, 1), np.uint8)) + rng.integers(0, 8, (height, width, 3)).astype(np.uint8)
    view = PerspectiveView(yaw_deg=float(yaw))
    ours = PerspectiveRenderer(view, height, width)(equirect)
    reference = py360convert.e2p(equirect, (view.hfov_deg, view.vertical_fov_deg), view.u_deg, 0, (144, 256))
    assert ours.shape == reference.shape == (144, 256, 3)
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() <= 1.0
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1


def test_projection_agrees_with_rendering():
    """A bright dot drawn at (az, el) in the equirect lands at view.project(az, el)."""
    height, width = 960, 1920
    yy, xx = np.mgrid[0:height, 0:width]
    for yaw, az, el in [(0, 20, 10), (40, 75, -15), (-170, 160, 5), (100, 60, 25)]:
        col, row = equirect_pixel(az, el, width, height)
        image = (((xx - col) ** 2 + (yy - row) ** 2) <= 9).astype(np.float32)[..., None]
        view = PerspectiveView(yaw_deg=yaw)
        rendered = PerspectiveRenderer(view, height, width)(image)
        weights = rendered[..., 0] if rendered.ndim == 3 else rendered
        ys, xs = np.nonzero(weights > 0)
        cx = (xs * weights[ys, xs]).sum() / weights[ys, xs].sum()
        cy = (ys * weights[ys, xs]).sum() / weights[ys, xs].sum()
        x, y, on = view.project(az, el)
        assert on
        assert abs(cx - x) < 0.5 and abs(cy + view.pad_top - y) < 0.5


def test_on_screen_limits():
    view = PerspectiveView(yaw_deg=0)
    x, y, on = view.project(np.array([0, 49.9, 50.5, -49.9, 0, 0, 180]), np.array([0, 0, 0, 0, 33, 35, 0]))
    assert on.tolist() == [True, True, False, True, True, False, False]
    assert x[0] == pytest.approx(127.5) and y[0] == pytest.approx(56 + 71.5)
    assert x[1] < 1 and x[3] > 254  # +az is left
    assert np.isnan(x[-1])


@pytest.mark.parametrize("yaw", [-120.0, -30.0, 0.0, 45.0, 150.0])
def test_point_source_round_trip(yaw):
    """A source synthesised in FOA at a known direction, rotated, converted and rendered lands where its converted
    label says, with the louder channel on the correct side."""
    az, el = wrap_azimuth(yaw + 25.0), 8.0  # 25 degrees left of the view centre
    signal = np.random.default_rng(3).standard_normal(16000)
    stereo = foa_to_stereo(rotate_foa(encode_foa(signal, az, el), yaw))
    assert np.sqrt(np.mean(stereo[0] ** 2)) > 1.5 * np.sqrt(np.mean(stereo[1] ** 2))  # left louder
    view = PerspectiveView(yaw_deg=yaw)
    x, y, on = view.project(az, el)
    assert on and x < 128 and y < 128  # left half, above the horizon
    height, width = 480, 960
    yy, xx = np.mgrid[0:height, 0:width]
    col, row = equirect_pixel(az, el, width, height)
    image = np.zeros((height, width, 3), np.uint8)
    image[((xx - col) ** 2 + (yy - row) ** 2) <= 4] = 255
    frame = PerspectiveRenderer(view, height, width).render_frame(image)
    assert frame.shape == (256, 256, 3) and frame[:56].max() == 0 and frame[200:].max() == 0
    ys, xs = np.nonzero(frame[..., 0] > 0)
    assert abs(xs.mean() - x) < 1.0 and abs(ys.mean() - y) < 1.0
    # and the mirror case: a source on the right is louder on the right
    stereo_r = foa_to_stereo(rotate_foa(encode_foa(signal, wrap_azimuth(yaw - 25.0), el), yaw))
    assert np.sqrt(np.mean(stereo_r[1] ** 2)) > 1.5 * np.sqrt(np.mean(stereo_r[0] ** 2))
