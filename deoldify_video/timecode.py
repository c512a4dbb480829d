"""Times as users write them (``90``, ``1:30``, ``00:01:30.500``) and as labels show them.

Standard library only: the command line parses its options with it, the preview sheet labels
its rows with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import UsageError

_CLOCK = re.compile(r"(?:(?:(\d+):)?(\d{1,2}):)?(\d+(?:\.\d*)?|\.\d+)")


def parse_time(text: str, option: str = "time") -> float:
    """Seconds from a time written as seconds (``90``, ``12.5``) or as a clock
    (``MM:SS``, ``HH:MM:SS``, with optional decimals: ``00:01:30.500``).

    >>> parse_time("00:01:30.500")
    90.5
    >>> parse_time("75")
    75.0

    Raises:
        UsageError: not a time, a negative time, or minutes or seconds of 60 or more in a
            clock; the message names ``option``.
    """
    value = text.strip()
    if value.startswith("-"):
        raise UsageError(f"{option} {text}: a time cannot be negative")
    match = _CLOCK.fullmatch(value)
    if match is None:
        raise UsageError(f"{option} {text!r}: not a time (give seconds or HH:MM:SS.mmm)")
    hours, minutes, seconds = match.groups()
    if minutes is not None and float(seconds) >= 60:
        raise UsageError(f"{option} {text}: the seconds of a clock time must be below 60")
    if hours is not None and int(minutes) >= 60:
        raise UsageError(f"{option} {text}: the minutes of a clock time must be below 60")
    total = float(seconds) + 60 * int(minutes or 0) + 3600 * int(hours or 0)
    if not math.isfinite(total):
        raise UsageError(f"{option} {text!r}: not a time")
    return total


def format_time(seconds: float) -> str:
    """``HH:MM:SS.mmm`` (milliseconds rounded), the form :func:`parse_time` reads back.

    >>> format_time(3725.0404)
    '01:02:05.040'
    """
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


@dataclass(frozen=True)
class TimeSpan:
    """A part of a video asked for by time, in seconds from the start of the file (as a player
    shows it, and as ffmpeg's ``-ss`` counts).

    Attributes:
        start: where the part begins.
        end: where it ends (exclusive), or None for the end of the video.
    """

    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end < 0):
            raise UsageError("a time cannot be negative")
        if self.end is not None and self.end <= self.start:
            raise UsageError(
                f"--end {format_time(self.end)} is not after --start {format_time(self.start)}"
            )


def span_from_options(start: str | None, duration: str | None, end: str | None) -> TimeSpan | None:
    """The span that ``--start``, ``--duration`` and ``--end`` ask for (each optional, as typed),
    or None when none is given (the whole video).

    Raises:
        UsageError: a bad time, ``--duration`` with ``--end``, a zero duration, or an end not
            after the start.
    """
    if start is None and duration is None and end is None:
        return None
    if duration is not None and end is not None:
        raise UsageError("give --duration or --end, not both")
    first = parse_time(start, "--start") if start is not None else 0.0
    last = None
    if duration is not None:
        length = parse_time(duration, "--duration")
        if length <= 0:
            raise UsageError(f"--duration {duration}: the excerpt must last more than 0 s")
        last = first + length
    elif end is not None:
        last = parse_time(end, "--end")
        if last <= first:
            raise UsageError(f"--end {end} is not after --start {start or 0}")
    return TimeSpan(first, last)
