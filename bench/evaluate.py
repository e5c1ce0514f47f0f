"""Held-out evaluation of trained models (issue 6, "Evaluation"): PSNR, SSIM, temporal warping error and, for
faces and bodies, condition following.

    python bench/evaluate.py --task street --models models/vid2vid/street.safetensors [B.safetensors ...]
        [--names full ...] [--first-frame] [--out bench/results/eval_street.json] [--machine "..."]
    python bench/evaluate.py --task face --models models/vid2vid/face.safetensors     # + dlib landmarks
    python bench/evaluate.py --task body --models models/vid2vid/body.safetensors     # + mediapipe pose

For each model, the HELD-OUT sequence(s) of the dataset (``<data>/val/<sequence>/``, made by
``scripts/footage_models.py prepare``; ``--data`` overrides ``.cache/datasets/<task>``) are streamed through
the nodes' generation loop (``v2v.pipeline.generate``) exactly as the CLI and the ComfyUI node do, and the outputs (quantised to
uint8, as a saved video would be) are compared with the real held-out frames (``target/``).  Sources and real
frames are first resized to the size the model was trained at (``data.load_size`` in the command of its
training record ``<model>.json``; ``--load-size`` overrides; none: the dataset's size) exactly as the trainer's
loader resized them (v2v.media.resize: area/linear for RGB, nearest for label ids):

* PSNR / SSIM (``v2v.media.metrics.psnr`` / ``ssim``), mean over frames;
* temporal warping error (``v2v.media.metrics.warping_error``): the real video's DIS flow warps our frame t-1 onto
  frame t, occlusions masked; also reported for the real video itself (the floor of this measure) and for a
  "still" reference, the real first frame repeated (it has no flicker at all, only the error of ignoring
  motion);
* face-sketch datasets (``face``, ``faces``): dlib 68 landmarks (``v2v.sources.sketch.DlibLandmarks``, the detector
  that made the sketches) are re-extracted from our frames and from the real frames (the source sketches were drawn
  from the real frames' landmarks): mean landmark distance in pixels, and the rate at which the detector finds a face
  in our frames.
* pose datasets (``body``, ``bodies``): people and their OpenPose-18 keypoints are re-extracted from our frames and
  from the real frames (at the evaluation size) with the extractor that made the source skeletons
  (``v2v.sources.pose.pose_video``: mediapipe on the whole frame plus moving-region crops, one-euro smoothing), people
  are matched per frame (:func:`pose_following`), and we report the mean keypoint distance in pixels (joints confident
  in both) and the share of the real frames' people found in ours. Without mediapipe these fields are null, with the
  reason.

Policies: by default every frame is generated, the first one from nothing; ``--first-frame`` gives the real
first frame (the paper's test mode), which the sampler returns unchanged, so it is left out of every metric
(scripts/demo.py does the same for PSNR / SSIM); ``--first-frame-model PERFRAME.safetensors`` makes frame 0
with that image model and lets every model continue from it (the official code's ``use_single_G``: nothing
real is given, every frame is scored).  Prints a markdown table and writes JSON with the machine
and the command.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from train.data import FrameList, list_sequences, read_dataset_json  # noqa: E402
from v2v.media.resize import resize_array, resize_ids, resize_image  # noqa: E402
from v2v.model.checkpoint import load_generator  # noqa: E402
from v2v.sources.labels import instance_boundary, one_hot  # noqa: E402
from v2v.media.metrics import psnr, ssim, to_uint8_frames, warping_error  # noqa: E402
from v2v.media.optical_flow import FlowCache  # noqa: E402
from v2v.sources.pose import PoseFrame  # noqa: E402
from v2v.pipeline import generate, model_recipe  # noqa: E402
from v2v.sources.recipe import source_for  # noqa: E402
from v2v.sources.base import SourceVideo, tensor_source  # noqa: E402
from v2v.sampler import PRECISIONS  # noqa: E402
from v2v.media.tensors import model_to_image, uint8_to_model  # noqa: E402
from v2v.media.video_io import frame_grid, write_image  # noqa: E402

DATASETS = ROOT / ".cache" / "datasets"
DEFAULT_MACHINE = f"{os.cpu_count()}-core CPU"


# ---------------------------------------------------------------------------------------------------------
# held-out data
@dataclass
class Heldout:
    """One held-out sequence, in memory (80 street frames at 256x192 are ~12 MB)."""

    name: str
    sources: list[torch.Tensor]            # network input per frame [C, H, W] (labels: one-hot, no boundary)
    instances: list[np.ndarray] | None     # instance-id maps (labels with instance/), given to the sampler
    real: list[np.ndarray]                 # real frames, uint8 RGB [H, W, 3]
    flow_cache: Path | None                # where the real video's DIS flows are cached

    def __len__(self) -> int:
        return len(self.real)

    @property
    def size(self) -> str:
        h, w = self.real[0].shape[:2]
        return f"{w}x{h}"


def load_heldout(root: str | os.PathLike, split: str = "val", sequence: str | None = None,
                 size: tuple[int, int] | None = None) -> list[Heldout]:
    """The sequences of ``root/split`` in the dataset layout of train/data.py (docs/DATASET.md), resized to
    ``size`` (H, W) as the trainer's ``load_size`` does (None: as stored)."""
    root = Path(root)
    meta = read_dataset_json(root)
    kind = meta.get("source_kind", "labels")
    label_nc = int(meta.get("label_nc", 0))
    ignore = tuple(meta.get("ignore_ids", ()))
    seqs = list_sequences(root, split)
    if sequence is not None:
        seqs = [s for s in seqs if s.name == sequence]
    if not seqs:
        raise SystemExit(f"{root / split}: no held-out sequences{f' named {sequence}' if sequence else ''}; "
                         "run python scripts/footage_models.py prepare")
    out = []
    for seq in seqs:
        src_kind = {"labels": "ids", "rgb": "rgb", "array": "array"}[kind]
        src = FrameList(seq / "source", src_kind)
        tgt = FrameList(seq / "target", "rgb")
        if len(src) != len(tgt) or len(src) < 2:
            raise SystemExit(f"{seq}: {len(src)} source and {len(tgt)} target frames (need equal, >= 2)")
        sources = []
        for i in range(len(src)):
            raw = src.read(i)
            if size is not None:   # ClipDataset.__getitem__: ids nearest, RGB area/linear, arrays per channel
                raw = resize_array(raw, size) if kind == "array" else resize_ids(raw, size) if kind == "labels" else resize_image(raw, size)
            if kind == "labels":
                sources.append(one_hot(raw, label_nc, ignore_ids=ignore, frame=src.name(i)))
            elif kind == "rgb":
                sources.append(uint8_to_model(raw))
            else:
                sources.append(torch.from_numpy(raw.astype(np.float32)))
        instances = None
        if (seq / "instance").is_dir():
            inst = FrameList(seq / "instance", "ids")
            instances = [inst.read(i) if size is None else resize_ids(inst.read(i), size)
                         for i in range(len(inst))]
        real = [tgt.read(i) if size is None else resize_image(tgt.read(i), size) for i in range(len(tgt))]
        out.append(Heldout(seq.name, sources, instances, real, root / ".flow_cache"))
    return out


