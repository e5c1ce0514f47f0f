"""What every source extractor returns: a lazy, bounded stream of conditioning frames.

A :class:`SourceVideo` is the model's conditioning video.  It holds no frames: :meth:`SourceVideo.frames`
opens a fresh stream that decodes, extracts and yields one :class:`SourceFrame` at a time (a float32
tensor ``[input_nc, H, W]`` laid out as docs/CONVENTIONS.md says, its RGB preview and, for label maps, the
ids and instance map it came from), keeping only the state its extractor needs (a background model, a
tracked face box, a smoothing filter per joint).  So a source costs the same memory for 30 frames as for
3 hours, in the CLI and in a ComfyUI graph alike.

Around the stream it carries the metadata the generator needs (``kind``, ``input_nc``, ``label_nc``, frame
size, ``fps``, ``num_frames``), the ``recipe`` that made it (:mod:`v2v.sources.recipe`: a model file records
the recipe of its training sources, so any raw video can be turned into what the model eats) and a
``report`` of what the extractor measured up front.

Shots: a stream takes :class:`ShotOptions`.  At a cut (detected on the decoded video by
:class:`v2v.media.cuts.CutDetector`, or listed by the user) the extractor's per-shot state is reset and the
frame is marked ``cut``, so the generator restarts its history there too.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import torch

from ..media.resize import resize_array, resize_ids, resize_image, shrink_to
from ..media.video_io import Video, VideoError, open_video

KINDS = ("label", "pose", "sketch")
PREVIEW_FRAMES = 8


class SourceError(VideoError):
    """Input that cannot become a source video (empty, corrupt, wrong ids, mismatched sizes)."""


# --- shots ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShotOptions:
    """Where shots start: ``detect`` cuts on the decoded frames (or on the previews of prepared sources),
    and/or the explicit ``cut_frames`` (indices of the source video).  ``threshold`` overrides the
    detector's."""

    detect: bool = True
    cut_frames: tuple[int, ...] = ()
    threshold: float | None = None

    def marker(self) -> Callable[[int, np.ndarray], bool]:
        """A fresh ``(index, rgb) -> cut?`` for one stream (the detector keeps a signature of the last frame)."""
        detector = None
        if self.detect:
            from ..media.cuts import CutDetector

            detector = CutDetector() if self.threshold is None else CutDetector(threshold=self.threshold)
        listed = frozenset(int(i) for i in self.cut_frames)

        def is_cut(index: int, rgb: np.ndarray) -> bool:
            found = detector(rgb) if detector is not None else False   # always fed: it tracks the last frame
            return found or index in listed

        return is_cut


NO_SHOTS = ShotOptions(detect=False)


def decoded_frames(video: Video, start: int, stop: int | None, shots: ShotOptions | None,
                   only: Collection[int] | None) -> Iterator[tuple[int, np.ndarray, bool]]:
    """``(i, rgb, cut)`` for the frames of ``video`` an extractor streams: ``start .. stop - 1``, cuts marked
    on the decoded frames; or just the frames in ``only`` (no cuts: each is a frame on its own)."""
    if only is not None:
        for i, rgb in video.frames(start, stop, only=set(only)):
            yield i, rgb, False
        return
    is_cut = (shots or NO_SHOTS).marker()
    for i, rgb in video.frames(start, stop):
        yield i, rgb, is_cut(i, rgb) and i != start


def mark_cuts(frames: Iterator["SourceFrame"], start: int, shots: ShotOptions | None) -> Iterator["SourceFrame"]:
    """Mark cuts on already-extracted frames by their previews (prepared sources: label maps, renderings)."""
    is_cut = (shots or NO_SHOTS).marker()
    for f in frames:
        f.cut = is_cut(f.index, f.preview) and f.index != start
        yield f


# --- frames and sources ---------------------------------------------------------------------------------

@dataclass
class SourceFrame:
    """One conditioning frame: ``tensor`` ``[input_nc, H, W]`` float32 (CPU), its ``preview`` (uint8 RGB
    ``[H, W, 3]``), and for label maps the ``ids`` ``[H, W]`` and the ``instance`` map ``[H, W]`` its
    boundary channel was drawn from.  ``cut``: a shot starts here.  ``detail``: what the extractor found
    (a pose frame's keypoints)."""

    index: int
    tensor: torch.Tensor
    preview: np.ndarray
    ids: np.ndarray | None = None
    instance: np.ndarray | None = None
    cut: bool = False
    detail: Any = None          # what the extractor found on this frame (pose: its PoseFrame)


