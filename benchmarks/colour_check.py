"""How well the colour-input check tells colour photos from tinted and toned black-and-white.

    python benchmarks/colour_check.py [PHOTOS_DIR]

Each colour photo (default ``../shared/data/photos``) is measured as it is and as eight
black-and-white versions made from its luminance (sepia, toned, blue-tinted, a cast with chroma
noise, split-toned, stained, grainy, a cast drifting across the frame), each saved as a JPEG at
quality 75. Prints the spread (``deoldify_video.monochrome.chroma_spread``) of each kind and how
many photos the check calls colour.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from deoldify_video.monochrome import COLOUR_SPREAD, chroma_spread

DEFAULT_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
_BT601 = np.array([0.299, 0.587, 0.114])


def _print(
    luma: np.ndarray, shadows: tuple[float, ...], highlights: tuple[float, ...]
) -> np.ndarray:
    low, high = np.array(shadows), np.array(highlights)
    return low + (high - low) * luma[..., None]


def black_and_white_versions(rgb: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Eight tinted, toned or cast black-and-white versions of ``rgb`` (uint8), as uint8."""
    luma = rgb.astype(np.float64) @ _BT601 / 255.0
    height, width = luma.shape
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    grey = luma[..., None]
    stain = np.exp(-((xs - 0.8) ** 2 + (ys - 0.2) ** 2) / 0.05)[..., None]
    drift = (1 - xs)[..., None] * np.array([0.04, -0.03, 0.04]) + xs[..., None] * np.array(
        [0.04, 0.02, -0.06]
    )
    versions = {
        "sepia": grey * np.array([1.07, 0.74, 0.43]),
        "toned": _print(luma, (0.25, 0.15, 0.08), (1.0, 0.96, 0.86)),
        "blue": grey * np.array([0.55, 0.75, 1.05]),
        "cast": grey + np.array([0.03, 0.0, -0.03]) + rng.normal(0, 2 / 255, (*luma.shape, 3)),
        "split": _print(luma, (0.1, 0.12, 0.22), (1.0, 0.93, 0.8)),
        "stain": grey * np.array([1.07, 0.74, 0.43]) + stain * np.array([0.08, 0.05, -0.06]),
        "grain": grey * np.array([1.0, 0.97, 0.9]) + rng.normal(0, 6 / 255, (*luma.shape, 3)),
        "drift": grey * 0.9 + 0.05 + drift,
    }
    return {name: _jpeg(np.clip(v, 0, 1) * 255) for name, v in versions.items()}


def _jpeg(rgb: np.ndarray) -> np.ndarray:
    data = io.BytesIO()
    Image.fromarray(rgb.round().astype(np.uint8)).save(data, "JPEG", quality=75)
    return np.asarray(Image.open(data).convert("RGB"))


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PHOTOS
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SystemExit(f"{folder}: no photos")
    rng = np.random.default_rng(0)
    spreads: dict[str, list[float]] = {}
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        spreads.setdefault("colour", []).append(chroma_spread(rgb))
        for name, version in black_and_white_versions(rgb, rng).items():
            spreads.setdefault(name, []).append(chroma_spread(version))
    print(f"{len(paths)} photos from {folder}; colour above a spread of {COLOUR_SPREAD}")
    print(f"{'version':10}{'median':>8}{'max':>8}{'called colour':>16}")
    for name, values in spreads.items():
        array = np.array(values)
        called = int((array > COLOUR_SPREAD).sum())
        print(f"{name:10}{np.median(array):8.2f}{array.max():8.2f}{called:>9} of {len(array)}")


if __name__ == "__main__":
    main()
