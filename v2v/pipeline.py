"""Source video -> generated video: the one generation loop, and the one place that checks inputs.

``python -m v2v generate``, both output modes of the Vid2VidGenerate node, bench/ and the trainer's
validation all run :func:`generate`:

    source stream --(recipe check, resize)--> pad to the model's multiple --> StreamingSampler
        --> crop back --> frames out (a file, an IMAGE batch, a metric)

one frame at a time: decoding, extraction, generation and encoding each keep only the state they need,
so memory does not grow with the video's length.  Decoding and extraction run a few frames ahead in a
second thread (:mod:`v2v.prefetch`), so they overlap the network instead of taking turns with it.

* :func:`prepare_source` checks a source against a model once, up front, and says what to change: the
  model's source recipe (:mod:`v2v.sources.recipe`; pseudo-labels are re-made with the model's label
  centres), the channels, and the frame size: ``resize="model"`` scales the video to the model's
  training size (same area, same aspect ratio), any other size is padded (reflect) to the model's size
  multiple and cropped back, so no frame size is refused.
* Shots: at every cut the source marks (:class:`v2v.sources.base.ShotOptions`: detected and/or listed),
  the sampler restarts its history as at the start of a video, so nothing is warped across a cut.
* :func:`generate_to_file` streams into a video file; if the source fails part-way (a truncated video),
  the frames made so far are kept in the file and the error says so.  :func:`generate_images` returns an
  IMAGE batch, refused up front when it would not fit in RAM.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .media.resize import fit_area
from .media.tensors import model_to_uint8
from .media.video_io import VideoError, VideoWriter
from .model.style import StyleError, StylePlan, class_styles, read_style_mixtures
from .prefetch import READ_AHEAD, WRITE_BEHIND, WriteBehind, read_ahead as read_ahead_of
from .sampler import StreamingSampler
from .sources.base import ShotOptions, SourceError, SourceFrame, SourceVideo
from .threads import ThreadTuner

Progress = Callable[[int, int], None]

BYTES_PER_IMAGE_VALUE = 4      # ComfyUI IMAGE is float32
RAM_HEADROOM = 0.8             # use at most this fraction of the available RAM for the IMAGE batch
DEFAULT_PREVIEW_FRAMES = 4
SCALE_TOLERANCE = 1.5          # source/training side ratio beyond which we advise resizing
RESIZE_MODES = ("off", "model")


class GenerateError(ValueError):
    """Inputs that cannot be generated (the message says what to change)."""


# ---- the model's side ---------------------------------------------------------------------------------

def model_recipe(model: torch.nn.Module):
    """The source recipe recorded in a loaded model's file (None: none recorded)."""
    from .sources.recipe import METADATA_KEY, from_json

    return from_json(getattr(model, "file_metadata", {}).get(METADATA_KEY), where="the model file")


def model_frame_size(model: torch.nn.Module) -> tuple[int, int] | None:
    """(H, W) of the frames a loaded model was trained on, when its file says."""
    from .model.checkpoint import training_frame_size

    return training_frame_size(getattr(model, "file_metadata", {}))


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
            f"the scale it learnt, so resize to the model's size (CLI: --resize model; node: resize = model) "
            "for results like its training")


def target_size(model: torch.nn.Module, size: tuple[int, int], resize) -> tuple[int, int]:
    """The (H, W) to generate at: ``resize`` None/"off" keeps ``size``; "model" takes the model's training
    size (same area, the source's aspect ratio, a multiple of the model's size multiple); an (h, w) pair is
    taken as it is."""
    if resize in (None, "off", ""):
        return size
    if resize == "model":
        trained = model_frame_size(model)
        if trained is None:
            raise GenerateError("this model file records no single frame size it was trained at (none recorded, or "
                                "its clips kept several sizes of their own), so it cannot be resized to it: give an "
                                "explicit size (CLI: --resize WxH) or keep the size (off); models/vid2vid/README.md "
                                "says each shipped model's scale")
        return fit_area(size, trained, model.cfg.size_multiple)
    try:
        h, w = (int(v) for v in resize)
    except (TypeError, ValueError):
        raise GenerateError(f"resize must be 'off', 'model' or a (height, width) pair, got {resize!r}") from None
    if h < 1 or w < 1:
        raise GenerateError(f"resize size must be positive, got {w}x{h} (WxH)")
    return h, w


