"""Pseudo-label videos for users without a segmenter: a real video becomes a label video.

* Stuff: k-means on per-pixel features (CIELab color + vertical position).  The centers are
  fitted ONCE on frames sampled across the clip and then frozen, so a class id means the same
  thing in every frame (ids are ordered top-to-bottom, then dark-to-bright, so a re-fit gives
  the same numbering).  A per-class mode filter removes speckle.
* Foreground ("person") class, id ``k``: moving regions from MOG2 background subtraction,
  and/or mediapipe's selfie person mask when that extra is installed; connected components
  become instances (the boundary channel).
* Stability is measured, not assumed: the share of pixels whose label changes between
  consecutive frames after aligning them with DIS optical flow (occlusions masked by a
  photometric check); the unaligned share is reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from . import extras
from .labels import generic_label_set, instance_boundary, make_label_source
from .base import SourceVideo, as_frames, mog2_masks, progress_iter, resize_frames


@dataclass
class PseudoLabeler:
    """k-means color/position clustering with frozen centers."""

    k: int = 8
    position_weight: float = 0.6   # weight of the normalized row (0 top .. 1 bottom) against Lab
    blur: int = 5                  # Gaussian blur before clustering (odd, 0 = none)
    mode_filter: int = 7           # box size of the per-class majority filter (0 = none)
    fit_frames: int = 8
    fit_side: int = 160
    samples: int = 40000
    seed: int = 0
    centers: np.ndarray | None = field(default=None, repr=False)

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """``[H, W, 3]`` uint8 -> ``[H*W, 4]`` float32: L/100, a/100, b/100, weight * row/H."""
        img = rgb
        if self.blur and self.blur > 1:
            img = cv2.GaussianBlur(img, (self.blur | 1, self.blur | 1), 0)
        lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab) / 100.0
        H, W = rgb.shape[:2]
        rows = np.broadcast_to((np.arange(H, dtype=np.float32) / max(H - 1, 1))[:, None, None], (H, W, 1))
        return np.concatenate([lab, rows * self.position_weight], axis=-1).reshape(-1, 4)

    def fit(self, rgb: np.ndarray) -> "PseudoLabeler":
        """Fit the centers on ``fit_frames`` frames sampled evenly over ``[T, H, W, 3]``."""
        KMeans = extras.require_sklearn_kmeans()
        idx = np.unique(np.linspace(0, len(rgb) - 1, min(self.fit_frames, len(rgb))).round().astype(int))
        small = resize_frames(rgb[idx], max_side=self.fit_side) if max(rgb.shape[1:3]) > self.fit_side else rgb[idx]
        feats = np.concatenate([self.features(f) for f in small])
        rng = np.random.default_rng(self.seed)
        if len(feats) > self.samples:
            feats = feats[rng.choice(len(feats), self.samples, replace=False)]
        km = KMeans(n_clusters=self.k, n_init=4, random_state=self.seed).fit(feats)
        c = km.cluster_centers_.astype(np.float32)
        order = np.lexsort((c[:, 0], np.round(c[:, 3] / max(self.position_weight, 1e-6), 1)))
        self.centers = c[order]
        return self

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """``[H, W, 3]`` -> ids ``[H, W]`` (int32, 0..k-1) by nearest frozen center + mode filter."""
        if self.centers is None:
            raise RuntimeError("PseudoLabeler.fit must run before predict")
        H, W = rgb.shape[:2]
        f = self.features(rgb)
        d = (f * f).sum(1, keepdims=True) - 2 * f @ self.centers.T + (self.centers ** 2).sum(1)[None]
        ids = d.argmin(1).reshape(H, W).astype(np.int32)
        if self.mode_filter and self.mode_filter > 1:
            votes = np.stack([cv2.boxFilter((ids == c).astype(np.float32), -1, (self.mode_filter,) * 2)
                              for c in range(self.k)])
            ids = votes.argmax(0).astype(np.int32)
        return ids


def person_masks(rgb: np.ndarray, method: str = "mog2", *, min_area_frac: float = 0.0005,
                 selfie_threshold: float = 0.5) -> np.ndarray:
    """Foreground masks ``[T, H, W]`` bool: ``"mog2"``, ``"selfie"`` (mediapipe), ``"both"`` (union)
    or ``"none"``; blobs smaller than ``min_area_frac`` of the frame are dropped."""
    T, H, W = rgb.shape[:3]
    if method == "none":
        return np.zeros((T, H, W), dtype=bool)
    masks = np.zeros((T, H, W), dtype=bool)
    if method in ("mog2", "both"):
        masks |= mog2_masks(rgb) > 0
    if method in ("selfie", "both"):
        res = extras.run_mediapipe("selfie", list(rgb))
        masks |= np.stack([cv2.resize(res[f"mask_{t}"], (W, H)) > selfie_threshold for t in range(T)])
    if method not in ("mog2", "selfie", "both"):
        raise ValueError(f"person mask method must be 'mog2', 'selfie', 'both' or 'none', got {method!r}")
    min_area = max(1, int(min_area_frac * H * W))
    for t in range(T):
        n, lab, stats, _ = cv2.connectedComponentsWithStats(masks[t].astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
        small = small[small > 0]
        if len(small):
            masks[t][np.isin(lab, small)] = False
    return masks


def label_flip_share(ids: np.ndarray, rgb: np.ndarray, *, max_side: int = 384, photo_thresh: float = 12.0,
                     preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> dict:
    """Share of pixels whose label differs from the flow-aligned previous frame's label.

    DIS flow from frame t to t-1 (backward flow) warps labels t-1 onto frame t (nearest);
    pixels leaving the frame or failing the photometric check (|warped grey - grey| >
    ``photo_thresh``, i.e. occlusions and flow failures) are not counted.
    Returns ``{"aligned": mean share, "unaligned": mean share without alignment,
    "per_frame": [...], "valid": mean share of counted pixels}``.
    """
    T = len(ids)
    if T < 2:
        return {"aligned": 0.0, "unaligned": 0.0, "per_frame": [], "valid": 1.0}
    H, W = ids.shape[1:]
    if max(H, W) > max_side:
        s = max_side / max(H, W)
        size = (max(1, round(W * s)), max(1, round(H * s)))
        rgb = resize_frames(rgb, size=size)
        ids = np.stack([cv2.resize(i.astype(np.float32), size, interpolation=cv2.INTER_NEAREST) for i in ids]).astype(np.int32)
        H, W = ids.shape[1:]
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
    dis = cv2.DISOpticalFlow_create(preset)
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    per, unal, valid_share = [], [], []
    for t in range(1, T):
        flow = dis.calc(gray[t], gray[t - 1], None)  # gray[t](x) ~ gray[t-1](x + flow)
        mx, my = gx + flow[..., 0], gy + flow[..., 1]
        warped_ids = cv2.remap(ids[t - 1].astype(np.float32), mx, my, cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=-1).astype(np.int32)
        warped_gray = cv2.remap(gray[t - 1].astype(np.float32), mx, my, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        valid = (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)
        valid &= np.abs(warped_gray - gray[t]) <= photo_thresh
        per.append(float((warped_ids[valid] != ids[t][valid]).mean()) if valid.any() else 0.0)
        unal.append(float((ids[t] != ids[t - 1]).mean()))
        valid_share.append(float(valid.mean()))
    return {"aligned": float(np.mean(per)), "unaligned": float(np.mean(unal)),
            "per_frame": [round(p, 5) for p in per], "valid": float(np.mean(valid_share))}


def pseudo_label_video(video, *, k: int = 8, person: str = "mog2", instances: bool = True,
                       labeler: PseudoLabeler | None = None, fps: float = 30.0, max_frames: int | None = None,
                       max_side: int | None = None, measure_stability: bool = True,
                       progress: Callable[[int, int], None] | None = None) -> SourceVideo:
    """Turn footage into a label :class:`SourceVideo` with ``label_nc = k + 1`` (the last id is
    the foreground/person class) and, with ``instances``, a boundary channel from the instance
    map (stuff: its class; each foreground blob: its own instance).

    The report holds ``label_flip_share`` (flow-aligned), ``label_flip_share_unaligned``,
    ``foreground_share`` and the class pixel shares.
    """
    fr = as_frames(video, fps=fps, max_frames=max_frames, max_side=max_side)
    rgb = fr.rgb
    T, H, W = rgb.shape[:3]
    labeler = labeler or PseudoLabeler(k=k)
    if labeler.centers is None:
        labeler.fit(rgb)
    k = labeler.k
    fg = person_masks(rgb, person)
    ids = np.empty((T, H, W), dtype=np.int16)
    bnd = np.empty((T, H, W), dtype=bool) if instances else None
    for t in progress_iter(range(T), progress):
        lab = labeler.predict(rgb[t])
        lab[fg[t]] = k
        ids[t] = lab
        if instances:
            inst = lab.copy()
            n, comp = cv2.connectedComponents(fg[t].astype(np.uint8), connectivity=8)
            inst[fg[t]] = 1000 + comp[fg[t]]
            bnd[t] = instance_boundary(inst)
    report = {"label_set": f"pseudo{k}+person", "k": k, "person_masks": person, "frames": T,
              "foreground_share": round(float(fg.mean()), 5),
              "class_share": [round(float((ids == c).mean()), 4) for c in range(k + 1)]}
    if measure_stability:
        st = label_flip_share(ids, rgb)
        report.update(label_flip_share=round(st["aligned"], 5), label_flip_share_unaligned=round(st["unaligned"], 5),
                      label_flip_valid_share=round(st["valid"], 4))
    names = [f"cluster {c}" for c in range(k)] + ["person"]
    pal = generic_label_set(k + 1).palette()
    pal[k] = (220, 20, 60)  # person in Cityscapes' person color
    src = make_label_source(ids, k + 1, bnd, palette=pal, fps=fr.fps, names=fr.names, report=report,
                            label_names=names)
    src.extra["labeler"] = labeler
    return src
