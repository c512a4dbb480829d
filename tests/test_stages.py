"""The three overlapping stages: every item through, slow stages waited for, failures first."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from deoldify_video.stages import Cancelled, Stages


def test_every_item_reaches_the_consumer_in_order():
    got: list[int] = []
    Stages(lambda: range(50), lambda x: x * 2, lambda items: got.extend(items), depth=2).run()
    assert got == [x * 2 for x in range(50)]


def test_a_slow_consumer_is_waited_for_until_it_has_taken_everything():
    """An encoder that needs seconds to take its last batches and flush is not cut off."""
    got: list[int] = []

    def slow_consume(items: Iterator[int]) -> None:
        for item in items:
            time.sleep(0.3)
            got.append(item)
        time.sleep(2.0)  # the flush of a slow encoder
        got.append(-1)

    Stages(lambda: range(10), lambda x: x, slow_consume, depth=3).run()
    assert got == [*range(10), -1]


def test_a_slow_producer_is_waited_for():
    def slow_produce() -> Iterator[int]:
        for i in range(4):
            time.sleep(0.5)
            yield i

    got: list[int] = []
    Stages(slow_produce, lambda x: x, lambda items: got.extend(items)).run()
    assert got == [0, 1, 2, 3]


def stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("decode", "encode")]


def test_a_producer_error_is_raised_and_stops_the_consumer():
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            yield 1
            raise ValueError("bad frame")
        finally:
            closed.set()

    with pytest.raises(ValueError, match="bad frame"):
        Stages(produce, lambda x: x, lambda items: list(items)).run()
    assert closed.is_set()
    assert stage_threads() == []


def test_a_producer_that_cannot_start_is_raised():
    def produce() -> Iterator[int]:
        raise FileNotFoundError("no decoder")

    with pytest.raises(FileNotFoundError, match="no decoder"):
        Stages(produce, lambda x: x, lambda items: list(items)).run()
    assert stage_threads() == []


def test_a_consumer_error_stops_an_endless_producer():
    def consume(items: Iterator[int]) -> None:
        next(items)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Stages(itertools.count, lambda x: x, consume).run()
    assert stage_threads() == []


def test_an_error_in_the_calling_thread_stops_both_stages():
    def work(x: int) -> int:
        if x == 5:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        Stages(itertools.count, work, lambda items: list(items)).run()
    assert stage_threads() == []


def test_cancel_from_another_thread_runs_the_hooks_and_raises_cancelled():
    """A consumer blocked where it cannot poll (a write into a full pipe) is released by its
    cancel hook (killing the encoder)."""
    released = threading.Event()
    stages: Stages[int, int]

    def consume(items: Iterator[int]) -> None:
        stages.on_cancel(released.set)
        next(items)
        released.wait()  # blocked until the hook runs
        raise BrokenPipeError("the encoder was killed")

    stages = Stages(itertools.count, lambda x: x, consume)
    timer = threading.Timer(0.5, stages.cancel)
    timer.start()
    with pytest.raises(Cancelled):
        stages.run()
    timer.join()
    assert released.is_set()
    assert stage_threads() == []


def test_a_hook_given_after_the_stop_runs_at_once():
    stages: Stages[int, int] = Stages(lambda: [], lambda x: x, lambda items: None)
    stages.cancel()
    calls: list[str] = []
    stages.on_cancel(lambda: calls.append("hook"))
    assert calls == ["hook"]
    with pytest.raises(Cancelled):
        stages.run()
