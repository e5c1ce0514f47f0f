"""Per-frame FLOPs and parameter count of a generator preset (no weights, no device needed).

    python bench/model_cost.py                      # paper preset, Cityscapes layout, 512x256, 1 scale
    python bench/model_cost.py --size 1024x512 --scales 2

The model is built on PyTorch's meta device, so the count is exact for our architecture and costs no
memory.  FLOPs are torch.utils.flop_counter's count (2 per multiply-add) for one non-first frame; operator
calls are the aten operators that frame dispatches, views left out: each is at least one kernel launch on a
GPU, so they set a floor on the time per frame that no FLOP count shows.
Reference (official vid2vid, measured the same way): 2115 GFLOPs and 411 M parameters at 512x256.
"""
from __future__ import annotations

import argparse
import json

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from v2v.model.config import preset
from v2v.model.generator import Vid2VidGenerator, count_parameters


def _meta_frame(cfg, width: int, height: int):
    """The generator and one non-first frame's inputs on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return (Vid2VidGenerator(cfg), torch.zeros(1, cfg.n_past + 1, cfg.input_nc, height, width),
                torch.zeros(1, cfg.n_past, cfg.output_nc, height, width))


def frame_flops(cfg, width: int, height: int) -> int:
    """FLOPs of one non-first frame of a generator config at ``width`` x ``height`` (counted on the meta device)."""
    model, sources, prev = _meta_frame(cfg, width, height)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(sources, prev)
    return counter.get_total_flops()


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += not func.is_view
        return func(*args, **(kwargs or {}))


def frame_ops(cfg, width: int, height: int) -> int:
    """Aten operator calls (views left out) of one non-first frame, counted on the meta device."""
    model, sources, prev = _meta_frame(cfg, width, height)
    with _CountOps() as counter, torch.no_grad():
        model(sources, prev)
    return counter.calls


def measure(preset_name: str, width: int, height: int, n_scales: int, foreground: bool) -> dict:
    # Cityscapes layout: 35 labels + instance-boundary channel; label 26 = car is foreground
    cfg = preset(preset_name, input_nc=36, label_nc=35, n_scales=n_scales,
                 foreground=foreground, fg_label_ids=(26,) if foreground else ())
    with torch.device("meta"):
        params = count_parameters(Vid2VidGenerator(cfg))
    return {"preset": preset_name, "size": f"{width}x{height}", "n_scales": n_scales, "foreground": foreground,
            "gflops_per_frame": round(frame_flops(cfg, width, height) / 1e9, 1),
            "params_millions": round(params / 1e6, 1), "operator_calls_per_frame": frame_ops(cfg, width, height)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--size", default="512x256", help="WIDTHxHEIGHT")
    ap.add_argument("--scales", type=int, default=1)
    args = ap.parse_args()
    w, h = map(int, args.size.lower().split("x"))
    for fg in (False, True):
        print(json.dumps(measure(args.preset, w, h, args.scales, fg)))


if __name__ == "__main__":
    main()
