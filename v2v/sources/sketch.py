"""Sketch source videos, streamed: the paper's face sketch and a general edge sketch.

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
from .base import SourceFrame, SourceVideo, decoded_frames, video_input
from .recipe import SourceRecipe

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
    """General edge sketch of any video, one frame at a time: ``[1, H, W]`` 0/1 (white lines on black in the
    preview).  Nothing is computed up front, so ``progress`` is not called."""
    video = video_input(video, fps=fps, max_frames=max_frames, max_side=max_side)

    def stream(start, stop, shots, only):
        for i, rgb, cut in decoded_frames(video, start, stop, shots, only):
            lines = auto_canny(rgb, sigma, blur) > 0
            tensor = torch.from_numpy(lines[None].astype(np.float32))     # numpy: see labels.one_hot
            yield SourceFrame(i, tensor, np.repeat(lines[..., None] * np.uint8(255), 3, 2), cut=cut)

    recipe = SourceRecipe("edge_sketch", {"sigma": sigma, "blur": blur})
    return SourceVideo(kind="sketch", input_nc=1, label_nc=0, height=video.height, width=video.width, fps=video.fps,
                       num_frames=len(video), stream=stream, recipe=recipe, video=video, rebuild=recipe.build,
                       report={"mode": "edges", "frames": len(video), "sigma": sigma})


# --- face landmarks -----------------------------------------------------------------------------

class DlibLandmarks:
    """dlib HOG face detector + 68-point shape predictor, one frame at a time.

    When the detector misses a face on a frame, the previous frame's face box is reused (the shape
    predictor then refits the landmarks inside it): such frames are ``tracked``.  :meth:`reset` forgets the
    box (a new shot).
    """

    def __init__(self, predictor_path: str | None = None, upsample: int = 1):
        dlib = extras.require_dlib()
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(extras.shape_predictor_path(predictor_path)))
        self.upsample = upsample
        self.prev_box = None

    def reset(self) -> None:
        self.prev_box = None

    def frame(self, rgb: np.ndarray) -> tuple[np.ndarray | None, str]:
        """RGB uint8 ``[H, W, 3]`` -> landmarks ``[68, 2]`` (None when none) and ``detected`` / ``tracked`` /
        ``missing``."""
        rgb = np.ascontiguousarray(rgb)
        boxes = self.detector(rgb, self.upsample)
        if len(boxes):
            box, status = max(boxes, key=lambda r: r.area()), "detected"
        elif self.prev_box is not None:
            box, status = self.prev_box, "tracked"
        else:
            return None, "missing"
        shape = self.predictor(rgb, box)
        self.prev_box = box
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32), status

    def __call__(self, frames) -> tuple[np.ndarray, list[str]]:
        """Frames (``[T, H, W, 3]`` or any iterable) -> landmarks ``[T, 68, 2]`` (NaN where none) and a status
        per frame."""
        self.reset()
        out, status = [], []
        for rgb in frames:
            lm, st = self.frame(rgb)
            out.append(lm if lm is not None else np.full((68, 2), np.nan, np.float32))
            status.append(st)
        return np.stack(out) if out else np.zeros((0, 68, 2), np.float32), status


# How the shipped face models frame a face: carphone's framing, where dlib's face box is 36 % of the 176x144
# frame's height.  A window that frames another video the same way makes the model's input look like its training.
FACE_FRAMING = {"aspect": 176 / 144, "face_height": 0.36}


def face_window(video, *, aspect: float = FACE_FRAMING["aspect"], face_height: float = FACE_FRAMING["face_height"],
                samples: int = 12, upsample: int = 1) -> tuple[int, int, int, int]:
    """A fixed crop window ``(x, y, w, h)`` (video pixels) that frames the video's face: ``w / h`` is ``aspect``,
    the median face box (dlib's detector on ``samples`` frames spread over the video) is ``face_height`` of the
    window's height and at its centre.  A window larger than the frame shrinks to fit it (the face is then
    framed closer) and one that sticks out is moved inside.  Raises ``ValueError`` when no sampled frame shows a
    face."""
    video = video_input(video)
    detector = extras.require_dlib().get_frontal_face_detector()
    picks = {int(i) for i in np.linspace(0, len(video) - 1, min(samples, len(video)))}
    boxes = []
    for _, rgb in video.frames(only=picks):
        found = detector(np.ascontiguousarray(rgb), upsample)
        if len(found):
            box = max(found, key=lambda r: r.area())
            boxes.append((box.left() + box.width() / 2, box.top() + box.height() / 2, box.height()))
    if not boxes:
        raise ValueError(f"no face found in {len(picks)} frames of {video.describe()}: a face video is needed")
    cx, cy, box_h = np.median(np.array(boxes), axis=0)
    h = box_h / face_height
    w = h * aspect
    fit = min(1.0, video.width / w, video.height / h)
    w, h = min(video.width, round(w * fit)), min(video.height, round(h * fit))
    x = int(round(np.clip(cx - w / 2, 0, video.width - w)))
    y = int(round(np.clip(cy - h / 2, 0, video.height - h)))
    return x, y, int(w), int(h)


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


def default_dist_scale(height: int, width: int) -> float:
    """Distance (px) at which a distance channel reaches 1 (far): 15 % of the frame's short side, at least 8."""
    return max(8.0, 0.15 * min(height, width))


def part_distance(part: np.ndarray, dist_scale: float) -> np.ndarray:
    """A part's distance channel: distance to its line (uint8, 255 on it) over ``dist_scale``, clipped to 1."""
    return np.clip(cv2.distanceTransform(255 - part, cv2.DIST_L2, 3) / dist_scale, 0.0, 1.0)