def replace_real(sequences: Sequence[Heldout], video: Path, *, stride: int, max_side: int | None,
                 max_frames: int | None = None, crop: tuple[int, int, int, int] | None = None) -> dict:
    """Use the LAST frames of ``video`` (read as scripts/footage_models.py prepare extracted it: ``stride``,
    ``max_side``, ``max_frames``, ``crop``) as the real held-out frames instead of the dataset's (JPEG) targets, resized
    to the held-out size as the targets were; checks that they are the same frames."""
    from v2v.media.video_io import open_video

    if len(sequences) != 1:
        raise SystemExit("--real-video needs exactly one held-out sequence (use --sequence)")
    data = sequences[0]
    full = open_video(video, stride=stride, max_side=max_side, max_frames=max_frames, crop=crop)
    frames = [resize_image(f, data.real[0].shape[:2]) for _, f in full.frames(max(0, len(full) - len(data)))]
    if len(frames) != len(data) or frames[0].shape != data.real[0].shape:
        raise SystemExit(f"{video}: got {len(frames)} frames of {frames[0].shape}, expected {len(data)} of "
                         f"{data.real[0].shape}")
    agree = float(psnr(as_model_tensor(frames), as_model_tensor(data.real)).mean())
    if agree < 30:
        raise SystemExit(f"{video}: its last {len(data)} frames are not the held-out targets (PSNR {agree:.1f} dB)")
    data.real = frames
    return {"real_video": str(video), "stride": stride, "max_side": max_side, "max_frames": max_frames,
            "psnr_vs_targets_db": round(agree, 2)}


