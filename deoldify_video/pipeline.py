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

import dataclasses
import hashlib
import logging
import os
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing

from . import color, jobs
from .errors import DeoldifyError, EncodeError, UsageError
from .inference import Colorizer
from .jobs import FileRecord, JobOptions, Manifest, SegmentWork
from .media import concat
from .media import mux as muxing
from .media.probe import frame_times, frame_timestamps, probe
from .media.reader import FrameReader, full_range, is_rgb_source, plane_depth
from .media.writer import EncodeSettings, FrameWriter, encode_settings
from .nets.registry import ModelSpec
from .temporal import SmootherState, SmoothingConfig, smooth_chroma, warmup_frames
from .types import ProgressEvent, RenderConfig, VideoInfo

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressEvent], None]

QUEUE_DEPTH = 3
DEFAULT_CONFIG = RenderConfig()
_DONE = object()

# Working files of a job folder (jobs.py keeps its list of prefixes in step with these).
JOINED_NAME = "video.mkv"
CONCAT_NAME = "video.concat.mkv"
LIST_NAME = "segments.ffconcat"


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
        leftover = jobs.default_job_dir(output_path)
        hint = f"; its job folder {leftover} is left over" if leftover.is_dir() else ""
        raise UsageError(f"{output_path}: already exists (pass --overwrite to replace it){hint}")
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
    config: RenderConfig = DEFAULT_CONFIG,
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
    b_frames = muxing.holds_b_frames(muxing.muxer_for(output))
    settings = encode_settings(info, config.codec, config.crf, config.preset, b_frames)
    return VideoJob(source, output, info, plans, settings, config)


def colorize_video(
    input_path: str | Path,
    output_path: str | Path | None,
    colorizer: Colorizer,
    config: RenderConfig = DEFAULT_CONFIG,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    options: JobOptions | None = None,
) -> VideoResult:
    """Colorize ``input_path`` into ``output_path`` (default: beside the input).

    The output has exactly the input's frames (count and timestamps), its luminance, size,
    pixel aspect ratio and colour tags, and every audio, subtitle and chapter stream of the
    source, stream-copied. It is written as a ``.part`` file and renamed when complete; the
    input is never modified. The work is kept in a job folder (see :class:`JobOptions`):
    calling again with the same arguments after a crash or an interrupt resumes it.

    Raises:
        DeoldifyError: bad input or output (exit code 2 in the CLI), decoder or encoder
            failures, or a job folder holding a different job (:class:`JobStateError`).
    """
    job = plan_video(input_path, output_path, config, overwrite)
    return run_video(job, colorizer, progress, options)


def run_video(
    job: VideoJob,
    colorizer: Colorizer,
    progress: ProgressCallback | None = None,
    options: JobOptions | None = None,
) -> VideoResult:
    """Carry out a planned job (see :func:`plan_video`), resuming it if its job folder holds
    an interrupted run of the same request.

    Raises:
        JobStateError: the job folder holds a different job, or another run is working on it.
    """
    options = options or JobOptions()
    info, output = job.info, job.output
    report = progress or (lambda event: None)
    job_dir = options.job_dir or jobs.default_job_dir(output)
    smoothing = smoothing_config(job.config)
    warmup = warmup_frames(smoothing) if smoothing is not None else 0
    segment_frames = jobs.segment_frames_for(info.fps, options.segment_seconds)
    times = frame_times(info.path, info.video_index)
    if len(times) != info.frame_count:
        raise DeoldifyError(
            f"{info.path}: {len(times)} frame timestamps for {info.frame_count} frames"
        )
    requested = jobs.new_manifest(
        job.source,
        output,
        info,
        colorizer.spec.name,
        weights_digest(colorizer.model),
        render_settings(job, colorizer, segment_frames, warmup),
        jobs.plan_segments(info.frame_count, segment_frames),
    )
    with jobs.JobLock(job_dir):
        manifest = jobs.open_job(job_dir, requested, options.fresh)
        jobs.remove_parts(output.parent, output.name + ".")
        tracker = _Tracker(job_dir, manifest, report)
        if manifest.joined is None:
            context = SegmentContext(info, job.settings, job.config, job_dir)
            works = [
                jobs.segment_work(s, warmup, times, info.format_start_time)
                for s in manifest.pending()
            ]
            workers = min(options.workers, len(works))
            if workers > 1:
                _colorize_in_workers(works, context, colorizer, workers, tracker)
            else:
                for work in works:
                    tracker.segment_done(encode_segment(work, context, colorizer, tracker.frames))
            tracker.joined(_join_segments(tracker.manifest, job_dir, info, job.settings, times))
            _remove_segment_files(tracker.manifest, job_dir)
        report(ProgressEvent("mux", 0, 1))
        _mux(job_dir / JOINED_NAME, job, output)
        report(ProgressEvent("mux", 1, 1))
        if not options.keep_job:
            jobs.clear_job(job_dir)
    if not options.keep_job:
        jobs.remove_job(job_dir)
    return VideoResult(output=output, frames=info.frame_count, info=info)


