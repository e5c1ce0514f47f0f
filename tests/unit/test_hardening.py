"""Bad inputs lose nothing and say what is wrong in one line: damaged weights, huge configs and frames,
leftovers of killed runs, file modes, short videos for prepare.py."""
from __future__ import annotations

import os
import signal
import stat
import struct
import subprocess
import sys
import time
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from v2v.cli import main
from v2v.files import remove_leftovers, temporary_beside
from v2v.model.checkpoint import CHECKSUM_KEY, CheckpointError, load_generator, read_metadata, save_generator
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.media.video_io import VideoWriter
from v2v import pipeline

REPO = Path(__file__).resolve().parents[2]
TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1)
SIZE = 32


def tiny_model(**cfg) -> Vid2VidGenerator:
    torch.manual_seed(0)
    return Vid2VidGenerator(GeneratorConfig(**{"input_nc": 3, **TINY, **cfg}))


@pytest.fixture
def model_file(tmp_path) -> Path:
    return save_generator(tiny_model(), tmp_path / "rgb.safetensors")


def cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str, *needles: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[-1], (n, lines[-1])
    return lines[-1]


def rewrite(path: Path, tensors: dict, metadata: dict) -> None:
    """Write a file by hand (not through save_generator, which refuses what we want to test)."""
    save_file(tensors, str(path), metadata=metadata)


# ---- damaged weights ---------------------------------------------------------------------------------------
def test_non_finite_weights_are_refused_at_load_and_by_info(model_file, tmp_path, capsys):
    tensors, meta = load_file(str(model_file)), read_metadata(model_file)
    name = sorted(tensors)[3]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    bad = tmp_path / "nan.safetensors"
    rewrite(bad, tensors, {k: v for k, v in meta.items() if k != CHECKSUM_KEY})   # no checksum: the NaN test bites
    with pytest.raises(CheckpointError, match=f"NaN or inf weights \\({name}"):
        load_generator(bad)
    one_line_error(*cli(capsys, "info", "--model", bad), "NaN or inf", "diverged")
    with pytest.raises(ValueError, match="NaN or inf"):                     # and nobody writes such a file
        save_generator(load_generator(model_file).requires_grad_(False).apply(
            lambda m: m.weight.data.fill_(float("inf")) if isinstance(m, torch.nn.Conv2d) else None),
            tmp_path / "never.safetensors")
    assert not (tmp_path / "never.safetensors").exists()


def test_a_bit_flip_in_the_weights_is_caught_by_the_checksum(model_file, capsys):
    data = bytearray(model_file.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    data[8 + header_len + 101] ^= 0x04                                      # one bit of a weight
    model_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        load_generator(model_file)
    one_line_error(*cli(capsys, "info", "--model", model_file), "checksum")


def test_files_without_a_checksum_still_load(model_file, tmp_path):
    plain = tmp_path / "old.safetensors"
    rewrite(plain, load_file(str(model_file)), {k: v for k, v in read_metadata(model_file).items() if k != CHECKSUM_KEY})
    assert load_generator(plain).cfg == load_generator(model_file).cfg


def test_a_config_asking_for_a_huge_network_is_refused_before_it_is_built(model_file, tmp_path):
    meta = read_metadata(model_file)
    cfg = json.loads(meta["v2v.config"])
    cfg["ngf"] = 1 << 16                      # ~10^11 parameters: building it would exhaust any machine
    huge = tmp_path / "huge.safetensors"
    rewrite(huge, load_file(str(model_file)), {**meta, "v2v.config": json.dumps(cfg)})
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="do not match the network its config describes"):
        load_generator(huge)
    assert time.perf_counter() - t0 < 30


def test_non_finite_frames_stop_the_run(model_file, sketch_folder, tmp_path, capsys, monkeypatch):
    from v2v.sampler import StreamingSampler

    real_step = StreamingSampler.step

    def step(self, source, style=None):
        out = real_step(self, source, style)
        return torch.full_like(out, float("nan")) if self.frame_index == 3 else out

    monkeypatch.setattr(StreamingSampler, "step", step)
    out = tmp_path / "out.mp4"
    one_line_error(*cli(capsys, "generate", "--model", model_file, "--source", sketch_folder, "--out", out, "--quiet"),
                   "NaN/inf at frame 2")
    assert not out.exists()