def as_model_tensor(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB frames -> [T, 3, H, W] in [-1, 1]."""
    return uint8_to_model(np.stack(frames))


# ---------------------------------------------------------------------------------------------------------
# generation and scoring
def heldout_source(model: torch.nn.Module, data: Heldout, indices: Sequence[int], *,
                   from_recipe: bool = False) -> "SourceVideo":
    """The held-out frames ``indices`` (in that order, repeats allowed) as a lazy source for ``model``: one-hot
    labels plus, when the model takes it, the boundary channel drawn from the instance maps.  ``from_recipe``:
    made instead from the real held-out frames by the model's own source recipe, as ``python -m v2v generate``
    makes it from a raw video (models whose label ids mean different things then meet the same footage)."""
    cfg = model.cfg
    if from_recipe:
        recipe = model_recipe(model)
        if recipe is None:
            raise SystemExit("--sources recipe: a model records no source recipe (python -m v2v info --model ...)")
        return source_for(recipe, np.stack([data.real[i] for i in indices]))
    boundary = data.instances is not None and cfg.label_nc > 0 and cfg.input_nc == cfg.label_nc + 1

    class Frames:
        def __len__(self) -> int:
            return len(indices)

        def __getitem__(self, t: int) -> torch.Tensor:
            src = data.sources[indices[t]]
            if boundary:
                edge = torch.from_numpy(instance_boundary(data.instances[indices[t]]).astype(np.float32))[None]
                src = torch.cat([src, edge])
            return src

    kind = "label" if cfg.label_nc else "sketch"
    return tensor_source(Frames(), kind=kind, label_nc=cfg.label_nc)


def sampler_outputs(model: torch.nn.Module, data: Heldout, indices: Sequence[int], *, first: torch.Tensor | None,
                    device: str = "cpu", precision: str = "fp32", seed: int = 0,
                    from_recipe: bool = False) -> Iterator[torch.Tensor]:
    """Stream the held-out frames ``indices`` through the nodes' generation loop (:func:`v2v.pipeline.generate`,
    no shot detection: these are one shot), lazily: each output ``[1, 3, H, W]`` float on the CPU.  ``first``:
    a real first frame ``[3, H, W]`` in [-1, 1]."""
    first_image = None if first is None else model_to_image(first[None])
    source = heldout_source(model, data, list(indices), from_recipe=from_recipe)
    for g in generate(model, source, first_frame=first_image, device=device,
                      precision=precision, seed=seed, shots=None):
        yield g.frame[None].cpu()


def generate_frames(model: torch.nn.Module, data: Heldout, *, first_frame: bool | np.ndarray,
                    device: str = "cpu", precision: str = "fp32", seed: int = 0,
                    on_frame: Callable[[int, torch.Tensor], None] | None = None,
                    from_recipe: bool = False) -> list[np.ndarray]:
    """Stream the held-out sources through the nodes' generation loop; returns uint8 RGB outputs.  ``first_frame``:
    False (generate every frame), True (the real first frame) or a uint8 frame to start from.  ``on_frame(t,
    frame)`` sees each output before quantisation (``[1, 3, H, W]`` float on the CPU)."""
    if isinstance(first_frame, np.ndarray):
        first = as_model_tensor([first_frame])[0]
    else:
        first = as_model_tensor(data.real[:1])[0] if first_frame else None
    outs = []
    frames = sampler_outputs(model, data, range(len(data)), first=first, device=device, precision=precision,
                             seed=seed, from_recipe=from_recipe)
    for t, frame in enumerate(frames):
        if on_frame is not None:
            on_frame(t, frame)
        outs.append(to_uint8_frames(frame)[0])
    return outs


def single_frame(model: torch.nn.Module, data: Heldout, *, device: str = "cpu", precision: str = "fp32",
                 seed: int = 0, from_recipe: bool = False) -> np.ndarray:
    """Frame 0 generated by ``model`` alone (the official vid2vid's ``use_single_G`` test option: an image
    model makes the first frame, the video model continues from it)."""
    return generate_frames(model, Heldout(data.name, data.sources[:1], data.instances and data.instances[:1],
                                          data.real[:1], data.flow_cache),
                           first_frame=False, device=device, precision=precision, seed=seed,
                           from_recipe=from_recipe)[0]


def flow_cache(data: Heldout) -> FlowCache:
    return FlowCache(data.flow_cache)


def image_scores(real: Sequence[np.ndarray], ours: Sequence[np.ndarray]) -> dict:
    r, o = as_model_tensor(real), as_model_tensor(ours)
    per_psnr = psnr(o, r)
    return {"psnr_db": float(per_psnr.mean()), "ssim": float(ssim(o, r).mean()),
            "psnr_per_frame": [round(float(v), 3) for v in per_psnr]}


def auto_following(data_root: Path) -> str | None:
    """The condition-following measure a dataset's sources call for, from the extractor its ``dataset.json``
    records: ``"landmarks"`` for face sketches, ``"pose"`` for poses, else None."""
    extractor = (read_dataset_json(data_root).get("source_recipe") or {}).get("extractor")
    return {"face_sketch": "landmarks", "pose": "pose"}.get(extractor)


def landmark_following(real_landmarks: np.ndarray, ours: Sequence[np.ndarray],
                       detector: Callable[[np.ndarray], tuple[np.ndarray, list[str]]]) -> dict:
    """Condition following for faces: landmarks re-extracted from ``ours`` vs ``real_landmarks`` [T, 68, 2]
    (those of the real frames, from which the source sketches were drawn).  Distance = mean over the 68 points
    of the Euclidean pixel distance, averaged over the frames where both have landmarks."""
    lm, status = detector(np.stack(ours))
    if lm.shape != real_landmarks.shape:
        raise ValueError(f"landmarks {lm.shape} vs real {real_landmarks.shape}")
    both = np.isfinite(lm).all(axis=(1, 2)) & np.isfinite(real_landmarks).all(axis=(1, 2))
    per_frame = np.linalg.norm(lm - real_landmarks, axis=-1).mean(-1)
    n = len(status)
    return {
        "landmark_error_px": float(per_frame[both].mean()) if both.any() else float("nan"),
        "landmark_frames_compared": int(both.sum()),
        "detection_rate": status.count("detected") / n,
        "landmark_rate": 1 - status.count("missing") / n,
        "landmark_error_per_frame": [round(float(v), 3) if b else None for v, b in zip(per_frame, both)],
    }


def pose_following(real: Sequence[PoseFrame], ours: Sequence[PoseFrame], *, min_conf: float = 0.5,
                   max_match: float = 0.5) -> dict:
    """Condition following for pose: the people re-extracted from our frames vs those of the real frames.

    Per frame, people (OpenPose-18 ``Person.body``, normalized x, y and confidence) are matched greedily,
    closest anchors first; the anchor is the mean of the confident (> ``min_conf``) neck and hips, else of all
    confident joints; a pair is no match when its anchors are further apart than ``max_match`` x the real
    person's height (its confident joints' vertical extent).  People with fewer than two confident joints are
    ignored.  ``keypoint_error_px``: mean Euclidean distance (pixels of the frame) over the joints confident in
    both people of a matched pair, pooled over pairs and frames; ``person_recall``: the share of the real
    frames' people found in ours; ``person_precision``: the share of ours that match a real person."""
    if len(real) != len(ours):
        raise ValueError(f"{len(real)} real pose frames vs {len(ours)} of ours")

    def people(frame: PoseFrame) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
        out = []
        for p in frame.people:
            xy = p.body[:, :2].astype(np.float64) * (frame.width, frame.height)
            ok = p.body[:, 2] > min_conf
            if ok.sum() < 2:
                continue
            core = np.zeros_like(ok)
            core[[1, 8, 11]] = ok[[1, 8, 11]]                       # neck, right hip, left hip
            anchor = xy[core].mean(0) if core.any() else xy[ok].mean(0)
            out.append((xy, ok, anchor, max(1.0, float(np.ptp(xy[ok, 1])))))
        return out

    dists: list[float] = []
    per_frame: list[float | None] = []
    n_real = n_ours = n_matched = 0
    for r_frame, o_frame in zip(real, ours):
        R, O = people(r_frame), people(o_frame)
        n_real, n_ours = n_real + len(R), n_ours + len(O)
        pairs = sorted((float(np.linalg.norm(r[2] - o[2])), i, j) for i, r in enumerate(R) for j, o in enumerate(O))
        used_r: set[int] = set()
        used_o: set[int] = set()
        frame_d: list[float] = []
        for d, i, j in pairs:
            if d > max_match * R[i][3] or i in used_r or j in used_o:
                continue
            used_r.add(i)
            used_o.add(j)
            both = R[i][1] & O[j][1]
            frame_d.extend(np.linalg.norm(R[i][0][both] - O[j][0][both], axis=1).tolist())
        n_matched += len(used_r)
        dists.extend(frame_d)
        per_frame.append(round(float(np.mean(frame_d)), 3) if frame_d else None)
    n = max(1, len(real))
    return {
        "keypoint_error_px": float(np.mean(dists)) if dists else None,
        "keypoints_compared": len(dists),
        "person_recall": n_matched / n_real if n_real else None,
        "person_precision": n_matched / n_ours if n_ours else None,
        "people_per_frame": n_ours / n, "people_real_per_frame": n_real / n, "people_matched": n_matched,
        "keypoint_error_per_frame": per_frame,
    }


