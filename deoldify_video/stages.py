"""Three overlapping stages joined by bounded queues: produce (a thread), work (the calling
thread) and consume (a thread).

A segment of video runs this way: decoding, the model and encoding each keep a core busy. The
rules that keep it safe live here, once:

- A stage is waited for as long as it runs. Nothing is cut short because it is slow: an
  encoder that needs many seconds to take its last frames and flush (x264 at 4K, a slow preset,
  a busy machine, a GPU that outpaces the encoder) finishes its work.
- Only a failure stops the others early: an error in any stage, an exception in the calling
  thread (Ctrl-C), or :meth:`Stages.cancel` from any thread. Then every stage ends soon: the
  queues are polled, and the hooks given to :meth:`Stages.on_cancel` (e.g. killing an encoder
  blocked on its pipe) run at once.
- The first failure is what :meth:`Stages.run` raises; every thread has ended by then.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

_END = object()
_POLL_SECONDS = 0.1  # how often a blocked stage looks whether the run was stopped


class Cancelled(Exception):
    """The run was stopped before its end (by :meth:`Stages.cancel` or another stage's failure)."""


class Stages(Generic[In, Out]):
    """Run ``produce`` in a thread, ``work`` on each of its items in the calling thread, and
    ``consume`` on the results in another thread.

    Args:
        produce: returns the items to work on (an iterable, typically a generator that reads a
            decoder); runs in the thread named "decode".
        work: turns one item into one result; runs in the thread that calls :meth:`run`.
        consume: takes an iterator of every result, in order, and returns when it is exhausted;
            runs in the thread named "encode". The iterator raises :class:`Cancelled` if the
            run is stopped.
        depth: how many items (and results) may wait between two stages.

    >>> stages = Stages(lambda: range(4), lambda x: x * x, lambda items: print(list(items)))
    >>> stages.run()
    [0, 1, 4, 9]
    """

    def __init__(
        self,
        produce: Callable[[], Iterable[In]],
        work: Callable[[In], Out],
        consume: Callable[[Iterator[Out]], None],
        depth: int = 3,
    ) -> None:
        self._produce = produce
        self._work = work
        self._consume = consume
        self._inbox: queue.Queue[Any] = queue.Queue(depth)
        self._outbox: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._cause: BaseException | None = None
        self._hooks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        """Stop every stage soon (safe from any thread); :meth:`run` then raises
        :class:`Cancelled` unless a stage failed first."""
        self._fail(Cancelled("the run was cancelled"))

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` (from whichever thread stops the run) if the run is stopped early; at
        once if it already is. For work that does not poll, such as a write blocked on a pipe."""
        with self._lock:
            if not self._stop.is_set():
                self._hooks.append(hook)
                return
        hook()

    def run(self) -> None:
        """Run the three stages to the end.

        Raises:
            the first failure of any stage or of the calling thread (KeyboardInterrupt
            included), or :class:`Cancelled`; every stage's thread has ended by then.
        """
        # Daemon threads: an interrupt that lands anywhere, even before the try below, can
        # never leave the process waiting on a stage at exit.
        threads = [
            threading.Thread(target=self._run_producer, name="decode", daemon=True),
            threading.Thread(target=self._run_consumer, name="encode", daemon=True),
        ]
        try:
            for thread in threads:
                thread.start()
            for item in self._drain(self._inbox):
                self._put(self._outbox, self._work(item))
            self._put(self._outbox, _END)
            _wait(threads)
        except BaseException as exc:
            self._fail(exc)
            _wait(threads)
        if self._cause is not None:
            raise self._cause

    def _run_producer(self) -> None:
        items: Iterator[In] | None = None
        try:
            items = iter(self._produce())
            for item in items:
                self._put(self._inbox, item)
            self._put(self._inbox, _END)
        except BaseException as exc:  # noqa: BLE001 - raised by run()
            self._fail(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's resources (a decoder process) are freed now

    def _run_consumer(self) -> None:
        try:
            self._consume(self._drain(self._outbox))
        except BaseException as exc:  # noqa: BLE001 - raised by run()
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """Record the first failure, stop every stage and run the cancel hooks (once)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._cause = exc
            self._stop.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    def _put(self, box: queue.Queue[Any], item: object) -> None:
        while True:
            if self._stop.is_set():
                raise Cancelled("the run was stopped")
            try:
                box.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _drain(self, box: queue.Queue[Any]) -> Iterator[Any]:
        while True:
            if self._stop.is_set():
                raise Cancelled("the run was stopped")
            try:
                item = box.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item


def _wait(threads: list[threading.Thread]) -> None:
    """Join every started thread for as long as it runs."""
    for thread in threads:
        while thread.is_alive():
            thread.join(_POLL_SECONDS)
