"""Our generator side by side with the original vid2vid generator (NVIDIA/vid2vid), in one process, alternating.

    git clone https://github.com/NVIDIA/vid2vid .cache/original-vid2vid   # CC BY-NC-SA 4.0: read from there,
                                                                          #   never copied into this repository
    python bench/vs_original.py --original .cache/original-vid2vid --device cpu --cases 256x128
    python bench/vs_original.py --original .cache/original-vid2vid --device cuda \\
        --cases 512x256,1024x512:2,2048x1024:3 --precision fp32,bf16 --out bench/results/vs_original_<card>.jsonl

Both generators are built at the paper's Cityscapes street layout (35 labels + the instance-edge channel, 3 input
frames, ngf 128, 3 downsamplings, 9 blocks, 3 local blocks per finer scale, instance normalisation, the foreground
prior on label 26), random weights, and generate one non-first frame per call, each the way it runs at test time:

* the original through its own ``models/networks.py`` (loaded from the checkout by path), its scales chained
  coarse to fine as its ``Vid2VidModelG.generate_frame_infer`` chains them, modules left in training mode under
  ``no_grad`` as its ``test.py`` leaves them.  Its code calls ``.cuda()`` unconditionally; on a CPU those calls
  are made no-ops while it runs (nothing else of it is changed);
* ours through ``Vid2VidGenerator`` in eval mode (the ``paper`` preset).

Calls alternate original/ours after a warm-up of each; the medians and their ratio (original / ours: above 1 ours
is faster) are printed and written as JSON lines with the machine, versions and date.  Compare rows of one run only.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import platform
import statistics
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gpu_bench import sync  # noqa: E402
from v2v.model.config import preset  # noqa: E402
from v2v.model.generator import Vid2VidGenerator, downsample  # noqa: E402

LABELS, FG_LABEL, FRAMES = 35, 26, 3           # Cityscapes ids + instance edges; car; n_frames_G (L = 2)
INPUT_NC = LABELS + 1


def load_original_networks(checkout: Path):
    """The original's ``models/networks.py`` as a module, loaded by path (its package __init__ is not run)."""
    path = Path(checkout) / "models" / "networks.py"
    if not path.is_file():
        raise SystemExit(f"{path} not found: --original must be a checkout of https://github.com/NVIDIA/vid2vid "
                         "(git clone https://github.com/NVIDIA/vid2vid .cache/original-vid2vid)")
    spec = importlib.util.spec_from_file_location("original_vid2vid_networks", path)
    module = importlib.util.module_from_spec(spec)
    if importlib.util.find_spec("torchvision") is None:
        # it imports torchvision.models for its VGG loss only, which the generator never touches
        shim = types.ModuleType("torchvision")
        shim.models = types.ModuleType("torchvision.models")
        sys.modules.setdefault("torchvision", shim)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def cuda_calls_are_no_ops(device: torch.device):
    """On a CPU, Tensor.cuda() returns the tensor itself while the original's code runs."""
    if device.type == "cuda":
        yield
        return
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved


