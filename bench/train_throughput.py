"""Training throughput of train/train.py: generated frames per second per device (D and G steps included).

    python bench/train_throughput.py                                  # small preset, 128x128, CPU/GPU auto
    python bench/train_throughput.py --preset compact --size 512x256 --mixed-precision bf16
    python bench/train_throughput.py --preset paper --size 512x256 --frames 4 --steps 10
    python bench/train_throughput.py --preset paper --size 512x256 --mixed-precision bf16 --compile

Writes a synthetic moving-shapes label dataset (v2v.toy, 3 classes + instance edges) at the requested size,
runs a warm-up (fills the DIS flow cache, first-call overheads), then times ``--steps`` training clips of
``--frames`` frames (each clip makes frames - L generator and discriminator updates) and prints one JSON
line.  ``--record`` appends it to bench/results/train_throughput.jsonl (summarised in docs/TRAINING.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from train.data import write_toy_dataset  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.train import train  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--size", default="128x128", help="WxH")
    p.add_argument("--frames", type=int, default=4, help="clip length (L = 2 real frames + generated ones)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--scales", type=int, default=1)
    p.add_argument("--temporal-scales", type=int, default=1)
    p.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"))
    p.add_argument("--compile", action="store_true", help="the trainer's compile: true (torch.compile the generator; "
                   "the warm-up run pays the compiler, the timed run starts from its caches)")
    p.add_argument("--record", action="store_true", help="append the result to bench/results/train_throughput.jsonl")
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = write_toy_dataset(Path(tmp) / "data", n_sequences=2, n_frames=max(8, a.frames), height=h, width=w,
                                 val_sequences=0)
        base = dict(data={"root": str(root), "use_instance": True, "flip": True, "flow_preset": "medium"},
                    preset=a.preset, model={"n_scales": a.scales},
                    disc={"n_temporal_scales": a.temporal_scales}, loss={"vgg": 0.0},
                    batch_size=a.batch_size, n_frames_max=a.frames, double_every=0, mixed_precision=a.mixed_precision,
                    compile=a.compile, log_with=None, val_every=0, sample_every=0, save_every=0, log_every=10 ** 9)
        train(TrainConfig(out_dir=str(Path(tmp) / "warm"), max_steps=a.warmup, **base))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = train(TrainConfig(out_dir=str(Path(tmp) / "timed"), max_steps=a.steps, **base))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    gen_frames = a.steps * a.batch_size * (a.frames - 2)
    line = json.dumps({"preset": a.preset, "size": f"{w}x{h}", "scales": a.scales, "clip_frames": a.frames,
                       "batch_size": a.batch_size, "mixed_precision": a.mixed_precision, "compile": a.compile,
                       "device": device,
                       "steps": a.steps, "loop_frames_per_s": round(result["frames_per_second"], 3),
                       "wall_frames_per_s_incl_setup": round(gen_frames / wall, 3)})
    print(line)
    if a.record:
        out = Path(__file__).resolve().parent / "results" / "train_throughput.jsonl"
        out.parent.mkdir(exist_ok=True)
        with open(out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
