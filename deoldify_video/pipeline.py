"""Colorize a whole video as a resumable job: segments, then a join and a mux.

The frames are cut into segments by frame index (see :mod:`deoldify_video.jobs`). Each segment
streams through bounded queues: a decode thread, the model in the calling thread, and a
smoothing plus encode thread. It starts a few warm-up frames early, so that the temporal
smoothing, and the batches the model sees, are the same however the work was split, spread
over processes or interrupted: a resumed job gives the very frames of an uninterrupted one.
Finished segments are joined without re-encoding (and given the source's own timestamps when
the frame rate varies), then muxed with every other stream of the source.

Nothing but encoded video touches the disk. Every thread, subprocess and worker process is
joined or killed before :func:`run_video` returns, and an error in any of them reaches the
caller.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import functools
import logging
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.multiprocessing

from . import atomic, color, colour_input, jobs
from .before_after import check_compare, write_compare
from .errors import DeoldifyError, DiskFullError, InternalError, UsageError
from .excerpt import Excerpt, plan_excerpt, shifted
from .folders import OUTPUT_STEM_SUFFIX
from .inference import Colorizer, oversize_note
from .jobs import FileRecord, JobOptions, Manifest, SegmentWork
from .media import concat
from .media import mux as muxing
from .media.image_writer import ImageSequenceWriter, image_format
from .media.probe import frame_timestamps, probe, probe_sequence, video_frame_times, with_sound
from .media.reader import FrameReader
from .media.sequence import DEFAULT_FPS, find_sequence, is_sequence, output_sequence
from .media.writer import EncodeSettings, FrameWriter, encode_settings
from .nets.registry import ModelSpec
from .nets.weights import weights_digest
from .segment_pool import SegmentContext, SegmentDone, SegmentExecutor, SegmentPool, SegmentTask
from .stages import Stages
from .temporal import SmootherState, SmoothingConfig, smooth_chroma, warmup_frames
from .types import ProgressCallback, ProgressEvent, RenderConfig, VideoInfo

log = logging.getLogger(__name__)

QUEUE_DEPTH = 3
BATCH_PIXELS = 8 * 1920 * 1088  # the most pixels in one batch of full-size frames
FRAMES_PER_WRITE = 8  # frames an image encoder writes before they are renamed into place
DEFAULT_CONFIG = RenderConfig()
# The strongest smoothing offered: its warm-up is already 122 frames per segment.
MAX_SMOOTH_STRENGTH = 0.95
# Codecs of single pictures (ffprobe's names): such an input of one frame is a photo.
STILL_IMAGE_CODECS = frozenset(
    ["mjpeg", "png", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegls", "jpegxl", "qoi",
     "ppm", "pgm", "pgmyuv", "pbm", "pam", "targa", "sgi", "pcx", "dpx", "exr", "xwd", "psd"]
)  # fmt: skip

# Working files of a job folder (jobs.py keeps its list of prefixes in step with these).
JOINED_NAME = "video.mkv"
CONCAT_NAME = "video.concat.mkv"
LIST_NAME = "segments.ffconcat"
FRAME_STAGE = "video.frame"  # image frames are written as video.frame<number>.<ext> first


def default_output_path(input_path: str | Path) -> Path:
    """``<stem>_colorized<ext>`` beside the input; Matroska when the input's container is not
    one we write; ``<folder>_colorized.mkv`` beside the folder of an image sequence."""
    path = Path(input_path)
    if is_sequence(path):
        folder = path if path.is_dir() else path.parent
        return folder.resolve().with_name(f"{folder.resolve().name}{OUTPUT_STEM_SUFFIX}.mkv")
    ext = path.suffix.lower() if path.suffix.lower() in muxing.MUXERS else ".mkv"
    return path.with_name(f"{path.stem}{OUTPUT_STEM_SUFFIX}{ext}")


def names_folder(output: str | Path) -> bool:
    """True when an output given as ``output`` means a folder: it ends with a slash or is an
    existing folder."""
    return str(output).endswith(("/", os.sep)) or Path(output).is_dir()


def output_path_for(input_path: str | Path, output_path: str | Path | None) -> Path:
    """The output file: ``output_path``, or the default name (:func:`default_output_path`)
    beside the input, or inside ``output_path`` when that names a folder."""
    if output_path is None:
        return default_output_path(input_path)
    if names_folder(output_path):
        return Path(output_path) / default_output_path(input_path).name
    return Path(output_path)


def check_output_path(input_path: Path, output_path: Path, overwrite: bool) -> None:
    """Refuse an output that is the input, exists (without ``overwrite``) or cannot be written
    (a missing folder is fine: it is created when the work starts)."""
    if output_path.exists() and input_path.exists() and output_path.samefile(input_path):
        raise UsageError(f"{output_path}: the output would overwrite the input")
    if output_path.resolve() == input_path.resolve():
        raise UsageError(f"{output_path}: the output would overwrite the input")
    if output_path.exists() and not overwrite:
        leftover = jobs.default_job_dir(output_path)
        hint = f"; its job folder {leftover} is left over" if leftover.is_dir() else ""
        raise UsageError(f"{output_path}: already exists (pass --overwrite to replace it){hint}")
    folder = output_path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{output_path}: {folder} is a file, not a folder")
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
    frames_out: FramesOutput | None = None
    excerpt: Excerpt | None = None
    frame_times: tuple[float, ...] = ()  # presentation time in seconds of each source frame

    @property
    def frame_count(self) -> int:
        """The frames the output holds: the excerpt's, or every frame of the source."""
        return self.excerpt.count if self.excerpt is not None else self.info.frame_count


