"""Offline video metrics: PSNR, SSIM and the temporal warping error (+ per-window drift reports).

No package ships Inception/I3D/LPIPS weights here, so these are the honest offline metrics (shared FACTS.md).

PSNR / SSIM work on torch tensors ``[..., C, H, W]`` in the model's range [-1, 1] by default; pass
``value_range=(0, 1)`` or ``(0, 255)`` for other ranges.  Values are mapped to [0, 1] first (SSIM's luminance
term is not shift-invariant, and the standard definition assumes intensities in [0, L]; so SSIM of model
frames equals SSIM of the same frames as 0..1 images).  SSIM is our own torch implementation
of Wang et al. 2004 with the usual constants: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, population
(co)variances, computed per channel over the "valid" region (no padding) and averaged over channels and
pixels.  It matches ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, channel_axis=..., data_range=1)`` on 0..1 images to ~1e-4 (a unit test checks this), without
making scikit-image a runtime dependency.

Temporal warping error (FACTS.md "Evaluation offline"): for each consecutive pair (t-1, t) of the REFERENCE
video (the real frames), DIS flow (preset MEDIUM by default) from t to t-1 and its forward-backward
confidence are computed on the reference; the EVALUATED video's frame t-1 is warped with that flow and
compared with its frame t:

    E_t = sum_x M_t(x) * mean_c |V_t(x, c) - warp(V_{t-1}, w_ref)(x, c)| / sum_x M_t(x)

in 0..255 gray levels (frames as uint8 RGB), where M_t is the forward-backward confidence (occlusions and
out-of-frame motion masked).  The video's error is the mean of E_t over its pairs.  Evaluating the reference
against itself gives the floor of this measure (real carphone: ~2.4); flicker or noise raise it (a noisy copy
of carphone: ~26).  Lower is more temporally stable, but only relative to the reference's own value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .optical_flow import FlowCache, FlowParams, warp_numpy
from .tensors import model_to_uint8


# ---------------------------------------------------------------------------------------------------------
# PSNR / SSIM (torch)
def _unit(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return (x.double() - lo) / (hi - lo)


def psnr(x: torch.Tensor, y: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0),
         eps: float = 1e-12) -> torch.Tensor:
    """Per-image PSNR in dB of ``x`` vs ``y`` ``[..., C, H, W]``; returns a tensor of shape ``[...]``."""
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = (_unit(x, value_range) - _unit(y, value_range)).pow(2).flatten(-3).mean(-1)
    return (10.0 * torch.log10(1.0 / (mse + eps))).float()


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g.to(device=device, dtype=dtype)


def ssim(x: torch.Tensor, y: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0), *, win_size: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Per-image mean SSIM of ``x`` vs ``y`` ``[..., C, H, W]`` (H, W >= win_size); returns shape ``[...]``."""
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    *lead, c, h, w = x.shape
    if h < win_size or w < win_size:
        raise ValueError(f"ssim: images of {h}x{w} are smaller than the {win_size}x{win_size} window")
    a = _unit(x, value_range).reshape(-1, 1, h, w)
    b = _unit(y, value_range).reshape(-1, 1, h, w)
    g = _gaussian_window(win_size, sigma, a.dtype, a.device)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, valid region only
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = k1 ** 2, k2 ** 2  # data range 1 after _unit
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    per_channel = s.flatten(1).mean(1).view(*lead, c) if lead else s.flatten(1).mean(1).view(c)
    return per_channel.mean(-1).float()


# ---------------------------------------------------------------------------------------------------------
# temporal warping error (numpy + OpenCV DIS)
def to_uint8_frames(frames) -> list[np.ndarray]:
    """Model tensors [T, 3, H, W] in [-1, 1] (or [T, H, W, 3] uint8 / float 0..1 arrays) -> uint8 RGB list."""
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected model frames [T, 3, H, W], got {tuple(frames.shape)}")
        return list(model_to_uint8(frames))
    out = []
    for f in frames:
        f = np.asarray(f)
        if f.dtype != np.uint8:
            f = (np.clip(f, 0.0, 1.0) * 255).round().astype(np.uint8)
        out.append(f)
    return out


@dataclass
class WarpingError:
    """Result of :func:`warping_error`: ``mean`` over pairs, ``per_pair[i]`` = E_{i+1}, masked fraction."""

    mean: float
    per_pair: list[float] = field(default_factory=list)
    confident_fraction: list[float] = field(default_factory=list)


def warping_error(reference: Iterable[np.ndarray], evaluated: Iterable[np.ndarray], *,
                  params: FlowParams = FlowParams(), cache: FlowCache | None = None) -> WarpingError:
    """Temporal warping error of ``evaluated`` using the flow of ``reference`` (see module docstring).

    Both are iterables of uint8 RGB frames [H, W, 3] of the same size and length (streamed: only two
    frames of each are held).  ``cache`` (a :class:`FlowCache`) reuses the reference flows across calls.
    """
    flows = cache if cache is not None else FlowCache(None, params)
    per_pair: list[float] = []
    fractions: list[float] = []
    prev_ref = prev_ev = None
    n = 0
    for n, (ref, ev) in enumerate(zip(reference, evaluated, strict=True), start=1):
        ref, ev = np.asarray(ref), np.asarray(ev)
        if ref.shape != ev.shape:
            raise ValueError(f"frame {n - 1}: reference {ref.shape} and evaluated {ev.shape} differ")
        if prev_ref is not None:
            flow, conf = flows.get(ref, prev_ref)
            warped = warp_numpy(prev_ev.astype(np.float32), flow)
            diff = np.abs(ev.astype(np.float32) - warped)
            diff = diff.mean(-1) if diff.ndim == 3 else diff
            total = float(conf.sum())
            per_pair.append(float((diff * conf).sum() / total) if total > 0 else float("nan"))
            fractions.append(float(conf.mean()))
        prev_ref, prev_ev = ref, ev
    if n < 2:
        raise ValueError("warping error needs at least 2 frames")
    valid = [e for e in per_pair if not math.isnan(e)]
    return WarpingError(float(np.mean(valid)) if valid else float("nan"), per_pair, fractions)


# ---------------------------------------------------------------------------------------------------------
# drift reports for long videos
@dataclass
class WindowStat:
    start: int      # first index of the window (inclusive)
    end: int        # one past the last index
    mean: float


def window_means(values: Sequence[float], window: int) -> list[WindowStat]:
    """Means of consecutive non-overlapping windows of ``values`` (the last one may be shorter).

    Feed per-frame PSNR/SSIM or :attr:`WarpingError.per_pair` to see whether quality drifts along a long
    generated video (e.g. ``window_means(err.per_pair, 100)``).  NaNs are ignored within a window.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    out = []
    for start in range(0, len(values), window):
        chunk = np.asarray(values[start:start + window], dtype=np.float64)
        chunk = chunk[~np.isnan(chunk)]
        out.append(WindowStat(start, min(start + window, len(values)),
                              float(chunk.mean()) if chunk.size else float("nan")))
    return out


def drift(values: Sequence[float], window: int) -> float:
    """Last window's mean minus the first window's mean (0 for a video shorter than two windows)."""
    stats = window_means(values, window)
    return stats[-1].mean - stats[0].mean if len(stats) >= 2 else 0.0


def format_windows(stats: Sequence[WindowStat], name: str = "value") -> str:
    return "\n".join(f"frames {s.start:6d}-{s.end - 1:6d}: {name} {s.mean:.4f}" for s in stats)
