"""The smallest configuration of the streaming benchmarks runs (so their README figures stay reproducible)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from v2v.sampler import cpp_compiler_found

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(script: str, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), "--smoke", "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_stream_memory_smoke(tmp_path):
    pytest.importorskip("dlib")
    report = run("stream_memory.py", tmp_path)
    runs = report["runs"]
    assert {(r["mode"], r["frames_requested"]) for r in runs} == {("cli", 12), ("cli", 24), ("node", 12), ("node", 24)}
    assert all(r["frames"] == r["frames_requested"] and r["peak_mb"] > 50 for r in runs)
    assert all(r["sampler_fps"] >= r["fps"] > 0 for r in runs if r["mode"] == "cli")


def test_stream_memory_read_ahead_and_write_behind_pairs(tmp_path):
    pytest.importorskip("dlib")
    runs = run("stream_memory.py", tmp_path, "--modes", "cli", "--lengths", "12", "--read-ahead", "0", "2",
               "--write-behind", "0", "4", "--device", "cpu")["runs"]
    assert [(r["read_ahead"], r["write_behind"], r["device"]) for r in runs] == [
        (0, 0, "cpu"), (0, 4, "cpu"), (2, 0, "cpu"), (2, 4, "cpu")]
    assert all(r["frames"] == r["frames_requested"] == 12 for r in runs)


def test_stream_memory_against_other_code(tmp_path):
    """--code runs another checkout's CLI (here this one, as a stand-in for a git worktree) beside this one's runs
    in each --precision, in turn."""
    pytest.importorskip("dlib")
    runs = run("stream_memory.py", tmp_path, "--modes", "cli", "--lengths", "12", "--precision", "fp32", "int8",
               "--code", str(REPO))["runs"]
    assert [(r["code"] is not None, r["precision"]) for r in runs] == [(True, "fp32"), (False, "fp32"), (False, "int8")]
    assert all(r["frames"] == 12 and r["seconds"] > 0 for r in runs)


def test_shot_cuts_smoke(tmp_path):
    pytest.importorskip("dlib")
    result = run("shot_cuts.py", tmp_path)["results"][0]
    assert result["true_cuts"] == [12] and result["detected_cuts"] == [12]
    cut = result["per_cut"][0]
    assert cut["diff_on"] == 0.0 and cut["diff_off"] > 1.0     # restarted: exactly a fresh run; else it bleeds


def test_cut_detector_smoke(tmp_path):
    report = run("cut_detector.py", tmp_path)
    total = report["all"]
    assert total["cuts"] >= 60 and total["found"] == total["cuts"] and total["false_alarms"] == 0
    assert {"footage", "labels", "canny", "pose"} <= set(report["kinds"])
    assert all(c["call_ms"] > 0 for c in report["frame_cost"])


def test_model_cost_runs_and_matches_the_readme():
    """bench/model_cost.py builds the network on the meta device (it crashed there once: autocast has no
    meta backend); its default row is the README's 2018 GFLOPs and 388 M parameters, and NOTES's operator calls."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "model_cost.py")], capture_output=True, text=True,
                          cwd=REPO, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    fg = next(r for r in rows if r["foreground"])
    assert (fg["gflops_per_frame"], fg["params_millions"]) == (2018.3, 387.7)
    assert fg["operator_calls_per_frame"] == 482        # bench/NOTES.md: the per-frame floor on a GPU


def test_train_throughput_smallest_configuration():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "train_throughput.py"), "--preset", "tiny", "--size",
                           "64x64", "--steps", "1", "--warmup", "1"], capture_output=True, text=True, cwd=REPO,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["steps"] == 1 and row["loop_frames_per_s"] > 0 and row["size"] == "64x64"


def test_gpu_bench_smallest_configuration_on_the_cpu(tmp_path):
    """bench/gpu_bench.py (the generator table of bench/run_gpu.sh) runs its smallest case on any machine."""
    out = tmp_path / "gpu.jsonl"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_bench.py"), "--device", "cpu", "--smoke",
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    case, long = [json.loads(line) for line in out.read_text().splitlines()]
    assert (case["preset"], case["size"], case["mode"]) == ("compact", "64x32", "fp32") and case["fps"] > 0
    assert long["frames"] == 12 and long["fps"] > 0 and long["card"].startswith("CPU")