def check_channels(cfg, source: SourceVideo) -> None:
    """Refuse a source whose channels the model cannot take, with a hint naming the fix."""
    nc = int(source.input_nc)
    if nc == cfg.input_nc:
        return
    kind = source.kind
    hint = ""
    if cfg.label_nc and kind == "label":
        hint = (f" (a label model with label_nc={cfg.label_nc}: load the labels with label_nc="
                f"{cfg.label_nc} and instance_boundary={'on' if cfg.input_nc == cfg.label_nc + 1 else 'off'})")
    elif cfg.label_nc and kind != "label":
        hint = f" (this is a label-map model: feed it a LabelVideoLoader source, not a {kind} source)"
    elif not cfg.label_nc and kind == "label":
        hint = " (this model does not take label maps: use the source node it was trained with)"
    raise GenerateError(f"the {kind} source has {nc} channels per frame but the model takes "
                        f"input_nc={cfg.input_nc}{hint}")


def prepare_source(model: torch.nn.Module, source: SourceVideo, *, resize=None,
                   model_name: str = "the model") -> SourceVideo:
    """``source`` made ready for ``model``: checked against the model's recipe (pseudo-labels re-made with its
    centres), resized when asked (re-extracted at the new size where it was extracted), channels checked."""
    from .sources.recipe import check

    recipe = model_recipe(model)
    try:
        source = check(recipe, source, model_name=model_name)
        size = target_size(model, source.size, resize)
        # re-extracted at the model's extraction scale (the body model's poses were found at 2x its frames): the
        # source's own recipe says 1x, the size it was made at
        same = recipe is not None and source.recipe is not None and source.recipe.extractor == recipe.extractor
        source = source.at_size(size, recipe.extract_scale if same else None)
    except SourceError as e:
        raise GenerateError(str(e)) from None
    check_channels(model.cfg, source)
    return source


# ---- frame ranges, memory -------------------------------------------------------------------------------

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


# Peak memory of a generator step, measured by ``python bench/memory_estimate.py`` (shipped models, 512x384 to
# 2048x1536), was 5.6-7.6 times the largest single activation; 4.5 times keeps the estimate below the real
# peak, so a refusal is certain to be right and a size that fits is never refused.
ACTIVATION_PEAK_FACTOR = 4.5
PROBE_SIZE = 64


