"""Resizing and cropping frames, one rule for every place that does it.

The trainer's loader, the dataset writer, the streaming sources and the generation pipeline all resize
through these functions, so a model meets its sources at generation time exactly as it met them in
training: RGB images with area interpolation when shrinking and linear when growing, label and instance
ids with nearest neighbour (ids are never blended), multi-channel arrays channel by channel.
Sizes are ``(height, width)`` here, like the tensors; OpenCV's ``(width, height)`` stays inside.
"""
from __future__ import annotations

import cv2
import numpy as np


def resize_image(img: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """``[H, W]`` or ``[H, W, C]`` -> ``size=(h, w)``: nearest for ids, else area (shrinking) / linear."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if (h < img.shape[0] and w < img.shape[1]) else cv2.INTER_LINEAR
    out = cv2.resize(img, (w, h), interpolation=interp)
    return out[..., None] if out.ndim == 2 and img.ndim == 3 else out


def resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An integer id map ``[H, W]`` -> ``size`` (nearest; any integer range: cv2 has no int64 resize)."""
    if ids.shape[:2] == tuple(size):
        return ids
    return resize_image(ids.astype(np.float32), size, nearest=True).astype(ids.dtype)


def resize_array(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A multi-channel source ``[C, H, W]`` -> ``[C, h, w]``, float32, each channel as an image."""
    if arr.shape[1:] == tuple(size):
        return arr
    return np.stack([resize_image(c.astype(np.float32), size) for c in arr])


def crop_frame(rgb: np.ndarray, crop: tuple[int, int, int, int], *, what: str = "video") -> np.ndarray:
    """The window ``crop=(x, y, width, height)`` of one frame ``[H, W, ...]`` (a contiguous copy)."""
    x, y, cw, ch = (int(v) for v in crop)
    h, w = rgb.shape[:2]
    if cw < 1 or ch < 1 or x < 0 or y < 0 or x + cw > w or y + ch > h:
        raise ValueError(f"crop x={x} y={y} width={cw} height={ch} does not fit {what}'s {w}x{h} frames; "
                         f"choose a window inside 0..{w}, 0..{h}")
    return np.ascontiguousarray(rgb[y:y + ch, x:x + cw])


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``"X,Y,WIDTH,HEIGHT"`` (pixels) -> a crop tuple; the command lines' ``--crop`` type."""
    import argparse

    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--crop takes X,Y,WIDTH,HEIGHT in pixels, e.g. 384,128,320,240; "
                                         f"got {text!r}") from None
    return x, y, w, h


def shrink_to(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size=(h, w)`` scaled down (never up) so its longer side is at most ``max_side``."""
    h, w = size
    if max(h, w) <= max_side:
        return h, w
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def fit_area(size: tuple[int, int], target: tuple[int, int], multiple: int = 1) -> tuple[int, int]:
    """The size with ``size``'s aspect ratio and about ``target``'s area, rounded to ``multiple``.

    A model draws things at the scale it learnt: a 1280x720 video for a model trained at 256x192 becomes
    340x192 (the same area, no stretching); a 4:3 video becomes exactly 256x192."""
    (h, w), (th, tw) = size, target
    if (h, w) == (th, tw) or h * tw == w * th:            # same aspect ratio: exactly the target
        return th, tw
    s = ((th * tw) / (h * w)) ** 0.5
    m = max(1, int(multiple))
    return max(m, round(h * s / m) * m), max(m, round(w * s / m) * m)
