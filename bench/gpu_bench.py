"""Generator speed and memory on a CUDA card (random weights: speed does not depend on them).

    python bench/gpu_bench.py --out bench/results/gpu_<card>.jsonl
    python bench/gpu_bench.py --device cpu --smoke --out /tmp/smoke.jsonl     # the smallest case, any machine

For each (preset, resolution, scales) and precision it streams frames through ``StreamingSampler``
(the code path the CLI and the ComfyUI node use) and reports frames per second after warm-up, plus
peak GPU memory.  A long run checks that memory does not grow with video length.
Precisions: fp32 (TF32 off), tf32 (TF32 matmul/conv), bf16 (autocast); ``_cl`` adds channels_last (bf16_cl,
fp32_cl); a mode ending in ``_compile`` (e.g. ``tf32_compile``) runs the sampler's compiled step (CUDA graphs on a
card), its compile done in the warm-up frames.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from v2v.model.config import preset
from v2v.model.generator import Vid2VidGenerator
from v2v.sampler import StreamingSampler


def build(preset_name: str, n_scales: int) -> Vid2VidGenerator:
    # Cityscapes layout: 35 labels + instance edge, car (26) as foreground, as in the paper's street model
    cfg = preset(preset_name, input_nc=36, label_nc=35, n_scales=n_scales, foreground=True, fg_label_ids=(26,))
    return Vid2VidGenerator(cfg)


def label_frames(n: int, h: int, w: int, device) -> list[torch.Tensor]:
    ids = torch.randint(0, 35, (1, 1, h // 16, w // 16), device=device)
    ids = torch.nn.functional.interpolate(ids.float(), size=(h, w), mode="nearest").long()[0, 0]
    frames = []
    for t in range(n):
        rolled = torch.roll(ids, shifts=t, dims=1)
        onehot = torch.nn.functional.one_hot(rolled, 35).permute(2, 0, 1).float()
        frames.append(torch.cat([onehot, torch.zeros(1, h, w, device=device)]))
    return frames


def set_precision(mode: str) -> None:
    tf32 = mode.startswith("tf32")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def channels_last(mode: str) -> bool:
    """Whether a mode runs the model in channels_last: a ``cl`` part (bf16_cl, fp32_cl, bf16_cl_compile)."""
    return "cl" in mode.split("_")


def run_case(preset_name, w, h, n_scales, mode, n_frames=30, warmup=6, device="cuda"):
    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    set_precision(mode)
    with torch.device(device):  # build on the card: initialising 0.4 G parameters on the CPU takes seconds
        model = build(preset_name, n_scales)
    if channels_last(mode):
        model = model.to(memory_format=torch.channels_last)
    compile = mode.endswith("_compile")
    sampler = StreamingSampler(model, device=device, precision="bf16" if mode.startswith("bf16") else "fp32",
                               compile=compile)
    warmup = max(warmup, model.cfg.n_past + 3) if compile else warmup   # compile, then CUDA graph recording
    frames = label_frames(warmup + n_frames, h, w, device)
    for f in frames[:warmup]:
        sampler.step(f)
    sync(device)
    t0 = time.perf_counter()
    for f in frames[warmup:]:
        sampler.step(f)
    sync(device)
    dt = time.perf_counter() - t0
    return {"preset": preset_name, "size": f"{w}x{h}", "n_scales": n_scales, "mode": mode,
            "fps": round(n_frames / dt, 2),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}


def long_run(preset_name, w, h, n_frames, device="cuda", first_mark=100):
    """Frames per second over a long stream and, on CUDA, whether allocated memory grows with its length."""
    cuda = device == "cuda"
    set_precision("tf32")
    with torch.device(device):
        model = build(preset_name, 1)
    sampler = StreamingSampler(model, device=device, precision="bf16" if cuda else "fp32")
    frames = label_frames(8, h, w, device)
    mem = {}
    t0 = time.perf_counter()
    for t in range(n_frames):
        sampler.step(frames[t % 8])
        if cuda and t + 1 in (first_mark, n_frames // 2, n_frames):
            sync(device)
            mem[t + 1] = torch.cuda.memory_allocated()
    return {"long_run": preset_name, "size": f"{w}x{h}", "frames": n_frames,
            "fps": round(n_frames / (time.perf_counter() - t0), 1),
            "allocated_bytes_at": mem, "growth_bytes": mem[n_frames] - mem[first_mark] if cuda else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="fewer cases")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--smoke", action="store_true",
                    help="the smallest case only (compact, 64x32, 2 frames; a 12-frame long run): checks the script")
    args = ap.parse_args(argv)
    card = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    cases = [("paper", 512, 256, 1, m) for m in ("fp32", "tf32", "bf16", "bf16_cl")]
    cases += [("paper", 1024, 512, 2, m) for m in ("tf32", "bf16")]
    cases += [("paper", 2048, 1024, 3, "bf16")]
    cases += [("compact", 512, 256, 1, m) for m in ("tf32", "bf16")]
    cases += [("compact", 1024, 512, 2, "bf16")]
    cases += [("fast", 512, 256, 1, "bf16"), ("fast", 1024, 512, 2, "bf16"), ("fast", 2048, 1024, 3, "bf16")]
    if args.quick:
        cases = cases[:3]
    frames, long = (dict(n_frames=2, warmup=1), ("compact", 64, 32, 12)) if args.smoke else ({}, ("compact", 512, 256, 2000))
    if args.smoke:
        cases = [("compact", 64, 32, 1, "fp32")]
    with open(args.out, "w") as fh:
        for case in cases:
            row = {"card": card, "torch": torch.__version__, **run_case(*case, **frames, device=args.device)}
            print(json.dumps(row), flush=True)
            fh.write(json.dumps(row) + "\n")
        row = {"card": card, **long_run(*long, device=args.device, first_mark=min(100, long[3] // 4))}
        print(json.dumps(row), flush=True)
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
