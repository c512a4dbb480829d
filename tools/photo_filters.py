"""Which images are photographs worth training a colorizer on: pure numpy / OpenCV tests.

Every function takes an RGB ``(H, W, 3)`` uint8 array (and an optional ``(H, W)`` uint8 alpha)
and measures one property; :func:`reject_reason` combines them into a verdict. The thresholds
were set on the packages of ``build_photo_set.py`` by looking at contact sheets of what each
test kept and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_SHORT_SIDE = 192
STATS_SIDE = 256


@dataclass(frozen=True)
class ImageStats:
    """What the tests measure on one image.

    Attributes:
        width, height: the image's size in pixels.
        transparent: share of pixels with alpha below 250 (0 without alpha).
        chroma_spread: standard deviation of the chroma vector (Cb, Cr), 0-255 units: below 1.5
            for grey and toned (sepia) images, 2-5 for colour photographs of neutral objects
            (cutlery, white china), 10-40 for most colour photographs.
        luma_std: standard deviation of the luminance, 0-255 units.
        flat: share of 4x4 blocks (at 256 px) of mid-tone luminance (16-239) that varies by
            at most 1 level: large in clip-art, renders with flat fills and screenshots; white
            and black backgrounds (objects photographed on white) do not count.
        noise: the image's noise level (Immerkaer's Laplacian estimate at 256 px over the
            mid-tones, 0-255 units): photographs carry sensor noise and texture, renders and
            clip-art almost none.
        colours: distinct colours (5 bits per channel) at 256 px, per thousand pixels.
    """

    width: int
    height: int
    transparent: float
    chroma_spread: float
    luma_std: float
    flat: float
    noise: float
    colours: float


def _check(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")


def shrink(rgb: np.ndarray, side: int = STATS_SIDE) -> np.ndarray:
    """``rgb`` with its long side reduced to ``side`` (area averaging); smaller images as is."""
    _check(rgb)
    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def chroma_spread(rgb: np.ndarray) -> float:
    """Standard deviation of the BT.601 chroma vector, in 0-255 units.

    >>> chroma_spread(np.full((4, 4, 3), 128, np.uint8))
    0.0
    """
    _check(rgb)
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.float64)
    return float(np.sqrt(ycc[:, 1].var() + ycc[:, 2].var()))


def flat_share(luma: np.ndarray, block: int = 4, tolerance: int = 1) -> float:
    """Share of ``block`` x ``block`` tiles of a ``(H, W)`` uint8 plane that are flat mid-tone
    fills: spanning at most ``tolerance`` levels, with a mean between 16 and 239.

    >>> flat_share(np.full((8, 8), 128, np.uint8))
    1.0
    >>> flat_share(np.full((8, 8), 255, np.uint8))
    0.0
    """
    h, w = (luma.shape[0] // block) * block, (luma.shape[1] // block) * block
    if h == 0 or w == 0:
        return 1.0
    tiles = luma[:h, :w].reshape(h // block, block, w // block, block).astype(np.int16)
    span = tiles.max(axis=(1, 3)) - tiles.min(axis=(1, 3))
    mean = tiles.mean(axis=(1, 3))
    return float(((span <= tolerance) & (mean >= 16) & (mean <= 239)).mean())


def noise_level(luma: np.ndarray) -> float:
    """Noise standard deviation of a ``(H, W)`` uint8 plane (Immerkaer 1996), 0-255 units,
    over its mid-tone pixels (16-239; white and black backgrounds carry none).

    The Laplacian-difference kernel cancels smooth shading and straight edges; what is left
    is noise and fine texture. Flat synthetic images give 0.
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = np.abs(cv2.filter2D(luma.astype(np.float64), -1, kernel)[1:-1, 1:-1])
    inner = luma[1:-1, 1:-1]
    mid = (inner >= 16) & (inner <= 239)
    if response.size == 0 or mid.mean() < 0.05:
        return 0.0
    return float(np.sqrt(np.pi / 2.0) / 6.0 * response[mid].mean())


def colour_count(rgb: np.ndarray) -> float:
    """Distinct colours (5 bits per channel) per thousand pixels."""
    _check(rgb)
    q = (rgb >> 3).astype(np.int32).reshape(-1, 3)
    codes = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    return 1000.0 * len(np.unique(codes)) / max(1, len(codes))


def measure(rgb: np.ndarray, alpha: np.ndarray | None = None) -> ImageStats:
    """All the measures of :class:`ImageStats` for one image (at full size)."""
    _check(rgb)
    small = shrink(rgb)
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    transparent = 0.0 if alpha is None else float((alpha < 250).mean())
    return ImageStats(
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        transparent=transparent,
        chroma_spread=chroma_spread(small),
        luma_std=float(luma.std()),
        flat=flat_share(luma),
        noise=noise_level(luma),
        colours=colour_count(small),
    )


@dataclass(frozen=True)
class Thresholds:
    """Where the tests draw their lines (see :class:`ImageStats` for the units)."""

    min_short_side: int = MIN_SHORT_SIDE
    max_transparent: float = 0.01
    min_chroma_spread: float = 1.5
    min_luma_std: float = 12.0
    max_flat: float = 0.3
    min_noise: float = 0.8
    min_colours: float = 5.0


def reject_reason(
    stats: ImageStats, limits: Thresholds = Thresholds(), clip_art: bool = True
) -> str | None:
    """Why an image is not a usable colour photograph, or None when it is.

    Reasons: ``tiny`` (short side below the minimum), ``cut-out`` (transparent pixels),
    ``near-grey`` (no colour: black-and-white photographs; a toned print such as sepia has
    a chroma spread and is not caught, and none was seen on the contact sheets),
    ``near-flat`` (little luminance contrast), ``clip-art`` (large flat fills, too few colours
    or no noise: drawings, renders, screenshots and diagrams; only when ``clip_art`` is true).
    """
    if min(stats.width, stats.height) < limits.min_short_side:
        return "tiny"
    if stats.transparent > limits.max_transparent:
        return "cut-out"
    if stats.chroma_spread < limits.min_chroma_spread:
        return "near-grey"
    if stats.luma_std < limits.min_luma_std:
        return "near-flat"
    if clip_art and (
        stats.flat > limits.max_flat
        or stats.colours < limits.min_colours
        or stats.noise < limits.min_noise
    ):
        return "clip-art"
    return None
