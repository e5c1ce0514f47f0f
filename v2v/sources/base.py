"""What every source extractor returns, and the helpers they share (reading frames).

A :class:`SourceVideo` is the model's conditioning video: per frame a float32 tensor
``[input_nc, H, W]`` laid out as docs/CONVENTIONS.md says (one-hot labels + boundary, sketch
lines + distance channels, or a rendered skeleton in [-1, 1]), a viewable RGB preview, and the
metadata the generator needs (``kind``, ``input_nc``, ``label_nc``, frame size, fps) plus a
``report`` of what the extractor measured (detection rates, empty frames, label stability).

Frames are either held as one tensor ``[T, input_nc, H, W]`` or produced on demand by a
``getter(i)`` (label maps keep compact ids and expand the one-hot per frame, so a 35-class
1024x512 clip does not cost 35 floats per pixel in memory).
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from ..media.video_io import VideoError, list_images, natural_key, read_frames

KINDS = ("label", "pose", "sketch")


class SourceError(VideoError):
    """Input that cannot become a source video (empty, corrupt, wrong ids, mismatched sizes)."""


@dataclass
class SourceVideo:
    """A conditioning video for the generator, with its preview and metadata.

    Exactly one of ``frames`` (``[T, input_nc, H, W]`` float32) or ``getter`` (``i -> [input_nc,
    H, W]``, with ``num_frames``) is given.  ``preview`` is a ComfyUI IMAGE ``[T, H, W, 3]`` in
    [0, 1].  ``extra`` carries kind-specific data (pose keypoints, face landmarks, label names).
    """

    kind: str
    input_nc: int
    label_nc: int
    height: int
    width: int
    fps: float
    preview: torch.Tensor
    frames: torch.Tensor | None = None
    getter: Callable[[int], torch.Tensor] | None = None
    num_frames: int | None = None
    report: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if (self.frames is None) == (self.getter is None):
            raise ValueError("give exactly one of frames or getter")
        if self.frames is not None:
            if self.frames.ndim != 4 or self.frames.shape[1] != self.input_nc:
                raise ValueError(f"frames must be [T, {self.input_nc}, H, W], got {tuple(self.frames.shape)}")
            self.num_frames = int(self.frames.shape[0])
        elif self.num_frames is None:
            raise ValueError("a getter needs num_frames")
        if not 0 <= self.label_nc <= self.input_nc:
            raise ValueError(f"label_nc {self.label_nc} must lie in [0, input_nc={self.input_nc}]")

    def __len__(self) -> int:
        return int(self.num_frames)

    def get(self, i: int) -> torch.Tensor:
        """Frame ``i`` as ``[input_nc, H, W]`` float32."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for a {n}-frame source")
        i %= n
        return self.frames[i] if self.frames is not None else self.getter(i)

    def iter_frames(self) -> Iterator[torch.Tensor]:
        for i in range(len(self)):
            yield self.get(i)

    def tensor(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Frames ``start..stop`` stacked as ``[T, input_nc, H, W]``."""
        stop = len(self) if stop is None else min(stop, len(self))
        if self.frames is not None:
            return self.frames[start:stop]
        return torch.stack([self.getter(i) for i in range(start, stop)])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    def metadata(self) -> dict[str, Any]:
        return {"kind": self.kind, "input_nc": self.input_nc, "label_nc": self.label_nc,
                "height": self.height, "width": self.width, "fps": self.fps,
                "num_frames": len(self), "report": dict(self.report)}

    def __repr__(self) -> str:  # short: ComfyUI may print values
        return (f"SourceVideo(kind={self.kind!r}, frames={len(self)}, input_nc={self.input_nc}, "
                f"label_nc={self.label_nc}, size={self.width}x{self.height}, fps={self.fps:g})")


# --- reading frames -----------------------------------------------------------------------------

@dataclass
class Frames:
    """Decoded RGB frames ``[T, H, W, 3]`` uint8 with their fps and names (for error messages)."""

    rgb: np.ndarray
    fps: float
    names: list[str]


def read_video(path: str | os.PathLike, *, max_frames: int | None = None, stride: int = 1,
               start: int = 0, max_side: int | None = None,
               crop: tuple[int, int, int, int] | None = None) -> Frames:
    """Decode a video file or a folder of images into RGB uint8 frames.

    ``crop=(x, y, width, height)`` keeps that window of every frame (pixels of the decoded video), then
    ``max_side`` downscales (area interpolation) so the longer side is at most that many pixels.
    Raises :class:`SourceError` for a missing, empty or undecodable input or a crop outside the frame.
    """
    path = Path(path)
    try:
        video = read_frames(path)     # decoding, natural order and size checks live in video_io
        step = max(1, stride)
        stop = None if max_frames is None else start + max_frames * step
        frames = list(itertools.islice(video, start, stop, step))
    except VideoError as e:
        raise SourceError(str(e)) from None
    if not frames:
        raise SourceError(f"{path} has no frames from index {start} on")
    indices = range(start, start + len(frames) * step, step)
    names = [video.frame_name(i) for i in indices]
    fps = video.fps or 30.0
    rgb = np.stack(frames)
    if crop is not None:
        rgb = crop_frames(rgb, crop, what=str(path))
    if max_side and max(rgb.shape[1:3]) > max_side:
        rgb = resize_frames(rgb, max_side=max_side)
    return Frames(rgb=rgb, fps=fps / max(1, stride), names=names)


def crop_frames(rgb: np.ndarray, crop: tuple[int, int, int, int], *, what: str = "video") -> np.ndarray:
    """The window ``crop=(x, y, width, height)`` of ``[T, H, W, C]`` frames (a copy: contiguous)."""
    x, y, cw, ch = (int(v) for v in crop)
    h, w = rgb.shape[1:3]
    if cw < 1 or ch < 1 or x < 0 or y < 0 or x + cw > w or y + ch > h:
        raise SourceError(f"crop x={x} y={y} width={cw} height={ch} does not fit {what}'s {w}x{h} frames; "
                          f"choose a window inside 0..{w}, 0..{h}")
    return np.ascontiguousarray(rgb[:, y:y + ch, x:x + cw])


def resize_frames(rgb: np.ndarray, *, max_side: int | None = None, size: tuple[int, int] | None = None,
                  interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize ``[T, H, W, C]`` frames to ``size=(width, height)`` or so the longer side is ``max_side``."""
    h, w = rgb.shape[1:3]
    if size is None:
        s = max_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
    if size == (w, h):
        return rgb
    out = [cv2.resize(f, size, interpolation=interpolation) for f in rgb]
    return np.stack([o if o.ndim == f.ndim else o[..., None] for o, f in zip(out, rgb)])


def as_frames(source, *, fps: float = 30.0, max_frames: int | None = None, max_side: int | None = None,
              stride: int = 1) -> Frames:
    """Accept a path, a ComfyUI IMAGE tensor ``[N, H, W, C]`` (0..1) or a uint8 array ``[N, H, W, 3]``."""
    if isinstance(source, Frames):
        return source
    if isinstance(source, (str, os.PathLike)):
        return read_video(source, max_frames=max_frames, stride=stride, max_side=max_side)
    from ..media.tensors import image_to_uint8
    rgb = image_to_uint8(source)
    rgb = rgb[::max(1, stride)]
    if max_frames:
        rgb = rgb[:max_frames]
    if len(rgb) == 0:
        raise SourceError("the image batch is empty (0 frames)")
    if max_side and max(rgb.shape[1:3]) > max_side:
        rgb = resize_frames(rgb, max_side=max_side)
    return Frames(rgb=rgb, fps=fps / max(1, stride), names=[f"frame {i}" for i in range(len(rgb))])


def progress_iter(items: Sequence, progress: Callable[[int, int], None] | None):
    """Yield items, calling ``progress(done, total)`` after each (the node's ProgressBar hook)."""
    total = len(items)
    for i, item in enumerate(items):
        yield item
        if progress is not None:
            progress(i + 1, total)


# --- moving regions (shared by pose crops and pseudo-label person masks) --------------------------

def mog2_masks(rgb: np.ndarray, *, history: int = 200, var_threshold: float = 16.0, warmup_passes: int = 1,
               max_side: int = 384, open_px: int = 2, close_px: int = 5, median_frames: int = 25) -> np.ndarray:
    """Foreground masks ``[T, H, W]`` uint8 (255 = moving) by MOG2 background subtraction.

    The background model starts from the clip's temporal median (of up to ``median_frames``
    frames spread over the clip: walking people vanish from it), optionally keeps learning over
    the clip ``warmup_passes`` times (adapting to light changes), then labels every frame with
    learning frozen, so the first frames of a short clip are as clean as the last.  Shadows (MOG2's 127) count as background.
    Computed at ``max_side`` resolution, returned at the input's.
    """
    T, H, W = rgb.shape[:3]
    small = resize_frames(rgb, max_side=max_side) if max(H, W) > max_side else rgb
    scale = small.shape[2] / W
    mog = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=var_threshold, detectShadows=True)
    pick = np.unique(np.linspace(0, T - 1, min(T, median_frames)).round().astype(int))
    background = np.median(small[pick], axis=0).astype(np.uint8)
    for _ in range(30):
        mog.apply(background, learningRate=-1)
    for _ in range(max(0, warmup_passes)):
        for f in small:
            mog.apply(f, learningRate=-1)
    k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(open_px * scale)) + 1,) * 2)
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(close_px * scale)) + 1,) * 2)
    masks = []
    for f in small:
        m = mog.apply(f, learningRate=0)
        m = np.where(m > 200, 255, 0).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k_open)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k_close)
        if m.shape != (H, W):
            m = cv2.resize(m, (W, H), interpolation=cv2.INTER_NEAREST)
        masks.append(m)
    return np.stack(masks)


def mask_boxes(mask: np.ndarray, *, min_area: int) -> list[tuple[int, int, int, int]]:
    """Bounding boxes ``(x0, y0, x1, y1)`` of the connected blobs of at least ``min_area`` pixels."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    boxes = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if area >= min_area:
            boxes.append((int(x), int(y), int(x + w), int(y + h)))
    return boxes
