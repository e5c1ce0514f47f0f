"""Pose source videos, streamed: OpenPose-18 keypoints -> OpenPose-colored skeleton images.

Keypoints come from mediapipe 0.10.21 (optional extra, BlazePose 33 landmarks mapped onto the
OpenPose/COCO-18 body layout), or from any tool through POSE_KEYPOINT (comfyui_controlnet_aux's
format, e.g. DWPose) or OpenPose JSON files.  Rendering needs only OpenCV, so imported keypoints
drive the model without mediapipe.

Coordinates inside this module follow POSE_KEYPOINT: x, y normalized to [0, 1] of the canvas,
confidence c in [0, 1]; a missing joint has c = 0.

People too small for the detector (street scenes) are found by cropping moving regions (MOG2
blobs) first, running the detector on each upscaled crop and mapping the keypoints back.  Detection
runs frame by frame in one persistent mediapipe worker per stream; smoothing keeps one filter per joint
of each tracked person and restarts at every cut.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from . import extras
from ..media.video_io import natural_key
from ..media.tensors import uint8_to_model
from .base import (NO_SHOTS, MovingRegions, SourceError, SourceFrame, SourceVideo, decoded_frames, mask_boxes,
                   video_input)
from .recipe import SourceRecipe

BODY_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
              "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
# limbs as drawn by OpenPose (pairs of joint indices); limb i is drawn in COLORS[i]
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
HAND_EDGES = tuple((0, 1 + 4 * f) if j == 0 else (4 * f + j, 4 * f + j + 1) for f in range(5) for j in range(4))
# BlazePose-33 index for each OpenPose-18 joint (neck = mean of the shoulders)
_MP_TO_OP = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
# OpenPose BODY_25 -> COCO-18 (drops mid-hip and the feet)
_BODY25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


@dataclass
class Person:
    """One person's keypoints, ``[N, 3]`` float32 rows (x, y normalized, confidence)."""

    body: np.ndarray                      # [18, 3]
    hand_left: np.ndarray | None = None   # [21, 3]
    hand_right: np.ndarray | None = None  # [21, 3]
    face: np.ndarray | None = None        # [68 or 70, 3]

    def center(self, min_conf: float = 0.1) -> np.ndarray | None:
        ok = self.body[:, 2] > min_conf
        return self.body[ok, :2].mean(0) if ok.any() else None


@dataclass
class PoseFrame:
    width: int
    height: int
    people: list[Person] = field(default_factory=list)


# --- POSE_KEYPOINT and OpenPose JSON --------------------------------------------------------------

def _rows(flat, n: int | None, width: int, height: int, normalized: bool | None) -> np.ndarray | None:
    if flat is None or len(flat) == 0:
        return None
    try:
        a = np.asarray(flat, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError("keypoints must be a flat list of numbers (x, y, confidence, ...)") from None
    if len(a) % 3:
        raise ValueError(f"keypoints must come in (x, y, confidence) triples; got {len(a)} numbers")
    a = a.reshape(-1, 3).copy()
    if n is not None and len(a) != n:
        raise ValueError(f"expected {n} keypoints, got {len(a)}")
    missing = ~np.isfinite(a).all(1) | (a[:, 2] <= 0) | (a[:, 0] < 0) | (a[:, 1] < 0)
    if normalized is None:  # guess: pixel coordinates exceed 1
        normalized = bool(np.all(a[~missing, :2] <= 1.5)) if (~missing).any() else True
    if not normalized:
        a[:, 0] /= max(width, 1)
        a[:, 1] /= max(height, 1)
    missing |= (np.abs(a[:, :2]) > 4).any(1)       # canvases away: a broken detection, not a joint to draw
    a[missing] = 0.0
    return a


def _body18(flat, width, height, normalized) -> np.ndarray:
    if not isinstance(flat, (list, tuple)):
        raise ValueError(f"pose_keypoints_2d must be a list of numbers, got {type(flat).__name__}")
    n = len(flat) // 3
    a = _rows(flat, None, width, height, normalized)
    if n == 25:
        a = a[list(_BODY25_TO_18)]
    elif n != 18:
        raise ValueError(f"pose_keypoints_2d has {n} points; expected 18 (COCO/OpenPose-18) or 25 (BODY_25)")
    return a


def _flat(a: np.ndarray | None, width: int = 1, height: int = 1) -> list[float] | None:
    if a is None:
        return None
    out = a.astype(np.float64).copy()
    out[:, 0] *= width
    out[:, 1] *= height
    out[a[:, 2] <= 0] = 0.0
    return [round(float(v), 6) for v in out.reshape(-1)]


def from_pose_keypoint(data: Sequence[dict] | dict, *, width: int | None = None, height: int | None = None) -> list[PoseFrame]:
    """POSE_KEYPOINT (a list of per-frame dicts, comfyui_controlnet_aux format) -> :class:`PoseFrame` list.

    x, y are read as normalized unless they exceed 1 (then as pixels of the canvas).  BODY_25
    bodies are converted to the 18-joint layout.
    """
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, (list, tuple)):
        raise SourceError(f"POSE_KEYPOINT must be a list of per-frame dicts, got {type(data).__name__}")
    return [_pose_frame(d, width, height, None, f"POSE_KEYPOINT frame {t}") for t, d in enumerate(data)]


