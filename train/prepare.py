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
  a moving-person class, ``label_nc = k + 1``, ``--label-nc`` sets it).  Instance maps are written beside them
  (``instance/``: the class id on stuff, one id per tracked person), so ``use_instance`` works.  A second video
  prepared into the same dataset is labelled with the first one's k-means centres, so ids mean the same.

Everything streams: a frame is decoded, its source extracted and both written before the next is read, so a
long video costs no more memory than a short one.  ``dataset.json`` records the source recipe
(:mod:`v2v.sources.recipe`); the trainer copies it into the model file, so ``python -m v2v generate`` can turn
any raw video into the model's source.

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
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python train/prepare.py`: import the repo, not this folder
    _repo = Path(__file__).resolve().parents[1]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _repo / "train"]
    sys.path.insert(0, str(_repo))

import cv2
import numpy as np

from v2v.files import temporary_beside
from v2v.media.resize import parse_crop

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


def extract_source(task: str, video, *, sketch_mode: str = "auto", keypoints: str | None = None,
                   labels: str | None = None, label_nc: int | None = None, recipe=None, fit_on=(),
                   person: str | None = None, log=print):
    """The lazy v2v SourceVideo of ``task`` for a decoded ``video`` (v2v.media.video_io.Video).  ``recipe``: the
    dataset's recorded one (a second pseudo-labelled video reuses its centres).  Pseudo-labels: ``fit_on`` (videos)
    fits the k-means centres over all of them instead of this video alone; ``person`` picks the person masks
    (:class:`v2v.sources.pseudo_labels.PersonMasks`: ``none`` for a moving camera, where everything moves)."""
    if task == "sketch":
        from v2v.sources import sketch

        mode = sketch_mode
        if mode == "auto":
            mode = "face" if _optional_module("dlib") is not None else "edges"
            log(f"sketch mode: {mode} ({'dlib found' if mode == 'face' else 'dlib not installed: plain Canny edges; '}"
                f"{'' if mode == 'face' else 'install the face extra for the paper face sketch'})")
        if mode == "face":
            return sketch.face_sketch(video)
        if mode == "edges":
            return sketch.edge_sketch(video)
        raise PrepareError(f"--sketch-mode must be auto, face or edges, got {sketch_mode!r}")
    if task == "pose":
        from v2v.sources import pose

        if keypoints:
            return pose.pose_video(keypoints=keypoints, width=video.width, height=video.height, fps=video.fps,
                                   max_frames=len(video))
        return pose.pose_video(video)
    if task == "labels":
        if labels:
            from v2v.sources.labels import label_video

            return label_video(labels, label_nc=label_nc, max_frames=len(video), size=(video.width, video.height),
                               instances="labels")
        pseudo = _optional_module("v2v.sources.pseudo_labels")
        if pseudo is None or not hasattr(pseudo, "pseudo_label_video"):
            raise PrepareError("--task labels without --labels needs v2v.sources.pseudo_labels (weight-free pseudo-labels), "
                               "which this installation does not have; pass --labels <folder of id PNGs>")
        kwargs = {"k": label_nc - 1} if label_nc else {}
        if person:
            kwargs["person"] = person
        if recipe is not None and recipe.extractor == "pseudo_labels":    # the dataset's ids: its centres
            if label_nc and label_nc != recipe.params["k"] + 1:
                raise PrepareError(f"the dataset's pseudo-labels have label_nc {recipe.params['k'] + 1}, not {label_nc}")
            if person and person != recipe.params["person"]:
                raise PrepareError(f"the dataset's pseudo-labels use person masks {recipe.params['person']!r}, "
                                   f"not {person!r}")
            kwargs = dict(recipe.params)
            log("pseudo-labels: using the dataset's k-means centres (ids mean the same in every video)"
                + ("; --fit-on applies to a dataset's first video only, so it is not used" if fit_on else ""))
        elif fit_on:
            labeler = pseudo.PseudoLabeler(k=kwargs.get("k", 8)).fit([str(v) for v in fit_on])
            kwargs["centers"] = labeler.centers
            log(f"pseudo-labels: k-means centres fitted over {len(fit_on)} videos (ids mean the same on all)")
        # the boundary channel is not stored: the dataset keeps label ids, and instance maps beside them
        return pseudo.pseudo_label_video(video, **{**kwargs, "instances": False})
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
    """The DataConfig entries a source implies (how it is stored, label_nc, whether flipping is valid) and
    its recipe."""
    entries: dict[str, Any] = {"source_kind": source.storage}
    if source.storage == "labels":
        entries["label_nc"] = source.label_nc
    entries["flip"] = source.kind != "pose"  # left/right body parts are drawn differently
    if source.recipe is not None:
        recipe = source.recipe
        if recipe.extractor == "pseudo_labels":     # stored as ids: the boundary channel is the trainer's choice
            recipe = recipe.with_(params={**recipe.params, "instances": False})
        entries["source_recipe"] = recipe.to_dict()
    return entries


class _SequenceWriter:
    """One sequence's frames, written into a temporary folder renamed into place by :meth:`commit`."""

    def __init__(self, seq_dir: Path, kind: str, target_format: str, instances: bool) -> None:
        if seq_dir.exists():
            raise PrepareError(f"{seq_dir} already exists; choose another --sequence name or delete it")
        seq_dir.parent.mkdir(parents=True, exist_ok=True)
        self.seq_dir, self.kind, self.target_format = seq_dir, kind, target_format
        self.tmp = temporary_beside(seq_dir, folder=True)
        for sub in ("target", "source") + (("instance",) if instances else ()):
            (self.tmp / sub).mkdir()
        self.count = 0
        self.used_ignore = False

    def write(self, rgb: np.ndarray, frame, label_nc: int) -> None:
        name = f"{self.count:06d}"
        _write_image(self.tmp / "target" / f"{name}.{self.target_format}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if self.kind == "labels":
            onehot = frame.tensor[:label_nc].numpy()
            ids = onehot.argmax(0).astype(np.int32)
            empty = onehot.sum(0) == 0
            if empty.any():
                ids[empty] = IGNORE_ID
                self.used_ignore = True
            _write_image(self.tmp / "source" / f"{name}.png", ids.astype(np.uint8 if ids.max() < 256 else np.uint16))
            if (self.tmp / "instance").is_dir() and frame.instance is not None:
                inst = frame.instance
                _write_image(self.tmp / "instance" / f"{name}.png", inst.astype(np.uint8 if inst.max() < 256 else np.uint16))
        elif self.kind == "rgb":
            _write_image(self.tmp / "source" / f"{name}.png", cv2.cvtColor(frame.preview, cv2.COLOR_RGB2BGR))
        else:
            np.save(self.tmp / "source" / f"{name}.npy", frame.tensor.numpy().astype(np.float16))
        self.count += 1

    def commit(self) -> None:
        os.replace(self.tmp, self.seq_dir)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_sequences(parts: list[tuple[Path, range]], video, source, *, target_format: str = "png") -> dict[str, Any]:
    """Stream ``video`` and its ``source`` once, writing frame t into the sequence whose range holds it (each
    renumbered from 0); every sequence appears only when all are complete.  Returns the DataConfig entries."""
    if target_format not in ("png", "jpg"):
        raise PrepareError(f"--target-format must be png or jpg, got {target_format!r}")
    if len(source) != len(video):
        raise PrepareError(f"the extractor has {len(source)} source frames for {len(video)} video frames")
    if (source.height, source.width) != (video.height, video.width):
        raise PrepareError(f"source frames are {source.width}x{source.height}, video frames {video.width}x{video.height}")
    entries = source_entries(source)
    kind = entries["source_kind"]
    writers = []
    try:
        for seq_dir, _ in parts:
            writers.append(_SequenceWriter(seq_dir, kind, target_format, instances=kind == "labels"))
        frames = source.frames()
        for t, rgb in enumerate(video):
            frame = next(frames)
            for writer, (_, indices) in zip(writers, parts):
                if t in indices:
                    writer.write(rgb, frame, source.label_nc)
        next(frames, None)           # let the stream finish (extractors report what they found at its end)
        for w in writers:
            if w.kind == "labels" and not any((w.tmp / "instance").iterdir()):
                shutil.rmtree(w.tmp / "instance")
        if any(w.used_ignore for w in writers):
            if source.label_nc > IGNORE_ID:
                raise PrepareError(f"label_nc {source.label_nc} leaves no free id for ignored pixels")
            entries["ignore_ids"] = [IGNORE_ID]
        for w in writers:
            w.commit()
    except BaseException:
        for w in writers:
            w.abort()
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
            what = "its sources were made another way" if key == "source_recipe" else f"{key}={value!r}"
            raise PrepareError(f"{path}: this video gives {what}, but the dataset has "
                               f"{data[key] if key != 'source_recipe' else data[key].get('extractor')!r}; "
                               "prepare it into another --out folder")
        data[key] = value
    if dry_run:
        return data
    data.setdefault("task", task)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return data


def dataset_recipe(out: Path):
    """The source recipe a dataset's ``dataset.json`` records, or None."""
    from v2v.sources.recipe import SourceRecipe

    path = out / "dataset.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    return SourceRecipe.from_dict(data["source_recipe"]) if data.get("source_recipe") else None


def prepare(task: str, video: str | os.PathLike, out: str | os.PathLike, *, split: str = "train",
            sequence: str | None = None, max_frames: int | None = None, max_side: int | None = None,
            stride: int = 1, start: int = 0, val_fraction: float = 0.0, target_format: str = "png",
            crop: tuple[int, int, int, int] | None = None, log=print, **extract_kwargs) -> Path:
    """Stream ``video``, extract its source for ``task`` and write one sequence; returns its folder.

    ``val_fraction`` > 0 extracts the video ONCE and writes its first frames to ``train/<name>`` and the
    last ``val_fraction`` of them to ``val/<name>`` (held-out frames from the same extraction, so e.g.
    pseudo-label ids mean the same class in both)."""
    from v2v.media.video_io import VideoError, open_video

    if task not in TASKS:
        raise PrepareError(f"--task must be one of {TASKS}, got {task!r}")
    if split not in ("train", "val"):
        raise PrepareError(f"--split must be train or val, got {split!r}")
    out = Path(out)
    video_path = Path(video)
    if not 0 <= val_fraction < 1:
        raise PrepareError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    try:
        frames = open_video(video_path, max_frames=max_frames, stride=stride, max_side=max_side, start=start, crop=crop)
    except (VideoError, ValueError) as e:
        raise PrepareError(str(e)) from None
    if not frames.fps:
        frames = frames.edit(fps=30.0)
    T = len(frames)
    n_train = T - round(T * val_fraction) if val_fraction else T
    parts_n = [(split, n_train)] + ([("val", T - n_train)] if val_fraction else [])
    short = [f"{part} gets {n}" for part, n in parts_n if n < 2]
    if short:
        raise PrepareError(f"{video_path} gives {T} frame(s) and {', '.join(short)}: the trainer needs at least 2 "
                           "frames per sequence (use a longer video, or a smaller --val-fraction)")
    log(f"{video_path}: {T} frames of {frames.width}x{frames.height}; extracting {task} sources")
    source = extract_source(task, frames, recipe=dataset_recipe(out), log=log, **extract_kwargs)
    name = sequence or video_path.stem
    parts = [(out / split / name, range(n_train))] + ([(out / "val" / name, range(n_train, T))] if val_fraction else [])
    update_dataset_json(out, source_entries(source), task, dry_run=True)  # refuse before writing anything
    for existing in (d for d, _ in parts if d.exists()):
        raise PrepareError(f"{existing} already exists; choose another --sequence name or delete it")
    entries = write_sequences(parts, frames, source, target_format=target_format)
    data = update_dataset_json(out, entries, task)
    for seq_dir, indices in parts:
        log(f"wrote {seq_dir} ({len(indices)} frames)")
    if source.report:
        log(f"extractor report: {json.dumps(source.report, default=str)}")
    log(f"dataset.json: {json.dumps({k: v for k, v in data.items() if k != 'source_recipe'}, sort_keys=True)}")
    return parts[0][0]


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
    p.add_argument("--crop", type=parse_crop, default=None, metavar="X,Y,W,H",
                   help="keep this window of every frame (video pixels), before --max-side: e.g. the part of "
                        "a wide shot where people walk, so they are large in the training frames")
    p.add_argument("--frame-face", action="store_true",
                   help="sketch: crop every frame to a window around the video's face, framed as the shipped face "
                        "models were trained (v2v.sources.sketch.face_window); with --max-side 176 that is 176x144")
    p.add_argument("--target-format", default="png", choices=("png", "jpg"),
                   help="how target frames are stored (jpg: quality 95, ~8x smaller)")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="also write the last fraction of the frames as a held-out val/ sequence")
    p.add_argument("--sketch-mode", default="auto", choices=("auto", "face", "edges"))
    p.add_argument("--keypoints", default=None, help="pose: folder of OpenPose JSON files (skips mediapipe)")
    p.add_argument("--labels", default=None, help="labels: folder of id PNGs matching the video's frames")
    p.add_argument("--label-nc", type=int, default=None, help="labels: number of label ids")
    p.add_argument("--fit-on", nargs="+", default=(), metavar="VIDEO",
                   help="pseudo-labels: fit the k-means centres over these videos (e.g. every training clip), so "
                        "ids mean the same on all; only the dataset's first video, later ones reuse its centres")
    p.add_argument("--person", default=None, choices=("mog2", "selfie", "both", "none"),
                   help="pseudo-labels: person masks (default mog2: moving regions of a still camera; none for a "
                        "moving camera such as a dashcam, where everything moves)")
    a = p.parse_args(argv)
    try:
        if a.frame_face:
            if a.crop:
                raise PrepareError("--frame-face chooses the crop itself: give --crop or --frame-face, not both")
            from v2v.sources.sketch import face_window

            a.crop = face_window(a.video)
            print(f"{a.video}: framing the face with --crop {','.join(map(str, a.crop))}")
        prepare(a.task, a.video, a.out, split=a.split, sequence=a.sequence, max_frames=a.max_frames,
                max_side=a.max_side, stride=a.stride, start=a.start, val_fraction=a.val_fraction, crop=a.crop,
                target_format=a.target_format, sketch_mode=a.sketch_mode, keypoints=a.keypoints,
                labels=a.labels, label_nc=a.label_nc, fit_on=a.fit_on, person=a.person)
    except (PrepareError, ValueError, ImportError, OSError) as e:
        print(f"prepare: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