# ---- frames too large for the machine --------------------------------------------------------------------
def test_a_frame_size_that_cannot_fit_is_refused_up_front(model_file, sketch_folder, tmp_path, capsys, monkeypatch):
    street = load_generator(REPO / "models" / "vid2vid" / "street.safetensors")
    with pytest.raises(pipeline.GenerateError, match="frames of 8000x8000 need at least .* but only 16.0 GB"):
        pipeline.check_generation_memory(street, (8000, 8000), "cpu", available=16 << 30)
    assert pipeline.check_generation_memory(street, (192, 256), "cpu", available=16 << 30) < 100 << 20
    monkeypatch.setattr(pipeline, "available_ram", lambda: 1 << 10)       # a machine with 1 KB free
    out = tmp_path / "out.mp4"
    one_line_error(*cli(capsys, "generate", "--model", model_file, "--source", sketch_folder, "--out", out, "--quiet"),
                   "frames of 32x32 need at least", "smaller size")
    assert not out.exists()


def test_the_estimate_stays_below_a_measured_peak():
    """bench/memory_estimate.py's smallest run: the estimate must be a lower bound of the real peak."""
    r = subprocess.run([sys.executable, str(REPO / "bench" / "memory_estimate.py"), "--smoke"], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads(r.stdout.strip().splitlines()[0])
    assert 0 < row["estimate_mb"] < row["peak_mb"], row


# ---- leftovers, modes ------------------------------------------------------------------------------------
def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_leftovers_of_killed_writers_are_removed_by_the_next_write(model_file, sketch_folder, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    dead = tmp_path / f".out.mp4.{dead_pid()}.x1y2z3.tmp.mp4"
    alive = tmp_path / f".out.mp4.{os.getppid()}.a1b2c3.tmp.mp4"        # a writer that still runs: kept
    dead_model = tmp_path / f".rgb.safetensors.{dead_pid()}.q1w2e3.tmp"
    for p in (dead, alive, dead_model):
        p.write_bytes(b"half-written")
    assert cli(capsys, "generate", "--model", model_file, "--source", sketch_folder, "--out", out, "--quiet")[0] == 0
    assert out.is_file() and not dead.exists() and alive.exists()
    save_generator(tiny_model(), model_file)
    assert not dead_model.exists()
    assert remove_leftovers(out) == [] and alive.exists()


def test_outputs_follow_the_umask(model_file, sketch_folder, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        video, folder, model = tmp_path / "v.mp4", tmp_path / "pngs", tmp_path / "m.safetensors"
        assert cli(capsys, "generate", "--model", model_file, "--source", sketch_folder, "--out", video, "--quiet")[0] == 0
        assert cli(capsys, "generate", "--model", model_file, "--source", sketch_folder, "--out", folder, "--quiet")[0] == 0
        save_generator(tiny_model(), model)
        assert stat.S_IMODE(video.stat().st_mode) == 0o644
        assert stat.S_IMODE(model.stat().st_mode) == 0o644
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
        assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}
        os.umask(0o077)                                                     # a private umask is kept too
        tmp = temporary_beside(tmp_path / "private.mp4")
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_sigterm_during_generate_leaves_nothing(model_file, tmp_path):
    source = tmp_path / "long.mp4"
    with VideoWriter(source, fps=25) as w:
        for i in range(400):
            w.write(np.full((96, 128, 3), i % 255, np.uint8))
    out = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "v2v", "generate", "--model", str(model_file), "--source",
                             str(source), "--out", str(out), "--source-kind", "rgb", "--cuts", "off"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".out.mp4.") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "rgb.safetensors"]


