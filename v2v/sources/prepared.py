"""Sources made beforehand: frames that already are what the model eats.

* :func:`rendering_source`: images or a video of rendered sources (pose skeletons, 3-channel sketches), as
  ``train/prepare.py`` stores ``rgb`` sources; values go to [-1, 1].
* :func:`array_source`: a folder of ``.npy`` frames ``[C, H, W]`` (the multi-channel sources prepare.py stores,
  e.g. the face sketch with its distance maps).
* Label-id PNGs are :func:`v2v.sources.labels.label_video`.

Both stream one frame at a time; cuts are found on the frames themselves (arrays: on their previews).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..media.tensors import uint8_to_model
from ..media.video_io import natural_key
from .base import SourceError, SourceFrame, SourceVideo, decoded_frames, mark_cuts, video_input


def rendering_source(video, *, kind: str = "pose", fps: float = 30.0, max_frames: int | None = None) -> SourceVideo:
    """A video (file, image folder, batch) whose frames are rendered sources (3 channels in [-1, 1])."""
    video = video_input(video, fps=fps, max_frames=max_frames)

    def stream(start, stop, shots, only):
        for i, rgb, cut in decoded_frames(video, start, stop, shots, only):
            yield SourceFrame(i, uint8_to_model(rgb), rgb, cut=cut)

    return SourceVideo(kind=kind, input_nc=3, label_nc=0, height=video.height, width=video.width, fps=video.fps,
                       num_frames=len(video), stream=stream, video=video,
                       rebuild=lambda v: rendering_source(v, kind=kind), storage="rgb",
                       report={"frames": len(video), "source": "renderings"})


def _preview(arr: np.ndarray) -> np.ndarray:
    """An array frame seen as an image: its first channel in grey (lines, or a rendering's first plane)."""
    first = arr[0]
    lo, hi = float(first.min()), float(first.max())
    grey = (first - lo) / (hi - lo) if hi > lo else np.zeros_like(first)
    return np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def array_source(folder: str | os.PathLike, *, kind: str = "sketch", fps: float = 30.0,
                 max_frames: int | None = None) -> SourceVideo:
    """A folder of ``.npy`` frames ``[C, H, W]`` (natural order), read one at a time (never unpickled)."""
    folder = Path(folder)
    files = sorted((p for p in folder.glob("*.npy") if not p.name.startswith(".")), key=lambda p: natural_key(p.name))
    if max_frames:
        files = files[:max_frames]
    if not files:
        raise SourceError(f"{folder} holds no .npy source frames")

    def read(i: int) -> np.ndarray:
        try:
            arr = np.load(files[i], allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise SourceError(f"frame {files[i].name} (index {i}): cannot read this .npy file ({e})") from None
        if arr.ndim != 3 or arr.shape != shape:
            raise SourceError(f"frame {files[i].name} (index {i}) is an array of shape {arr.shape}; the first frame's "
                              f"is {shape}: every frame must be [C, H, W] of one shape")
        return arr.astype(np.float32)

    shape = np.load(files[0], allow_pickle=False).shape if files[0].is_file() else None
    if shape is None or len(shape) != 3:
        raise SourceError(f"{files[0]}: an array source frame must be [C, H, W], got shape {shape}")
    C, H, W = shape

    def stream(start, stop, shots, only):
        picks = sorted(only) if only is not None else range(start, stop)
        out = (SourceFrame(i, torch.from_numpy(a), _preview(a)) for i in picks if start <= i < stop
               for a in (read(i),))
        return out if only is not None else mark_cuts(out, start, shots)

    return SourceVideo(kind=kind, input_nc=C, label_nc=0, height=H, width=W, fps=fps, num_frames=len(files),
                       stream=stream, storage="array", report={"frames": len(files), "source": "arrays"})
