"""Segments made on a Ray cluster (``colorize --cluster ray``): the only module that imports
Ray, loaded only when a cluster is asked for.

One long-lived actor per GPU of the cluster (or per share of a node's CPUs on a cluster
without GPUs) holds the model: the weights travel once through Ray's object store and are
checked by sha256 on arrival. The driver (this process) keeps the segments of every film in
one pool (:class:`~deoldify_video.segment_pool.SegmentPool`) and hands each idle actor the
next one, two at a time so that an actor never waits for the driver. Inputs and job folders
live on storage every node sees; an actor first checks that it sees the same input (size and
content fingerprint from the job's manifest) and job folder, and writes each segment under a
``.part`` name carrying its node and process, synced and renamed. The driver alone writes the
manifests and holds the jobs' locks.

Faults: an actor lost with its node has its segments put back and made by the others; when
every actor is lost the run stops (:class:`InternalError`, exit code 1), and when no actor
can start because no live node could hold one it stops with :class:`ClusterError`, instead
of waiting forever as Ray would. Leaving (the end, an error, Ctrl-C) kills this run's actors and
no one else's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from . import jobs
from .errors import ClusterError, DeoldifyError, InternalError, UsageError
from .inference import Colorizer
from .pipeline import make_segment
from .segment_pool import SegmentPool, SegmentTask

try:
    import ray
    from ray.exceptions import RayActorError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise UsageError(
        'Ray is not installed: pip install "deoldify-video[ray]" to use --cluster ray'
    ) from exc

log = logging.getLogger(__name__)

ADDRESS_VARIABLE = "RAY_ADDRESS"
LOCAL = "local"  # --ray-address local: a private Ray on this machine
IN_FLIGHT = 2  # segments handed to an actor at a time
_POLL_SECONDS = 1.0  # how often the driver looks at the cluster while it waits


@dataclass(frozen=True)
class WorkerShape:
    """What each actor asks of the cluster and how many there are.

    Attributes:
        count: actors (one per GPU, or per ``threads`` CPUs of each node).
        gpus: GPUs each holds (1, or 0 on a cluster without GPUs).
        threads: CPU threads (and Ray CPUs) each uses.
    """

    count: int
    gpus: int
    threads: int

    @property
    def resources(self) -> str:
        return "a GPU" if self.gpus else f"{self.threads} CPUs"


def worker_shape(nodes: list[dict[str, Any]], device: str, threads: int | None) -> WorkerShape:
    """The actors a cluster of ``nodes`` (``ray.nodes()``) holds for ``--device``: one per GPU
    unless ``device`` is ``cpu`` or the cluster has no GPU; else one per ``threads`` CPUs of
    each node (default: the smallest node's CPUs).

    Raises:
        ClusterError: a GPU device asked for and no GPU in the cluster, or no live node.
    """
    alive = [node["Resources"] for node in nodes if node.get("Alive")]
    gpus = sum(int(resources.get("GPU", 0)) for resources in alive)
    if device.startswith("cuda") and not gpus:
        raise ClusterError(f"--device {device}: the Ray cluster has no GPU")
    if gpus and device in ("auto", "cuda") or device.startswith("cuda"):
        return WorkerShape(gpus, 1, threads or 1)
    cpus = [int(resources.get("CPU", 0)) for resources in alive if resources.get("CPU", 0) >= 1]
    if not cpus:
        raise ClusterError("the Ray cluster has no live node with a CPU")
    share = threads or min(cpus)
    count = sum(cpu // share for cpu in cpus)
    if not count:
        raise ClusterError(f"--threads {share}: no node of the Ray cluster has {share} CPUs")
    return WorkerShape(count, 0, share)


def check_reachable(address: str) -> None:
    """Refuse a ``HOST:PORT`` address (or ``ray://HOST:PORT``) where nothing listens: Ray
    itself would retry it forever. Other forms (``auto``) are left to Ray.

    Raises:
        ClusterError: the connection is refused or the host is unknown or unreachable.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port))).close()
    except OSError as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); is "
            "`ray start --head` running there?"
        ) from exc


