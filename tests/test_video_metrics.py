"""Tests of the video metrics in deoldify_video.metrics: CDC and warp error."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from deoldify_video.color import rgb_to_ycbcr, ycbcr_to_rgb
from deoldify_video.metrics import cdc, score_clip, warp_error

from .conftest import DATA

PHOTO = DATA / "photos" / "mate-backgrounds" / "LadyBird.jpg"
SIZE = (128, 96)


def _pan(frames: int, step: float) -> np.ndarray:
    """A camera pan of ``step`` px/frame over a real photo: ``(N, 96, 128, 3)`` RGB in [0, 1]."""
    image = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    assert image is not None, PHOTO
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    big = cv2.resize(image, (192, 144), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    shifts = [np.array([[1, 0, -20 - step * t], [0, 1, -20]], np.float32) for t in range(frames)]
    return np.stack([cv2.warpAffine(big, m, SIZE, flags=cv2.INTER_LINEAR) for m in shifts])


def _split(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, H, W, 3)`` RGB -> luma ``(N, H, W)`` and chroma ``(N, H, W, 2)``."""
    ycbcr = rgb_to_ycbcr(torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    return ycbcr[..., 0], ycbcr[..., 1:]


def _join(luma: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    ycbcr = torch.from_numpy(np.concatenate([luma[..., None], chroma], axis=-1))
    return ycbcr_to_rgb(ycbcr.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()


def test_cdc_of_identical_frames_is_zero() -> None:
    frame = np.random.default_rng(0).random((1, 16, 16, 3))
    assert cdc(np.repeat(frame, 6, axis=0)) == 0.0


def test_cdc_of_disjoint_histograms_is_ln2() -> None:
    frames = np.stack([np.zeros((8, 8, 3)), np.ones((8, 8, 3))])
    assert cdc(frames) == pytest.approx(math.log(2.0))


def test_cdc_averages_the_gaps_that_fit() -> None:
    black, white = np.zeros((1, 4, 4, 3)), np.ones((1, 4, 4, 3))
    frames = np.concatenate([black, white, black])  # gap 1: ln 2, gap 2: 0, gap 4: no pair
    assert cdc(frames) == pytest.approx(math.log(2.0) / 2)
    assert cdc(frames, gaps=(2,)) == 0.0
    with pytest.raises(ValueError, match="gap"):
        cdc(frames, gaps=(4,))


def test_cdc_grows_with_colour_jitter() -> None:
    pan = _pan(8, 1.0)
    luma, chroma = _split(pan)
    gains = np.random.default_rng(1).uniform(0.6, 1.4, (8, 1, 1, 1)).astype(np.float32)
    assert cdc(_join(luma, chroma * gains)) > 3 * cdc(pan)


def test_warp_error_follows_the_motion() -> None:
    pan = _pan(8, 2.0)
    luma, chroma = _split(pan)
    steady = warp_error(luma, pan)
    # The colour of every other frame pushed by +-0.02 in Cb: (2 * 0.02)^2 over 2 channels.
    offsets = np.where(np.arange(8) % 2 == 0, 0.02, -0.02).astype(np.float32)
    jittered = chroma.copy()
    jittered[..., 0] += offsets[:, None, None]
    flickering = warp_error(luma, _join(luma, jittered))
    assert steady < 0.05 * flickering
    assert flickering == pytest.approx((2 * 0.02) ** 2 / 2, rel=0.15)


def test_warp_error_of_a_static_grey_clip_is_exact() -> None:
    texture = cv2.GaussianBlur(np.random.default_rng(2).random((40, 48)), (0, 0), 2.0)
    luma = np.repeat(texture[None].astype(np.float32) * 0.5 + 0.25, 4, axis=0)
    chroma = np.zeros((4, 40, 48, 2), np.float32)
    chroma[1::2, ..., 1] = 0.03  # Cr alternates 0, 0.03
    assert warp_error(luma, _join(luma, chroma)) == pytest.approx(0.03**2 / 2, rel=1e-3)


def test_warp_error_ignores_pixels_without_a_source() -> None:
    """The camera pans 6 px: the strip entering the frame has no past, so its colour is free."""
    rng = np.random.default_rng(3)
    wide = cv2.GaussianBlur(rng.random((64, 120)), (0, 0), 1.5).astype(np.float32)
    luma = np.stack([wide[:, 12:108], wide[:, 6:102]])
    chroma = np.zeros((2, 64, 96, 2), np.float32)
    chroma[1, :, :6, 1] = 0.2
    rgb = _join(luma, chroma)
    assert warp_error(luma, rgb) < 1e-8
    # Without the occlusion mask the strip counts: 0.2^2 / 2 over 6 of 96 columns.
    unmasked = warp_error(luma, rgb, max_mismatch=float("inf"))
    assert unmasked == pytest.approx(0.2**2 / 2 * 6 / 96, rel=0.05)


def test_warp_error_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match="source_luma_frames"):
        warp_error(np.zeros((1, 8, 8)), np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="does not match"):
        warp_error(np.zeros((2, 8, 8)), np.zeros((2, 8, 9, 3)))


def test_score_clip_with_and_without_truth() -> None:
    pan = _pan(6, 1.0)
    luma, chroma = _split(pan)
    alone = score_clip(luma, pan)
    assert alone.ciede2000 is None and alone.psnr is None
    assert alone.cdc == cdc(pan) and alone.warp_error == warp_error(luma, pan)
    exact = score_clip(luma, pan, pan)
    assert exact.ciede2000 == 0.0 and exact.psnr == float("inf")
    shifted = score_clip(luma, _join(luma, chroma + 0.03), pan)
    assert shifted.ciede2000 is not None and shifted.ciede2000 > 1.0
    assert shifted.psnr is not None and 20.0 < shifted.psnr < 60.0
    with pytest.raises(ValueError, match="truth_rgb_frames"):
        score_clip(luma, pan, pan[:, :-1])