def largest_activation_per_pixel(model: torch.nn.Module) -> float:
    """Bytes per pixel of the largest tensor any module of ``model`` returns in a step with history (float32),
    from a probe step at a small size; cached on the model.  Activations scale with the pixel count."""
    cached = getattr(model, "_v2v_activation_per_px", None)
    if cached is not None:
        return cached
    cfg = model.cfg
    side = max(-(-PROBE_SIZE // cfg.size_multiple) * cfg.size_multiple, cfg.min_frame_side)
    largest = [0]

    def hook(_module, _inputs, output):
        if torch.is_tensor(output):
            output = [output]
        elif not isinstance(output, (tuple, list)):          # the generator's output record
            output = list(vars(output).values()) if hasattr(output, "__dict__") else []
        for t in output:
            if torch.is_tensor(t):
                largest[0] = max(largest[0], t.numel() * 4)

    device = next(model.parameters()).device
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        sampler = StreamingSampler(model, device=device)
        x = torch.zeros((1, cfg.input_nc, side, side))
        style = torch.zeros((1, cfg.style_nc, side, side)) if cfg.style_nc else None
        for _ in range(2):                      # the second step warps: the flow branch runs too
            sampler.step(x, style=style)
    finally:
        for h in handles:
            h.remove()
    model._v2v_activation_per_px = largest[0] / (side * side)
    return model._v2v_activation_per_px


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device`` (CUDA: free plus cached by torch; CPU: available RAM)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return available_ram()


def check_generation_memory(model: torch.nn.Module, size: tuple[int, int], device: str | torch.device,
                            precision: str = "fp32", *, available: int | None = None) -> int:
    """Refuse, before the first step, a frame size whose activations cannot fit (a lower bound of the need,
    so what fits is never refused).  ``size`` is the padded (H, W) the network sees.  Returns the estimate."""
    device = torch.device(device)
    h, w = size
    need = ACTIVATION_PEAK_FACTOR * largest_activation_per_pixel(model) * h * w
    if precision == "bf16":
        need /= 2
    have = available_memory(device) if available is None else int(available)
    if need > have:
        raise GenerateError(
            f"frames of {w}x{h} need at least {_fmt_bytes(need)} of {device.type.upper()} memory in the generator "
            f"but only {_fmt_bytes(have)} is free: generate at a smaller size (resize to the model's size, or "
            "WIDTHxHEIGHT) or crop the video to the part you need")
    return int(need)


# ---- padding, first frames, style ------------------------------------------------------------------

@dataclass(frozen=True)
class Padding:
    """Reflect padding that brings (H, W) to multiples of ``m`` (split between both sides), and its undoing."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @classmethod
    def to_multiple(cls, size: tuple[int, int], m: int, least: int = 0) -> "Padding":
        """To the next multiple of ``m``, and to at least ``least`` (the network's smallest side)."""
        ph, pw = (max(-s % m, least - s) if s < least else -s % m for s in size)
        return cls(ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)

    def __bool__(self) -> bool:
        return any((self.top, self.bottom, self.left, self.right))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., C, H, W]`` padded; reflect where the frame is large enough, else replicate."""
        if not self:
            return x
        h, w = x.shape[-2:]
        mode = "reflect" if max(self.top, self.bottom) < h and max(self.left, self.right) < w else "replicate"
        lead = x.shape[:-3]
        y = F.pad(x.reshape(-1, *x.shape[-3:]), (self.left, self.right, self.top, self.bottom), mode=mode)
        return y.reshape(*lead, *y.shape[-3:])

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        if not self:
            return x
        h, w = x.shape[-2:]
        return x[..., self.top:h - self.bottom, self.left:w - self.right]


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
    lo, hi = float(frames.min()), float(frames.max())
    if lo < -1.001 or hi > 1.001:
        raise GenerateError(f"first_frame values must be in 0..1 (an IMAGE), got {(lo + 1) / 2:.3g}..{(hi + 1) / 2:.3g}")
    return frames[: cfg.n_past]  # at most L real frames are used


def _style_getter(style: Any, model, n: int, seed: int) -> Callable[[SourceFrame], torch.Tensor | None]:
    """A V2V_STYLE value -> ``frame -> [style_nc, H, W]``: a :class:`StylePlan` (styles drawn per instance of the
    label frames), a tensor ``[style_nc, H, W]`` (every frame) or ``[T, style_nc, H, W]`` (per frame), or anything
    with ``.get(t)``.  None, for a model with a style input: every class drawn from the model's mixtures with
    ``seed`` (the paper's multimodal synthesis)."""
    cfg = model.cfg
    if not cfg.style_nc:
        if style is not None:
            raise GenerateError("style features given but this model has no style input (style_nc=0)")
        return lambda f: None
    if style is None:
        try:
            style = style_plan(model, seed=seed)
        except GenerateError as e:
            raise GenerateError(f"this model takes style features (style_nc={cfg.style_nc}): {e}; or connect a "
                                "V2V_STYLE input") from None
    if isinstance(style, StylePlan):
        def from_labels(f: SourceFrame) -> torch.Tensor:
            if f.ids is None:
                raise GenerateError("styles are drawn per instance of label maps: connect a label source "
                                    "(LabelVideoLoader), not a sketch or pose")
            return style.frame(f.ids, f.instance)
        return from_labels
    if hasattr(style, "get") and not isinstance(style, torch.Tensor):
        return lambda f: style.get(f.index)
    if isinstance(style, torch.Tensor) and style.dim() == 3:
        return lambda f: style
    if isinstance(style, torch.Tensor) and style.dim() == 4:
        if style.shape[0] < n:
            raise GenerateError(f"style has {style.shape[0]} frames but {n} frames are generated")
        return lambda f: style[f.index]
    raise GenerateError(f"style must be a StylePlan, [style_nc, H, W] or [T, style_nc, H, W], got {type(style).__name__}")


def reference_labels(model: torch.nn.Module, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A reference image ([H, W, 3] uint8) as the model's style encoder sees it: ``(rgb, ids)`` at the model's
    training size (same area, the image's aspect ratio), labelled with the model's own recipe (pseudo-labels
    with its centres)."""
    from .media.resize import resize_image
    from .sources.recipe import source_for

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise GenerateError(f"the reference image must be one [H, W, 3] uint8 RGB image, got {image.dtype} "
                            f"{list(image.shape)}")
    recipe = model_recipe(model)
    if recipe is None:
        raise GenerateError("this model file records no source recipe, so a reference image cannot be labelled as "
                            "its training frames were")
    size = target_size(model, image.shape[:2], "model") if model_frame_size(model) else image.shape[:2]
    try:
        frame = next(iter(source_for(recipe, image[None], size).frames(0, 1)))
    except SourceError as e:
        raise GenerateError(f"reference image: {e}") from None
    return resize_image(image, size), frame.ids


def reference_styles(model: torch.nn.Module, encoder: torch.nn.Module, image: np.ndarray,
                     classes: set[int] | None = None) -> dict[int, np.ndarray]:
    """The styles of a reference image ([H, W, 3] uint8): labelled as :func:`reference_labels` says, encoded by
    the model's style encoder E and averaged per class.  Returns ``{class: vector}`` for the classes the image
    shows (those in ``classes``, None: all)."""
    from .media.tensors import uint8_to_model

    rgb, ids = reference_labels(model, image)
    styles = class_styles(encoder, uint8_to_model(rgb), ids)
    if classes is not None:
        styles = {c: v for c, v in styles.items() if c in classes}
        if not styles:
            raise GenerateError(f"the reference image shows none of the classes {sorted(classes)} (it shows "
                                f"{sorted(np.unique(ids).tolist())}): choose others or another image")
    return styles


def style_plan(model: torch.nn.Module, *, seed: int = 0, resample: set[int] | None = None,
               reference: np.ndarray | None = None, reference_classes: set[int] | None = None,
               encoder: torch.nn.Module | None = None) -> StylePlan:
    """A style model's V2V_STYLE (paper Sec. 3, multimodal synthesis): every instance's style drawn with ``seed``
    from the model's per-class mixtures (classes outside ``resample``, None: all, keep their mean style); with a
    ``reference`` image, the classes it shows (within ``reference_classes``) take its styles instead, encoded by
    the model's style encoder ``encoder`` (:func:`v2v.model.checkpoint.load_style_encoder`)."""
    cfg = model.cfg
    if not cfg.style_nc:
        raise GenerateError("this model has no style input (style_nc 0): styles need a model trained with "
                            "model.style_nc > 0, such as street_style.safetensors")
    try:
        mixtures = read_style_mixtures(getattr(model, "file_metadata", None) or {})
    except StyleError as e:
        raise GenerateError(str(e)) from None
    fixed = {}
    if reference is not None:
        if encoder is None:
            raise GenerateError("a reference image needs the model's style encoder (load_style_encoder)")
        fixed = reference_styles(model, encoder, reference, reference_classes)
    return StylePlan(mixtures, cfg.style_nc, seed=seed, resample=resample, fixed=fixed)


# ---- the loop ---------------------------------------------------------------------------------------

@dataclass
class RunStats:
    """Where the time of a run went: ``frames`` generated, ``seconds`` in all, ``sampler_seconds`` inside the
    network (the rest is decoding, extraction, conversion and writing), ``cuts`` where history restarted."""

    frames: int = 0
    seconds: float = 0.0
    sampler_seconds: float = 0.0
    cuts: list[int] = field(default_factory=list)
    threads: int | None = None          # the network's CPU threads, as :class:`v2v.threads.ThreadTuner` left them

    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def sampler_fps(self) -> float:
        return self.frames / self.sampler_seconds if self.sampler_seconds else 0.0

    def to_dict(self) -> dict:
        return {"frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps(), 3),
                "sampler_seconds": round(self.sampler_seconds, 3), "sampler_fps": round(self.sampler_fps(), 3),
                "cuts": list(self.cuts), "threads": self.threads}


@dataclass
class Generated:
    """One output frame: ``index`` in the source, ``frame`` ``[3, H, W]`` in [-1, 1] on the device (at the
    source's size: padding removed), ``cut``: a shot started here (the history was restarted)."""

    index: int
    frame: torch.Tensor
    cut: bool = False


def generate(model: torch.nn.Module, source: SourceVideo, *, start: int = 0, max_frames: int = 0,
             first_frame: torch.Tensor | None = None, style: Any = None, device: str | torch.device = "cpu",
             precision: str = "fp32", seed: int = 0, shots: ShotOptions | None = ShotOptions(),
             progress: Progress | None = None, stats: RunStats | None = None,
             compile: bool = False, read_ahead: int = READ_AHEAD) -> Iterator[Generated]:
    """Stream ``source`` (already :func:`prepare_source`'d, or made for this model) through ``model``: yields one
    :class:`Generated` per source frame of ``start .. start + max_frames - 1``.

    ``first_frame``: real frame(s) as an IMAGE ``[k, H, W, 3]`` (the first shot starts from them).  ``style``: see
    ``_style_getter``; ``seed`` draws the styles of a style model given none.  ``shots``: where history restarts
    (None: never).  ``progress(done, total)`` runs after each frame and may raise to
    stop (ComfyUI's interrupt).  ``stats`` collects the timings.  ``read_ahead``: source frames decoded and
    extracted ahead in a second thread while the network works (0: one after the other, in this thread)."""
    cfg = model.cfg
    frames = frame_range(source, start, max_frames)
    check_channels(cfg, source)
    size = (int(source.height), int(source.width))
    pad = Padding.to_multiple(size, cfg.size_multiple, cfg.min_frame_side)
    styles = _style_getter(style, model, frames.stop, seed)
    real = _first_frames(first_frame, cfg, size)
    check_generation_memory(model, (size[0] + pad.top + pad.bottom, size[1] + pad.left + pad.right), device, precision)
    try:
        sampler = StreamingSampler(model, device=device, precision=precision,
                                   first_frame=None if real is None else pad.pad(real), compile=compile)
    except (ValueError, RuntimeError) as e:
        raise GenerateError(str(e)) from None
    stats = stats if stats is not None else RunStats()
    t0 = time.perf_counter()
    stream = read_ahead_of(source.frames(frames.start, frames.stop, shots=shots or ShotOptions(detect=False)),
                           read_ahead)
    # the source extracted beside the network on a CPU: measure how many threads the network should keep
    tuner = ThreadTuner() if read_ahead > 0 and torch.device(device).type == "cpu" else None
    try:
        for done, f in enumerate(stream, start=1):
            if f.cut:
                sampler.reset(first_frame=False)
                stats.cuts.append(f.index)
            sty = styles(f)
            ts = time.perf_counter()
            try:
                out = sampler.step(pad.pad(f.tensor), style=None if sty is None else pad.pad(sty))
            except torch.OutOfMemoryError as e:                 # the estimate is a lower bound: the rest lands here
                raise GenerateError(f"out of {torch.device(device).type.upper()} memory at frame {f.index} "
                                    f"({size[1]}x{size[0]}): generate at a smaller size or crop the video") from e
            except RuntimeError as e:
                if "allocate" not in str(e):
                    raise
                raise GenerateError(f"out of memory at frame {f.index} ({size[1]}x{size[0]}): generate at a smaller "
                                    "size or crop the video") from None
            if not bool(torch.isfinite(out).all()):   # also waits for the GPU, so the timing below is true
                raise GenerateError(
                    f"the generator produced NaN/inf at frame {f.index}: the model's weights are broken (a diverged "
                    f"training run){' or bf16 overflowed: try precision fp32' if precision == 'bf16' else ''}")
            stats.sampler_seconds += time.perf_counter() - ts
            stats.frames += 1
            stats.seconds = time.perf_counter() - t0
            yield Generated(f.index, pad.crop(out[0]), f.cut)
            if progress is not None:
                progress(done, len(frames))
            if tuner is not None:
                tuner.tick()
                stats.threads = tuner.chosen
    finally:   # now, not when collected (a traceback can hold this frame): stops the thread, frees the extractor
        stream.close()
        if tuner is not None:
            tuner.close()
    stats.seconds = time.perf_counter() - t0


def generate_images(model: torch.nn.Module, source: SourceVideo, *, start: int = 0, max_frames: int = 0,
                    available: int | None = None, **kwargs) -> torch.Tensor:
    """All frames as a ComfyUI IMAGE ``[T, H, W, 3]`` float32 on the CPU (refused up front if it would not fit)."""
    frames = frame_range(source, start, max_frames)
    check_channels(model.cfg, source)
    check_ram(len(frames), int(source.height), int(source.width), available=available)
    out = torch.empty((len(frames), int(source.height), int(source.width), 3), dtype=torch.float32)
    with closing(generate(model, source, start=start, max_frames=max_frames, **kwargs)) as generated:
        for i, g in enumerate(generated):
            out[i] = g.frame.detach().float().clamp(-1, 1).add(1).mul(0.5).permute(1, 2, 0).cpu()
    return out


@dataclass
class VideoResult:
    """What :func:`generate_to_file` wrote: ``path``, ``frames`` written, ``fps``, ``size`` (W, H), a ``preview``
    IMAGE ``[k, H, W, 3]`` of ``preview_indices`` (frame indices into the written video) and the run's ``stats``."""

    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    preview: torch.Tensor
    preview_indices: list[int]
    stats: RunStats


def preview_indices(n: int, k: int) -> list[int]:
    """``k`` frame indices spread evenly over ``0..n-1`` (first and last included)."""
    from .sources.base import spread

    return spread(n, k)


class PartialOutput(GenerateError):
    """The source failed part-way; the frames generated before it are in ``result``'s file."""

    def __init__(self, message: str, result: VideoResult) -> None:
        super().__init__(message)
        self.result = result


def generate_to_file(model: torch.nn.Module, source: SourceVideo, path: str | Path, *, start: int = 0,
                     max_frames: int = 0, fps: float | None = None, preview_frames: int = DEFAULT_PREVIEW_FRAMES,
                     crf: int = 18, write_behind: int = WRITE_BEHIND, **kwargs) -> VideoResult:
    """Stream every generated frame into the video ``path`` (.mp4/.mkv/.mov, or a folder of PNGs); memory
    stays flat.  Returns a :class:`VideoResult` with a few preview frames.  When the source fails part-way
    (a truncated or corrupt video), the frames made so far are finished into ``path`` and
    :class:`PartialOutput` says how many; an interrupt (or any other error) leaves no file.  ``write_behind``:
    frames that may wait for the encoder, which runs in a second thread while the network works (0: in turn)."""
    frames = frame_range(source, start, max_frames)
    check_channels(model.cfg, source)
    fps = float(fps or getattr(source, "fps", 0) or 25.0)
    keep = set(preview_indices(len(frames), preview_frames))
    kept: list[torch.Tensor] = []
    stats = kwargs.pop("stats", None) or RunStats()
    failure = None
    with VideoWriter(path, fps=fps, crf=crf) as writer:
        try:
            with WriteBehind(writer.write, write_behind) as encoder:
                try:
                    with closing(generate(model, source, start=start, max_frames=max_frames, stats=stats,
                                          **kwargs)) as generated:
                        for i, g in enumerate(generated):
                            rgb = model_to_uint8(g.frame)    # here: torch kernels stay in the network's thread
                            encoder.put(rgb)
                            if i in keep:
                                kept.append(torch.from_numpy(rgb).float().div_(255.0))
                except (SourceError, VideoError) as e:
                    failure = e                  # keep what was made: the encoder drains, the writer finishes
                drained_from = time.perf_counter()
            stats.seconds += time.perf_counter() - drained_from     # the last frames' encoding is part of the run
        except VideoError as e:                  # the writer's, raised as the encoder drained
            failure = e
        if failure is not None and writer.count == 0:
            raise GenerateError(str(failure)) from None
    preview = torch.stack(kept) if kept else torch.zeros((0, int(source.height), int(source.width), 3))
    result = VideoResult(path=Path(path), frames=writer.count, fps=fps, size=(int(source.width), int(source.height)),
                         preview=preview, preview_indices=sorted(k for k in keep if k < writer.count), stats=stats)
    if failure is not None:
        raise PartialOutput(f"{failure}; stopped there: the {writer.count} frames generated before it are in {path}",
                            result)
    return result


def frames_uint8(generated: Iterator[Generated]) -> Iterator[np.ndarray]:
    """uint8 RGB ``[H, W, 3]`` of each generated frame (as a saved video holds them)."""
    for g in generated:
        yield model_to_uint8(g.frame)
