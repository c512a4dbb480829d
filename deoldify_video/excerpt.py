"""Excerpts: a span of a video, asked for by time, turned into exact frames.

The excerpt holds the frames whose presentation times fall in the span: the first is the frame
at or after its start, and every frame the source holds before its end follows. The frames are
found in the packets' timestamps (a demuxing pass, no decoding), so variable frame rates and
B-frames are counted as they are, and the decoder seeks close to the first one (see
:func:`~deoldify_video.jobs.segment_work`): an excerpt late in a long film costs no decoding of
what comes before it.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import UsageError
from .timecode import TimeSpan, format_time
from .types import Segment, VideoInfo

# ffprobe prints times to the microsecond: closer than this is the same time.
_SAME_TIME = 0.5e-6


@dataclass(frozen=True)
class Excerpt:
    """Frames ``[first, first + count)`` of a video.

    Attributes:
        first: the index of the excerpt's first frame in the source.
        count: how many frames the excerpt holds.
        start: the first frame's time in seconds from the start of the file (where the other
            streams are cut).
        duration: seconds from the first frame's time to the end of the last frame (the next
            frame's time, or the end of the video).
        seek: where a decoder seeks to start exactly at the first frame (halfway between it
            and the frame before, so that no rounding of either time adds or drops a frame),
            or None to decode from the start.
    """

    first: int
    count: int
    start: float
    duration: float
    seek: float | None

    def record(self) -> str:
        """How the manifest records the excerpt: a job of another excerpt is another job."""
        last = self.first + self.count - 1
        return f"frames {self.first}-{last} (from {format_time(self.start)})"


def shifted(segment: Segment, first: int) -> Segment:
    """A segment of an excerpt (frames counted from the excerpt's first) in the frame indices
    of the source, whose frame ``first`` starts the excerpt."""
    return dataclasses.replace(segment, start=segment.start + first, end=segment.end + first)


def plan_excerpt(info: VideoInfo, times: Sequence[float], span: TimeSpan) -> Excerpt:
    """The frames of ``info`` in ``span``.

    Args:
        info: the probed source.
        times: the sorted presentation time in seconds of every frame (as the packets give
            them: from the file's own clock, which starts at ``info.format_start_time``).
        span: the part asked for, in seconds from the start of the file.

    Raises:
        UsageError: the span starts or ends past the end of the video, or holds no frame.
    """
    if len(times) != info.frame_count or not times:
        raise ValueError(f"{len(times)} frame times for {info.frame_count} frames")
    offsets = [t - info.format_start_time for t in times]
    end_of_video = offsets[-1] + float(1 / info.fps)  # the last frame lasts one nominal frame
    length = format_time(end_of_video)
    if span.start >= end_of_video - _SAME_TIME:
        raise UsageError(
            f"{info.path}: --start {format_time(span.start)} is past the end of the video "
            f"({length})"
        )
    if span.end is not None and span.end > end_of_video + _SAME_TIME:
        raise UsageError(
            f"{info.path}: the excerpt ends at {format_time(span.end)}, past the end of the "
            f"video ({length})"
        )
    first = frame_at(info, times, span.start)
    stop = len(offsets) if span.end is None else frame_at(info, times, span.end)
    if stop <= first:
        raise UsageError(
            f"{info.path}: no frame starts between {format_time(span.start)} and "
            f"{format_time(span.end or end_of_video)}"
        )
    until = offsets[stop] if stop < len(offsets) else end_of_video
    seek = seek_time(info, times, first)
    return Excerpt(first, stop - first, offsets[first], until - offsets[first], seek)


def frame_at(info: VideoInfo, times: Sequence[float], time: float) -> int:
    """The index of the first frame at or after ``time`` (seconds from the start of the file;
    ``len(times)`` when none is).

    Args:
        times: the sorted presentation time of every frame, on the file's own clock.
    """
    return bisect.bisect_left(times, info.format_start_time + time - _SAME_TIME)


def seek_time(info: VideoInfo, times: Sequence[float], index: int) -> float | None:
    """Where a decoder seeks (``-ss``, seconds from the start of the file) to start exactly at
    frame ``index``: halfway between it and the frame before, so that no rounding of either
    time adds or drops a frame; None for the first frame (decode from the start)."""
    if index == 0:
        return None
    return (times[index - 1] + times[index]) / 2 - info.format_start_time + info.decode_delay
