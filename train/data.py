"""Paired video datasets for training: the on-disk layout, validation before training, random clips.

Layout (also in docs/DATASET.md)::

    <root>/
        dataset.json                  optional: defaults for DataConfig (written by train/prepare.py)
        train/                        one folder per split; "val" is optional
            <sequence>/               one folder per video sequence (any name; sorted naturally)
                source/               000000.png 000001.png ...   the conditioning frames
                target/               000000.png 000001.png ...   the real frames (RGB)
                instance/             000000.png ...              optional instance-id maps (labels only)
        val/
            <sequence>/...
        .flow_cache/                  created on first use: cached DIS flows (safe to delete)

Inside a sequence, ``target`` may instead be a video file ``target.mp4`` (any of .mp4 .mkv .mov .avi .webm
.m4v), and for ``source_kind: rgb`` the source may be ``source.mp4``.  Frames within a folder are matched by
sorted order (natural sort: ``f2`` before ``f10``), so source, target and instance folders must hold the
same number of frames of one size.  Folders of PNGs load much faster than video files (a clip read from a
video decodes the file from its start).

Source kinds (``DataConfig.source_kind``):

* ``labels``: 8/16-bit single-channel PNGs of integer label ids in ``[0, label_nc)`` (ids listed in
  ``ignore_ids`` become all-zero one-hot pixels).  The network input is the one-hot map, plus one
  instance-boundary channel when ``use_instance`` is on (1 where the instance id differs from a
  4-neighbour; instance maps are 8/16-bit id PNGs, 0 = no instance).
* ``rgb``: 3-channel images (pose skeleton renderings, sketches drawn as images), given to the network in
  [-1, 1] as docs/CONVENTIONS.md says for pose sources.
* ``array``: ``.npy`` files ``[C, H, W]`` (float or uint8) taken as they are: multi-channel sources such as
  the face sketch (lines + distance maps) or pose with extra channels.

Split: when ``<root>/val`` exists it is the validation split.  Otherwise ``val_fraction`` of the training
sequences (at least one when there are two or more, chosen by a seeded hash of their names) are held out,
so train and validation never share a sequence.

:func:`validate_dataset` runs before training and rejects missing targets, mismatched frame counts or sizes,
unreadable frames and label ids beyond ``label_nc``; each message names the file.  :class:`ClipDataset`
yields random clips: random temporal stride in ``[1, max_stride]`` and start, resize to ``load_size``,
random crop to ``crop_size``, horizontal flip when ``flip`` is on (keep it off for pose: left/right body
parts are drawn differently), and the ground-truth backward flow between consecutive target frames of the
clip with its forward-backward confidence (v2v.media.optical_flow, cached on disk).  Every random choice of an
item comes from ``(seed, epoch, index)``, so a clip is reproducible from its index (exact resume; same data
in every DataLoader worker configuration).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch

from v2v.model.config import dataclass_from_dict
from v2v.sources.labels import instance_boundary, one_hot, read_id_png
from v2v.media.optical_flow import FlowCache, FlowParams
from v2v.media.resize import resize_array, resize_ids, resize_image
from v2v.media.tensors import uint8_to_model
from v2v.media.video_io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, natural_key, read_frames, read_image

SOURCE_KINDS = ("labels", "rgb", "array")
SPLITS = ("train", "val")


class DatasetError(ValueError):
    """A dataset that cannot be trained on; the message lists each problem with the file it concerns."""


# ---------------------------------------------------------------------------------------------------------
# configuration
@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how clips are drawn.  Sizes are (height, width)."""

    root: str = ""
    source_kind: str = "labels"                 # labels | rgb | array
    label_nc: int = 0                           # labels: one-hot channels (ids must be < label_nc)
    ignore_ids: tuple[int, ...] = ()            # labels: ids mapped to all-zero pixels (e.g. 255)
    use_instance: bool = False                  # labels: add the instance-boundary channel (needs instance/)
    load_size: tuple[int, int] | None = None    # resize every frame to (H, W) first; None: keep
    crop_size: tuple[int, int] | None = None    # random crop (H, W) for training, centre crop for validation
    flip: bool = True                           # random horizontal flip (off for pose)
    max_stride: int = 1                         # random temporal stride in [1, max_stride]
    val_fraction: float = 0.1                   # held-out sequences when there is no val/ split
    frames_per_item: int = 16                   # a sequence of N frames gives max(1, N // this) items per epoch
    balance_sequences: bool = False             # every sequence the same share of an epoch's items (the epoch's
                                                #   size unchanged), so the longest clip does not dominate
    flow_preset: str = "medium"                 # DIS preset of the ground-truth flow
    flow_cache: str | None = None               # cache folder; None: <root>/.flow_cache; "" : no cache
    predict: bool = False                       # labels: future prediction, the NEXT map from the past ones:
                                                #   source[t] = map t-1, target[t] = map t (one-hot in [-1, 1]);
                                                #   flows still from the real frames
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source_kind not in SOURCE_KINDS:
            raise DatasetError(f"source_kind must be one of {SOURCE_KINDS}, got {self.source_kind!r}")
        if self.source_kind == "labels" and self.label_nc < 1:
            raise DatasetError("source_kind 'labels' needs label_nc >= 1")
        if self.use_instance and self.source_kind != "labels":
            raise DatasetError("use_instance only applies to source_kind 'labels'")
        if self.max_stride < 1:
            raise DatasetError("max_stride must be >= 1")
        if self.predict and (self.source_kind != "labels" or self.use_instance):
            raise DatasetError("predict (future label maps) needs source_kind 'labels' without use_instance")
        if not 0.0 <= self.val_fraction < 1.0:
            raise DatasetError("val_fraction must be in [0, 1)")
        FlowParams(self.flow_preset)  # validates the preset name

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        return dataclass_from_dict(cls, data, error=DatasetError)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def target_nc(self) -> int:
        """Channels of one target frame: RGB, or the label maps a predictor outputs."""
        return self.label_nc if self.predict else 3

    @property
    def input_nc(self) -> int | None:
        """Channels of one source frame (None for ``array`` sources until the data is read)."""
        if self.source_kind == "labels":
            return self.label_nc + int(self.use_instance)
        if self.source_kind == "rgb":
            return 3
        return None