def pose_extractor(fps: float) -> Callable[[Sequence[np.ndarray]], tuple[list[PoseFrame], dict]]:
    """uint8 RGB frames -> (PoseFrame per frame, extractor report) with the extractor that made the dataset's
    source skeletons (train/prepare.py: ``v2v.sources.pose.pose_video`` with moving-region crops and smoothing)."""
    from v2v.sources.pose import pose_video

    def extract(frames: Sequence[np.ndarray]) -> tuple[list[PoseFrame], dict]:
        src = pose_video(np.stack(frames), crops="auto", fps=fps)
        poses = [f.detail for f in src.frames()]
        report = {k: v for k, v in src.report.items() if k in ("people_total", "detection_rate", "crops",
                                                                "crops_with_pose", "crop_hit_rate")}
        return poses, report
    return extract


def evaluate_sequence(models: Sequence[tuple[str, torch.nn.Module]], data: Heldout, *, first_frame: bool,
                      first_frame_model: torch.nn.Module | None = None, detector=None, poser=None,
                      device: str = "cpu", precision: str = "fp32", seed: int = 0, log=print,
                      keep: dict[str, list[np.ndarray]] | None = None, from_recipe: bool = False) -> dict:
    """Scores of every model on one held-out sequence, plus the real video and the still reference.
    ``first_frame_model``: frame 0 of every model is this model's output (generated, so it is scored).
    ``detector``: face landmarks (see :func:`landmark_following`); ``poser``: frames -> (PoseFrame list, report)
    (see :func:`pose_extractor`), run on every frame of the real and of each model's video (frame 0 included:
    the same clip for the moving-region detector), scored on the scored frames only.  ``keep``: filled with
    each model's frames (uint8 RGB, frame 0 included) by name."""
    skip = 1 if first_frame else 0          # a given real first frame is returned unchanged: leave it out
    start: bool | np.ndarray = first_frame
    if first_frame_model is not None:
        if first_frame:
            raise ValueError("first_frame and first_frame_model exclude each other")
        start = single_frame(first_frame_model, data, device=device, precision=precision, seed=seed,
                             from_recipe=from_recipe)
    real = data.real[skip:]
    cache = flow_cache(data)
    still = [data.real[0]] * len(real)      # the real first frame held still (knows frame 0, ignores motion)
    refs = {
        "real video": {"warping_error": warping_error(real, real, cache=cache).mean},
        "still real frame 0": {**image_scores(real, still),
                               "warping_error": warping_error(real, still, cache=cache).mean},
    }
    real_lm = None
    if detector is not None:
        real_lm, real_status = detector(np.stack(real))
        refs["real video"]["detection_rate"] = real_status.count("detected") / len(real)
        refs["still real frame 0"].update(landmark_following(real_lm, still, detector))
    real_pose = None
    if poser is not None:
        real_pose, report = poser(data.real)
        refs["real video"].update(people_per_frame=sum(len(f.people) for f in real_pose[skip:]) / len(real),
                                  pose_extractor=report)
        # the real frame 0's people held still: what ignoring the pose's motion would score
        refs["still real frame 0"].update(pose_following(real_pose[skip:], [real_pose[0]] * len(real)))
    rows = {}
    for name, model in models:
        t0 = time.time()
        ours = generate_frames(model, data, first_frame=start, device=device, precision=precision,
                               seed=seed, from_recipe=from_recipe)
        gen_s = time.time() - t0
        if first_frame and not np.array_equal(ours[0], data.real[0]):
            raise RuntimeError("the sampler did not return the given real first frame unchanged")
        if keep is not None:
            keep[name] = ours
        our_pose = poser(ours) if poser is not None else None
        ours = ours[skip:]
        werr = warping_error(real, ours, cache=cache)
        row = {**image_scores(real, ours), "warping_error": werr.mean,
               "warping_error_per_pair": [round(v, 3) for v in werr.per_pair],
               "generate_seconds": round(gen_s, 2), "fps": round(len(data) / gen_s, 2)}
        if detector is not None:
            row.update(landmark_following(real_lm, ours, detector))
        if our_pose is not None:
            row.update(pose_following(real_pose[skip:], our_pose[0][skip:]), pose_extractor=our_pose[1])
            log(f"  {name}: keypoint error {_fmt(row['keypoint_error_px'], 2)} px, real people found "
                f"{_fmt(row['person_recall'], 3)}, people/frame {row['people_per_frame']:.2f} "
                f"(real {refs['real video']['people_per_frame']:.2f})")
        log(f"  {name}: PSNR {row['psnr_db']:.2f} dB, SSIM {row['ssim']:.4f}, warping error "
            f"{row['warping_error']:.3f} (real {refs['real video']['warping_error']:.3f}), {gen_s:.1f} s")
        rows[name] = row
    return {"sequence": data.name, "frames": len(data), "frames_scored": len(real), "size": data.size,
            "models": rows, "references": refs}