def render_settings(
    job: VideoJob, colorizer: Colorizer, segment_frames: int, warmup: int
) -> dict[str, Any]:
    """Every setting that changes the output frames (the device aside), for the manifest."""
    config = job.config
    return {
        "render_factor": colorizer.render_factor,
        "batch_size": config.batch_size,
        "model_batch_size": colorizer.batch_size,
        "smooth": config.smooth,
        "smooth_strength": config.smooth_strength if config.smooth else None,
        "encode": dataclasses.asdict(job.settings),
        "segment_frames": segment_frames,
        "warmup_frames": warmup,
    }


def smoothing_config(config: RenderConfig) -> SmoothingConfig | None:
    """The temporal smoothing a render asks for, or None when it is off."""
    return SmoothingConfig(strength=config.smooth_strength) if config.smooth else None


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of a network's state: every tensor's name, dtype, shape and bytes, in name order.

    The same weights give the same digest whatever file, device or memory layout they came
    from.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{data.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- one segment


@dataclass(frozen=True)
class SegmentContext:
    """What every segment of a job shares."""

    info: VideoInfo
    settings: EncodeSettings
    config: RenderConfig
    job_dir: Path


def segment_path(job_dir: Path, index: int) -> Path:
    """The file of segment ``index`` in a job folder."""
    return job_dir / f"segment-{index:05d}{concat.SEGMENT_SUFFIX}"


def encode_segment(
    work: SegmentWork,
    context: SegmentContext,
    colorizer: Colorizer,
    on_frames: Callable[[int], None],
) -> tuple[int, FileRecord]:
    """Colorize and encode one segment into its file in the job folder.

    The file is written as a ``.part``, synced, checked (its frame count) and renamed.

    Returns:
        (the segment's index, the record of its file).
    """
    final = segment_path(context.job_dir, work.segment.index)
    part = jobs.part_path(final)
    try:
        encode_colour_video(
            context.info, colorizer, context.settings, part, context.config, work, on_frames
        )
        _check_frame_count(part, work.segment.frame_count)
        jobs.sync_file(part)
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return work.segment.index, jobs.file_record(final, work.segment.frame_count)


def encode_colour_video(
    info: VideoInfo,
    colorizer: Colorizer,
    settings: EncodeSettings,
    out_path: Path,
    config: RenderConfig,
    work: SegmentWork,
    on_frames: Callable[[int], None],
) -> int:
    """Decode, colorize, smooth and encode one segment into a video-only NUT file.

    Frames ``[work.first, segment.start)`` are warm-up: they go through the model and the
    smoothing but are not encoded. Batches of ``config.batch_size`` frames start at
    ``work.first``, so a segment's frames never depend on how the rest of the job was run.
    The model runs in the calling thread; decoding, and smoothing plus encoding, run in two
    worker threads so that all three overlap.

    Args:
        on_frames: called with the number of the segment's frames each batch colorized.

    Returns:
        the number of frames written (always the segment's frame count: a short decode raises).
    """
    depth = plane_depth(info)
    full = full_range(info)
    matrix = "bt601" if is_rgb_source(info) else color.matrix_for(info.color_space)
    batches: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    colored: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    stop = threading.Event()
    errors: list[BaseException] = []
    chroma_size = settings.chroma_size
    segment = work.segment
    written = [0]

    def decode() -> None:
        try:
            with FrameReader(info, work.start_time, work.decoded) as reader:
                for batch in reader.batches(config.batch_size):
                    if not _put(batches, batch, stop):
                        return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)
        finally:
            _put(batches, _DONE, stop)

    smoothing = smoothing_config(config)

    def encode() -> None:
        state: SmootherState | None = None
        try:
            with FrameWriter(settings, out_path, concat.SEGMENT_MUXER) as writer:
                for luma_planes, luma_small, chroma, skip in _drain(colored, stop):
                    if smoothing is not None:
                        chroma, state = smooth_chroma(luma_small, chroma, state, smoothing)
                    if skip == luma_planes.shape[0]:
                        continue
                    chroma = color.convert_chroma(luma_small[skip:], chroma[skip:], matrix)
                    planes = color.chroma_to_planes(chroma, chroma_size, depth, full)
                    writer.write(luma_planes[skip:], planes)
                    written[0] += luma_planes.shape[0] - skip
                if stop.is_set():
                    raise _Cancelled
        except _Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)
            stop.set()

    # Daemon threads: an interrupt that lands anywhere, even before the try below, can never
    # leave the process waiting on a worker at exit.
    threads = [
        threading.Thread(target=decode, name="decode", daemon=True),
        threading.Thread(target=encode, name="encode", daemon=True),
    ]
    index = work.first
    try:
        for thread in threads:
            thread.start()
        for luma_planes in _drain(batches, stop):
            luma_small, chroma = colorizer.colorize_planes(luma_planes, depth, full)
            n = luma_planes.shape[0]
            skip = min(n, max(0, segment.start - index))
            if not _put(colored, (luma_planes, luma_small, chroma, skip), stop):
                break
            index += n
            on_frames(n - skip)
    except BaseException:
        stop.set()
        raise
    finally:
        if not stop.is_set():
            _put(colored, _DONE, stop)
        for thread in threads:
            if thread.ident is not None:  # started
                _join(thread, stop)
    if errors:
        raise errors[0]
    if written[0] != segment.frame_count:
        raise DeoldifyError(
            f"{info.path}: {written[0]} of the {segment.frame_count} frames of segment "
            f"{segment.index} were colorized"
        )
    return written[0]