# ---- prepare.py on too short a video ------------------------------------------------------------------------
def test_prepare_refuses_a_one_frame_video(tmp_path):
    from train.prepare import PrepareError, prepare

    clip = tmp_path / "one.mp4"
    with VideoWriter(clip, fps=10) as w:
        w.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(PrepareError, match="at least 2"):
        prepare("sketch", clip, tmp_path / "data", sketch_mode="edges", log=lambda *_: None)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.png"))
    r = subprocess.run([sys.executable, str(REPO / "train" / "prepare.py"), "--task", "sketch", "--sketch-mode", "edges",
                        "--video", str(clip), "--out", str(tmp_path / "data2")], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 2 and "at least 2" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


# ---- the trainer's resume ---------------------------------------------------------------------------------
def test_resume_names_the_changed_fields_and_trims_the_log(tmp_path):
    from train.state import changed_fields, check_resume, load_training_state, trim_loss_log

    saved = {"generator": {"ngf": 8, "n_scales": 1}, "discriminator": {"ndf": 8}, "style_encoder": None}
    now = {"generator": {"ngf": 12, "n_scales": 1}, "discriminator": {"ndf": 8}, "style_encoder": {"ngf": 16}}
    assert changed_fields(saved, now) == ["generator.ngf: 8 -> 12", "style_encoder.ngf: (unset) -> 16"]
    state = tmp_path / "state-00000004"
    state.mkdir()
    (state / "trainer.json").write_text(json.dumps({"step": 4, "epoch": 0, "batch_in_epoch": 4, "networks": saved}))
    with pytest.raises(ValueError, match="generator.ngf: 8 -> 12"):
        check_resume(state, now)
    check_resume(state, saved)

    class OldState:       # a state from before the record: the load's size mismatch becomes one line
        def load_state(self, path):
            raise RuntimeError("Error(s) in loading state_dict for Vid2VidGenerator:\n\tsize mismatch for "
                               "head.weight: copying a param with shape [8] from checkpoint, the shape in current "
                               "model is [12].\n\tsize mismatch for ...")

    with pytest.raises(ValueError, match=r"does not fit the networks of this config \(size mismatch for head.weight"):
        load_training_state(OldState(), state)

    log = tmp_path / "losses.jsonl"
    log.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3, 4, 5, 6)) + '{"step": 7, "lo')
    trim_loss_log(log, 4)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 3, 4]


def test_frames_too_small_for_the_bottleneck_are_padded_up_and_cropped_back():
    cfg = GeneratorConfig(input_nc=3, **TINY)          # size multiple 2, smallest side 4
    assert cfg.min_frame_side == 4
    assert "too small" in cfg.frame_size_problem(2, 2) and "too small" in cfg.frame_size_problem(2, 8)
    assert cfg.frame_size_problem(4, 4) is None and "not a multiple" in cfg.frame_size_problem(5, 4)
    pad = pipeline.Padding.to_multiple((1, 3), 2, 4)
    assert (1 + pad.top + pad.bottom, 3 + pad.left + pad.right) == (4, 4)
    frames = list(pipeline.generate(tiny_model().eval(), _rgb_source(1, 3), shots=None))
    assert len(frames) == 2 and frames[0].frame.shape == (3, 1, 3)


def _rgb_source(h: int, w: int):
    from v2v.sources.base import tensor_source

    return tensor_source(torch.zeros(2, 3, h, w), kind="sketch", fps=10.0)


def test_resume_accepts_a_state_saved_before_a_config_field_existed(tmp_path):
    """A field added later (fg_blend) with its default is no change: the old run resumes."""
    from train.state import check_resume

    now = {"generator": GeneratorConfig(input_nc=3, **TINY).to_dict(), "discriminator": {}, "style_encoder": None}
    old = {**now, "generator": {k: v for k, v in now["generator"].items() if k != "fg_blend"}}
    state = tmp_path / "state-00000002"
    state.mkdir()
    (state / "trainer.json").write_text(json.dumps({"step": 2, "epoch": 0, "batch_in_epoch": 2, "networks": old}))
    check_resume(state, now)
    with pytest.raises(ValueError, match="generator.fg_blend: hard -> paper"):
        check_resume(state, {**now, "generator": {**now["generator"], "fg_blend": "paper"}})