# ---------------------------------------------------------------------------------------------------------
# reporting
def mean_over_sequences(results: Sequence[dict], group: str, name: str, key: str) -> float | None:
    """Frame-weighted mean of ``key`` of row ``name`` over the sequences (None where a row lacks it)."""
    vals, weights = [], []
    for r in results:
        row = r[group].get(name, {})
        if key not in row or row[key] is None:
            return None
        vals.append(row[key])
        weights.append(r["frames_scored"])
    return float(np.average(vals, weights=weights)) if vals else None


def _fmt(v, nd):
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


# condition-following columns per kind: (key, table header, format: digits or "pct")
FOLLOWING = {
    "landmarks": (("landmark_error_px", "landmark error px", 2), ("detection_rate", "face detected", "pct")),
    "pose": (("keypoint_error_px", "keypoint error px", 2), ("person_recall", "real people found", "pct"),
             ("people_per_frame", "people/frame", 2)),
}


def summary_rows(results: Sequence[dict], names: Sequence[str], baseline: str | None,
                 following: str | None) -> list[dict]:
    """One dict per table row: the models, then the references.  ``following``: None, "landmarks" or "pose"."""
    rows = []
    base_w = mean_over_sequences(results, "models", baseline, "warping_error") if baseline else None
    base_p = mean_over_sequences(results, "models", baseline, "psnr_db") if baseline else None
    keys = ["psnr_db", "ssim", "warping_error"] + [k for k, _, _ in FOLLOWING.get(following, ())]
    for group, group_names in (("models", names), ("references", list(results[0]["references"]))):
        for name in group_names:
            row = {"name": name, "kind": "model" if group == "models" else "reference"}
            for k in keys:
                row[k] = mean_over_sequences(results, group, name, k)
            if group == "models" and base_w:
                row["warping_vs_baseline_pct"] = 100.0 * (row["warping_error"] / base_w - 1)
                row["psnr_vs_baseline_db"] = row["psnr_db"] - base_p
            rows.append(row)
    return rows


