"""What the benchmarks measure besides wall time: CPU time, the resident memory of a process
and its children, and peaks of memory, disk and GPU load sampled in a thread (Linux /proc)."""

from __future__ import annotations

import resource
import threading
import time
from pathlib import Path
from types import TracebackType

import torch


def cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def process_rss(pid: int) -> int:
    """Resident bytes of one process (0 once it has ended)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total = process_rss(pid)
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += tree_rss(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (files that vanish while counted are skipped)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except FileNotFoundError:
            continue
    return total


class PeakSampler:
    """Sample, every ``interval`` seconds while the block runs, the resident memory of process
    ``pid`` with its children, the bytes under ``folder``, and, with ``gpu`` set, the GPU's
    utilisation (``torch.cuda.utilization``, through NVML; None where NVML is missing).

    >>> with PeakSampler(os.getpid(), work_dir) as peaks:   # doctest: +SKIP
    ...     run()
    >>> peaks.rss, peaks.disk, peaks.gpu_utilisation         # doctest: +SKIP
    """

    def __init__(
        self, pid: int, folder: Path | None = None, gpu: bool = False, interval: float = 0.05
    ) -> None:
        self.pid = pid
        self.folder = folder
        self.gpu = gpu
        self.interval = interval
        self.rss = 0
        self.disk = 0
        self._utilisation: list[float] = []
        self._gpu_error = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    @property
    def gpu_utilisation(self) -> float | None:
        """Mean of the GPU utilisation samples in percent, or None without samples."""
        if not self._utilisation:
            return None
        return sum(self._utilisation) / len(self._utilisation)

    def _sample(self) -> None:
        self.rss = max(self.rss, tree_rss(self.pid))
        if self.folder is not None:
            self.disk = max(self.disk, folder_bytes(self.folder))
        if self.gpu and not self._gpu_error:
            try:
                self._utilisation.append(float(torch.cuda.utilization()))
            except Exception as exc:  # noqa: BLE001 - NVML missing: no samples, said once
                self._gpu_error = str(exc)

    def _watch(self) -> None:
        while not self._done.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()
        self._sample()
