"""Streaming inference: feed one source frame, get the next output frame.

The generator F needs a window of the last L+1 sources and the last L outputs.  A
:class:`StreamingSampler` keeps exactly those, in ``deque(maxlen=L)``, so memory is
flat however long the video is.  No I/O and no input checks here: :mod:`v2v.pipeline` is the one
generation loop that feeds it (and the one place that checks what a user gives); the network checks
its own tensor contract.

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
sources exist.  :meth:`StreamingSampler.reset` starts a new shot (or video) the same way.
Returned frames stay on ``device`` (float32, ``[1, 3, H, W]``); move them yourself (``.cpu()``)
if you need them elsewhere.

``compile=True`` runs the steady-state step (history full, nothing forced) through ``torch.compile``: on CUDA in
"reduce-overhead" mode, which replays the whole step as one CUDA graph instead of hundreds of kernel launches
from Python; on a CPU through Inductor's C++ kernels (a C++ compiler is needed).  The first L frames of a shot
take other paths through the network and stay eager, so one graph serves the stream.  The first compiled frame
waits for the compiler (Inductor caches the result on disk, so a later run with the same model and size is quicker).
``precision="int8"`` (an x86 CPU) runs that same steady-state step on a copy of the network whose trunk and stem
convolutions are 8-bit (:mod:`v2v.quantize`); the first L frames of a shot stay float32 there too.
"""
from __future__ import annotations

import shutil
from collections import deque

import torch

from .quantize import int8_network, int8_problem

PRECISIONS = ("fp32", "bf16", "int8")


def _as_frame(x: torch.Tensor) -> torch.Tensor:
    """[C, H, W] or [1, C, H, W] -> [1, C, H, W]."""
    return x.unsqueeze(0) if x.dim() == 3 else x


class StreamingSampler:
    """Run a Vid2VidGenerator frame by frame with O(L) state.

    Parameters:
        model: a ``Vid2VidGenerator`` (put in eval mode here; its weights are not copied).
        device: where the model runs and where returned frames live (the model is moved there).
        precision: ``"fp32"`` (default), ``"bf16"`` (autocast; on CUDA, or on CPU where supported) or ``"int8"``
            (an x86 CPU: the steady step's trunk and stem convolutions in 8 bits, :mod:`v2v.quantize`).
            History and outputs are kept in float32 in every case.
        first_frame: optional real frame(s) ``[3, H, W]`` or ``[k, 3, H, W]`` (k <= L) in [-1, 1]:
            see the module docstring.
        compile: ``torch.compile`` the steady-state step (see the module docstring).
    """

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu", precision: str = "fp32",
                 first_frame: torch.Tensor | None = None, compile: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available here; use device='cpu'")
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.precision = precision
        L = self.cfg.n_past
        self.sources: deque[torch.Tensor] = deque(maxlen=L)   # last L sources, oldest first
        self.styles: deque[torch.Tensor] = deque(maxlen=L)    # last L style maps (style_nc > 0 only)
        self.outputs: deque[torch.Tensor] = deque(maxlen=L)   # last L outputs, oldest first
        self.frame_index = 0                                  # sources seen so far (in this shot)
        self._given = [] if first_frame is None else self._check_first_frame(first_frame)
        self._real: list[torch.Tensor] = list(self._given)    # real frames still to apply in this shot
        if precision == "int8":
            problem = int8_problem(self.device)
            if not problem and compile:
                problem = "compile and precision int8 do not combine (the int8 step runs eager): choose one"
            if problem:
                raise RuntimeError(problem)
            self._steady = int8_network(self.model)
        else:
            self._steady = compiled_step(self.model, self.device) if compile else self.model

    def _check_first_frame(self, first: torch.Tensor) -> list[torch.Tensor]:
        first = first.unsqueeze(0) if first.dim() == 3 else first
        L, nc = self.cfg.n_past, self.cfg.output_nc
        if first.dim() != 4 or first.shape[1] != nc or not 1 <= first.shape[0] <= L:
            raise ValueError(f"first_frame must be [{nc}, H, W] or [k, {nc}, H, W] with 1 <= k <= L={L}, "
                             f"got {tuple(first.shape)}")
        return [f.unsqueeze(0).to(self.device, torch.float32) for f in first]

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

    def step(self, source: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Consume one source frame ``[C, H, W]`` or ``[1, C, H, W]`` (and its style features, when the model takes
        them); return the output ``[1, 3, H, W]`` in [-1, 1]."""
        L = self.cfg.n_past
        t = self.frame_index
        src = _as_frame(source).to(self.device, torch.float32, copy=True)  # own copy: callers may reuse buffers
        sty = None if style is None else _as_frame(style).to(self.device, torch.float32, copy=True)

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
                network = self.model if (prev is None or force) else self._steady
                with self._autocast():        # the generator draws no random numbers: nothing to seed per frame
                    out = network(sources, prev, style=styles, force_hallucinate=force)
                # out of place: a CUDA graph's outputs are overwritten by its next replay, and this frame is history
                frame = out.frame.float().clamp(-1, 1)
        self.sources.append(src)
        if sty is not None:
            self.styles.append(sty)
        self.outputs.append(frame)
        self.frame_index += 1
        return frame

    def reset(self, *, first_frame: bool = True) -> None:
        """Forget the history (a new video, or a new shot after a cut).  The real first frames given at
        construction apply again unless ``first_frame=False`` (they belong to the video's first shot)."""
        self.sources.clear()
        self.styles.clear()
        self.outputs.clear()
        self.frame_index = 0
        self._real = list(self._given) if first_frame else []


def cpp_compiler_found() -> bool:
    """Whether Inductor can build its CPU kernels here (a C++ compiler on PATH)."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def compiled_step(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` under ``torch.compile`` for a fixed frame shape: CUDA graphs on a GPU, C++ kernels on a CPU."""
    if device.type == "cpu" and not cpp_compiler_found():
        raise RuntimeError("compile on a CPU needs a C++ compiler (g++ or clang++) on PATH, which was not found: "
                           "install one (Debian/Ubuntu: apt install g++) or run without compile")
    mode = "reduce-overhead" if device.type == "cuda" else None
    return torch.compile(model, mode=mode, dynamic=False)
