"""Streaming inference: feed one source frame, get the next output frame.

The generator F needs a window of the last L+1 sources and the last L outputs.  A
:class:`StreamingSampler` keeps exactly those, in ``deque(maxlen=L)``, so memory is
flat however long the video is.  No I/O here: the CLI and the ComfyUI node feed it.

First frames (paper Sec. 3 / IMPLEMENTATION_NOTES "Previous frames"): at test time the
first frame is either REAL or generated from nothing.

* ``first_frame`` given (``[3, H, W]`` or ``[k, 3, H, W]`` with ``1 <= k <= L``, in [-1, 1]):
  those real frames ARE the outputs for the first k sources; ``step`` returns them
  unchanged for sources 0..k-1 and generates from source k on.  Until L outputs exist the
  output history is padded by repeating the oldest real frame.
* no ``first_frame``: frame 0 is generated from zero previous frames, and frames 0..L-1
  are generated with the mask forced to 1 (pure hallucination; nothing trustworthy to
  warp yet, the previous-frame history is padded by repeating the oldest generated frame).

In both cases the source history is padded by repeating the first source until L past
sources exist.  Returned frames stay on ``device`` (float32, ``[1, 3, H, W]``); move them
yourself (``.cpu()``) if you need them elsewhere.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import torch

from .sources.labels import instance_boundary

PRECISIONS = ("fp32", "bf16")


def _as_frame(x: torch.Tensor, name: str) -> torch.Tensor:
    """[C, H, W] or [1, C, H, W] -> [1, C, H, W]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() == 4 and x.shape[0] == 1:
        return x
    raise ValueError(f"{name} must be [C, H, W] or [1, C, H, W] (one frame), got {tuple(x.shape)}")


