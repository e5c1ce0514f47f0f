"""Turn your own footage into a training dataset (the layout of train/data.py and docs/DATASET.md).

    python train/prepare.py --task sketch --video face.mp4 --out data/myface
    python train/prepare.py --task pose   --video dance.mp4 --out data/dance [--keypoints openpose_json/]
    python train/prepare.py --task labels --video street.mp4 --out data/street
    python train/prepare.py --task labels --video street.mp4 --labels label_pngs/ --label-nc 35 --out data/street

Each call adds one sequence ``<out>/<split>/<sequence>/{source,target}/000000.png ...`` (the sequence name
defaults to the video's file name) and writes/updates ``<out>/dataset.json`` with the DataConfig values the
trainer needs (source kind, label_nc, flip allowed, ...).  Call it once per video; put held-out videos in
``--split val`` (or let the trainer hold out sequences of ``train``).

Source extraction uses the package's extractors:

* ``sketch``: the paper's face sketch (``v2v.sources.sketch.face_sketch``: dlib 68 landmarks -> part polylines + Canny
  edges outside the face + 9 distance channels; needs the ``face`` extra) or, with ``--sketch-mode edges``,
  a plain Canny edge sketch of any video (``v2v.sources.sketch.edge_sketch``).  ``auto`` picks face when dlib is
  installed and says so.
* ``pose``: rendered OpenPose-18 skeletons (``v2v.sources.pose.pose_video``) from mediapipe (``pose`` extra), or from
  ``--keypoints`` (a folder of OpenPose JSON files, e.g. from DWPose) without mediapipe.  Flip is disabled.
* ``labels``: ``--labels`` gives existing id PNGs (one per frame, e.g. Cityscapes labelIds); otherwise
  weight-free pseudo-labels of the footage (``v2v.sources.pseudo_labels.pseudo_label_video``: k-means clusters +
  a moving-person class, ``label_nc = k + 1``, ``--label-nc`` sets it).  Instance maps are not written by
  this path (use_instance stays off).

Sources that fit an image are stored as images (label ids as 8/16-bit id PNGs, 3-channel pose renderings as
RGB PNGs); multi-channel sources (face sketch with distance maps) as ``.npy`` float16 ``[C, H, W]`` files.
A sequence is written into a temporary folder and renamed when complete, so an interrupted run never
leaves a half-written sequence behind.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python train/prepare.py`: import the repo, not this folder
    _repo = Path(__file__).resolve().parents[1]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _repo / "train"]
    sys.path.insert(0, str(_repo))

import cv2
import numpy as np

TASKS = ("sketch", "pose", "labels")
IGNORE_ID = 255  # label pixels whose one-hot is all zero (ignored ids) are written as this id


class PrepareError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------------
# extraction
def _optional_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def extract_source(task: str, frames, *, sketch_mode: str = "auto", keypoints: str | None = None,
                   labels: str | None = None, label_nc: int | None = None, log=print):
    """Run the extractor of ``task`` on decoded ``frames`` (v2v.sources.Frames) -> v2v SourceVideo."""
    if task == "sketch":
        from v2v.sources import sketch

        mode = sketch_mode
        if mode == "auto":
            mode = "face" if _optional_module("dlib") is not None else "edges"
            log(f"sketch mode: {mode} ({'dlib found' if mode == 'face' else 'dlib not installed: plain Canny edges; '}"
                f"{'' if mode == 'face' else 'install the face extra for the paper face sketch'})")
        if mode == "face":
            return sketch.face_sketch(frames, fps=frames.fps)
        if mode == "edges":
            return sketch.edge_sketch(frames, fps=frames.fps)
        raise PrepareError(f"--sketch-mode must be auto, face or edges, got {sketch_mode!r}")
    if task == "pose":
        from v2v.sources import pose

        h, w = frames.rgb.shape[1:3]
        if keypoints:
            return pose.pose_video(frames, keypoints=keypoints, width=w, height=h, fps=frames.fps,
                                   max_frames=len(frames.rgb))
        return pose.pose_video(frames, fps=frames.fps)
    if task == "labels":
        if labels:
            from v2v.sources.labels import label_video

            h, w = frames.rgb.shape[1:3]
            src = label_video(labels, label_nc=label_nc, max_frames=len(frames.rgb))
            if (src.height, src.width) != (h, w):
                src = label_video(labels, label_nc=label_nc, max_frames=len(frames.rgb), size=(w, h))
            return src
        pseudo = _optional_module("v2v.sources.pseudo_labels")
        if pseudo is None or not hasattr(pseudo, "pseudo_label_video"):
            raise PrepareError("--task labels without --labels needs v2v.sources.pseudo_labels (weight-free pseudo-labels), "
                               "which this installation does not have; pass --labels <folder of id PNGs>")
        # k colour/position clusters + 1 person class; instance boundaries are not stored (the dataset keeps
        # label ids only: the person class already separates people from the background)
        kwargs = {"k": label_nc - 1} if label_nc else {}
        return pseudo.pseudo_label_video(frames, instances=False, fps=frames.fps, **kwargs)
    raise PrepareError(f"--task must be one of {TASKS}, got {task!r}")


# ---------------------------------------------------------------------------------------------------------
# writing
def _write_image(path: Path, image: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
    ok, data = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise PrepareError(f"{path}: {path.suffix} encoding failed")
    data.tofile(str(path))


def source_entries(source) -> dict[str, Any]:
    """The DataConfig entries a source implies (how it is stored, label_nc, whether flipping is valid)."""
    if source.kind == "label":
        entries: dict[str, Any] = {"source_kind": "labels", "label_nc": source.label_nc}
    elif source.input_nc == 3 and source.kind == "pose":
        entries = {"source_kind": "rgb"}
    else:
        entries = {"source_kind": "array"}
    entries["flip"] = source.kind != "pose"  # left/right body parts are drawn differently
    return entries


def write_sequence(seq_dir: Path, target_rgb: np.ndarray, source, frames: range | None = None, *,
                   target_format: str = "png") -> dict[str, Any]:
    """Write frames ``frames`` (default: all) as one sequence (atomically: temp folder + rename);
    returns its DataConfig entries.  ``target_format="jpg"`` stores targets as JPEG (quality 95): about
    8x smaller, for datasets that must travel; sources are always lossless."""
    if target_format not in ("png", "jpg"):
        raise PrepareError(f"--target-format must be png or jpg, got {target_format!r}")
    T = len(target_rgb)
    frames = range(T) if frames is None else frames
    if len(source) != T:
        raise PrepareError(f"extractor returned {len(source)} source frames for {T} video frames")
    if (source.height, source.width) != tuple(target_rgb.shape[1:3]):
        raise PrepareError(f"source frames are {source.width}x{source.height}, video frames "
                           f"{target_rgb.shape[2]}x{target_rgb.shape[1]}")
    if seq_dir.exists():
        raise PrepareError(f"{seq_dir} already exists; choose another --sequence name or delete it")
    seq_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{seq_dir.name}.", suffix=".tmp", dir=seq_dir.parent))
    try:
        (tmp / "target").mkdir()
        (tmp / "source").mkdir()
        entries = source_entries(source)
        kind = entries["source_kind"]
        used_ignore = False
        for out_t, t in enumerate(frames):
            name = f"{out_t:06d}"
            _write_image(tmp / "target" / f"{name}.{target_format}", cv2.cvtColor(target_rgb[t], cv2.COLOR_RGB2BGR))
            frame = source.get(t).numpy()
            if kind == "labels":
                onehot = frame[: source.label_nc]
                ids = onehot.argmax(0).astype(np.int32)
                empty = onehot.sum(0) == 0
                if empty.any():
                    ids[empty] = IGNORE_ID
                    used_ignore = True
                _write_image(tmp / "source" / f"{name}.png", ids.astype(np.uint8 if ids.max() < 256 else np.uint16))
            elif kind == "rgb":
                rgb = np.clip(np.rint((frame.transpose(1, 2, 0) + 1) * 127.5), 0, 255).astype(np.uint8)
                _write_image(tmp / "source" / f"{name}.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            else:
                np.save(tmp / "source" / f"{name}.npy", frame.astype(np.float16))
        if used_ignore:
            if source.label_nc > IGNORE_ID:
                raise PrepareError(f"label_nc {source.label_nc} leaves no free id for ignored pixels")
            entries["ignore_ids"] = [IGNORE_ID]
        os.replace(tmp, seq_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return entries


def update_dataset_json(out: Path, entries: dict[str, Any], task: str, *, dry_run: bool = False) -> dict[str, Any]:
    """Merge this sequence's entries into ``<out>/dataset.json``; conflicting entries are an error."""
    path = out / "dataset.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if data.get("task", task) != task:
        raise PrepareError(f"{path}: the dataset is for task {data['task']!r}, not {task!r}")
    for key, value in entries.items():
        if key == "ignore_ids":
            value = sorted(set(data.get(key, [])) | set(value))
        elif key in data and data[key] != value:
            raise PrepareError(f"{path}: this video gives {key}={value!r} but the dataset has {data[key]!r}; "
                               "prepare it into another --out folder")
        data[key] = value
    if dry_run:
        return data
    data.setdefault("task", task)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return data


