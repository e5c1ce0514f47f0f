"""Where a sequential model's frames come from: PSNR of its blended output, of its hallucinated branch alone
and of its warped previous output alone, and the mean soft mask (1 = hallucinated), on held-out frames with
every frame generated (as bench/evaluate.py's default mode).

    python bench/branch_psnr.py --task street --models out/cpu_study/models/street.safetensors [...]
        [--data DATASET_ROOT]      # default .cache/datasets/<task>

If the hallucinated branch alone beats the blend, the mask leans too much on warping.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench import evaluate as ev  # noqa: E402  (held-out loading, training sizes, JSON reports)

from v2v.model.checkpoint import load_generator  # noqa: E402
from v2v.model.losses import masked_mean  # noqa: E402
from v2v.media.metrics import psnr  # noqa: E402
from v2v.media.tensors import uint8_to_model  # noqa: E402


@torch.no_grad()
def branch_stats(model, seq: "ev.Heldout") -> dict[str, float]:
    """Run ``model`` over ``seq`` through the nodes' sampler from no history (``ev.generate_frames``), reading
    each step's branches with a forward hook; score frames t >= L (before them the mask is forced to 1)."""
    L = model.cfg.n_past
    steps: list = []                 # the GeneratorOutput of every model call, in order
    scores: dict[str, list[float]] = {"output": [], "hallucinated": [], "warped": [], "mask_mean": [],
                                      "forced_share": []}

    def score(t: int, frame: torch.Tensor) -> None:
        out = steps.pop()
        if t < L or out.warped is None:
            return
        real = uint8_to_model(seq.real[t])[None]
        scores["output"].append(float(psnr(frame, real)))
        scores["hallucinated"].append(float(psnr(out.hallucinated.float().clamp(-1, 1).cpu(), real)))
        scores["warped"].append(float(psnr(out.warped.float().clamp(-1, 1).cpu(), real)))
        scores["mask_mean"].append(float(masked_mean(out.mask, out.free_mask)))   # forced foreground left out
        # pixels whose mask the foreground prior forces (the mask regulariser averaged them in before it left
        # them out: its push on the free pixels was (1 - forced_share) of today's)
        free = out.free_mask
        scores["forced_share"].append(0.0 if free is None else 1.0 - float(free.float().mean()))

    hook = model.register_forward_hook(lambda _module, _args, output: steps.append(output))
    try:
        ev.generate_frames(model, seq, first_frame=False, on_frame=score)
    finally:
        hook.remove()
    return {k: round(float(np.mean(v)), 3) for k, v in scores.items() if v}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="street")
    ap.add_argument("--models", nargs="+", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default .cache/datasets/<task>)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default: print only)")
    a = ap.parse_args(argv)
    rows = {}
    for path in a.models:
        size = ev.training_load_size(path)
        seq = ev.load_heldout(a.data or ev.DATASETS / a.task, "val", None, size=size)[0]
        model = load_generator(path).eval()
        if not model.cfg.use_flow:
            raise SystemExit(f"{path}: a per-frame model (use_flow=false) has no warped branch")
        rows[path.stem] = {"frames": len(seq), "size": seq.size, **branch_stats(model, seq)}
        print(path.stem, json.dumps(rows[path.stem]))
    if a.out:
        a.out.write_text(json.dumps({"command": "python bench/branch_psnr.py " + " ".join(sys.argv[1:] if argv is None
                                                                                        else argv),
                                     "torch": torch.__version__, "models": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
