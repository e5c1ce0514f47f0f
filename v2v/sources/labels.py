"""Label-map source videos: integer id maps, color-coded maps, instance boundaries, remapping.

A label source frame is ``[label_nc (+1), H, W]`` float32: channel ``i`` is 1 where the pixel's
label id is ``i`` (one-hot), then an optional instance-boundary channel, 1 where the pixel's
instance id differs from one of its 4 neighbours (the paper's edge map from instance maps).

Inputs:
* integer id PNGs (8 or 16 bit), e.g. Cityscapes ``*_gtFine_labelIds.png`` (35 ids, table
  :data:`CITYSCAPES`) or ``*_gtFine_trainIds.png`` (19 classes + 255 ignore, :data:`CITYSCAPES_TRAIN`);
* color-coded maps: each RGB color is one class of a palette (:func:`colors_to_ids`);
* instance-id maps (Cityscapes ``*_instanceIds.png``: class id for stuff, ``id * 1000 + k`` for things).

Ids outside ``[0, label_nc)`` (and not listed as ignored) are an error naming the frame and the id.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
import torch

from ..media.resize import resize_ids
from ..media.video_io import list_images
from .base import SourceError, SourceFrame, SourceVideo, mark_cuts
from .recipe import SourceRecipe

# ---------------------------------------------------------------------------------------------
# Label tables
# ---------------------------------------------------------------------------------------------

# Cityscapes labels: (name, labelId, trainId, RGB color).  trainId 255 = ignored in training.
_CITYSCAPES_ROWS = [
    ("unlabeled", 0, 255, (0, 0, 0)), ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)), ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)), ("dynamic", 5, 255, (111, 74, 0)), ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)), ("sidewalk", 8, 1, (244, 35, 232)), ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)), ("building", 11, 2, (70, 70, 70)), ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)), ("guard rail", 14, 255, (180, 165, 180)), ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)), ("pole", 17, 5, (153, 153, 153)), ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)), ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)), ("terrain", 22, 9, (152, 251, 152)), ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)), ("rider", 25, 12, (255, 0, 0)), ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)), ("bus", 28, 15, (0, 60, 100)), ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)), ("train", 31, 16, (0, 80, 100)), ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
]


def _voc_like_palette(n: int) -> list[tuple[int, int, int]]:
    """A deterministic palette of ``n`` distinct colors: spread the id's bits over the high
    bits of R, G and B (id 0 is black)."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors.append((r, g, b))
    return colors


@dataclass(frozen=True)
class LabelSet:
    """Names and preview colors of a label id space; ``ignore_ids`` get an all-zero one-hot."""

    name: str
    label_nc: int
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_ids: tuple[int, ...] = ()

    def id_of(self, name_or_id: str | int) -> int:
        if isinstance(name_or_id, (int, np.integer)):
            return int(name_or_id)
        s = str(name_or_id).strip()
        if s.lstrip("-").isdigit():
            return int(s)
        try:
            return self.names.index(s)
        except ValueError:
            raise KeyError(f"label {s!r} is not in the {self.name} label set ({', '.join(self.names)})") from None

    def palette(self) -> np.ndarray:
        """``[label_nc, 3]`` uint8 RGB."""
        return np.asarray(self.colors, dtype=np.uint8)


def _cityscapes() -> LabelSet:
    # 35 channels as in the paper's Cityscapes models: ids 0..33 are classes, id 34 is spare.
    names = [r[0] for r in _CITYSCAPES_ROWS] + ["(unused)"]
    colors = [r[3] for r in _CITYSCAPES_ROWS] + [(255, 255, 255)]
    return LabelSet("cityscapes", 35, tuple(names), tuple(colors))


def _cityscapes_train() -> LabelSet:
    rows = sorted((r for r in _CITYSCAPES_ROWS if r[2] != 255), key=lambda r: r[2])
    return LabelSet("cityscapes_train", 19, tuple(r[0] for r in rows), tuple(r[3] for r in rows), ignore_ids=(255,))