def _pose_frame(d, width: int | None, height: int | None, normalized: bool | None, where: str) -> PoseFrame:
    """One frame's dict (POSE_KEYPOINT entry, or an OpenPose JSON file) -> :class:`PoseFrame`; a malformed
    one raises :class:`SourceError` naming ``where``."""
    if not isinstance(d, dict):
        raise SourceError(f"{where} is a {type(d).__name__}, not a dict of canvas size and people")
    W = _canvas_side(d.get("canvas_width") or width, where, "canvas_width")
    H = _canvas_side(d.get("canvas_height") or height, where, "canvas_height")
    crowd = d.get("people") or []
    if not isinstance(crowd, (list, tuple)):
        raise SourceError(f"{where}: 'people' must be a list, got {type(crowd).__name__}")
    people = []
    for i, p in enumerate(crowd):
        if not isinstance(p, dict):
            raise SourceError(f"{where}, person {i} is a {type(p).__name__}, not a dict")
        body = p.get("pose_keypoints_2d")
        if not body:
            continue
        try:
            people.append(Person(body=_body18(body, W, H, normalized),
                                 hand_left=_rows(p.get("hand_left_keypoints_2d"), 21, W, H, normalized),
                                 hand_right=_rows(p.get("hand_right_keypoints_2d"), 21, W, H, normalized),
                                 face=_rows(p.get("face_keypoints_2d"), None, W, H, normalized)))
        except (TypeError, ValueError) as e:
            raise SourceError(f"{where}, person {i}: {e}") from None
    return PoseFrame(W, H, people)


MAX_CANVAS_SIDE = 16384


