"""Score colorized videos: decode them with :mod:`media`, measure them with :mod:`metrics`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .color import rgb_to_ycbcr
from .errors import UsageError
from .media.probe import probe
from .media.reader import FrameReader
from .metrics import ClipScores, score_clip
from .types import ProgressCallback, ProgressEvent, VideoInfo

DEFAULT_MAX_FRAMES = 240
_BATCH = 16


def read_rgb_frames(
    info: VideoInfo, count: int, on_frame: Callable[[], None] | None = None
) -> np.ndarray:
    """The first ``count`` frames of a probed video as ``(N, H, W, 3)`` float32 RGB in
    ``[0, 1]``; ``on_frame`` is called after each frame."""
    frames = []
    with FrameReader(info, count=count, rgb=True) as reader:
        for batch in reader.batches(_BATCH):
            frames.append(batch.astype(np.float32) / 255.0)
            if on_frame is not None:
                for _ in range(len(batch)):
                    on_frame()
    return np.concatenate(frames)


def score_video(
    colorized: str | Path,
    truth: str | Path | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    progress: ProgressCallback | None = None,
) -> tuple[ClipScores, int]:
    """Temporal steadiness (CDC, warp error) of a colorized video, and its CIEDE2000 and PSNR
    against the colour original when given.

    Only the first ``max_frames`` frames are scored (they are held in memory).

    Args:
        progress: receives ``ProgressEvent("score", steps_done, steps)``: a step is a frame
            decoded or a frame's share of a measure.

    Returns:
        (the scores, the number of frames scored).

    Raises:
        UsageError: fewer than two frames, or videos of different sizes or lengths.
    """
    if max_frames < 2:
        raise UsageError(f"--max-frames must be at least 2, got {max_frames}")
    ours_info = probe(colorized)
    count = min(ours_info.frame_count, max_frames)
    if count < 2:
        raise UsageError(f"{colorized}: scoring needs at least two frames")
    truth_info = probe(truth) if truth is not None else None
    if truth_info is not None:
        theirs = (min(truth_info.frame_count, max_frames), *truth_info.display_size[::-1])
        if theirs != (count, *ours_info.display_size[::-1]):
            raise UsageError(
                f"{truth} and {colorized} differ in size or length: "
                f"{theirs} vs {(count, *ours_info.display_size[::-1])} (frames, height, width)"
            )
    # decoding (N per video), CDC (N), warp error (N - 1), and CIEDE2000 (N) with a truth
    videos = 1 if truth_info is None else 2
    steps = videos * count + count + (count - 1) + (videos - 1) * count
    done = [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(ProgressEvent("score", done[0], steps))

    if progress is not None:
        progress(ProgressEvent("score", 0, steps))
    ours = read_rgb_frames(ours_info, count, step)
    reference = read_rgb_frames(truth_info, count, step) if truth_info is not None else None
    luma = rgb_to_ycbcr(torch.from_numpy(ours).permute(0, 3, 1, 2))[:, 0].numpy()
    return score_clip(luma, ours, reference, step), len(ours)
