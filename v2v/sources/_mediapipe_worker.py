"""mediapipe 0.10.21 calls, kept free of torch and of this package's other modules.

mediapipe pins numpy<2, so it usually lives in its own virtual environment and this file runs
there as a long-lived worker: ``python _mediapipe_worker.py serve TASK`` (see :func:`serve` for
the protocol).  When mediapipe imports in the calling interpreter, :class:`Solution` (or the
one-shot :func:`run`) is used directly instead.

Tasks (``static_image_mode``: every image is processed on its own):
* ``pose``: one person per image (BlazePose): ``landmarks [K, 33, 4]`` (x, y in [0, 1] of
  that image, z, visibility), NaN rows for images without a person.
* ``selfie``: person segmentation: ``mask_i [H, W]`` float32 in [0, 1] per image ``i``.
"""
from __future__ import annotations

import io
import os
import struct
import sys

import numpy as np

# Options per task and their defaults; anything else is a caller's typo and is refused.
OPTIONS = {
    "pose": {"model_complexity": 1, "min_detection_confidence": 0.5},
    "selfie": {"model_selection": 1},
}


def check_options(task: str, kw: dict) -> dict:
    """``kw`` completed with the task's defaults; ValueError / TypeError for an unknown task / option."""
    if task not in OPTIONS:
        raise ValueError(f"unknown mediapipe task {task!r} (known: {', '.join(OPTIONS)})")
    unknown = sorted(set(kw) - set(OPTIONS[task]))
    if unknown:
        raise TypeError(f"mediapipe task {task!r} has no option {', '.join(unknown)} "
                        f"(options: {', '.join(OPTIONS[task])})")
    return {**OPTIONS[task], **kw}


def check_image(i: int, img) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape:
        raise ValueError(f"mediapipe image {i} must be a non-empty uint8 RGB array [H, W, 3], "
                         f"got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


class Solution:
    """One open mediapipe solution object for ``task``; :meth:`process` takes any number of batches."""

    def __init__(self, task: str, **kw):
        import mediapipe as mp  # noqa: PLC0415 (optional extra)

        self.task, self.options = task, check_options(task, kw)
        o = self.options
        if task == "pose":
            self._sol = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=int(o["model_complexity"]),
                                               enable_segmentation=False,
                                               min_detection_confidence=float(o["min_detection_confidence"]))
        else:
            self._sol = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=int(o["model_selection"]))

    def process(self, images: list) -> dict:
        images = [check_image(i, im) for i, im in enumerate(images)]  # all checked before any work
        if self._sol is None:
            raise RuntimeError(f"mediapipe {self.task!r} solution is closed")
        if self.task == "pose":
            out = np.full((len(images), 33, 4), np.nan, dtype=np.float32)
            for i, img in enumerate(images):
                res = self._sol.process(img)
                if res.pose_landmarks is not None:
                    out[i] = [(p.x, p.y, p.z, p.visibility) for p in res.pose_landmarks.landmark]
            return {"landmarks": out}
        return {f"mask_{i}": np.asarray(self._sol.process(img).segmentation_mask, dtype=np.float32)
                for i, img in enumerate(images)}

    def close(self) -> None:
        if self._sol is not None:
            self._sol.close()
            self._sol = None

    def __enter__(self) -> "Solution":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run(task: str, images: list, **kw) -> dict:
    """One-shot: open the solution, process ``images``, close it."""
    with Solution(task, **kw) as sol:
        return sol.process(images)


# ---- wire format shared with v2v.sources.extras.MediapipeSession -------------------------------------
HEADER = struct.Struct("<Q")   # payload length in bytes; 0 = end of session
ERROR_KEY = "__error__"        # a response holding this key carries an error message instead of results
MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an np.savez payload is a zip (an empty one: no entries)


def write_frame(f, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    f.write(HEADER.pack(buf.tell()))
    f.write(buf.getbuffer())
    f.flush()


def unpack(data) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _fill(f, buf: bytearray, start: int = 0) -> bool:
    """Fill ``buf[start:]`` from ``f``; False at end of stream."""
    with memoryview(buf) as view:
        while start < len(buf):
            k = f.readinto(view[start:])
            if not k:
                return False
            start += k
    return True


def read_frame(f) -> bytearray | None:
    """The next payload; None at an end-of-session frame or end of stream; ValueError for bytes that
    are no frame (checked before the announced length is trusted with an allocation)."""
    head = bytearray(HEADER.size)
    if not _fill(f, head):
        return None
    (n,) = HEADER.unpack(head)
    if n == 0:
        return None
    start = bytearray(4)
    if not _fill(f, start):
        return None
    if n < len(start) or start not in MAGICS:
        raise ValueError(f"not a protocol frame: {bytes(head + start)!r}")
    data = bytearray(n)
    data[:len(start)] = start
    return data if _fill(f, data, len(start)) else None


def serve(task: str) -> int:
    """Answer requests on stdin until an empty frame or end of stream.

    Every frame is an 8-byte little-endian length and an ``np.savez`` payload.  The first request
    holds the options (``kw_NAME`` scalars) and is answered with ``{"ready": 1}``; then each request
    ``{"n": K, "img_0" .. "img_{K-1}"}`` is answered with the task's results.  A failure is answered
    with ``{ERROR_KEY: message}``; after a failed start the worker exits.
    """
    # mediapipe, absl and glog may print to fd 1: point fd 1 at stderr and keep the protocol on a
    # private duplicate of the original stdout, so no log line can land inside a frame.
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer

    first = read_frame(requests)
    if first is None:
        return 0
    try:
        sol = Solution(task, **{k[3:]: v.item() for k, v in unpack(first).items() if k.startswith("kw_")})
    except Exception as exc:  # noqa: BLE001 (reported to the caller)
        write_frame(proto, _error(exc))
        return 1
    write_frame(proto, {"ready": np.asarray(1)})
    with sol:
        while (data := read_frame(requests)) is not None:
            write_frame(proto, _answer(sol, data))
            del data  # hold no request while waiting for the next one
    return 0


def _answer(sol: Solution, data: bytearray) -> dict:
    try:
        req = unpack(data)
        return sol.process([req[f"img_{i}"] for i in range(int(req["n"]))])
    except Exception as exc:  # noqa: BLE001 (reported; the session goes on)
        return _error(exc)


def _error(exc: Exception) -> dict:
    return {ERROR_KEY: np.asarray(f"{type(exc).__name__}: {exc}")}


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "serve":
        return serve(argv[2])
    print(f"usage: {argv[0]} serve TASK   (TASK: {' | '.join(OPTIONS)})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
