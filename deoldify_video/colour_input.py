"""Refuse colour inputs: colorizing a colour film or photo throws its own colours away.

A video is judged on a few frames spread over its length, each reached by seeking (a handful
of short ffmpeg runs, whatever the film's length), at a key frame where one is near so that
one picture is decoded instead of a run of them; a photo on itself. Tinted and toned
black-and-white counts as black-and-white (see :mod:`deoldify_video.monochrome`).
"""

from __future__ import annotations

import bisect
import concurrent.futures
import functools
import logging
from pathlib import Path

import numpy as np

from .errors import DecodeError, UsageError
from .media.reader import FrameReader
from .monochrome import is_colour
from .types import VideoInfo

log = logging.getLogger(__name__)

SAMPLED_FRAMES = 5


def sample_times(info: VideoInfo, count: int = SAMPLED_FRAMES) -> list[float]:
    """Seek positions, in seconds from the start of the file, of one frame in each of
    ``count`` equal parts of the video: the key frame nearest the part's middle when the part
    holds one (a seek there decodes that picture alone), else the middle itself (10 %, 30 %,
    ... 90 % for 5; decoded from the key frame before it). Empty when the video is too short
    or its duration unknown (then its first frames are read instead).

    >>> import dataclasses
    >>> from fractions import Fraction
    >>> info = VideoInfo("f.mp4", 64, 48, Fraction(25), 250, 10.0, False, 0, Fraction(1),
    ...     "yuv420p", 8, "tv", "", "", "", "h264", 0, key_times=(0.0, 3.0, 6.4))
    >>> sample_times(info)
    [0.0, 3.0, 5.0, 6.4, 9.0]
    """
    if info.duration <= 0 or info.frame_count < 2 * count:
        return []
    start = info.start_time - info.format_start_time
    keys = [t - info.format_start_time for t in info.key_times] if not info.decode_delay else []
    part = info.duration / count
    times = []
    for i in range(count):
        low, middle = start + part * i, start + part * (i + 0.5)
        inside = keys[bisect.bisect_left(keys, low) : bisect.bisect_left(keys, low + part)]
        times.append(min(inside, key=lambda t: abs(t - middle)) if inside else middle)
    return times


def sample_frames(info: VideoInfo, count: int = SAMPLED_FRAMES) -> list[np.ndarray]:
    """Up to ``count`` frames of a video as ``(H, W, 3)`` uint8 RGB, spread over its length.

    A frame that cannot be decoded is left out (the colorization itself reports a damaged
    file); fewer frames come back then.
    """
    times = sample_times(info, count)
    if not times:
        with FrameReader(info, None, min(count, info.frame_count), rgb=True) as reader:
            try:
                return [frame for batch in reader.batches(count) for frame in batch]
            except DecodeError as exc:
                log.debug("%s: frames for the colour check: %s", info.path, exc)
                return []
    # one short ffmpeg run per position, side by side: most of each is start-up and seeking
    with concurrent.futures.ThreadPoolExecutor(len(times), "colour-check") as pool:
        found = list(pool.map(functools.partial(_frame_at, info), times))
    return [frame for frame in found if frame is not None]


def _frame_at(info: VideoInfo, time: float) -> np.ndarray | None:
    """The frame a seek to ``time`` reaches, ``(H, W, 3)`` uint8 RGB; None when it cannot be
    decoded."""
    try:
        with FrameReader(info, time, 1, rgb=True) as reader:
            return next(reader.batches(1))[0]
    except (DecodeError, StopIteration) as exc:
        log.debug("%s: no frame at %.3f s for the colour check: %s", info.path, time, exc)
        return None


def colour_frames(info: VideoInfo) -> tuple[int, int]:
    """How many of a video's sampled frames (see :func:`sample_frames`) are in colour:
    ``(coloured, sampled)``."""
    frames = sample_frames(info)
    coloured = sum(is_colour(frame) for frame in frames)
    log.info("%s: %d of %d sampled frames in colour", info.path, coloured, len(frames))
    return coloured, len(frames)


def is_colour_video(coloured: int, sampled: int) -> bool:
    """A video is in colour when at least half of its sampled frames are (and one was read).

    >>> is_colour_video(3, 5), is_colour_video(2, 5), is_colour_video(0, 0)
    (True, False, False)
    """
    return sampled > 0 and 2 * coloured >= sampled


def check_video(info: VideoInfo) -> None:
    """Refuse a colour video: one whose sampled frames are colour at least half the time.

    Raises:
        UsageError: the video is in colour (the message names ``--recolor``).
    """
    coloured, sampled = colour_frames(info)
    if is_colour_video(coloured, sampled):
        raise UsageError(
            f"{info.path}: a colour video ({coloured} of {sampled} sampled frames are in "
            "colour); colorizing would replace its colours. Pass --recolor to do it anyway"
        )


def check_photo(path: str | Path, rgb: np.ndarray) -> None:
    """Refuse a colour photo (``rgb``: ``(H, W, 3)`` uint8, as read from ``path``).

    Raises:
        UsageError: the photo is in colour (the message names ``--recolor``).
    """
    if is_colour(rgb):
        raise UsageError(
            f"{path}: a colour photo; colorizing would replace its colours. Pass --recolor "
            "to do it anyway"
        )