def read_dataset_json(root: str | os.PathLike) -> dict[str, Any]:
    """The optional ``<root>/dataset.json`` (DataConfig defaults written by prepare.py), or {}."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    return data


def dataset_defaults(root: str | os.PathLike) -> dict[str, Any]:
    """The DataConfig entries of ``dataset.json`` (without what describes the dataset rather than how to load
    it: its task and its source recipe)."""
    return {k: v for k, v in read_dataset_json(root).items() if k not in ("task", "source_recipe")}


# ---------------------------------------------------------------------------------------------------------
# frame files
def _read_ids(path: Path) -> np.ndarray:
    """An integer id map [H, W] from an 8/16-bit PNG; errors name the file."""
    try:
        return read_id_png(path)
    except ValueError as e:  # SourceError names only the frame; we name the file
        raise DatasetError(f"{path}: {e}") from None


def _one_hot(ids: np.ndarray, label_nc: int, ignore_ids: tuple[int, ...], name: str) -> torch.Tensor:
    """[H, W] ids -> [label_nc, H, W] float32 (ignored ids: all zeros); out-of-range ids are a DatasetError."""
    try:
        return one_hot(ids, label_nc, ignore_ids=ignore_ids, frame=name)
    except ValueError as e:
        raise DatasetError(str(e)) from None


class FrameList:
    """The frames of one stream (source, target or instance): a folder of files or one video file."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind  # "rgb" | "ids" | "array"
        self.is_video = path.is_file()
        if self.is_video:
            self.files: list[Path] = []
            self._count: int | None = None
        else:
            exts = (".npy",) if kind == "array" else IMAGE_EXTENSIONS
            self.files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in exts
                                 and not p.name.startswith(".")), key=lambda p: natural_key(p.name))
            self._count = len(self.files)

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in read_frames(self.path))
        return self._count

    def name(self, i: int) -> str:
        return str(self.files[i]) if not self.is_video else f"{self.path} frame {i}"

    def read(self, i: int) -> np.ndarray:
        if self.is_video:
            return self.read_many([i])[0]
        path = self.files[i]
        if self.kind == "rgb":
            try:
                return read_image(path)
            except ValueError as e:
                raise DatasetError(str(e)) from None
        if self.kind == "ids":
            return _read_ids(path)
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DatasetError(f"{path}: cannot read this .npy file ({e})") from None
        if arr.ndim != 3:
            raise DatasetError(f"{path}: an array source frame must be [C, H, W], got shape {arr.shape}")
        return arr

    def read_many(self, indices: list[int]) -> list[np.ndarray]:
        if not self.is_video:
            return [self.read(i) for i in indices]
        wanted = {i: None for i in indices}
        last = max(indices)
        try:
            for k, frame in enumerate(read_frames(self.path)):
                if k in wanted:
                    wanted[k] = frame
                if k >= last:
                    break
        except ValueError as e:
            raise DatasetError(str(e)) from None
        missing = [i for i, f in wanted.items() if f is None]
        if missing:
            raise DatasetError(f"{self.path}: has no frame {missing[0]}")
        return [wanted[i] for i in indices]

    def iter_all(self) -> Iterator[tuple[str, np.ndarray]]:
        if self.is_video:
            try:
                for k, frame in enumerate(read_frames(self.path)):
                    yield f"{self.path} frame {k}", frame
            except ValueError as e:
                raise DatasetError(str(e)) from None
            return
        for i in range(len(self.files)):
            yield self.name(i), self.read(i)


