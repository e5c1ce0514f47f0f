"""precision int8 against float32 on real footage, shot by shot: how close the int8 frames stay to float32's along
each shot of a video spliced from different clips.

    python bench/int8_agreement.py --out bench/results/int8_agreement.json     # 2-core CPU: ~10 minutes
    python bench/int8_agreement.py --smoke --out /tmp/int8.json                 # two short committed segments, street

One video is spliced from segments of real clips at known frames (bench/shot_cuts.py's splice: each cropped to 4:3,
640x480).  For each shipped model its source (the model's recorded recipe, at its training size) is extracted once,
with the cuts the detector finds, and generated as the CLI does: float32, int8, and, as the yardstick, float32 again
from the source plus Gaussian noise of standard deviation 1e-3 (an eighth of an 8-bit level): where the recurrence
amplifies any small difference, that run drifts from float32 as well.  Reported per shot: PSNR of the int8 frames
(and of the perturbed float32 ones) against the float32 ones (8-bit frames, as a saved video), and the int8 frames'
mean absolute difference in levels.
Each shot's first L frames (its warm-up) are float32 in both runs, so they are left out of the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import run_context, write_report  # noqa: E402
from bench.shot_cuts import MODELS, SIZE, extracted, frames_of, spliced_video  # noqa: E402

# (clip, first frame, frames): each model's own footage first, then the others
SEGMENTS = {
    "street": [("vtest.avi", 100, 120), ("street_sports2d.mp4", 0, 80), ("carphone_pristine.mp4", 0, 60),
               ("vtest.avi", 500, 120)],
    "face": [("carphone_pristine.mp4", 0, 70), ("Megamind.avi", 20, 70), ("vtest.avi", 100, 60),
             ("carphone_pristine.mp4", 70, 50)],
    "body": [("vtest.avi", 100, 120), ("body_trial1_cam1.mp4", 0, 80), ("street_sports2d.mp4", 0, 60),
             ("vtest.avi", 500, 120)],
}
NOISE = 1e-3
SMOKE = [("tests/data/vtest_40f.mp4", 0, 20), ("workflows/input/vid2vid_carphone_60f.mp4", 0, 20)]   # street


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def agreement(task: str, segments: list) -> dict:
    import torch

    from v2v.model.checkpoint import load_generator
    from v2v.pipeline import target_size
    from v2v.sources.base import ShotOptions, tensor_source

    video, true_cuts = spliced_video(segments)
    model = load_generator(MODELS / f"{task}.safetensors")
    size = target_size(model, SIZE, "model")
    stacked, kind, detected = extracted(model, video, size)
    shots = ShotOptions(detect=False, cut_frames=tuple(detected))
    fp32 = frames_of(model, tensor_source(stacked, **kind), shots=shots)
    int8 = frames_of(model, tensor_source(stacked, **kind), shots=shots, precision="int8")
    noise = torch.randn(stacked.shape, generator=torch.Generator().manual_seed(0)) * NOISE
    perturbed = frames_of(model, tensor_source(stacked + noise, **kind), shots=shots)
    skip = model.cfg.n_past                        # each shot's warm-up frames: float32 in both runs
    starts = [0, *detected]
    bounds = [0, *true_cuts, len(stacked)]
    rows = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        shot_start = max(s for s in starts if s <= a)
        a = max(a, shot_start + skip)
        if a >= b:
            continue
        p = [psnr(int8[t], fp32[t]) for t in range(a, b)]
        n = [psnr(perturbed[t], fp32[t]) for t in range(a, b)]
        d = [float(np.abs(int8[t] - fp32[t]).mean()) for t in range(a, b)]
        rows.append({"shot": k, "clip": Path(segments[k][0]).stem, "frames": [a, b], "psnr_mean": round(np.mean(p), 2),
                     "psnr_min": round(min(p), 2), "levels_mean": round(np.mean(d), 3),
                     "perturbed_psnr_mean": round(np.mean(n), 2), "perturbed_psnr_min": round(min(n), 2),
                     "psnr_per_frame": [round(v, 2) for v in p]})
    return {"task": task, "size": list(size), "true_cuts": true_cuts, "detected_cuts": detected, "shots": rows}


def markdown(results: list[dict]) -> str:
    lines = ["| model, size | shot (clip) | frames | int8 vs float32 PSNR dB, mean (min) | int8 mean abs diff, "
             "levels | float32 + 1e-3 source noise vs float32, PSNR dB mean (min) |", "|---|---|---|---|---|---|"]
    for r in results:
        for s in r["shots"]:
            lines.append(f"| {r['task']}, {r['size'][1]}x{r['size'][0]} | {s['shot']} ({s['clip']}) | "
                         f"{s['frames'][0]}-{s['frames'][1] - 1} | {s['psnr_mean']} ({s['psnr_min']}) | "
                         f"{s['levels_mean']} | {s['perturbed_psnr_mean']} ({s['perturbed_psnr_min']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(SEGMENTS), choices=list(SEGMENTS))
    ap.add_argument("--smoke", action="store_true", help="two short committed segments, the street model")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--machine", default=f"{os.cpu_count()}-core CPU")
    a = ap.parse_args(argv)
    jobs = [("street", SMOKE)] if a.smoke else [(t, SEGMENTS[t]) for t in a.tasks]
    results = []
    for task, segments in jobs:
        results.append(agreement(task, segments))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "shots"}), flush=True)
    table = markdown(results)
    print(table)
    write_report(a.out, {**run_context(a.machine, "bench/int8_agreement.py", argv), "segments": dict(jobs),
                         "results": results, "markdown": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
