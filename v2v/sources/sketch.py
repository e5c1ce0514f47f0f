"""Sketch source videos: the paper's face sketch and a general edge sketch.

Face sketch (paper, face task): 68 facial landmarks per frame (dlib's iBUG-68 layout) drawn as
one polyline per face part, plus Canny edges OUTSIDE the face region (hair, collar, background),
in one 0/1 line channel; optionally followed by one distance-transform channel per face part
(distance to that part's polyline, divided by ``dist_scale`` pixels and clipped to [0, 1]).

Edge sketch (any video): Canny with thresholds set from the frame's median intensity
(``(1 -/+ sigma) * median``), one 0/1 channel.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

from . import extras
from .base import Frames, SourceVideo, as_frames, progress_iter

# iBUG-68 face parts: (name, landmark indices, closed polygon?)
FACE_PARTS: tuple[tuple[str, tuple[int, ...], bool], ...] = (
    ("jaw", tuple(range(0, 17)), False),
    ("right_brow", tuple(range(17, 22)), False),
    ("left_brow", tuple(range(22, 27)), False),
    ("nose_bridge", tuple(range(27, 31)), False),
    ("nose_lower", (31, 32, 33, 34, 35), False),
    ("right_eye", tuple(range(36, 42)), True),
    ("left_eye", tuple(range(42, 48)), True),
    ("outer_lip", tuple(range(48, 60)), True),
    ("inner_lip", tuple(range(60, 68)), True),
)
N_PARTS = len(FACE_PARTS)


# --- general edges ------------------------------------------------------------------------------

def auto_canny(gray: np.ndarray, sigma: float = 0.33, blur: int = 3) -> np.ndarray:
    """Canny edges (uint8 0/255) with thresholds ``(1 -/+ sigma) * median(gray)``."""
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY)
    if blur and blur > 1:
        gray = cv2.GaussianBlur(gray, (blur | 1, blur | 1), 0)
    med = float(np.median(gray))
    lo = int(max(0.0, (1.0 - sigma) * med))
    hi = int(min(255.0, (1.0 + sigma) * med))
    if hi <= lo:  # flat frame
        hi = lo + 1
    return cv2.Canny(gray, lo, hi, L2gradient=True)


def edge_sketch(video, *, sigma: float = 0.33, blur: int = 3, fps: float = 30.0, max_frames: int | None = None,
                max_side: int | None = None, progress: Callable[[int, int], None] | None = None) -> SourceVideo:
    """General edge sketch of any video: ``[T, 1, H, W]`` 0/1 (white lines on black in the preview)."""
    fr = as_frames(video, fps=fps, max_frames=max_frames, max_side=max_side)
    edges = np.stack([auto_canny(f, sigma, blur) for f in progress_iter(fr.rgb, progress)])
    lines = torch.from_numpy(edges > 0).float()[:, None]
    T, _, H, W = lines.shape
    density = float(lines.mean())
    return SourceVideo(kind="sketch", input_nc=1, label_nc=0, height=H, width=W, fps=fr.fps,
                       preview=lines.permute(0, 2, 3, 1).repeat(1, 1, 1, 3).contiguous(), frames=lines,
                       report={"mode": "edges", "frames": T, "edge_density": round(density, 4), "sigma": sigma})


# --- face landmarks -----------------------------------------------------------------------------

class DlibLandmarks:
    """dlib HOG face detector + 68-point shape predictor.

    When the detector misses a face on a frame, the previous frame's face box is reused (the
    shape predictor then refits the landmarks inside it): such frames are counted as ``tracked``.
    """

    def __init__(self, predictor_path: str | None = None, upsample: int = 1):
        dlib = extras.require_dlib()
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(extras.shape_predictor_path(predictor_path)))
        self.upsample = upsample

    def __call__(self, frames: np.ndarray, progress=None) -> tuple[np.ndarray, list[str]]:
        """``[T, H, W, 3]`` RGB uint8 -> landmarks ``[T, 68, 2]`` (NaN where none) and a status per frame
        (``detected`` / ``tracked`` / ``missing``)."""
        out = np.full((len(frames), 68, 2), np.nan, dtype=np.float32)
        status = []
        prev_box = None
        for t in progress_iter(range(len(frames)), progress):
            rgb = np.ascontiguousarray(frames[t])
            boxes = self.detector(rgb, self.upsample)
            if len(boxes):
                box = max(boxes, key=lambda r: r.area())
                st = "detected"
            elif prev_box is not None:
                box, st = prev_box, "tracked"
            else:
                status.append("missing")
                continue
            shape = self.predictor(rgb, box)
            out[t] = [(p.x, p.y) for p in shape.parts()]
            prev_box = box
            status.append(st)
        return out, status


def face_region_mask(landmarks: np.ndarray, shape: tuple[int, int], *, forehead: float = 0.35,
                     dilate: int = 3) -> np.ndarray:
    """uint8 mask (255 inside) of the face: hull of the jaw line and the brows raised by
    ``forehead`` x (brow-to-chin height) so the forehead is included."""
    pts = landmarks.astype(np.float32)
    jaw = pts[0:17]
    brows = pts[17:27].copy()
    height = float(np.linalg.norm(pts[8] - brows.mean(0)))
    up = brows.mean(0) - pts[8]
    up /= max(np.linalg.norm(up), 1e-6)
    brows += up * forehead * height
    hull = cv2.convexHull(np.concatenate([jaw, brows]).astype(np.int32))
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    if dilate:
        mask = cv2.dilate(mask, np.ones((dilate, dilate), np.uint8))
    return mask


def draw_face_parts(landmarks: np.ndarray, shape: tuple[int, int], thickness: int = 1) -> list[np.ndarray]:
    """One uint8 (0/255) polyline image per face part."""
    out = []
    for _, idx, closed in FACE_PARTS:
        img = np.zeros(shape, dtype=np.uint8)
        pts = np.round(landmarks[list(idx)]).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], closed, 255, thickness, lineType=cv2.LINE_8)
        out.append(img)
    return out


def face_sketch_frame(rgb: np.ndarray, landmarks: np.ndarray | None, *, canny_outside: bool = True,
                      distance_transform: bool = True, dist_scale: float | None = None, sigma: float = 0.33,
                      thickness: int = 1) -> np.ndarray:
    """One face-sketch frame ``[C, H, W]`` float32: line channel (+ ``N_PARTS`` distance channels).

    Without landmarks the line channel holds only Canny edges and distance channels are 1 (far).
    """
    H, W = rgb.shape[:2]
    dist_scale = dist_scale or max(8.0, 0.15 * min(H, W))
    lines = np.zeros((H, W), dtype=np.uint8)
    dists = []
    have = landmarks is not None and np.isfinite(landmarks).all()
    if have:
        parts = draw_face_parts(landmarks, (H, W), thickness)
        for p in parts:
            lines |= p
        if distance_transform:
            for p in parts:
                d = cv2.distanceTransform(255 - p, cv2.DIST_L2, 3)
                dists.append(np.clip(d / dist_scale, 0.0, 1.0))
    elif distance_transform:
        dists = [np.ones((H, W), np.float32)] * N_PARTS
    if canny_outside:
        edges = auto_canny(rgb, sigma)
        if have:
            edges[face_region_mask(landmarks, (H, W)) > 0] = 0
        lines |= edges
    chans = [(lines > 0).astype(np.float32)] + [d.astype(np.float32) for d in dists]
    return np.stack(chans)


def face_sketch(video, *, landmarks: np.ndarray | None = None, detector: str = "dlib",
                predictor_path: str | None = None, upsample: int = 1, canny_outside: bool = True,
                distance_transform: bool = True, dist_scale: float | None = None, fps: float = 30.0,
                max_frames: int | None = None, max_side: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> SourceVideo:
    """The paper's face sketch source: ``[T, 1 (+9), H, W]``.

    ``landmarks`` (``[T, 68, 2]`` pixels, NaN rows for frames without a face) skip detection.
    The report counts frames where the detector found the face, where the previous box was reused
    (``tracked``) and where no landmarks exist (sketch then holds only edges).
    """
    fr: Frames = as_frames(video, fps=fps, max_frames=max_frames, max_side=max_side)
    T, H, W = fr.rgb.shape[:3]
    if landmarks is None:
        if detector != "dlib":
            raise ValueError(f"detector must be 'dlib' (got {detector!r})")
        lm, status = DlibLandmarks(predictor_path, upsample)(fr.rgb)
    else:
        lm = np.asarray(landmarks, dtype=np.float32)
        if lm.shape != (T, 68, 2):
            raise ValueError(f"landmarks must be [{T}, 68, 2], got {lm.shape}")
        status = ["given" if np.isfinite(l).all() else "missing" for l in lm]
    chans = np.stack([face_sketch_frame(fr.rgb[t], lm[t] if np.isfinite(lm[t]).all() else None,
                                        canny_outside=canny_outside, distance_transform=distance_transform,
                                        dist_scale=dist_scale)
                      for t in progress_iter(range(T), progress)])
    frames = torch.from_numpy(chans)
    preview = render_face_preview(chans)
    n_det = status.count("detected")
    report = {"mode": "face", "frames": T, "detected": n_det, "tracked": status.count("tracked"),
              "missing": status.count("missing"), "detection_rate": round(n_det / T, 4),
              "landmark_rate": round(1 - status.count("missing") / T, 4), "distance_channels": bool(distance_transform)}
    return SourceVideo(kind="sketch", input_nc=chans.shape[1], label_nc=0, height=H, width=W, fps=fr.fps,
                       preview=preview, frames=frames, report=report,
                       extra={"landmarks": lm, "status": status, "parts": [p[0] for p in FACE_PARTS]})


def render_face_preview(chans: np.ndarray) -> torch.Tensor:
    """Preview: white lines; the distance channels (if any) tint the background blue near the face."""
    lines = chans[:, 0]
    rgb = np.repeat(lines[..., None], 3, axis=-1)
    if chans.shape[1] > 1:
        near = 1.0 - chans[:, 1:].min(axis=1)
        rgb[..., 2] = np.maximum(rgb[..., 2], 0.35 * near)
    return torch.from_numpy(rgb.astype(np.float32))
