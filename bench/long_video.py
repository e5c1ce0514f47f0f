"""Long-video check (issue 6): does quality drift over 2,000+ streamed frames?

    python bench/long_video.py --model models/vid2vid/street.safetensors --frames 2000 --window 100
        [--task street] [--first-frame] [--out bench/results/long_video_street.json] [--machine "..."]

The held-out source sequence (``.cache/datasets/<task>/val/<sequence>``) is looped forward-backward
(ping-pong: 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ...; no jump at the turning points) to ``--frames`` frames, and
the real held-out frames follow the same index sequence (the looped ground truth).  The sources are streamed
through ``v2v.sampler.StreamingSampler`` one frame at a time; nothing but the current frame pair, the sampler's
O(L) history and per-frame numbers is kept, so memory stays flat (the resident set size is recorded per
window).  Per ``--window`` frames: PSNR and SSIM against the looped ground truth, and the temporal warping
error of ours (``v2v.media.metrics.warping_error``: DIS flow of the looped real frames, occlusions masked) next to
the real looped video's own warping error in the same window.  Drift (``v2v.media.metrics.drift``) = last window's
mean minus the first one's; since the windows do not line up with the loop period (2 (n - 1) frames), the
same is also reported per loop period (frames 1.. in blocks of one period: each block shows the same content; last
full block minus the first).
Prints a table and writes JSON with the machine, the command and the time taken.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from bench import evaluate as ev  # noqa: E402  (held-out loading, the sampler loop, JSON reports)

import torch  # noqa: E402

from v2v.model.checkpoint import load_generator  # noqa: E402
from v2v.media.metrics import drift, psnr, ssim, to_uint8_frames, warping_error, window_means  # noqa: E402


def pingpong_indices(n: int, total: int) -> list[int]:
    """Forward-backward loop over ``n`` frames, ``total`` indices: 0..n-1, n-2..1, 0..n-1, ... (period
    2 (n - 1); consecutive indices always differ by exactly 1, so the looped video never jumps)."""
    if n < 1 or total < 0:
        raise ValueError("need n >= 1 and total >= 0")
    if n == 1:
        return [0] * total
    period = 2 * (n - 1)
    return [k if k < n else period - k for k in (t % period for t in range(total))]


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return float("nan")


def stream_long_video(model: torch.nn.Module, data, indices: Sequence[int], *, window: int, first_frame: bool = False,
                      device: str = "cpu", precision: str = "fp32", seed: int = 0, progress=None) -> dict:
    """Generate along ``indices`` and score it; returns per-frame numbers (index t = frame t; frame 0's warping
    error and, with ``first_frame``, frame 0's PSNR / SSIM are NaN: a given real frame is not scored)."""
    first = ev.as_model_tensor(data.real[:1])[0] if first_frame else None
    outputs = ev.sampler_outputs(model, data, indices, first=first, device=device, precision=precision, seed=seed)
    per_psnr: list[float] = []
    per_ssim: list[float] = []
    memory: list[tuple[int, float]] = []

    def ours() -> Iterator[np.ndarray]:
        for t, (i, output) in enumerate(zip(indices, outputs)):
            frame = to_uint8_frames(output)[0]
            if first_frame and t == 0:
                per_psnr.append(float("nan"))
                per_ssim.append(float("nan"))
            else:
                o, r = ev.as_model_tensor([frame]), ev.as_model_tensor([data.real[i]])
                per_psnr.append(float(psnr(o, r)[0]))
                per_ssim.append(float(ssim(o, r)[0]))
            if (t + 1) % window == 0 or t + 1 == len(indices):
                memory.append((t + 1, round(rss_mb(), 1)))
                if progress:
                    progress(t + 1, per_psnr)
            yield frame

    cache = ev.flow_cache(data)
    real_looped = (data.real[i] for i in indices)
    werr = warping_error(real_looped, ours(), cache=cache)
    werr_real = warping_error((data.real[i] for i in indices), (data.real[i] for i in indices), cache=cache)
    nan = [float("nan")]
    per_werr = nan + list(werr.per_pair)
    if first_frame:                # the pair (real frame 0, generated frame 1) is not ours alone
        per_werr[1] = float("nan")
    return {"psnr": per_psnr, "ssim": per_ssim, "warping_error": per_werr,
            "warping_error_real": nan + list(werr_real.per_pair), "rss_mb": memory}


def summarise(per: dict, *, window: int, period: int) -> dict:
    keys = ("psnr", "ssim", "warping_error", "warping_error_real")
    windows = {k: window_means(per[k], window) for k in keys}
    rows = []
    rss = dict(per["rss_mb"])
    for j, w in enumerate(windows["psnr"]):
        rows.append({"start": w.start, "end": w.end, **{k: windows[k][j].mean for k in keys},
                     "rss_mb": rss.get(w.end)})
    # loop periods from frame 1 on (frame 0 has no warping error): each then holds every pair of the loop once
    n_periods = (len(per["psnr"]) - 1) // period if period else 0
    by_period = {}
    if n_periods >= 2:
        by_period = {k: drift(per[k][1:1 + n_periods * period], period) for k in keys}
    return {"windows": rows, "drift": {k: drift(per[k], window) for k in keys},
            "periods": n_periods, "drift_same_content": by_period}


def markdown_table(summary: dict, title: str) -> str:
    lines = [f"| {title} | PSNR dB | SSIM | warping error (ours) | warping error (real) | RSS MB |",
             "|---|---|---|---|---|---|"]
    fmt = lambda v, nd: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"  # noqa: E731
    for r in summary["windows"]:
        lines.append(f"| {r['start']}-{r['end'] - 1} | {fmt(r['psnr'], 2)} | {fmt(r['ssim'], 4)} | "
                     f"{fmt(r['warping_error'], 3)} | {fmt(r['warping_error_real'], 3)} | {fmt(r['rss_mb'], 0)} |")
    d = summary["drift"]
    lines.append(f"| **drift** (last - first window) | {d['psnr']:+.2f} | {d['ssim']:+.4f} | "
                 f"{d['warping_error']:+.3f} | {d['warping_error_real']:+.3f} | |")
    s = summary["drift_same_content"]
    if s:
        lines.append(f"| **drift, same content** (last - first of {summary['periods']} loop periods) | "
                     f"{s['psnr']:+.2f} | {s['ssim']:+.4f} | {s['warping_error']:+.3f} | "
                     f"{s['warping_error_real']:+.3f} | |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--task", default="street", help="dataset .cache/datasets/<task>")
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default .cache/datasets/<task>)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--sequence", default=None, help="held-out sequence (default: the first)")
    ap.add_argument("--real-video", type=Path, default=None,
                    help="real held-out frames from this video's last frames instead of the JPEG targets "
                         "(as bench/evaluate.py --real-video)")
    ap.add_argument("--real-stride", type=int, default=2)
    ap.add_argument("--real-max-side", type=int, default=256, help="0: keep the size")
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--first-frame", action="store_true", help="give the real first frame (not scored)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=ev.PRECISIONS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--machine", default=ev.DEFAULT_MACHINE, help="machine name recorded in the JSON")
    ap.add_argument("--out", type=Path, default=None, help="JSON (default bench/results/long_video_<task>.json)")
    a = ap.parse_args(argv)
    if a.frames < 2 or a.window < 1:
        raise SystemExit("need --frames >= 2 and --window >= 1")

    out = a.out or ROOT / "bench" / "results" / f"long_video_{a.task}.json"
    data_root = a.data or ev.DATASETS / a.task
    data = ev.load_heldout(data_root, a.split, a.sequence)[:1]
    real_source = {"real_frames": "dataset targets"}
    if a.real_video:
        real_source = ev.replace_real(data, a.real_video, stride=a.real_stride, max_side=a.real_max_side)
    data = data[0]
    model = load_generator(a.model, a.device)
    indices = pingpong_indices(len(data), a.frames)
    period = 2 * (len(data) - 1)
    print(f"{a.model}: {a.frames} frames, ping-pong over the {len(data)} held-out frames of "
          f"{data_root / a.split / data.name} (period {period}) at {data.size}", flush=True)
    t0 = time.time()

    def progress(done, per_psnr):
        recent = np.nanmean(per_psnr[-a.window:])
        print(f"  frame {done:5d}: PSNR {recent:.2f} dB (last {a.window}), {time.time() - t0:.0f} s, "
              f"RSS {rss_mb():.0f} MB", flush=True)

    per = stream_long_video(model, data, indices, window=a.window, first_frame=a.first_frame, device=a.device,
                            precision=a.precision, seed=a.seed, progress=progress)
    seconds = time.time() - t0
    summary = summarise(per, window=a.window, period=period)
    mode = "real first frame given" if a.first_frame else "every frame generated"
    table = markdown_table(summary, f"{a.model.stem}, {a.frames} frames ({mode}), window")
    print()
    print(table)
    report = {"task": a.task, "model": ev.model_info(a.model, model), "dataset": str(data_root),
              "sequence": data.name, **real_source, "heldout_frames": len(data), "frames": a.frames, "window": a.window,
              "loop": "ping-pong", "period": period, "first_frame_given": a.first_frame, "size": data.size,
              **ev.run_context(a.machine, "bench/long_video.py", argv), "seconds": round(seconds, 1),
              "fps": round(a.frames / seconds, 2), **summary, "table": table,
              "per_frame": {k: [None if math.isnan(v) else round(v, 4) for v in per[k]]
                            for k in ("psnr", "ssim", "warping_error", "warping_error_real")}}
    ev.write_report(out, report)
    print(f"\nwrote {out} ({seconds:.0f} s, {a.frames / seconds:.2f} frames/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