def pack_face_sketch(chans: np.ndarray) -> np.ndarray:
    """A face-sketch frame ``[1 + N_PARTS, H, W]`` as one uint16 image of bits: bit 0 the line channel, bit
    k the pixels where distance channel k is 0 (part k's line).  ``unpack_face_sketch`` rebuilds the distances
    from those lines, so the pair stores a dataset's sketches in ~1 % of the space (check with ``array_equal``)."""
    bits = (chans[0] > 0).astype(np.uint16)
    for k in range(1, chans.shape[0]):
        bits |= (chans[k] == 0).astype(np.uint16) << k
    return bits


def unpack_face_sketch(bits: np.ndarray, n_channels: int = 1 + N_PARTS,
                       dist_scale: float | None = None) -> np.ndarray:
    """Inverse of ``pack_face_sketch`` (float32 ``[n_channels, H, W]``); a part without a line is far (1)."""
    H, W = bits.shape
    dist_scale = dist_scale or default_dist_scale(H, W)
    chans = [(bits & 1).astype(np.float32)]
    for k in range(1, n_channels):
        part = (((bits >> k) & 1) * 255).astype(np.uint8)
        chans.append(part_distance(part, dist_scale).astype(np.float32) if part.any()
                     else np.ones((H, W), np.float32))
    return np.stack(chans)


def face_sketch_frame(rgb: np.ndarray, landmarks: np.ndarray | None, *, canny_outside: bool = True,
                      distance_transform: bool = True, dist_scale: float | None = None, sigma: float = 0.33,
                      thickness: int = 1) -> np.ndarray:
    """One face-sketch frame ``[C, H, W]`` float32: line channel (+ ``N_PARTS`` distance channels).

    Without landmarks the line channel holds only Canny edges and distance channels are 1 (far).
    """
    H, W = rgb.shape[:2]
    dist_scale = dist_scale or default_dist_scale(H, W)
    lines = np.zeros((H, W), dtype=np.uint8)
    dists = []
    have = landmarks is not None and np.isfinite(landmarks).all()
    if have:
        parts = draw_face_parts(landmarks, (H, W), thickness)
        for p in parts:
            lines |= p
        if distance_transform:
            dists = [part_distance(p, dist_scale) for p in parts]
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
                distance_transform: bool = True, dist_scale: float | None = None, sigma: float = 0.33,
                fps: float = 30.0, max_frames: int | None = None, max_side: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> SourceVideo:
    """The paper's face sketch source, one frame at a time: ``[1 (+9), H, W]``.

    ``landmarks`` (``[T, 68, 2]`` pixels, NaN rows for frames without a face) skip detection.  The
    ``report`` counts, after a stream, the frames where the detector found the face, those where the previous
    box was reused (``tracked``) and those without landmarks (the sketch then holds only edges).  Nothing is
    computed up front, so ``progress`` is not called (the generation loop reports per frame).
    """
    video = video_input(video, fps=fps, max_frames=max_frames, max_side=max_side)
    if landmarks is not None:
        landmarks = np.asarray(landmarks, dtype=np.float32)
        if landmarks.shape != (len(video), 68, 2):
            raise ValueError(f"landmarks must be [{len(video)}, 68, 2], got {landmarks.shape}")
    elif detector != "dlib":
        raise ValueError(f"detector must be 'dlib' (got {detector!r})")
    else:
        extras.require_dlib()
        extras.shape_predictor_path(predictor_path)     # fail now, with the install command
    finders: list[DlibLandmarks] = []          # loaded once (a 100 MB model), on the first stream

    def stream(start, stop, shots, only):
        counts = {"detected": 0, "tracked": 0, "missing": 0, "given": 0}
        finder = None
        if landmarks is None:
            if not finders:
                finders.append(DlibLandmarks(predictor_path, upsample))
            finder = finders[0]
            finder.reset()
        for i, rgb, cut in decoded_frames(video, start, stop, shots, only):
            if finder is None:
                lm = landmarks[i] if np.isfinite(landmarks[i]).all() else None
                status = "given" if lm is not None else "missing"
            else:
                if cut or only is not None:
                    finder.reset()
                lm, status = finder.frame(rgb)
            counts[status] += 1
            chans = face_sketch_frame(rgb, lm, canny_outside=canny_outside, distance_transform=distance_transform,
                                      dist_scale=dist_scale, sigma=sigma)
            yield SourceFrame(i, torch.from_numpy(chans), render_face_preview(chans), cut=cut)
        seen = sum(counts.values())
        if only is None and seen:
            source.report.update(counts, detection_rate=round(counts["detected"] / seen, 4),
                                 landmark_rate=round(1 - counts["missing"] / seen, 4))

    recipe = SourceRecipe("face_sketch", {"canny_outside": canny_outside, "distance_transform": distance_transform,
                                          "dist_scale": dist_scale, "sigma": sigma, "upsample": upsample})
    source = SourceVideo(kind="sketch", input_nc=1 + (N_PARTS if distance_transform else 0), label_nc=0,
                         height=video.height, width=video.width, fps=video.fps, num_frames=len(video), stream=stream,
                         recipe=recipe, video=video, rebuild=None if landmarks is not None else recipe.build,
                         report={"mode": "face", "frames": len(video), "distance_channels": bool(distance_transform)},
                         extra={"parts": [p[0] for p in FACE_PARTS]})
    return source


def render_face_preview(chans: np.ndarray) -> np.ndarray:
    """Preview (uint8 RGB): white lines; the distance channels (if any) tint the background blue near the face."""
    lines = chans[0]
    rgb = np.repeat(lines[..., None], 3, axis=-1)
    if chans.shape[0] > 1:
        near = 1.0 - chans[1:].min(axis=0)
        rgb[..., 2] = np.maximum(rgb[..., 2], 0.35 * near)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
