"""The speed suite in one command: generator latency per preset and size, FLOPs and the share of the machine's
measured peak they imply, the CLI end to end for each shipped model, and training throughput; a table + JSON.

    python bench/suite.py --out bench/results/suite_cpu.json                 # 2-core CPU: ~15 minutes
    python bench/suite.py --device cuda --out bench/results/suite_<card>.json
    python bench/suite.py --smoke --out /tmp/suite.json                      # the smallest case of each part

Parts (each reuses the script that owns it; compare rows within one run only):
* peak: the machine's measured dense matmul rate (fp32; on CUDA also TF32 and bf16), the yardstick;
* generator: ``bench/gpu_bench.run_case`` (frames streamed through ``StreamingSampler``, the CLI's and the
  node's path) per preset, size and mode, with ``bench/model_cost.measure``'s GFLOPs per frame;
  utilisation = GFLOPs x frames/s / the peak of that precision;
* layouts: each shipped model's network (random weights, its training size) against the same input layout in
  the ``small`` and ``fast`` presets, eager float32 and, with ``--layout-modes``, the CPU's int8 and compiled paths;
  ``--fast-set key=value`` (model fields, values in YAML) times a candidate design in ``fast``'s place;
* cli: ``bench/stream_memory.py`` (decode, source extraction, generation, encoding of a real clip, at the model's
  training size) for the shipped street, face and body models;
* training: ``bench/train_throughput.py``, generated frames per second of the trainer.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import run_context, write_report  # noqa: E402
from bench.gpu_bench import run_case, sync  # noqa: E402
from bench.model_cost import frame_flops, measure  # noqa: E402
from v2v.model.checkpoint import read_config, training_frame_size  # noqa: E402
from v2v.model.config import PRESETS, ConfigError, GeneratorConfig, preset  # noqa: E402
from v2v.model.generator import Vid2VidGenerator  # noqa: E402
from v2v.quantize import int8_network, int8_problem  # noqa: E402
from v2v.sampler import compiled_step, cpp_compiler_found  # noqa: E402

# (preset, width, height, scales) per device; CPU sizes stop where a frame takes seconds
GENERATOR_CASES = {
    "cpu": [("paper", 256, 128, 1), ("compact", 256, 128, 1), ("compact", 512, 256, 1),
            ("small", 256, 128, 1), ("small", 512, 256, 1), ("fast", 256, 128, 1), ("fast", 512, 256, 1)],
    "cuda": [("paper", 512, 256, 1), ("paper", 1024, 512, 2), ("paper", 2048, 1024, 3),
             ("compact", 512, 256, 1), ("compact", 1024, 512, 2), ("compact", 2048, 1024, 3),
             ("small", 512, 256, 1), ("small", 1024, 512, 2), ("fast", 512, 256, 1), ("fast", 1024, 512, 2),
             ("fast", 2048, 1024, 3)],
}
# the CPU's compiled step is measured per shipped model by bench/fast_path.py (a compile takes minutes there)
MODES = {"cpu": ["fp32", "bf16", "fp32_cl"],
         "cuda": ["fp32", "tf32", "bf16", "bf16_cl", "tf32_compile", "bf16_compile"]}


def native_cpu_bf16() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX512-BF16 or AMX); False when torch cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_modes(device: str, smoke: bool, cpu_bf16: bool | None = None) -> tuple[list[str], str | None]:
    """The generator precisions measured without ``--modes``, and a note on any left out: on a CPU without native
    bf16 the bf16 rows emulate it (the Zen 3's bf16 matmul ran at 0.3 GFLOP/s) and take minutes to say only that."""
    modes = MODES[device][:1 if smoke else None]
    if device != "cpu" or smoke or (native_cpu_bf16() if cpu_bf16 is None else cpu_bf16):
        return modes, None
    return ([m for m in modes if not m.startswith("bf16")],
            "bf16 left out: this CPU has no native bf16 (oneDNN says so); ask for it with --modes fp32,bf16")


def peak_gflops(device: str, dtype: torch.dtype, tf32: bool = False, n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` dense ``n x n`` matmul rate in GFLOP/s."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def machine_peaks(device: str, smoke: bool, precisions: set[str]) -> dict[str, float]:
    """The measured peak of each precision the generator rows use (none without them): on a CPU without native
    bf16 one bf16 matmul of 2048 takes about a minute (0.3 GFLOP/s on a Zen 3), so it is measured only when asked."""
    n = 512 if smoke else (8192 if device == "cuda" else 2048)
    settings = {"fp32": (torch.float32, False), "tf32": (torch.float32, True), "bf16": (torch.bfloat16, False)}
    return {p: round(peak_gflops(device, dtype, tf32=tf32, n=n), 1)
            for p, (dtype, tf32) in settings.items() if p in precisions}


def generator_rows(device: str, cases, modes, peaks: dict, frames: dict) -> list[dict]:
    rows = []
    for preset_name, w, h, scales in cases:
        gflops = measure(preset_name, w, h, scales, True)["gflops_per_frame"]
        for mode in modes:
            r = run_case(preset_name, w, h, scales, mode, device=device, **frames)
            peak = peaks[mode.split("_")[0]]          # bf16_cl, tf32_compile: their precision's peak
            rows.append({**r, "ms_per_frame": round(1000 / r["fps"], 1), "gflops_per_frame": gflops,
                         "achieved_gflops": round(gflops * r["fps"], 1),
                         "share_of_peak": round(gflops * r["fps"] / peak, 3)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


LAYOUT_MODES = ("fp32", "int8", "compiled")


def layout_network(g: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``g`` on one of the CPU's paths: eager float32, the int8 copy (``--precision int8``), or Inductor's compiled
    network (``--compile``; its first call waits for the compiler, which the warm-up frames absorb)."""
    if mode == "int8":
        return int8_network(g)
    if mode == "compiled":
        return compiled_step(g, torch.device("cpu"))
    return g


def layout_rows(smoke: bool, modes: Sequence[str] = ("fp32",), repeats: int = 20,
                fast_overrides: dict | None = None) -> list[dict]:
    """Each shipped model's network (its layout and training size, random weights) against the same layout in
    the ``small`` preset (ngf 16) and the ``fast`` one: milliseconds per frame, one process, per CPU path in
    ``modes``.  All the networks take turns, one frame each per round, so a slow spell of a shared host falls on
    all of them; the speed-ups are medians of the rounds' ratios (fp32 keys unsuffixed, other paths' suffixed
    ``_<mode>``); ``fast_best_speedup_vs_small`` divides the two presets' fastest paths' medians.
    ``fast_overrides`` change the ``fast`` preset's fields (a candidate design, timed in its place)."""
    size_keys = {k for sizes in PRESETS.values() for k in sizes}
    rows = []
    for name in ["body"] if smoke else ["street", "face", "body"]:
        path = ROOT / "models" / "vid2vid" / f"{name}.safetensors"
        shipped = read_config(path)
        h, w = (32, 32) if smoke else training_frame_size(path)
        task = {k: v for k, v in shipped.to_dict().items() if k not in size_keys}   # inputs, prior, flow
        row = {"model": name, "size": f"{w}x{h}", "modes": list(modes)}
        nets = {}
        fast = preset("fast", **{**task, **(fast_overrides or {})})
        for label, cfg in (("shipped", shipped), ("small", preset("small", **task)), ("fast", fast)):
            torch.manual_seed(0)
            g = Vid2VidGenerator(cfg).eval()
            row[f"{label}_gflops"] = round(frame_flops(cfg, w, h) / 1e9, 2)
            for mode in modes:
                nets[label, mode] = layout_network(g, mode)
        src = torch.rand(1, shipped.n_past + 1, shipped.input_nc, h, w)
        prev = torch.rand(1, shipped.n_past, shipped.output_nc, h, w)
        times: dict[tuple[str, str], list[float]] = {key: [] for key in nets}
        with torch.inference_mode():
            for g in nets.values():
                for _ in range(2):
                    g(src, prev)
            for _ in range(2 if smoke else repeats):
                for key, g in nets.items():
                    t0 = time.perf_counter()
                    g(src, prev)
                    times[key].append(time.perf_counter() - t0)
        for (label, mode), ts in times.items():
            row[f"{label}_ms" + ("" if mode == "fp32" else f"_{mode}")] = round(1000 * statistics.median(ts), 1)
        for mode in modes:
            suffix = "" if mode == "fp32" else f"_{mode}"
            for other in ("shipped", "small"):
                ratios = [a / b for a, b in zip(times[other, mode], times["fast", mode])]
                row[f"fast_speedup_vs_{other}{suffix}"] = round(statistics.median(ratios), 2)
        best = {label: min(statistics.median(times[label, m]) for m in modes) for label in ("small", "fast")}
        row["fast_best_speedup_vs_small"] = round(best["small"] / best["fast"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def subprocess_json(cmd: list[str]) -> list[dict]:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:3])} failed: {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def cli_rows(smoke: bool, frames: int, device: str = "cpu") -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stream.json"
        cmd = [sys.executable, str(ROOT / "bench" / "stream_memory.py"), "--modes", "cli", "--device", device,
               "--out", str(out)]
        subprocess_json(cmd + (["--smoke"] if smoke else ["--lengths", str(frames)]))
        runs = json.loads(out.read_text())["runs"]
    return [{"model": r["task"], "device": device, "frames": r["frames"], "fps_end_to_end": r["fps"],
             "fps_in_generator": r["sampler_fps"], "peak_mb": r["peak_mb"]} for r in runs]


# (preset, size, mixed precision, timed steps, compile); on a card `paper` three ways, for the issue's "training step
# throughput of paper >= 2x its own eager fp32" (the compiled rows' warm-up run pays the compiler)
TRAINING_CASES = {"cpu": [("small", "128x128", "no", 5, False)],
                  "cuda": [("small", "128x128", "no", 5, False), ("compact", "512x256", "bf16", 4, False),
                           ("paper", "512x256", "no", 3, False), ("paper", "512x256", "bf16", 3, False),
                           ("paper", "512x256", "bf16", 3, True)]}


def training_rows(device: str, smoke: bool) -> list[dict]:
    rows = []
    for preset_name, size, mp, steps, compile in ([("tiny", "64x64", "no", 1, False)] if smoke
                                                  else TRAINING_CASES[device]):
        rows += subprocess_json([sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--preset",
                                 preset_name, "--size", size, "--mixed-precision", mp, "--steps", str(steps),
                                 "--warmup", "1", *(["--compile"] if compile else [])])
    return rows


def table(header: list[str], rows: list[str]) -> list[str]:
    """A markdown table after a blank line; nothing for a part that was not run."""
    return ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows] if rows else []


def markdown(report: dict) -> str:
    peaks = ", ".join(f"{k} {v:,.0f}" for k, v in report["peaks_gflops"].items())
    lines = [f"machine: {report['machine']}" + (f"; measured matmul peak GFLOP/s: {peaks}" if peaks else "")]
    lines += table(["preset", "size", "scales", "mode", "ms/frame", "frames/s", "GFLOPs/frame", "share of peak"],
                   [f"| {r['preset']} | {r['size']} | {r['n_scales']} | {r['mode']} | {r['ms_per_frame']} | "
                    f"{r['fps']} | {r['gflops_per_frame']} | {r['share_of_peak']:.1%} |" for r in report["generator"]])
    if report.get("fast_overrides") and report["layouts"]:
        lines += ["", "fast: the preset with " + ", ".join(f"{k}={v}" for k, v in report["fast_overrides"].items())]
    lines += table(["shipped layout, random weights", "size", "shipped ms (GFLOPs)", "small ms (GFLOPs)",
                    "fast ms (GFLOPs)", "fast vs shipped / small"],
                   [f"| {r['model']} | {r['size']} | {r['shipped_ms']} ({r['shipped_gflops']}) | {r['small_ms']} "
                    f"({r['small_gflops']}) | {r['fast_ms']} ({r['fast_gflops']}) | {r['fast_speedup_vs_shipped']}x / "
                    f"{r['fast_speedup_vs_small']}x |" for r in report["layouts"]])
    other_modes = [m for m in report.get("layout_modes", []) if m != "fp32"]
    if other_modes and report["layouts"]:
        lines += table(["shipped layout", "size", "path", "shipped ms", "small ms", "fast ms",
                        "fast vs shipped / small"],
                       [f"| {r['model']} | {r['size']} | {m} | {r[f'shipped_ms_{m}']} | {r[f'small_ms_{m}']} | "
                        f"{r[f'fast_ms_{m}']} | {r[f'fast_speedup_vs_shipped_{m}']}x / "
                        f"{r[f'fast_speedup_vs_small_{m}']}x |" for r in report["layouts"] for m in other_modes])
        lines += [f"{r['model']}: `fast` on its fastest path against `small` on its fastest: "
                  f"{r['fast_best_speedup_vs_small']}x" for r in report["layouts"]]
    lines += table(["shipped model, CLI", "device", "frames", "frames/s end to end", "frames/s in the generator"],
                   [f"| {r['model']} | {r['device']} | {r['frames']} | {r['fps_end_to_end']:.2f} | "
                    f"{r['fps_in_generator']:.2f} |" for r in report["cli"]])
    lines += table(["training", "size", "precision", "generated frames/s"],
                   [f"| {r['preset']} | {r['size']} | {r['mixed_precision']}"
                    f"{', compiled' if r.get('compile') else ''} | {r['loop_frames_per_s']} |"
                    for r in report["training"]])
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--smoke", action="store_true", help="the smallest case of each part (checks the script)")
    ap.add_argument("--cli-frames", type=int, default=120, help="frames of each shipped model's CLI run")
    ap.add_argument("--parts", default="generator,layouts,cli,training", help="which parts, comma-separated")
    ap.add_argument("--modes", default=None,
                    help="generator precisions, comma-separated (default: every one of the device: cpu "
                         "fp32,bf16,fp32_cl, bf16 only where the CPU has it natively; cuda "
                         "fp32,tf32,bf16,bf16_cl,tf32_compile,bf16_compile)")
    ap.add_argument("--layout-modes", default="fp32",
                    help="the layouts part's CPU paths besides fp32 (always measured), comma-separated: int8, "
                         "compiled (needs a C++ compiler and waits ~20-40 s a network for it)")
    ap.add_argument("--fast-set", action="append", default=[], metavar="KEY=VALUE",
                    help="the layouts part times the fast preset with this model field changed (a candidate "
                         "design; repeatable; values in YAML), e.g. --fast-set n_blocks=2")
    ap.add_argument("--machine", default=None, help="machine name recorded (default: from the device)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    parts = set(a.parts.split(","))
    card = (torch.cuda.get_device_name() if a.device == "cuda"
            else f"{os.cpu_count()}-core CPU, {torch.get_num_threads()} threads")
    cases = [("compact", 64, 32, 1)] if a.smoke else GENERATOR_CASES[a.device]
    modes, left_out = (a.modes.split(","), None) if a.modes else default_modes(a.device, a.smoke)
    if left_out:
        print(left_out, flush=True)
    if unknown := set(modes) - set(MODES[a.device]):
        ap.error(f"--modes: {sorted(unknown)} not among {MODES[a.device]} on {a.device}")
    layout_modes = ["fp32", *[m for m in a.layout_modes.split(",") if m != "fp32"]]   # float32: the yardstick
    if unknown := set(layout_modes) - set(LAYOUT_MODES):
        ap.error(f"--layout-modes: {sorted(unknown)} not among {list(LAYOUT_MODES)}")
    if "int8" in layout_modes and (problem := int8_problem(torch.device("cpu"))):
        ap.error(f"--layout-modes int8: {problem}")
    if "compiled" in layout_modes and not cpp_compiler_found():
        ap.error("--layout-modes compiled needs a C++ compiler (g++ or clang++) on PATH")
    fast_overrides = {}
    for item in a.fast_set:
        key, _, value = item.partition("=")
        if key not in GeneratorConfig.__dataclass_fields__ or not value:
            ap.error(f"--fast-set {item!r}: expected KEY=VALUE with KEY a model field (e.g. n_blocks=2)")
        fast_overrides[key] = yaml.safe_load(value)
    if fast_overrides:
        try:
            preset("fast", input_nc=3, **fast_overrides)
        except (ConfigError, TypeError) as e:
            ap.error(f"--fast-set: {e}")
    peaks = machine_peaks(a.device, a.smoke, {m.split("_")[0] for m in modes} if "generator" in parts else set())
    frames = dict(n_frames=2, warmup=1) if a.smoke else (dict(n_frames=30, warmup=6) if a.device == "cuda"
                                                         else dict(n_frames=6, warmup=2))
    report = {**run_context(a.machine or card, "bench/suite.py", argv), "machine": a.machine or card,
              "peaks_gflops": peaks, "modes": modes, "modes_left_out": left_out,
              "layout_modes": layout_modes, "fast_overrides": fast_overrides,
              "generator": generator_rows(a.device, cases, modes, peaks, frames)
              if "generator" in parts else [],
              "layouts": layout_rows(a.smoke, layout_modes, fast_overrides=fast_overrides)
              if "layouts" in parts else [],
              "cli": cli_rows(a.smoke, a.cli_frames, a.device) if "cli" in parts else [],
              "training": training_rows(a.device, a.smoke) if "training" in parts else []}
    report["markdown"] = markdown(report)
    print(report["markdown"])
    write_report(a.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
