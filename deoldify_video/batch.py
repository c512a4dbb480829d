"""Many films in one run: folders expanded, each film its own resumable job, one pool of
segments for all of them (see :func:`~deoldify_video.pipeline.run_jobs`).

A film whose output exists (and whose job folder is gone) is already done and skipped, so
re-running the same command does only what is left; a bad input gets its error and the others
go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import jobs
from .errors import DeoldifyError, UsageError
from .folders import OUTPUT_STEM_SUFFIX, find_files
from .inference import Colorizer
from .jobs import JobOptions
from .media import mux as muxing
from .media.sequence import holds_frames
from .pipeline import (
    DEFAULT_CONFIG,
    ProgressCallback,
    VideoJob,
    VideoResult,
    default_output_path,
    plan_video,
    run_jobs,
)
from .segment_pool import SegmentExecutor
from .types import RenderConfig

log = logging.getLogger(__name__)

# Suffixes of the files a folder's "videos" are: containers ffmpeg reads that hold film.
VIDEO_SUFFIXES = frozenset(
    [".mkv", ".mp4", ".m4v", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".m2v", ".ts", ".m2ts",
     ".mts", ".mxf", ".wmv", ".asf", ".flv", ".ogv", ".3gp", ".dv", ".vob", ".nut", ".y4m"]
)  # fmt: skip

FailureCallback = Callable[[Path, DeoldifyError], None]


@dataclass(frozen=True)
class BatchItem:
    """One film of a batch: its input (a video file or an image sequence) and its output."""

    source: Path
    output: Path


@dataclass
class BatchResult:
    """What :func:`colorize_videos` did with each film.

    Attributes:
        colorized: the films colorized by this run (resumed ones included).
        already_done: outputs that existed, from an earlier run.
        failed: each film that failed, with its error.
    """

    colorized: list[VideoResult] = field(default_factory=list)
    already_done: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, DeoldifyError]] = field(default_factory=list)

    def summary(self) -> str:
        """``3 films: 1 colorized, 1 already done, 1 failed``."""
        total = len(self.colorized) + len(self.already_done) + len(self.failed)
        return (
            f"{total} film{'s' if total != 1 else ''}: {len(self.colorized)} colorized, "
            f"{len(self.already_done)} already done, {len(self.failed)} failed"
        )


def find_videos(folder: Path, recursive: bool = False) -> list[Path]:
    """The video files in ``folder`` (its sub-folders too when ``recursive``), sorted: files
    with a suffix of :data:`VIDEO_SUFFIXES`, except hidden files and this tool's own outputs
    (``*_colorized.*``)."""
    return find_files(folder, VIDEO_SUFFIXES, recursive, OUTPUT_STEM_SUFFIX)


def batch_items(
    inputs: Sequence[str | Path], output_dir: str | Path | None, recursive: bool = False
) -> tuple[list[BatchItem], list[tuple[Path, DeoldifyError]]]:
    """The films that ``inputs`` name, with their outputs, and an error for each input that
    names none.

    A folder means the video files in it (and in its sub-folders when ``recursive``, their
    paths below it kept under ``output_dir``); a folder of numbered frames and no video is one
    image sequence. Outputs take the default name (:func:`default_output_path`) in
    ``output_dir``, or beside each input without one. Two inputs that would write the same
    output: the second is an error.
    """
    items: list[BatchItem] = []
    errors: list[tuple[Path, DeoldifyError]] = []
    first_for: dict[Path, Path] = {}
    for name in inputs:
        path = Path(name)
        videos = find_videos(path, recursive) if path.is_dir() else []
        found: list[tuple[Path, Path | None]]
        if not path.is_dir() or not videos and holds_frames(path):
            found = [(path, None)]  # a file, or a folder of numbered frames
        else:
            if not videos:
                hint = "" if recursive else " (--recursive looks in its sub-folders too)"
                errors.append((path, UsageError(f"{path}: no video files in this folder{hint}")))
            found = [(video, path) for video in videos]
        for source, base in found:
            output = _output_for(source, output_dir, base)
            key = output.resolve()
            if key in first_for:
                error = UsageError(
                    f"{source}: its output {output} is also the output of {first_for[key]}; "
                    "give them different output folders"
                )
                errors.append((source, error))
                continue
            first_for[key] = source
            items.append(BatchItem(source, output))
    return items, errors


def _output_for(source: Path, output_dir: str | Path | None, base: Path | None) -> Path:
    name = default_output_path(source).name
    if output_dir is None:
        return default_output_path(source)
    folder = Path(output_dir)
    if base is not None:
        folder = folder / source.parent.relative_to(base)
    return folder / name


def check_output_folder(output_dir: str | Path) -> None:
    """Refuse an ``-o`` that cannot be the folder of a batch's outputs.

    Raises:
        UsageError: it is an existing file, or names a video file (a container suffix).
    """
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: is a file; with several inputs -o names a folder")
    if not path.exists() and path.suffix.lower() in muxing.MUXERS:
        raise UsageError(f"{path}: with several inputs -o names a folder, not a video file")


def is_done(item: BatchItem, overwrite: bool) -> bool:
    """True when ``item``'s output exists from a finished run: no job folder is left for it
    (an output beside a job folder is from a run killed as it ended, and is redone)."""
    return not overwrite and item.output.exists() and not jobs.default_job_dir(item.output).is_dir()


def colorize_videos(
    inputs: Sequence[str | Path],
    output_dir: str | Path | None,
    colorizer: Colorizer,
    config: RenderConfig = DEFAULT_CONFIG,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    options: JobOptions | None = None,
    recursive: bool = False,
    executor: SegmentExecutor | None = None,
    on_failed: FailureCallback | None = None,
) -> BatchResult:
    """Colorize every film ``inputs`` name (files, folders, image sequences) into
    ``output_dir`` (default: beside each input), as :func:`~deoldify_video.colorize_video`
    does one.

    Each film is its own resumable job; their segments share one pool, so every worker stays
    busy until the last segment of the last film, and films finish one after another. A film
    that fails does not stop the others.

    Args:
        progress: ProgressEvents: ``batch`` (frames over every film), ``colorize`` (the film
            in front), ``mux``.
        recursive: look in the sub-folders of folders too.
        executor: where the segments are made (default: this process, or
            ``options.workers`` local processes; see :mod:`deoldify_video.cluster`).
        on_failed: called with each film that fails and its error, as soon as it is known.

    Raises:
        UsageError: ``output_dir`` cannot be a folder; KeyboardInterrupt (every job stays
            resumable).
    """
    if output_dir is not None:
        check_output_folder(output_dir)
    report_failure = on_failed or (lambda source, error: None)
    result = BatchResult()
    items, errors = batch_items(inputs, output_dir, recursive)
    for source, error in errors:
        report_failure(source, error)
    planned: list[tuple[BatchItem, VideoJob]] = []
    for item in items:
        if is_done(item, overwrite):
            log.info("%s: already done (%s exists)", item.source, item.output)
            result.already_done.append(item.output)
            continue
        try:
            planned.append((item, plan_video(item.source, item.output, config, overwrite)))
        except DeoldifyError as exc:
            errors.append((item.source, exc))
            report_failure(item.source, exc)
    result.failed += errors
    outcomes = run_jobs([job for _, job in planned], colorizer, progress, options, executor)
    for (item, _), outcome in zip(planned, outcomes, strict=True):
        if isinstance(outcome, DeoldifyError):
            result.failed.append((item.source, outcome))
            report_failure(item.source, outcome)
        else:
            result.colorized.append(outcome)
    return result
