"""The before/after video: the source and its colour version in one picture.

One ffmpeg run decodes both (the source seeking to an excerpt's first frame), lays them side
by side or cut along a vertical split line, puts a label over each half and encodes the result
with the colour video's encoder settings; the colour video's audio is copied alongside. Both
pictures are paired frame by frame from their first, and the result keeps the colour video's
timestamps, so its frames, rate and sound are the colour video's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import EncodeError
from ..types import VideoInfo
from .ffmpeg import path_arg, run
from .writer import EncodeSettings, codec_args, colour_args, yuv_pix_fmt

MODES = ("side", "split")


@dataclass(frozen=True)
class Labels:
    """Two label pictures (RGBA image files) and how wide each is, in pixels.

    Attributes:
        original, colorized: the label files.
        colorized_width: the width of the colorized label (a split picture puts it against
            the right edge).
        margin: pixels between a label and the picture's edges.
    """

    original: Path
    colorized: Path
    colorized_width: int
    margin: int


def compare_settings(settings: EncodeSettings, mode: str) -> EncodeSettings:
    """The colour video's encoder settings, for the before/after picture of ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown comparison {mode!r} (use {', '.join(MODES)})")
    width = 2 * settings.width if mode == "side" else settings.width
    return dataclasses.replace(settings, width=width, field_order="")


def compare_command(
    colour_path: str | Path,
    colour_start: float,
    frames: int,
    info: VideoInfo,
    seek: float | None,
    mode: str,
    labels: Labels,
    settings: EncodeSettings,
    out_path: str | Path,
    muxer: str,
) -> list[str]:
    """ffmpeg call writing the before/after video of ``mode`` into ``out_path``.

    Args:
        colour_path: the colour video (with the audio to copy).
        colour_start: the time of its first frame, in seconds; the result's frames keep the
            colour video's timestamps.
        frames: how many frames it holds (the result holds as many).
        info: the source.
        seek: where the source is decoded from (seconds from the start of the file, between
            the frame before the colour video's first and that first), or None for its start.
        mode: ``"side"`` (the original on the left, the colour video on the right) or
            ``"split"`` (one picture: the original's left half, the colour video's right
            half, a white split line between).
        labels: the two labels, laid over the top corners of their halves.
        settings: the colour video's encoder settings (see :func:`compare_settings`).
    """
    width, height = settings.width, settings.height
    compare = compare_settings(settings, mode)
    planes = yuv_pix_fmt("444", settings.depth)
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"]
    cmd += ["-i", path_arg(colour_path)]
    if seek is not None:
        cmd += ["-ss", f"{seek:.6f}"]
    cmd += [*info.input_options, "-i", path_arg(info.path)]
    cmd += ["-i", path_arg(labels.original), "-i", path_arg(labels.colorized)]
    graph = [
        f"[1:v:0]setpts=PTS-STARTPTS,format={planes}[before]",
        f"[0:v:0]setpts=PTS-STARTPTS,format={planes}[after]",
    ]
    if mode == "side":
        graph.append("[before][after]hstack=inputs=2:shortest=1[both]")
        right = width + labels.margin
    else:
        half = width // 2
        graph += [
            f"[before]crop=w={half}:h={height}:x=0:y=0[left]",
            f"[after]crop=w={width - half}:h={height}:x={half}:y=0[right]",
            f"[left][right]hstack=inputs=2:shortest=1,"
            f"drawbox=x={max(0, half - 1)}:y=0:w=2:h={height}:color=white:t=fill[both]",
        ]
        right = width - labels.colorized_width - labels.margin
    margin = labels.margin
    graph += [
        f"[both][2:v]overlay=x={margin}:y={margin}[one]",
        f"[one][3:v]overlay=x={right}:y={margin},setpts=PTS+{colour_start:.6f}/TB,"
        f"format={compare.output_pix_fmt}[out]",
    ]
    cmd += ["-filter_complex", ";".join(graph), "-map", "[out]", "-map", "0:a?"]
    cmd += ["-fps_mode", "passthrough", "-enc_time_base", "-1", "-frames:v", str(frames)]
    cmd += [*codec_args(compare), *colour_args(compare), "-c:a", "copy"]
    if muxer in ("mp4", "mov"):
        cmd += ["-movflags", "+faststart"]
    return [*cmd, "-f", muxer, path_arg(out_path)]


def write_compare(command: list[str], out_path: Path) -> None:
    """Run a :func:`compare_command`.

    Raises:
        EncodeError: ffmpeg failed (its stderr is kept in the error).
    """
    run(command, EncodeError, what="the before/after video", writes=out_path)
