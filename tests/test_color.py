"""Colour-space functions: shapes, known values, round trips and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deoldify_video import color


@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
def test_rgb_ycbcr_round_trip(matrix):
    rgb = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    back = color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb, matrix), matrix)
    assert back.shape == rgb.shape
    assert torch.allclose(back, rgb, atol=1e-6)


def test_known_values():
    red = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    y, cb, cr = color.rgb_to_ycbcr(red).flatten().tolist()
    assert (round(y, 6), round(cb, 6), round(cr, 6)) == (0.299, -0.168736, 0.5)
    y709 = color.rgb_to_ycbcr(red, "bt709").flatten()[0].item()
    assert y709 == pytest.approx(0.2126)
    assert color.matrix_for("bt709") == "bt709"
    assert color.matrix_for("bt2020nc") == "bt2020"
    assert color.matrix_for("") == color.matrix_for("smpte170m") == "bt601"


def test_ycbcr_to_rgb_known_values():
    red = torch.tensor([0.299, -0.168736, 0.5]).reshape(1, 3, 1, 1)
    assert color.ycbcr_to_rgb(red).flatten().tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    grey = torch.tensor([0.5, 0.0, 0.0]).reshape(3, 1, 1)  # any leading shape, even none
    assert color.ycbcr_to_rgb(grey, "bt2020").flatten().tolist() == pytest.approx([0.5] * 3)


def test_convert_chroma_known_values():
    """BT.601 chroma of pure red, re-expressed in BT.709: Cb = -Kr / (2 (1 - Kb)), Cr = 0.5."""
    luma = torch.full((1, 1, 1, 1), 0.299)
    chroma = torch.tensor([-0.168736, 0.5]).reshape(1, 2, 1, 1)
    assert color.convert_chroma(luma, chroma, "bt601") is chroma
    cb, cr = color.convert_chroma(luma, chroma, "bt709").flatten().tolist()
    assert (cb, cr) == pytest.approx((-0.2126 / (2 * (1 - 0.0722)), 0.5), abs=1e-5)


def test_rgb_luma_known_values():
    primaries = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]])
    assert color.rgb_luma(primaries).tolist() == [76, 150, 29, 255]  # 76.2, 149.7, 29.1
    assert color.rgb_luma(primaries, "bt709").tolist() == [54, 182, 18, 255]


def test_plane_levels():
    assert color.plane_levels(8, False) == (16.0, 235.0, 112.0)
    assert color.plane_levels(10, False) == (64.0, 940.0, 448.0)
    assert color.plane_levels(8, True) == (0.0, 255.0, 127.5)
    assert color.plane_levels(16, True) == (0.0, 65535.0, 32767.5)


def test_luma_to_unit_maps_black_and_white():
    planes = np.array([[[16, 235, 0, 255]]], np.uint8)
    unit = color.luma_to_unit(planes, 8, False)
    assert unit.shape == (1, 1, 1, 4)
    assert unit.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]  # clamped outside the tv range
    deep = color.luma_to_unit(np.array([[[0, 65535]]], np.uint16), 16, True)
    assert deep.flatten().tolist() == [0.0, 1.0]


def test_chroma_to_planes_grey_and_extremes():
    chroma = torch.tensor([0.0, 0.5, -0.5]).reshape(1, 1, 1, 3).repeat(1, 2, 1, 1)
    planes = color.chroma_to_planes(chroma, (1, 3), 8, False)
    assert planes.dtype == np.uint8 and planes.shape == (1, 2, 1, 3)
    assert planes[0, 0].flatten().tolist() == [128, 240, 16]
    deep = color.chroma_to_planes(chroma, (1, 3), 12, True)
    assert deep.dtype == np.uint16 and deep[0, 0].flatten().tolist() == [2048, 4095, 0]
    resized = color.chroma_to_planes(torch.zeros(1, 2, 3, 3), (6, 6), 10, False)
    assert resized.shape == (1, 2, 6, 6) and (resized == 512).all()


@pytest.mark.parametrize("depth", [8, 10, 12, 16])
def test_planes_to_rgb_keeps_the_luma_exact(depth):
    rng = np.random.default_rng(depth)
    top = (1 << depth) - 1
    dtype = np.uint8 if depth == 8 else np.uint16
    planes = rng.integers(0, top + 1, (3, 3, 16, 16)).astype(dtype)  # any colour, even extreme
    rgb = color.planes_to_rgb(planes, depth, True)
    assert rgb.shape == (3, 16, 16, 3) and rgb.dtype == dtype
    assert np.array_equal(color.rgb_luma(rgb), planes[:, 0].astype(np.int64))
    assert rgb.max() <= top


def test_planes_to_rgb_tv_range_is_stretched():
    black_white = np.array([[[[16, 235]], [[128, 128]], [[128, 128]]]], np.uint8)
    rgb = color.planes_to_rgb(black_white, 8, False)
    assert rgb[0, 0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="rgb must have shape"):
        color.rgb_to_ycbcr(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="Y planes of shape"):
        color.luma_to_unit(np.zeros((4, 4), np.uint8), 8, False)
    with pytest.raises(ValueError, match="Y, U, V planes"):
        color.planes_to_rgb(np.zeros((1, 2, 4, 4), np.uint8), 8, True)


def test_luma_to_unit_reads_16_bit_samples_carried_as_int16():
    """The device path uploads uint16 planes as int16 (the same bits)."""
    planes = np.array([[[0, 32768, 65535]]], np.uint16)
    carried = torch.from_numpy(planes.view(np.int16))
    assert torch.equal(color.luma_to_unit(carried, 16, True), color.luma_to_unit(planes, 16, True))
