"""Read an iterator ahead, and write results behind, in second threads, so that decoding, extraction and
encoding overlap the generator.

The source of a run (decode, pseudo-labels, dlib landmarks, mediapipe in its worker process) and the network
take turns in one loop otherwise, each leaving a core idle while the other works: mediapipe answers over a
pipe, and OpenCV, dlib and the network's kernels release the GIL, so a thread that extracts frame t+1 while
frame t is generated keeps both busy.  Encoding is the same at the other end (:class:`WriteBehind`): the colour
conversion and the H.264 encoder's calls of frame t run while frame t+1 is generated, which pays where cores are to
spare (a GPU's host).  Queues are bounded: memory stays flat, whatever the video's length.  Neither thread runs torch
kernels (they would start a second OpenMP team beside the network's; see :func:`v2v.sources.labels.one_hot`).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

READ_AHEAD = 2      # frames made ahead by default: one in the queue while the next is made (bench/NOTES.md,
                    # "Reading the source ahead")
WRITE_BEHIND = 4    # generated frames that may wait for the encoder (bench/NOTES.md, "Encoding behind the network")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[T], depth: int = 2, *, name: str = "v2v-read-ahead") -> Iterator[T]:
    """Yield what ``items`` yields, in order, with up to ``depth`` items made ahead in a daemon thread.

    ``depth`` 0 iterates inline (no thread).  An exception raised by ``items`` is re-raised here, at its place
    in the stream (after the items made before it).  When the consumer stops early (``close()``, an exception,
    an interrupt), the thread stops taking items, closes ``items`` in its own thread (its ``finally`` blocks
    and ``with`` exits run: an extractor's worker is released) and is joined before this generator returns.
    One consumer; ``items`` must not be iterated elsewhere meanwhile.
    """
    if depth <= 0:
        yield from items
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        """Put ``item`` unless asked to stop; True when it was put."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            while not stop.is_set():
                try:
                    item = next(it)
                except StopIteration:
                    offer(_DONE)
                    return
                if not offer(item):
                    return
        except BaseException as e:          # handed to the consumer, who raises it in its own thread
            offer(_Failure(e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:           # the consumer's own error (or none) is what matters here
                    pass

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


class WriteBehind(Generic[T]):
    """Hand items to ``consume`` in a daemon thread, in order, with up to ``depth`` of them waiting.

    ``put(item)`` returns at once (or waits while ``depth`` items wait).  Use as a context manager: leaving the
    block normally waits until every item is consumed; leaving it with an exception (an error, an interrupt) drops
    the items still waiting.  Either way the thread is joined before the block is left, so whatever ``consume``
    writes to is no longer touched afterwards.  An exception raised by ``consume`` is re-raised by the next
    ``put`` (or on leaving the block); the items after it are dropped.  ``depth`` 0 consumes inline.
    """

    def __init__(self, consume: Callable[[T], None], depth: int = WRITE_BEHIND, *,
                 name: str = "v2v-write-behind") -> None:
        self._consume, self.depth = consume, depth
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._drop = threading.Event()
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._run, name=name, daemon=True) if depth > 0 else None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None or self._drop.is_set():
                continue                          # drained without consuming: the producer is not left waiting
            try:
                self._consume(item)
            except BaseException as e:            # re-raised in the producer's thread
                self._error = e

    def _raise_error(self) -> None:
        if self._error is not None:               # kept: the items behind the failed one are not consumed
            raise self._error

    def put(self, item: T) -> None:
        if self._worker is None:
            self._consume(item)
            return
        if not self._worker.is_alive():
            raise RuntimeError("WriteBehind.put outside its 'with' block")
        self._raise_error()
        self._queue.put(item)                     # after an error the worker still drains: this returns

    def __enter__(self) -> "WriteBehind[T]":
        if self._worker is not None:
            self._worker.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._worker is None:
            return
        if exc_type is not None:
            self._drop.set()
        self._queue.put(_DONE)                    # the worker drains: this never waits for long
        self._worker.join()
        if exc_type is None:
            self._raise_error()
