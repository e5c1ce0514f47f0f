"""Ground-truth optical flow with OpenCV DIS, a forward-backward confidence mask, and an on-disk cache.

Used by the trainer (flow loss, D_V condition) and by the temporal warping-error metric.  FlowNet2 (what the
paper used) needs downloaded weights; DIS is the practical offline substitute (see shared FACTS.md).

Convention (docs/CONVENTIONS.md): all flows here are BACKWARD flows in PIXELS, from the current frame ``cur``
(time t) to the previous frame ``prev`` (time t-1):

    cur[y, x] ~= prev[y + flow[y, x, 1], x + flow[y, x, 0]]

so ``v2v.model.flow.warp(prev, flow)`` approximates ``cur``.  Numpy flows returned by this module are float32
arrays of shape ``[H, W, 2]`` (channel 0 = x/right, 1 = y/down), the layout OpenCV uses;
:func:`flow_to_tensor` turns them into the model's ``[2, H, W]`` (or ``[B, 2, H, W]``) torch layout.

Confidence is a forward-backward check (Sundaram et al. 2010): a pixel is trusted when following the
backward flow and then the forward flow at the landing point returns close to where it started:

    |b(x) + f(x + b(x))|^2 < alpha1 * (|b(x)|^2 + |f(x + b(x))|^2) + alpha2

Pixels that fail it are (mostly) occluded or badly estimated; the mask is float32 ``[H, W]`` with values
0/1, 1 = trusted.

Frames are uint8 RGB ``[H, W, 3]`` (or uint8 grayscale ``[H, W]``).  DIS runs on grayscale.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
CACHE_FORMAT_VERSION = "1"


@dataclass(frozen=True)
class FlowParams:
    """Everything that changes the computed flow / confidence (and so the cache key)."""

    preset: str = "medium"
    fb_alpha1: float = 0.01  # relative tolerance of the forward-backward check
    fb_alpha2: float = 0.5   # absolute tolerance, in squared pixels

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {self.preset!r}; choose one of {sorted(PRESETS)}")

    def key(self) -> str:
        return f"dis-{self.preset}-a1={self.fb_alpha1!r}-a2={self.fb_alpha2!r}-v{CACHE_FORMAT_VERSION}"


def _gray(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise TypeError(f"optical flow expects uint8 frames, got {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return np.ascontiguousarray(frame[..., 0])
    raise ValueError(f"optical flow expects [H, W, 3] RGB or [H, W] gray frames, got shape {frame.shape}")


def _dis(preset: str):
    if preset not in PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(PRESETS)}")
    return cv2.DISOpticalFlow_create(PRESETS[preset])


def warp_numpy(image: np.ndarray, flow: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """Backward-warp ``image`` [H, W, (C)] with ``flow`` [H, W, 2] (pixels), like ``v2v.model.flow.warp``.

    Samples ``image`` at ``(x + flow_x, y + flow_y)`` bilinearly (pixel centres on integer coordinates, i.e.
    align_corners=True), clamping to the border pixel.  Keeps the input dtype (float math inside).
    """
    h, w = flow.shape[:2]
    if image.shape[:2] != (h, w):
        raise ValueError(f"warp_numpy: image {image.shape} and flow {flow.shape} differ in size")
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = xs + flow[..., 0].astype(np.float32)
    map_y = ys + flow[..., 1].astype(np.float32)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    src = image.astype(np.float32) if image.dtype != np.float32 else image
    out = cv2.remap(src, map_x, map_y, interp, borderMode=cv2.BORDER_REPLICATE)
    if out.ndim == 2 and image.ndim == 3:
        out = out[..., None]
    return out.astype(image.dtype) if image.dtype != np.float32 else out


def backward_flow(cur: np.ndarray, prev: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Flow from ``cur`` (t) to ``prev`` (t-1): float32 [H, W, 2] pixels, ``warp(prev, flow) ~= cur``."""
    g_cur, g_prev = _gray(cur), _gray(prev)
    if g_cur.shape != g_prev.shape:
        raise ValueError(f"frames differ in size: {g_cur.shape} vs {g_prev.shape}")
    # calc(I0, I1) returns u with I0(x) ~= I1(x + u(x)): I0 = cur, I1 = prev is the backward flow.
    return _dis(preset).calc(g_cur, g_prev, None).astype(np.float32)


