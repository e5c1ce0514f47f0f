"""Conversions between ComfyUI IMAGE batches and the model's frame tensors.

* ComfyUI ``IMAGE``: ``[N, H, W, C]`` float32 in [0, 1] (a video is its frames in N).
* Model frames: ``[N, C, H, W]`` float32 RGB in [-1, 1].

Nodes call these two functions and never hand-roll the conversion.
"""
from __future__ import annotations

import numpy as np
import torch


def image_to_model(image: torch.Tensor) -> torch.Tensor:
    """IMAGE ``[N, H, W, C]`` in [0, 1] -> ``[N, C, H, W]`` float32 in [-1, 1]."""
    if image.ndim == 3:  # a single frame [H, W, C]
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"expected an IMAGE batch [N, H, W, C], got shape {tuple(image.shape)}")
    return (image.float().permute(0, 3, 1, 2) * 2.0 - 1.0).contiguous()


def model_to_image(frames: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` in [-1, 1] -> IMAGE ``[N, H, W, C]`` float32 in [0, 1] (clamped)."""
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4:
        raise ValueError(f"expected frames [N, C, H, W], got shape {tuple(frames.shape)}")
    return ((frames.detach().float().clamp(-1.0, 1.0) + 1.0) * 0.5).permute(0, 2, 3, 1).contiguous()


def image_to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """IMAGE ``[N, H, W, C]`` in [0, 1] -> numpy uint8 ``[N, H, W, 3]`` RGB (grey is expanded)."""
    arr = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"expected an IMAGE batch [N, H, W, C], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    return np.ascontiguousarray(arr)


def uint8_to_image(frames: np.ndarray) -> torch.Tensor:
    """numpy uint8 ``[N, H, W, 3]`` -> IMAGE ``[N, H, W, 3]`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)


def model_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Model frame(s) ``[..., 3, H, W]`` in [-1, 1] (any device) -> numpy uint8 ``[..., H, W, 3]`` RGB."""
    t = frames.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return t.movedim(-3, -1).cpu().numpy()


def uint8_to_model(rgb: np.ndarray) -> torch.Tensor:
    """numpy uint8 ``[..., H, W, 3]`` RGB -> float32 ``[..., 3, H, W]`` in [-1, 1].  In numpy: extractors call this
    in the read-ahead thread, where torch kernels would contend with the network's threads (see
    :func:`v2v.sources.labels.one_hot`)."""
    x = np.ascontiguousarray(np.moveaxis(np.asarray(rgb), -1, -3), dtype=np.float32)
    x /= np.float32(127.5)
    x -= np.float32(1)
    return torch.from_numpy(x)