class OriginalGenerator:
    """The original's coarse-to-fine composite generators, chained as its inference chains them."""

    def __init__(self, networks, n_scales: int, norm: str, device: torch.device) -> None:
        opt = SimpleNamespace(n_blocks=9, n_blocks_local=3, fg=True, no_flow=False, fp16=False, n_local_enhancers=1)
        net_input_nc, prev_nc = INPUT_NC * FRAMES, (FRAMES - 1) * 3
        self.nets = [networks.define_G(net_input_nc, 3, prev_nc, 128 // 2**s, "composite" + ("Local" if s else ""),
                                       3, norm, s, [], opt).to(device) for s in range(n_scales)]

    def __call__(self, sources: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """sources [1, 3, 36, H, W], prev [1, 2, 3, H, W] -> the frame [1, 3, H, W]."""
        src_pyr, prev_pyr = [sources], [prev]
        for _ in self.nets[1:]:
            src_pyr.append(downsample(src_pyr[-1].flatten(0, 1)).unflatten(0, src_pyr[-1].shape[:2]))
            prev_pyr.append(downsample(prev_pyr[-1].flatten(0, 1)).unflatten(0, prev_pyr[-1].shape[:2]))
        img_feat = flow_feat = fg_feat = frame = None
        for s, net in enumerate(self.nets):
            a, b = src_pyr[-1 - s], prev_pyr[-1 - s]
            h, w = a.shape[-2:]
            mask = a[:, FRAMES - 1:FRAMES, FG_LABEL].clamp(0, 1)[0]
            frame, _, _, _, img_feat, flow_feat, fg_feat = net.forward(
                a[0].reshape(1, -1, h, w), b[0].reshape(1, -1, h, w), mask, img_feat, flow_feat, fg_feat, False)
        return frame


def ours(n_scales: int, norm: str, device: torch.device) -> Vid2VidGenerator:
    cfg = preset("paper", input_nc=INPUT_NC, label_nc=LABELS, n_scales=n_scales, norm=norm, foreground=True,
                 fg_label_ids=(FG_LABEL,))
    with torch.device(device):
        return Vid2VidGenerator(cfg).eval()


def street_inputs(w: int, h: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocky random label maps (one-hot + an empty edge channel) and previous frames."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, LABELS, (FRAMES, 1, max(1, h // 16), max(1, w // 16)), generator=g).float()
    ids = torch.nn.functional.interpolate(ids, size=(h, w), mode="nearest").long()[:, 0]
    onehot = torch.nn.functional.one_hot(ids, LABELS).permute(0, 3, 1, 2).float()
    sources = torch.cat([onehot, torch.zeros(FRAMES, 1, h, w)], 1)[None]
    prev = torch.rand(1, FRAMES - 1, 3, h, w, generator=g) * 2 - 1
    return sources.to(device), prev.to(device)


def timed(fn, device: torch.device) -> float:
    sync(device.type)
    t0 = time.perf_counter()
    fn()
    sync(device.type)
    return time.perf_counter() - t0


def compare(networks, w: int, h: int, n_scales: int, *, precision: str, norm: str, device: torch.device,
            repeats: int, warmup: int) -> dict:
    torch.manual_seed(0)
    original, mine = OriginalGenerator(networks, n_scales, norm, device), ours(n_scales, norm, device)
    sources, prev = street_inputs(w, h, device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())

    def run_original():
        with cuda_calls_are_no_ops(device), autocast, torch.no_grad():
            return original(sources, prev)

    def run_ours():
        with autocast, torch.no_grad():
            return mine(sources, prev).frame

    shapes = (tuple(run_original().shape), tuple(run_ours().shape))
    if shapes[0] != shapes[1]:
        raise RuntimeError(f"the two generators disagree on the output: {shapes}")
    for _ in range(warmup - 1):
        run_original(), run_ours()
    times: dict[str, list[float]] = {"original": [], "ours": []}
    for _ in range(repeats):
        times["original"].append(timed(run_original, device))
        times["ours"].append(timed(run_ours, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    params = {"original": sum(p.numel() for n in original.nets for p in n.parameters()),
              "ours": sum(p.numel() for p in mine.parameters())}
    return {"size": f"{w}x{h}", "n_scales": n_scales, "precision": precision, "norm": norm,
            "original_s": round(med["original"], 4), "ours_s": round(med["ours"], 4),
            "ratio_original_over_ours": round(med["original"] / med["ours"], 3),
            "original_fps": round(1 / med["original"], 2), "ours_fps": round(1 / med["ours"], 2),
            "params_millions": {k: round(v / 1e6, 1) for k, v in params.items()},
            "repeats": repeats, "spread_s": {k: [round(min(v), 4), round(max(v), 4)] for k, v in times.items()}}


def machine(device: torch.device) -> dict:
    card = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    return {"machine": card, "torch": torch.__version__, "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


def parse_cases(text: str) -> list[tuple[int, int, int]]:
    """"512x256,2048x1024:3" -> [(512, 256, 1), (2048, 1024, 3)] (width, height, scales)."""
    cases = []
    for item in filter(None, text.split(",")):
        size, _, scales = item.partition(":")
        w, h = map(int, size.lower().split("x"))
        cases.append((w, h, int(scales or 1)))
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--original", required=True, help="a checkout of https://github.com/NVIDIA/vid2vid")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cases", default="256x128", help="WxH[:scales],... (default 256x128, one scale)")
    ap.add_argument("--precision", default="fp32", help="fp32 and/or bf16 (autocast on both), comma-separated")
    ap.add_argument("--norm", default="instance", choices=("instance", "batch"), help="both generators")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each, alternating")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", help="append the rows here as JSON lines")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda":              # the same matmul/conv settings for both: TF32 as PyTorch allows it
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    networks = load_original_networks(Path(a.original))
    context = machine(device)
    for w, h, n_scales in parse_cases(a.cases):
        for precision in a.precision.split(","):
            row = {**context, **compare(networks, w, h, n_scales, precision=precision, norm=a.norm, device=device,
                                        repeats=a.repeats, warmup=a.warmup)}
            print(json.dumps(row), flush=True)
            if a.out:
                with open(a.out, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
