"""Join encoded segments into one video without re-encoding (ffmpeg's concat demuxer).

Segments are NUT files: NUT keeps each frame's timestamp exactly in the stream's own time base
(1/fps), and the concat list gives each segment its exact duration, so the joined video has
the same frame count and the same timestamps as a video encoded in one piece.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

from ..errors import EncodeError
from .ffmpeg import path_arg, run
from .writer import EncodeSettings, colour_args

SEGMENT_MUXER = "nut"
SEGMENT_SUFFIX = ".nut"

_MICROSECONDS = 1_000_000


def segment_durations(bounds: Sequence[int], fps: Fraction) -> list[str]:
    """Durations of the segments between consecutive frame-index ``bounds``, as the concat
    list's decimal seconds.

    Each boundary's time ``index / fps`` is rounded to the microsecond (the concat demuxer's
    unit) before the differences are taken, so rounding never accumulates along the film.

    >>> segment_durations([0, 15, 30], Fraction(30000, 1001))
    ['0.500500', '0.500500']
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if any(b <= a for a, b in pairwise(bounds)):
        raise ValueError(f"segment bounds must increase, got {list(bounds)}")
    micros = [round(Fraction(index) / fps * _MICROSECONDS) for index in bounds]
    return [_seconds(b - a) for a, b in pairwise(micros)]


def concat_list_text(entries: Sequence[tuple[str, str]]) -> str:
    """An ffconcat file listing ``(file name, duration)`` pairs, file names relative to the
    list's folder (quoted, so any character but a newline is safe)."""
    lines = ["ffconcat version 1.0"]
    for name, duration in entries:
        if "\n" in name or "\r" in name:
            raise ValueError(f"a file name in a concat list cannot hold a newline: {name!r}")
        quoted = name.replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {duration}"]
    return "\n".join(lines) + "\n"


def concat_command(
    list_path: str | Path, out_path: str | Path, settings: EncodeSettings
) -> list[str]:
    """ffmpeg call that stream-copies the listed segments into one video-only Matroska file,
    tagged with the settings' colour range and tags (NUT does not store them)."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"]
    cmd += ["-f", "concat", "-safe", "0", "-i", path_arg(list_path), "-map", "0:v", "-c", "copy"]
    return [*cmd, *colour_args(settings), "-f", "matroska", path_arg(out_path)]


def concat(list_path: Path, out_path: Path, settings: EncodeSettings) -> None:
    """Run :func:`concat_command`.

    Raises:
        EncodeError: ffmpeg failed (its stderr is kept in the error).
    """
    command = concat_command(list_path, out_path, settings)
    run(command, EncodeError, what="joining segments", writes=out_path)


def _seconds(micros: int) -> str:
    return f"{micros // _MICROSECONDS}.{micros % _MICROSECONDS:06d}"