Stream = Callable[[int, "int | None", "ShotOptions | None", "Collection[int] | None"], Iterator[SourceFrame]]


class SourceVideo:
    """A conditioning video for the generator as a re-iterable stream, with its metadata.

    Parameters:
        kind: ``"label"``, ``"pose"`` or ``"sketch"``.
        input_nc, label_nc: channels per frame, and how many of them are one-hot labels.
        height, width, fps, num_frames: the stream's frames.
        stream: ``(start, stop, shots, only) -> iterator of SourceFrame``; every call starts afresh.
        recipe: the :class:`v2v.sources.recipe.SourceRecipe` that made it (None: prepared sources whose making
            is unknown: label PNGs, renderings, arrays).
        video: the decoded input it extracts from (None for prepared sources); with ``rebuild``
            (``Video -> SourceVideo``) :meth:`at_size` re-extracts from a resized video.
        report: what the extractor measured when the source was made; ``extra``: kind-specific values
            (label names, palette, ignored ids, the fitted pseudo-labeler).
        storage: how a dataset stores such frames (``labels`` id maps, ``rgb`` images, ``array`` .npy), which
            also decides how they are resized; derived from ``kind`` when not given.
    """

    def __init__(self, *, kind: str, input_nc: int, label_nc: int, height: int, width: int, fps: float,
                 num_frames: int, stream: Stream, recipe=None, video: Video | None = None,
                 rebuild: Callable[[Video], "SourceVideo"] | None = None, report: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None, storage: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not 0 <= label_nc <= input_nc:
            raise ValueError(f"label_nc {label_nc} must lie in [0, input_nc={input_nc}]")
        if num_frames < 1:
            raise SourceError("the source has no frames")
        self.kind, self.input_nc, self.label_nc = kind, int(input_nc), int(label_nc)
        self.height, self.width, self.fps, self.num_frames = int(height), int(width), float(fps), int(num_frames)
        self._stream, self.recipe, self.video, self._rebuild = stream, recipe, video, rebuild
        self.report: dict[str, Any] = dict(report or {})
        self.extra: dict[str, Any] = dict(extra or {})
        # how a dataset stores it (train/data.py's source kinds), which fixes how it is resized
        self.storage = storage or ("labels" if kind == "label" else "rgb" if kind == "pose" and input_nc == 3
                                   else "array")

    def __len__(self) -> int:
        return self.num_frames

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    def frames(self, start: int = 0, stop: int | None = None, *, shots: ShotOptions | None = None,
               only: Collection[int] | None = None) -> Iterator[SourceFrame]:
        """A fresh stream of frames ``start .. stop - 1`` (per-shot extractor state starts at ``start``), or
        only the frames in ``only`` (each extracted on its own, without state from its neighbours)."""
        stop = self.num_frames if stop is None else min(int(stop), self.num_frames)
        return self._stream(int(start), stop, shots, only)

    def tensor(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Frames ``start .. stop - 1`` stacked ``[T, input_nc, H, W]``: for short clips and tests only."""
        return torch.stack([f.tensor for f in self.frames(start, stop)])

    def preview(self, max_frames: int = PREVIEW_FRAMES) -> torch.Tensor:
        """A bounded sample of the previews, spread over the video: IMAGE ``[k, H, W, 3]`` in 0..1."""
        picks = spread(self.num_frames, max_frames)
        rgb = [f.preview for f in self.frames(only=picks)]
        return torch.from_numpy(np.stack(rgb)).float().div_(255.0)

    def at_size(self, size: tuple[int, int], extract_scale: float | None = None) -> "SourceVideo":
        """This source at ``size=(h, w)``: re-extracted from the resized video when it was extracted (at
        ``extract_scale`` x ``size``: a model's recipe's scale, default this source's own, then resized as the
        trainer resizes), else resized frame by frame."""
        size = (int(size[0]), int(size[1]))
        if size == self.size:
            return self
        if self.video is not None and self._rebuild is not None:
            at = extraction_size(size, extract_scale or getattr(self.recipe, "extract_scale", 1.0) or 1.0)
            source = self._rebuild(self.video.edit(size=at, max_side=None))
            return source if source.size == size else resized(source, size)
        return resized(self, size)

    def metadata(self) -> dict[str, Any]:
        return {"kind": self.kind, "input_nc": self.input_nc, "label_nc": self.label_nc, "height": self.height,
                "width": self.width, "fps": self.fps, "num_frames": self.num_frames,
                "recipe": None if self.recipe is None else self.recipe.to_dict(), "report": dict(self.report)}

    def __repr__(self) -> str:  # short: ComfyUI may print values
        how = f", recipe={self.recipe.extractor!r}" if self.recipe is not None else ""
        return (f"SourceVideo(kind={self.kind!r}, frames={len(self)}, input_nc={self.input_nc}, "
                f"label_nc={self.label_nc}, size={self.width}x{self.height}, fps={self.fps:g}{how})")


def extraction_size(size: tuple[int, int], extract_scale: float) -> tuple[int, int]:
    """The (h, w) a recipe extracts at to make a source of ``size``: ``size`` x its ``extract_scale``."""
    return max(1, round(size[0] * extract_scale)), max(1, round(size[1] * extract_scale))


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``0 .. n - 1`` (first and last included)."""
    if n <= 0 or k <= 0:
        return []
    if k >= n:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]


def tensor_source(frames, *, kind: str, label_nc: int = 0, fps: float = 25.0) -> SourceVideo:
    """Frames already made as tensors (``[T, input_nc, H, W]``, or any sequence of ``[input_nc, H, W]``, e.g. a
    training clip or a lazy view of held-out frames) as a SourceVideo.  Previews show the first three channels
    (one-hot labels: the first three classes)."""
    first = frames[0]
    if first.ndim != 3:
        raise ValueError(f"frames must be [T, C, H, W] (or a sequence of [C, H, W]), got a frame of {tuple(first.shape)}")
    C, H, W = first.shape

    def preview(x: torch.Tensor) -> np.ndarray:
        x = x[:3] if C >= 3 else x[:1].expand(3, -1, -1)
        lo = -1.0 if float(x.min()) < 0 else 0.0
        return ((x.float() - lo) / (1 - lo) * 255).clamp(0, 255).round().byte().permute(1, 2, 0).numpy()

    def stream(start, stop, shots, only):
        picks = sorted(only) if only is not None else range(start, stop)
        out = (SourceFrame(t, x, preview(x)) for t in picks if start <= t < stop for x in (frames[t].float(),))
        return out if only is not None else mark_cuts(out, start, shots)

    return SourceVideo(kind=kind, input_nc=C, label_nc=label_nc, height=H, width=W, fps=fps, num_frames=len(frames),
                       stream=stream)


# --- resizing a made source (the trainer's rule for each kind) ---------------------------------------

def resize_frame(frame: SourceFrame, size: tuple[int, int], source: SourceVideo) -> SourceFrame:
    """One frame at ``size=(h, w)`` as the trainer's loader would have resized it from the dataset: label ids
    and instance maps nearest (the boundary redrawn on the resized instance map), renderings area/linear,
    multi-channel arrays channel by channel."""
    if source.storage == "labels":
        from .labels import encode_frame, instance_boundary

        ids = resize_ids(frame.ids, size)
        inst = None if frame.instance is None else resize_ids(frame.instance, size)
        boundary = instance_boundary(inst) if source.input_nc == source.label_nc + 1 and inst is not None else None
        tensor = encode_frame(ids, source.label_nc, boundary, ignore_ids=source.extra.get("ignore_ids", ()))
        return replace(frame, tensor=tensor, ids=ids, instance=inst, preview=resize_image(frame.preview, size))
    if source.storage == "rgb":                                 # an RGB rendering: resize the image
        from ..media.tensors import uint8_to_model

        rgb = resize_image(frame.preview, size)
        return replace(frame, tensor=uint8_to_model(rgb), preview=rgb)
    arr = resize_array(frame.tensor.numpy(), size)
    return replace(frame, tensor=torch.from_numpy(arr), preview=resize_image(frame.preview, size))


def resized(source: SourceVideo, size: tuple[int, int]) -> SourceVideo:
    """``source`` with every frame resized to ``size=(h, w)`` by :func:`resize_frame`."""

    def stream(start, stop, shots, only):
        for f in source.frames(start, stop, shots=shots, only=only):
            yield resize_frame(f, size, source)

    out = SourceVideo(kind=source.kind, input_nc=source.input_nc, label_nc=source.label_nc, height=size[0],
                      width=size[1], fps=source.fps, num_frames=source.num_frames, stream=stream,
                      recipe=source.recipe, report=source.report, extra=source.extra, storage=source.storage)
    return out


# --- the decoded input ------------------------------------------------------------------------------------

def video_input(video, *, fps: float | None = None, max_frames: int | None = None, max_side: int | None = None,
                stride: int = 1) -> Video:
    """A lazy :class:`Video` of a path, an IMAGE batch (0..1), a uint8 batch or a Video; errors are
    SourceErrors.  A video file keeps its own frame rate; frames without one (a folder, a batch) get ``fps``
    (default 30)."""
    try:
        edits = {k: v for k, v in (("max_frames", max_frames), ("max_side", max_side)) if v}
        if stride != 1:
            edits["stride"] = stride
        v = open_video(video, **edits)
    except VideoError as e:
        raise SourceError(str(e)) from None
    return v if v.fps else v.edit(fps=fps or 30.0)


# --- moving regions (shared by pose crops and pseudo-label person masks) --------------------------

@dataclass
class MovingRegions:
    """Foreground masks (255 = moving) by MOG2 background subtraction, fitted to one video, then applied one
    frame at a time with learning frozen, so every frame is labelled by the same model.

    :meth:`fit` starts the model from the video's temporal median (of up to ``median_frames`` frames spread
    over it: walking people vanish from it), then lets it learn over the whole video ``warmup_passes``
    times (adapting to light changes).  Frames are decoded pass by pass, never held: two passes over the
    video, at ``max_side`` resolution.  Shadows (MOG2's 127) count as background.

    OpenCV's MOG2 still changes its state when applied with learning rate 0 (unmatched pixels add empty
    modes), so masks depend on the frames applied before.  Every stream therefore calls :meth:`fresh`
    first: the fitted model as it was after the fit (fitted again if a stream has used it since).
    """

    history: int = 200
    var_threshold: float = 16.0
    warmup_passes: int = 1
    max_side: int = 384
    open_px: int = 2
    close_px: int = 5
    median_frames: int = 25
    mog: Any = field(default=None, repr=False)
    _kernels: Any = field(default=None, repr=False)
    _video: Any = field(default=None, repr=False)
    _used: bool = field(default=False, repr=False)

    def _small(self, rgb: np.ndarray) -> np.ndarray:
        return resize_image(rgb, shrink_to(rgb.shape[:2], self.max_side))

    def fit(self, video, progress: Callable[[int, int], None] | None = None) -> "MovingRegions":
        video = video_input(video)
        self._video, self._used = video, False
        T, H, W = len(video), video.height, video.width
        self.mog = cv2.createBackgroundSubtractorMOG2(history=self.history, varThreshold=self.var_threshold,
                                                      detectShadows=True)
        pick = np.unique(np.linspace(0, T - 1, min(T, self.median_frames)).round().astype(int))
        background = np.median(np.stack([self._small(f) for _, f in video.frames(only=set(pick.tolist()))]),
                               axis=0).astype(np.uint8)
        for _ in range(30):
            self.mog.apply(background, learningRate=-1)
        for p in range(max(0, self.warmup_passes)):
            for i, (_, f) in enumerate(video.frames()):
                self.mog.apply(self._small(f), learningRate=-1)
                if progress is not None:
                    progress(p * T + i + 1, max(1, self.warmup_passes) * T)
        scale = shrink_to((H, W), self.max_side)[1] / W
        self._kernels = tuple(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(px * scale)) + 1,) * 2)
                              for px in (self.open_px, self.close_px))
        return self

    def fresh(self) -> "MovingRegions":
        """The model as fitted, for a new stream (fitted again when an earlier stream has used it)."""
        if self._used:
            self.fit(self._video)
        return self

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """``[H, W]`` uint8 mask of one frame (learning rate 0; see the class docstring for what still changes)."""
        if self.mog is None:
            raise RuntimeError("MovingRegions.fit must run before mask")
        self._used = True
        m = self.mog.apply(self._small(rgb), learningRate=0)
        m = np.where(m > 200, 255, 0).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, self._kernels[0])
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, self._kernels[1])
        return resize_ids(m, rgb.shape[:2])


def mask_boxes(mask: np.ndarray, *, min_area: int) -> list[tuple[int, int, int, int]]:
    """Bounding boxes ``(x0, y0, x1, y1)`` of the connected blobs of at least ``min_area`` pixels."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    boxes = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if area >= min_area:
            boxes.append((int(x), int(y), int(x + w), int(y + h)))
    return boxes
