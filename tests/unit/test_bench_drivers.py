"""The bench/*.sh drivers run end to end in a sandbox copy of the repo, with a stand-in interpreter
(tests/unit/_driver_stand_in.py) that parses every command with the real script's own parser and fakes only
the training and the measuring: a renamed flag, an unknown task or trainer key, a model file that no step made,
or a broken step of a driver's own shell or heredoc logic fails here instead of on a short GPU lease."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAND_IN = Path(__file__).with_name("_driver_stand_in.py")
pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """The repo's drivers and scripts copied (scripts find the repo root from their own resolved path, so a
    link would write into the real repo), the packages linked, and empty stand-ins for the shipped models."""
    root = tmp_path / "repo"
    (root / "bench").mkdir(parents=True)
    for f in (REPO / "bench").iterdir():
        if f.is_file():
            shutil.copy(f, root / "bench" / f.name)
    shutil.copytree(REPO / "scripts", root / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("v2v", "train", "docs"):
        (root / name).symlink_to(REPO / name)
    (root / "models" / "vid2vid").mkdir(parents=True)
    for f in (REPO / "models" / "vid2vid").glob("*.safetensors"):
        (root / "models" / "vid2vid" / f.name).touch()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'Stand-in Card'\n")
    smi.chmod(0o755)
    return root


def run_driver(root: Path, args: list[str], **env: str) -> list[dict]:
    log = root / "stand_in.jsonl"
    log.unlink(missing_ok=True)
    full_env = {**os.environ, "PY": f"{sys.executable} {STAND_IN}", "STAND_IN_LOG": str(log),
                "PATH": f"{root.parent / 'bin'}:{os.environ['PATH']}", **env}
    proc = subprocess.run(["bash", *args], cwd=root, env=full_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "FAILED" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:]
    return [json.loads(line) for line in log.read_text().splitlines()]


def calls(log: list[dict], script: str) -> list[dict]:
    return [c for c in log if c["script"] == script]


def test_cpu_study_trains_every_variant_then_evaluates_them(sandbox):
    log = run_driver(sandbox, ["bench/cpu_study.sh"], TASKS="body street", MODELS="out/m", RUNS="out/r",
                     RESULTS="out/results")
    trained = [c["parsed"]["tasks"] for c in calls(log, "scripts/footage_models.py")]
    assert trained == ["body,body_nodv,body_perframe",
                       "street,street_realstart,street_maskreg_genonly,street_nomaskreg,street_perframe"]
    results = sorted(p.name for p in (sandbox / "out" / "results").iterdir())
    assert results == ["body.json", "body_first_frame.json", "street.json", "street_first_frame.json"]
    first = [c for c in calls(log, "bench/evaluate.py") if c["parsed"]["first_frame"]]
    assert len(first) == 2 and all(len(c["parsed"]["models"]) == len(c["parsed"]["names"]) for c in first)


def test_cpu_study_trains_the_fast_preset_beside_ours_at_the_same_clip_count(sandbox):
    log = run_driver(sandbox, ["bench/cpu_study.sh"], TASKS="face_fast street_fast", MODELS="out/m", RUNS="out/r",
                     RESULTS="out/results")
    trained = [c["parsed"] for c in calls(log, "scripts/footage_models.py")]
    assert [(t["tasks"], t["steps"]) for t in trained] == [("face,face_fast", 200), ("street,street_fast", 300)]
    results = sorted(p.name for p in (sandbox / "out" / "results").iterdir())
    assert results == ["face_fast.json", "face_fast_first_frame.json", "street_fast.json",
                       "street_fast_first_frame.json"]
    evaluated = calls(log, "bench/evaluate.py")
    assert [(c["parsed"]["task"], c["parsed"]["first_frame"]) for c in evaluated] == [
        ("face", False), ("face", True), ("street", False), ("street", True)]
    assert all([m.rsplit("/", 1)[1] for m in c["parsed"]["models"]] == [f"{c['parsed']['task']}.safetensors",
               f"{c['parsed']['task']}_fast.safetensors"] for c in evaluated)
    assert all(c["parsed"]["real_video"] for c in evaluated if c["parsed"]["task"] == "street")


def test_cpu_study_face_seeds_trains_each_seed_apart_and_scores_them_together(sandbox):
    """Each seed's models in their own folders (a shared run folder would resume the other seed's run), then one
    table with the seed-0 models where they exist."""
    models = sandbox / "out" / "m"
    (models / "design2").mkdir(parents=True)
    (models / "face.safetensors").touch()
    (models / "design2" / "face_fast.safetensors").touch()
    log = run_driver(sandbox, ["bench/cpu_study.sh"], TASKS="face_seeds", SEEDS="1 2", MODELS="out/m", RUNS="out/r",
                     RESULTS="out/results")
    trained = [c["parsed"] for c in calls(log, "scripts/footage_models.py")]
    assert [(t["tasks"], t["models"], t["runs"]) for t in trained] == [
        (tasks, f"out/m/seed{s}{sub}", f"out/r/seed{s}{sub}")
        for s in (1, 2) for tasks, sub in (("face", ""), ("face_fast", "/design2"), ("face_fast", "/candidate3"))]
    assert all(t["steps"] == 200 and f"seed={s}" in t["overrides"] for t, s in zip(trained, (1, 1, 1, 2, 2, 2)))
    assert "model.n_downsample=2" in trained[1]["overrides"] and "model.n_downsample=2" not in trained[2]["overrides"]
    assert "model.skips=true" in trained[2]["overrides"] and "model.skips=true" not in trained[0]["overrides"]
    scored, first = calls(log, "bench/evaluate.py")
    assert not scored["parsed"]["first_frame"] and first["parsed"]["first_frame"]
    assert scored["parsed"]["names"] == ["ours, seed 0", "second design, seed 0"] + [
        f"{m}, seed {s}" for s in (1, 2) for m in ("ours", "second design", "third candidate")]
    assert scored["parsed"]["models"][-1] == "out/m/seed2/candidate3/face_fast.safetensors"


def test_cpu_study_fast_seeds_pairs_the_fast_preset_with_ours_per_seed_and_keeps_models_already_made(sandbox):
    models = sandbox / "out" / "m"
    (models / "seed1").mkdir(parents=True)
    (models / "seed1" / "face.safetensors").touch()   # face_seeds' ours at seed 1: not trained again
    (models / "street.safetensors").touch()           # a seed-0 model: scored beside the others
    log = run_driver(sandbox, ["bench/cpu_study.sh"], TASKS="fast_seeds", SEEDS="1 2", MODELS="out/m", RUNS="out/r",
                     RESULTS="out/results")
    trained = [c["parsed"] for c in calls(log, "scripts/footage_models.py")]
    assert [(t["tasks"], t["steps"], t["models"], t["runs"]) for t in trained] == [
        ("face_fast", 200, "out/m/seed1", "out/r/seed1"), ("street,street_fast", 300, "out/m/seed1", "out/r/seed1"),
        ("face,face_fast", 200, "out/m/seed2", "out/r/seed2"), ("street,street_fast", 300, "out/m/seed2", "out/r/seed2")]
    assert all(f"seed={s}" in t["overrides"] for t, s in zip(trained, (1, 1, 2, 2)))
    assert ["data.crop_size=[96,128]" in t["overrides"] for t in trained] == [False, True, False, True]
    evaluated = calls(log, "bench/evaluate.py")
    assert [(c["parsed"]["task"], c["parsed"]["first_frame"]) for c in evaluated] == [
        ("face", False), ("face", True), ("street", False), ("street", True)]
    assert evaluated[0]["parsed"]["names"] == [f"{m}, seed {s}" for s in (1, 2) for m in ("ours", "fast")]
    assert evaluated[2]["parsed"]["names"] == ["ours, seed 0"] + [
        f"{m}, seed {s}" for s in (1, 2) for m in ("ours", "fast")]
    assert evaluated[2]["parsed"]["models"][-1] == "out/m/seed2/street_fast.safetensors"
    assert evaluated[2]["parsed"]["real_video"] and not evaluated[0]["parsed"]["real_video"]


def test_cpu_study_candidate_trains_a_fast_design_per_seed_beside_ours(sandbox):
    """TASKS=candidate: the fast preset with CANDIDATE_SET's fields on both recipes per seed, in its own folder;
    ours trained only where no model of that seed exists; each task's pairs in one table; no name, no run."""
    models = sandbox / "out" / "m"
    (models / "seed1").mkdir(parents=True)
    (models / "seed1" / "face.safetensors").touch()   # ours at seed 1 from fast_seeds: kept
    log = run_driver(sandbox, ["bench/cpu_study.sh"], TASKS="candidate", CANDIDATE="c5", SEEDS="1",
                     CANDIDATE_SET="n_blocks=2 block_dilation=2", MODELS="out/m", RUNS="out/r", RESULTS="out/results")
    trained = [c["parsed"] for c in calls(log, "scripts/footage_models.py")]
    assert [(t["tasks"], t["steps"], t["models"], t["runs"]) for t in trained] == [
        ("face_fast", 200, "out/m/seed1/c5", "out/r/seed1/c5"), ("street", 300, "out/m/seed1", "out/r/seed1"),
        ("street_fast", 300, "out/m/seed1/c5", "out/r/seed1/c5")]
    assert ["model.block_dilation=2" in t["overrides"] and "model.n_blocks=2" in t["overrides"] for t in trained] \
        == [True, False, True]
    assert all("seed=1" in t["overrides"] for t in trained)
    evaluated = calls(log, "bench/evaluate.py")
    assert [(c["parsed"]["task"], c["parsed"]["first_frame"]) for c in evaluated] == [
        ("face", False), ("face", True), ("street", False), ("street", True)]
    assert evaluated[2]["parsed"]["names"] == ["ours, seed 1", "c5, seed 1"]
    assert evaluated[2]["parsed"]["models"] == ["out/m/seed1/street.safetensors",
                                                "out/m/seed1/c5/street_fast.safetensors"]
    proc = subprocess.run(["bash", "bench/cpu_study.sh"], cwd=sandbox, capture_output=True, text=True,
                          env={**os.environ, "PY": f"{sys.executable} {STAND_IN}", "TASKS": "candidate",
                               "STAND_IN_LOG": str(sandbox / "log2"), "RESULTS": "out/results"})
    assert proc.returncode != 0 and "CANDIDATE=<name>" in proc.stderr and not (sandbox / "log2").exists()