def markdown_table(rows: Sequence[dict], *, baseline: str | None, following: str | None, title: str) -> str:
    head = [title, "PSNR dB", "SSIM", "warping error"]
    if baseline:
        head += [f"warping vs {baseline}", f"PSNR vs {baseline}"]
    cols = FOLLOWING.get(following, ())
    head += [h for _, h, _ in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"] if r["kind"] == "model" else f"*{r['name']}*", _fmt(r["psnr_db"], 2),
                 _fmt(r["ssim"], 4), _fmt(r["warping_error"], 3)]
        if baseline:
            if "warping_vs_baseline_pct" in r:
                cells += [f"{r['warping_vs_baseline_pct']:+.1f} %", f"{r['psnr_vs_baseline_db']:+.2f} dB"]
            else:
                cells += ["", ""]
        for key, _, nd in cols:
            v = r.get(key)
            cells.append(("-" if v is None else f"{100 * v:.0f} %") if nd == "pct" else _fmt(v, nd))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_info(path: Path, model: torch.nn.Module) -> dict:
    cfg = model.cfg
    info = {"path": str(path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path),
            "parameters": sum(p.numel() for p in model.parameters()),
            "use_flow": cfg.use_flow, "foreground": cfg.foreground, "input_nc": cfg.input_nc}
    record = path.with_suffix(".json")
    if record.is_file():
        try:
            info["training_record"] = json.loads(record.read_text())
        except json.JSONDecodeError:
            pass
    return info


def sample_clip(filename: str) -> Path:
    """A sample clip of scripts/fetch_sample_data.py (``vtest.avi``, ``Megamind.avi``, ...), fetched when missing."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from fetch_sample_data import sample_path

    return sample_path(filename)


def run_context(machine: str, script: str, argv: Sequence[str] | None) -> dict:
    """Machine, the command as one would type it in the repository root, versions and date."""
    args = list(sys.argv[1:] if argv is None else argv)
    return {"machine": machine, "command": "python " + shlex.join([script, *args]),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def write_report(out: Path, report: dict) -> None:
    """The JSON report every bench script writes (one indented file, parents created)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")


def pick_baseline(names: Sequence[str], infos: Sequence[dict], requested: str | None) -> str | None:
    if requested:
        if requested not in names:
            raise SystemExit(f"--baseline {requested!r} is not one of {list(names)}")
        return requested
    per_frame = [n for n, i in zip(names, infos) if not i["use_flow"]]
    return per_frame[0] if len(per_frame) == 1 and len(names) > 1 else None


