"""Resumable jobs: the job folder, its manifest, its lock and the segment plan.

A long video is cut into segments by frame index. Each finished segment is an encoded file in
the job folder, recorded in ``manifest.json`` with its size, sha256 and frame count, so a run
that is killed at any moment loses at most the segment it was working on. Re-running the same
request picks up the recorded state; a request that differs from the recorded one (another
model, render setting or input file) is refused with a :class:`JobStateError` naming what
changed.

Files are only ever written through :mod:`deoldify_video.atomic` (as ``<name>.<pid>.part``,
synced and renamed over ``<name>``), so the folder never holds a half-written file under a
final name, and no process, not even a stray encoder left behind by a killed run, writes to
another process's file.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

from . import atomic
from .checksum import sha256_of
from .errors import DiskFullError, JobStateError, UsageError
from .media.sequence import ImageSequence, find_sequence, output_sequence
from .types import Segment, VideoInfo

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = "lock"
DEFAULT_SEGMENT_SECONDS = 10.0

# Bytes read for the content fingerprint: the head, the tail and evenly spaced samples.
_EDGE_BYTES = 1 << 20
_SAMPLE_BYTES = 1 << 18
_SAMPLES = 8
_CHUNK = 1 << 20


@dataclass(frozen=True)
class JobOptions:
    """Where a job lives and how it is cut and run.

    Attributes:
        job_dir: the job folder (a path or a str); None for ``<output>.job`` beside the
            output.
        fresh: discard an existing job in that folder and start over.
        keep_job: keep the job folder after a successful run.
        segment_seconds: target segment length in seconds (converted to whole frames).
        workers: processes colorizing segments at once (one per GPU, or splitting the CPU).
        stop: set it, from any thread, to stop the run soon (at the next batch of frames, or
            the next finished segment on a cluster): the call raises
            :class:`~deoldify_video.stages.Cancelled` and the job stays resumable.
    """

    job_dir: Path | None = None
    fresh: bool = False
    keep_job: bool = False
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    workers: int = 1
    stop: threading.Event | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.job_dir is not None:  # a str is welcome too
            object.__setattr__(self, "job_dir", Path(self.job_dir))
        if not self.segment_seconds > 0:
            raise UsageError(f"--segment-seconds must be positive, got {self.segment_seconds}")
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")


def default_job_dir(output: Path) -> Path:
    """``<output name>.job`` beside the output (``reel1_.tif.job`` for numbered frames
    ``reel1_%06d.tif``: no ``%`` in the job's paths)."""
    pattern = output_sequence(output)
    name = output.name if pattern is None else pattern[0] + pattern[1]
    return output.with_name(name + ".job")


# --------------------------------------------------------------------------- the segment plan


def segment_frames_for(fps: Fraction, seconds: float) -> int:
    """Whole frames in a segment of about ``seconds`` at ``fps`` (at least one)."""
    return max(1, round(Fraction(seconds) * fps))


def plan_segments(frame_count: int, segment_frames: int) -> tuple[Segment, ...]:
    """Cut frames ``[0, frame_count)`` into segments of ``segment_frames``.

    A remainder shorter than half a segment joins the last full segment instead of becoming a
    segment of its own (whose warm-up frames and start-up would cost more than its frames),
    so segments hold between half and one and a half times ``segment_frames``, a video
    shorter than that being one segment.
    """
    if frame_count < 1 or segment_frames < 1:
        raise ValueError(f"cannot plan {frame_count} frames in segments of {segment_frames}")
    starts = list(range(0, frame_count, segment_frames))
    if len(starts) > 1 and frame_count - starts[-1] < segment_frames / 2:
        starts.pop()
    ends = [*starts[1:], frame_count]
    return tuple(
        Segment(i, start, end) for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    )


@dataclass(frozen=True)
class SegmentWork:
    """How to produce one segment.

    Attributes:
        segment: the frames to encode, ``[segment.start, segment.end)``.
        first: the first frame decoded: ``segment.start`` minus the warm-up frames, which go
            through the model and the smoothing to settle its state but are not encoded.
        start_time: where the decoder seeks to reach frame ``first``, in seconds from the start
            of the file, or None to decode from the beginning.
    """

    segment: Segment
    first: int
    start_time: float | None

    @property
    def decoded(self) -> int:
        """Frames decoded: the warm-up frames and the segment's own."""
        return self.segment.end - self.first


def segment_work(
    segment: Segment, warmup: int, times: Sequence[float], format_start: float
) -> SegmentWork:
    """The decode range of ``segment`` with ``warmup`` frames before it.

    Args:
        segment: the segment.
        warmup: frames to decode before ``segment.start`` (fewer at the start of the film).
        times: sorted presentation time in seconds of every frame of the source.
        format_start: the container's start time (ffmpeg's ``-ss`` counts from it).

    The seek position lies halfway between frame ``first - 1`` and frame ``first``, so that
    rounding of either timestamp cannot drop or add a frame.
    """
    first = max(0, segment.start - warmup)
    if first == 0:
        return SegmentWork(segment, 0, None)
    midpoint = (times[first - 1] + times[first]) / 2
    return SegmentWork(segment, first, max(0.0, midpoint - format_start))


# --------------------------------------------------------------------------- identities


def fingerprint(path: Path) -> str:
    """sha256 of a file's size, first and last MiB and 8 samples of 256 KiB spread between
    them: cheap on a 10 GB film, and it changes when the file is re-encoded or replaced."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        if size <= 2 * _EDGE_BYTES + _SAMPLES * _SAMPLE_BYTES:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
            return digest.hexdigest()
        spans = [(0, _EDGE_BYTES)]
        spans += [(size * (i + 1) // (_SAMPLES + 1), _SAMPLE_BYTES) for i in range(_SAMPLES)]
        spans += [(size - _EDGE_BYTES, _EDGE_BYTES)]
        for offset, length in spans:
            f.seek(offset)
            digest.update(f.read(length))
    return digest.hexdigest()


@dataclass(frozen=True)
class InputIdentity:
    """Who the input file is: resolved path, size, modification time and content fingerprint."""

    path: str
    size: int
    mtime_ns: int
    fingerprint: str

    @classmethod
    def of(cls, path: Path) -> InputIdentity:
        stat = path.stat()
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns, fingerprint(path))

    @classmethod
    def of_sequence(cls, sequence: ImageSequence) -> InputIdentity:
        """An image sequence's identity: its pattern, its frames' total size and latest
        modification time, and a fingerprint of every frame's number and size and of the
        first, middle and last frames' content."""
        files = sequence.files()
        stats = [f.stat() for f in files]
        digest = hashlib.sha256(f"{sequence.start}:{sequence.count}".encode())
        for file, stat in zip(files, stats, strict=True):
            digest.update(f"{file.name}:{stat.st_size};".encode())
        for file in dict.fromkeys([files[0], files[len(files) // 2], files[-1]]):
            digest.update(fingerprint(file).encode())
        pattern = str(Path(sequence.pattern).resolve())
        size = sum(stat.st_size for stat in stats)
        return cls(pattern, size, max(stat.st_mtime_ns for stat in stats), digest.hexdigest())


def identify_input(source: Path, info: VideoInfo) -> InputIdentity:
    """The identity of a job's input: a video file, or the image sequence ``info`` describes."""
    if info.is_sequence:
        return InputIdentity.of_sequence(find_sequence(source))
    return InputIdentity.of(source)


def probe_record(info: VideoInfo) -> dict[str, Any]:
    """The probe result as JSON data (fractions as ``"n/d"``), without the path as typed and
    the key frames' times (one per key frame: the packets' own detail, as the frame times)."""
    data = dataclasses.asdict(info)
    del data["path"], data["key_times"]
    return _jsonable(data)


# --------------------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class FileRecord:
    """A finished file in the job folder: name (relative), frame count, size and sha256."""

    file: str
    frames: int
    size: int
    sha256: str


@dataclass(frozen=True)
class SegmentRecord:
    """A planned segment and, once it is done, its file, where it was made ("" for the
    driver's own machine) and in how many wall-clock seconds."""

    segment: Segment
    done: FileRecord | None = None
    node: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Manifest:
    """Everything a job folder records (``manifest.json``).

    Attributes:
        input: the input file's identity.
        output: the resolved output path.
        probe: the input's probe result (see :func:`probe_record`).
        model: the model's registry name.
        weights_sha256: sha256 of the weights (of the file, or of the tensors).
        settings: every setting that changes the output frames, as JSON data.
        segments: the segment plan by frame index, with each segment's state.
        joined: the joined (and, for variable frame rates, retimed) video, once made.
        work_seconds: wall-clock seconds spent on the job over all runs, so far.
        execution: where the job's first run did its arithmetic (``device``, ``threads``,
            ``workers``): a run that differs still resumes, but its segments may differ from
            an uninterrupted run's in the last bit of some chroma samples.
        version: the manifest format.
    """

    input: InputIdentity
    output: str
    probe: dict[str, Any]
    model: str
    weights_sha256: str
    settings: dict[str, Any]
    segments: tuple[SegmentRecord, ...]
    joined: FileRecord | None = None
    work_seconds: float = 0.0
    execution: dict[str, Any] = dataclasses.field(default_factory=dict)
    version: int = MANIFEST_VERSION

    @property
    def settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()

    @property
    def frame_count(self) -> int:
        return self.segments[-1].segment.end if self.segments else 0

    @property
    def frames_done(self) -> int:
        if self.joined is not None:
            return self.frame_count
        return sum(r.segment.frame_count for r in self.segments if r.done is not None)

    @property
    def segments_done(self) -> int:
        if self.joined is not None:
            return len(self.segments)
        return sum(r.done is not None for r in self.segments)

    def pending(self) -> list[Segment]:
        return [r.segment for r in self.segments if r.done is None]

    def with_segment(
        self, index: int, done: FileRecord | None, node: str = "", seconds: float = 0.0
    ) -> Manifest:
        records = list(self.segments)
        records[index] = SegmentRecord(records[index].segment, done, node, seconds)
        return dataclasses.replace(self, segments=tuple(records))

    def differences(self, requested: Manifest) -> list[str]:
        """What differs between this (recorded) job and a ``requested`` one, in words that
        name the command line's options. A touched input file whose size and content
        fingerprint are unchanged is no difference (see :meth:`notes`)."""
        changes = []
        old, new = self.input, requested.input
        if old.path != new.path:
            changes.append(f"the input is another file ({old.path} -> {new.path})")
        elif old.size != new.size:
            changes.append(f"the input file changed (size {old.size} -> {new.size} bytes)")
        elif old.fingerprint != new.fingerprint:
            changes.append("the input file's content changed")
        elif any(self.probe.get(key, value) != value for key, value in requested.probe.items()):
            # (a field the recorded probe lacks was added by a later version: not a change)
            changes.append("ffprobe now describes the input differently")
        if self.output != requested.output:
            changes.append(f"the output is another file ({self.output} -> {requested.output})")
        if self.model != requested.model:
            changes.append(f"--model {self.model} -> {requested.model}")
        elif self.weights_sha256 != requested.weights_sha256:
            changes.append(
                f"--model {self.model} has other weights (sha256 {self.weights_sha256[:12]} "
                f"-> {requested.weights_sha256[:12]})"
            )
        changes += _setting_changes(
            _flat(self.settings), _flat(requested.settings), _fps(self.probe)
        )
        return changes

    def notes(self, requested: Manifest) -> list[str]:
        """Warnings for a resume by ``requested``, which :meth:`differences` accepts: the
        input file was touched, or segments remain and their arithmetic runs elsewhere
        (another device, thread count or number of workers)."""
        notes = []
        if self.input.mtime_ns != requested.input.mtime_ns:
            notes.append(
                f"{requested.input.path}: its modification time changed, but its size and "
                "content fingerprint did not; resuming"
            )
        elsewhere = self.execution and requested.execution != self.execution
        if elsewhere and requested.execution and self.pending():
            notes.append(
                f"this job was started with {_options(self.execution)}, this run has "
                f"{_options(requested.execution)}: the segments colorized now may differ "
                "from an uninterrupted run's in the last bit of some chroma samples"
            )
        return notes

    def to_json(self) -> dict[str, Any]:
        segments = [
            {
                "index": r.segment.index,
                "start": r.segment.start,
                "end": r.segment.end,
                "state": "pending" if r.done is None else "done",
                **(dataclasses.asdict(r.done) if r.done is not None else {}),
                **({"node": r.node} if r.node else {}),
                **({"seconds": round(r.seconds, 3)} if r.done is not None else {}),
            }
            for r in self.segments
        ]
        return {
            "version": self.version,
            "input": dataclasses.asdict(self.input),
            "output": self.output,
            "probe": self.probe,
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "settings": self.settings,
            "settings_hash": self.settings_hash,
            "segments": segments,
            "joined": dataclasses.asdict(self.joined) if self.joined is not None else None,
            "work_seconds": round(self.work_seconds, 3),
            "execution": self.execution,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Rebuild a manifest from :meth:`to_json` data.

        Raises:
            KeyError, TypeError, ValueError: the data is not a manifest of this version.
        """
        if data["version"] != MANIFEST_VERSION:
            raise ValueError(f"manifest version {data['version']} (expected {MANIFEST_VERSION})")
        records = []
        for item in data["segments"]:
            segment = Segment(int(item["index"]), int(item["start"]), int(item["end"]))
            done = None
            if item["state"] == "done":
                done = FileRecord(
                    item["file"], int(item["frames"]), int(item["size"]), item["sha256"]
                )
            node, seconds = str(item.get("node", "")), float(item.get("seconds", 0.0))
            records.append(SegmentRecord(segment, done, node, seconds))
        joined = data["joined"]
        return cls(
            input=InputIdentity(**data["input"]),
            output=str(data["output"]),
            probe=dict(data["probe"]),
            model=str(data["model"]),
            weights_sha256=str(data["weights_sha256"]),
            settings=dict(data["settings"]),
            segments=tuple(records),
            joined=FileRecord(**joined) if joined is not None else None,
            work_seconds=float(data["work_seconds"]),
            execution=dict(data.get("execution") or {}),
        )


def new_manifest(
    source: Path,
    output: Path,
    info: VideoInfo,
    model: str,
    weights_sha256: str,
    settings: dict[str, Any],
    segments: Sequence[Segment],
    execution: dict[str, Any] | None = None,
) -> Manifest:
    """A manifest for a job that has not started (every segment pending).

    Args:
        execution: where the arithmetic runs (``{"device": "cpu", "threads": 2, "workers":
            1}``), recorded to warn a resume that runs it elsewhere.
    """
    return Manifest(
        input=identify_input(source, info),
        output=str(output.resolve()),
        probe=probe_record(info),
        model=model,
        weights_sha256=weights_sha256,
        settings=_jsonable(settings),
        segments=tuple(SegmentRecord(s) for s in segments),
        execution=_jsonable(execution or {}),
    )


def write_manifest(job_dir: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` atomically: a ``.part`` file, fsync, rename, fsync the folder."""
    atomic.write_bytes(job_dir / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=1).encode())


def read_manifest(job_dir: Path) -> Manifest | None:
    """The job's manifest, or None when the folder has none.

    Raises:
        JobStateError: the manifest is unreadable or of another format version.
    """
    path = job_dir / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Manifest.from_json(json.loads(text))
    except (KeyError, TypeError, ValueError) as exc:
        raise JobStateError(
            f"{path}: not a job manifest this version can read ({exc}); run the same command "
            "with --fresh to start the job over"
        ) from exc


# --------------------------------------------------------------------------- files


def file_record(path: Path, frames: int) -> FileRecord:
    """Record a finished file of the job folder."""
    return FileRecord(path.name, frames, path.stat().st_size, sha256_of(path))


def check_file(job_dir: Path, record: FileRecord, frames: int) -> str:
    """Why a recorded file can no longer be used ("" when it is intact): missing, wrong size,
    wrong sha256 or a frame count other than ``frames``."""
    path = job_dir / record.file
    if record.frames != frames:
        return f"it holds {record.frames} frames, not {frames}"
    if not path.is_file():
        return "its file is missing"
    if path.stat().st_size != record.size:
        return f"its size is {path.stat().st_size} bytes, not {record.size}"
    if sha256_of(path) != record.sha256:
        return "its sha256 does not match"
    return ""


# --------------------------------------------------------------------------- the folder


class JobLock:
    """An exclusive ``flock`` on ``<job_dir>/lock``, creating the folder if needed.

    The operating system drops the lock when the holding process ends, however it ends, so a
    lock left by a killed run never blocks the next one.

    Raises:
        JobStateError: another process holds the lock.
    """

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.path = job_dir / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> JobLock:
        check_job_folder(self.job_dir)
        try:
            self.job_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JobStateError(
                f"{self.job_dir}: cannot use this job folder ({exc.strerror or exc}); "
                "give another --job-dir"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JobStateError(
                f"{self.job_dir}: another run (process {holder}) is working on this job; "
                "wait for it to finish, or give this run another --job-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_locked(job_dir: Path) -> bool:
    """True while a run holds the job's lock."""
    try:
        fd = os.open(job_dir / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken just above
    return False


# Names of the job folder's working files (see the pipeline) and their temporary versions.
_OUR_PREFIXES = ("segment-", "video.", "segments.", MANIFEST_NAME + ".")


def _ours(name: str) -> bool:
    """A file name a job folder may hold."""
    return name in (MANIFEST_NAME, LOCK_NAME) or name.startswith(_OUR_PREFIXES)


def check_job_folder(job_dir: Path) -> None:
    """Refuse a folder that holds files of its own, so that a job never deletes them.

    Raises:
        JobStateError: ``job_dir`` is a file, or a folder with files no job writes.
    """
    if job_dir.exists() and not job_dir.is_dir():
        raise JobStateError(f"{job_dir}: the job folder is a file; give another --job-dir")
    if not job_dir.is_dir():
        return
    foreign = sorted(p.name for p in job_dir.iterdir() if not _ours(p.name))
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise JobStateError(
            f"{job_dir}: not a job folder (it holds {shown}); give an empty or new --job-dir"
        )


def clear_job(job_dir: Path) -> None:
    """Delete a job's files but the lock (the caller holds it)."""
    for path in job_dir.iterdir():
        if path.name != LOCK_NAME and _ours(path.name):
            path.unlink(missing_ok=True)


def remove_job(job_dir: Path) -> None:
    """Delete a finished job's folder (only the files a job writes, then the folder)."""
    clear_job(job_dir)
    (job_dir / LOCK_NAME).unlink(missing_ok=True)
    try:
        job_dir.rmdir()
    except OSError as exc:
        log.warning("%s: the job folder was not removed (%s)", job_dir, exc)


def open_job(job_dir: Path, requested: Manifest, fresh: bool) -> Manifest:
    """Start ``requested`` in ``job_dir``, or resume the job recorded there.

    The caller holds the job's :class:`JobLock`. Leftover ``.part`` files are deleted; every
    recorded file is verified (presence, size, sha256, frame count) and a bad one is put back
    in the queue with a warning.

    Raises:
        JobStateError: the folder holds another job (the message says what differs), or an
            unreadable manifest, and ``fresh`` is False.
    """
    recorded = None if fresh else read_manifest(job_dir)
    if recorded is None:
        clear_job(job_dir)
        write_manifest(job_dir, requested)
        return requested
    changes = recorded.differences(requested)
    if changes:
        raise JobStateError(
            f"{job_dir} holds a job started with a different request: {'; '.join(changes)}. "
            "Run the same command with --fresh to start over (its finished segments are "
            "discarded), or give another --job-dir"
        )
    atomic.remove_parts(job_dir)
    manifest = _verified(job_dir, recorded)
    for note in manifest.notes(requested):
        log.warning("%s", note)
    manifest = dataclasses.replace(manifest, input=requested.input)
    if manifest != recorded:
        write_manifest(job_dir, manifest)
    log.info(
        "%s: resuming, %d of %d segments done",
        job_dir,
        manifest.segments_done,
        len(manifest.segments),
    )
    return manifest


def _verified(job_dir: Path, manifest: Manifest) -> Manifest:
    """``manifest`` with every recorded segment file that fails :func:`check_file` forgotten
    and deleted."""
    if manifest.joined is not None:
        problem = check_file(job_dir, manifest.joined, manifest.frame_count)
        if not problem:
            return manifest
        log.warning("%s: the joined video cannot be used (%s); joining again", job_dir, problem)
        manifest = dataclasses.replace(manifest, joined=None)
    for record in manifest.segments:
        if record.done is None:
            continue
        problem = check_file(job_dir, record.done, record.segment.frame_count)
        if problem:
            log.warning(
                "%s: segment %d is damaged (%s); it will be redone",
                job_dir,
                record.segment.index,
                problem,
            )
            (job_dir / record.done.file).unlink(missing_ok=True)
            manifest = manifest.with_segment(record.segment.index, None)
    return manifest


# --------------------------------------------------------------------------- disk space

MB = 1_000_000


def video_size_estimate(manifest: Manifest) -> int:
    """Bytes of the job's colour video: the joined video once made; else measured on the
    finished segments; before any, the input's own size (the colour video at the default
    quality is of the order of its black-and-white source)."""
    if manifest.joined is not None:
        return manifest.joined.size
    done = [r.done for r in manifest.segments if r.done is not None]
    frames = sum(record.frames for record in done)
    if frames:
        return round(sum(record.size for record in done) / frames * manifest.frame_count)
    return manifest.input.size


@dataclass(frozen=True)
class SpaceNeed:
    """What the rest of a job will write on one disk.

    Attributes:
        folder: a folder the job writes to on that disk.
        needed: bytes the job still needs there at its peak, beyond what it holds now.
        free: bytes free there now.
    """

    folder: Path
    needed: int
    free: int

    @property
    def short(self) -> int:
        """Bytes missing (0 when there is room)."""
        return max(0, self.needed - self.free)


def space_needs(manifest: Manifest, job_dir: Path, output_dir: Path) -> list[SpaceNeed]:
    """The room the rest of a job needs, per disk: the job folder's and the output's.

    The peak is twice the colour video (see :func:`video_size_estimate`): every segment plus
    the joined video, then the joined video plus the output. The output's other streams,
    stream-copied from the input, are left out of the count.
    """
    video = video_size_estimate(manifest)
    if manifest.joined is not None:
        held, job_need = manifest.joined.size, 0
    else:
        held = sum(r.done.size for r in manifest.segments if r.done is not None)
        job_need = max(0, 2 * video - held)
    if job_dir.stat().st_dev == output_dir.stat().st_dev:
        return [SpaceNeed(job_dir, max(0, 2 * video - held), _free(job_dir))]
    return [
        SpaceNeed(job_dir, job_need, _free(job_dir)),
        SpaceNeed(output_dir, video, _free(output_dir)),
    ]


def warn_if_short(manifest: Manifest, job_dir: Path, output_dir: Path) -> None:
    """Log a warning for each disk with less free space than the rest of the job needs."""
    for need in space_needs(manifest, job_dir, output_dir):
        if need.short:
            log.warning(
                "%s: %s MB free, but the job needs about %s MB there; it will stop when the "
                "disk is full, keeping its finished segments",
                mount_point(need.folder),
                _mb(need.free),
                _mb(need.needed),
            )


def no_space_error(
    folder: Path, manifest: Manifest | None, job_dir: Path, output_dir: Path
) -> DiskFullError:
    """The error for a disk that filled up while the job wrote into ``folder``: which disk,
    about how much more it needs, and that the finished segments are kept."""
    more = ""
    if manifest is not None:
        disk = folder.stat().st_dev if folder.exists() else None
        for need in space_needs(manifest, job_dir, output_dir):
            if need.folder.stat().st_dev == disk:
                more = (
                    f"needs about {_mb(need.short)} MB more"
                    if need.short
                    else f"needs more than the {_mb(need.free)} MB free"
                )
    detail = f"{folder}; {more}" if more else str(folder)
    return DiskFullError(
        f"no space left on {mount_point(folder)} ({detail}); the finished segments are kept in "
        f"{job_dir}: free some space, or give --job-dir on another disk, and run the same "
        "command again",
        folder=str(folder),
    )


def mount_point(path: Path) -> Path:
    """The mount point of the disk that holds ``path`` (or its nearest existing parent)."""
    path = path.absolute()
    while not path.exists():
        path = path.parent
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def _free(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _mb(size: int) -> str:
    """Megabytes for messages: to a tenth below 10 MB, else whole (rounded up)."""
    if size < 10 * MB:
        return f"{size / MB:.1f}"
    return str(-(-size // MB))


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class JobStatus:
    """How far a job is (see :func:`job_status`).

    Attributes:
        job_dir: the folder.
        input, output: the job's input and output paths.
        segments_done, segments: finished and planned segments.
        frames_done, frames: frames in finished segments, and in the whole video.
        work_seconds: wall-clock seconds spent on the job so far, over all runs.
        running: a run holds the job's lock now.
        joined: every segment is done and joined; only the final mux remains.
        nodes: for a job made on a cluster, each node's finished segments (see
            :class:`NodeShare`), in the order of their first segment.
    """

    job_dir: Path
    input: str
    output: str
    segments_done: int
    segments: int
    frames_done: int
    frames: int
    work_seconds: float
    running: bool
    joined: bool
    nodes: tuple[NodeShare, ...] = ()

    @property
    def fps(self) -> float | None:
        """Frames per second so far, or None before the first segment is done."""
        if self.frames_done == 0 or self.work_seconds <= 0:
            return None
        return self.frames_done / self.work_seconds

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the throughput so far, or None when unknown."""
        rate = self.fps
        return None if rate is None else (self.frames - self.frames_done) / rate


@dataclass(frozen=True)
class NodeShare:
    """The segments one cluster node made for a job.

    Attributes:
        node: the node (``host:node id``).
        segments: the indexes of its finished segments.
        frames: the frames in them.
        seconds: the wall-clock seconds its worker spent on them.
    """

    node: str
    segments: tuple[int, ...]
    frames: int
    seconds: float

    @property
    def fps(self) -> float | None:
        """The node's throughput in frames per second, or None when unknown."""
        return self.frames / self.seconds if self.seconds > 0 else None


def node_shares(manifest: Manifest) -> tuple[NodeShare, ...]:
    """Who made which finished segment, for the segments a cluster node made."""
    shares: dict[str, list[SegmentRecord]] = {}
    for record in manifest.segments:
        if record.done is not None and record.node:
            shares.setdefault(record.node, []).append(record)
    return tuple(
        NodeShare(
            node,
            tuple(r.segment.index for r in records),
            sum(r.segment.frame_count for r in records),
            sum(r.seconds for r in records),
        )
        for node, records in shares.items()
    )


def job_status(job_dir: Path) -> JobStatus:
    """Read a job folder's progress.

    Raises:
        JobStateError: the folder holds no job, or its manifest is unreadable.
    """
    manifest = read_manifest(job_dir)
    if manifest is None:
        raise JobStateError(f"{job_dir}: no job here (no {MANIFEST_NAME})")
    return JobStatus(
        job_dir=job_dir,
        input=manifest.input.path,
        output=manifest.output,
        segments_done=manifest.segments_done,
        segments=len(manifest.segments),
        frames_done=manifest.frames_done,
        frames=manifest.frame_count,
        work_seconds=manifest.work_seconds,
        running=is_locked(job_dir),
        joined=manifest.joined is not None,
        nodes=node_shares(manifest),
    )


class WorkClock:
    """Adds the wall-clock time of this run to the time recorded by earlier runs."""

    def __init__(self, recorded: float) -> None:
        self.recorded = recorded
        self.started = time.monotonic()

    def total(self) -> float:
        return self.recorded + time.monotonic() - self.started


def _jsonable(data: Any) -> Any:
    """``data`` as it reads back from JSON (fractions as ``"n/d"``, tuples as lists)."""
    return json.loads(json.dumps(data, default=_encode))


def _encode(value: Any) -> Any:
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    raise TypeError(f"cannot store {type(value).__name__} in a job manifest")


# Render settings (the last part of their key) -> the command-line option that sets them.
_OPTIONS = {
    "render_factor": "--render-factor",
    "batch_size": "--batch-size",
    "codec": "--codec",
    "crf": "--crf",
    "preset": "--preset",
    "smooth_strength": "--smooth-strength",
    "device": "--device",
    "threads": "--threads",
    "workers": "--workers",
    "excerpt": "--start/--end",
}
# Settings that follow from others and need no words of their own when those changed.
_DERIVED = {"model_batch_size": "batch_size", "warmup_frames": "smooth_strength"}


def _setting_changes(old: dict[str, Any], new: dict[str, Any], fps: Fraction) -> list[str]:
    """The changed render settings (flattened), as the options that change them:
    ``--segment-seconds 5 -> 10``, ``--no-smooth``, ``--crf 17 -> 20``."""
    changed = {key for key in set(old) | set(new) if old.get(key) != new.get(key)}
    leaves = {key.rsplit(".", 1)[-1]: key for key in changed}
    words = []
    for key in sorted(changed):
        leaf = key.rsplit(".", 1)[-1]
        before, after = old.get(key), new.get(key)
        if _DERIVED.get(leaf) in leaves or (leaf == "smooth_strength" and "smooth" in leaves):
            continue
        if leaf == "smooth":
            words.append("--no-smooth (the job smooths)" if before else "smoothing on "
                         "(the job was started with --no-smooth)")  # fmt: skip
        elif leaf == "segment_frames":
            words.append(f"--segment-seconds {_seconds(before, fps)} -> {_seconds(after, fps)}")
        elif leaf in _OPTIONS:
            words.append(f"{_OPTIONS[leaf]} {_shown(before)} -> {_shown(after)}")
        else:
            words.append(f"{key.replace('_', ' ')} {_shown(before)} -> {_shown(after)}")
    return [", ".join(words)] if words else []


def _options(execution: dict[str, Any]) -> str:
    """``{"threads": 2, "workers": 1}`` -> ``--threads 2 --workers 1``."""
    return " ".join(f"{_OPTIONS.get(k, k)} {v}" for k, v in sorted(execution.items()))


def _shown(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _seconds(frames: Any, fps: Fraction) -> str:
    """A segment length in frames as the seconds ``--segment-seconds`` takes."""
    if not isinstance(frames, int) or fps <= 0:
        return _shown(frames)
    return f"{round(float(frames / fps), 2):g}"


def _fps(probe: dict[str, Any]) -> Fraction:
    """The frame rate recorded in a probe record (``"30000/1001"``), 0 if absent."""
    try:
        return Fraction(str(probe["fps"]))
    except (KeyError, ValueError, ZeroDivisionError):
        return Fraction(0)


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level: ``{"encode": {"crf": 17}}`` -> ``{"encode.crf": 17}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