class StreamingSampler:
    """Run a Vid2VidGenerator frame by frame with O(L) state.

    Parameters:
        model: a ``Vid2VidGenerator`` (put in eval mode here; its weights are not copied).
        device: where the model runs and where returned frames live (the model is moved there).
        precision: ``"fp32"`` (default) or ``"bf16"`` (autocast; on CUDA, or on CPU where supported).
            History and outputs are kept in float32 either way.
        seed: seeds the RNG around every step (frame t uses ``seed + t``), so any stochastic part of
            the model or of a style sampler driven by ``self.generator`` is reproducible.
        first_frame: optional real frame(s) ``[3, H, W]`` or ``[k, 3, H, W]`` (k <= L) in [-1, 1]:
            see the module docstring.
    """

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu", precision: str = "fp32",
                 seed: int = 0, first_frame: torch.Tensor | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available here; use device='cpu'")
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.precision = precision
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        L = self.cfg.n_past
        self.sources: deque[torch.Tensor] = deque(maxlen=L)   # last L sources, oldest first
        self.styles: deque[torch.Tensor] = deque(maxlen=L)    # last L style maps (style_nc > 0 only)
        self.outputs: deque[torch.Tensor] = deque(maxlen=L)   # last L outputs, oldest first
        self.frame_index = 0                                  # sources seen so far
        self.size: tuple[int, int] | None = None              # (H, W) fixed by the first frame
        self._real: list[torch.Tensor] = []
        if first_frame is not None:
            self._real = self._check_first_frame(first_frame)

    # ---- validation --------------------------------------------------------------------------
    def _check_size(self, h: int, w: int, what: str) -> None:
        m = self.cfg.size_multiple
        if h % m or w % m:
            fix = f"{max(m, w // m * m)}x{max(m, h // m * m)}"
            raise ValueError(f"{what} is {w}x{h} (WxH) but this model needs width and height that are multiples "
                             f"of {m}; resize or crop the frames, e.g. to {fix}")
        if self.size is None:
            self.size = (h, w)
        elif self.size != (h, w):
            eh, ew = self.size
            raise ValueError(f"{what} is {w}x{h} (WxH) but earlier frames were {ew}x{eh}; every frame of a "
                             "stream must have the same size (resize them all alike)")

    def _check_first_frame(self, first: torch.Tensor) -> list[torch.Tensor]:
        if not isinstance(first, torch.Tensor):
            raise TypeError(f"first_frame must be a torch.Tensor, got {type(first).__name__}")
        if first.dim() == 3:
            first = first.unsqueeze(0)
        L, nc = self.cfg.n_past, self.cfg.output_nc
        if first.dim() != 4 or first.shape[1] != nc or not 1 <= first.shape[0] <= L:
            raise ValueError(f"first_frame must be [{nc}, H, W] or [k, {nc}, H, W] with 1 <= k <= L={L}, "
                             f"got {tuple(first.shape)}")
        lo, hi = float(first.min()), float(first.max())
        if lo < -1.001 or hi > 1.001:
            raise ValueError(f"first_frame values must be in [-1, 1], got [{lo:.3g}, {hi:.3g}] "
                             "(convert 0..1 images with x * 2 - 1, uint8 with x / 127.5 - 1)")
        self._check_size(first.shape[-2], first.shape[-1], "first_frame")
        return [f.unsqueeze(0).to(self.device, torch.float32) for f in first]

    def _prepare_source(self, source: torch.Tensor, instance: torch.Tensor | None) -> torch.Tensor:
        cfg = self.cfg
        source = _as_frame(source, "source").to(self.device, torch.float32, copy=True)  # own copy: callers may reuse buffers
        if instance is not None:
            inst = instance.to(self.device)
            while inst.dim() < 4:
                inst = inst.unsqueeze(0)
            if inst.shape[:2] != (1, 1) or inst.shape[-2:] != source.shape[-2:]:
                raise ValueError(f"instance map must be [H, W], [1, H, W] or [1, 1, H, W] matching the source "
                                 f"{tuple(source.shape[-2:])}, got {tuple(instance.shape)}")
            if source.shape[1] == cfg.input_nc - 1 and cfg.label_nc and cfg.input_nc == cfg.label_nc + 1:
                source = torch.cat([source, instance_boundary(inst).float()], dim=1)   # add the boundary channel
        if source.shape[1] != cfg.input_nc:
            hint = ""
            if cfg.label_nc and cfg.input_nc == cfg.label_nc + 1 and source.shape[1] == cfg.label_nc:
                hint = " (labels without the instance-boundary channel: pass instance=...)"
            raise ValueError(f"source has {source.shape[1]} channels but this model takes input_nc={cfg.input_nc} "
                             f"(label_nc={cfg.label_nc}){hint}")
        self._check_size(source.shape[-2], source.shape[-1], "source frame")
        return source

    def _prepare_style(self, style: torch.Tensor | None) -> torch.Tensor | None:
        cfg = self.cfg
        if not cfg.style_nc:
            if style is not None:
                raise ValueError("style given but this model has no style input (style_nc=0)")
            return None
        if style is None:
            raise ValueError(f"this model takes style features: pass style=[{cfg.style_nc}, H, W] every frame")
        style = _as_frame(style, "style").to(self.device, torch.float32, copy=True)
        if style.shape[1] != cfg.style_nc or tuple(style.shape[-2:]) != self.size:
            raise ValueError(f"style must be [{cfg.style_nc}, H, W] with (H, W)={self.size}, got {tuple(style.shape)}")
        return style

    # ---- the step ------------------------------------------------------------------------------
    @staticmethod
    def _window(history: deque, current: torch.Tensor | None, length: int, pad: torch.Tensor) -> torch.Tensor:
        """Stack ``history`` (+ current), padded on the old side by ``pad`` to ``length``: [1, length, C, H, W]."""
        items = list(history) + ([current] if current is not None else [])
        items = [pad] * (length - len(items)) + items
        return torch.stack(items, dim=1)

    def _autocast(self):
        enabled = self.precision == "bf16"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def step(self, source: torch.Tensor, instance: torch.Tensor | None = None,
             style: torch.Tensor | None = None) -> torch.Tensor:
        """Consume one source frame ``[C, H, W]`` or ``[1, C, H, W]``; return output ``[1, 3, H, W]`` in [-1, 1]."""
        L = self.cfg.n_past
        t = self.frame_index
        src = self._prepare_source(source, instance)
        sty = self._prepare_style(style)

        if t < len(self._real):                       # a given real frame is this frame's output
            frame = self._real[t]
        else:
            with torch.inference_mode():
                src_pad = self.sources[0] if self.sources else src
                sources = self._window(self.sources, src, L + 1, src_pad)
                styles = None
                if sty is not None:
                    styles = self._window(self.styles, sty, L + 1, self.styles[0] if self.styles else sty)
                force = False
                if not self.outputs:                   # no history at all: zeros + forced hallucination
                    prev, force = None, True
                else:
                    prev = self._window(self.outputs, None, L, self.outputs[0])
                    force = not self._real and t < L   # warm-up without a real frame
                with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                    torch.manual_seed(self.seed + t)
                    with self._autocast():
                        out = self.model(sources, prev, style=styles, force_hallucinate=force)
                frame = out.frame.float().clamp_(-1, 1)
        self.sources.append(src)
        if sty is not None:
            self.styles.append(sty)
        self.outputs.append(frame)
        self.frame_index += 1
        return frame

    def reset(self) -> None:
        """Forget the history (start a new video); the real first frames, if any, apply again."""
        self.sources.clear()
        self.styles.clear()
        self.outputs.clear()
        self.frame_index = 0
        self.size = None if not self._real else tuple(self._real[0].shape[-2:])
        self.generator.manual_seed(self.seed)


def generate(model: torch.nn.Module, sources: Iterable[torch.Tensor], *,
             instances: Iterable[torch.Tensor | None] | None = None,
             styles: Iterable[torch.Tensor | None] | None = None, **kwargs) -> Iterator[torch.Tensor]:
    """Lazily map source frames to output frames ``[1, 3, H, W]``; ``kwargs`` go to StreamingSampler."""
    sampler = StreamingSampler(model, **kwargs)
    inst_iter = iter(instances) if instances is not None else None
    style_iter = iter(styles) if styles is not None else None
    for source in sources:
        instance = next(inst_iter) if inst_iter is not None else None
        style = next(style_iter) if style_iter is not None else None
        yield sampler.step(source, instance=instance, style=style)
