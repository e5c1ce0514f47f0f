"""Source video -> generated video: what the Vid2VidGenerate node does, without ComfyUI.

Two ways out, both frame by frame through :class:`v2v.sampler.StreamingSampler`:

* :func:`generate_images`: every frame in one ComfyUI IMAGE batch ``[T, H, W, 3]`` (0..1). The batch
  is allocated once, up front, after :func:`check_ram` has compared its size with the RAM that is
  available, so a clip that cannot fit is refused before any work, with the numbers.
* :func:`generate_to_file`: each frame goes straight to a :class:`v2v.media.video_io.VideoWriter`; only the
  sampler's O(L) history and a few preview frames stay in memory, however long the video is.

:func:`check_inputs` turns every mismatch between a source and a model into one :class:`GenerateError`
that says what to change (channels, frame size, empty range).  ``progress(done, total)`` is called
after every frame; in ComfyUI it drives the ProgressBar, whose update is also the interrupt point, so
an interrupt lands between two frames (a partly written video file is then discarded by the writer).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .sampler import StreamingSampler
from .media.tensors import model_to_uint8
from .media.video_io import VideoWriter

Progress = Callable[[int, int], None]

BYTES_PER_IMAGE_VALUE = 4      # ComfyUI IMAGE is float32
RAM_HEADROOM = 0.8             # use at most this fraction of the available RAM for the IMAGE batch
DEFAULT_PREVIEW_FRAMES = 4


class GenerateError(ValueError):
    """Inputs that cannot be generated (the message says what to change)."""


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start, start + 1, ..., stop - 1`` of a source."""

    start: int
    stop: int

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def frame_range(source, start: int = 0, max_frames: int = 0) -> FrameRange:
    """The frames to generate: from ``start``, at most ``max_frames`` (0 = to the end).  Refuses an empty range."""
    total = len(source)
    if total == 0:
        raise GenerateError("the source video is empty (0 frames): check the loader's path and max_frames")
    start = int(start)
    if not 0 <= start < total:
        raise GenerateError(f"start_frame is {start} but the source has {total} frames (0..{total - 1}); "
                            "nothing to generate")
    stop = total if not max_frames or max_frames <= 0 else min(total, start + int(max_frames))
    return FrameRange(start, stop)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def image_batch_bytes(n_frames: int, height: int, width: int, channels: int = 3) -> int:
    """Bytes of a float32 IMAGE batch ``[n_frames, height, width, channels]``."""
    return int(n_frames) * int(height) * int(width) * int(channels) * BYTES_PER_IMAGE_VALUE


