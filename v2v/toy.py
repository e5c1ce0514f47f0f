"""A synthetic moving-shapes video with labels, instances and ground-truth motion.

Used by unit tests (overfitting), the trainer tests and the README demo before real data.  Labels:
0 = ground/sky background (vertical gradient), 1 = disc, 2 = square.  Shapes move with constant
velocity and carry a texture that moves with them, so warping the previous frame is the right answer
almost everywhere: exactly the structure vid2vid exploits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABEL_NC = 3
COLORS = np.array([[70, 130, 180], [220, 20, 60], [250, 170, 30]], dtype=np.float32)  # bg, disc, square


@dataclass
class ToyClip:
    labels: np.ndarray      # [T, H, W] int64 label ids
    instances: np.ndarray   # [T, H, W] int64 instance ids (0 = background)
    frames: np.ndarray      # [T, H, W, 3] uint8 RGB
    flows: np.ndarray       # [T-1, H, W, 2] float32 backward flow t+1 -> t in pixels (x, y)


def moving_shapes(n_frames: int = 8, height: int = 32, width: int = 32, *, seed: int = 0,
                  n_shapes: int = 2, speed: float = 1.5) -> ToyClip:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([np.linspace(0.6, 1.0, height)] * width, 1)[..., None] * COLORS[0]
    shapes = []
    for i in range(n_shapes):
        r = rng.uniform(0.12, 0.2) * min(height, width)
        shapes.append(dict(
            label=1 + i % 2, instance=i + 1, r=r,
            pos=rng.uniform([r, r], [width - r, height - r]).astype(np.float32),
            vel=(rng.uniform(-1, 1, 2) * speed).astype(np.float32),
            phase=rng.uniform(0, 6.28),
        ))
    labels = np.zeros((n_frames, height, width), np.int64)
    instances = np.zeros_like(labels)
    frames = np.zeros((n_frames, height, width, 3), np.uint8)
    flows = np.zeros((max(n_frames - 1, 0), height, width, 2), np.float32)
    for t in range(n_frames):
        img = background.copy()
        for s in shapes:
            cx, cy = s["pos"] + s["vel"] * t
            dx, dy = xs - cx, ys - cy
            inside = (dx**2 + dy**2 <= s["r"] ** 2) if s["label"] == 1 else \
                (np.abs(dx) <= s["r"]) & (np.abs(dy) <= s["r"])
            # texture attached to the object (moves with it)
            shade = 0.75 + 0.25 * np.sin(dx * 0.9 + s["phase"]) * np.cos(dy * 0.7)
            img[inside] = COLORS[s["label"]] * shade[inside, None]
            labels[t][inside] = s["label"]
            instances[t][inside] = s["instance"]
            if t > 0:  # backward flow: pixel at t came from (x - v) at t-1
                flows[t - 1][inside] = -s["vel"]
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return ToyClip(labels, instances, frames, flows)
