"""End-to-end trainer runs on the tiny config (CPU, 64x64 toy data): learning, export, resume, DDP."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from train.data import write_toy_dataset

REPO = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, str(REPO / "train" / "train.py"), "--config", str(REPO / "train/configs/tiny.yaml")]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), n_sequences=3, n_frames=8, height=64, width=64)


def run(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=300, **kw)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def losses(out):
    return [json.loads(line) for line in (Path(out) / "losses.jsonl").read_text().splitlines()]


def test_tiny_run_learns_and_writes_a_loadable_model(toy, tmp_path):
    from v2v.model.checkpoint import load_generator, read_metadata
    from v2v.sampler import StreamingSampler

    out = tmp_path / "run"
    r = run(TRAIN + ["--set", f"data.root={toy}", "--out", str(out), "--set", "max_steps=20"])
    log = r.stdout + r.stderr
    assert "clip length 3 frames" in log and "step 10: clip length 4 frames" in log  # schedule logged
    assert "validation" in log and "warping_error" in log
    hist = losses(out)
    assert [h["step"] for h in hist] == list(range(1, 21))
    assert all(h["seconds"] > 0 and h["frames_per_s"] > 0 for h in hist)   # where the time goes, per step
    first, last = hist[:5], hist[-5:]
    mean = lambda hs, k: sum(h[k] for h in hs) / len(hs)  # noqa: E731
    assert mean(last, "loss_g") < 0.7 * mean(first, "loss_g")
    assert mean(last, "flow_epe") < mean(first, "flow_epe")
    assert mean(last, "loss_d") < mean(first, "loss_d")
    model = load_generator(out / "model.safetensors")
    meta = json.loads(read_metadata(out / "model.safetensors")["v2v.train"])
    assert meta["step"] == 20 and meta["finished"] is True and meta["frame_size"] == [64, 64]
    sampler = StreamingSampler(model)
    src = torch.zeros(model.cfg.input_nc, 64, 64)
    src[0] = 1
    for _ in range(3):
        frame = sampler.step(src)
    assert frame.shape[-3:] == (3, 64, 64) and torch.isfinite(frame).all()
    assert list((out / "samples").glob("*.png")) and list((out / "logs").rglob("events.out.tfevents*"))


class _SlowItems(torch.utils.data.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        time.sleep(0.2)
        return i


def test_loader_workers_survive_the_stop_signals_the_main_process_handles():
    """The trainer's workers ignore SIGTERM/SIGINT; PyTorch's own worker handler dies of SIGTERM, and the main
    process then fails its next fetch ("worker exited unexpectedly") instead of finishing its step and saving."""
    from train.train import _workers_leave_stops_to_main

    loader = torch.utils.data.DataLoader(_SlowItems(), num_workers=2, worker_init_fn=_workers_leave_stops_to_main)
    it = iter(loader)
    got = [int(next(it))]
    for w in it._workers:
        os.kill(w.pid, signal.SIGTERM)
    got += [int(x) for x in it]
    assert got == list(range(6))


def test_loader_workers_survive_a_stop_signal_during_their_start_up():
    """Workers are forked with SIGINT/SIGTERM blocked, so one that arrives before they ignore them is dropped,
    not fatal (a group signal at an epoch's start, when the trainer forks new workers)."""
    from train.train import _stop_signals_blocked, _workers_leave_stops_to_main

    loader = torch.utils.data.DataLoader(_SlowItems(), num_workers=2, worker_init_fn=_workers_leave_stops_to_main)
    with _stop_signals_blocked():
        it = iter(loader)
        for w in it._workers:                 # at once: before they can have run their init function
            os.kill(w.pid, signal.SIGTERM)
    assert [int(x) for x in it] == list(range(6))


def test_a_signal_to_the_whole_process_group_stops_a_run_with_loader_workers_cleanly(toy, tmp_path):
    """`timeout`, Ctrl-C and cluster time limits signal every process of the group, data workers included: the
    run must still finish its step and save (before, the workers died first and the trainer crashed)."""
    out = tmp_path / "run"
    proc = subprocess.Popen(TRAIN + ["--set", f"data.root={toy}", "--set", "max_steps=50", "--set", "num_workers=2",
                                     "--set", "val_every=0", "--set", "sample_every=0", "--set", "save_every=0",
                                     "--set", "log_with=null", "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        f = out / "losses.jsonl"
        if f.exists() and len(f.read_text().splitlines()) >= 2:
            os.killpg(proc.pid, signal.SIGTERM)
            break
        time.sleep(0.05)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0 and "stopped by signal" in text, text[-3000:]
    assert "killed by signal" not in text and "Traceback" not in text, text[-3000:]
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert json.loads((out / "checkpoints" / latest / "trainer.json").read_text())["step"] == len(losses(out))


def test_interrupt_and_resume_continue_exactly(toy, tmp_path):
    common = ["--set", f"data.root={toy}", "--set", "max_steps=8", "--set", "decay_start=4",
              "--set", "val_every=0", "--set", "sample_every=0", "--set", "save_every=0", "--set", "log_with=null"]
    ref = tmp_path / "ref"
    run(TRAIN + common + ["--out", str(ref)])
    ref_hist = {h["step"]: h for h in losses(ref)}

    out = tmp_path / "cut"
    out.mkdir()
    proc = subprocess.Popen(TRAIN + common + ["--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        f = out / "losses.jsonl"
        if f.exists() and len(f.read_text().splitlines()) >= 2:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, text[-3000:]
    assert "stopped by signal" in text, text[-2000:]
    stopped = len(losses(out))
    assert 2 <= stopped < 8
    state = json.loads((out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
                        / "trainer.json").read_text())
    assert state["step"] == stopped

    # what a kill -9 leaves: log lines of steps after the saved state, a half-written state and model file
    log = out / "losses.jsonl"
    log.write_text(log.read_text() + json.dumps({"step": stopped + 1, "loss_g": 0.0}) + "\n" + '{"step": ')
    (out / "checkpoints" / ".tmp-state-00000099").mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = out / f".model.safetensors.{int(dead.stdout)}.abcd1234.tmp"
    leftover.write_bytes(b"half")

    changed = subprocess.run(TRAIN + common + ["--out", str(out), "--resume", "--set", "model.ngf=12"],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
    assert changed.returncode == 2 and "Traceback" not in changed.stderr, changed.stderr[-3000:]
    error = changed.stderr.strip().splitlines()[-1]
    assert "config changed" in error and "generator.ngf: 8 -> 12" in error, error

    r = run(TRAIN + common + ["--out", str(out), "--resume"])
    assert "resumed from" in r.stdout + r.stderr and f"at step {stopped}" in r.stdout + r.stderr
    assert not (out / "checkpoints" / ".tmp-state-00000099").exists() and not leftover.exists()
    hist = losses(out)
    assert [h["step"] for h in hist] == list(range(1, 9))
    nxt = hist[stopped]  # the first step after the interruption
    assert nxt["step"] == stopped + 1
    for key in ("loss_g", "loss_d", "flow_epe", "gan"):
        assert nxt[key] == pytest.approx(ref_hist[stopped + 1][key], rel=1e-6, abs=1e-7), key
    assert (out / "weights_rank0.sha256").read_text() == (ref / "weights_rank0.sha256").read_text()


needs_accelerate = pytest.mark.skipif(
    shutil.which("accelerate") is None and not (Path(sys.executable).parent / "accelerate").exists(),
    reason="accelerate CLI not installed")


def ddp_run(toy: Path, out: Path, steps: int, *sets: str) -> None:
    """``accelerate launch`` with 2 CPU processes on the tiny config, ``steps`` steps, then ``--set`` each of
    ``sets``; fails unless both processes ran and the model was written."""
    launcher = str(Path(sys.executable).parent / "accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no",
                        str(REPO / "train" / "train.py"), "--config", str(REPO / "train/configs/tiny.yaml"),
                        "--set", f"data.root={toy}", "--out", str(out), "--set", f"max_steps={steps}",
                        "--set", "val_every=0", "--set", "sample_every=0", "--set", "log_with=null",
                        "--set", "generated_start=0.5", *[a for kv in sets for a in ("--set", kv)]],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 process(es)" in r.stdout + r.stderr
    assert (out / "model.safetensors").is_file()


@needs_accelerate
def test_two_process_ddp_ends_with_identical_weights(toy, tmp_path):
    out = tmp_path / "ddp"
    ddp_run(toy, out, 4)
    from train.config import load_config
    from train.train import starts_generated
    cfg = load_config(REPO / "train/configs/tiny.yaml", ["generated_start=0.5"])
    assert len({starts_generated(s, cfg) for s in range(4)}) == 2   # both kinds of clip ran under DDP
    d0 = (out / "weights_rank0.sha256").read_text()
    d1 = (out / "weights_rank1.sha256").read_text()
    assert d0 == d1


@needs_accelerate
def test_a_compiled_generator_under_ddp_keeps_the_processes_in_step(toy, tmp_path):
    """compile: true wraps the DDP module in torch.compile (the multi-GPU training path): the gradients are still
    averaged across processes, so both end with the same weights (a compiled forward that skipped DDP's would not)."""
    from v2v.sampler import cpp_compiler_found
    if not cpp_compiler_found():
        pytest.skip("torch.compile on a CPU needs a C++ compiler")
    out = tmp_path / "ddp_compiled"
    ddp_run(toy, out, 2, "compile=true")
    assert len(losses(out)) == 2
    assert (out / "weights_rank0.sha256").read_text() == (out / "weights_rank1.sha256").read_text()


def test_bad_dataset_stops_before_training(toy, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(toy, bad)
    victim = bad / "train" / "toy000" / "target" / "000003.png"
    victim.write_bytes(b"broken")
    r = subprocess.run(TRAIN + ["--set", f"data.root={bad}", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and str(victim) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "losses.jsonl").exists()


def test_frames_of_the_size_multiple_are_refused_before_training(toy, tmp_path):
    """4x4 crops leave the tiny network (size multiple 4) a 1x1 bottleneck: refused up front, naming the size."""
    r = subprocess.run(TRAIN + ["--set", f"data.root={toy}", "--set", "data.crop_size=[4,4]", "--out",
                                str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "too small for this network" in r.stderr and "smallest frames it takes are 8x8" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "o" / "losses.jsonl").exists()