def test_gpu_bench_channels_last_modes():
    """The suite's ``_cl`` modes (fp32_cl on a CPU, bf16_cl on a card) put the model in channels_last and run."""
    from bench import gpu_bench
    assert [gpu_bench.channels_last(m) for m in ("fp32_cl", "bf16_cl", "bf16_cl_compile", "tf32_compile", "bf16")] \
        == [True, True, True, False, False]
    row = gpu_bench.run_case("compact", 64, 32, 1, "fp32_cl", n_frames=2, warmup=1, device="cpu")
    assert row["mode"] == "fp32_cl" and row["fps"] > 0


def test_suite_smallest_configuration(tmp_path):
    """bench/suite.py: every part (generator with FLOPs and share of peak, the CLI, training) at its smallest."""
    pytest.importorskip("dlib")                  # the CLI part's smoke run is the face model
    out = tmp_path / "suite.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "suite.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["peaks_gflops"]["fp32"] > 0 and report["machine"].endswith("threads")
    (gen,) = report["generator"]
    assert (gen["preset"], gen["size"], gen["mode"]) == ("compact", "64x32", "fp32")
    assert gen["gflops_per_frame"] > 0 and 0 < gen["share_of_peak"] and gen["fps"] > 0
    (layout,) = report["layouts"]
    assert layout["model"] == "body" and layout["fast_gflops"] * 4 <= layout["small_gflops"] and layout["fast_ms"] > 0
    assert [(r["frames"], r["device"]) for r in report["cli"]] == [(12, "cpu"), (24, "cpu")]
    assert all(r["fps_end_to_end"] > 0 for r in report["cli"])
    assert report["training"][0]["steps"] == 1 and "| shipped model, CLI |" in report["markdown"]