def forward_backward_confidence(backward: np.ndarray, forward: np.ndarray,
                                alpha1: float = 0.01, alpha2: float = 0.5) -> np.ndarray:
    """0/1 float32 [H, W] mask of pixels whose backward flow is confirmed by the forward flow.

    ``backward`` maps cur -> prev, ``forward`` maps prev -> cur (both [H, W, 2] pixels).
    """
    fwd_at_landing = warp_numpy(forward.astype(np.float32), backward.astype(np.float32))
    round_trip = backward + fwd_at_landing
    err = np.sum(round_trip ** 2, axis=-1)
    tol = alpha1 * (np.sum(backward ** 2, axis=-1) + np.sum(fwd_at_landing ** 2, axis=-1)) + alpha2
    h, w = backward.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    lx, ly = xs + backward[..., 0], ys + backward[..., 1]
    inside = (lx >= 0) & (lx <= w - 1) & (ly >= 0) & (ly <= h - 1)  # leaving the frame = not visible
    return ((err < tol) & inside).astype(np.float32)


def flow_and_confidence(cur: np.ndarray, prev: np.ndarray,
                        params: FlowParams = FlowParams()) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow cur -> prev [H, W, 2] float32 and its 0/1 confidence [H, W] float32."""
    g_cur, g_prev = _gray(cur), _gray(prev)
    if g_cur.shape != g_prev.shape:
        raise ValueError(f"frames differ in size: {g_cur.shape} vs {g_prev.shape}")
    dis = _dis(params.preset)
    bwd = dis.calc(g_cur, g_prev, None).astype(np.float32)
    fwd = dis.calc(g_prev, g_cur, None).astype(np.float32)
    return bwd, forward_backward_confidence(bwd, fwd, params.fb_alpha1, params.fb_alpha2)


def flow_to_tensor(flow: np.ndarray):
    """[H, W, 2] (or [T, H, W, 2]) numpy flow -> torch float32 [2, H, W] (or [T, 2, H, W])."""
    import torch

    arr = np.asarray(flow, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, -1, -3)))


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class FlowCache:
    """Flow + confidence of frame pairs, computed once and stored under ``root``.

    Key: blake2b of both frames' bytes, shapes and dtypes, plus :meth:`FlowParams.key` (preset, check
    tolerances, format version), so a changed frame or parameter never reads a stale flow.  Each entry is
    one ``.npy`` float16 array [H, W, 3] = (flow x, flow y, confidence), written to a temporary file in the
    same folder, fsynced and renamed (a crash never leaves a torn entry).  An unreadable entry is recomputed.
    float16 keeps flows to about 1/1000 pixel at 1 px and 1/30 pixel at 60 px.
    """

    def __init__(self, root: str | os.PathLike | None, params: FlowParams = FlowParams()) -> None:
        self.root = Path(root) if root is not None else None
        self.params = params
        self.hits = 0
        self.misses = 0

    def key(self, cur: np.ndarray, prev: np.ndarray) -> str:
        h = hashlib.blake2b(digest_size=20)
        for frame in (cur, prev):
            frame = np.ascontiguousarray(frame)
            h.update(f"{frame.shape}|{frame.dtype}|".encode())
            h.update(memoryview(frame).cast("B"))
        h.update(self.params.key().encode())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.npy"

    def get(self, cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow [H, W, 2] float32, confidence [H, W] float32) of the backward flow cur -> prev."""
        if self.root is None:
            self.misses += 1
            return flow_and_confidence(cur, prev, self.params)
        path = self.path(self.key(cur, prev))
        if path.exists():
            try:
                data = np.load(path, allow_pickle=False)
                if data.shape == (*cur.shape[:2], 3):
                    self.hits += 1
                    data = data.astype(np.float32)
                    return data[..., :2], data[..., 2]
            except (OSError, ValueError, EOFError):
                pass  # torn or foreign file: recompute and overwrite
        self.misses += 1
        flow, conf = flow_and_confidence(cur, prev, self.params)
        data = np.concatenate([flow, conf[..., None]], axis=-1).astype(np.float16)
        _atomic_save_npy(path, data)
        data = data.astype(np.float32)  # a miss returns exactly what later hits will read
        return data[..., :2], data[..., 2]
