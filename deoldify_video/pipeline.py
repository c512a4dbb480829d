"""Colorize a whole video: decode thread -> model -> encode thread, then mux.

Frames stream through bounded queues; nothing but the encoded colour video and the final
output touches the disk. Every thread and subprocess is joined or killed before
:func:`colorize_video` returns, and an error in any of them reaches the caller.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import color
from .errors import DeoldifyError, UsageError
from .inference import Colorizer
from .media import mux as muxing
from .media.probe import frame_times, probe
from .media.reader import FrameReader, full_range, is_rgb_source, plane_depth
from .media.writer import EncodeSettings, FrameWriter, encode_settings
from .types import ProgressEvent, RenderConfig, VideoInfo

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressEvent], None]

QUEUE_DEPTH = 3
_DONE = object()


def default_output_path(input_path: str | Path) -> Path:
    """``<stem>_colorized<ext>`` beside the input; Matroska when the input's container is not
    one we write."""
    path = Path(input_path)
    ext = path.suffix.lower() if path.suffix.lower() in muxing.MUXERS else ".mkv"
    return path.with_name(f"{path.stem}_colorized{ext}")


def check_output_path(input_path: Path, output_path: Path, overwrite: bool) -> None:
    """Refuse an output that is the input, exists (without ``overwrite``) or cannot be written."""
    if output_path.exists() and input_path.exists() and output_path.samefile(input_path):
        raise UsageError(f"{output_path}: the output would overwrite the input")
    if output_path.resolve() == input_path.resolve():
        raise UsageError(f"{output_path}: the output would overwrite the input")
    if output_path.is_dir():
        raise UsageError(f"{output_path}: is a directory; give a file name for the output")
    if output_path.exists() and not overwrite:
        raise UsageError(f"{output_path}: already exists (pass --overwrite to replace it)")
    folder = output_path.parent
    if not folder.is_dir():
        raise UsageError(f"{output_path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{output_path}: the folder {folder} is not writable")


@dataclass(frozen=True)
class VideoJob:
    """A checked request: the probed source, the output and how every stream is written."""

    source: Path
    output: Path
    info: VideoInfo
    plans: tuple[muxing.StreamPlan, ...]
    settings: EncodeSettings
    config: RenderConfig


@dataclass(frozen=True)
class VideoResult:
    """What :func:`colorize_video` produced."""

    output: Path
    frames: int
    info: VideoInfo


def plan_video(
    input_path: str | Path,
    output_path: str | Path | None,
    config: RenderConfig = RenderConfig(),
    overwrite: bool = False,
) -> VideoJob:
    """Probe the input and check every option before any work starts.

    Raises:
        DeoldifyError: a bad input, output, codec or container choice (exit code 2 in the CLI).
    """
    source = Path(input_path)
    info = probe(source)
    output = Path(output_path) if output_path is not None else default_output_path(source)
    check_output_path(source, output, overwrite)
    if config.batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {config.batch_size}")
    plans = tuple(muxing.plan_streams(info, output, config.codec))
    settings = encode_settings(info, config.codec, config.crf)
    return VideoJob(source, output, info, plans, settings, config)


def colorize_video(
    input_path: str | Path,
    output_path: str | Path | None,
    colorizer: Colorizer,
    config: RenderConfig = RenderConfig(),
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> VideoResult:
    """Colorize ``input_path`` into ``output_path`` (default: beside the input).

    The output has exactly the input's frames (count and timestamps), its luminance, size,
    pixel aspect ratio and colour tags, and every audio, subtitle and chapter stream of the
    source, stream-copied. It is written as ``<output>.part`` and renamed when complete; the
    input is never modified.

    Raises:
        DeoldifyError: bad input or output (exit code 2 in the CLI), decoder or encoder failures.
    """
    return run_video(plan_video(input_path, output_path, config, overwrite), colorizer, progress)


def run_video(
    job: VideoJob, colorizer: Colorizer, progress: ProgressCallback | None = None
) -> VideoResult:
    """Carry out a planned job (see :func:`plan_video`)."""
    info, output = job.info, job.output
    report = progress or (lambda event: None)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    part = output.with_name(output.name + ".part")
    try:
        video = work / "video.mkv"
        frames = encode_colour_video(info, colorizer, job.settings, video, job.config, report)
        if info.vfr:
            retimed = work / "video-retimed.mkv"
            muxing.retime(video, frame_times(info.path, info.video_index), retimed)
            video = retimed
        report(ProgressEvent("mux", 0, 1))
        muxing.mux(video, info, list(job.plans), part, muxing.muxer_for(output))
        os.replace(part, output)
        report(ProgressEvent("mux", 1, 1))
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    return VideoResult(output=output, frames=frames, info=info)


def encode_colour_video(
    info: VideoInfo,
    colorizer: Colorizer,
    settings: EncodeSettings,
    out_path: Path,
    config: RenderConfig,
    report: ProgressCallback,
) -> int:
    """Decode, colorize and encode every frame of ``info`` into a video-only file.

    Returns:
        the number of frames written (always ``info.frame_count``: a short decode raises).
    """
    depth = plane_depth(info)
    full = full_range(info)
    matrix = "bt601" if is_rgb_source(info) else color.matrix_for(info.color_space)
    batches: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    colored: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    stop = threading.Event()
    errors: list[BaseException] = []
    size = (settings.height, settings.width)

    def decode() -> None:
        try:
            with FrameReader(info) as reader:
                for batch in reader.batches(config.batch_size):
                    if not _put(batches, batch, stop):
                        return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)
        finally:
            _put(batches, _DONE, stop)

    def encode() -> None:
        try:
            with FrameWriter(settings, out_path) as writer:
                for luma_planes, luma_small, chroma in _drain(colored, stop):
                    chroma = color.convert_chroma(luma_small, chroma, matrix)
                    planes = color.chroma_to_planes(chroma, size, depth, full)
                    writer.write(luma_planes, planes)
                if stop.is_set():
                    raise _Cancelled
        except _Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=decode, name="decode"), threading.Thread(target=encode, name="encode")]
    for thread in threads:
        thread.start()
    done = 0
    report(ProgressEvent("colorize", 0, info.frame_count))
    try:
        for luma_planes in _drain(batches, stop):
            luma = color.luma_to_unit(luma_planes, depth, full)
            luma_small, chroma = colorizer.colorize(luma)
            if not _put(colored, (luma_planes, luma_small, chroma), stop):
                break
            done += luma_planes.shape[0]
            report(ProgressEvent("colorize", done, info.frame_count))
    except BaseException:
        stop.set()
        raise
    finally:
        if not stop.is_set():
            _put(colored, _DONE, stop)
        for thread in threads:
            _join(thread, stop)
    if errors:
        raise errors[0]
    if done != info.frame_count:
        raise DeoldifyError(f"{info.path}: {done} of {info.frame_count} frames were colorized")
    return done


class _Cancelled(Exception):
    """The encoder was told to stop before the end; its partial file is discarded."""


def _put(q: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; False when stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(q: queue.Queue[Any], stop: threading.Event) -> Iterator[Any]:
    """Items of ``q`` until the end marker, or until ``stop`` is set."""
    while not stop.is_set():
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is _DONE:
            return
        yield item


def _join(thread: threading.Thread, stop: threading.Event) -> None:
    """Join a worker; if it does not end, tell every worker to stop and join again."""
    thread.join(timeout=1.0)
    while thread.is_alive():
        stop.set()
        thread.join(timeout=1.0)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count and return it.

    ffmpeg's decoder and encoder run beside the model, so by default torch takes every core
    but leaves ffmpeg room on large machines; OpenMP threads wait passively instead of spinning.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    count = threads or max(1, os.cpu_count() or 1)
    torch.set_num_threads(count)
    return count

