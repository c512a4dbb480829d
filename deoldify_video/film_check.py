"""The film check: colour clips turned grey, colorized through the real pipeline, scored.

For each colour clip, the grey version (its own luminance, neutral chroma; see
:mod:`deoldify_video.media.grey`) of its first frames is colorized by :func:`colorize_video`
exactly as a user's black-and-white film is (segments, temporal smoothing, encoding), and the
result is compared with the clip itself: mean CIEDE2000 to the truth (and the grey version's,
the baseline), colorfulness of ours, the truth and the grey version, PSNR, and the steadiness
scores of :func:`~deoldify_video.metrics.score_clip`. The grey and colorized clips live in a
temporary folder that is removed whatever happens.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from .color import rgb_to_ycbcr
from .colour_input import colour_frames, is_colour_video
from .errors import InternalError, UsageError
from .inference import Colorizer
from .jobs import JobOptions
from .media.grey import write_grey
from .media.probe import probe
from .metrics import clip_ciede2000, clip_colorfulness, psnr, score_clip
from .pipeline import colorize_video
from .scoring import DEFAULT_MAX_FRAMES, read_rgb_frames
from .train.evaluate import Triplet, thumbnail, triplet_grid
from .types import ProgressCallback, ProgressEvent, RenderConfig, VideoInfo

logger = logging.getLogger(__name__)

STRIP_FRAMES = 3
STRIP_HEIGHT = 120


@dataclass(frozen=True)
class FilmScores:
    """Scores of one clip, over its first ``frames`` frames (sRGB, at the clip's size).

    Attributes:
        name: the clip's file name.
        frames: frames scored.
        ciede2000, psnr: of the colorized clip against the colour original.
        grey_ciede2000, grey_psnr: of the grey version against the original (the baseline).
        colorfulness, grey_colorfulness, truth_colorfulness: mean per-frame colorfulness
            (Hasler and Suesstrunk) of the colorized clip, the grey version and the original.
        cdc, warp_error: steadiness of the colorized clip's colour (lower is steadier).
    """

    name: str
    frames: int
    ciede2000: float
    grey_ciede2000: float
    psnr: float
    grey_psnr: float
    colorfulness: float
    grey_colorfulness: float
    truth_colorfulness: float
    cdc: float
    warp_error: float


_MEAN_FIELDS = tuple(f.name for f in fields(FilmScores) if f.name not in ("name", "frames"))


@dataclass(frozen=True)
class FilmReport:
    """Scores of the clips of a film check.

    Attributes:
        films: per-clip scores, in input order.
        strips: per clip, ``(grey, ours, truth)`` uint8 RGB thumbnails ``(strip_height, w,
            3)`` of a few frames spread over the scored part.
    """

    films: tuple[FilmScores, ...]
    strips: tuple[tuple[Triplet, ...], ...] = field(default=(), repr=False)

    def mean(self) -> dict[str, float]:
        """Mean of every score over the clips (keys as in :class:`FilmScores`)."""
        return {key: float(np.mean([getattr(s, key) for s in self.films])) for key in _MEAN_FIELDS}

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary: the means, the colorfulness ratio (ours over the truth's) and
        every clip's scores."""
        mean = self.mean()
        return {
            "count": len(self.films),
            "mean": mean,
            "colorfulness_ratio": mean["colorfulness"] / max(mean["truth_colorfulness"], 1e-9),
            "films": [asdict(s) for s in self.films],
        }


def film_strip(report: FilmReport, gap: int = 4) -> np.ndarray:
    """The report's frame strip: a row per clip, each of its strip frames as
    ``grey | ours | truth`` (see :func:`~deoldify_video.train.evaluate.triplet_grid`).

    Returns:
        ``(H, W, 3)`` uint8 RGB image.
    """
    return triplet_grid(report.strips, gap)


def check_truth(info: VideoInfo) -> None:
    """Refuse a clip that cannot serve as the truth: a still, or a black-and-white clip.

    Raises:
        UsageError: fewer than two frames, or not in colour.
    """
    if info.frame_count < 2:
        raise UsageError(f"{info.path}: the film check needs a clip of at least two frames")
    coloured, sampled = colour_frames(info)
    if not is_colour_video(coloured, sampled):
        raise UsageError(
            f"{info.path}: not a colour clip ({coloured} of {sampled} sampled frames are in "
            "colour); the film check turns colour clips grey and compares with them"
        )


def strip_indices(count: int, frames: int = STRIP_FRAMES) -> list[int]:
    """Indices of ``frames`` frames spread over ``count`` (the middles of equal parts).

    >>> strip_indices(24, 3), strip_indices(2, 3)
    ([4, 12, 20], [0, 1])
    """
    return sorted({int((i + 0.5) * count / frames) for i in range(frames)})


def film_check(
    clips: Sequence[str | Path],
    colorizer: Colorizer,
    config: RenderConfig | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    strip_frames: int = STRIP_FRAMES,
    strip_height: int = STRIP_HEIGHT,
    progress: ProgressCallback | None = None,
) -> FilmReport:
    """Turn colour clips grey, colorize them with ``colorizer`` and score them against the
    originals.

    Args:
        clips: colour video files (each checked with :func:`check_truth` before any work).
        colorizer: the model that colorizes.
        config: how the grey clips are colorized and encoded (default: as ``colorize`` does,
            temporal smoothing on).
        max_frames: frames of each clip to colorize and score, from its first (they are held
            in memory while scored).
        strip_frames: frames per clip in the report's strips.
        strip_height: the strips' thumbnail height in pixels.
        progress: receives the pipeline's ``colorize`` and ``mux`` events, and
            ``ProgressEvent("score", frames_done, frames, name)`` while a clip is scored.

    Raises:
        UsageError: a clip that is not a video, a still or a black-and-white clip,
            ``max_frames`` below 2.
    """
    if max_frames < 2:
        raise UsageError(f"--max-frames must be at least 2, got {max_frames}")
    if strip_frames < 1 or strip_height < 8:
        raise UsageError(
            f"a frame strip needs at least 1 frame per clip and 8 pixels of height, got "
            f"{strip_frames} frames of {strip_height} pixels"
        )
    if not clips:
        raise UsageError("no clips to check")
    infos = [probe(clip) for clip in clips]
    for info in infos:
        check_truth(info)
    films: list[FilmScores] = []
    strips: list[tuple[Triplet, ...]] = []
    with tempfile.TemporaryDirectory(prefix="deoldify-film-check-") as folder:
        for i, info in enumerate(infos):
            work = Path(folder) / f"{i}"
            work.mkdir()
            scores, strip = _check_one(
                info,
                colorizer,
                config or RenderConfig(),
                max_frames,
                (strip_frames, strip_height),
                work,
                progress,
            )
            films.append(scores)
            strips.append(strip)
            logger.info("film check of %s: %s", info.path, scores)
    return FilmReport(tuple(films), tuple(strips))


def _check_one(
    info: VideoInfo,
    colorizer: Colorizer,
    config: RenderConfig,
    max_frames: int,
    strip: tuple[int, int],
    work: Path,
    progress: ProgressCallback | None,
) -> tuple[FilmScores, tuple[Triplet, ...]]:
    """Grey version, colorization, scores and ``strip = (frames, height)`` thumbnails of one
    clip, its files in ``work``."""
    count = min(info.frame_count, max_frames)
    grey_path, ours_path = work / "grey.mkv", work / "colorized.mkv"
    write_grey(info, grey_path, count)
    colorize_video(
        grey_path,
        ours_path,
        colorizer,
        config,
        progress=progress,
        options=JobOptions(job_dir=work / "job"),
    )
    grey_info, ours_info = probe(grey_path), probe(ours_path)
    if (grey_info.frame_count, ours_info.frame_count) != (count, count):
        raise InternalError(
            f"{info.path}: {count} frames turned grey, {grey_info.frame_count} found, "
            f"{ours_info.frame_count} colorized"
        )
    name = Path(info.path).name
    # decoding (3N), CDC (N), warp error (N - 1), CIEDE2000 of ours and of grey (2N)
    steps = 7 * count - 1
    done = [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(ProgressEvent("score", done[0], steps, name))

    if progress is not None:
        progress(ProgressEvent("score", 0, steps, name))
    truth = read_rgb_frames(info, count, step)
    grey = read_rgb_frames(grey_info, count, step)
    ours = read_rgb_frames(ours_info, count, step)
    luma = rgb_to_ycbcr(torch.from_numpy(grey).permute(0, 3, 1, 2))[:, 0].numpy()
    clip = score_clip(luma, ours, truth, step)
    assert clip.ciede2000 is not None and clip.psnr is not None
    scores = FilmScores(
        name=name,
        frames=count,
        ciede2000=clip.ciede2000,
        grey_ciede2000=clip_ciede2000(grey, truth, step),
        psnr=clip.psnr,
        grey_psnr=psnr(grey, truth),
        colorfulness=clip_colorfulness(ours),
        grey_colorfulness=clip_colorfulness(grey),
        truth_colorfulness=clip_colorfulness(truth),
        cdc=clip.cdc,
        warp_error=clip.warp_error,
    )
    frames, height = strip
    thumbnails = tuple(
        (thumbnail(grey[j], height), thumbnail(ours[j], height), thumbnail(truth[j], height))
        for j in strip_indices(count, frames)
    )
    return scores, thumbnails