def test_suite_layouts_on_the_cpus_fast_paths(tmp_path):
    """--layout-modes: the three networks of a layout timed on each CPU path too (float32 always), in turns; the
    fastest paths of fast and small compared; an unknown path refused by name."""
    import torch
    from v2v.quantize import int8_problem
    if int8_problem(torch.device("cpu")):
        pytest.skip(int8_problem(torch.device("cpu")))
    modes = ["int8"] + (["compiled"] if cpp_compiler_found() else [])
    out = tmp_path / "suite.json"
    cmd = [sys.executable, str(REPO / "bench" / "suite.py"), "--smoke", "--parts", "layouts", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd + ["--layout-modes", ",".join(modes)], capture_output=True, text=True, cwd=REPO,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["layout_modes"] == ["fp32", *modes] and report["generator"] == [] == report["cli"]
    (row,) = report["layouts"]
    for m in modes:
        assert all(row[f"{label}_ms_{m}"] > 0 for label in ("shipped", "small", "fast"))
        assert row[f"fast_speedup_vs_small_{m}"] > 0 and f"| body | 32x32 | {m} |" in report["markdown"]
    fastest = {label: min([row[f"{label}_ms"]] + [row[f"{label}_ms_{m}"] for m in modes])
               for label in ("small", "fast")}
    assert row["fast_best_speedup_vs_small"] == pytest.approx(fastest["small"] / fastest["fast"], rel=0.1)
    bad = subprocess.run(cmd + ["--layout-modes", "int4"], capture_output=True, text=True, cwd=REPO, env=env)
    assert bad.returncode == 2 and "int4" in bad.stderr


def test_suite_layouts_time_a_candidate_fast_design(tmp_path):
    """--fast-set: the layouts part builds the fast preset with the given model fields changed and says so; a field
    that is not the model's, or a value its checks refuse, is refused by name."""
    out = tmp_path / "suite.json"
    cmd = [sys.executable, str(REPO / "bench" / "suite.py"), "--smoke", "--parts", "layouts", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sets = ["--fast-set", "ngf=4", "--fast-set", "block_dilation=1", "--fast-set", "skips=true"]
    proc = subprocess.run(cmd + sets, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["fast_overrides"] == {"ngf": 4, "block_dilation": 1, "skips": True}
    (row,) = report["layouts"]
    from bench.model_cost import frame_flops
    from v2v.model.checkpoint import read_config
    from v2v.model.config import PRESETS, preset
    size_keys = {k for sizes in PRESETS.values() for k in sizes}
    shipped = read_config(REPO / "models" / "vid2vid" / "body.safetensors")
    task = {k: v for k, v in shipped.to_dict().items() if k not in size_keys}
    fast, candidate = preset("fast", **task), preset("fast", **{**task, "ngf": 4, "block_dilation": 1, "skips": True})
    assert row["fast_gflops"] == round(frame_flops(candidate, 32, 32) / 1e9, 2) < frame_flops(fast, 32, 32) / 1e9
    assert "fast: the preset with ngf=4, block_dilation=1, skips=True" in report["markdown"]
    for bad, word in (("n_block=2", "n_block"), ("block_dilation=3", "block_dilation"), ("skips", "skips")):
        proc = subprocess.run(cmd + ["--fast-set", bad], capture_output=True, text=True, cwd=REPO, env=env)
        assert proc.returncode == 2 and word in proc.stderr, proc.stderr[-2000:]


def test_fast_path_smallest_configuration(tmp_path):
    """bench/fast_path.py: eager, the compiled step with a cold and a warm compiler cache, and the int8 step, each in
    its own process; the compiled steps agree with the eager network given the same history, the int8 one differs."""
    if not cpp_compiler_found():
        pytest.skip("torch.compile on a CPU needs a C++ compiler")
    report = run("fast_path.py", tmp_path)
    assert [r["mode"] for r in report["rows"]] == ["eager", "compiled_cold", "compiled_warm", "int8"]
    eager, cold, warm, int8 = report["rows"]
    assert not eager["compile"] and cold["compile"] and warm["compile"] and int8["int8"] and not int8["compile"]
    assert cold["step_max_abs"] < 1e-3 and warm["step_max_abs"] < 1e-3 and all(r["fps"] > 0 for r in report["rows"])
    assert 0 < int8["step_mean_abs"] < 0.1 and int8["first_compiled_frame_s"] > 0
    assert "| tiny, 32x32 | eager |" in report["markdown"] and "| tiny, 32x32 | int8 |" in report["markdown"]


def test_channels_last_accuracy_smallest_configuration(tmp_path):
    """bench/channels_last_accuracy.py: both layouts timed and held against float64; the norm rows show the
    one-pass variance of group_norm in channels_last that keeps the generator in the default layout."""
    report = run("channels_last_accuracy.py", tmp_path)
    (row,) = report["models"]
    assert row["model"] == "body" and row["default_ms"] > 0 and row["channels_last_ms"] > 0
    assert row["default_frame_err"] < 3e-4
    errs = {(r["op"], r["layout"]): r["max_abs_err"] for r in report["norms"]}
    assert errs[("group_norm", "default")] < 1e-4 and errs[("instance_norm", "default")] < 1e-4
    assert "| body, 32x32 |" in report["markdown"]


def test_int8_agreement_smallest_configuration(tmp_path):
    """bench/int8_agreement.py: two committed segments through the street model, float32, int8 and float32 from a
    perturbed source; per shot the int8 frames are close to float32's but not equal to them."""
    from v2v.quantize import int8_problem
    import torch
    if int8_problem(torch.device("cpu")):
        pytest.skip(int8_problem(torch.device("cpu")))
    report = run("int8_agreement.py", tmp_path)
    (result,) = report["results"]
    assert result["task"] == "street" and result["detected_cuts"] == result["true_cuts"] == [20]
    assert [s["shot"] for s in result["shots"]] == [0, 1]
    for shot in result["shots"]:
        assert 35 < shot["psnr_mean"] < float("inf") and 0 < shot["levels_mean"] < 2
        assert shot["perturbed_psnr_mean"] > 35
    assert "| street, 256x192 | 1 (vid2vid_carphone_60f) |" in report["markdown"]


def test_suite_measures_only_the_peaks_its_generator_rows_use():
    """A bf16 matmul peak takes about a minute on a CPU without native bf16: the layout, CLI and training parts
    need no peak, the generator part only those of its modes."""
    from bench import suite

    assert suite.machine_peaks("cpu", True, set()) == {}
    assert set(suite.machine_peaks("cpu", True, {"fp32"})) == {"fp32"}


def test_suite_leaves_bf16_out_on_a_cpu_without_it_unless_asked():
    """On a CPU without native bf16 the bf16 rows emulate it for minutes: left out of the default, and said so."""
    from bench import suite

    assert suite.default_modes("cpu", False, cpu_bf16=True) == (["fp32", "bf16", "fp32_cl"], None)
    modes, note = suite.default_modes("cpu", False, cpu_bf16=False)
    assert modes == ["fp32", "fp32_cl"] and "--modes fp32,bf16" in note
    assert suite.default_modes("cpu", True, cpu_bf16=False) == (["fp32"], None)
    assert suite.default_modes("cuda", False, cpu_bf16=False)[0] == suite.MODES["cuda"]
    assert isinstance(suite.native_cpu_bf16(), bool)