@dataclass(frozen=True)
class FramesOutput:
    """An output written as numbered images (``-o out/reel1_%06d.tif``).

    Attributes:
        prefix, suffix, digits: the file names around the number (``reel1_``, ``.tif``, 6).
        first_number: the first frame's number: the source sequence's own, 0 for a video.
    """

    prefix: str
    suffix: str
    digits: int
    first_number: int


@dataclass(frozen=True)
class VideoResult:
    """What :func:`colorize_video` produced."""

    output: Path
    frames: int
    info: VideoInfo


def probe_source(
    source: Path,
    fps: Fraction | None = None,
    sound: Path | None = None,
    allow_truncated: bool = False,
) -> VideoInfo:
    """Describe the input: a video file, or an image sequence (a folder of numbered frames or
    an ffmpeg ``%d`` pattern) read at ``fps`` frames per second (default 24) and given the
    audio of the file ``sound``; ``allow_truncated`` takes a damaged video file as far as it
    goes (see :func:`~deoldify_video.media.probe.probe`).

    Raises:
        DeoldifyError: an unreadable input, a sequence with gaps, or ``fps`` or ``sound`` given
            for a video file (which keeps its own rate and streams).
    """
    if fps is not None and fps <= 0:
        raise UsageError(f"--fps must be positive, got {fps}")
    if is_sequence(source):
        info = probe_sequence(find_sequence(source), fps or DEFAULT_FPS)
    elif fps is not None:
        raise UsageError(f"{source}: --fps is for image sequences; a video keeps its own rate")
    else:
        info = probe(source, allow_truncated)
    if sound is None:
        return info
    if not info.is_sequence:
        raise UsageError(f"{source}: --audio is for image sequences; a video keeps its own sound")
    return with_sound(info, sound)


def plan_video(
    input_path: str | Path,
    output_path: str | Path | None,
    config: RenderConfig = DEFAULT_CONFIG,
    overwrite: bool = False,
    fps: Fraction | None = None,
    sound: str | Path | None = None,
) -> VideoJob:
    """Probe the input (see :func:`probe_source`) and check every option before any work
    starts.

    Raises:
        DeoldifyError: a bad input, output, codec or container choice (exit code 2 in the CLI).
    """
    source = Path(input_path)
    sound_path = Path(sound) if sound is not None else None
    info = probe_source(source, fps, sound_path, config.allow_truncated)
    if not info.is_sequence and info.frame_count == 1 and info.codec in STILL_IMAGE_CODECS:
        raise UsageError(
            f"{source}: a still image, not a video; colorize photos with "
            f"`deoldify-video image {source}`"
        )
    output = output_path_for(source, output_path)
    if config.batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {config.batch_size}")
    smoothing_config(config)
    config = dataclasses.replace(config, batch_size=batch_size_for(info, config.batch_size))
    pattern = output_sequence(output)
    frames_out = None
    if pattern is not None:
        for option, value in (("--crf", config.crf), ("--preset", config.preset)):
            if value is not None:
                raise UsageError(f"{output}: {option} is for encoded video, not numbered frames")
        frames_out = _plan_frames_output(source, info, output, pattern, overwrite)
        plans: tuple[muxing.StreamPlan, ...] = ()
        # the segments are a lossless 4:4:4 intermediate at the source's depth
        settings = dataclasses.replace(encode_settings(info, "ffv1"), full_chroma=True)
    else:
        check_output_path(source, output, overwrite)
        plans = tuple(muxing.plan_streams(info, output, config.codec))
        b_frames = muxing.holds_b_frames(muxing.muxer_for(output))
        settings = encode_settings(info, config.codec, config.crf, config.preset, b_frames)
    if config.compare is not None:
        check_compare(config.compare, output, frames_out is not None, overwrite)
    if not config.recolor:
        colour_input.check_video(info)
    times = tuple(video_frame_times(info))
    if len(times) != info.frame_count:
        raise InternalError(
            f"{info.path}: {len(times)} frame timestamps for {info.frame_count} frames"
        )
    excerpt = None if config.excerpt is None else plan_excerpt(info, times, config.excerpt)
    return VideoJob(source, output, info, plans, settings, config, frames_out, excerpt, times)