CITYSCAPES = _cityscapes()
CITYSCAPES_TRAIN = _cityscapes_train()
#: labelId -> trainId (255 = ignore); a 256-entry lookup table.
CITYSCAPES_ID_TO_TRAINID = np.full(256, 255, dtype=np.uint8)
for _name, _id, _train, _color in _CITYSCAPES_ROWS:
    CITYSCAPES_ID_TO_TRAINID[_id] = _train
CITYSCAPES_THING_IDS = (24, 25, 26, 27, 28, 29, 30, 31, 32, 33)  # classes with instance ids


def generic_label_set(label_nc: int, ignore_ids: Sequence[int] = ()) -> LabelSet:
    return LabelSet(f"generic{label_nc}", label_nc, tuple(f"class {i}" for i in range(label_nc)),
                    tuple(_voc_like_palette(label_nc)), tuple(ignore_ids))


LABEL_SETS = {"cityscapes": CITYSCAPES, "cityscapes_train": CITYSCAPES_TRAIN}


def label_set(name_or_nc: str | int | LabelSet) -> LabelSet:
    if isinstance(name_or_nc, LabelSet):
        return name_or_nc
    if isinstance(name_or_nc, (int, np.integer)):
        return generic_label_set(int(name_or_nc))
    if name_or_nc not in LABEL_SETS:
        raise KeyError(f"unknown label set {name_or_nc!r}; known: {sorted(LABEL_SETS)} or an int label_nc")
    return LABEL_SETS[name_or_nc]


# ---------------------------------------------------------------------------------------------
# Per-frame operations
# ---------------------------------------------------------------------------------------------

def read_id_png(path: str | os.PathLike) -> np.ndarray:
    """An integer id map ``[H, W]`` (int32) from an 8/16-bit single-channel PNG.

    A 3-channel file whose channels are equal (ids saved as grey RGB) is accepted; a truly colored
    file is refused (use ``colors_to_ids``).
    """
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SourceError(f"frame {path.name}: cannot decode {path}")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[..., :3]
        if not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])):
            raise SourceError(f"frame {path.name}: a color image, not an id map; load it as a color-coded "
                              f"label map with a palette instead")
        img = img[..., 0]
    return img.astype(np.int32)