def available_ram() -> int:
    """Bytes of RAM available to new allocations (psutil)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_ram(n_frames: int, height: int, width: int, *, available: int | None = None) -> int:
    """Raise :class:`GenerateError` when an IMAGE batch of that size would not fit; return its bytes."""
    need = image_batch_bytes(n_frames, height, width)
    have = available_ram() if available is None else int(available)
    if need > RAM_HEADROOM * have:
        per_frame = image_batch_bytes(1, height, width)
        fits = max(0, int(RAM_HEADROOM * have) // per_frame)
        raise GenerateError(
            f"IMAGE output of {n_frames} frames at {width}x{height} needs {_fmt_bytes(need)} "
            f"({_fmt_bytes(per_frame)} per frame, float32) but only {_fmt_bytes(have)} of RAM is available "
            f"(at most {int(RAM_HEADROOM * 100)}% of it is used: about {fits} frames). "
            "Set output to 'video_file' (streams to disk, memory does not grow with length) "
            "or generate fewer frames (max_frames)")
    return need


def check_inputs(model_cfg, source, frames: FrameRange | None = None) -> None:
    """Refuse a source the model cannot take: channels, frame size (with the fix), empty range."""
    if frames is None:
        frames = frame_range(source)
    nc = int(getattr(source, "input_nc"))
    if nc != model_cfg.input_nc:
        kind = getattr(source, "kind", "?")
        hint = ""
        if model_cfg.label_nc and kind == "label":
            hint = (f" (a label model with label_nc={model_cfg.label_nc}: load the labels with label_nc="
                    f"{model_cfg.label_nc} and instance_boundary="
                    f"{'on' if model_cfg.input_nc == model_cfg.label_nc + 1 else 'off'})")
        elif model_cfg.label_nc and kind != "label":
            hint = f" (this is a label-map model: feed it a LabelVideoLoader source, not a {kind} source)"
        elif not model_cfg.label_nc and kind == "label":
            hint = " (this model does not take label maps: use the source node it was trained with)"
        raise GenerateError(f"the {kind} source has {nc} channels per frame but the model takes "
                            f"input_nc={model_cfg.input_nc}{hint}")
    h, w = int(source.height), int(source.width)
    m = model_cfg.size_multiple
    if h % m or w % m:
        down = f"{max(m, w // m * m)}x{max(m, h // m * m)}"
        up = f"{-(-w // m) * m}x{-(-h // m) * m}"
        raise GenerateError(f"source frames are {w}x{h} (WxH) but this model needs width and height that are "
                            f"multiples of {m}: crop or resize the input video to e.g. {down} (or pad to {up}) "
                            "before the source node")


SCALE_TOLERANCE = 1.5   # source/training frame-area ratio (as a side ratio) beyond which we advise resizing


def scale_advice(source_hw: tuple[int, int], trained_hw: tuple[int, int] | None) -> str | None:
    """A warning when the source frames are much larger or smaller than the frames the model was trained on
    (None when they are close, or the training size is unknown).  The network is fully convolutional and
    runs at any size, but it draws people, faces and textures at the scale it learnt."""
    if trained_hw is None:
        return None
    (h, w), (th, tw) = source_hw, trained_hw
    side_ratio = ((h * w) / (th * tw)) ** 0.5
    if 1 / SCALE_TOLERANCE <= side_ratio <= SCALE_TOLERANCE:
        return None
    return (f"source frames are {w}x{h} (WxH) but this model was trained on {tw}x{th} frames; it draws things at "
            f"the scale it learnt, so resize the video to about {tw}x{th} first (in ComfyUI: an Upscale Image "
            "node before the source node) for results like its training")


def _first_frames(first_frame: torch.Tensor | None, cfg, size: tuple[int, int]) -> torch.Tensor | None:
    """ComfyUI IMAGE ``[k, H, W, 3]`` (0..1) -> model frames ``[k, 3, H, W]`` (-1..1), checked."""
    if first_frame is None:
        return None
    from .media.tensors import image_to_model

    frames = image_to_model(first_frame)
    if frames.shape[1] == 4:
        frames = frames[:, :3]
    if frames.shape[1] != cfg.output_nc:
        raise GenerateError(f"first_frame has {frames.shape[1]} channels; the model makes {cfg.output_nc}-channel frames")
    h, w = size
    if tuple(frames.shape[-2:]) != (h, w):
        raise GenerateError(f"first_frame is {frames.shape[-1]}x{frames.shape[-2]} but the source frames are {w}x{h}; "
                            "resize it to the source's size")
    return frames[: cfg.n_past]  # at most L real frames are used


def _style_getter(style: Any, cfg, n: int) -> Callable[[int], torch.Tensor | None]:
    """A V2V_STYLE value -> ``t -> [style_nc, H, W]``: a tensor ``[style_nc, H, W]`` (every frame),
    ``[T, style_nc, H, W]`` (per frame), or anything with ``.get(t)``."""
    if not cfg.style_nc:
        if style is not None:
            raise GenerateError("style features given but this model has no style input (style_nc=0)")
        return lambda t: None
    if style is None:
        raise GenerateError(f"this model takes style features (style_nc={cfg.style_nc}); connect a V2V_STYLE input")
    if hasattr(style, "get") and not isinstance(style, torch.Tensor):
        return style.get
    if isinstance(style, torch.Tensor) and style.dim() == 3:
        return lambda t: style
    if isinstance(style, torch.Tensor) and style.dim() == 4:
        if style.shape[0] < n:
            raise GenerateError(f"style has {style.shape[0]} frames but {n} frames are generated")
        return lambda t: style[t]
    raise GenerateError(f"style must be [style_nc, H, W] or [T, style_nc, H, W], got {type(style).__name__}")


def iter_frames(model: torch.nn.Module, source, *, frames: FrameRange | None = None,
                first_frame: torch.Tensor | None = None, style: Any = None, device: str | torch.device = "cpu",
                precision: str = "fp32", seed: int = 0, progress: Progress | None = None) -> Iterator[torch.Tensor]:
    """Yield generated frames ``[3, H, W]`` in [-1, 1] (on ``device``), one per source frame of ``frames``.

    ``progress(done, total)`` runs after each frame (and may raise to stop: ComfyUI's interrupt)."""
    cfg = model.cfg
    frames = frames if frames is not None else frame_range(source)
    check_inputs(cfg, source, frames)
    n = len(frames)
    styles = _style_getter(style, cfg, frames.stop)
    real = _first_frames(first_frame, cfg, (int(source.height), int(source.width)))
    try:
        sampler = StreamingSampler(model, device=device, precision=precision, seed=seed, first_frame=real)
    except ValueError as e:
        raise GenerateError(str(e)) from None
    for done, t in enumerate(range(frames.start, frames.stop), start=1):
        try:
            out = sampler.step(source.get(t), style=styles(t))
        except ValueError as e:  # the sampler's own checks (sizes, style) in the user's terms
            raise GenerateError(f"frame {t}: {e}") from None
        yield out[0]
        if progress is not None:
            progress(done, n)


def generate_images(model: torch.nn.Module, source, *, start: int = 0, max_frames: int = 0,
                    available: int | None = None, **kwargs) -> torch.Tensor:
    """All frames as a ComfyUI IMAGE ``[T, H, W, 3]`` float32 on the CPU (refused up front if it would not fit)."""
    frames = frame_range(source, start, max_frames)
    check_inputs(model.cfg, source, frames)
    check_ram(len(frames), int(source.height), int(source.width), available=available)
    out = torch.empty((len(frames), int(source.height), int(source.width), 3), dtype=torch.float32)
    for i, frame in enumerate(iter_frames(model, source, frames=frames, **kwargs)):
        out[i] = frame.detach().float().clamp(-1, 1).add(1).mul(0.5).permute(1, 2, 0).cpu()
    return out


@dataclass
class VideoResult:
    """What :func:`generate_to_file` wrote: ``path``, ``frames`` written, ``fps``, ``size`` (W, H) and a
    ``preview`` IMAGE ``[k, H, W, 3]`` of ``preview_indices`` (frame indices into the written video)."""

    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    preview: torch.Tensor
    preview_indices: list[int]


def preview_indices(n: int, k: int) -> list[int]:
    """``k`` frame indices spread evenly over ``0..n-1`` (first and last included)."""
    if n <= 0 or k <= 0:
        return []
    if k >= n:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]