def _find_stream(seq_dir: Path, name: str, allow_video: bool) -> Path | None:
    folder = seq_dir / name
    if folder.is_dir():
        return folder
    if allow_video:
        for ext in VIDEO_EXTENSIONS:
            for cand in (seq_dir / f"{name}{ext}", seq_dir / f"{name}{ext.upper()}"):
                if cand.is_file():
                    return cand
    return None


@dataclass
class Sequence:
    """One validated sequence: its streams, frame count and native size (H, W)."""

    name: str
    path: Path
    source: FrameList
    target: FrameList
    instance: FrameList | None
    length: int
    size: tuple[int, int]
    source_nc: int


# ---------------------------------------------------------------------------------------------------------
# validation
def list_sequences(root: str | os.PathLike, split: str) -> list[Path]:
    folder = Path(root) / split
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: natural_key(p.name))


def _first_frame(stream: FrameList) -> Iterator[tuple[str, np.ndarray]]:
    yield stream.name(0), stream.read(0)


def _check_sequence(cfg: DataConfig, seq_dir: Path, problems: list[str], min_frames: int,
                    check_pixels: bool) -> Sequence | None:
    n_before = len(problems)
    src_path = _find_stream(seq_dir, "source", allow_video=cfg.source_kind == "rgb")
    tgt_path = _find_stream(seq_dir, "target", allow_video=True)
    inst_path = _find_stream(seq_dir, "instance", allow_video=False) if cfg.use_instance else None
    if tgt_path is None:
        problems.append(f"{seq_dir}: missing targets (no target/ folder or target video)")
    if src_path is None:
        problems.append(f"{seq_dir}: missing sources (no source/ folder"
                        + (" or source video)" if cfg.source_kind == "rgb" else ")"))
    if cfg.use_instance and inst_path is None:
        problems.append(f"{seq_dir}: missing instance maps (no instance/ folder) but use_instance is on")
    if len(problems) > n_before:
        return None
    src_kind = {"labels": "ids", "rgb": "rgb", "array": "array"}[cfg.source_kind]
    streams = {"source": FrameList(src_path, src_kind), "target": FrameList(tgt_path, "rgb")}
    if inst_path is not None:
        streams["instance"] = FrameList(inst_path, "ids")
    counts = {}
    for key, stream in streams.items():
        try:
            counts[key] = len(stream)
        except ValueError as e:
            problems.append(str(e))
            return None
        if counts[key] == 0:
            problems.append(f"{stream.path}: no frames")
    if len(problems) > n_before:
        return None
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{streams[k].path} has {n}" for k, n in counts.items())
        problems.append(f"{seq_dir}: mismatched frame counts: {listing}")
        return None
    length = counts["target"]
    if length < min_frames:
        problems.append(f"{seq_dir}: {length} frames, fewer than the {min_frames} a training clip needs")
        return None

    size: tuple[int, int] | None = None
    first_name = ""
    source_nc = cfg.input_nc or 0
    for key, stream in streams.items():
        full = check_pixels or (key == "source" and cfg.source_kind == "labels")
        iterator = stream.iter_all() if full else _first_frame(stream)
        try:
            for name, frame in iterator:
                hw = tuple(frame.shape[1:3]) if stream.kind == "array" else tuple(frame.shape[:2])
                if size is None:
                    size, first_name = hw, name
                elif hw != size:
                    problems.append(f"{name}: size {hw[1]}x{hw[0]} differs from {first_name} "
                                    f"({size[1]}x{size[0]}); all frames of a sequence must have one size")
                    break
                if key == "source" and cfg.source_kind == "labels":
                    bad = (frame < 0) | (frame >= cfg.label_nc)
                    for ig in cfg.ignore_ids:
                        bad &= frame != ig
                    if bad.any():
                        ids = np.unique(frame[bad])
                        problems.append(f"{name}: label id {int(ids[0])} is outside [0, label_nc={cfg.label_nc}) "
                                        f"(out-of-range ids {[int(i) for i in ids[:8]]}); raise label_nc, "
                                        "remap the ids or list them in ignore_ids")
                        break
                if key == "source" and cfg.source_kind == "array":
                    if source_nc and frame.shape[0] != source_nc:
                        problems.append(f"{name}: {frame.shape[0]} channels, but earlier frames have {source_nc}")
                        break
                    source_nc = frame.shape[0]
        except DatasetError as e:
            problems.append(str(e))
    if len(problems) > n_before or size is None:
        return None
    return Sequence(seq_dir.name, seq_dir, streams["source"], streams["target"], streams.get("instance"),
                    length, size, source_nc)


