"""The generator on a CPU in the default memory format against the whole network in channels_last: milliseconds per
frame and each one's distance from the same network in float64; and the normalisation kernels alone.

    python bench/channels_last_accuracy.py --out bench/results/channels_last_accuracy_cpu.json   # ~1 minute
    python bench/channels_last_accuracy.py --smoke --out /tmp/cl.json                            # checks the script

Each shipped model at its training size, random inputs, one process: the two layouts alternate (``--repeats`` rounds
of ``--frames`` frames, medians).  channels_last here means the weights converted with ``.to(memory_format=...)``,
which makes oneDNN run every convolution, pad and norm after it in that layout.  Errors are the largest absolute
difference from the float64 network on one frame (outputs in [-1, 1]; the flow in units of its head, i.e. divided by
its pixel multiplier).  The op rows feed ``group_norm`` and ``instance_norm`` a map of mean 5 and standard deviation
0.1, where a one-pass variance loses its digits.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import run_context, write_report  # noqa: E402
from v2v.model.checkpoint import load_generator, training_frame_size  # noqa: E402

LAYOUTS = {"default": torch.contiguous_format, "channels_last": torch.channels_last}


def errors_from_float64(model, nets: dict, src, prev) -> dict[str, float]:
    """Per layout: the largest distance of frame and flow from the float64 network on the same inputs."""
    with torch.inference_mode():
        exact = copy.deepcopy(model).double()(src.double(), prev.double())
        out = {}
        for name, net in nets.items():
            got = net(src, prev)
            out[f"{name}_frame_err"] = (got.frame.double() - exact.frame).abs().max().item()
            out[f"{name}_flow_err"] = (got.flow.double() - exact.flow).abs().max().item() / model.cfg.flow_scale
    return out


def timings(nets: dict, src, prev, frames: int, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for net in nets.values():
            net(src, prev)
        for _ in range(repeats):
            for name, net in nets.items():
                t0 = time.perf_counter()
                for _ in range(frames):
                    net(src, prev)
                times[name].append(1000 * (time.perf_counter() - t0) / frames)
    return {f"{name}_ms": round(statistics.median(v), 1) for name, v in times.items()}


def norm_rows() -> list[dict]:
    torch.manual_seed(0)
    x = torch.randn(1, 24, 120, 160) * 0.1 + 5
    weight, bias = torch.rand(24) + 0.5, torch.randn(24)
    exact = F.group_norm(x.double(), 24, weight.double(), bias.double())
    calls = {"group_norm": lambda t: F.group_norm(t, 24, weight, bias),
             "instance_norm": lambda t: F.instance_norm(t, weight=weight, bias=bias)}
    return [{"op": op, "layout": name, "max_abs_err": (call(x.contiguous(memory_format=layout)).double() - exact)
             .abs().max().item()} for op, call in calls.items() for name, layout in LAYOUTS.items()]


def model_rows(smoke: bool, frames: int, repeats: int) -> list[dict]:
    rows = []
    for name in ["body"] if smoke else ["street", "face", "body"]:
        path = ROOT / "models" / "vid2vid" / f"{name}.safetensors"
        model = load_generator(path)
        h, w = (32, 32) if smoke else training_frame_size(path)
        cfg = model.cfg
        torch.manual_seed(0)
        src = torch.rand(1, cfg.n_past + 1, cfg.input_nc, h, w)
        prev = torch.rand(1, cfg.n_past, cfg.output_nc, h, w) * 2 - 1
        nets = {name: copy.deepcopy(model).to(memory_format=layout) for name, layout in LAYOUTS.items()}
        row = {"model": name, "size": f"{w}x{h}", **timings(nets, src, prev, frames, repeats),
               **errors_from_float64(model, nets, src, prev)}
        row["speedup"] = round(row["default_ms"] / row["channels_last_ms"], 3)
        rows.append(row)
    return rows


def markdown(models: list[dict], norms: list[dict]) -> str:
    lines = ["| model, size | ms/frame default / channels_last | frame error vs float64 (default / channels_last) |",
             "|---|---|---|"]
    lines += [f"| {r['model']}, {r['size']} | {r['default_ms']} / {r['channels_last_ms']} ({r['speedup']}x) | "
              f"{r['default_frame_err']:.1e} / {r['channels_last_frame_err']:.1e} |" for r in models]
    lines += ["", "| op, layout | error vs float64 (mean 5, std 0.1) |", "|---|---|"]
    lines += [f"| {r['op']}, {r['layout']} | {r['max_abs_err']:.1e} |" for r in norms]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="body at 32x32, 2 rounds of 1 frame (checks the script)")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--machine", default=f"CPU ({torch.get_num_threads()} threads)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    frames, repeats = (1, 2) if a.smoke else (a.frames, a.repeats)
    models, norms = model_rows(a.smoke, frames, repeats), norm_rows()
    report = {**run_context(a.machine, "bench/channels_last_accuracy.py", argv), "models": models, "norms": norms,
              "markdown": markdown(models, norms)}
    write_report(Path(a.out), report)
    print(report["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
