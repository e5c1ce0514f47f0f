"""Tiny synthetic 'carphone-like' videos for tests: a smoothly textured background panning slowly and a
textured disc moving faster in front of it (so there are real occlusions).  Deterministic for a seed."""
from __future__ import annotations

import cv2
import numpy as np


def _texture(rng: np.random.Generator, h: int, w: int, blur: float) -> np.ndarray:
    noise = rng.random((h, w, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), blur)
    tex = (tex - tex.min()) / (tex.max() - tex.min() + 1e-6)
    return tex


def moving_scene(n_frames: int = 8, height: int = 64, width: int = 80, *, seed: int = 0,
                 bg_step: tuple[int, int] = (1, 0), fg_step: tuple[int, int] = (3, 1),
                 radius: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Returns (frames uint8 [T, H, W, 3], labels uint8 [T, H, W] with 0 = background, 1 = disc,
    2 = a horizontal band of background (a second 'class')).  Content moves by +step pixels per frame."""
    rng = np.random.default_rng(seed)
    pad = 4 * max(abs(bg_step[0]), abs(bg_step[1])) * n_frames + 8
    bg = _texture(rng, height + 2 * pad, width + 2 * pad, 2.0)
    fg = _texture(rng, 2 * radius + 1, 2 * radius + 1, 1.5)
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = (xx ** 2 + yy ** 2) <= radius ** 2
    frames, labels = [], []
    for t in range(n_frames):
        ox, oy = pad - bg_step[0] * t, pad - bg_step[1] * t  # background content moves by +bg_step
        img = bg[oy:oy + height, ox:ox + width].copy()
        lab = np.zeros((height, width), np.uint8)
        lab[height // 2 - 4:height // 2 + 4] = 2
        cx = width // 4 + fg_step[0] * t
        cy = height // 2 + fg_step[1] * t
        y0, x0 = cy - radius, cx - radius
        ys = slice(max(y0, 0), min(y0 + 2 * radius + 1, height))
        xs = slice(max(x0, 0), min(x0 + 2 * radius + 1, width))
        sub = disc[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
        img[ys, xs][sub] = fg[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0][sub] * 0.6 + 0.4
        lab[ys, xs][sub] = 1
        frames.append((img * 255).round().astype(np.uint8))
        labels.append(lab)
    return np.stack(frames), np.stack(labels)


def noisy_copy(frames: np.ndarray, sigma: float = 25.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frames.astype(np.float32) + rng.normal(0, sigma, frames.shape), 0, 255).astype(np.uint8)
