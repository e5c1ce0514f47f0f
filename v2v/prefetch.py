"""Read an iterator ahead in a second thread, so that decoding and extraction overlap the generator.

The source of a run (decode, pseudo-labels, dlib landmarks, mediapipe in its worker process) and the network
take turns in one loop otherwise, each leaving a core idle while the other works: mediapipe answers over a
pipe, and OpenCV, dlib and the network's kernels release the GIL, so a thread that extracts frame t+1 while
frame t is generated keeps both busy.  The queue is bounded: memory stays flat, whatever the video's length.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

READ_AHEAD = 2      # frames made ahead by default: one in the queue while the next is made (bench/NOTES.md,
                    # "Reading the source ahead")

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