def weights_blob(model: torch.nn.Module) -> bytes:
    """The model's state as the bytes of a ``torch.save`` file (tensors on the CPU)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().to("cpu") for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


class SegmentWorker:
    """A Ray actor: the model, loaded once, and the segments it is handed.

    Args:
        blob: the weights (:func:`weights_blob`), from the object store.
        sha256: the blob's sha256 as the driver sent it.
        colorizer: the driver's colorizer's settings, as ``(spec, render_factor, batch_size,
            precision)``; ``precision`` None picks the device's own.
        gpus: 1 to run on the actor's GPU.
        threads: torch's CPU threads.
    """

    def __init__(
        self, blob: bytes, sha256: str, colorizer: tuple[Any, ...], gpus: int, threads: int
    ) -> None:
        self.node = node_name()
        if hashlib.sha256(blob).hexdigest() != sha256:
            raise ClusterError(f"node {self.node}: the weights arrived damaged (sha256)")
        torch.set_num_threads(threads)
        spec, render_factor, batch_size, precision = colorizer
        state = torch.load(io.BytesIO(blob), weights_only=True)
        model = spec.builder_for(state)()
        model.load_state_dict(state)
        device = torch.device("cuda") if gpus else torch.device("cpu")
        self.colorizer = Colorizer(
            model, spec, device, render_factor, batch_size, precision if not gpus else None
        )
        self.checked: set[str] = set()

    def ready(self) -> str:
        """The actor's node, once the model is loaded."""
        return self.node

    def make(self, task: SegmentTask) -> tuple[str, Any]:
        """Make one segment: ``("done", SegmentDone)``, ``("failed", error)`` for an error of
        the film, or ``("refused", ClusterError)`` when this node does not see the job's files.
        """
        try:
            self._check_storage(task)
        except ClusterError as exc:
            return "refused", exc
        tag = f"{self.node.replace(':', '-')}-{os.getpid()}"
        outcome = make_segment(task, self.colorizer, lambda count: None, self.node, tag)
        if isinstance(outcome, DeoldifyError):
            return "failed", outcome
        return "done", outcome

    def _check_storage(self, task: SegmentTask) -> None:
        """Refuse a job whose folder or input this node does not see as the driver does."""
        job_dir = task.context.job_dir
        if str(job_dir) in self.checked:
            return
        try:
            manifest = jobs.read_manifest(job_dir)
        except DeoldifyError as exc:
            raise ClusterError(f"node {self.node}: {exc}") from exc
        if manifest is None:
            raise ClusterError(
                f"node {self.node} does not see the job folder {job_dir}: inputs and job "
                "folders must be on storage every node mounts at the same path"
            )
        expected = manifest.input
        try:
            seen = jobs.identify_input(Path(expected.path), task.context.info)
        except (OSError, DeoldifyError) as exc:
            raise ClusterError(
                f"node {self.node} cannot read the input {expected.path} ({exc}): inputs must "
                "be on storage every node mounts at the same path"
            ) from exc
        if (seen.size, seen.fingerprint) != (expected.size, expected.fingerprint):
            raise ClusterError(
                f"node {self.node} sees another file at {expected.path} (size {seen.size} "
                f"bytes, the job's input has {expected.size}, or other content): inputs must "
                "be on storage every node mounts at the same path"
            )
        self.checked.add(str(job_dir))


def node_name() -> str:
    """This process's Ray node: ``host:first 8 digits of the node id``."""
    return f"{socket.gethostname()}:{ray.get_runtime_context().get_node_id()[:8]}"


class RayCluster:
    """A :class:`~deoldify_video.segment_pool.SegmentExecutor` on a Ray cluster.

    Use :meth:`connect`; its actors are started by :meth:`run` and killed when it returns.
    """

    works_aside = True

    def __init__(self, colorizer: Colorizer, shape: WorkerShape) -> None:
        self.colorizer = colorizer
        self.shape = shape

    @classmethod
    @contextlib.contextmanager
    def connect(
        cls,
        address: str | None,
        colorizer: Colorizer,
        threads: int | None = None,
        device: str = "auto",
    ) -> Iterator[RayCluster]:
        """Join the cluster at ``address`` (default: ``RAY_ADDRESS``; ``local`` starts a
        private Ray on this machine) for the length of the ``with`` block.

        Raises:
            ClusterError: no address given, or the cluster cannot be reached or used.
        """
        address = address or os.environ.get(ADDRESS_VARIABLE)
        if not address:
            raise ClusterError(
                "--cluster ray needs the cluster's address: --ray-address HOST:PORT or "
                f"{ADDRESS_VARIABLE}, or --ray-address {LOCAL} for a private Ray on this machine"
            )
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if address == LOCAL:
            options["include_dashboard"] = False
        else:
            check_reachable(address)
            options["address"] = address
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        try:
            shape = worker_shape(ray.nodes(), device, threads)
            log.info(
                "Ray cluster at %s: %d workers with %s each", address, shape.count, shape.resources
            )
            yield cls(colorizer, shape)
        finally:
            ray.shutdown()

    def run(self, pool: SegmentPool) -> None:
        """Make every segment of ``pool`` on the cluster's actors (see the module's notes)."""
        colorizer = self.colorizer
        blob = weights_blob(colorizer.model)
        settings = (
            colorizer.spec,
            colorizer.render_factor,
            colorizer.batch_size,
            colorizer.precision,
        )
        blob_ref = ray.put(blob)
        actor_class = ray.remote(SegmentWorker).options(
            num_gpus=self.shape.gpus,
            num_cpus=self.shape.threads,
            max_restarts=0,
            # idle OpenMP threads must not spin while ffmpeg works (read when torch loads)
            runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
        )
        digest = hashlib.sha256(blob).hexdigest()
        actors: list[Any] = [
            actor_class.remote(blob_ref, digest, settings, self.shape.gpus, self.shape.threads)
            for _ in range(self.shape.count)
        ]
        interrupted = threading.Event()
        try:
            with interrupts_noted(interrupted):
                _Dispatcher(actors, pool, self.shape, interrupted).run()
        finally:
            for actor in actors:
                ray.kill(actor)


