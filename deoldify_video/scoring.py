"""Score colorized videos: decode them with :mod:`media`, measure them with :mod:`metrics`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .color import rgb_to_ycbcr
from .errors import UsageError
from .media.probe import probe
from .media.reader import read_all
from .metrics import ClipScores, score_clip

DEFAULT_MAX_FRAMES = 240


def read_rgb_frames(path: str | Path, max_frames: int) -> np.ndarray:
    """The first ``max_frames`` frames of a video as ``(N, H, W, 3)`` float32 RGB in ``[0, 1]``."""
    info = probe(path)
    frames = read_all(info, rgb=True, count=min(info.frame_count, max_frames))
    return frames.astype(np.float32) / 255.0


def score_video(
    colorized: str | Path, truth: str | Path | None = None, max_frames: int = DEFAULT_MAX_FRAMES
) -> tuple[ClipScores, int]:
    """Temporal steadiness (CDC, warp error) of a colorized video, and its CIEDE2000 and PSNR
    against the colour original when given.

    Only the first ``max_frames`` frames are scored (they are held in memory).

    Returns:
        (the scores, the number of frames scored).

    Raises:
        UsageError: fewer than two frames, or videos of different sizes or lengths.
    """
    if max_frames < 2:
        raise UsageError(f"--max-frames must be at least 2, got {max_frames}")
    ours = read_rgb_frames(colorized, max_frames)
    if len(ours) < 2:
        raise UsageError(f"{colorized}: scoring needs at least two frames")
    reference = None
    if truth is not None:
        reference = read_rgb_frames(truth, max_frames)
        if reference.shape != ours.shape:
            raise UsageError(
                f"{truth} and {colorized} differ in size or length: "
                f"{reference.shape[:3]} vs {ours.shape[:3]} (frames, height, width)"
            )
    luma = rgb_to_ycbcr(torch.from_numpy(ours).permute(0, 3, 1, 2))[:, 0].numpy()
    return score_clip(luma, ours, reference), len(ours)