def _canvas_side(value, where: str, name: str) -> int:
    """A canvas side in pixels: a positive whole number up to :data:`MAX_CANVAS_SIDE`."""
    if value is None or value == 0:
        raise SourceError(f"{where} has no {name}; pass width= and height= (OpenPose JSON stores pixel "
                          "coordinates only)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not 0 < value <= MAX_CANVAS_SIDE:
        raise SourceError(f"{where}: {name} must be a whole number of pixels from 1 to {MAX_CANVAS_SIDE}, "
                          f"got {value!r}")
    return int(value)


def to_pose_keypoint(frames: Sequence[PoseFrame]) -> list[dict]:
    """:class:`PoseFrame` list -> POSE_KEYPOINT (normalized x, y; absent hands/face are None)."""
    return [{"people": [{"pose_keypoints_2d": _flat(p.body), "face_keypoints_2d": _flat(p.face),
                         "hand_left_keypoints_2d": _flat(p.hand_left), "hand_right_keypoints_2d": _flat(p.hand_right)}
                        for p in f.people],
             "canvas_height": int(f.height), "canvas_width": int(f.width)} for f in frames]


def write_openpose_json(frames: Sequence[PoseFrame], folder: str | os.PathLike, prefix: str = "frame") -> list[Path]:
    """One OpenPose JSON file per frame (``{prefix}_{t:012d}_keypoints.json``), pixel coordinates.

    The canvas size is added as ``canvas_width``/``canvas_height`` (OpenPose readers ignore them).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, f in enumerate(frames):
        people = [{"person_id": [-1],
                   "pose_keypoints_2d": _flat(p.body, f.width, f.height),
                   "face_keypoints_2d": _flat(p.face, f.width, f.height) or [],
                   "hand_left_keypoints_2d": _flat(p.hand_left, f.width, f.height) or [],
                   "hand_right_keypoints_2d": _flat(p.hand_right, f.width, f.height) or [],
                   "pose_keypoints_3d": [], "face_keypoints_3d": [],
                   "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []} for p in f.people]
        path = folder / f"{prefix}_{t:012d}_keypoints.json"
        path.write_text(json.dumps({"version": 1.3, "people": people,
                                    "canvas_width": int(f.width), "canvas_height": int(f.height)}))
        paths.append(path)
    return paths


def read_openpose_json(source: str | os.PathLike | Sequence, *, width: int | None = None,
                       height: int | None = None) -> list[PoseFrame]:
    """OpenPose JSON files (a folder, in natural order, or a list of files) -> :class:`PoseFrame` list.

    OpenPose writes pixel coordinates and no canvas size: give ``width``/``height`` unless the
    files carry ``canvas_width``/``canvas_height`` (ours do).
    """
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        files = sorted(Path(source).glob("*.json"), key=lambda p: natural_key(p.name))
    elif isinstance(source, (str, os.PathLike)):
        files = [Path(source)]
    else:
        files = [Path(p) for p in source]
    if not files:
        raise SourceError(f"no OpenPose .json files in {source}")
    frames = []
    for f in files:
        try:
            d = json.loads(Path(f).read_text())
        except (OSError, ValueError) as exc:      # unreadable, not UTF-8, not JSON
            raise SourceError(f"frame {Path(f).name}: not a readable OpenPose JSON file ({exc})") from None
        frames.append(_pose_frame(d, width, height, False, Path(f).name))
    return frames


# --- rendering ------------------------------------------------------------------------------------

def render_pose(frame: PoseFrame, width: int | None = None, height: int | None = None, *,
                min_conf: float = 0.1, stick_width: int | None = None, hands: bool = True,
                face: bool = True) -> np.ndarray:
    """OpenPose-style skeleton on black: ``[H, W, 3]`` uint8 RGB (no person -> all black).

    Limbs are filled ellipses in the OpenPose limb colors at 60 % intensity, joints full-color
    dots; hands use rainbow edges with blue joints, face points are white dots.
    """
    W, H = int(width or frame.width), int(height or frame.height)
    canvas = np.zeros((H, W, 3), dtype=np.uint8)
    s = min(H, W) / 512.0
    sw = stick_width or max(1, round(4 * s))
    r = max(1, round(4 * s))
    for p in frame.people:
        pts = p.body[:, :2] * (W, H)
        ok = p.body[:, 2] > min_conf
        for i, (a, b) in enumerate(LIMBS):
            if not (ok[a] and ok[b]):
                continue
            (xa, ya), (xb, yb) = pts[a], pts[b]
            length = math.hypot(xb - xa, yb - ya)
            angle = math.degrees(math.atan2(yb - ya, xb - xa))
            poly = cv2.ellipse2Poly((int(round((xa + xb) / 2)), int(round((ya + yb) / 2))),
                                    (int(round(length / 2)), sw), int(round(angle)), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, tuple(int(c * 0.6) for c in COLORS[i]), lineType=cv2.LINE_AA)
        for j in range(18):
            if ok[j]:
                cv2.circle(canvas, (int(round(pts[j, 0])), int(round(pts[j, 1]))), r, COLORS[j], -1, cv2.LINE_AA)
        if hands:
            for hand in (p.hand_left, p.hand_right):
                if hand is None:
                    continue
                hp = hand[:, :2] * (W, H)
                hok = hand[:, 2] > min_conf
                for e, (a, b) in enumerate(HAND_EDGES):
                    if hok[a] and hok[b]:
                        hsv = np.uint8([[[int(180 * e / len(HAND_EDGES)), 255, 255]]])
                        col = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
                        cv2.line(canvas, tuple(np.round(hp[a]).astype(int)), tuple(np.round(hp[b]).astype(int)),
                                 col, max(1, sw // 2), cv2.LINE_AA)
                for j in np.flatnonzero(hok):
                    cv2.circle(canvas, tuple(np.round(hp[j]).astype(int)), max(1, r // 2), (0, 0, 255), -1)
        if face and p.face is not None:
            fp = p.face[:, :2] * (W, H)
            for j in np.flatnonzero(p.face[:, 2] > min_conf):
                cv2.circle(canvas, tuple(np.round(fp[j]).astype(int)), max(1, r // 2), (255, 255, 255), -1)
    return canvas


# --- temporal smoothing ---------------------------------------------------------------------------

class OneEuro:
    """One-euro filter (Casiez et al., CHI 2012) on 2D points: the cutoff rises with speed, so slow
    jitter is smoothed hard while fast motion lags little."""

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.3, d_cutoff: float = 1.0):
        self.dt, self.min_cutoff, self.beta, self.d_cutoff = 1.0 / fps, min_cutoff, beta, d_cutoff
        self.x = self.dx = None

    def _alpha(self, cutoff: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / self.dt)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x
        dx = (x - self.x) / self.dt
        a_d = self._alpha(self.d_cutoff)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * float(np.linalg.norm(self.dx))
        a = self._alpha(cutoff)
        self.x = a * x + (1 - a) * self.x
        return self.x.copy()


class PoseSmoother:
    """Temporal smoothing of body keypoints, one frame at a time, with per-joint one-euro filters.

    People are tracked across frames by matching body centers (closest pairs first, at most ``max_jump``
    of the canvas diagonal apart).  Joints below ``min_conf`` pass through unsmoothed and reset their
    filter (so a reappearing joint does not drift in from its old place).  Speeds are measured in canvas
    heights per second.  :meth:`reset` forgets every track (a new shot).
    """

    def __init__(self, fps: float = 30.0, *, min_cutoff: float = 1.0, beta: float = 0.3, min_conf: float = 0.3,
                 max_jump: float = 0.15) -> None:
        self.fps, self.min_cutoff, self.beta, self.min_conf, self.max_jump = fps, min_cutoff, beta, min_conf, max_jump
        self.reset()

    def reset(self) -> None:
        self.tracks: dict[int, tuple[np.ndarray, list[OneEuro | None]]] = {}
        self.next_id = 0

    def __call__(self, f: PoseFrame) -> PoseFrame:
        aspect = f.width / max(f.height, 1)
        centers = [p.center() for p in f.people]
        ids = list(self.tracks)
        assigned: dict[int, int] = {}
        if ids and f.people:
            cost = np.full((len(f.people), len(ids)), 1e6)
            for i, c in enumerate(centers):
                if c is None:
                    continue
                for j, tid in enumerate(ids):
                    d = (c - self.tracks[tid][0]) * (aspect, 1.0)
                    dist = float(np.hypot(*d)) / math.hypot(aspect, 1.0)
                    if dist <= self.max_jump:
                        cost[i, j] = dist
            for flat in np.argsort(cost, axis=None):  # greedy: closest pairs first
                r, c = divmod(int(flat), len(ids))
                if cost[r, c] >= 1e6:
                    break
                if r not in assigned and ids[c] not in assigned.values():
                    assigned[r] = ids[c]
        new_tracks = {}
        people = []
        for i, p in enumerate(f.people):
            tid = assigned.get(i)
            if tid is None:
                tid, self.next_id = self.next_id, self.next_id + 1
                filters = [None] * len(p.body)
            else:
                filters = self.tracks[tid][1]
            body = p.body.copy()
            for j in range(len(body)):
                if body[j, 2] < self.min_conf:
                    filters[j] = None
                    continue
                if filters[j] is None:
                    filters[j] = OneEuro(self.fps, self.min_cutoff, self.beta)
                body[j, :2] = filters[j](body[j, :2] * (aspect, 1.0)) / (aspect, 1.0)
            c = Person(body, p.hand_left, p.hand_right, p.face).center()
            new_tracks[tid] = (c if c is not None else np.array([0.5, 0.5], np.float32), filters)
            people.append(replace(p, body=body))
        self.tracks = new_tracks
        return PoseFrame(f.width, f.height, people)


def smooth_poses(frames: Iterable[PoseFrame], *, fps: float = 30.0, **kw) -> list[PoseFrame]:
    """:class:`PoseSmoother` over a sequence of frames (one track set)."""
    smoother = PoseSmoother(fps, **kw)
    return [smoother(f) for f in frames]


# --- detection with mediapipe ---------------------------------------------------------------------

def blazepose_to_openpose(lm: np.ndarray, box: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    """BlazePose ``[33, 4]`` landmarks (normalized to a crop ``box`` = x0, y0, x1, y1 in frame pixels)
    -> OpenPose-18 ``[18, 3]`` normalized to the frame; visibility becomes the confidence."""
    x0, y0, x1, y1 = box
    xy = lm[:, :2] * (x1 - x0, y1 - y0) + (x0, y0)
    vis = np.clip(lm[:, 3], 0.0, 1.0)
    body = np.zeros((18, 3), dtype=np.float32)
    for j, k in enumerate(_MP_TO_OP):
        if k is None:  # neck: between the shoulders
            body[j, :2] = (xy[11] + xy[12]) / 2
            body[j, 2] = min(vis[11], vis[12])
        else:
            body[j, :2], body[j, 2] = xy[k], vis[k]
    body[:, 0] /= width
    body[:, 1] /= height
    outside = (body[:, 0] < 0) | (body[:, 0] > 1) | (body[:, 1] < 0) | (body[:, 1] > 1)
    body[outside] = 0.0
    return body


def merge_split_boxes(boxes: list[tuple[int, int, int, int]], gap: float = 0.35) -> list[tuple[int, int, int, int]]:
    """Merge blobs stacked vertically (a person cut in two by a pole or a sign): boxes whose
    x-ranges overlap by half the narrower one and whose vertical gap is below ``gap`` x the taller."""
    boxes = [tuple(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap_x = min(a[2], b[2]) - max(a[0], b[0])
                vgap = max(a[1], b[1]) - min(a[3], b[3])
                if (overlap_x >= 0.5 * min(a[2] - a[0], b[2] - b[0])
                        and vgap <= gap * max(a[3] - a[1], b[3] - b[1])):
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def person_crops(mask: np.ndarray, *, min_area_frac: float = 0.001, pad: float = 0.25,
                 min_aspect: float = 0.6) -> list[tuple[int, int, int, int]]:
    """Padded boxes around the moving blobs of one frame's mask (vertically split blobs merged), widened to
    ``width >= min_aspect * height``."""
    H, W = mask.shape
    boxes = []
    for x0, y0, x1, y1 in merge_split_boxes(mask_boxes(mask, min_area=max(4, int(min_area_frac * H * W)))):
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        h2 = h * (1 + 2 * pad)
        w2 = max(w * (1 + 2 * pad), min_aspect * h2)
        boxes.append((int(max(0, cx - w2 / 2)), int(max(0, cy - h2 / 2)),
                      int(min(W, cx + w2 / 2)), int(min(H, cy + h2 / 2))))
    return boxes


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _kp_box(body: np.ndarray, min_conf: float):
    ok = body[:, 2] > min_conf
    if ok.sum() < 2:
        return None
    xy = body[ok, :2]
    return (*xy.min(0), *xy.max(0))


class PoseDetector:
    """Body keypoints of one frame with mediapipe (one person per image), run in a persistent worker.

    ``crops``: ``"full"`` runs the detector on whole frames (one person), ``"moving"`` on upscaled crops
    around the blobs of a :class:`v2v.sources.base.MovingRegions` model fitted to the video (several small
    people), ``"auto"`` both, keeping the better of overlapping skeletons.  Skeletons whose mean joint
    visibility is below ``min_conf`` are dropped, and so are skeletons in a crop whose keypoints span less
    than ``min_crop_fill`` of its height (the detector's false positives on small clutter) and, with
    ``upright_crops``, skeletons in a crop whose neck lies below the hips (flipped detections of partly
    hidden walkers; turn it off for footage of people upside down).  ``counts`` adds up frames, people,
    crops tried and crops with a pose.
    """

    def __init__(self, video, *, crops: str = "auto", crop_side: int = 256, min_conf: float = 0.5,
                 min_area_frac: float = 0.001, min_crop_fill: float = 0.4, upright_crops: bool = True,
                 full_side: int = 640, progress=None) -> None:
        if crops not in ("auto", "full", "moving"):
            raise ValueError(f"crops must be 'auto', 'full' or 'moving', got {crops!r}")
        extras.mediapipe_python()  # fail early with the install command
        self.crops, self.crop_side, self.min_conf, self.min_area_frac = crops, crop_side, min_conf, min_area_frac
        self.min_crop_fill, self.upright_crops, self.full_side = min_crop_fill, upright_crops, full_side
        self.regions = MovingRegions().fit(video_input(video), progress) if crops in ("auto", "moving") else None
        self.counts: dict[str, int] = {}

    def open(self) -> "extras.MediapipeSession":
        """Start a stream: counts from zero, the moving-region model as fitted, and the mediapipe worker."""
        self.counts = {"frames": 0, "frames_without_person": 0, "people_total": 0, "crops": 0, "crops_with_pose": 0}
        if self.regions is not None:
            self.regions.fresh()
        return extras.MediapipeSession("pose")

    def __call__(self, rgb: np.ndarray, session) -> PoseFrame:
        H, W = rgb.shape[:2]
        jobs: list[tuple[tuple[float, float, float, float], str]] = []
        images = []
        if self.crops in ("auto", "full"):
            s = min(1.0, self.full_side / max(H, W))
            images.append(rgb if s == 1.0 else cv2.resize(rgb, (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA))
            jobs.append(((0.0, 0.0, float(W), float(H)), "full"))
        if self.regions is not None:
            for (x0, y0, x1, y1) in person_crops(self.regions.mask(rgb), min_area_frac=self.min_area_frac):
                crop = rgb[y0:y1, x0:x1]
                s = self.crop_side / max(crop.shape[:2])
                images.append(cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                                         interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA))
                jobs.append(((float(x0), float(y0), float(x1), float(y1)), "crop"))
                self.counts["crops"] += 1
        landmarks = session.run(images)["landmarks"] if images else np.zeros((0, 33, 4))
        found: list[tuple[float, np.ndarray]] = []
        for (box, kind), lm in zip(jobs, landmarks):
            if not np.isfinite(lm).all():
                continue
            body = blazepose_to_openpose(lm, box, W, H)
            score = float(body[body[:, 2] > 0, 2].mean()) if (body[:, 2] > 0).any() else 0.0
            if score < self.min_conf:
                continue
            if kind == "crop":  # a crop is cut around one moving blob: its person fills much of it
                ok = body[:, 2] > 0.1
                span = (body[ok, 1].max() - body[ok, 1].min()) * H if ok.sum() >= 2 else 0.0
                if span < self.min_crop_fill * (box[3] - box[1]):
                    continue
                hips = body[[8, 11]]
                if self.upright_crops and body[1, 2] > 0.1 and (hips[:, 2] > 0.1).all() and body[1, 1] > hips[:, 1].mean():
                    continue  # neck below the hips: the detector flipped a partly hidden person
                self.counts["crops_with_pose"] += 1
            found.append((score, body))
        kept: list[tuple[float, np.ndarray]] = []
        for score, body in sorted(found, key=lambda x: -x[0]):  # greedy de-duplication
            b = _kp_box(body, 0.1)
            if b is None:
                continue
            if any(_box_iou(b, _kp_box(k[1], 0.1)) > 0.4 for k in kept):
                continue
            kept.append((score, body))
        self.counts["frames"] += 1
        self.counts["frames_without_person"] += not kept
        self.counts["people_total"] += len(kept)
        return PoseFrame(W, H, [Person(body) for _, body in kept])

    def report(self) -> dict:
        c = self.counts
        return {**c, "detection_rate": round(1 - c["frames_without_person"] / c["frames"], 4) if c["frames"] else None,
                "crop_hit_rate": round(c["crops_with_pose"] / c["crops"], 4) if c["crops"] else None,
                "mode": self.crops}


def detect_poses(video, *, fps: float = 30.0, max_frames: int | None = None, max_side: int | None = None,
                 progress: Callable[[int, int], None] | None = None, **options) -> tuple[list[PoseFrame], dict]:
    """Keypoints of every frame (compact: a few hundred bytes a frame; frames are streamed, not kept) and
    the detector's report.  ``options`` go to :class:`PoseDetector`."""
    video = video_input(video, fps=fps, max_frames=max_frames, max_side=max_side)
    detector = PoseDetector(video, **options)
    frames = []
    with detector.open() as session:
        for i, (_, rgb) in enumerate(video.frames()):
            frames.append(detector(rgb, session))
            if progress is not None:
                progress(i + 1, len(video))
    return frames, {**detector.report(), "fps": video.fps}


# --- the source -----------------------------------------------------------------------------------

def _keypoint_frames(keypoints, width, height, max_frames) -> list[PoseFrame]:
    if isinstance(keypoints, (str, os.PathLike)):
        frames = read_openpose_json(keypoints, width=width, height=height)
    elif len(keypoints) and isinstance(keypoints[0], PoseFrame):
        frames = list(keypoints)
    else:
        frames = from_pose_keypoint(keypoints, width=width, height=height)
    if max_frames:
        frames = frames[:max_frames]
    if not frames:
        raise SourceError("no pose frames given (empty keypoint list)")
    return frames


def pose_video(video=None, *, keypoints=None, width: int | None = None, height: int | None = None,
               smooth: bool = True, crops: str = "auto", fps: float = 30.0, max_frames: int | None = None,
               max_side: int | None = None, min_conf: float = 0.1,
               progress: Callable[[int, int], None] | None = None) -> SourceVideo:
    """A lazy pose :class:`SourceVideo`: each frame's keypoints, smoothed over its shot, rendered as a skeleton
    ``[3, H, W]`` in [-1, 1] when it is streamed.

    Keypoints come from ``keypoints`` (POSE_KEYPOINT list, :class:`PoseFrame` list, or a folder of
    OpenPose JSON files) when given (no mediapipe needed), else from ``video`` with mediapipe, frame by
    frame.  The frame size is ``width``/``height``, else the video's, else the keypoints' canvas.  Each
    :class:`SourceFrame` carries its (smoothed) :class:`PoseFrame` as ``detail``; :class:`PoseKeypoints`
    collects them as POSE_KEYPOINT.
    """
    given = None
    vid = None
    if keypoints is not None:
        given = _keypoint_frames(keypoints, width, height, max_frames)
        if video is not None and (width is None or height is None):
            vid = video_input(video, fps=fps, max_frames=1, max_side=max_side)
            height, width, fps = vid.height, vid.width, vid.fps
        W, H, T = int(width or given[0].width), int(height or given[0].height), len(given)
        detector = None
    else:
        if video is None:
            raise ValueError("give a video (to detect poses with mediapipe) or keypoints")
        vid = video_input(video, fps=fps, max_frames=max_frames, max_side=max_side)
        detector = PoseDetector(vid, crops=crops, progress=progress)
        W, H, T, fps = int(width or vid.width), int(height or vid.height), len(vid), vid.fps

    def render(i: int, pose: PoseFrame, cut: bool) -> SourceFrame:
        rgb = render_pose(pose, W, H, min_conf=min_conf)
        return SourceFrame(i, uint8_to_model(rgb), rgb, cut=cut, detail=replace(pose, width=W, height=H))

    def stream(start, stop, shots, only):
        smoother = PoseSmoother(fps) if smooth else None
        if detector is None:     # keypoints given: cuts are found on the unsmoothed renderings
            is_cut = (shots or NO_SHOTS).marker()
            for i in (sorted(only) if only is not None else range(start, stop)):
                if not start <= i < stop:
                    continue
                pose = given[i]
                cut = only is None and is_cut(i, render_pose(pose, W, H, min_conf=min_conf)) and i != start
                if smoother is not None and (cut or only is not None):
                    smoother.reset()
                yield render(i, smoother(pose) if smoother else pose, cut)
            return
        with detector.open() as session:
            for i, rgb, cut in decoded_frames(vid, start, stop, shots, only):
                if smoother is not None and (cut or only is not None):
                    smoother.reset()
                pose = detector(rgb, session)
                yield render(i, smoother(pose) if smoother else pose, cut)
        if only is None:
            source.report.update(detector.report())

    # keypoints from elsewhere (DWPose, OpenPose) are drawn alike: the same recipe, but nothing to re-extract
    recipe = SourceRecipe("pose", {"crops": crops, "smooth": bool(smooth), "min_conf": min_conf})
    source = SourceVideo(kind="pose", input_nc=3, label_nc=0, height=H, width=W, fps=fps, num_frames=T, stream=stream,
                         recipe=recipe, video=vid if detector is not None else None,
                         rebuild=recipe.build if detector is not None else None,
                         report={"frames": T, "smoothed": bool(smooth),
                                 "source": "keypoints" if detector is None else "mediapipe"})
    return source


class PoseKeypoints(Sequence):
    """POSE_KEYPOINT of a pose source (comfyui_controlnet_aux's format: a list of per-frame dicts), computed
    the first time it is read by streaming the source (keypoints only are kept: compact)."""

    def __init__(self, source: SourceVideo) -> None:
        self.source, self._frames = source, None

    def _all(self) -> list[dict]:
        if self._frames is None:
            self._frames = to_pose_keypoint([f.detail for f in self.source.frames()])
        return self._frames

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):
        return self._all()[i]