def test_cpu_study_names_an_unknown_task(sandbox):
    proc = subprocess.run(["bash", "bench/cpu_study.sh"], cwd=sandbox, capture_output=True, text=True,
                          env={**os.environ, "PY": f"{sys.executable} {STAND_IN}", "TASKS": "boat",
                               "STAND_IN_LOG": str(sandbox / "log"), "RESULTS": "out/results"})
    assert proc.returncode == 2 and "unknown task boat" in proc.stderr


def test_gpu_study_trains_extends_and_evaluates(sandbox):
    env = dict(OUT="out/card", MODELS="out/m", RUNS="out/r", RESULTS="out/results", TRAIN_SECONDS="5")
    log = run_driver(sandbox, ["bench/gpu_study.sh", "train"], **env)
    assert len(calls(log, "scripts/footage_models.py")) == 8
    archives = sorted(p.name for p in (sandbox / "out" / "card").glob("models_*.tgz"))
    assert archives == ["models_body.tgz", "models_face.tgz", "models_street.tgz", "models_street_ablations.tgz"]
    run_driver(sandbox, ["bench/gpu_study.sh", "extend", "body", "60"], **env)
    record = json.loads((sandbox / "out" / "m" / "body_long.json").read_text())
    assert record["task"] == "body_long" and record["command"].endswith("--resume") and record["steps"] == 1501
    log = run_driver(sandbox, ["bench/gpu_study.sh", "evaluate"], **env)
    body = [c for c in calls(log, "bench/evaluate.py") if c["parsed"]["task"] == "body"]
    assert [Path(m).stem for m in body[0]["parsed"]["models"]] == ["body", "body_long", "body_perframe"]
    assert len(calls(log, "bench/evaluate.py")) == 6