def _check_frame_count(path: Path, expected: int) -> None:
    count = len(frame_timestamps(path, 0))
    if count != expected:
        raise EncodeError(f"{path}: the encoder wrote {count} frames instead of {expected}")


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
    """Join a worker, however long its work takes: it ends by itself after its queue's end
    marker, or within moments once ``stop`` is set (as on any error). An interrupt while
    waiting sets ``stop`` and is raised again once the worker has ended."""
    interrupted: BaseException | None = None
    while thread.is_alive():
        try:
            thread.join(timeout=1.0)
        except BaseException as exc:  # noqa: BLE001 - raised again below
            stop.set()
            interrupted = exc
    if interrupted is not None:
        raise interrupted


# --------------------------------------------------------------------------- job bookkeeping


class _Tracker:
    """Records finished work in the manifest (atomically) and reports progress."""

    def __init__(self, job_dir: Path, manifest: Manifest, report: ProgressCallback) -> None:
        self.job_dir = job_dir
        self.manifest = manifest
        self.report = report
        self.clock = jobs.WorkClock(manifest.work_seconds)
        self.done = manifest.frames_done
        self.report(ProgressEvent("colorize", self.done, manifest.frame_count))

    def frames(self, count: int) -> None:
        if count:
            self.done += count
            self.report(ProgressEvent("colorize", self.done, self.manifest.frame_count))

    def segment_done(self, result: tuple[int, FileRecord]) -> None:
        index, record = result
        self._save(self.manifest.with_segment(index, record))

    def joined(self, record: FileRecord) -> None:
        self._save(dataclasses.replace(self.manifest, joined=record))

    def _save(self, manifest: Manifest) -> None:
        self.manifest = dataclasses.replace(manifest, work_seconds=self.clock.total())
        jobs.write_manifest(self.job_dir, self.manifest)


def _join_segments(
    manifest: Manifest, job_dir: Path, info: VideoInfo, settings: EncodeSettings, times: list[float]
) -> FileRecord:
    """Join the finished segments into ``video.mkv`` in the job folder, without re-encoding;
    a variable-frame-rate video is given the source's own timestamps."""
    bounds = [0, *(r.segment.end for r in manifest.segments)]
    durations = concat.segment_durations(bounds, info.fps)
    names = [r.done.file for r in manifest.segments if r.done is not None]
    if len(names) != len(durations):
        raise DeoldifyError(
            f"{job_dir}: cannot join, {len(durations) - len(names)} segments missing"
        )
    list_path = job_dir / LIST_NAME
    jobs.write_atomic(
        list_path, concat.concat_list_text(list(zip(names, durations, strict=True))).encode()
    )
    final = job_dir / JOINED_NAME
    part = jobs.part_path(final)
    joined = jobs.part_path(job_dir / CONCAT_NAME)
    try:
        if info.vfr:
            concat.concat(list_path, joined, settings)
            muxing.retime(joined, times, part)
        else:
            concat.concat(list_path, part, settings)
        _check_frame_count(part, info.frame_count)
        jobs.sync_file(part)
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
        joined.unlink(missing_ok=True)
    jobs.sync_folder(job_dir)
    return jobs.file_record(final, info.frame_count)