def write_id_png(path: str | os.PathLike, ids: np.ndarray) -> None:
    """Write an id map as a lossless single-channel PNG (8-bit when ids < 256, else 16-bit)."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"an id map is [H, W], got {ids.shape}")
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 65535:
        raise ValueError("ids must lie in [0, 65535] to be stored as PNG")
    dtype = np.uint8 if ids.max(initial=0) < 256 else np.uint16
    if not cv2.imwrite(str(path), ids.astype(dtype)):
        raise OSError(f"cannot write {path}")


def colors_to_ids(rgb: np.ndarray, palette: np.ndarray | Sequence, *, unknown: int | None = None,
                  frame: str = "frame") -> np.ndarray:
    """Map a color-coded label map ``[H, W, 3]`` (RGB uint8) to ids: pixel color == ``palette[id]``.

    Colors not in the palette raise (naming the frame and the color) unless ``unknown`` gives an id.
    When a color appears twice in the palette the first id wins.
    """
    pal = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    key = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pal_key = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    uniq, first = np.unique(pal_key, return_index=True)  # first id for duplicated colors
    pos = np.searchsorted(uniq, key)
    pos_c = np.clip(pos, 0, len(uniq) - 1)
    found = uniq[pos_c] == key
    ids = first[pos_c].astype(np.int32)
    if not found.all():
        if unknown is None:
            y, x = np.argwhere(~found)[0]
            c = tuple(int(v) for v in rgb[y, x])
            raise SourceError(f"{frame}: color {c} at (x={x}, y={y}) is not in the palette "
                              f"({(~found).sum()} pixels); pass unknown=<id> to map such colors")
        ids[~found] = unknown
    return ids


def ids_to_colors(ids: np.ndarray, palette: np.ndarray | Sequence) -> np.ndarray:
    """Color an id map with a palette (ids outside the palette are drawn white)."""
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    lut = np.full((max(int(ids.max(initial=0)) + 1, len(pal)), 3), 255, dtype=np.uint8)
    lut[: len(pal)] = pal
    return lut[np.clip(ids, 0, len(lut) - 1)]


def label_colors(ids: np.ndarray, label_nc: int) -> np.ndarray:
    """An id map in the generic palette of ``label_nc`` classes (uint8 RGB ``[H, W, 3]``): previews of predicted
    maps, sample strips."""
    return ids_to_colors(ids, generic_label_set(max(label_nc, 2)).palette())


def instance_boundary(instance):
    """True where the instance id differs from any 4-neighbour (both sides of an edge).

    ``instance`` ``[..., H, W]`` numpy array or torch tensor of ids -> bool array/tensor of the same shape
    and kind (torch stays on its device), so the trainer, loaders and sampler share this one definition.
    """
    if isinstance(instance, torch.Tensor):
        edge = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    else:
        instance = np.asarray(instance)
        edge = np.zeros(instance.shape, dtype=bool)
    dx = instance[..., :, 1:] != instance[..., :, :-1]
    dy = instance[..., 1:, :] != instance[..., :-1, :]
    edge[..., :, 1:] |= dx
    edge[..., :, :-1] |= dx
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    return edge


def remap_labels(ids: np.ndarray, mapping: Mapping[int, int], *, label_set: LabelSet | None = None) -> np.ndarray:
    """Replace label ids: ``mapping = {src: dst}`` (e.g. vegetation -> building, the paper's
    semantic manipulation).  With a ``label_set`` the keys/values may also be class names.
    Ids not in the mapping are kept.  Works on one map or a stack of maps."""
    ids = np.asarray(ids)
    if not mapping:
        return ids.copy()
    conv = (label_set.id_of if label_set else int)
    pairs = {conv(k): conv(v) for k, v in mapping.items()}
    lo = min(int(ids.min(initial=0)), *pairs.keys(), 0)
    hi = max(int(ids.max(initial=0)), *pairs.keys())
    lut = np.arange(lo, hi + 1, dtype=np.int64)
    for src, dst in pairs.items():
        lut[src - lo] = dst
    return lut[ids.astype(np.int64) - lo].astype(ids.dtype if ids.dtype.kind in "iu" else np.int64)


def parse_mapping(text: str) -> dict[str, str]:
    """``"vegetation->building, 26:24"`` -> ``{"vegetation": "building", "26": "24"}``."""
    out = {}
    for part in filter(None, (p.strip() for p in text.replace(";", ",").replace("\n", ",").split(","))):
        for sep in ("->", "=>", ":", "="):
            if sep in part:
                src, dst = part.split(sep, 1)
                out[src.strip()] = dst.strip()
                break
        else:
            raise ValueError(f"cannot read label mapping {part!r}; write 'src->dst' pairs separated by commas")
    return out


def check_ids(ids: np.ndarray, label_nc: int, *, ignore_ids: Sequence[int] = (), frame: str = "frame") -> None:
    """Raise :class:`SourceError` naming the frame and the id when an id lies outside ``[0, label_nc)``."""
    bad = (ids < 0) | (ids >= label_nc)
    for ig in ignore_ids:
        bad &= ids != ig
    if bad.any():
        vals, counts = np.unique(ids[bad], return_counts=True)
        listing = ", ".join(f"{int(v)} ({int(c)} px)" for v, c in zip(vals[:8], counts[:8]))
        raise SourceError(f"{frame}: label id {int(vals[0])} is outside [0, {label_nc}) "
                          f"(out-of-range ids: {listing}); raise label_nc or remap these ids")


def one_hot(ids: np.ndarray | torch.Tensor, label_nc: int, *, ignore_ids: Sequence[int] = (),
            frame: str = "frame") -> torch.Tensor:
    """``[H, W]`` ids -> ``[label_nc, H, W]`` float32 one-hot (ignored ids -> all zeros).

    Made in numpy and handed over with ``torch.from_numpy``: extraction runs in the read-ahead thread
    (:mod:`v2v.prefetch`), where a torch kernel would start a second OpenMP team beside the network's, and
    on a 2-core CPU the two teams' spinning threads slowed the network's frames by up to 2x."""
    ids_np = ids.numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    check_ids(ids_np, label_nc, ignore_ids=ignore_ids, frame=frame)
    return torch.from_numpy(_one_hot_np(ids_np, label_nc))


def _one_hot_np(ids: np.ndarray, label_nc: int, out: np.ndarray | None = None) -> np.ndarray:
    """``[H, W]`` -> ``[label_nc, H, W]`` float32 (into ``out`` when given); ids outside ``[0, label_nc)`` match no
    channel (all zeros)."""
    if out is None:
        out = np.empty((label_nc, *ids.shape), dtype=np.float32)
    np.equal(ids[None], np.arange(label_nc, dtype=ids.dtype)[:, None, None], out=out, casting="unsafe")
    return out


def encode_frame(ids: np.ndarray, label_nc: int, boundary: np.ndarray | None = None, *,
                 ignore_ids: Sequence[int] = (), frame: str = "frame") -> torch.Tensor:
    """One source frame: one-hot ids, then the boundary channel when given -> ``[label_nc(+1), H, W]`` (numpy
    throughout, see :func:`one_hot`)."""
    ids = np.asarray(ids)
    check_ids(ids, label_nc, ignore_ids=ignore_ids, frame=frame)
    if boundary is None:
        return torch.from_numpy(_one_hot_np(ids, label_nc))
    if boundary.shape != ids.shape:
        raise SourceError(f"{frame}: instance map is {boundary.shape[1]}x{boundary.shape[0]}, "
                          f"label map is {ids.shape[1]}x{ids.shape[0]}")
    out = np.empty((label_nc + 1, *ids.shape), dtype=np.float32)
    _one_hot_np(ids, label_nc, out[:label_nc])
    out[label_nc] = boundary
    return torch.from_numpy(out)


def render_labels(ids: np.ndarray, palette: np.ndarray, boundary: np.ndarray | None = None) -> np.ndarray:
    """Preview RGB uint8: palette colors, instance boundaries in white."""
    rgb = ids_to_colors(ids, palette)
    if boundary is not None:
        rgb = rgb.copy()
        rgb[boundary] = 255
    return rgb


# ---------------------------------------------------------------------------------------------
# Sequences
# ---------------------------------------------------------------------------------------------

def _label_files(folder: Path, kind: str) -> tuple[list[Path], list[Path] | None]:
    """Label files (and Cityscapes instance files next to them, if any) in natural order.

    Cityscapes folders hold several maps per frame: ``*_labelIds.png`` for the 35-id set,
    ``*_labelTrainIds.png`` / ``*_trainIds.png`` for the 19-class set, ``*_instanceIds.png``."""
    images = list_images(folder)
    suffix = {"cityscapes": "labelids.png", "cityscapes_train": "trainids.png"}.get(kind)
    files = [p for p in images if suffix and p.name.lower().endswith(suffix)
             and not (kind == "cityscapes" and p.name.lower().endswith("trainids.png"))]
    if not files:
        files = [p for p in images if not p.name.lower().endswith(("instanceids.png", "color.png"))]
    inst = [p for p in images if p.name.lower().endswith("instanceids.png")] or None
    return files, inst


class _LabelItems:
    """The per-frame inputs of a label video: files, arrays, or a (lossless) label video, read one at a time."""

    def __init__(self, labels, max_frames: int | None) -> None:
        self.video = None
        if isinstance(labels, (str, os.PathLike)) and Path(labels).is_file():   # a losslessly coded label video
            from .base import video_input

            self.video = video_input(labels, max_frames=max_frames)
            self.items, self.names = list(range(len(self.video))), [self.video.frame_name(i) for i in range(len(self.video))]
        elif isinstance(labels, (list, tuple)):
            self.items = list(labels)
            self.names = [Path(p).name if isinstance(p, (str, os.PathLike)) else f"#{i}" for i, p in enumerate(labels)]
        else:
            arr = labels.detach().cpu() if isinstance(labels, torch.Tensor) else np.asarray(labels)
            self.items, self.names = arr, [f"#{i}" for i in range(len(arr))]   # rows read on demand
        if max_frames:
            self.items, self.names = self.items[:max_frames], self.names[:max_frames]

    def __len__(self) -> int:
        return len(self.names)

    def raw(self, i: int) -> np.ndarray:
        if self.video is not None:
            return next(self.video.frames(only={i}))[1]
        item = self.items[i]
        if isinstance(item, (str, os.PathLike)):
            return item
        a = item.numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        if a.ndim == 3 and a.dtype.kind == "f":           # an IMAGE frame: ids are round(R * 255)
            a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
        return a

    def frames(self, start: int, stop: int, only=None):
        """``(i, raw)`` in order (a label video decodes sequentially)."""
        if self.video is not None and only is None:
            yield from self.video.frames(start, stop)
            return
        for i in (sorted(only) if only is not None else range(start, stop)):
            if start <= i < stop:
                yield i, self.raw(i)


def _ids_of(item, mode: str, name: str, palette: np.ndarray, unknown: int | None) -> np.ndarray:
    """One frame's id map ``[H, W]`` int32 from a file or an array (``ids``: the value; ``color``: the palette)."""
    if mode == "ids":
        if isinstance(item, (str, os.PathLike)):
            ids = read_id_png(item)
        else:
            ids = np.asarray(item)
            ids = (ids[..., 0] if ids.ndim == 3 else ids).astype(np.int32)
        return ids
    if mode == "color":
        if isinstance(item, (str, os.PathLike)):
            bgr = cv2.imread(str(item), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SourceError(f"frame {name}: cannot decode {item}")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        else:
            rgb = np.asarray(item)[..., :3].astype(np.uint8)
        return colors_to_ids(rgb, palette, unknown=unknown, frame=f"frame {name}")
    raise ValueError(f"mode must be 'ids' or 'color', got {mode!r}")


def label_video(labels, *, label_nc: int | None = None, label_set_name: str | int | LabelSet | None = None,
                mode: str = "ids", palette: np.ndarray | None = None, unknown: int | None = None,
                instances=None, remap: Mapping | None = None, fps: float = 30.0,
                max_frames: int | None = None, size: tuple[int, int] | None = None,
                progress: Callable[[int, int], None] | None = None) -> SourceVideo:
    """A lazy label :class:`SourceVideo`: each frame is read, checked and one-hot encoded when it is streamed.

    Parameters:
        labels: a folder of id/color PNGs, a list of files, an int array ``[T, H, W]`` of ids, a uint8/float
            RGB array ``[T, H, W, 3]`` (IMAGE batch: ``mode="ids"`` reads ``round(R*255)``), or a losslessly
            coded label video file.
        label_nc: number of one-hot channels (default: the label set's).
        label_set_name: ``"cityscapes"`` (labelIds, 35), ``"cityscapes_train"`` (trainIds, 19, 255
            ignored) or an int; sets names, preview colors and ignored ids.
        mode: ``"ids"`` (integer maps) or ``"color"`` (color-coded maps; ``palette`` or the label
            set's colors give the id of each color).
        instances: instance-id maps (folder, file list or ``[T, H, W]``) -> boundary channel; ``True``
            uses the Cityscapes ``*instanceIds.png`` files found next to the labels; ``"labels"``
            takes the boundaries of the label map itself (when no instance maps exist).
        remap: ``{src: dst}`` applied to ids before encoding (names allowed with a label set).
        size: ``(width, height)`` to resize to (nearest neighbour; labels are never interpolated).

    The first frame is read and checked now (its size fixes the video's); an id out of range or a frame of
    another size further on stops the stream with a :class:`SourceError` naming the frame.
    """
    lset = label_set(label_set_name if label_set_name is not None else (label_nc or "cityscapes"))
    label_nc = int(label_nc or lset.label_nc)
    if label_nc != lset.label_nc and label_set_name is None:
        lset = generic_label_set(label_nc, lset.ignore_ids)
    pal = np.asarray(palette if palette is not None else lset.palette(), dtype=np.uint8)

    inst_items = None
    if isinstance(labels, (str, os.PathLike)) and not Path(labels).is_file():
        folder = Path(labels)
        if not folder.is_dir():
            raise SourceError(f"{folder} is not a folder of label images or a label video")
        files, found_inst = _label_files(folder, lset.name)
        if not files:
            raise SourceError(f"{folder} holds no label images")
        labels = files
        if instances is True:
            if not found_inst:
                raise SourceError(f"{folder} has no *instanceIds.png files for the boundary channel")
            inst_items = _LabelItems(found_inst, max_frames)
    items = _LabelItems(labels, max_frames)
    if len(items) == 0:
        raise SourceError("no label frames given (empty sequence)")
    from_labels = isinstance(instances, str) and instances == "labels"
    if instances is not None and instances is not True and not from_labels:
        inst_items = _LabelItems(list_images(instances) if isinstance(instances, (str, os.PathLike)) else instances,
                                 max_frames)
    if inst_items is not None and len(inst_items) != len(items):
        raise SourceError(f"{len(items)} label frames but {len(inst_items)} instance maps")
    pairs = {lset.id_of(k): lset.id_of(v) for k, v in remap.items()} if remap else None
    has_boundary = from_labels or inst_items is not None

    def frame(i: int, raw) -> SourceFrame:
        name = items.names[i]
        ids = _ids_of(raw, mode, name, pal, unknown)
        if ids.shape != shape0:
            raise SourceError(f"frame {name} is {ids.shape[1]}x{ids.shape[0]}, but frame {items.names[0]} is "
                              f"{shape0[1]}x{shape0[0]}: all label frames must have one size")
        if pairs:
            ids = remap_labels(ids, pairs)
        check_ids(ids, label_nc, ignore_ids=lset.ignore_ids, frame=f"frame {name} (index {i})")
        inst = None
        if from_labels:     # no instance maps: every connected segment of the label map is one instance
            inst = ids
        elif inst_items is not None:
            inst = _ids_of(inst_items.raw(i), "ids", inst_items.names[i], pal, None)
            if inst.shape != ids.shape:
                raise SourceError(f"frame {name}: instance map is {inst.shape[1]}x{inst.shape[0]}, "
                                  f"label map is {ids.shape[1]}x{ids.shape[0]}")
        if size is not None:
            ids = resize_ids(ids, (size[1], size[0]))
            inst = None if inst is None else resize_ids(inst, (size[1], size[0]))
        boundary = instance_boundary(inst) if inst is not None else None
        return SourceFrame(i, encode_frame(ids, label_nc, boundary, ignore_ids=lset.ignore_ids,
                                           frame=f"frame {name}"),
                           render_labels(ids, pal, boundary), ids=ids, instance=inst)

    def stream(start, stop, shots, only):
        out = (frame(i, raw) for i, raw in items.frames(start, stop, only))
        return out if only is not None else mark_cuts(out, start, shots)

    shape0 = _ids_of(items.raw(0), mode, items.names[0], pal, unknown).shape
    first = frame(0, items.raw(0))           # fail now on a bad first frame
    H, W = first.ids.shape
    fps = items.video.fps if items.video is not None and items.video.fps else fps
    recipe = SourceRecipe("label_maps", {"label_set": lset.name, "label_nc": label_nc, "mode": mode,
                                         "boundary": has_boundary})
    return SourceVideo(kind="label", input_nc=label_nc + has_boundary, label_nc=label_nc, height=H, width=W,
                       fps=fps, num_frames=len(items), stream=stream, recipe=recipe,
                       report={"label_set": lset.name, "frames": len(items), "mode": mode,
                               "remap": {str(k): str(v) for k, v in (remap or {}).items()}},
                       extra={"label_names": list(lset.names), "palette": pal, "ignore_ids": lset.ignore_ids})