def generate_to_file(model: torch.nn.Module, source, path: str | Path, *, start: int = 0, max_frames: int = 0,
                     fps: float | None = None, preview_frames: int = DEFAULT_PREVIEW_FRAMES, crf: int = 18,
                     **kwargs) -> VideoResult:
    """Stream every generated frame into the video ``path`` (.mp4/.mkv/.mov, or a folder of PNGs); memory
    stays flat.  Returns a :class:`VideoResult` with a few preview frames."""
    frames = frame_range(source, start, max_frames)
    check_inputs(model.cfg, source, frames)
    fps = float(fps or getattr(source, "fps", 0) or 25.0)
    keep = set(preview_indices(len(frames), preview_frames))
    kept: list[torch.Tensor] = []
    with VideoWriter(path, fps=fps, crf=crf) as writer:
        for i, frame in enumerate(iter_frames(model, source, frames=frames, **kwargs)):
            rgb = model_to_uint8(frame)
            writer.write(rgb)
            if i in keep:
                kept.append(torch.from_numpy(rgb).float().div_(255.0))
    preview = torch.stack(kept) if kept else torch.zeros((0, int(source.height), int(source.width), 3))
    return VideoResult(path=Path(path), frames=writer.count, fps=fps, size=(int(source.width), int(source.height)),
                       preview=preview, preview_indices=sorted(keep))