class _Dispatcher:
    """The driver's loop: hands segments to ready actors, records what comes back, and puts
    back the segments of a lost actor."""

    def __init__(
        self,
        actors: list[Any],
        pool: SegmentPool,
        shape: WorkerShape,
        interrupted: threading.Event,
    ) -> None:
        self.pool = pool
        self.shape = shape
        self.interrupted = interrupted
        self.starting = {actor.ready.remote(): actor for actor in actors}
        self.ready: list[Any] = []
        self.calls: dict[Any, tuple[Any, SegmentTask]] = {}  # ref -> (actor, task)

    def run(self) -> None:
        while len(self.pool) or self.calls:
            self._hand_out()
            refs = list(self.starting) + list(self.calls)
            if not refs:
                raise InternalError(
                    f"no Ray worker is left for the remaining {len(self.pool)} segments (their "
                    "nodes died or left); start nodes and run the same command again to resume"
                )
            finished, _ = ray.wait(refs, num_returns=1, timeout=_POLL_SECONDS)
            if self.interrupted.is_set():  # an interrupt that a Ray call caught and dropped
                raise KeyboardInterrupt
            if not finished:
                self._check_placeable()
            for ref in finished:
                if ref in self.starting:
                    self._started(ref)
                else:
                    self._returned(ref)

    def _hand_out(self) -> None:
        for actor in self.ready:
            while sum(a is actor for a, _ in self.calls.values()) < IN_FLIGHT:
                task = self.pool.take()
                if task is None:
                    return
                self.calls[actor.make.remote(task)] = (actor, task)

    def _started(self, ref: Any) -> None:
        actor = self.starting.pop(ref)
        try:
            node = ray.get(ref)
        except RayActorError as exc:
            log.warning("a Ray worker could not start: %s", _first_line(exc))
            return
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, DeoldifyError) else None
            error = cause or ClusterError(f"a Ray worker failed to start: {_first_line(exc)}")
            raise error from exc
        log.info("Ray worker ready on node %s", node)
        self.ready.append(actor)

    def _returned(self, ref: Any) -> None:
        actor, task = self.calls.pop(ref)
        try:
            kind, payload = ray.get(ref)
        except RayActorError as exc:
            self._lost(actor, task, exc)
            return
        if kind == "refused":
            raise payload
        if kind == "failed":
            self.pool.failed(task.film, payload)
            return
        self.pool.frames(task.film, task.work.segment.frame_count)
        self.pool.done(task, payload)

    def _lost(self, actor: Any, task: SegmentTask, exc: Exception) -> None:
        """An actor died (its node, most often): its segments are made by the others."""
        log.warning(
            "a Ray worker was lost (%s); segment %d is redone elsewhere",
            _first_line(exc),
            task.work.segment.index,
        )
        if actor in self.ready:
            self.ready.remove(actor)
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.pool.put_back(task)
        for ref, (other, other_task) in list(self.calls.items()):
            if other is actor:
                del self.calls[ref]
                self.pool.put_back(other_task)

    def _check_placeable(self) -> None:
        """While only starting actors remain, stop if no live node could ever hold one: Ray
        would wait for it forever."""
        if self.ready or not self.starting:
            return
        if not any(_holds(node, self.shape) for node in ray.nodes() if node.get("Alive")):
            raise ClusterError(
                f"no live node of the Ray cluster has {self.shape.resources} for a worker; "
                "start one and run the same command again to resume"
            )


@contextlib.contextmanager
def interrupts_noted(seen: threading.Event) -> Iterator[None]:
    """While in the block, a SIGINT (Ctrl-C) also sets ``seen``, besides doing what it did
    before (most often raising KeyboardInterrupt): a blocking Ray call that checks for signals
    can catch that exception and carry on, and the driver's loop looks at ``seen`` instead.
    Outside the main thread (where Python runs signal handlers) it does nothing.

    >>> import os, signal
    >>> seen, before = threading.Event(), signal.getsignal(signal.SIGINT)
    >>> with interrupts_noted(seen):
    ...     try:
    ...         os.kill(os.getpid(), signal.SIGINT)
    ...     except KeyboardInterrupt:
    ...         pass
    >>> seen.is_set(), signal.getsignal(signal.SIGINT) is before
    (True, True)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        seen.set()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _holds(node: dict[str, Any], shape: WorkerShape) -> bool:
    resources = node["Resources"]
    if shape.gpus:
        return resources.get("GPU", 0) >= shape.gpus
    return resources.get("CPU", 0) >= shape.threads


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
