"""How far the generator's up-front memory estimate is from the real peak (it must stay below it).

    python bench/memory_estimate.py [--sizes 512x384 1024x768] [--out bench/results/memory_estimate.json]
    python bench/memory_estimate.py --smoke      # the street sample model at 128x96 (the tests run it)

For each shipped model and frame size, a fresh process loads the model, runs three generator steps at that
size and reports its peak resident memory above the resident memory before the steps (``ru_maxrss``), next to
the largest single activation :func:`v2v.pipeline.largest_activation_per_pixel` predicts for that size.  Their
ratio is what ``ACTIVATION_PEAK_FACTOR`` must stay under for the estimate to be a lower bound.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import run_context, write_report  # noqa: E402

CHILD = r"""
import json, resource, sys, psutil, torch
from v2v.model.checkpoint import load_generator
from v2v.pipeline import ACTIVATION_PEAK_FACTOR, largest_activation_per_pixel
from v2v.sampler import StreamingSampler
path, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = load_generator(path)
largest = largest_activation_per_pixel(m) * h * w
s = StreamingSampler(m)
x = torch.zeros(1, m.cfg.input_nc, h, w)
base = psutil.Process().memory_info().rss
for _ in range(3):
    s.step(x)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
print(json.dumps({"peak_mb": peak / 2**20, "largest_activation_mb": largest / 2**20, "ratio": peak / largest,
                  "estimate_mb": ACTIVATION_PEAK_FACTOR * largest / 2**20}))
"""
MODELS = ["street", "face", "body"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["512x384", "1024x768"], help="WIDTHxHEIGHT")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--machine", default=f"{os.cpu_count()}-core CPU")
    a = ap.parse_args(argv)
    models = {m: ROOT / "models" / "vid2vid" / f"{m}.safetensors" for m in MODELS}
    if a.smoke:
        models, a.sizes = {"sample_street": ROOT / "models" / "vid2vid" / "vid2vid_sample_street.safetensors"}, ["128x96"]
    rows = []
    for name, path in models.items():
        for size in a.sizes:
            w, h = (int(v) for v in size.split("x"))
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(h), str(w)], capture_output=True,
                                 text=True, cwd=ROOT, timeout=600)
            if out.returncode:
                raise SystemExit(out.stderr[-2000:])
            row = {"model": name, "size": size, **json.loads(out.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["| model | size | real peak MB | largest activation MB | ratio | estimate MB |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['size']} | {r['peak_mb']:.0f} | {r['largest_activation_mb']:.0f} | {r['ratio']:.1f} | "
              f"{r['estimate_mb']:.0f} |" for r in rows]
    print("\n".join(lines))
    if a.out:
        write_report(a.out, {**run_context(a.machine, "bench/memory_estimate.py", argv), "rows": rows,
                             "markdown": "\n".join(lines)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
