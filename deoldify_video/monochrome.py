"""Tell colour pictures from black-and-white ones, tinted and toned black-and-white included.

A black-and-white picture may well carry colour: a sepia or selenium-toned print, a blue-tinted
night scene, a split-toned print (cool shadows, warm highlights), a scan with a colour cast or
with chroma noise from the film grain. In all of these the colour follows the brightness: two
pixels of the same brightness have (nearly) the same colour, whatever the hue of the tint. In a
colour picture they do not: at one brightness a red coat sits beside a green hedge and a grey
wall. So the measure is the spread of the chroma among pixels of equal brightness.

Counting hues alone (the spread of chroma directions) misjudges split-toned prints and casts
that drift across a scan (their hues span half the colour wheel), and colour photos of one
dominant hue (a red hammer on white, grey towers under a blue sky).

The picture is first averaged down to at most 96 pixels on its long side, which removes grain,
chroma noise and the colour fringes that 4:2:0 chroma leaves at sharp edges, and is measured in
2 x 2 tiles, so that a cast that drifts slowly across the frame (a stain, uneven fading) does
not count as colour. Measured on the 288 colour photos of ``../shared/data/photos`` and on
eight black-and-white versions of each (sepia, toned, blue-tinted, a cast with noise,
split-toned, stained, grainy, a drifting cast; each saved as JPEG at quality 75): the
black-and-white versions spread at most 3.4 chroma levels, the colour photos 8.2 in the median,
and 250 of the 288 (87 %) more than :data:`COLOUR_SPREAD`. The rest are nearly of one hue or
nearly grey (fog, stone, brown wood), where recolouring does the least harm.
"""

from __future__ import annotations

import math

import numpy as np

# Chroma spread among pixels of equal brightness (8-bit levels) above which a picture is colour.
COLOUR_SPREAD = 4.0
# The picture is averaged down to at most this many pixels on its long side before measuring.
MEASURE_SIDE = 96
_LUMA_BINS = 32
_TILES = 2
_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def chroma_spread(rgb: np.ndarray) -> float:
    """How much the colour of a picture varies among its pixels of equal brightness.

    Args:
        rgb: ``(H, W, 3)`` uint8 sRGB, any size.

    Returns:
        The root-mean-square distance, in 8-bit BT.601 chroma levels (0 to about 180), of each
        pixel's (Cb, Cr) from the mean chroma of the pixels of its tile (2 x 2 tiles) within
        1/32 of its luminance, measured at most 96 pixels on the long side. 0 for grey and
        for a uniform tint; below about 4 for toned, tinted and colour-cast black-and-white.

    >>> grey = np.tile(np.arange(256, dtype=np.uint8)[:, None, None], (1, 64, 3))
    >>> round(chroma_spread(grey), 3)
    0.0
    >>> chroma_spread((grey * np.array([1.0, 0.8, 0.6])).astype(np.uint8)) < COLOUR_SPREAD
    True
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    small = _average_down(rgb.astype(np.float32), MEASURE_SIDE)
    luma = small @ _BT601
    cb = (small[..., 2] - luma) * 0.564
    cr = (small[..., 0] - luma) * 0.713
    height, width = luma.shape
    total = 0.0
    for rows in np.array_split(np.arange(height), _TILES):
        for cols in np.array_split(np.arange(width), _TILES):
            if rows.size and cols.size:
                tile = np.ix_(rows, cols)
                total += _spread_sum(luma[tile], cb[tile], cr[tile])
    return float(np.sqrt(total / luma.size))


def is_colour(rgb: np.ndarray) -> bool:
    """True when ``rgb`` (``(H, W, 3)`` uint8) is a colour picture, False for black-and-white,
    tinted or toned included (see :func:`chroma_spread`)."""
    return chroma_spread(rgb) > COLOUR_SPREAD


def _average_down(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` float32 averaged over square blocks so that its long side is at
    most ``side`` (unchanged when it is not larger)."""
    factor = max(1, math.ceil(max(rgb.shape[:2]) / side))
    if factor == 1:
        return rgb
    height, width = rgb.shape[0] // factor * factor, rgb.shape[1] // factor * factor
    if height == 0 or width == 0:
        return rgb
    blocks = rgb[:height, :width].reshape(height // factor, factor, width // factor, factor, 3)
    return blocks.mean(axis=(1, 3))


def _spread_sum(luma: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> float:
    """Sum over the pixels of the squared distance of (Cb, Cr) from its mean at that pixel's
    luminance bin (luminance and chroma in 0..255 levels)."""
    bins = np.clip((luma * (_LUMA_BINS / 256.0)).astype(np.int64), 0, _LUMA_BINS - 1).ravel()
    counts = np.bincount(bins, minlength=_LUMA_BINS).astype(np.float64)
    total = 0.0
    for plane in (cb.ravel().astype(np.float64), cr.ravel().astype(np.float64)):
        sums = np.bincount(bins, plane, _LUMA_BINS)
        squares = np.bincount(bins, plane * plane, _LUMA_BINS)
        occupied = counts > 0
        total += float(np.sum(squares[occupied] - sums[occupied] ** 2 / counts[occupied]))
    return max(total, 0.0)