def validate_dataset(cfg: DataConfig, split: str = "train", *, min_frames: int = 2,
                     check_pixels: bool = True, sequences: list[Path] | None = None) -> list[Sequence]:
    """Check every sequence of ``split`` (or the given sequence folders) and return them.

    Raises :class:`DatasetError` listing every problem found, each naming its file or folder.
    ``check_pixels=False`` reads only the first frame of targets/instances (label ids are always checked
    on every frame, because out-of-range ids would crash training later).
    """
    root = Path(cfg.root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist")
    seq_dirs = sequences if sequences is not None else list_sequences(root, split)
    if not seq_dirs:
        raise DatasetError(f"{root / split}: no sequence folders (expected {root / split}/<sequence>/source, target)")
    problems: list[str] = []
    out = []
    for seq_dir in seq_dirs:
        seq = _check_sequence(cfg, seq_dir, problems, min_frames, check_pixels)
        if seq is not None:
            out.append(seq)
    if cfg.source_kind == "array" and len({s.source_nc for s in out}) > 1:
        problems.append(f"{root / split}: sequences have different source channel counts "
                        f"{sorted({s.source_nc for s in out})}")
    if cfg.crop_size is not None:
        for s in out:
            h, w = cfg.load_size or s.size
            if cfg.crop_size[0] > h or cfg.crop_size[1] > w:
                problems.append(f"{s.path}: frames of {w}x{h} (after load_size) are smaller than crop_size "
                                f"{cfg.crop_size[1]}x{cfg.crop_size[0]}")
    if problems:
        shown = problems[:30]
        more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise DatasetError(f"dataset {root} ({split}) has {len(problems)} problem(s):\n  "
                           + "\n  ".join(shown) + more)
    return out


def split_sequences(cfg: DataConfig) -> tuple[list[Path], list[Path]]:
    """(train, val) sequence folders: ``val/`` when present, else a seeded hashed hold-out of ``train/``."""
    root = Path(cfg.root)
    train = list_sequences(root, "train")
    val = list_sequences(root, "val")
    if val or not train:
        return train, val
    n_val = 0 if len(train) < 2 or cfg.val_fraction <= 0 else max(1, round(cfg.val_fraction * len(train)))
    n_val = min(n_val, len(train) - 1) if train else 0
    ranked = sorted(train, key=lambda p: hashlib.blake2b(f"{cfg.seed}/{p.name}".encode(), digest_size=8).digest())
    held = set(ranked[:n_val])
    return [p for p in train if p not in held], [p for p in train if p in held]


# ---------------------------------------------------------------------------------------------------------
# the torch dataset
class ClipDataset(torch.utils.data.Dataset):
    """Random (``train=True``) or fixed (``train=False``) clips of ``n_frames`` frames.

    An item is a dict of tensors, T = ``n_frames``, (h, w) = crop size::

        source     [T, input_nc, h, w] float32   one-hot (+ boundary) / [-1, 1] RGB / array channels
        target     [T, 3, h, w] float32 in [-1, 1]      (predict: [T, label_nc, h, w] one-hot in [-1, 1];
                                                        source[t] is then the map of frame t-1)
        flow       [T, 2, h, w] float32 pixels   flow[t]: backward flow target t -> t-1; flow[0] = 0
        flow_conf  [T, 1, h, w] float32 0/1      forward-backward confidence of flow[t]; conf[0] = 0
        instance   [T, 1, h, w] int64            only when use_instance
        sequence, start, stride, flipped         int tensors (which frames these are)

    Training items: sequence i of the epoch's index, random stride, start, crop and flip from
    ``(seed, epoch, index)``.  Validation items: one per sequence, stride 1 from frame 0, centre crop, no
    flip.  ``set_epoch`` and ``n_frames`` are plain attributes: set them before building a DataLoader
    iterator (workers copy the dataset when the iterator starts).
    """

    def __init__(self, cfg: DataConfig, sequences: list[Sequence], *, n_frames: int, train: bool = True) -> None:
        if not sequences:
            raise DatasetError("ClipDataset needs at least one sequence")
        self.cfg = cfg
        self.sequences = sequences
        self.n_frames = n_frames
        self.train = train
        self.epoch = 0
        self.source_nc = cfg.input_nc if cfg.source_kind != "array" else sequences[0].source_nc
        cache_root = (Path(cfg.root) / ".flow_cache" if cfg.flow_cache is None
                      else (Path(cfg.flow_cache) if cfg.flow_cache else None))
        self.flows = FlowCache(cache_root, FlowParams(cfg.flow_preset))
        if train:
            per_sequence = [max(1, s.length // cfg.frames_per_item) for s in sequences]
            if cfg.balance_sequences:   # same epoch size, split evenly (the first ones take the remainder)
                share, extra = divmod(max(sum(per_sequence), len(sequences)), len(sequences))
                per_sequence = [share + (k < extra) for k in range(len(sequences))]
            self.index = [k for k, n in enumerate(per_sequence) for _ in range(n)]
        else:
            self.index = list(range(len(sequences)))

    @property
    def min_length(self) -> int:
        return min(s.length for s in self.sequences)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    # ---- choices -----------------------------------------------------------------------------------------
    def clip_plan(self, i: int) -> dict[str, Any]:
        """The deterministic random choices of item ``i``: sequence, frame indices, crop box, flip."""
        seq_id = self.index[i]
        seq = self.sequences[seq_id]
        T = self.n_frames
        if T > seq.length:
            raise DatasetError(f"{seq.path}: {seq.length} frames, shorter than the clip length {T}")
        h, w = self.cfg.load_size or seq.size
        ch, cw = self.cfg.crop_size or (h, w)
        if self.train:
            rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
            max_stride = max(1, min(self.cfg.max_stride, (seq.length - 1) // max(1, T - 1)))
            stride = int(rng.integers(1, max_stride + 1))
            start = int(rng.integers(0, seq.length - (T - 1) * stride))
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            flip = bool(self.cfg.flip and rng.random() < 0.5)
        else:
            stride, start, top, left, flip = 1, 0, (h - ch) // 2, (w - cw) // 2, False
        frames = [start + k * stride for k in range(T)]
        return dict(seq_id=seq_id, frames=frames, stride=stride, start=start, size=(h, w),
                    box=(top, left, ch, cw), flip=flip)

    # ---- loading ------------------------------------------------------------------------------------------
    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        plan = self.clip_plan(i)
        seq = self.sequences[plan["seq_id"]]
        size, (top, left, ch, cw), flip = plan["size"], plan["box"], plan["flip"]
        idx = plan["frames"]

        targets = [resize_image(f, size) for f in seq.target.read_many(idx)]
        flows, confs = [np.zeros((*size, 2), np.float32)], [np.zeros(size, np.float32)]
        for t in range(1, len(targets)):
            f, c = self.flows.get(targets[t], targets[t - 1])
            flows.append(f)
            confs.append(c)
        raw_src = seq.source.read_many(idx)
        kind = self.cfg.source_kind
        instances = None
        if kind == "labels":
            src = [resize_ids(s, size) for s in raw_src]
            if seq.instance is not None:
                instances = [resize_ids(m, size) for m in seq.instance.read_many(idx)]
        elif kind == "rgb":
            src = [resize_image(s, size) for s in raw_src]
        else:
            src = [resize_array(s, size) for s in raw_src]

        def crop(a: np.ndarray, chw: bool = False) -> np.ndarray:
            a = a[:, top:top + ch, left:left + cw] if chw else a[top:top + ch, left:left + cw]
            if flip:
                a = a[..., ::-1] if chw else a[:, ::-1]
            return np.ascontiguousarray(a)

        target = uint8_to_model(np.stack([crop(t) for t in targets]))
        flow = np.stack([crop(f) for f in flows])  # [T, h, w, 2]
        if flip:
            flow[..., 0] = -flow[..., 0]  # mirrored x motion
        flow_t = torch.from_numpy(np.ascontiguousarray(flow)).permute(0, 3, 1, 2).float()
        conf_t = torch.from_numpy(np.stack([crop(c) for c in confs]))[:, None].float()

        if kind == "labels":
            parts = [torch.stack([_one_hot(crop(s), self.cfg.label_nc, self.cfg.ignore_ids, seq.source.name(k))
                                  for s, k in zip(src, idx)])]
            if instances is not None:
                inst = [crop(m) for m in instances]
                parts.append(torch.from_numpy(np.stack([instance_boundary(m) for m in inst]).astype(np.float32))[:, None])
            source = torch.cat(parts, 1)
            if self.cfg.predict:   # the past predicts the present: map t-1 in, map t out (frame 0 sees itself)
                target = source * 2 - 1
                source = torch.cat([source[:1], source[:-1]])
        elif kind == "rgb":
            source = uint8_to_model(np.stack([crop(s) for s in src]))
        else:
            source = torch.from_numpy(np.stack([crop(s, chw=True) for s in src]).astype(np.float32))

        item = dict(source=source, target=target, flow=flow_t, flow_conf=conf_t,
                    sequence=torch.tensor(plan["seq_id"]), start=torch.tensor(plan["start"]),
                    stride=torch.tensor(plan["stride"]), flipped=torch.tensor(int(flip)))
        if instances is not None:
            item["instance"] = torch.from_numpy(np.stack([crop(m) for m in instances]).astype(np.int64))[:, None]
        return item


def build_datasets(cfg: DataConfig, *, n_frames: int, min_frames: int = 2,
                   check_pixels: bool = True) -> tuple[ClipDataset, ClipDataset | None]:
    """Validate both splits (before any training) and build (train, val-or-None) datasets."""
    train_dirs, val_dirs = split_sequences(cfg)
    if not train_dirs:
        raise DatasetError(f"{Path(cfg.root) / 'train'}: no training sequences")
    train_seqs = validate_dataset(cfg, "train", min_frames=min_frames, check_pixels=check_pixels,
                                  sequences=train_dirs)
    val_ds = None
    if val_dirs:
        val_seqs = validate_dataset(cfg, "val", min_frames=min_frames, check_pixels=check_pixels,
                                    sequences=val_dirs)
        val_ds = ClipDataset(cfg, val_seqs, n_frames=min(n_frames, min(s.length for s in val_seqs)), train=False)
        if val_ds.source_nc != (cfg.input_nc or train_seqs[0].source_nc):
            raise DatasetError("validation sources have a different channel count than training sources")
    return ClipDataset(cfg, train_seqs, n_frames=n_frames, train=True), val_ds


def write_toy_dataset(root: str | os.PathLike, *, n_sequences: int = 3, n_frames: int = 12, height: int = 64,
                      width: int = 64, seed: int = 0, val_sequences: int = 1) -> Path:
    """A labels dataset of synthetic moving shapes (v2v.toy) in this module's layout: label ids (3 classes),
    instance maps and RGB targets.  For tests, the throughput bench and the README demo."""
    from v2v.toy import LABEL_NC, moving_shapes

    root = Path(root)
    for k in range(n_sequences):
        split = "val" if k >= n_sequences - val_sequences else "train"
        seq = root / split / f"toy{k:03d}"
        clip = moving_shapes(n_frames, height, width, seed=seed + k)
        for sub in ("source", "target", "instance"):
            (seq / sub).mkdir(parents=True, exist_ok=True)
        for t in range(n_frames):
            cv2.imwrite(str(seq / "source" / f"{t:06d}.png"), clip.labels[t].astype(np.uint8))
            cv2.imwrite(str(seq / "instance" / f"{t:06d}.png"), clip.instances[t].astype(np.uint16))
            cv2.imwrite(str(seq / "target" / f"{t:06d}.png"), cv2.cvtColor(clip.frames[t], cv2.COLOR_RGB2BGR))
    (root / "dataset.json").write_text(json.dumps({"source_kind": "labels", "label_nc": LABEL_NC}) + "\n")
    return root
