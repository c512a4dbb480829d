"""Image metrics: CIEDE2000 against Sharma et al.'s test pairs, PSNR, colorfulness."""

from __future__ import annotations

import numpy as np
import pytest

from deoldify_video.metrics import (
    ciede2000,
    colorfulness,
    mean_ciede2000_rgb,
    psnr,
    rgb_to_lab,
)

# G. Sharma, W. Wu, E. N. Dalal (2005), "The CIEDE2000 color-difference formula:
# implementation notes, supplementary test data, and mathematical observations", Table 1:
# (L1, a1, b1, L2, a2, b2, dE00).
SHARMA_PAIRS = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_ciede2000_matches_sharma_table() -> None:
    table = np.array(SHARMA_PAIRS)
    got = ciede2000(table[:, 0:3], table[:, 3:6])
    np.testing.assert_allclose(got, table[:, 6], atol=5e-5)


def test_ciede2000_is_symmetric_and_zero_on_identity() -> None:
    table = np.array(SHARMA_PAIRS)
    np.testing.assert_allclose(ciede2000(table[:, 3:6], table[:, 0:3]), table[:, 6], atol=5e-5)
    assert np.all(ciede2000(table[:, 0:3], table[:, 0:3]) == 0.0)


def test_ciede2000_keeps_leading_shape_and_rejects_bad_input() -> None:
    lab = np.zeros((4, 5, 3))
    assert ciede2000(lab, lab).shape == (4, 5)
    with pytest.raises(ValueError, match="shapes differ"):
        ciede2000(lab, np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        ciede2000(np.zeros((4, 2)), np.zeros((4, 2)))


def test_rgb_to_lab_known_values() -> None:
    rgb = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], np.float32)
    lab = rgb_to_lab(rgb)
    np.testing.assert_allclose(lab[0, 0], [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[0, 1], [0.0, 0.0, 0.0], atol=0.05)
    # sRGB red: L 53.24, a 80.09, b 67.20 (D65).
    np.testing.assert_allclose(lab[0, 2], [53.24, 80.09, 67.20], atol=0.3)


def test_mean_ciede2000_rgb_grey_vs_colour() -> None:
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 1.0
    assert mean_ciede2000_rgb(red, red) == 0.0
    assert mean_ciede2000_rgb(red, np.full_like(red, 0.5)) > 30.0


def test_psnr_known_values() -> None:
    a = np.zeros((8, 8, 3))
    assert psnr(a, a) == float("inf")
    assert psnr(a + 0.1, a) == pytest.approx(20.0)
    assert psnr(np.full((2, 2), 255.0), np.zeros((2, 2)), peak=255.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, np.zeros((8, 8)))


def test_colorfulness_known_values() -> None:
    grey = np.repeat(np.linspace(0, 1, 64, dtype=np.float32)[:, None, None], 3, axis=2)
    assert colorfulness(grey) == pytest.approx(0.0, abs=1e-9)
    # Half pure red, half pure green: sigma_rg = 255, mu_yb = 127.5 -> 255 + 0.3 * 127.5.
    half = np.zeros((2, 2, 3), np.float32)
    half[0, :, 0] = 1.0
    half[1, :, 1] = 1.0
    assert colorfulness(half) == pytest.approx(293.25)
    with pytest.raises(ValueError):
        colorfulness(np.zeros((4, 4)))