def prepare(task: str, video: str | os.PathLike, out: str | os.PathLike, *, split: str = "train",
            sequence: str | None = None, max_frames: int | None = None, max_side: int | None = None,
            stride: int = 1, start: int = 0, val_fraction: float = 0.0, target_format: str = "png",
            crop: tuple[int, int, int, int] | None = None, log=print, **extract_kwargs) -> Path:
    """Decode ``video``, extract its source for ``task`` and write one sequence; returns its folder.

    ``val_fraction`` > 0 extracts the video ONCE and writes its first frames to ``train/<name>`` and the
    last ``val_fraction`` of them to ``val/<name>`` (held-out frames from the same extraction, so e.g.
    pseudo-label ids mean the same class in both)."""
    from v2v.sources.base import read_video

    if task not in TASKS:
        raise PrepareError(f"--task must be one of {TASKS}, got {task!r}")
    if split not in ("train", "val"):
        raise PrepareError(f"--split must be train or val, got {split!r}")
    out = Path(out)
    video = Path(video)
    if not 0 <= val_fraction < 1:
        raise PrepareError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    frames = read_video(video, max_frames=max_frames, stride=stride, max_side=max_side, start=start, crop=crop)
    h, w = frames.rgb.shape[1:3]
    log(f"{video}: {len(frames.rgb)} frames of {w}x{h}; extracting {task} sources")
    source = extract_source(task, frames, log=log, **extract_kwargs)
    name = sequence or video.stem
    T = len(frames.rgb)
    n_train = T - round(T * val_fraction) if val_fraction else T
    parts = [(split, range(n_train))] + ([("val", range(n_train, T))] if val_fraction else [])
    seq_dirs = [out / part / name for part, _ in parts]
    update_dataset_json(out, source_entries(source), task, dry_run=True)  # refuse before writing anything
    for existing in (d for d in seq_dirs if d.exists()):
        raise PrepareError(f"{existing} already exists; choose another --sequence name or delete it")
    for seq_dir, (_, indices) in zip(seq_dirs, parts):
        entries = write_sequence(seq_dir, frames.rgb, source, indices, target_format=target_format)
        data = update_dataset_json(out, entries, task)
        log(f"wrote {seq_dir} ({len(indices)} frames)")
    if source.report:
        log(f"extractor report: {json.dumps(source.report, default=str)}")
    log(f"dataset.json: {json.dumps(data, sort_keys=True)}")
    return seq_dirs[0]


