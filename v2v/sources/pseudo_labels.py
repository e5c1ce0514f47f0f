"""Pseudo-label videos for users without a segmenter: a real video becomes a label video, streamed.

* Stuff: k-means on per-pixel features (CIELab color + vertical position).  The centers are
  fitted ONCE on frames sampled across the clip and then frozen, so a class id means the same
  thing in every frame (ids are ordered top-to-bottom, then dark-to-bright, so a re-fit gives
  the same numbering).  A model records its centers in its recipe, so any other video gets the
  ids it was trained on.  A per-class mode filter removes speckle.
* Foreground ("person") class, id ``k``: moving regions from MOG2 background subtraction
  (:class:`v2v.sources.base.MovingRegions`, fitted to the video up front in two passes that keep no
  frames), and/or mediapipe's selfie person mask when that extra is installed.  Each blob is a person
  instance, tracked from frame to frame by overlap (:class:`PersonTracker`), so a walker keeps one
  instance id along the shot: the instance map is the class id on stuff, ``1000 + track`` on people.
* Stability is measured, not assumed (:func:`label_flip_share`): the share of pixels whose label changes
  between consecutive frames after aligning them with DIS optical flow (occlusions masked by a
  photometric check); the unaligned share is reported beside it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from . import extras
from ..media.resize import resize_ids, resize_image, shrink_to
from .base import MovingRegions, SourceFrame, SourceVideo, decoded_frames, video_input
from .labels import encode_frame, generic_label_set, instance_boundary, render_labels
from .recipe import SourceRecipe

PERSON_ID_BASE = 1000        # instance ids of people: 1000 + track (16-bit PNG: tracks wrap at 60000)
MAX_TRACKS = 60000


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

    def fit(self, video) -> "PseudoLabeler":
        """Fit the centers on ``fit_frames`` frames sampled evenly over a video (a path, a batch ``[T, H, W, 3]``
        or a :class:`v2v.media.video_io.Video`; only those frames are decoded and kept) -- or over each video of
        a list, so that one set of ids means the same on all of them (a dataset of many clips)."""
        KMeans = extras.require_sklearn_kmeans()
        small = []
        for one in video if isinstance(video, (list, tuple)) else [video]:
            one = video_input(one)
            idx = np.unique(np.linspace(0, len(one) - 1, min(self.fit_frames, len(one))).round().astype(int))
            small += [resize_image(f, shrink_to(f.shape[:2], self.fit_side)) for _, f in one.frames(only=set(idx.tolist()))]
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
        # einsum, not ``f @ centers.T``: a matrix product wakes numpy's BLAS threads, which then spin beside the
        # network's threads (this runs in the read-ahead thread) and made every generated frame twice as slow on
        # a 2-core CPU (bench/NOTES.md, "Extraction beside the network")
        m = self.centers
        d = (f * f).sum(1, keepdims=True) - 2 * np.einsum("nj,kj->nk", f, m) + (m ** 2).sum(1)[None]
        ids = d.argmin(1).reshape(H, W).astype(np.int32)
        if self.mode_filter and self.mode_filter > 1:
            votes = np.stack([cv2.boxFilter((ids == c).astype(np.float32), -1, (self.mode_filter,) * 2)
                              for c in range(self.k)])
            ids = votes.argmax(0).astype(np.int32)
        return ids


class PersonMasks:
    """Per-frame foreground masks (bool ``[H, W]``): ``"mog2"`` (moving regions fitted to the video),
    ``"selfie"`` (mediapipe, run in a persistent worker per stream), ``"both"`` (union) or ``"none"``;
    blobs smaller than ``min_area_frac`` of the frame are dropped."""

    METHODS = ("mog2", "selfie", "both", "none")

    def __init__(self, method: str, video, *, min_area_frac: float = 0.0005, selfie_threshold: float = 0.5,
                 progress=None) -> None:
        if method not in self.METHODS:
            raise ValueError(f"person mask method must be one of {self.METHODS}, got {method!r}")
        self.method, self.min_area_frac, self.selfie_threshold = method, min_area_frac, selfie_threshold
        self.regions = MovingRegions().fit(video_input(video), progress) if method in ("mog2", "both") else None
        if method in ("selfie", "both"):
            extras.mediapipe_python()      # fail now, with the install command

    def open(self) -> "extras.MediapipeSession | None":
        """Start a stream: the moving-region model as fitted, and the mediapipe worker (selfie masks) or None."""
        if self.regions is not None:
            self.regions.fresh()
        return extras.MediapipeSession("selfie") if self.method in ("selfie", "both") else None

    def __call__(self, rgb: np.ndarray, session=None) -> np.ndarray:
        H, W = rgb.shape[:2]
        mask = np.zeros((H, W), dtype=bool)
        if self.regions is not None:
            mask |= self.regions.mask(rgb) > 0
        if session is not None:
            mask |= cv2.resize(session.run([rgb])["mask_0"], (W, H)) > self.selfie_threshold
        min_area = max(1, int(self.min_area_frac * H * W))
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
        small = small[small > 0]
        if len(small):
            mask[np.isin(lab, small)] = False
        return mask


@dataclass
class PersonTracker:
    """Stable ids for the person blobs of a shot: each blob of a frame takes the id of the previous frame's
    blob it overlaps most (IoU >= ``min_iou``, best pairs first); the others start new tracks."""

    min_iou: float = 0.1
    next_id: int = 0
    prev: np.ndarray | None = field(default=None, repr=False)   # [H, W] track id + 1 per pixel, 0 = none

    def reset(self) -> None:
        self.prev = None

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        """``[H, W]`` bool -> track ids + 1 per pixel (0 = not a person)."""
        n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        out = np.zeros(mask.shape, dtype=np.int64)
        if n <= 1:
            self.prev = out
            return out
        assign: dict[int, int] = {}
        if self.prev is not None and self.prev.shape == comp.shape and self.prev.any():
            both = (comp > 0) & (self.prev > 0)
            pairs, inter = np.unique(np.stack([comp[both], self.prev[both]]), axis=1, return_counts=True)
            area_c = np.bincount(comp.ravel(), minlength=n)
            tracks, area_t = np.unique(self.prev[self.prev > 0], return_counts=True)
            area_t = dict(zip(tracks.tolist(), area_t.tolist()))
            iou = [(inter[j] / (area_c[c] + area_t[t] - inter[j]), int(c), int(t))
                   for j, (c, t) in enumerate(pairs.T)]
            taken = set()
            for score, c, t in sorted(iou, reverse=True):
                if score >= self.min_iou and c not in assign and t not in taken:
                    assign[c] = t
                    taken.add(t)
        for c in range(1, n):
            if c not in assign:
                self.next_id += 1
                assign[c] = self.next_id
            out[comp == c] = assign[c]
        self.prev = out
        return out


def label_flip_share(ids: Iterable[np.ndarray], rgb: Iterable[np.ndarray], *, max_side: int = 384,
                     photo_thresh: float = 12.0, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> dict:
    """Share of pixels whose label differs from the flow-aligned previous frame's label, over consecutive
    pairs of two streams of id maps and their RGB frames (only the previous pair is kept).

    DIS flow from frame t to t-1 (backward flow) warps labels t-1 onto frame t (nearest); pixels leaving
    the frame or failing the photometric check (|warped grey - grey| > ``photo_thresh``, i.e. occlusions
    and flow failures) are not counted.  Returns ``{"aligned": mean share, "unaligned": mean share without
    alignment, "per_frame": [...], "valid": mean share of counted pixels}``.
    """
    dis = cv2.DISOpticalFlow_create(preset)
    per, unal, valid_share = [], [], []
    prev = None
    for lab, frame in zip(ids, rgb):
        size = shrink_to(lab.shape[:2], max_side)
        lab = resize_ids(np.asarray(lab).astype(np.int32), size)
        gray = cv2.cvtColor(resize_image(frame, size), cv2.COLOR_RGB2GRAY)
        if prev is not None:
            p_lab, p_gray = prev
            H, W = lab.shape
            gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
            flow = dis.calc(gray, p_gray, None)  # gray(x) ~ p_gray(x + flow)
            mx, my = gx + flow[..., 0], gy + flow[..., 1]
            warped_ids = cv2.remap(p_lab.astype(np.float32), mx, my, cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=-1).astype(np.int32)
            warped_gray = cv2.remap(p_gray.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            valid = (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)
            valid &= np.abs(warped_gray - gray) <= photo_thresh
            per.append(float((warped_ids[valid] != lab[valid]).mean()) if valid.any() else 0.0)
            unal.append(float((lab != p_lab).mean()))
            valid_share.append(float(valid.mean()))
        prev = (lab, gray)
    if not per:
        return {"aligned": 0.0, "unaligned": 0.0, "per_frame": [], "valid": 1.0}
    return {"aligned": float(np.mean(per)), "unaligned": float(np.mean(unal)),
            "per_frame": [round(p, 5) for p in per], "valid": float(np.mean(valid_share))}


def pseudo_label_video(video, *, k: int = 8, person: str = "mog2", instances: bool = True,
                       centers: list | np.ndarray | None = None, position_weight: float = 0.6, blur: int = 5,
                       mode_filter: int = 7, labeler: PseudoLabeler | None = None, fps: float = 30.0,
                       max_frames: int | None = None, max_side: int | None = None,
                       progress: Callable[[int, int], None] | None = None) -> SourceVideo:
    """Footage as a lazy label :class:`SourceVideo` with ``label_nc = k + 1`` (the last id is the person
    class) and, with ``instances``, a boundary channel drawn from the instance map (stuff: its class; each
    tracked person: its own instance).

    ``centers`` (``[k, 4]``, e.g. a model's recorded ones) fix the class ids; otherwise they are fitted to
    this video (8 frames spread over it).  Up front: the fit and the moving-region model (two passes over
    the video, no frame kept).  The recipe records every setting and the centers.
    """
    video = video_input(video, fps=fps, max_frames=max_frames, max_side=max_side)
    if labeler is None:
        labeler = PseudoLabeler(k=k, position_weight=position_weight, blur=blur, mode_filter=mode_filter)
        if centers is not None:
            labeler.centers = np.asarray(centers, dtype=np.float32).reshape(k, 4)
    if labeler.centers is None:
        labeler.fit(video)
    k = labeler.k
    masks = PersonMasks(person, video, progress=progress)
    pal = generic_label_set(k + 1).palette()
    pal[k] = (220, 20, 60)  # person in Cityscapes' person color

    def stream(start, stop, shots, only):
        tracker = PersonTracker()
        session = masks.open()
        try:
            for i, rgb, cut in decoded_frames(video, start, stop, shots, only):
                if cut or only is not None:
                    tracker.reset()
                fg = masks(rgb, session)
                lab = labeler.predict(rgb)
                lab[fg] = k
                inst = lab.astype(np.int64)
                tracks = tracker(fg)
                inst[fg] = PERSON_ID_BASE + (tracks[fg] - 1) % MAX_TRACKS
                boundary = instance_boundary(inst) if instances else None
                yield SourceFrame(i, encode_frame(lab, k + 1, boundary), render_labels(lab, pal, boundary),
                                  ids=lab, instance=inst, cut=cut)
        finally:
            if session is not None:
                session.close()

    recipe = SourceRecipe("pseudo_labels", {
        "k": k, "person": person, "instances": bool(instances), "position_weight": labeler.position_weight,
        "blur": labeler.blur, "mode_filter": labeler.mode_filter,
        "centers": [[float(v) for v in row] for row in labeler.centers]})   # exact float32 values
    names = [f"cluster {c}" for c in range(k)] + ["person"]
    src = SourceVideo(kind="label", input_nc=k + 1 + bool(instances), label_nc=k + 1, height=video.height,
                      width=video.width, fps=video.fps, num_frames=len(video), stream=stream, recipe=recipe,
                      video=video, rebuild=lambda v: recipe.build(v),
                      report={"label_set": f"pseudo{k}+person", "k": k, "person_masks": person,
                              "frames": len(video)},
                      extra={"label_names": names, "palette": pal, "labeler": labeler})
    return src


def measure_stability(source: SourceVideo, max_frames: int = 60) -> dict:
    """:func:`label_flip_share` over the first ``max_frames`` frames of a pseudo-label source (its video
    decoded again alongside; nothing is stacked)."""
    stop = min(max_frames, len(source))
    ids = (f.ids for f in source.frames(0, stop))
    rgb = (f for _, f in source.video.frames(0, stop))
    return label_flip_share(ids, rgb)
