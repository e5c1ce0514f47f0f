"""Pose source videos: OpenPose-18 keypoints -> OpenPose-colored skeleton images.

Keypoints come from mediapipe 0.10.21 (optional extra, BlazePose 33 landmarks mapped onto the
OpenPose/COCO-18 body layout), or from any tool through POSE_KEYPOINT (comfyui_controlnet_aux's
format, e.g. DWPose) or OpenPose JSON files.  Rendering needs only OpenCV, so imported keypoints
drive the model without mediapipe.

Coordinates inside this module follow POSE_KEYPOINT: x, y normalized to [0, 1] of the canvas,
confidence c in [0, 1]; a missing joint has c = 0.

People too small for the detector (street scenes) are found by cropping moving regions (MOG2
blobs) first, running the detector on each upscaled crop and mapping the keypoints back.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from . import extras
from .base import SourceError, SourceVideo, as_frames, mask_boxes, mog2_masks, natural_key, progress_iter

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
    a = np.asarray(flat, dtype=np.float32).reshape(-1, 3).copy()
    if n is not None and len(a) != n:
        raise ValueError(f"expected {n} keypoints, got {len(a)}")
    missing = (a[:, 2] <= 0) | (a[:, 0] < 0) | (a[:, 1] < 0)
    if normalized is None:  # guess: pixel coordinates exceed 1
        normalized = bool(np.all(a[~missing, :2] <= 1.5)) if (~missing).any() else True
    if not normalized:
        a[:, 0] /= max(width, 1)
        a[:, 1] /= max(height, 1)
    a[missing] = 0.0
    return a


def _body18(flat, width, height, normalized) -> np.ndarray:
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
    frames = []
    for t, d in enumerate(data):
        W = int(d.get("canvas_width") or width or 0)
        H = int(d.get("canvas_height") or height or 0)
        if W <= 0 or H <= 0:
            raise ValueError(f"POSE_KEYPOINT frame {t} has no canvas_width/canvas_height; pass width and height")
        people = []
        for p in d.get("people") or []:
            body = p.get("pose_keypoints_2d")
            if not body:
                continue
            people.append(Person(body=_body18(body, W, H, None),
                                 hand_left=_rows(p.get("hand_left_keypoints_2d"), 21, W, H, None),
                                 hand_right=_rows(p.get("hand_right_keypoints_2d"), 21, W, H, None),
                                 face=_rows(p.get("face_keypoints_2d"), None, W, H, None)))
        frames.append(PoseFrame(W, H, people))
    return frames


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
        except (OSError, json.JSONDecodeError) as exc:
            raise SourceError(f"frame {Path(f).name}: not a readable OpenPose JSON file ({exc})") from None
        W = int(d.get("canvas_width") or width or 0)
        H = int(d.get("canvas_height") or height or 0)
        if W <= 0 or H <= 0:
            raise ValueError(f"{Path(f).name} has no canvas size; pass width= and height= (OpenPose JSON "
                             "stores pixel coordinates only)")
        people = []
        for p in d.get("people") or []:
            if not p.get("pose_keypoints_2d"):
                continue
            people.append(Person(body=_body18(p["pose_keypoints_2d"], W, H, False),
                                 hand_left=_rows(p.get("hand_left_keypoints_2d"), 21, W, H, False),
                                 hand_right=_rows(p.get("hand_right_keypoints_2d"), 21, W, H, False),
                                 face=_rows(p.get("face_keypoints_2d"), None, W, H, False)))
        frames.append(PoseFrame(W, H, people))
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


def smooth_poses(frames: Sequence[PoseFrame], *, fps: float = 30.0, min_cutoff: float = 1.0, beta: float = 0.3,
                 min_conf: float = 0.3, max_jump: float = 0.15) -> list[PoseFrame]:
    """Temporal smoothing of body keypoints with per-joint one-euro filters.

    People are tracked across frames by matching body centers (closest pairs first, at most
    ``max_jump`` of the canvas diagonal apart).  Joints below ``min_conf`` pass through unsmoothed
    and reset their filter (so a reappearing joint does not drift in from its old place).
    Speeds are measured in canvas heights per second.
    """
    tracks: dict[int, tuple[np.ndarray, list[OneEuro | None]]] = {}
    next_id = 0
    out = []
    for f in frames:
        aspect = f.width / max(f.height, 1)
        centers = [p.center() for p in f.people]
        ids = list(tracks)
        assigned: dict[int, int] = {}
        if ids and f.people:
            cost = np.full((len(f.people), len(ids)), 1e6)
            for i, c in enumerate(centers):
                if c is None:
                    continue
                for j, tid in enumerate(ids):
                    d = (c - tracks[tid][0]) * (aspect, 1.0)
                    dist = float(np.hypot(*d)) / math.hypot(aspect, 1.0)
                    if dist <= max_jump:
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
                tid, next_id = next_id, next_id + 1
                filters = [None] * len(p.body)
            else:
                filters = tracks[tid][1]
            body = p.body.copy()
            for j in range(len(body)):
                if body[j, 2] < min_conf:
                    filters[j] = None
                    continue
                if filters[j] is None:
                    filters[j] = OneEuro(fps, min_cutoff, beta)
                body[j, :2] = filters[j](body[j, :2] * (aspect, 1.0)) / (aspect, 1.0)
            c = Person(body, p.hand_left, p.hand_right, p.face).center()
            new_tracks[tid] = (c if c is not None else np.array([0.5, 0.5], np.float32), filters)
            people.append(replace(p, body=body))
        tracks = new_tracks
        out.append(PoseFrame(f.width, f.height, people))
    return out


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


def person_crops(masks: np.ndarray, *, min_area_frac: float = 0.001, pad: float = 0.25,
                 min_aspect: float = 0.6) -> list[list[tuple[int, int, int, int]]]:
    """Per frame, padded boxes around the moving blobs (vertically split blobs merged), widened to
    ``width >= min_aspect * height``."""
    T, H, W = masks.shape
    out = []
    for m in masks:
        boxes = []
        for x0, y0, x1, y1 in merge_split_boxes(mask_boxes(m, min_area=max(4, int(min_area_frac * H * W)))):
            w, h = x1 - x0, y1 - y0
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            h2 = h * (1 + 2 * pad)
            w2 = max(w * (1 + 2 * pad), min_aspect * h2)
            boxes.append((int(max(0, cx - w2 / 2)), int(max(0, cy - h2 / 2)),
                          int(min(W, cx + w2 / 2)), int(min(H, cy + h2 / 2))))
        out.append(boxes)
    return out


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


def detect_poses(video, *, crops: str = "auto", crop_side: int = 256, min_conf: float = 0.5,
                 min_area_frac: float = 0.001, min_crop_fill: float = 0.4, upright_crops: bool = True,
                 full_side: int = 640, fps: float = 30.0,
                 max_frames: int | None = None, max_side: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[list[PoseFrame], dict]:
    """Body keypoints per frame with mediapipe (one person per image).

    ``crops``: ``"full"`` runs the detector on whole frames (one person), ``"moving"`` on upscaled
    crops around MOG2 blobs (several small people), ``"auto"`` both, keeping the better of
    overlapping skeletons.  Skeletons whose mean joint visibility is below ``min_conf`` are dropped,
    and so are skeletons in a crop whose keypoints span less than ``min_crop_fill`` of its height
    (the detector's false positives on small clutter) and, with ``upright_crops``, skeletons in a
    crop whose neck lies below the hips (flipped detections of partly hidden walkers; turn it off
    for footage of people upside down).
    Returns the frames and a report (frames without a person, crops tried and crops with a pose).
    """
    if crops not in ("auto", "full", "moving"):
        raise ValueError(f"crops must be 'auto', 'full' or 'moving', got {crops!r}")
    extras.mediapipe_python()  # fail early with the install command
    fr = as_frames(video, fps=fps, max_frames=max_frames, max_side=max_side)
    T, H, W = fr.rgb.shape[:3]
    jobs: list[tuple[int, tuple[float, float, float, float], str]] = []
    images = []
    if crops in ("auto", "full"):
        s = min(1.0, full_side / max(H, W))
        for t in range(T):
            img = fr.rgb[t] if s == 1.0 else cv2.resize(fr.rgb[t], (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA)
            images.append(img)
            jobs.append((t, (0.0, 0.0, float(W), float(H)), "full"))
    n_crops = 0
    if crops in ("auto", "moving"):
        for t, boxes in enumerate(person_crops(mog2_masks(fr.rgb), min_area_frac=min_area_frac)):
            for (x0, y0, x1, y1) in boxes:
                crop = fr.rgb[t, y0:y1, x0:x1]
                s = crop_side / max(crop.shape[:2])
                images.append(cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                                         interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA))
                jobs.append((t, (float(x0), float(y0), float(x1), float(y1)), "crop"))
                n_crops += 1
    landmarks = extras.run_mediapipe("pose", images)["landmarks"] if images else np.zeros((0, 33, 4))
    per_frame: list[list[tuple[float, np.ndarray]]] = [[] for _ in range(T)]
    crops_hit = 0
    for (t, box, kind), lm in zip(jobs, landmarks):
        if not np.isfinite(lm).all():
            continue
        body = blazepose_to_openpose(lm, box, W, H)
        score = float(body[body[:, 2] > 0, 2].mean()) if (body[:, 2] > 0).any() else 0.0
        if score < min_conf:
            continue
        if kind == "crop":  # a crop is cut around one moving blob: its person fills much of it
            ok = body[:, 2] > 0.1
            span = (body[ok, 1].max() - body[ok, 1].min()) * H if ok.sum() >= 2 else 0.0
            if span < min_crop_fill * (box[3] - box[1]):
                continue
            hips = body[[8, 11]]
            if upright_crops and body[1, 2] > 0.1 and (hips[:, 2] > 0.1).all() and body[1, 1] > hips[:, 1].mean():
                continue  # neck below the hips: the detector flipped a partly hidden person
        crops_hit += kind == "crop"
        per_frame[t].append((score, body))
    frames = []
    for t in progress_iter(range(T), progress):
        kept: list[tuple[float, np.ndarray]] = []
        for score, body in sorted(per_frame[t], key=lambda x: -x[0]):  # greedy de-duplication
            b = _kp_box(body, 0.1)
            if b is None:
                continue
            if any(_box_iou(b, _kp_box(k[1], 0.1)) > 0.4 for k in kept):
                continue
            kept.append((score, body))
        frames.append(PoseFrame(W, H, [Person(body) for _, body in kept]))
    empty = sum(1 for f in frames if not f.people)
    report = {"frames": T, "frames_without_person": empty, "people_total": sum(len(f.people) for f in frames),
              "detection_rate": round(1 - empty / T, 4), "crops": n_crops, "crops_with_pose": crops_hit,
              "crop_hit_rate": round(crops_hit / n_crops, 4) if n_crops else None, "mode": crops, "fps": fr.fps}
    return frames, report


# --- the source -----------------------------------------------------------------------------------

def pose_video(video=None, *, keypoints=None, width: int | None = None, height: int | None = None,
               smooth: bool = True, crops: str = "auto", fps: float = 30.0, max_frames: int | None = None,
               max_side: int | None = None, min_conf: float = 0.1,
               progress: Callable[[int, int], None] | None = None) -> SourceVideo:
    """A pose :class:`SourceVideo`: rendered skeletons ``[T, 3, H, W]`` in [-1, 1].

    Keypoints come from ``keypoints`` (POSE_KEYPOINT list, :class:`PoseFrame` list, or a folder of
    OpenPose JSON files) when given (no mediapipe needed), else from ``video`` with mediapipe.
    The frame size is ``width``/``height``, else the video's, else the keypoints' canvas.
    ``extra["pose_keypoint"]`` holds the (smoothed) keypoints in POSE_KEYPOINT form.
    """
    report: dict = {}
    if keypoints is not None:
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
        if video is not None and (width is None or height is None):
            fr = as_frames(video, fps=fps, max_frames=1, max_side=max_side)
            height, width = fr.rgb.shape[1:3]
            fps = fr.fps
        empty = sum(1 for f in frames if not f.people)
        report = {"frames": len(frames), "frames_without_person": empty,
                  "people_total": sum(len(f.people) for f in frames), "source": "keypoints"}
    else:
        if video is None:
            raise ValueError("give a video (to detect poses with mediapipe) or keypoints")
        frames, report = detect_poses(video, crops=crops, fps=fps, max_frames=max_frames, max_side=max_side)
        report["source"] = "mediapipe"
        fps = report["fps"]
    if smooth:
        frames = smooth_poses(frames, fps=fps)
    W = int(width or frames[0].width)
    H = int(height or frames[0].height)
    rendered = np.stack([render_pose(f, W, H, min_conf=min_conf) for f in progress_iter(frames, progress)])
    preview = torch.from_numpy(rendered).float().div_(255.0)
    tensor = (preview * 2.0 - 1.0).permute(0, 3, 1, 2).contiguous()
    report["smoothed"] = bool(smooth)
    return SourceVideo(kind="pose", input_nc=3, label_nc=0, height=H, width=W, fps=float(fps),
                       preview=preview, frames=tensor, report=report,
                       extra={"pose_keypoint": to_pose_keypoint([replace(f, width=W, height=H) for f in frames])})
