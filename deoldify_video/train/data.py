"""Training data: colour photos -> (degraded luminance, true chroma) crops.

Each sample is a random resized crop of a photo, flipped at random, sometimes with cut-out
objects (RGBA images with transparency, such as clip-art stamps) pasted onto it. The network
input is the crop's luminance degraded like old film (faded contrast, blur, vignetting,
brightness flicker, grain, dust and scratches, compression artefacts); the target is the
crop's true colour. Photos may be named by a photo set manifest (``photoset``), and no copy
of a test-domain image is ever accepted for training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..color import rgb_to_ycbcr
from ..errors import UsageError
from .photoset import is_test_domain_copy, manifest_photos

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# share of the training crops that get cut-outs, unless told otherwise
STAMP_PROB = 0.4


def list_images(
    source: Path,
    root: Path | None = None,
    splits: Sequence[str] = ("train",),
    sources: Sequence[str] = (),
) -> list[Path]:
    """The image files named by ``source``.

    Args:
        source: a folder (searched recursively for images), a ``.txt`` file with one image
            path a line, a photo set manifest (``.csv``, see ``photoset``), or one image.
        root: the folder that a list file's or manifest's relative paths start from (default:
            the file's own folder).
        splits: the manifest splits to take (``train``, ``val-source``, ``test-domain``).
        sources: the manifest sources to take (default: all of the splits').

    Raises:
        UsageError: ``source`` does not exist, holds no image, or is a file that is neither
            an image nor a text list.
    """
    if source.suffix.lower() == ".csv":
        return [path for path, _ in manifest_photos(source, root, splits, sources)]
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        paths = [source]
    elif source.is_file():
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise UsageError(
                f"{source}: neither a photo ({', '.join(IMAGE_SUFFIXES)}) nor a text list of photos"
            ) from None
        base = source.parent if root is None else root
        paths = [base / line.strip() for line in lines if line.strip()]
    else:
        raise UsageError(f"{source}: no such folder or list file")
    if not paths:
        raise UsageError(f"{source}: no images found")
    return paths


def load_image(path: Path, max_side: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image as float sRGB, downscaled so that its long side is at most ``max_side``.

    Returns:
        ``(rgb, alpha)``: ``(H, W, 3)`` float32 in ``[0, 1]`` and ``(H, W)`` float32 alpha in
        ``[0, 1]``, or None when the image has no transparent pixel.

    Raises:
        UsageError: the file cannot be read as an image.
    """
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UsageError(f"{path}: not a readable image")
    if raw.dtype == np.uint16:
        raw = (raw.astype(np.float32) / 257.0).round().astype(np.uint8)
    if raw.ndim == 2:
        raw = cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR)
    if max_side is not None and max(raw.shape[:2]) > max_side:
        scale = max_side / max(raw.shape[:2])
        size = (max(1, round(raw.shape[1] * scale)), max(1, round(raw.shape[0] * scale)))
        raw = cv2.resize(raw, size, interpolation=cv2.INTER_AREA)
    alpha = None
    if raw.shape[2] == 4:
        a = raw[:, :, 3].astype(np.float32) / 255.0
        alpha = a if float(a.min()) < 1.0 else None
        raw = raw[:, :, :3]
    rgb = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return rgb, alpha


@dataclass(frozen=True)
class Sample:
    """A training batch.

    Attributes:
        luma_in: ``(B, 1, S, S)`` degraded luminance normalised to ``[-1, 1]`` (the input).
        chroma: ``(B, 2, S, S)`` true BT.601 (Cb, Cr) in ``[-0.5, 0.5]``.
        luma: ``(B, 1, S, S)`` true luminance in ``[0, 1]``.
    """

    luma_in: torch.Tensor
    chroma: torch.Tensor
    luma: torch.Tensor


def random_resized_crop(
    rgb: np.ndarray, size: int, rng: np.random.Generator, min_area: float = 0.2
) -> np.ndarray:
    """A random crop (area ``min_area``..1 of the image, aspect 3:4..4:3) resized to a square.

    Args:
        rgb: ``(H, W, C)`` float32 image.
        size: output side ``S``.

    Returns:
        ``(S, S, C)`` float32.
    """
    h, w = rgb.shape[:2]
    area = h * w * rng.uniform(min_area, 1.0)
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    ch = int(min(h, max(8, round(np.sqrt(area / aspect)))))
    cw = int(min(w, max(8, round(np.sqrt(area * aspect)))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    crop = rgb[y0 : y0 + ch, x0 : x0 + cw]
    interp = cv2.INTER_AREA if min(ch, cw) > size else cv2.INTER_LINEAR
    out = cv2.resize(crop, (size, size), interpolation=interp)
    return out if out.ndim == 3 else out[:, :, None]


def paste_stamp(
    rgb: np.ndarray, stamp: np.ndarray, alpha: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Alpha-blend a cut-out, scaled to 25-60 % of the crop's side, at a random place.

    Args:
        rgb: ``(S, S, 3)`` float32 background in ``[0, 1]`` (not modified).
        stamp: ``(h, w, 3)`` float32 cut-out in ``[0, 1]``; ``alpha``: its ``(h, w)`` mask.

    Returns:
        ``(S, S, 3)`` float32 composite.
    """
    side = rgb.shape[0]
    scale = rng.uniform(0.25, 0.6) * side / max(stamp.shape[:2])
    w = max(4, round(stamp.shape[1] * scale))
    h = max(4, round(stamp.shape[0] * scale))
    stamp = cv2.resize(stamp, (w, h), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)[:, :, None]
    if rng.random() < 0.5:
        stamp, alpha = stamp[:, ::-1], alpha[:, ::-1]
    y0 = int(rng.integers(0, side - h + 1))
    x0 = int(rng.integers(0, side - w + 1))
    out = rgb.copy()
    region = out[y0 : y0 + h, x0 : x0 + w]
    out[y0 : y0 + h, x0 : x0 + w] = alpha * stamp + (1.0 - alpha) * region
    return out


def degrade_luma(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make a clean luminance plane look like an old film frame.

    Each defect is applied with its own probability and a random strength: faded contrast
    and gamma, blur, vignetting, brightness flicker, film grain, dust and scratches, JPEG
    compression. About one plane in five is left clean.

    Args:
        y: ``(S, S)`` float32 luminance in ``[0, 1]``.

    Returns:
        ``(S, S)`` float32 in ``[0, 1]``.
    """
    if rng.random() < 0.2:
        return y
    side = y.shape[0]
    out = np.clip(y, 0.0, 1.0).astype(np.float32)
    if rng.random() < 0.6:  # faded contrast and gamma
        lo, hi = rng.uniform(0.0, 0.15), rng.uniform(0.8, 1.0)
        out = lo + (hi - lo) * np.power(out, rng.uniform(0.8, 1.25))
    if rng.random() < 0.5:  # soft focus
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < 0.4:  # vignetting
        grid = np.linspace(-1.0, 1.0, side, dtype=np.float32)
        r2 = (grid[None, :] ** 2 + grid[:, None] ** 2) / 2.0
        out = out * (1.0 - rng.uniform(0.1, 0.5) * r2)
    if rng.random() < 0.5:  # brightness flicker
        out = out * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    if rng.random() < 0.7:  # grain (slightly soft, like film)
        grain = rng.normal(0.0, rng.uniform(0.01, 0.06), (side, side)).astype(np.float32)
        out = out + cv2.GaussianBlur(grain, (0, 0), 0.6)
    if rng.random() < 0.3:  # dust specks and vertical scratches
        for _ in range(int(rng.integers(1, 12))):
            centre = (int(rng.integers(0, side)), int(rng.integers(0, side)))
            shade = float(rng.choice([0.0, 1.0]))
            cv2.circle(out, centre, int(rng.integers(1, 4)), shade, -1)
        for _ in range(int(rng.integers(0, 3))):
            x = int(rng.integers(0, side))
            cv2.line(out, (x, 0), (x + int(rng.integers(-4, 5)), side - 1), 0.9, 1)
    out = np.clip(out, 0.0, 1.0)
    if rng.random() < 0.4:  # compression artefacts
        quality = int(rng.integers(20, 70))
        ok, buf = cv2.imencode(".jpg", (out * 255.0).round().astype(np.uint8), [1, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
        if decoded is not None:
            out = decoded.astype(np.float32) / 255.0
    return out.astype(np.float32)


class ColorizationData:
    """Photos (and optional cut-outs) held in memory, turned into random training samples.

    Every image is checked against the test domain (``photoset.is_test_domain_copy``): a copy
    of a test-domain image, under any name and in any folder, is left out with a warning.

    Args:
        photos: colour images used whole (random crops).
        stamps: RGBA cut-outs pasted onto crops; an image with transparent pixels among
            ``photos`` is moved here automatically.
        max_side: images are kept downscaled to this long side.
        stamp_prob: probability that a sample gets one or two cut-outs.
        degrade: apply :func:`degrade_luma` to the input.
        seed: random seed.
    """

    def __init__(
        self,
        photos: Sequence[Path],
        stamps: Sequence[Path] = (),
        max_side: int = 512,
        stamp_prob: float = STAMP_PROB,
        degrade: bool = True,
        seed: int = 0,
    ) -> None:
        self.photos: list[np.ndarray] = []
        self.stamps: list[tuple[np.ndarray, np.ndarray]] = []
        for path in [*photos, *stamps]:
            rgb, alpha = load_image(path, max_side)
            if is_test_domain_copy(path, rgb):
                continue
            if alpha is None:
                self.photos.append(rgb)
            else:
                self.stamps.append((rgb, alpha))
        if not self.photos:
            raise UsageError("no opaque colour photo among the training images")
        self.stamp_prob = stamp_prob if self.stamps else 0.0
        self.degrade = degrade
        self.rng = np.random.default_rng(seed)
        logger.info(
            "training data: %d photos, %d cut-outs (on %.0f %% of the crops)",
            len(self.photos),
            len(self.stamps),
            100.0 * self.stamp_prob,
        )

    def crop(self, size: int) -> np.ndarray:
        """One random colour crop ``(S, S, 3)`` float32 in ``[0, 1]``, ``S = size``."""
        rng = self.rng
        rgb = random_resized_crop(self.photos[int(rng.integers(len(self.photos)))], size, rng)
        if rng.random() < 0.5:
            rgb = rgb[:, ::-1]
        if rng.random() < self.stamp_prob:
            for _ in range(int(rng.integers(1, 3))):
                stamp, alpha = self.stamps[int(rng.integers(len(self.stamps)))]
                rgb = paste_stamp(rgb, stamp, alpha, rng)
        return rgb

    def batch(self, batch_size: int, size: int) -> Sample:
        """``batch_size`` random samples of side ``size``, stacked: tensors ``(B, C, S, S)``."""
        crops = np.stack([self.crop(size) for _ in range(batch_size)])
        ycc = rgb_to_ycbcr(torch.from_numpy(crops.transpose(0, 3, 1, 2).copy()))
        luma = ycc[:, :1].contiguous()
        y_in = luma[:, 0].numpy()
        if self.degrade:
            y_in = np.stack([degrade_luma(y, self.rng) for y in y_in])
        luma_in = (torch.from_numpy(np.ascontiguousarray(y_in))[:, None] - 0.5) / 0.5
        return Sample(luma_in=luma_in, chroma=ycc[:, 1:].contiguous(), luma=luma)
