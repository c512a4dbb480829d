"""A preview sheet: a few frames of a film, colorized with each of several settings.

The frames are reached by seeking, so only they (and a few candidates) are decoded, however
long the film. Without times given, they are spread over the film, one per scene where the
film has enough scenes, and never a black or blank frame. Each frame is colorized as the full
run colorizes it with the smoothing off (the same model input, chroma and luminance), so the
sheet shows what a run with each setting gives.

The sheet has a row per frame, its timecode on the grey original in the first column, then a
column per setting (model and render factor), labelled at the top.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import atomic, color, labels
from .errors import UsageError
from .excerpt import frame_at, seek_time
from .images import colorize_rgb, read_image
from .inference import Colorizer, check_render_factor
from .media.probe import probe, video_frame_times
from .media.reader import FrameReader
from .pipeline import STILL_IMAGE_CODECS
from .temporal import SmoothingConfig, cut_scores
from .timecode import format_time
from .types import ProgressEvent, VideoInfo

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 6
DEFAULT_CELL_WIDTH = 320
CANDIDATES_PER_PART = 3  # frames looked at in each part of the film to find a good one
BLANK_STD = 0.03  # a frame whose luminance deviates less than this (of full scale) is blank
GAP = 4  # pixels between the pictures of the sheet
HEADER_TEXT = 14  # the least text height of the labels, in pixels
BACKGROUND = (24, 24, 24)


@dataclass(frozen=True)
class Setting:
    """One column of the sheet: a colorizer and its label (``lite rf 16``)."""

    label: str
    colorizer: Colorizer


@dataclass(frozen=True)
class Row:
    """One frame of the sheet.

    Attributes:
        label: its timecode (``00:01:02.040``), or a photo's file name.
        grey: the original, ``(H, W, 3)`` uint8 grey (its luminance).
        colours: per setting, ``(H, W, 3)`` uint8 RGB.
        aspect: display width over height of the picture (its pixel aspect applied).
    """

    label: str
    grey: np.ndarray
    colours: list[np.ndarray]
    aspect: float


def default_sheet_path(input_path: str | Path) -> Path:
    """``INPUT_preview.png`` beside the input."""
    path = Path(input_path)
    return path.with_name(f"{path.stem}_preview.png")


def settings_for(
    colorizers: Sequence[tuple[str, Colorizer]], render_factors: Sequence[int] | None
) -> list[Setting]:
    """A column per model (as loaded, named) and render factor; each model at its own default
    when ``render_factors`` is None. The network is shared by its columns.

    Raises:
        UsageError: a render factor out of range.
    """
    settings = []
    for name, colorizer in colorizers:
        for factor in render_factors or [colorizer.render_factor]:
            check_render_factor(factor)
            column = Colorizer(
                colorizer.model, colorizer.spec, colorizer.device, factor, 1, colorizer.precision
            )
            settings.append(Setting(f"{name} rf {factor}", column))
    return settings


def is_still(info: VideoInfo) -> bool:
    """The probed input is a photo (one picture of an image codec), not a video."""
    return info.frame_count == 1 and info.codec in STILL_IMAGE_CODECS


# --------------------------------------------------------------------------- choosing frames


def frames_at(info: VideoInfo, times: Sequence[float], seconds: Sequence[float]) -> list[int]:
    """The frame at or after each of ``seconds`` (from the start of the file).

    Raises:
        UsageError: a time past the video's last frame.
    """
    chosen = []
    for second in seconds:
        index = frame_at(info, times, second)
        if index >= len(times):
            last = format_time(times[-1] - info.format_start_time)
            raise UsageError(
                f"{info.path}: --at {format_time(second)} is past the last frame ({last})"
            )
        chosen.append(index)
    return chosen


def candidate_frames(frame_count: int, parts: int) -> list[list[int]]:
    """For each of ``parts`` equal parts of a film, the frames looked at (a quarter, half and
    three quarters into the part), without repeats.

    >>> candidate_frames(100, 2)
    [[12, 25, 37], [62, 75, 87]]
    """
    seen: set[int] = set()
    result = []
    for part in range(parts):
        picks = []
        for k in range(1, CANDIDATES_PER_PART + 1):
            index = int(frame_count * (part + k / (CANDIDATES_PER_PART + 1)) / parts)
            if index not in seen:
                seen.add(index)
                picks.append(index)
        result.append(picks)
    return result


def is_blank(luma: torch.Tensor) -> bool:
    """A black, white or flat frame (``(1, 1, H, W)`` luminance in ``[0, 1]``)."""
    return float(luma.std()) < BLANK_STD


def choose_frames(
    lumas: dict[int, torch.Tensor], parts: list[list[int]], config: SmoothingConfig
) -> list[int]:
    """One frame per part: the first candidate that is not blank and is of a scene none of
    the frames chosen before shows (judged as the smoothing judges cuts); where every
    candidate shows a scene already chosen, the one least like them. A part whose candidates
    are all blank gives none.

    Args:
        lumas: each candidate's luminance ``(1, 1, h, w)`` in ``[0, 1]`` (small is enough).
        parts: the candidates of each part (see :func:`candidate_frames`).
    """
    chosen: list[int] = []
    for candidates in parts:
        usable = [i for i in candidates if not is_blank(lumas[i])]
        if not usable:
            continue

        def likeness(index: int) -> float:
            scores = [float(cut_scores(lumas[c], lumas[index], config)[0]) for c in chosen]
            return max(scores, default=-1.0)

        new_scene = [i for i in usable if likeness(i) < config.cut_threshold]
        chosen.append(new_scene[0] if new_scene else min(usable, key=likeness))
    return sorted(chosen)


# --------------------------------------------------------------------------- colour


def grey_rgb(plane: np.ndarray, depth: int, pc_range: bool) -> np.ndarray:
    """A decoded Y plane ``(H, W)`` as grey RGB ``(H, W, 3)`` uint8."""
    unit = color.luma_to_unit(plane[None], depth, pc_range)[0, 0]
    grey = (unit * 255.0).round().to(torch.uint8).numpy()
    return np.repeat(grey[..., None], 3, axis=2)


def colorize_plane(
    plane: np.ndarray, colorizer: Colorizer, depth: int, pc_range: bool, matrix: str
) -> np.ndarray:
    """Colorize one decoded Y plane as the video pipeline does with the smoothing off: the
    model's chroma at the render size, in the output's matrix, upsampled bilinearly to the
    full size, around the source's own luminance.

    Args:
        plane: ``(H, W)`` uint8, or uint16 holding ``depth``-bit samples.
        matrix: the colour matrix of the output (``bt709`` for an HD source).

    Returns:
        ``(H, W, 3)`` uint8 RGB (8-bit, full range, in ``matrix``'s primaries).
    """
    small, chroma = colorizer.colorize_planes(plane[None], depth, pc_range)
    chroma = color.convert_chroma(small.cpu(), chroma.cpu(), matrix)
    height, width = plane.shape
    uv = color.chroma_to_planes(chroma, (height, width), depth, pc_range)
    planes = np.concatenate([plane[None, None], uv], axis=1)
    rgb = color.planes_to_rgb(planes, depth, pc_range, matrix)[0]
    return rgb if depth == 8 else (rgb >> (depth - 8)).astype(np.uint8)


def read_plane(info: VideoInfo, times: Sequence[float], index: int) -> np.ndarray:
    """Frame ``index``'s Y plane ``(H, W)``, decoded from a seek."""
    with FrameReader(info, seek_time(info, times, index), 1) as reader:
        return next(reader.batches(1))[0]


# --------------------------------------------------------------------------- the sheet


def video_rows(
    info: VideoInfo,
    settings: Sequence[Setting],
    frames: int | None = None,
    at: Sequence[float] | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> list[Row]:
    """The sheet's rows for a video: the frames at the times ``at``, or ``frames`` frames
    (default :data:`DEFAULT_FRAMES`) chosen by :func:`choose_frames`."""
    report = progress or (lambda event: None)
    times = video_frame_times(info)
    depth, pc_range = info.plane_depth, info.full_range
    matrix = "bt601" if info.is_rgb_source else color.matrix_for(info.color_space)
    planes: dict[int, np.ndarray] = {}
    if at is not None:
        chosen = frames_at(info, times, at)
    else:
        count = DEFAULT_FRAMES if frames is None else frames
        if count < 1:
            raise UsageError(f"--frames must be at least 1, got {count}")
        parts = candidate_frames(len(times), min(count, len(times)))
        lumas = {}
        for index in sorted({i for part in parts for i in part}):
            planes[index] = read_plane(info, times, index)
            lumas[index] = color.luma_to_unit(planes[index][None], depth, pc_range)
        chosen = choose_frames(lumas, parts, SmoothingConfig())
        if not chosen:
            raise UsageError(f"{info.path}: every frame looked at is blank (black or flat)")
    width, height = info.display_size
    sar = float(1 / info.sar if info.rotation in (90, 270) else info.sar)
    rows = []
    total = len(chosen) * len(settings)
    for n, index in enumerate(chosen):
        plane = planes[index] if index in planes else read_plane(info, times, index)
        colours = []
        for k, setting in enumerate(settings):
            colours.append(colorize_plane(plane, setting.colorizer, depth, pc_range, matrix))
            report(ProgressEvent("preview", n * len(settings) + k + 1, total))
        label = format_time(times[index] - info.format_start_time)
        rows.append(Row(label, grey_rgb(plane, depth, pc_range), colours, width * sar / height))
    return rows


def photo_rows(path: Path, settings: Sequence[Setting]) -> list[Row]:
    """The one row of a photo: its grey version and a colorization per setting (as the
    ``image`` command colorizes it)."""
    rgb, _ = read_image(path)
    luma = color.rgb_luma(rgb).clip(0, 255).astype(np.uint8)
    grey = np.repeat(luma[..., None], 3, axis=2)
    colours = [colorize_rgb(rgb, setting.colorizer) for setting in settings]
    return [Row(path.name, grey, colours, rgb.shape[1] / rgb.shape[0])]


def render_sheet(rows: Sequence[Row], headers: Sequence[str], cell_width: int) -> np.ndarray:
    """The contact sheet ``(H, W, 3)`` uint8: a header line of ``headers`` (the first over
    the grey column), then each row's pictures at ``cell_width`` pixels wide, its label on the
    grey one."""
    if cell_width < 16:
        raise UsageError(f"--width must be at least 16 pixels, got {cell_width}")
    aspect = rows[0].aspect
    cell_height = max(1, round(cell_width / aspect))
    text = max(HEADER_TEXT, labels.text_size_for(cell_height))
    header = labels.label("Mg", text).shape[0]
    columns = len(headers)
    sheet = Image.new(
        "RGB",
        (GAP + columns * (cell_width + GAP), GAP + header + GAP + len(rows) * (cell_height + GAP)),
        BACKGROUND,
    )
    for c, title in enumerate(headers):
        box = Image.fromarray(labels.label(title, text))
        sheet.paste(box, (GAP + c * (cell_width + GAP), GAP), box)
    for r, row in enumerate(rows):
        y = GAP + header + GAP + r * (cell_height + GAP)
        for c, picture in enumerate([row.grey, *row.colours]):
            cell = Image.fromarray(picture).resize(
                (cell_width, cell_height), Image.Resampling.LANCZOS
            )
            if c == 0:
                cell = Image.fromarray(labels.draw_text(np.asarray(cell), row.label, text, 0, 0))
            sheet.paste(cell, (GAP + c * (cell_width + GAP), y))
    return np.asarray(sheet)


def write_sheet(
    input_path: str | Path,
    output_path: str | Path | None,
    settings: Sequence[Setting],
    frames: int | None = None,
    at: Sequence[float] | None = None,
    cell_width: int = DEFAULT_CELL_WIDTH,
    overwrite: bool = False,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> Path:
    """Write the preview sheet of ``input_path`` (a video or a photo) as a PNG (default
    :func:`default_sheet_path`), through a ``.part`` file; returns its path.

    Args:
        settings: the columns after the grey original (see :func:`settings_for`).
        frames, at: how many frames to choose, or the times of the frames (a video only).
        cell_width: the width of each picture on the sheet, in pixels.

    Raises:
        UsageError: the output exists (without ``overwrite``) or is not a .png, ``frames``
            and ``at`` both given, a time past the end; ProbeError: the input is not a video
            or photo.
    """
    source = Path(input_path)
    output = Path(output_path) if output_path is not None else default_sheet_path(source)
    if output.suffix.lower() != ".png":
        raise UsageError(f"{output}: the preview sheet is a .png file")
    if output.exists() and not overwrite:
        raise UsageError(f"{output}: already exists (pass --overwrite to replace it)")
    if frames is not None and at is not None:
        raise UsageError("give --frames or --at, not both")
    info = probe(source)
    if is_still(info):
        rows = photo_rows(source, settings)
    else:
        rows = video_rows(info, settings, frames, at, progress)
    sheet = render_sheet(rows, ["original", *(s.label for s in settings)], cell_width)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic.writing(output) as part:
        Image.fromarray(sheet).save(part, format="PNG", optimize=True)
    log.info("%s: %d rows, %d columns", output, len(rows), len(settings) + 1)
    return output
