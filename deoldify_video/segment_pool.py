"""The driver's queue of segments, and the small interface of whatever runs them.

A run (one film or a batch of them) puts every pending segment of every film into one
:class:`SegmentPool`. An executor (:class:`SegmentExecutor`: this process, local worker
processes, or a Ray cluster) takes segments from it, runs them wherever it runs them, and hands
back what each gave: frames done, a finished file, or an error. The pool hands out the segments
of the earliest unfinished film first, so films finish one after another, and calls the driver
back for each report; the driver alone writes the manifests and finishes the films.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import DeoldifyError
from .jobs import FileRecord, SegmentWork
from .media.writer import EncodeSettings
from .stages import Cancelled
from .types import RenderConfig, VideoInfo


@dataclass(frozen=True)
class SegmentContext:
    """What every segment of one film shares."""

    info: VideoInfo
    settings: EncodeSettings
    config: RenderConfig
    job_dir: Path


@dataclass(frozen=True)
class SegmentTask:
    """One segment to make.

    Attributes:
        film: the film's position in the run (0 for a single film).
        context: what the film's segments share.
        work: the segment and its decode range.
    """

    film: int
    context: SegmentContext
    work: SegmentWork


@dataclass(frozen=True)
class SegmentDone:
    """A finished segment file, as a worker hands it back.

    Attributes:
        record: the file in the job folder.
        node: where it was made ("" for this machine), for ``jobs status``.
        seconds: wall-clock seconds the worker spent on it.
    """

    record: FileRecord
    node: str = ""
    seconds: float = 0.0


class SegmentPool:
    """Segments waiting to be made, in film order, and the driver's callbacks for each report.

    Args:
        tasks: every pending segment of the run, films in order.
        on_frames: ``(film, count)``: ``count`` more frames of a film were colorized.
        on_done: ``(task, done)``: a segment file is finished.
        on_failed: ``(film, error)``: a film cannot be finished; its other segments are
            dropped from the pool (their reports that still arrive are recorded all the same).
        stop: once set, the pool's methods raise :class:`~deoldify_video.stages.Cancelled`,
            which stops the executor (see :attr:`~deoldify_video.jobs.JobOptions.stop`).
    """

    def __init__(
        self,
        tasks: Sequence[SegmentTask],
        on_frames: Callable[[int, int], None],
        on_done: Callable[[SegmentTask, SegmentDone], None],
        on_failed: Callable[[int, DeoldifyError], None],
        stop: threading.Event | None = None,
    ) -> None:
        self._waiting = collections.deque(tasks)
        self._stop = stop
        self._on_frames = on_frames
        self._on_done = on_done
        self._on_failed = on_failed
        self._failed: set[int] = set()

    def __len__(self) -> int:
        """Segments still waiting to be taken."""
        self._check_stop()
        self._drop_failed()
        return len(self._waiting)

    def take(self) -> SegmentTask | None:
        """The next segment to make, or None when none waits."""
        self._check_stop()
        self._drop_failed()
        return self._waiting.popleft() if self._waiting else None

    def put_back(self, task: SegmentTask) -> None:
        """A taken segment whose worker was lost: it is the next one handed out."""
        self._waiting.appendleft(task)

    def frames(self, film: int, count: int) -> None:
        """``count`` more frames of ``film`` went through the model."""
        self._on_frames(film, count)
        self._check_stop()

    def done(self, task: SegmentTask, done: SegmentDone) -> None:
        """A taken segment is finished."""
        self._on_done(task, done)
        self._check_stop()

    def failed(self, film: int, error: DeoldifyError) -> None:
        """A segment of ``film`` failed with ``error``: the film is given up (the first error
        of a film is the one reported)."""
        if film in self._failed:
            return
        self._failed.add(film)
        self._on_failed(film, error)

    def _check_stop(self) -> None:
        if self._stop is not None and self._stop.is_set():
            raise Cancelled("the run was stopped (JobOptions.stop)")

    def _drop_failed(self) -> None:
        self._waiting = collections.deque(t for t in self._waiting if t.film not in self._failed)


class SegmentExecutor(Protocol):
    """Something that makes segments: takes tasks from a pool until it is empty and every
    taken task is reported back, then returns.

    An error of one segment caused by its film (a damaged frame, a decoder failure) is reported
    with :meth:`SegmentPool.failed` and the executor goes on with the other films; a fault of
    the executor itself (a worker that died for no reason of the film's) is raised.
    """

    works_aside: bool
    """True when the segments are made outside the driver's process and its threads (a
    cluster): the driver then joins and muxes finished films in a thread while the executor
    goes on."""

    def run(self, pool: SegmentPool) -> None: ...
