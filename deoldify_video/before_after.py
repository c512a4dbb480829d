"""``--compare``: a before/after video beside the colour output, made from the encoded colour
video and the source (one more encode, no second pass through the model)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from . import atomic, labels
from .errors import InternalError, UsageError
from .excerpt import Excerpt
from .media import compare
from .media.mux import muxer_for
from .media.probe import frame_times
from .media.writer import EncodeSettings
from .types import VideoInfo

SUFFIX = "_compare"
LABELS = ("original", "colorized")


def compare_path(output: Path) -> Path:
    """``OUTPUT_compare.EXT`` beside the output."""
    return output.with_name(f"{output.stem}{SUFFIX}{output.suffix}")


def check_compare(mode: str, output: Path, numbered_frames: bool, overwrite: bool) -> None:
    """Refuse a before/after video that cannot be written, before any work.

    Raises:
        UsageError: an unknown mode, numbered-frame output, or a before/after file that exists
            (without ``overwrite``).
    """
    if mode not in compare.MODES:
        raise UsageError(f"--compare {mode}: use {' or '.join(compare.MODES)}")
    if numbered_frames:
        raise UsageError(f"{output}: --compare needs a video output, not numbered frames")
    path = compare_path(output)
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: already exists (pass --overwrite to replace it)")


def write_compare(
    colour: Path,
    output: Path,
    info: VideoInfo,
    excerpt: Excerpt | None,
    mode: str,
    settings: EncodeSettings,
    frames: int,
    work_dir: Path,
) -> Path:
    """Write the before/after video of the colour video ``colour`` (with its audio) as
    :func:`compare_path` of ``output``, through a ``.part`` file; returns its path.

    Args:
        info: the source; ``excerpt``: the part of it that ``colour`` holds, or None.
        mode: ``"side"`` or ``"split"``.
        settings: the colour video's encoder settings.
        frames: the frames ``colour`` holds.
        work_dir: a folder for the label pictures (the job folder).

    Raises:
        EncodeError: ffmpeg failed; InternalError: the result lacks frames.
    """
    target = compare_path(output)
    size = labels.text_size_for(settings.height)
    pictures = [labels.label(text, size) for text in LABELS]
    files = [atomic.part_path(work_dir / f"video.label-{text}.png") for text in LABELS]
    try:
        with atomic.writing(target) as part:
            for picture, file in zip(pictures, files, strict=True):
                Image.fromarray(picture).save(file, format="PNG")
            marks = compare.Labels(files[0], files[1], pictures[1].shape[1], max(2, size // 2))
            start = frame_times(colour, 0)[0]
            seek = excerpt.seek if excerpt is not None else None
            command = compare.compare_command(
                colour, start, frames, info, seek, mode, marks, settings, part, muxer_for(target)
            )
            compare.write_compare(command, part)
            written = len(frame_times(part, 0))
            if written != frames:
                raise InternalError(f"{target}: {written} frames written instead of {frames}")
    finally:
        for file in files:
            file.unlink(missing_ok=True)
    return target
