"""Future video prediction measured on held-out footage (paper Sec. 4, Table 3 in spirit), against two baselines.

    python bench/future_study.py --predictor models/vid2vid/street_predict.safetensors \
        --renderer models/vid2vid/street.safetensors [--horizons 1 5 10] [--starts 10] [--strip docs/future_strip.jpg]

Held-out: the street dataset's val sequence (``.cache/datasets/street/val``, the last 20 % of vtest, never
trained on): its pseudo-label maps and real frames at the renderer's size.  From every start frame n (every
``--every`` frames, the first after ``--observe`` observed frames, the last leaving room for the longest horizon)
each method sees frames < n and predicts frames n, n+1, ...; scored at each horizon h (frame n+h-1):

* ours: the predictor continues the maps (at the size it learnt, ids resized nearest), the renderer draws them
  starting from the real frames n-L..n-1 (``v2v.future.predict_future``, what the node and CLI run);
* repeat: the last observed map and frame, unchanged;
* flow: the last observed motion continued: the real video's DIS flow from frame n-1 back to n-2, applied again
  at every step (backward warp: nearest for maps, bilinear for frames);
* repeat at the predictor's size (only for a predictor that learnt at a smaller size): the last map resized there
  and back (frames as repeat), what the lower resolution alone costs the map scores.

Maps: pixel accuracy and mIoU (confusion summed over all starts, classes present in truth or prediction) against
the held-out pseudo-labels; frames: PSNR and SSIM against the real frames.  Results:
bench/results/future_study.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import load_heldout, run_context, training_load_size, write_report  # noqa: E402
from v2v.future import predict_future  # noqa: E402
from v2v.media.metrics import psnr, ssim  # noqa: E402
from v2v.media.optical_flow import FlowCache, warp_numpy  # noqa: E402
from v2v.media.resize import resize_ids  # noqa: E402
from v2v.media.tensors import model_to_uint8, uint8_to_model  # noqa: E402
from v2v.media.video_io import frame_grid, write_image  # noqa: E402
from v2v.model.checkpoint import load_generator, training_frame_size  # noqa: E402
from v2v.sources.labels import label_colors  # noqa: E402

METHODS = ("ours", "repeat", "flow", "repeat at the predictor's size")


def forecasts(method: str, n: int, steps: int, maps: list[np.ndarray], real: list[np.ndarray], flows: FlowCache,
              predictor, renderer, predictor_size) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(maps, frames) a method predicts for frames n .. n + steps - 1, seeing only frames < n."""
    if method == "ours":
        k = renderer.cfg.n_past
        predicted, frames = predict_future(predictor, renderer, maps[:n], steps, np.stack(real[n - k:n]),
                                           predictor_size=predictor_size)
        return predicted, [model_to_uint8(f) for f in frames]
    if method == "repeat":
        return [maps[n - 1]] * steps, [real[n - 1]] * steps
    if method.startswith("repeat at"):   # what the predictor's resolution alone costs: the last map there and back
        size = maps[0].shape[:2]
        return [resize_ids(resize_ids(maps[n - 1], predictor_size or size), size)] * steps, [real[n - 1]] * steps
    flow, _ = flows.get(real[n - 1], real[n - 2])      # backward: warp(frame n-2, flow) ~ frame n-1
    out_maps, out_frames, m, f = [], [], maps[n - 1], real[n - 1]
    for _ in range(steps):
        m = warp_numpy(m, flow, nearest=True)
        f = warp_numpy(f, flow)
        out_maps.append(m)
        out_frames.append(f)
    return out_maps, out_frames


def confusion(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(truth.ravel().astype(np.int64) * k + pred.ravel(), minlength=k * k).reshape(k, k)


def map_scores(conf: np.ndarray) -> dict:
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    return {"pixel_accuracy": round(float(tp.sum() / conf.sum()), 4),
            "miou": round(float((tp[present] / union[present]).mean()), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--predictor", type=Path, required=True)
    ap.add_argument("--renderer", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=ROOT / ".cache" / "datasets" / "street")
    ap.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--observe", type=int, default=4, help="frames observed before the first start")
    ap.add_argument("--every", type=int, default=10, help="frames between start points")
    ap.add_argument("--machine", default="2-core CPU (project machine)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "future_study.json")
    ap.add_argument("--strip", type=Path, default=None,
                    help="picture of the first start: real, ours, repeat, flow frames and true / our maps")
    a = ap.parse_args(argv)

    predictor, renderer = load_generator(a.predictor), load_generator(a.renderer)
    k = renderer.cfg.label_nc
    data = load_heldout(a.data, "val", size=training_load_size(a.renderer))[0]
    maps = [s.argmax(0).numpy().astype(np.uint8) for s in data.sources]
    real, flows = data.real, FlowCache(data.flow_cache)
    steps = max(a.horizons)
    starts = list(range(max(a.observe, 2), len(data) - steps + 1, a.every))
    if not starts:
        raise SystemExit(f"{len(data)} held-out frames leave no start with {a.observe} observed and {steps} to predict")
    predictor_size = training_frame_size(a.predictor)
    smaller = predictor_size is not None and tuple(predictor_size) != real[0].shape[:2]
    methods = [m for m in METHODS if smaller or not m.startswith("repeat at")]
    conf = {(m, h): np.zeros((k, k), np.int64) for m in methods for h in a.horizons}
    frames_scores = {(m, h): [] for m in methods for h in a.horizons}
    strip_rows = None
    for n in starts:
        for method in methods:
            pm, pf = forecasts(method, n, steps, maps, real, flows, predictor, renderer, predictor_size)
            for h in a.horizons:
                t = n + h - 1
                conf[method, h] += confusion(maps[t], pm[h - 1], k)
                x, y = uint8_to_model(pf[h - 1][None]), uint8_to_model(real[t][None])
                frames_scores[method, h].append((float(psnr(x, y)[0]), float(ssim(x, y)[0])))
            if n == starts[0]:
                strip_rows = strip_rows or {"real": real[n:n + steps]}
                strip_rows[method] = pf
                if method == "ours":
                    strip_rows["true maps"] = [label_colors(m, k) for m in maps[n:n + steps]]
                    strip_rows["our maps"] = [label_colors(m, k) for m in pm]
    rows = []
    for h in a.horizons:
        for method in methods:
            p, s = np.asarray(frames_scores[method, h]).mean(0)
            rows.append({"horizon": h, "method": method, **map_scores(conf[method, h]),
                         "psnr": round(float(p), 2), "ssim": round(float(s), 3)})
    report = {"predictor": str(a.predictor), "renderer": str(a.renderer), "starts": starts, "frames": len(data),
              "size": list(real[0].shape[:2]), "predictor_size": list(predictor_size or real[0].shape[:2]),
              "rows": rows, **run_context(a.machine, "bench/future_study.py", argv)}
    write_report(a.out, report)
    print(f"{len(starts)} starts {starts}, {len(data)} held-out frames of {real[0].shape[1]}x{real[0].shape[0]}")
    print("| horizon | method | pixel accuracy | mIoU | PSNR dB | SSIM |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['horizon']} | {r['method']} | {r['pixel_accuracy']} | {r['miou']} | {r['psnr']} | {r['ssim']} |")
    if a.strip and strip_rows:
        order = ["true maps", "our maps", "real", "ours", "repeat", "flow"]
        write_image(a.strip, frame_grid([list(strip_rows[r]) for r in order], min(5, steps)))
        print(f"strip: {a.strip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
