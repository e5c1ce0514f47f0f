"""The compiled step (``StreamingSampler(compile=True)``, the CLI's ``--compile``) and the int8 step (``precision=
"int8"``, a CPU) against eager, per shipped model at its training size: steady frames per second, how long the first
compiled (or int8) frame waits, with a cold and with a warm compiler cache, and how far the outputs move.

    python bench/fast_path.py --out bench/results/fast_path_cpu.json          # 2-core CPU: ~15 minutes
    python bench/fast_path.py --device cuda --out bench/results/fast_path_<card>.json
    python bench/fast_path.py --modes eager,int8 --out bench/results/int8_cpu.json
    python bench/fast_path.py --smoke --out /tmp/fast_path.json                 # the tiny case: checks the script

Each (model, mode) runs in its own process so the compiler cache is what the row says: "cold" points Inductor
at an empty cache folder, "warm" at the folder the cold run filled (a user's second run).  Inputs are random
source frames of the model's layout (speed does not depend on them).  Agreement: every timed step of the
compiled sampler is recomputed eagerly from the same history (``step_max_abs``: the compiler's own error), and an
eager stream of the same frames runs beside it (``stream_max_abs``: where that error leads through the
recurrence).  Outputs are in [-1, 1].  An int8 run's errors on these random inputs say little about its quality
on real footage: bench/evaluate.py --precision int8 and bench/int8_agreement.py measure that.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
MODELS = ("street", "face", "body")
MODES = ("eager", "compiled_cold", "compiled_warm", "int8")


def measure(model_path: str | None, device: str, mode: str, frames: int, warmup: int) -> dict:
    import torch

    from bench.gpu_bench import sync
    from v2v.model.checkpoint import load_generator, training_frame_size
    from v2v.sampler import StreamingSampler

    if model_path is None:                                     # --smoke: a tiny random network
        from v2v.model.config import preset
        from v2v.model.generator import Vid2VidGenerator
        torch.manual_seed(0)
        model, (h, w) = Vid2VidGenerator(preset("fast", input_nc=4, label_nc=3, n_scales=1)).eval(), (32, 32)
    else:
        model = load_generator(model_path, device=device)
        h, w = training_frame_size(model.file_metadata)
    model = model.to(device)
    int8, compile = mode == "int8", mode.startswith("compiled")
    g = torch.Generator().manual_seed(0)
    sources = [torch.rand(model.cfg.input_nc, h, w, generator=g).to(device) for _ in range(warmup + frames)]
    sampler = StreamingSampler(model, device=device, compile=compile, precision="int8" if int8 else "fp32")
    eager = StreamingSampler(model, device=device) if compile or int8 else None
    t0 = time.perf_counter()
    outs, first_compiled_s = [], None
    for i, s in enumerate(sources[:warmup]):
        ts = time.perf_counter()
        outs.append(sampler.step(s).clone())
        sync(device)
        if i == model.cfg.n_past:                              # the first steady-state (compiled or int8) step
            first_compiled_s = round(time.perf_counter() - ts, 2)
    warm_s = time.perf_counter() - t0
    sync(device)
    t0 = time.perf_counter()
    for s in sources[warmup:]:
        outs.append(sampler.step(s).clone())
    sync(device)
    dt = time.perf_counter() - t0
    row = {"model": Path(model_path).stem if model_path else "tiny", "size": f"{w}x{h}", "device": device,
           "compile": compile, "int8": int8, "ms_per_frame": round(1000 * dt / frames, 2), "fps": round(frames / dt, 2),
           "warmup_frames": warmup, "warmup_s": round(warm_s, 2), "first_compiled_frame_s": first_compiled_s}
    if eager is not None:
        step_err = stream_err = step_mean = 0.0
        with torch.inference_mode():
            for i, s in enumerate(sources):
                e = eager.step(s)
                stream_err = max(stream_err, (e - outs[i]).abs().max().item())
                if i >= model.cfg.n_past:                       # same history as the compiled step had
                    L = model.cfg.n_past
                    srcs = torch.stack(sources[i - L:i + 1]).unsqueeze(0)
                    prev = torch.stack([o[0] for o in outs[i - L:i]]).unsqueeze(0)
                    ref = model(srcs, prev).frame.float().clamp(-1, 1)
                    step_err = max(step_err, (ref - outs[i]).abs().max().item())
                    if i >= warmup:
                        step_mean += (ref - outs[i]).abs().mean().item() / frames
        row.update(step_max_abs=float(f"{step_err:.3g}"), stream_max_abs=float(f"{stream_err:.3g}"),
                   step_mean_abs=float(f"{step_mean:.3g}"))
    return row


def run_one(model: str | None, device: str, mode: str, cache: str, frames: int, warmup: int) -> dict:
    """One measurement in a fresh process whose Inductor cache is ``cache``."""
    cmd = [sys.executable, __file__, "--one", model or "", "--mode", mode, "--device", device,
           "--frames", str(frames), "--warmup", str(warmup)]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{model or 'tiny'} {mode} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "mode": mode}


def markdown(rows: list[dict]) -> str:
    lines = ["| model, size | mode | ms/frame (speed-up over eager) | first compiled (or int8) frame takes: "
             "cold / warm cache | step max / mean abs diff, stream max |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["model"] for r in rows):
        by = {r["mode"]: r for r in rows if r["model"] == name}
        e = by.get("eager")
        if e:
            lines.append(f"| {name}, {e['size']} | eager | {e['ms_per_frame']} | - | - |")
        for kind, c, w in (("compiled", by.get("compiled_cold"), by.get("compiled_warm")),
                           ("int8", by.get("int8"), None)):
            r = w or c
            if r is None:
                continue
            ratio = f" ({e['ms_per_frame'] / r['ms_per_frame']:.2f}x)" if e else ""
            waits = " / ".join(f"{x['first_compiled_frame_s']} s" if x else "-" for x in (c, w))
            lines.append(f"| {name}, {r['size']} | {kind} | {r['ms_per_frame']}{ratio} | {waits} | "
                         f"{r['step_max_abs']} / {r['step_mean_abs']}, {r['stream_max_abs']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="report JSON")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default=",".join(MODELS), help="shipped models (models/vid2vid/<name>.safetensors)")
    ap.add_argument("--frames", type=int, default=30, help="timed frames per run")
    ap.add_argument("--warmup", type=int, default=5, help="untimed frames first (the compile happens here)")
    ap.add_argument("--modes", default=None,
                    help=f"any of {','.join(MODES)} (cold runs before warm; default all, less int8 off a CPU)")
    ap.add_argument("--smoke", action="store_true", help="a tiny random network, 32x32, 3 frames")
    ap.add_argument("--machine", default=None, help="recorded with the results (default: device and CPU cores)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one is not None:                                      # the child: one measurement, one JSON line
        row = measure(a.one or None, a.device, a.mode, a.frames, a.warmup)
        print(json.dumps(row))
        return 0
    if not a.out:
        ap.error("--out is required")
    asked = a.modes.split(",") if a.modes else [m for m in MODES if a.device == "cpu" or not m.startswith("int8")]
    modes = [m for m in MODES if m in asked]                  # in MODES' order: each cold run fills the warm cache
    if not modes or set(asked) - set(MODES):
        ap.error(f"--modes takes a comma-separated subset of {','.join(MODES)}")
    frames, warmup = (3, 3) if a.smoke else (a.frames, a.warmup)
    models = [None] if a.smoke else [str(ROOT / "models" / "vid2vid" / f"{m}.safetensors") for m in a.models.split(",")]
    rows = []
    for model in models:
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
            for mode in modes:
                rows.append(run_one(model, a.device, mode, cache, frames, warmup))
                print(json.dumps(rows[-1]), flush=True)
    from bench.evaluate import run_context, write_report

    machine = a.machine or f"{a.device}, {os.cpu_count()} CPU cores"
    report = {**run_context(machine, "bench/fast_path.py", argv), "rows": rows, "markdown": markdown(rows)}
    write_report(Path(a.out), report)
    print(report["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