def test_run_gpu_measures_then_trains_in_its_sandbox(sandbox):
    log = run_driver(sandbox, ["bench/run_gpu.sh"], OUT="out/card")
    assert [c["script"] for c in log] == ["bench/gpu_bench.py", "bench/train_throughput.py",
                                          "scripts/footage_models.py"]
    assert calls(log, "scripts/footage_models.py")[0]["parsed"]["mixed_precision"] == "bf16"
    assert (sandbox / "out" / "card" / "street.json").is_file()


def test_gpu_general_trains_resumes_and_returns_only_new_steps(sandbox):
    (sandbox / "models" / "vid2vid" / "bodies.safetensors").unlink()         # a task with no shipped model yet
    env = dict(OUT="out/card", MODELS="out/m", RUNS="out/r", TRAIN_SECONDS="5", TASKS="faces bodies",
               EXTRA="data.load_size=[72,88] data.crop_size=[72,88]", FAST_PATH="1")
    log = run_driver(sandbox, ["bench/gpu_general.sh"], **env)
    train = {c["parsed"]["tasks"]: c["parsed"]["overrides"] for c in calls(log, "scripts/footage_models.py")}
    assert sorted(train) == ["bodies", "faces"]                              # both at once, in the background
    faces, bodies = train["faces"], train["bodies"]
    assert "init_from=models/vid2vid/faces.safetensors" in faces             # a shipped model continues
    assert not any(kv.startswith("init_from") for kv in bodies)              # no shipped one: the recipe's start
    assert "data.val_fraction=0" in faces and "data.crop_size=[72,88]" in bodies
    assert calls(log, "bench/suite.py")[0]["parsed"]["modes"] == "tf32,tf32_compile,bf16_compile"
    assert calls(log, "bench/fast_path.py")[0]["parsed"]["device"] == "cuda"
    run_driver(sandbox, ["bench/gpu_general.sh", "more", "60"], **env)
    more = json.loads((sandbox / "out" / "card" / "faces_more.json").read_text())
    assert more["steps"] == 4 and more["command"].endswith("--resume")


def test_evaluate_models_passes_each_row_its_model(sandbox, tmp_path):
    script = ('source bench/evaluate_models.sh; evaluate face out_name "a:first row" "b:second, row" '
              '-- --first-frame')
    for name in ("a", "b"):
        (sandbox / "out" / "m").mkdir(parents=True, exist_ok=True)
        (sandbox / "out" / "m" / f"{name}.safetensors").touch()
    log = run_driver(sandbox, ["-c", script], MODELS="out/m", RESULTS="out/results", MACHINE="here",
                     PY=f"{sys.executable} {STAND_IN}")
    (call,) = log
    assert call["parsed"]["names"] == ["first row", "second, row"] and call["parsed"]["first_frame"]
    assert call["parsed"]["models"] == ["out/m/a.safetensors", "out/m/b.safetensors"]
