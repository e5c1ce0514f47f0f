"""8-bit convolutions on a CPU (``precision="int8"``): the generator's trunk and stem convolutions in int8.

x86 CPUs with VNNI (``avx512_vnni`` / ``avx_vnni``) multiply 8-bit integers several times as fast as float32 (AVX2
alone less so: the generator gained 1.1-1.6x on a Zen 3 against 1.37-1.54x with VNNI), and after the eager fast
paths a frame's cost is the convolutions themselves (bench/NOTES.md, "int8 on a CPU").
:func:`int8_network` copies the generator with each such convolution replaced by :class:`Int8Conv2d`, oneDNN's int8
convolution (``torch.ops.onednn``, the kernels PyTorch's own x86 quantisation lowers to): weights quantised once,
symmetrically per output channel; each input quantised to 8 bits over its own range, per call, so nothing is
calibrated and no content can fall outside a range measured earlier (ranges measured on one shot fitted another
badly: bench/NOTES.md).  Norms, transposed convolutions, the output heads, the flow warp and the blend stay
float32.  Nothing is compiled: no compiler, no wait.
"""
from __future__ import annotations

import copy
import functools
import math
import platform

import torch
import torch.nn.functional as F
from torch import nn

from .model.layers import OutputConv

_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def int8_problem(device: torch.device) -> str | None:
    """Why int8 cannot run here, with the fix; None when it can."""
    if device.type != "cpu":
        return f"precision int8 runs on a CPU only (x86 oneDNN kernels); on {device.type} use fp32 or bf16"
    onednn = torch.backends.mkldnn.is_available()
    if platform.machine().lower() not in _X86 or not onednn:
        return (f"precision int8 needs an x86 CPU and a PyTorch built with oneDNN (this is {platform.machine()}, "
                f"oneDNN {'on' if onednn else 'off'}): use fp32")
    if not hasattr(torch.ops.onednn, "qconv2d_pointwise"):
        return f"precision int8 needs oneDNN's int8 convolution, which torch {torch.__version__} lacks: use fp32"
    return None


def quantisable(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The convolutions that run in int8: every ``nn.Conv2d`` but the output heads' (the frame, flow and mask keep
    full precision; they are not called as modules either) and transposed ones (no int8 kernel used here)."""
    heads = {id(m[1]) for m in model.modules() if isinstance(m, OutputConv)}
    return {name: m for name, m in model.named_modules() if type(m) is nn.Conv2d and id(m) not in heads}


def full_range_error() -> float:
    """Mean relative error against float32 of a test convolution with inputs over the whole uint8 range."""
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(16, 16, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.rand(conv.weight.shape, generator=g) * 2 - 1)
        conv.bias.zero_()
    x = torch.rand(1, 16, 12, 12, generator=g) * 4 - 1
    with torch.inference_mode():
        ref, out = conv(x), Int8Conv2d(conv, levels=255)(x)
    return ((out - ref).abs().mean() / ref.abs().mean()).item()


@functools.cache
def activation_levels() -> int:
    """The top of the inputs' uint8 range: 255, or 127 where oneDNN's int8 kernels add products in int16 that
    saturate (x86 without VNNI: AVX2 adds two u8 x s8 products into one int16).  There inputs over the whole range
    came out 11-14 % off float32, over 7 bits 0.7 % (bench/NOTES.md, "int8 without VNNI").  Measured once per
    process on a test convolution (a few milliseconds) rather than read from CPU flags, which differ by OS."""
    return 255 if full_range_error() < 0.03 else 127


class Int8Conv2d(nn.Module):
    """``conv`` as oneDNN's int8 convolution: weights int8 per output channel (symmetric), packed once; each input
    uint8 over its own range (per tensor, widened to hold 0; ``levels``: the top of the range, default
    :func:`activation_levels`); float32 out, in channels_last."""

    def __init__(self, conv: nn.Conv2d, levels: int | None = None) -> None:
        super().__init__()
        self.levels = int(levels or activation_levels())
        w = conv.weight.detach().float()
        w_scale = (w.abs().amax(dim=(1, 2, 3)) / 127.0).clamp_min(1e-12)
        qw = torch.round(w / w_scale.view(-1, 1, 1, 1)).clamp_(-127, 127).to(torch.int8)
        self.geometry = (list(conv.stride), list(conv.padding), list(conv.dilation), conv.groups)
        self.register_buffer("w_scale", w_scale, persistent=False)
        self.register_buffer("w_zero_point", torch.zeros(w.shape[0], dtype=torch.long), persistent=False)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float(), persistent=False)
        self.register_buffer("weight", w, persistent=False)     # for inputs with no range (NaN/inf): see forward
        stride, padding, dilation, groups = self.geometry
        # the packed weights do not depend on the input's scale and zero point (checked): any per call will do
        self.packed = torch.ops.onednn.qconv_prepack(qw, w_scale, 1.0, 0, stride, padding, dilation, groups, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        low, high = torch.aminmax(x.permute(0, 2, 3, 1).reshape(-1))   # flat: faster than on the 4-D view
        low, high = min(low.item(), 0.0), max(high.item(), 0.0)
        stride, padding, dilation, groups = self.geometry
        if not (math.isfinite(low) and math.isfinite(high)):   # NaN/inf from broken weights: passed on to the
            return F.conv2d(x, self.weight, self.bias, stride, padding, dilation, groups)   # pipeline, which says so
        scale = max((high - low) / self.levels, 1e-12)
        zero_point = round(-low / scale)
        # round(x / scale) + zero point: the cast truncates, so +0.5 rounds (ties up); clamp for rounding at the ends
        qx = torch.add(x.new_tensor(zero_point + 0.5), x, alpha=1.0 / scale).clamp_(0, self.levels).to(torch.uint8)
        return torch.ops.onednn.qconv2d_pointwise(qx, scale, zero_point, self.packed, self.w_scale, self.w_zero_point,
                                                  self.bias, stride, padding, dilation, groups, 1.0, 0, torch.float32,
                                                  "none", [], "")


def int8_network(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (float32, on the CPU) whose :func:`quantisable` convolutions are :class:`Int8Conv2d`; the
    model itself is left as it was."""
    clone = copy.deepcopy(model).float().eval()
    for name, conv in quantisable(clone).items():
        parent_name, _, child = name.rpartition(".")
        parent = clone.get_submodule(parent_name) if parent_name else clone
        setattr(parent, child, Int8Conv2d(conv))
    return clone