def _crop_arg(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--crop takes X,Y,WIDTH,HEIGHT in pixels, e.g. 416,112,320,240; "
                                         f"got {text!r}") from None
    return x, y, w, h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--video", required=True, help="video file or folder of frames")
    p.add_argument("--out", required=True, help="dataset root")
    p.add_argument("--split", default="train", choices=("train", "val"))
    p.add_argument("--sequence", default=None, help="sequence name (default: the video's file name)")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--max-side", type=int, default=None, help="downscale so the longer side is at most this")
    p.add_argument("--stride", type=int, default=1, help="keep every n-th frame")
    p.add_argument("--start", type=int, default=0, help="first frame to use")
    p.add_argument("--crop", type=_crop_arg, default=None, metavar="X,Y,W,H",
                   help="keep this window of every frame (video pixels), before --max-side: e.g. the part of "
                        "a wide shot where people walk, so they are large in the training frames")
    p.add_argument("--target-format", default="png", choices=("png", "jpg"),
                   help="how target frames are stored (jpg: quality 95, ~8x smaller)")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="also write the last fraction of the frames as a held-out val/ sequence")
    p.add_argument("--sketch-mode", default="auto", choices=("auto", "face", "edges"))
    p.add_argument("--keypoints", default=None, help="pose: folder of OpenPose JSON files (skips mediapipe)")
    p.add_argument("--labels", default=None, help="labels: folder of id PNGs matching the video's frames")
    p.add_argument("--label-nc", type=int, default=None, help="labels: number of label ids")
    a = p.parse_args(argv)
    try:
        prepare(a.task, a.video, a.out, split=a.split, sequence=a.sequence, max_frames=a.max_frames,
                max_side=a.max_side, stride=a.stride, start=a.start, val_fraction=a.val_fraction, crop=a.crop,
                target_format=a.target_format, sketch_mode=a.sketch_mode, keypoints=a.keypoints,
                labels=a.labels, label_nc=a.label_nc)
    except (PrepareError, ValueError, ImportError, OSError) as e:
        print(f"prepare: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
