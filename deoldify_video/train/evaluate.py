"""Photo evaluation: colorize the greyscale of colour photos and score the result.

Each photo's true luminance is kept at full resolution; only the chroma comes from the network
(run at the policy's render size and upsampled), exactly as video frames are colorized. The
scores are compared with a "grey" baseline (the luminance alone, zero chroma).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..color import rgb_to_ycbcr
from ..errors import UsageError
from ..images import colorize_float
from ..inference import Colorizer
from ..metrics import colorfulness, mean_ciede2000_rgb, psnr
from ..nets.registry import ModelSpec
from ..types import ProgressCallback, ProgressEvent
from .data import list_images, load_image

logger = logging.getLogger(__name__)

THUMB_HEIGHT = 160


@dataclass(frozen=True)
class ImageScores:
    """Scores of one photo (sRGB compared at the photo's evaluated size).

    Attributes:
        name: file name of the photo.
        ciede2000, psnr, colorfulness: of the colorized photo against the truth.
        grey_ciede2000, grey_psnr: of the grey baseline against the truth.
        truth_colorfulness: colorfulness of the original photo.
        source: where the photo comes from (a photo set manifest's source), or "".
    """

    name: str
    ciede2000: float
    psnr: float
    colorfulness: float
    grey_ciede2000: float
    grey_psnr: float
    truth_colorfulness: float
    source: str = ""


_MEAN_FIELDS = (
    "ciede2000",
    "psnr",
    "colorfulness",
    "grey_ciede2000",
    "grey_psnr",
    "truth_colorfulness",
)


@dataclass(frozen=True)
class EvalReport:
    """Scores of a photo set.

    Attributes:
        images: per-photo scores, in input order.
        thumbnails: per photo, ``(grey, ours, truth)`` uint8 RGB arrays ``(160, w, 3)``.
    """

    images: tuple[ImageScores, ...]
    thumbnails: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] = field(
        default=(), repr=False
    )

    def mean(self, source: str | None = None) -> dict[str, float]:
        """Mean of every score over the photos (keys as in :class:`ImageScores`), or over the
        photos of one ``source``."""
        images = [s for s in self.images if source is None or s.source == source]
        return {key: float(np.mean([getattr(s, key) for s in images])) for key in _MEAN_FIELDS}

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary: the means, the colorfulness ratio, the means of each source
        (when the photos have one) and every photo's scores."""
        mean = self.mean()
        summary: dict[str, object] = {
            "count": len(self.images),
            "mean": mean,
            "colorfulness_ratio": mean["colorfulness"] / max(mean["truth_colorfulness"], 1e-9),
        }
        sources = sorted({s.source for s in self.images if s.source})
        if sources:
            summary["by_source"] = {
                name: {
                    "count": sum(s.source == name for s in self.images),
                    "mean": self.mean(name),
                }
                for name in sources
            }
        summary["images"] = [vars(s) for s in self.images]
        return summary


def thumbnail(rgb: np.ndarray, height: int = THUMB_HEIGHT) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` float sRGB in ``[0, 1]`` resized to ``height`` rows (the aspect
    ratio kept), as uint8 ``(height, w, 3)``."""
    scale = height / rgb.shape[0]
    size = (max(1, round(rgb.shape[1] * scale)), height)
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return (np.clip(small, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def evaluate_images(
    model: nn.Module,
    spec: ModelSpec,
    images: Path | Sequence[Path],
    device: str | torch.device = "cpu",
    render_factor: int | None = None,
    max_side: int | None = None,
    sources: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> EvalReport:
    """Colorize the greyscale of colour photos and score them against the originals.

    Args:
        model: the network (put in eval mode here).
        spec: its registry record (for the input policy).
        images: a folder of photos, a ``.txt`` list of them, or the paths themselves.
        device: where the network runs.
        render_factor: render size in units of 16 px (default: the policy's).
        max_side: downscale the photos to this long side first (None: full size).
        sources: where each photo comes from (reported per source), one per photo.
        progress: receives ``ProgressEvent("evaluate", photos_done, photos, name)`` after
            each photo.

    Returns:
        The scores and ``(grey, ours, truth)`` thumbnails of every photo.
    """
    paths = list_images(images) if isinstance(images, Path) else list(images)
    if not paths:
        raise UsageError("no images to evaluate")
    if sources is not None and len(sources) != len(paths):
        raise ValueError(f"{len(sources)} sources given for {len(paths)} photos")
    colorizer = Colorizer(model, spec, device, render_factor, batch_size=1)
    scores: list[ImageScores] = []
    thumbs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for i, path in enumerate(paths):
        truth, _ = load_image(path, max_side)
        ours = colorize_float(truth, colorizer)
        luma = rgb_to_ycbcr(torch.from_numpy(np.ascontiguousarray(truth.transpose(2, 0, 1))))[0]
        grey = np.repeat(luma.numpy()[:, :, None], 3, axis=2)
        scores.append(
            ImageScores(
                name=path.name,
                ciede2000=mean_ciede2000_rgb(ours, truth),
                psnr=psnr(ours, truth),
                colorfulness=colorfulness(ours),
                grey_ciede2000=mean_ciede2000_rgb(grey, truth),
                grey_psnr=psnr(grey, truth),
                truth_colorfulness=colorfulness(truth),
                source=sources[i] if sources is not None else "",
            )
        )
        thumbs.append((thumbnail(grey), thumbnail(ours), thumbnail(truth)))
        logger.debug("evaluated %s: %s", path.name, scores[-1])
        if progress is not None:
            progress(ProgressEvent("evaluate", i + 1, len(paths), path.name))
    return EvalReport(images=tuple(scores), thumbnails=tuple(thumbs))


Triplet = tuple[np.ndarray, np.ndarray, np.ndarray]


def contact_sheet(triplets: Sequence[Triplet], columns: int = 2, gap: int = 4) -> np.ndarray:
    """Lay out ``(grey, ours, truth)`` thumbnails (such as an :class:`EvalReport`'s) as a
    contact sheet: ``grey | ours | truth`` per photo, ``columns`` photos per row.

    Args:
        triplets: uint8 RGB thumbnails ``(h, w, 3)`` of one height.
        columns: photos (triplets) per row of the sheet.
        gap: white pixels between the images.

    Returns:
        ``(H, W, 3)`` uint8 RGB image.
    """
    rows = [triplets[start : start + columns] for start in range(0, len(triplets), columns)]
    return triplet_grid(rows, gap)


def triplet_grid(rows: Sequence[Sequence[Triplet]], gap: int = 4) -> np.ndarray:
    """Lay out rows of ``(grey, ours, truth)`` thumbnails: each triplet side by side with
    ``gap`` white pixels between its pictures and ``4 * gap`` between triplets; rows are
    ``2 * gap`` apart, and a short row is filled with white.

    Args:
        rows: per row, triplets of uint8 RGB thumbnails ``(h, w, 3)`` of one height.
        gap: white pixels between the images.

    Returns:
        ``(H, W, 3)`` uint8 RGB image.

    >>> cell = np.zeros((8, 10, 3), np.uint8)
    >>> triplet_grid([[(cell, cell, cell)] * 2, [(cell, cell, cell)]], gap=1).shape
    (18, 68, 3)
    """
    if not any(rows):
        raise UsageError("no thumbnails to lay out")
    triplets = [[np.concatenate(_spaced(t, gap, axis=1), axis=1) for t in row] for row in rows]
    cell_w = max(t.shape[1] for row in triplets for t in row)
    columns = max(len(row) for row in triplets)
    lines = []
    for row in triplets:
        cells = [
            np.pad(t, ((0, 0), (0, cell_w - t.shape[1]), (0, 0)), constant_values=255) for t in row
        ]
        cells += [np.full_like(cells[0], 255)] * (columns - len(cells))
        lines.append(np.concatenate(_spaced(cells, gap * 4, axis=1), axis=1))
    return np.concatenate(_spaced(lines, gap * 2, axis=0), axis=0)


def _spaced(parts: Sequence[np.ndarray], gap: int, axis: int) -> list[np.ndarray]:
    """``parts`` with white spacers of ``gap`` pixels between them along ``axis``."""
    out: list[np.ndarray] = []
    for i, part in enumerate(parts):
        if i:
            shape = list(part.shape)
            shape[axis] = gap
            out.append(np.full(shape, 255, dtype=np.uint8))
        out.append(part)
    return out
