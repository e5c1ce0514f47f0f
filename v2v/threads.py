"""How many threads the network gets while the source is extracted beside it, on a CPU.

With the source read ahead (:mod:`v2v.prefetch`) the network's OpenMP team and the extractor (OpenCV, dlib, a
mediapipe worker process) share the machine's cores.  On a CPU with few cores, which split streams fastest
depends on the task: on a 2-core CPU the body model's run (mediapipe beside it) was 1.25x faster end to end with
one network thread fewer, the face model's 1.1x slower (bench/NOTES.md, "Threads beside the extractor").  So the
split is measured, not guessed: :class:`ThreadTuner` times windows of frames at ``n`` and ``n - 1`` threads in
turn early in the run and keeps the faster.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")   # a thread count the user set is kept as it is
CLEARLY_SLOWER = 1.25    # one fewer this much slower in the first pair of windows: stop measuring, keep them all


class ThreadTuner:
    """Tries the network's thread count ``n`` against ``n - 1`` in alternating windows of ``window`` frames
    (``rounds`` windows each, after ``skip`` frames of warm-up), then keeps the one whose median window was
    faster by more than ``margin`` (ties keep ``n``); when the first window at ``n - 1`` is clearly slower
    (``CLEARLY_SLOWER``), ``n`` is kept at once.  Call :meth:`tick` after every frame and :meth:`close`
    at the end of the run (restores the count it found).  Time is the whole loop's (waiting for the source and
    writing included), since that is what the split trades.  Does nothing with one thread, or when the user set
    a thread count (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``)."""

    def __init__(self, *, window: int = 6, rounds: int = 3, skip: int = 4, margin: float = 0.05,
                 clock: Callable[[], float] = time.perf_counter,
                 get_threads: Callable[[], int] = torch.get_num_threads,
                 set_threads: Callable[[int], None] = torch.set_num_threads,
                 user_set: bool | None = None) -> None:
        self._clock, self._set = clock, set_threads
        self.window, self.skip, self.margin = int(window), int(skip), float(margin)
        self.original = n = int(get_threads())
        if user_set is None:
            user_set = any(os.environ.get(k) for k in THREAD_ENV)
        self._plan = [n, n - 1] * int(rounds) if n > 1 and not user_set else []
        self._seconds: dict[int, list[float]] = {}
        self._frames = 0
        self._start: float | None = None
        self.chosen: int | None = None if self._plan else n       # None while measuring

    def tick(self) -> None:
        """One frame is done."""
        if self.chosen is not None:
            return
        self._frames += 1
        if self._frames < self.skip:
            return
        now = self._clock()
        if self._start is None:                 # the first window starts here
            self._start = now
            self._set(self._plan[0])
            return
        if (self._frames - self.skip) % self.window:
            return
        threads = self._plan.pop(0)
        self._seconds.setdefault(threads, []).append(now - self._start)
        self._start = now
        n = self.original
        first_pair = threads == n - 1 and len(self._seconds[threads]) == 1
        if first_pair and self._seconds[threads][0] > CLEARLY_SLOWER * self._seconds[n][0]:
            self._plan = []                     # no more frames at a count that loses this clearly
            self.chosen = n
        elif self._plan:
            self._set(self._plan[0])
            return
        else:
            fewer, full = statistics.median(self._seconds[n - 1]), statistics.median(self._seconds[n])
            self.chosen = n - 1 if fewer < (1 - self.margin) * full else n
        self._set(self.chosen)

    def close(self) -> None:
        self._set(self.original)
