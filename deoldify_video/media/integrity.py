"""Is a video's container whole? Truncation, a video that stops before its audio, lost data.

Pure arithmetic on what one demuxing pass found (:func:`~deoldify_video.media.probe.probe`
runs it): where the video and the audio data end, what the container states, and whether the
demuxer complained. Decoding damage inside frames is found later, by the reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .ffmpeg import last_line

# Seconds of audio past the end of the video taken as normal: encoders and muxers often leave
# a fraction of a second.
AUDIO_OVERHANG = 1.0

FLAG = "--allow-truncated"


@dataclass(frozen=True)
class Extent:
    """Where a file's data ends, against what its container states.

    Attributes:
        times: sorted presentation times in seconds of the video frames present.
        fps: the nominal frame rate.
        start: the container's start time in seconds (the times count from it).
        audio_end: where the last audio packet ends, in seconds (0.0 without audio).
        declared: the duration the container states in seconds (0.0 when unknown).
        listed: the frame count the container lists (MP4/MOV sample tables), None if none.
        demuxer_errors: what the demuxer wrote at ``-v error`` ("" for a clean read).
    """

    times: list[float]
    fps: Fraction
    start: float = 0.0
    audio_end: float = 0.0
    declared: float = 0.0
    listed: int | None = None
    demuxer_errors: str = ""

    @property
    def frames(self) -> int:
        return len(self.times)

    @property
    def video_end(self) -> float:
        """Where the video's data ends (its last frame's time plus one frame), from the start."""
        return self.times[-1] - self.start + float(1 / self.fps)


def problem(path: str, extent: Extent) -> str:
    """One line describing what is wrong with the container, "" when nothing is.

    >>> problem("film.mkv", Extent([i / 25 for i in range(76)], Fraction(25), declared=10.0,
    ...                             demuxer_errors="File ended prematurely"))
    'film.mkv: truncated: the data ends at 3.0 s of 10.0 s (76 of about 250 frames)'
    """
    e = extent
    frame = float(1 / e.fps)
    data_end = max(e.video_end, e.audio_end - e.start)
    if e.listed is not None and e.frames < e.listed:
        declared = e.declared or e.listed * frame
        return (
            f"{path}: truncated: the data ends at {e.video_end:.1f} s of {declared:.1f} s "
            f"({e.frames} of {e.listed} frames)"
        )
    if e.demuxer_errors and e.declared - data_end > frame:
        return (
            f"{path}: truncated: the data ends at {e.video_end:.1f} s of {e.declared:.1f} s "
            f"({e.frames} of about {round(e.declared * e.fps)} frames)"
        )
    audio_end = e.audio_end - e.start
    if audio_end - e.video_end > AUDIO_OVERHANG:
        return (
            f"{path}: the video ends at {e.video_end:.1f} s but the audio goes on to "
            f"{audio_end:.1f} s ({e.frames} of about {round(audio_end * e.fps)} frames)"
        )
    if e.demuxer_errors:
        return f"{path}: damaged: the demuxer reports errors ({last_line(e.demuxer_errors)})" + (
            _gaps(e)
        )
    return ""


def _gaps(extent: Extent) -> str:
    """ "; about N frames are missing between A s and B s" for the frames lost in gaps of the
    timeline, "" when there are none."""
    step = float(1 / extent.fps)
    missing, span = 0, []
    for before, after in zip(extent.times, extent.times[1:], strict=False):
        if after - before > 1.5 * step:
            missing += round((after - before) / step) - 1
            span += [before + step - extent.start, after - extent.start]
    if not missing:
        return ""
    return f"; about {missing} frames are missing between {span[0]:.1f} s and {span[-1]:.1f} s"


def refusal(message: str, frames: int) -> str:
    """The error for a damaged input: its problem and the option that colorizes it anyway."""
    return f"{message}; {FLAG} colorizes the {frames} frames that are there"


def warning(message: str, frames: int) -> str:
    """The warning when the option was given."""
    return f"{message}; colorizing the {frames} frames that are there"