def _remove_segment_files(manifest: Manifest, job_dir: Path) -> None:
    """Free the segments' disk space once the joined video is recorded."""
    for record in manifest.segments:
        if record.done is not None:
            (job_dir / record.done.file).unlink(missing_ok=True)
    (job_dir / LIST_NAME).unlink(missing_ok=True)


def _mux(video: Path, job: VideoJob, output: Path) -> None:
    """Mux the colour video with the source's other streams into ``output`` (via a ``.part``)."""
    part = jobs.part_path(output)
    try:
        muxer = muxing.muxer_for(output)
        muxing.mux(video, job.info, list(job.plans), part, muxer, job.settings.codec)
        jobs.sync_file(part)
        os.replace(part, output)
    finally:
        part.unlink(missing_ok=True)
    jobs.sync_folder(output.parent)


# --------------------------------------------------------------------------- worker processes


@dataclass(frozen=True)
class _WorkerSetup:
    """What a worker process needs to rebuild the colorizer and encode segments."""

    spec: ModelSpec
    state: dict[str, torch.Tensor]
    device: torch.device
    render_factor: int
    batch_size: int
    precision: str
    threads: int
    context: SegmentContext
    parent: int


def _colorize_in_workers(
    works: list[SegmentWork],
    context: SegmentContext,
    colorizer: Colorizer,
    workers: int,
    tracker: _Tracker,
) -> None:
    """Encode ``works`` in ``workers`` spawned processes, one per GPU (round robin) or each
    with an equal share of the CPU threads; this process records what they finish."""
    mp = torch.multiprocessing.get_context("spawn")
    tasks = mp.Queue()
    results = mp.Queue()
    for work in works:
        tasks.put(work)
    for _ in range(workers):
        tasks.put(None)
    state = {k: v.detach().to("cpu") for k, v in colorizer.model.state_dict().items()}
    threads = max(1, torch.get_num_threads() // workers)
    processes = []
    for device in _worker_devices(colorizer.device, workers):
        setup = _WorkerSetup(
            colorizer.spec, state, device, colorizer.render_factor, colorizer.batch_size,
            colorizer.precision, threads, context, os.getpid(),
        )  # fmt: skip
        processes.append(mp.Process(target=_worker_main, args=(setup, tasks, results)))
    for process in processes:
        process.start()
    remaining = {work.segment.index for work in works}
    try:
        while remaining:
            try:
                kind, payload = results.get(timeout=0.5)
            except queue.Empty:
                _check_workers(processes, results, len(remaining))
                continue
            if kind == "frames":
                tracker.frames(payload)
            elif kind == "done":
                tracker.segment_done(payload)
                remaining.discard(payload[0])
            else:
                raise payload
    finally:
        # Segments never taken (an error or Ctrl-C) must not keep this process flushing
        # them into the queue's full pipe at exit.
        tasks.cancel_join_thread()
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
        jobs.remove_parts(context.job_dir, "segment-")  # what stopped workers left


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
            raise DeoldifyError(f"a worker process died (exit code {process.exitcode})")
    if not any(process.is_alive() for process in processes) and results.empty():
        raise DeoldifyError(f"the worker processes ended with {unfinished} segments unfinished")


def _worker_main(setup: _WorkerSetup, tasks: Any, results: Any) -> None:
    """A worker process: take segments from ``tasks`` until None, report on ``results``.

    Ctrl-C is left to the parent, which stops the workers; a worker whose parent is gone
    (killed) stops at its next batch.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(setup.threads)
    try:
        model = setup.spec.builder()
        model.load_state_dict(setup.state)
        colorizer = Colorizer(
            model, setup.spec, setup.device, setup.render_factor, setup.batch_size,
            setup.precision,
        )  # fmt: skip

        def on_frames(count: int) -> None:
            if os.getppid() != setup.parent:
                raise SystemExit(1)
            results.put(("frames", count))

        while (work := tasks.get()) is not None:
            results.put(("done", encode_segment(work, setup.context, colorizer, on_frames)))
    except DeoldifyError as exc:
        results.put(("error", exc))
    except Exception:  # noqa: BLE001 - reaches the parent as text
        results.put(("error", RuntimeError(f"in a worker process:\n{traceback.format_exc()}")))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (default: every core) and return it.

    The model is the slow part, and on two cores giving it both measured fastest for the whole
    pipeline (``benchmarks/pipeline.py``). Its OpenMP threads wait passively rather than spin
    while ffmpeg works: ``OMP_WAIT_POLICY=PASSIVE`` is set when the package is imported, before
    torch loads.

    Raises:
        UsageError: ``threads`` is below 1.
    """
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    count = threads or max(1, os.cpu_count() or 1)
    torch.set_num_threads(count)
    return count