def batch_size_for(info: VideoInfo, requested: int) -> int:
    """Frames per batch for this source: ``requested``, fewer for frames larger than 1080p so
    that the frames in flight (a few batches between the stages) stay within a few hundred MB
    (4K: 2 frames a batch). The model's own batches on the GPU are not limited by this."""
    width, height = info.display_size
    fitting = max(1, BATCH_PIXELS // (width * height))
    if fitting < requested:
        log.info("%s: %d frames a batch for %dx%d frames", info.path, fitting, width, height)
    return min(requested, fitting)


def _plan_frames_output(
    source: Path, info: VideoInfo, output: Path, pattern: tuple[str, str, int], overwrite: bool
) -> FramesOutput:
    """Check an image-sequence output: its format, and that no frame of it would be replaced
    (unless ``overwrite``, or the job that wrote them is being resumed)."""
    prefix, suffix, digits = pattern
    image_format(suffix)
    folder = output.parent
    scan = find_sequence(source) if info.is_sequence else None
    if scan is not None and (scan.folder.resolve(), scan.prefix, scan.suffix) == (
        folder.resolve(),
        prefix,
        suffix,
    ):
        raise UsageError(f"{output}: the output frames would overwrite the input frames")
    first = scan.start if scan is not None else 0
    frames = FramesOutput(prefix, suffix, digits, first)
    resuming = jobs.default_job_dir(output).is_dir()
    existing = folder / f"{prefix}{first:0{digits}d}{suffix}"
    if existing.exists() and not (overwrite or resuming):
        raise UsageError(f"{existing}: already exists (pass --overwrite to replace the frames)")
    if info.audio_streams:
        log.warning("%s: numbered images hold no sound; the audio is not written", output)
    return frames


def colorize_video(
    input_path: str | Path,
    output_path: str | Path | None,
    colorizer: Colorizer,
    config: RenderConfig = DEFAULT_CONFIG,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    options: JobOptions | None = None,
    fps: Fraction | None = None,
    sound: str | Path | None = None,
) -> VideoResult:
    """Colorize ``input_path`` into ``output_path`` (default: beside the input).

    The input is a video file, or an image sequence (a folder of numbered frames or an ffmpeg
    ``%d`` pattern) read at ``fps`` (default 24) with the audio of the file ``sound``.

    The output has exactly the input's frames (count and timestamps), its luminance, size,
    pixel aspect ratio and colour tags, and every audio, subtitle and chapter stream of the
    source, stream-copied. It is written as a ``.part`` file and renamed when complete; the
    input is never modified. The work is kept in a job folder (see :class:`JobOptions`):
    calling again with the same arguments after a crash or an interrupt resumes it.

    Raises:
        DeoldifyError: bad input or output (exit code 2 in the CLI), decoder or encoder
            failures, or a job folder holding a different job (:class:`JobStateError`).
    """
    job = plan_video(input_path, output_path, config, overwrite, fps, sound)
    return run_video(job, colorizer, progress, options)


def run_video(
    job: VideoJob,
    colorizer: Colorizer,
    progress: ProgressCallback | None = None,
    options: JobOptions | None = None,
    executor: SegmentExecutor | None = None,
) -> VideoResult:
    """Carry out a planned job (see :func:`plan_video`), resuming it if its job folder holds
    an interrupted run of the same request.

    Raises:
        JobStateError: the job folder holds a different job, or another run is working on it.
        DeoldifyError: the job failed (see :func:`run_jobs`).
    """
    (result,) = run_jobs([job], colorizer, progress, options, executor)
    if isinstance(result, DeoldifyError):
        raise result
    return result


def run_jobs(
    jobs_to_run: Sequence[VideoJob],
    colorizer: Colorizer,
    progress: ProgressCallback | None = None,
    options: JobOptions | None = None,
    executor: SegmentExecutor | None = None,
) -> list[VideoResult | DeoldifyError]:
    """Carry out planned jobs, each in its own job folder (resumed where it holds an interrupted
    run of the same request), their segments in one pool.

    The segments of the earliest unfinished film are handed out first; each film is joined and
    muxed as soon as its last segment is done. A film that fails (a damaged frame, a job folder
    holding another job) does not stop the others.

    Args:
        options: the job options; ``options.job_dir`` is for a single job only.
        executor: where the segments are made (default: this process, or ``options.workers``
            local worker processes).

    Returns:
        for each job, in order, its result or the error that stopped it.

    Raises:
        KeyboardInterrupt, or a fault of the executor (every job stays resumable).
    """
    options = options or JobOptions()
    if options.job_dir is not None and len(jobs_to_run) > 1:
        raise UsageError("--job-dir names the folder of one job; give one input with it")
    run = _Run(jobs_to_run, colorizer, progress or (lambda event: None), options)
    try:
        run.open()
        run.finish_ready()
        if run.tasks:
            workers = min(options.workers, len(run.tasks))
            if executor is None:
                executor = (
                    WorkerProcesses(colorizer, workers) if workers > 1 else InProcess(colorizer)
                )
            if executor.works_aside:
                run.finish_aside()
            pool = SegmentPool(run.tasks, run.frames, run.segment_done, run.failed, options.stop)
            executor.run(pool)
        run.wait_finished()
    finally:
        run.close()
    return [run.results[n] for n in range(len(jobs_to_run))]


@dataclass
class _Film:
    """A film of a run whose job folder is open (its lock held by ``lock``)."""

    job: VideoJob
    job_dir: Path
    tracker: _Tracker
    times: Sequence[float]
    lock: contextlib.ExitStack
    remaining: set[int]

    @property
    def context(self) -> SegmentContext:
        return SegmentContext(self.job.info, self.job.settings, self.job.config, self.job_dir)


class _Run:
    """The driver of :func:`run_jobs`: opens the films' jobs, records what the executor hands
    back, finishes each film once its segments are done, and reports progress (a ``batch``
    event over every film when there are several, ``colorize`` for the film in front)."""

    def __init__(
        self,
        jobs_to_run: Sequence[VideoJob],
        colorizer: Colorizer,
        report: ProgressCallback,
        options: JobOptions,
    ) -> None:
        self.jobs = list(jobs_to_run)
        self.colorizer = colorizer
        self.callback = report
        self.options = options
        # The finisher and the executor's reports may run in two threads (see finish_aside).
        self.lock = threading.RLock()
        self.finisher: concurrent.futures.ThreadPoolExecutor | None = None
        self.finishing: list[concurrent.futures.Future[None]] = []
        self.films: dict[int, _Film] = {}
        self.results: dict[int, VideoResult | DeoldifyError] = {}
        self.tasks: list[SegmentTask] = []
        self.batch_total = sum(job.frame_count for job in self.jobs)
        self.batch_done = 0
        self.front: int | None = None  # the film whose progress is reported

    def report(self, event: ProgressEvent) -> None:
        with self.lock:
            self.callback(event)

    def finish_aside(self) -> None:
        """Join and mux each finished film in a thread of its own, while the executor (whose
        workers run elsewhere) goes on with the other films' segments."""
        self.finisher = concurrent.futures.ThreadPoolExecutor(1, "finish")

    def wait_finished(self) -> None:
        """Wait for the films being finished aside; a fault of one is raised."""
        for future in self.finishing:
            future.result()

    def open(self) -> None:
        for n, job in enumerate(self.jobs):
            try:
                film = self._open_film(job)
            except DeoldifyError as exc:
                self._fail(n, exc)
                continue
            self.films[n] = film
            self.batch_done += film.tracker.done
            self.tasks += [SegmentTask(n, film.context, work) for work in self._works(film)]
        self._report_batch()
        self._advance_front()

    def _open_film(self, job: VideoJob) -> _Film:
        info, output, colorizer = job.info, job.output, self.colorizer
        job_dir = self.options.job_dir or jobs.default_job_dir(output)
        width, height = info.display_size
        note = oversize_note(colorizer, height, width)
        if note:
            log.warning("%s: %s", info.path, note)
        smoothing = smoothing_config(job.config)
        warmup = warmup_frames(smoothing) if smoothing is not None else 0
        segment_frames = jobs.segment_frames_for(info.fps, self.options.segment_seconds)
        times = job.frame_times
        requested = jobs.new_manifest(
            job.source,
            output,
            info,
            colorizer.spec.name,
            weights_digest(colorizer.model),
            render_settings(job, colorizer, segment_frames, warmup),
            jobs.plan_segments(job.frame_count, segment_frames),
            {"device": str(colorizer.device), "threads": torch.get_num_threads(),
             "workers": self.options.workers},
        )  # fmt: skip
        output.parent.mkdir(parents=True, exist_ok=True)
        lock = contextlib.ExitStack()
        try:
            with _full_disk_explained(job_dir, output):
                lock.enter_context(jobs.JobLock(job_dir))
                manifest = jobs.open_job(job_dir, requested, self.options.fresh)
                manifest = _adopt_finished_segments(manifest, job_dir)
                atomic.remove_parts(output.parent, output.name + ".")
                jobs.warn_if_short(manifest, job_dir, output.parent)
        except BaseException:
            lock.close()
            raise
        remaining = set() if manifest.joined else {s.index for s in manifest.pending()}
        return _Film(job, job_dir, _Tracker(job_dir, manifest), times, lock, remaining)

    def _works(self, film: _Film) -> list[SegmentWork]:
        if film.tracker.manifest.joined is not None:
            return []
        info, excerpt = film.job.info, film.job.excerpt
        first = excerpt.first if excerpt is not None else 0  # the job's first frame
        seek_origin = info.format_start_time - info.decode_delay
        warmup = int(film.tracker.manifest.settings["warmup_frames"])
        return [
            jobs.segment_work(shifted(s, first), warmup, film.times, seek_origin)
            for s in film.tracker.manifest.pending()
        ]

    def finish_ready(self) -> None:
        """Finish the films that need no more segments (done by an earlier run)."""
        for n, film in list(self.films.items()):
            if not film.remaining:
                self._finish(n)

    def frames(self, n: int, count: int) -> None:
        with self.lock:
            film = self.films.get(n)
            if film is None or not count:
                return
            film.tracker.done += count
            self.batch_done += count
            if n == self.front:
                self.report(ProgressEvent("colorize", film.tracker.done, film.job.frame_count))
            self._report_batch()

    def segment_done(self, task: SegmentTask, done: SegmentDone) -> None:
        with self.lock:
            film = self.films.get(task.film)
            if film is None:
                return
            index = task.work.segment.index
            try:
                with _full_disk_explained(film.job_dir, film.job.output):
                    film.tracker.segment_done(index, done)
            except DeoldifyError as exc:
                self._fail(task.film, exc)
                return
            film.remaining.discard(index)
            if film.remaining:
                return
        if self.finisher is None:
            self._finish(task.film)
        else:
            self.finishing.append(self.finisher.submit(self._finish, task.film))

    def failed(self, n: int, error: DeoldifyError) -> None:
        with self.lock:
            film = self.films.get(n)
            if film is not None and isinstance(error, DiskFullError):
                folder = Path(error.folder or film.job_dir)
                error = _no_space(folder, film.job_dir, film.job.output)
            self._fail(n, error)

    def _finish(self, n: int) -> None:
        """Join a film's segments, write its output, and close its job."""
        film = self.films[n]
        job, job_dir, tracker = film.job, film.job_dir, film.tracker
        try:
            with _full_disk_explained(job_dir, job.output):
                if tracker.manifest.joined is None:
                    first = job.excerpt.first if job.excerpt is not None else 0
                    own_times = film.times[first : first + job.frame_count]
                    info, settings = job.info, job.settings
                    tracker.joined(
                        _join_segments(tracker.manifest, job_dir, info, settings, own_times)
                    )
                    _remove_segment_files(tracker.manifest, job_dir)
                if job.frames_out is not None:
                    _write_frames(job_dir / JOINED_NAME, job, job_dir, self.report)
                else:
                    self.report(ProgressEvent("mux", 0, 1))
                    _mux(job_dir / JOINED_NAME, job, job.output, job_dir)
                    self.report(ProgressEvent("mux", 1, 1))
                if not self.options.keep_job:
                    jobs.clear_job(job_dir)
        except DeoldifyError as exc:
            with self.lock:
                self._fail(n, exc)
            return
        with self.lock:
            del self.films[n]
            film.lock.close()
            if not self.options.keep_job:
                jobs.remove_job(job_dir)
            self.results[n] = VideoResult(job.output, job.frame_count, job.info)
            self._advance_front()

    def _fail(self, n: int, error: DeoldifyError) -> None:
        """Record a film's failure (the caller holds :attr:`lock`)."""
        self.batch_total -= self.jobs[n].frame_count
        film = self.films.pop(n, None)
        if film is not None:
            self.batch_done -= film.tracker.done
            film.lock.close()
        self.results[n] = error
        self._advance_front()

    def _advance_front(self) -> None:
        front = min(self.films, default=None)
        if front is not None and front != self.front:
            film = self.films[front]
            self.report(ProgressEvent("colorize", film.tracker.done, film.job.frame_count))
        self.front = front

    def _report_batch(self) -> None:
        if len(self.jobs) > 1:
            self.report(ProgressEvent("batch", self.batch_done, self.batch_total))

    def close(self) -> None:
        """Release every job still open (after an interrupt or a fault: they stay resumable),
        once a film being finished aside is done."""
        if self.finisher is not None:
            self.finisher.shutdown(wait=True)
        for film in self.films.values():
            atomic.remove_parts(film.job_dir, "segment-")
            film.lock.close()
        self.films.clear()


def _adopt_finished_segments(manifest: Manifest, job_dir: Path) -> Manifest:
    """Record the segment files a worker finished after the driver's last manifest write (the
    driver was killed): a file under a segment's final name was renamed there whole, synced
    and checked by its worker, so it is kept once its frame count is confirmed."""
    if manifest.joined is not None:
        return manifest
    adopted = manifest
    for segment in manifest.pending():
        path = segment_path(job_dir, segment.index)
        if not path.is_file():
            continue
        if len(frame_timestamps(path, 0)) != segment.frame_count:
            path.unlink()
            continue
        log.info("%s: segment %d was finished after the last record; kept", job_dir, segment.index)
        adopted = adopted.with_segment(segment.index, jobs.file_record(path, segment.frame_count))
    if adopted != manifest:
        jobs.write_manifest(job_dir, adopted)
    return adopted


@contextlib.contextmanager
def _full_disk_explained(job_dir: Path, output: Path) -> Iterator[None]:
    """Turn a full disk met anywhere in the job (an encoder, a muxer, a manifest write) into one
    :class:`DiskFullError` naming the disk and about how much more room the job needs."""
    try:
        yield
    except DiskFullError as exc:
        folder = Path(exc.folder) if exc.folder else job_dir
        raise _no_space(folder, job_dir, output) from exc
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = Path(exc.filename).parent if exc.filename else job_dir
        raise _no_space(folder, job_dir, output) from exc


def _no_space(folder: Path, job_dir: Path, output: Path) -> DiskFullError:
    try:
        manifest = jobs.read_manifest(job_dir)
    except DeoldifyError:
        manifest = None
    return jobs.no_space_error(folder, manifest, job_dir, output.parent)


def render_settings(
    job: VideoJob, colorizer: Colorizer, segment_frames: int, warmup: int
) -> dict[str, Any]:
    """Every setting that changes the output frames (the device aside), for the manifest."""
    config = job.config
    smoothing = smoothing_config(config)
    return {
        "render_factor": colorizer.render_factor,
        "batch_size": config.batch_size,
        "model_batch_size": colorizer.batch_size,
        "smooth": config.smooth,
        "smooth_strength": smoothing.strength if smoothing is not None else None,
        "encode": dataclasses.asdict(job.settings),
        "segment_frames": segment_frames,
        "warmup_frames": warmup,
        "excerpt": job.excerpt.record() if job.excerpt is not None else None,
    }


def smoothing_config(config: RenderConfig) -> SmoothingConfig | None:
    """The temporal smoothing a render asks for, or None when it is off.

    Raises:
        UsageError: a strength outside 0 to :data:`MAX_SMOOTH_STRENGTH`, or a strength given
            with the smoothing off.
    """
    strength = config.smooth_strength
    if not config.smooth:
        if strength is not None:
            raise UsageError(
                "--smooth-strength and --no-smooth contradict each other; give one of them"
            )
        return None
    if strength is None:
        return SmoothingConfig()
    if not 0.0 <= strength <= MAX_SMOOTH_STRENGTH:
        raise UsageError(
            f"--smooth-strength must be from 0 to {MAX_SMOOTH_STRENGTH}, got {strength:g}"
        )
    return SmoothingConfig(strength=strength)


# --------------------------------------------------------------------------- one segment


def segment_path(job_dir: Path, index: int) -> Path:
    """The file of segment ``index`` in a job folder."""
    return job_dir / f"segment-{index:05d}{concat.SEGMENT_SUFFIX}"


def encode_segment(
    work: SegmentWork,
    context: SegmentContext,
    colorizer: Colorizer,
    on_frames: Callable[[int], None],
    part_tag: str | None = None,
) -> FileRecord:
    """Colorize and encode one segment into its file in the job folder.

    The file is written under a ``.part`` name (carrying ``part_tag``, default this process's
    id), synced, checked (its frame count) and renamed.

    Returns:
        the record of its file.
    """
    final = segment_path(context.job_dir, work.segment.index)
    with atomic.writing(final, part_tag) as part:
        SegmentRender(
            context.info, colorizer, context.settings, part, context.config, work, on_frames
        ).run()
        _check_frame_count(part, work.segment.frame_count)
    return jobs.file_record(final, work.segment.frame_count)


def make_segment(
    task: SegmentTask,
    colorizer: Colorizer,
    on_frames: Callable[[int], None],
    node: str = "",
    part_tag: str | None = None,
) -> SegmentDone | DeoldifyError:
    """Make one segment of the pool (see :func:`encode_segment`), as an executor reports it:
    its file with where and in how many seconds it was made, or the film's error."""
    started = time.monotonic()
    try:
        record = encode_segment(task.work, task.context, colorizer, on_frames, part_tag)
    except DeoldifyError as exc:
        return exc
    return SegmentDone(record, node, time.monotonic() - started)


@dataclass(frozen=True)
class _Colored:
    """A batch on its way from the model to the encoder.

    Attributes:
        luma_planes: ``(n, H, W)`` the source's Y planes (uint8, or uint16 holding 10 bits).
        luma_small: ``(n, 1, h, w)`` float32 luminance at the model's size, in [0, 1].
        chroma: ``(n, 2, h, w)`` the model's chroma at the same size.
        skip: how many leading frames are warm-up (smoothed, not encoded).
    """

    luma_planes: np.ndarray
    luma_small: torch.Tensor
    chroma: torch.Tensor
    skip: int


class SegmentRender:
    """One segment as three overlapping stages (see :class:`~deoldify_video.stages.Stages`):
    :meth:`decode` (a thread), :meth:`colorize` (the calling thread) and :meth:`encode`, which
    smooths and encodes (a thread).

    Frames ``[work.first, segment.start)`` are warm-up: they go through the model and the
    smoothing but are not encoded. Batches of ``config.batch_size`` frames start at
    ``work.first``, so a segment's frames never depend on how the rest of the job was run.
    Each stage is waited for as long as it works, however slow the encoder; an error in any
    stage, an interrupt or :meth:`cancel` stops them all.

    Args:
        on_frames: called (in the calling thread) with the number of the segment's frames each
            batch colorized; an exception it raises stops the segment.
    """

    def __init__(
        self,
        info: VideoInfo,
        colorizer: Colorizer,
        settings: EncodeSettings,
        out_path: Path,
        config: RenderConfig,
        work: SegmentWork,
        on_frames: Callable[[int], None],
    ) -> None:
        self.info = info
        self.colorizer = colorizer
        self.settings = settings
        self.out_path = out_path
        self.config = config
        self.work = work
        self.on_frames = on_frames
        self.depth = info.plane_depth
        self.full_range = info.full_range
        self.matrix = "bt601" if info.is_rgb_source else color.matrix_for(info.color_space)
        self.smoothing = smoothing_config(config)
        self.next_index = work.first  # frame index of the next batch the model takes
        self.written = 0
        self._stages: Stages[np.ndarray, _Colored] = Stages(
            self.decode, self.colorize, self.encode, QUEUE_DEPTH
        )

    def run(self) -> int:
        """Colorize and encode the segment; the number of frames written.

        Raises:
            the first error of any stage, KeyboardInterrupt, or
            :class:`~deoldify_video.stages.Cancelled` after :meth:`cancel`.
        """
        self._stages.run()
        segment = self.work.segment
        if self.written != segment.frame_count:
            raise InternalError(
                f"{self.info.path}: {self.written} of the {segment.frame_count} frames of "
                f"segment {segment.index} were colorized"
            )
        return self.written

    def cancel(self) -> None:
        """Stop the segment soon, from any thread: :meth:`run` raises ``Cancelled``."""
        self._stages.cancel()

    def decode(self) -> Iterator[np.ndarray]:
        """Batches ``(n, H, W)`` of the source's Y planes, from the first warm-up frame."""
        with FrameReader(
            self.info,
            self.work.start_time,
            self.work.decoded,
            allow_damage=self.config.allow_truncated,
        ) as reader:
            yield from reader.batches(self.config.batch_size)

    def colorize(self, luma_planes: np.ndarray) -> _Colored:
        """The model's chroma for one batch."""
        luma_small, chroma = self.colorizer.colorize_planes(
            luma_planes, self.depth, self.full_range
        )
        n = luma_planes.shape[0]
        skip = min(n, max(0, self.work.segment.start - self.next_index))
        self.next_index += n
        self.on_frames(n - skip)
        return _Colored(luma_planes, luma_small, chroma, skip)

    def encode(self, batches: Iterator[_Colored]) -> None:
        """Smooth every batch (warm-up included) and encode the segment's own frames."""
        state: SmootherState | None = None
        with FrameWriter(self.settings, self.out_path, concat.SEGMENT_MUXER) as writer:
            self._stages.on_cancel(writer.kill)
            for batch in batches:
                chroma = batch.chroma
                if self.smoothing is not None:
                    chroma, state = smooth_chroma(batch.luma_small, chroma, state, self.smoothing)
                skip = batch.skip
                if skip == batch.luma_planes.shape[0]:
                    continue
                chroma = color.convert_chroma(batch.luma_small[skip:], chroma[skip:], self.matrix)
                planes = color.chroma_to_planes(
                    chroma, self.settings.chroma_size, self.depth, self.full_range
                )
                writer.write(batch.luma_planes[skip:], planes)
                self.written += batch.luma_planes.shape[0] - skip


def _check_frame_count(path: Path, expected: int) -> None:
    count = len(frame_timestamps(path, 0))
    if count != expected:
        raise InternalError(f"{path}: the encoder wrote {count} frames instead of {expected}")


# --------------------------------------------------------------------------- job bookkeeping


class _Tracker:
    """Records a film's finished work in its manifest (atomically) and counts its frames."""

    def __init__(self, job_dir: Path, manifest: Manifest) -> None:
        self.job_dir = job_dir
        self.manifest = manifest
        self.clock = jobs.WorkClock(manifest.work_seconds)
        self.done = manifest.frames_done

    def segment_done(self, index: int, done: SegmentDone) -> None:
        self._save(self.manifest.with_segment(index, done.record, done.node, done.seconds))

    def joined(self, record: FileRecord) -> None:
        self._save(dataclasses.replace(self.manifest, joined=record))

    def _save(self, manifest: Manifest) -> None:
        self.manifest = dataclasses.replace(manifest, work_seconds=self.clock.total())
        jobs.write_manifest(self.job_dir, self.manifest)


def _join_segments(
    manifest: Manifest,
    job_dir: Path,
    info: VideoInfo,
    settings: EncodeSettings,
    times: Sequence[float],
) -> FileRecord:
    """Join the finished segments into ``video.mkv`` in the job folder, without re-encoding;
    a variable-frame-rate video is given the source's own timestamps (``times``: those of the
    job's frames)."""
    bounds = [0, *(r.segment.end for r in manifest.segments)]
    durations = concat.segment_durations(bounds, info.fps)
    names = [r.done.file for r in manifest.segments if r.done is not None]
    if len(names) != len(durations):
        raise InternalError(
            f"{job_dir}: cannot join, {len(durations) - len(names)} segments missing"
        )
    list_path = job_dir / LIST_NAME
    atomic.write_text(list_path, concat.concat_list_text(list(zip(names, durations, strict=True))))
    final = job_dir / JOINED_NAME
    joined = atomic.part_path(job_dir / CONCAT_NAME)
    try:
        with atomic.writing(final) as part:
            if info.vfr:
                concat.concat(list_path, joined, settings)
                muxing.retime(joined, times, part)
            else:
                concat.concat(list_path, part, settings)
            _check_frame_count(part, len(times))
    finally:
        joined.unlink(missing_ok=True)
    return jobs.file_record(final, len(times))


def _remove_segment_files(manifest: Manifest, job_dir: Path) -> None:
    """Free the segments' disk space once the joined video is recorded."""
    for record in manifest.segments:
        if record.done is not None:
            (job_dir / record.done.file).unlink(missing_ok=True)
    (job_dir / LIST_NAME).unlink(missing_ok=True)


def _write_frames(video: Path, job: VideoJob, job_dir: Path, report: ProgressCallback) -> None:
    """Write the joined colour video's frames as numbered RGB images, each renamed into place
    whole; frames already written by an interrupted run of the same job are kept.

    The luminance of each written pixel is the source's Y sample (see
    :func:`~deoldify_video.color.planes_to_rgb`).
    """
    frames = job.frames_out
    assert frames is not None
    folder = job.output.parent
    folder.mkdir(parents=True, exist_ok=True)
    settings = job.settings
    writer = ImageSequenceWriter(
        folder, frames.prefix, frames.suffix, frames.digits, settings.depth, job_dir / FRAME_STAGE
    )
    total = job.frame_count
    done = 0
    while done < total and writer.path(frames.first_number + done).is_file():
        done += 1
    report(ProgressEvent("frames", done, total))
    if done == total:
        return
    joined = probe(video)
    times = video_frame_times(joined)
    start = None if done == 0 else (times[done - 1] + times[done]) / 2
    matrix = "bt601" if job.info.is_rgb_source else color.matrix_for(job.info.color_space)
    with FrameReader(joined, start, total - done, yuv444=True) as reader:
        for planes in reader.batches(FRAMES_PER_WRITE):
            rgb = color.planes_to_rgb(planes, settings.depth, settings.full_range, matrix)
            writer.write(rgb, frames.first_number + done)
            done += planes.shape[0]
            report(ProgressEvent("frames", done, total))
    atomic.sync_folder(folder)


def _mux(video: Path, job: VideoJob, output: Path, job_dir: Path) -> None:
    """Mux the colour video with the source's other streams into ``output`` (via a ``.part``),
    and write the before/after video from it when the job asks for one."""
    with atomic.writing(output) as part:
        muxer = muxing.muxer_for(output)
        excerpt = job.excerpt
        window = (excerpt.start, excerpt.duration) if excerpt is not None else None
        muxing.mux(video, job.info, list(job.plans), part, muxer, job.settings.codec, window)
        if job.config.compare is not None:
            write_compare(
                part, output, job.info, excerpt, job.config.compare, job.settings,
                job.frame_count, job_dir,
            )  # fmt: skip


# --------------------------------------------------------------------------- executors


class InProcess:
    """Makes the segments one after another in this process (the default executor)."""

    works_aside = False

    def __init__(self, colorizer: Colorizer) -> None:
        self.colorizer = colorizer

    def run(self, pool: SegmentPool) -> None:
        while (task := pool.take()) is not None:
            outcome = make_segment(task, self.colorizer, functools.partial(pool.frames, task.film))
            if isinstance(outcome, DeoldifyError):
                pool.failed(task.film, outcome)
            else:
                pool.done(task, outcome)


@dataclass(frozen=True)
class _WorkerSetup:
    """What a worker process needs to rebuild the colorizer."""

    spec: ModelSpec
    state: dict[str, torch.Tensor]
    device: torch.device
    render_factor: int
    batch_size: int
    precision: str
    threads: int
    parent: int


class WorkerProcesses:
    """Makes segments in ``workers`` spawned processes on this machine, one per GPU (round
    robin) or each with an equal share of the CPU threads; each holds the model, loaded once.
    Each worker has at most two segments handed to it at a time, so the pool's order (films
    one after another) holds."""

    works_aside = False

    def __init__(self, colorizer: Colorizer, workers: int) -> None:
        self.colorizer = colorizer
        self.workers = workers

    def run(self, pool: SegmentPool) -> None:
        mp = torch.multiprocessing.get_context("spawn")
        tasks = mp.Queue()
        results = mp.Queue()
        colorizer = self.colorizer
        state = {k: v.detach().to("cpu") for k, v in colorizer.model.state_dict().items()}
        threads = max(1, torch.get_num_threads() // self.workers)
        processes = []
        for device in _worker_devices(colorizer.device, self.workers):
            setup = _WorkerSetup(
                colorizer.spec, state, device, colorizer.render_factor, colorizer.batch_size,
                colorizer.precision, threads, os.getpid(),
            )  # fmt: skip
            processes.append(mp.Process(target=_worker_main, args=(setup, tasks, results)))
        for process in processes:
            process.start()
        taken: dict[tuple[int, int], SegmentTask] = {}

        def hand_out() -> None:
            while len(taken) < 2 * self.workers and (task := pool.take()) is not None:
                taken[task.film, task.work.segment.index] = task
                tasks.put(task)

        try:
            hand_out()
            while taken:
                try:
                    kind, film, payload = results.get(timeout=0.5)
                except queue.Empty:
                    _check_workers(processes, results, len(taken) + len(pool))
                    continue
                if kind == "frames":
                    pool.frames(film, payload)
                elif kind == "done":
                    index, done = payload
                    pool.done(taken.pop((film, index)), done)
                elif kind == "failed":
                    index, error = payload
                    del taken[film, index]
                    pool.failed(film, error)
                else:
                    raise payload
                hand_out()
            for _ in processes:
                tasks.put(None)
        finally:
            # Segments never taken (an error or Ctrl-C) must not keep this process flushing
            # them into the queue's full pipe at exit.
            tasks.cancel_join_thread()
            for process in processes:
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join()


def _worker_devices(device: torch.device, workers: int) -> list[torch.device]:
    if device.type == "cuda":
        count = torch.cuda.device_count()
        return [torch.device("cuda", i % count) for i in range(workers)]
    return [device] * workers


def _check_workers(processes: list[Any], results: Any, unfinished: int) -> None:
    """Raise if a worker died, or if every worker ended (its last reports read) with segments
    left unfinished."""
    for process in processes:
        if process.exitcode not in (None, 0):
            raise InternalError(f"a worker process died (exit code {process.exitcode})")
    if not any(process.is_alive() for process in processes) and results.empty():
        raise InternalError(f"the worker processes ended with {unfinished} segments unfinished")


def _worker_main(setup: _WorkerSetup, tasks: Any, results: Any) -> None:
    """A worker process: make the segments of ``tasks`` until None, report on ``results``.

    Ctrl-C is left to the parent, which stops the workers; a worker whose parent is gone
    (killed) stops at its next batch.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(setup.threads)
    try:
        model = setup.spec.builder_for(setup.state)()
        model.load_state_dict(setup.state)
        colorizer = Colorizer(
            model, setup.spec, setup.device, setup.render_factor, setup.batch_size,
            setup.precision,
        )  # fmt: skip
        while (task := tasks.get()) is not None:

            def on_frames(count: int, film: int = task.film) -> None:
                if os.getppid() != setup.parent:
                    raise SystemExit(1)
                results.put(("frames", film, count))

            outcome = make_segment(task, colorizer, on_frames)
            kind = "failed" if isinstance(outcome, DeoldifyError) else "done"
            results.put((kind, task.film, (task.work.segment.index, outcome)))
    except Exception:  # noqa: BLE001 - reaches the parent as text
        fault = InternalError(f"in a worker process:\n{traceback.format_exc()}")
        results.put(("fault", -1, fault))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (default: every core) and return it.

    The model is the slow part, and on two cores giving it both measured fastest for the whole
    pipeline (``benchmarks/pipeline.py``). Its OpenMP threads should wait passively rather than
    spin while ffmpeg works: the command line sets ``OMP_WAIT_POLICY=PASSIVE`` before torch
    loads (a library caller sets it in its own environment).

    Raises:
        UsageError: ``threads`` is below 1.
    """
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    count = threads or max(1, os.cpu_count() or 1)
    torch.set_num_threads(count)
    return count