def training_load_size(path: Path) -> tuple[int, int] | None:
    """``data.load_size`` (H, W) of the command in the model's training record ``<model>.json``
    (scripts/footage_models.py writes it), or None."""
    record = path.with_suffix(".json")
    try:
        command = json.loads(record.read_text()).get("command", "")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    found = re.findall(r"data\.load_size=\[\s*(\d+)\s*,\s*(\d+)\s*\]", command)  # the last --set wins
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def prepare_settings(task: str) -> dict:
    """How scripts/footage_models.py prepared the dataset of ``task`` (its video, --stride, --max-side,
    --max-frames, --crop), so that --real-video reads the same frames; {} for other tasks."""
    spec = importlib.util.spec_from_file_location("v2v_footage_models", ROOT / "scripts" / "footage_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if task not in module.TASKS:
        return {}
    args = module.TASKS[task][0]
    opt = {k: args[args.index(k) + 1] for k in ("--video", "--stride", "--max-side", "--max-frames", "--crop")
           if k in args}
    return {"video": Path(opt["--video"]) if "--video" in opt else None, "stride": int(opt.get("--stride", 1)),
            "max_side": int(opt.get("--max-side", 0)),
            "max_frames": int(opt["--max-frames"]) if "--max-frames" in opt else None,
            "crop": tuple(int(v) for v in opt["--crop"].split(",")) if "--crop" in opt else None}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="street", help="dataset .cache/datasets/<task> (street, face, ...)")
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default .cache/datasets/<task>)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--sequence", default=None, help="only this held-out sequence")
    ap.add_argument("--models", nargs="+", type=Path, required=True)
    ap.add_argument("--names", nargs="+", default=None, help="row names (default: file stems)")
    ap.add_argument("--baseline", default=None,
                    help="row the others are compared with (default: the one per-frame model, use_flow=false)")
    ap.add_argument("--first-frame", action="store_true", help="give the real first frame (paper's test mode)")
    ap.add_argument("--first-frame-model", type=Path, default=None,
                    help="generate frame 0 with this (per-frame) model and let every model continue from it "
                         "(official vid2vid's use_single_G test option); frame 0 is scored")
    ap.add_argument("--landmarks", choices=("auto", "on", "off"), default="auto",
                    help="face condition following with dlib (auto: on when the dataset's sources are face sketches)")
    ap.add_argument("--real-video", type=Path, default=None,
                    help="take the real held-out frames from this video's last frames (e.g. .cache/data/vtest.avi, "
                         "as scripts/demo.py does) instead of the dataset's JPEG targets")
    ap.add_argument("--real-stride", type=int, default=None,
                    help="with --real-video: frame stride of the dataset (default: as scripts/footage_models.py "
                         "prepared --task, else 2)")
    ap.add_argument("--real-max-side", type=int, default=None,
                    help="with --real-video: longer side of the dataset (0: keep; default: as prepared, else 256)")
    ap.add_argument("--real-max-frames", type=int, default=None,
                    help="with --real-video: frames the dataset was made of (default: as prepared, else all)")
    sizing = ap.add_mutually_exclusive_group()
    sizing.add_argument("--load-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                    help="evaluate at this size (default: data.load_size of the models' training records, "
                         "else the dataset's size)")
    sizing.add_argument("--dataset-size", action="store_true",
                    help="evaluate every sequence at the size it was prepared at (for models trained on clips of "
                         "several sizes, e.g. portrait and landscape)")
    ap.add_argument("--pose", choices=("auto", "on", "off"), default="auto",
                    help="pose condition following with mediapipe (auto: on when the dataset's sources are poses)")
    ap.add_argument("--sources", choices=("dataset", "recipe"), default="dataset",
                    help="dataset: the held-out sources of the dataset; recipe: each model makes its own from the "
                         "real held-out frames with its recorded source recipe (as from a raw video), for models "
                         "whose label ids differ (e.g. pseudo-labels fitted to other footage)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--machine", default=DEFAULT_MACHINE, help="machine name recorded in the JSON")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default bench/results/eval_<task>.json)")
    ap.add_argument("--strip", type=Path, default=None,
                    help="also write an image of the first sequence: the real frames, then each model, as rows "
                         "of 5 evenly spaced frames")
    a = ap.parse_args(argv)

    names = a.names or [p.stem for p in a.models]
    if len(names) != len(a.models) or len(set(names)) != len(names):
        raise SystemExit("--names must give one distinct name per model")
    if a.first_frame and a.first_frame_model:
        raise SystemExit("--first-frame and --first-frame-model exclude each other")
    suffix = "_first_frame" if a.first_frame else "_single_g" if a.first_frame_model else ""
    out = a.out or ROOT / "bench" / "results" / f"eval_{a.task}{suffix}.json"
    data_root = a.data or DATASETS / a.task
    t_start = time.time()
    if a.dataset_size:
        load_size, size_from = None, "--dataset-size"
    elif a.load_size:
        load_size, size_from = tuple(a.load_size), "--load-size"
    else:
        sizes = {training_load_size(p) for p in a.models} - {None}
        if len(sizes) > 1:
            raise SystemExit(f"the models were trained at different sizes {sorted(sizes)}; pass --load-size H W")
        load_size, size_from = (sizes.pop(), "training records") if sizes else (None, "dataset")
    sequences = load_heldout(data_root, a.split, a.sequence, size=load_size)
    real_source = {"real_frames": "dataset targets"}
    if a.real_video:
        prep = prepare_settings(a.task)
        stride = a.real_stride if a.real_stride is not None else prep.get("stride", 2)
        max_side = a.real_max_side if a.real_max_side is not None else prep.get("max_side", 256)
        max_frames = a.real_max_frames if a.real_max_frames is not None else prep.get("max_frames")
        real_source = replace_real(sequences, a.real_video, stride=stride, max_side=max_side or None,
                                   max_frames=max_frames, crop=prep.get("crop"))
        print(f"real frames: {a.real_video} (PSNR {real_source['psnr_vs_targets_db']} dB vs the dataset targets)")
    models = [(n, load_generator(p, a.device)) for n, p in zip(names, a.models)]
    infos = [model_info(p, m) for p, (_, m) in zip(a.models, models)]
    baseline = pick_baseline(names, infos, a.baseline)
    auto = auto_following(data_root)
    use_lm = a.landmarks == "on" or (a.landmarks == "auto" and auto == "landmarks")
    use_pose = a.pose == "on" or (a.pose == "auto" and auto == "pose")
    if use_lm and use_pose:
        raise SystemExit("--landmarks and --pose exclude each other (one condition-following measure per run)")
    following = "landmarks" if use_lm else "pose" if use_pose else None
    first_model = load_generator(a.first_frame_model, a.device) if a.first_frame_model else None
    if a.first_frame:
        mode = "real first frame given, not scored"
    elif first_model is not None:
        mode = f"frame 0 from {a.first_frame_model.stem}, scored"
    else:
        mode = "every frame generated"
    detector = None
    if use_lm:
        from v2v.sources.sketch import DlibLandmarks
        detector = DlibLandmarks()
    poser, unavailable, fps = None, None, None
    if use_pose:
        from v2v.sources import extras
        if extras.has_mediapipe():
            prep = prepare_settings(a.task)
            video = prep.get("video")
            fps = 30.0
            if video is not None and video.exists():   # the dataset's frame rate: the smoothing depends on it
                from v2v.media.video_io import read_frames
                fps = (read_frames(video).fps or 30.0) / max(1, prep.get("stride", 1))
            poser = pose_extractor(fps)
        else:
            unavailable = ("mediapipe is not installed (no .venv-mediapipe, $V2V_MEDIAPIPE_PYTHON or mediapipe "
                           "in this interpreter): pose condition following skipped")
            print(unavailable)

    results, frames = [], {}
    for k, data in enumerate(sequences):
        print(f"{data_root / a.split / data.name}: {len(data)} frames at {data.size}, {mode}", flush=True)
        results.append(evaluate_sequence(models, data, first_frame=a.first_frame, first_frame_model=first_model,
                                         detector=detector, poser=poser, device=a.device, precision=a.precision,
                                         seed=a.seed, keep=frames if k == 0 else None,
                                         from_recipe=a.sources == "recipe"))
    if a.strip:
        write_image(a.strip, frame_grid([sequences[0].real, *(frames[n] for n in names)], columns=5))
        print(f"wrote {a.strip} (rows: real, {', '.join(names)})")
    rows = summary_rows(results, names, baseline, following)
    n_frames = sum(r["frames_scored"] for r in results)
    title = f"{a.task}, {n_frames} held-out frames at {results[0]['size']} ({mode})"
    table = markdown_table(rows, baseline=baseline, following=following, title=title)
    print()
    print(table)
    report = {"task": a.task, "dataset": str(data_root), "split": a.split, **real_source,
              "first_frame_given": a.first_frame, "policy": mode, "sources": a.sources,
              "first_frame_model": str(a.first_frame_model) if a.first_frame_model else None,
              "load_size": list(load_size) if load_size else None, "load_size_from": size_from,
              "baseline": baseline,
              "condition_following": ("dlib 68 landmarks" if use_lm else
                                      "mediapipe pose (v2v.sources.pose.pose_video, crops=auto), people matched by "
                                      "neck/hip anchors" if poser is not None else None),
              "condition_following_unavailable": unavailable, **({"pose_fps": fps} if poser is not None else {}),
              **run_context(a.machine, "bench/evaluate.py", argv), "seconds": round(time.time() - t_start, 1),
              "models": dict(zip(names, infos)), "summary": rows, "table": table, "sequences": results}
    write_report(out, report)
    print(f"\nwrote {out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
