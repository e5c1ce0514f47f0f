"""Trainer options in-process on 32x32 toy data: foreground prior + style encoder + GMM, backprop through the
clip, spatial growth from a coarser model (coarse scales frozen for finest_only_steps), clips that start from
no history (generated_start)."""
import json
from pathlib import Path

import pytest
import torch

from train.data import write_toy_dataset
from train.config import TrainConfig
from train.train import starts_generated, train
from v2v.sampler import cpp_compiler_found

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), n_sequences=2, n_frames=6, height=32, width=32,
                             val_sequences=0)


def base(root, out, **kw):
    cfg = dict(out_dir=str(out), data={"root": str(root), "use_instance": True, "flow_preset": "fast"},
               preset="tiny", disc={"ndf": 8, "n_layers": 2, "num_d": 1, "n_temporal_scales": 1},
               loss={"vgg": 0.0}, max_steps=2, n_frames_max=4, double_every=0, log_with=None,
               val_every=0, sample_every=0, save_every=0, seed=1)
    cfg.update(kw)
    return TrainConfig(**cfg)


def test_foreground_style_gmm_and_clip_backprop(toy, tmp_path):
    from v2v.model.checkpoint import load_generator, load_style_encoder, read_metadata

    cfg = base(toy, tmp_path / "fg", model={"foreground": True, "fg_label_ids": [1], "style_nc": 3},
               detach_prev=False, style_gmm_components=2)
    result = train(cfg)
    assert result["finished"] and all(torch.isfinite(torch.tensor(h["loss_g"])) for h in result["history"])
    path = tmp_path / "fg" / "model.safetensors"
    model = load_generator(path)
    assert model.cfg.foreground and model.cfg.fg_label_ids == (1,) and model.cfg.style_nc == 3
    gmm = json.loads(read_metadata(path)["v2v.style_gmm"])
    assert set(gmm) <= {"0", "1", "2"} and "0" in gmm
    g0 = gmm["0"]
    assert len(g0["means"][0]) == 3 and abs(sum(g0["weights"]) - 1) < 1e-6 and g0["n_samples"] >= 1
    encoder = load_style_encoder(path)                  # E rides along, for styles from a reference image
    assert encoder.style_nc == 3 and encoder.config["ngf"] == cfg.style_encoder_ngf


def test_a_style_run_stopped_by_a_signal_still_gets_its_mixtures(toy, tmp_path, monkeypatch):
    """A budget's SIGTERM / Ctrl-C stops a style run early: its model file must still be a usable style model."""
    import signal

    import train.train as trainer
    from v2v.model.checkpoint import read_metadata

    real = trainer.starts_generated

    def interrupt_once(step, cfg):                      # Ctrl-C during the first step
        if step == 0:
            signal.raise_signal(signal.SIGINT)
        return real(step, cfg)

    monkeypatch.setattr(trainer, "starts_generated", interrupt_once)
    result = train(base(toy, tmp_path / "stop", model={"style_nc": 3}, style_gmm_components=2, max_steps=5))
    meta = read_metadata(tmp_path / "stop" / "model.safetensors")
    assert not result["finished"] and json.loads(meta["v2v.train"])["step"] == 1
    assert "0" in json.loads(meta["v2v.style_gmm"])


def test_a_style_model_without_its_encoder_gets_it_back_from_its_training_state(toy, tmp_path):
    """scripts/add_style_encoder.py: E of the state the file was exported at, the generator checked."""
    import subprocess
    import sys

    from train.state import latest_state
    from v2v.model.checkpoint import load_generator, load_style_encoder, read_metadata, save_generator

    train(base(toy, tmp_path / "s", model={"style_nc": 3}, save_every=1))   # states of steps 1 and 2
    path, state = tmp_path / "s" / "model.safetensors", latest_state(tmp_path / "s")
    encoder, model, metadata = load_style_encoder(path), load_generator(path), read_metadata(path)
    old = tmp_path / "old.safetensors"                  # as files were written before they carried E
    save_generator(model, old, extra_metadata={k: metadata[k] for k in ("v2v.train", "v2v.style_gmm")})
    script = [sys.executable, "scripts/add_style_encoder.py", str(old)]
    root = Path(__file__).resolve().parents[2]
    first = tmp_path / "s" / "checkpoints" / "state-00000001"          # another step's state is refused
    proc = subprocess.run([*script, str(first)], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 2 and "does not hold the generator" in proc.stderr and "Traceback" not in proc.stderr
    assert not load_generator(old).file_metadata.get("v2v.style_encoder")             # the file untouched
    proc = subprocess.run([*script, str(state)], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
    again = load_style_encoder(old)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), encoder.state_dict().values()))
    assert read_metadata(old)["v2v.style_gmm"] == metadata["v2v.style_gmm"]


def test_spatial_growth_starts_from_the_coarser_model(toy, tmp_path):
    from v2v.model.checkpoint import load_generator

    train(base(toy, tmp_path / "coarse", max_steps=1))
    coarse = load_generator(tmp_path / "coarse" / "model.safetensors")
    train(base(toy, tmp_path / "fine", model={"n_scales": 2}, max_steps=2, finest_only_steps=1,
               init_from=str(tmp_path / "coarse" / "model.safetensors")))
    fine = load_generator(tmp_path / "fine" / "model.safetensors")
    assert fine.cfg.n_scales == 2
    # step 1 trained only the new finest scale; step 2 trained everything: the coarse scale moved once
    c, f = coarse.scales[0].state_dict(), fine.scales[0].state_dict()
    changed = [k for k in c if not torch.equal(c[k], f[k])]
    assert changed  # it trained after finest_only_steps
    train(base(toy, tmp_path / "frozen", model={"n_scales": 2}, max_steps=1, finest_only_steps=1,
               init_from=str(tmp_path / "coarse" / "model.safetensors")))
    frozen = load_generator(tmp_path / "frozen" / "model.safetensors").scales[0].state_dict()
    assert all(torch.equal(c[k], frozen[k]) for k in c)  # untouched while only the finest scale trains


def _record_generator_calls(monkeypatch):
    from v2v.model.generator import Vid2VidGenerator

    calls = []
    forward = Vid2VidGenerator.forward

    def spy(self, sources, prev_frames=None, *, style=None, force_hallucinate=False):
        calls.append((None if prev_frames is None else tuple(prev_frames.shape), force_hallucinate))
        return forward(self, sources, prev_frames, style=style, force_hallucinate=force_hallucinate)

    monkeypatch.setattr(Vid2VidGenerator, "forward", spy)
    return calls


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_generated_start_trains_the_samplers_first_frames(toy, tmp_path, monkeypatch, share):
    calls = _record_generator_calls(monkeypatch)
    # style encoder + fg prior: the padded input windows also feed the per-frame style features
    result = train(base(toy, tmp_path / "gs", max_steps=1, generated_start=share,
                        model={"foreground": True, "fg_label_ids": [1], "style_nc": 3}))
    assert result["finished"] and torch.isfinite(torch.tensor(result["history"][0]["loss_g"]))
    L, T = 2, 4
    prev = (1, L, 3, 32, 32)
    if share == 0.0:   # the paper: L real frames, then T - L generated from real-started history
        assert calls == [(prev, False)] * (T - L)
    else:              # the sampler's start: from nothing, then padded generated history, then free running
        assert calls == [(None, True), (prev, True)] + [(prev, False)] * (T - L)


def test_generated_start_share_is_reproducible_per_step():
    cfg = TrainConfig(generated_start=0.3, seed=5)
    picks = [starts_generated(s, cfg) for s in range(2000)]
    assert picks == [starts_generated(s, cfg) for s in range(2000)]   # resume replays the same choices
    assert 0.25 < sum(picks) / len(picks) < 0.35
    assert not any(starts_generated(s, TrainConfig(generated_start=0.0)) for s in range(100))


@pytest.mark.parametrize("always,share,expect_mask", [(True, 0.0, True), (False, 0.0, False), (False, 1.0, True)])
def test_mask_regulariser_only_on_generated_starts_unless_always(toy, tmp_path, always, share, expect_mask):
    result = train(base(toy, tmp_path / "m", max_steps=1, mask_loss_always=always, generated_start=share))
    assert ("mask" in result["history"][0]) == expect_mask


def test_style_study_runs_on_a_trained_style_model(tmp_path):
    """bench/style_study.py's smallest configuration: a 2-step style model on toy data with a held-out sequence."""
    import subprocess
    import sys

    root = write_toy_dataset(tmp_path / "toy", n_sequences=2, n_frames=6, height=32, width=32, val_sequences=1)
    train(base(root, tmp_path / "style", model={"style_nc": 3}, style_gmm_components=2))
    model = tmp_path / "style" / "model.safetensors"
    # the toy dataset records no recipe: give the model one (2 colour clusters = 3 labels) so a picture can be
    # labelled for the --reference run
    import cv2

    from v2v.model.checkpoint import update_metadata
    from v2v.sources.pseudo_labels import pseudo_label_video
    from v2v.sources.recipe import METADATA_KEY, to_json

    picture = sorted((root / "val").glob("*/target/*"))[0]
    rgb = cv2.cvtColor(cv2.imread(str(picture)), cv2.COLOR_BGR2RGB)
    update_metadata(model, {METADATA_KEY: to_json(pseudo_label_video(rgb[None], k=2, person="none").recipe)})
    out = tmp_path / "study.json"
    proc = subprocess.run([sys.executable, "bench/style_study.py", "--model", str(model), "--classes", "0,1",
                           "--data", str(root), "--seeds", "1", "2", "--out", str(out), "--strip", str(tmp_path / "s.jpg"),
                           "--reference", str(picture)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["frames"] == 6 and len(report["rows"]) == 4 and (tmp_path / "s.jpg").stat().st_size > 0
    assert all(r["warping_error"] > 0 and r["seed_distance_inside"] >= 0 for r in report["rows"])
    distances = report["reference"]["colour_distance_to_reference"]
    assert report["reference"]["classes_taken"] and set(distances) == {"mean", "reference"}
    assert all(v >= 0 for run in distances.values() for v in run.values())


def test_label_prediction_trains_a_predictor_the_future_module_runs(toy, tmp_path):
    """data.predict: label maps in and out, cross-entropy among the terms; the file says it is a predictor."""
    import numpy as np

    from v2v.future import is_predictor, predict_label_maps
    from v2v.model.checkpoint import load_generator

    cfg = base(toy, tmp_path / "pred", data={"root": str(toy), "predict": True, "flow_preset": "fast"},
               model={"foreground": False}, loss={"vgg": 0.0, "label_ce": 10.0}, val_every=1, sample_every=1)
    result = train(cfg)
    assert result["finished"] and all("label_ce" in h and h["label_ce"] > 0 for h in result["history"])
    model = load_generator(tmp_path / "pred" / "model.safetensors")
    assert is_predictor(model) and model.cfg.output_nc == model.cfg.label_nc == 3
    assert not (tmp_path / "pred" / "samples").exists()          # RGB strips and validation are off
    maps = list(predict_label_maps(model, [np.zeros((32, 32), np.uint8)] * 3, 2))
    assert len(maps) == 2 and maps[0].shape == (32, 32)


def test_future_study_runs_on_a_trained_predictor(tmp_path):
    """bench/future_study.py's smallest configuration: toy predictor and renderer, one held-out sequence."""
    import subprocess
    import sys

    root = write_toy_dataset(tmp_path / "toy", n_sequences=2, n_frames=6, height=32, width=32, val_sequences=1)
    train(base(root, tmp_path / "pred", data={"root": str(root), "predict": True, "flow_preset": "fast"},
               model={"foreground": False}, loss={"vgg": 0.0, "label_ce": 10.0}, max_steps=1))
    train(base(root, tmp_path / "render", max_steps=1))
    out = tmp_path / "future.json"
    proc = subprocess.run([sys.executable, "bench/future_study.py", "--predictor", str(tmp_path / "pred" / "model.safetensors"),
                           "--renderer", str(tmp_path / "render" / "model.safetensors"), "--data", str(root),
                           "--horizons", "1", "2", "--observe", "2", "--every", "2", "--out", str(out),
                           "--strip", str(tmp_path / "f.jpg")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(r["horizon"], r["method"]) for r in rows} == {(h, m) for h in (1, 2) for m in ("ours", "repeat", "flow")}
    assert all(0 <= r["pixel_accuracy"] <= 1 and r["psnr"] > 0 for r in rows) and (tmp_path / "f.jpg").stat().st_size > 0


def test_branch_psnr_runs_on_a_trained_model(tmp_path):
    """bench/branch_psnr.py's smallest configuration: a 1-step toy model, one held-out sequence."""
    import subprocess
    import sys

    root = write_toy_dataset(tmp_path / "toy", n_sequences=2, n_frames=6, height=32, width=32, val_sequences=1)
    train(base(root, tmp_path / "m", max_steps=1))
    out = tmp_path / "branches.json"
    proc = subprocess.run([sys.executable, "bench/branch_psnr.py", "--models", str(tmp_path / "m" / "model.safetensors"),
                           "--data", str(root), "--out", str(out)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(out.read_text())["models"]["model"]
    assert row["frames"] == 6 and {"output", "hallucinated", "warped", "mask_mean"} <= set(row)
    assert 0 <= row["mask_mean"] <= 1 and row["output"] > 0


def test_a_compiled_generator_trains_as_the_eager_one_and_saves_the_same_weights(toy, tmp_path):
    """compile: true calls G through torch.compile; the optimiser and the files keep the plain module, so the
    first step's losses and the weights after two steps match the eager run's up to the compiler's rounding."""
    if not cpp_compiler_found():
        pytest.skip("torch.compile on a CPU needs a C++ compiler")
    from safetensors.torch import load_file

    eager = train(base(toy, tmp_path / "eager", max_steps=2))
    compiled = train(base(toy, tmp_path / "compiled", max_steps=2, compile=True))
    assert compiled["finished"]
    for key in ("loss_g", "loss_d"):
        assert compiled["history"][0][key] == pytest.approx(eager["history"][0][key], rel=1e-4)
    a, b = (load_file(str(p / "model.safetensors")) for p in (tmp_path / "eager", tmp_path / "compiled"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 2e-3    # Adam's steps are 2e-4 each


def test_compile_without_a_cpp_compiler_is_refused_before_training(toy, tmp_path, monkeypatch):
    import train.train as trainer

    monkeypatch.setattr(trainer, "cpp_compiler_found", lambda: False)
    with pytest.raises(ValueError, match="C\\+\\+ compiler"):
        train(base(toy, tmp_path / "r", max_steps=1, compile=True))
    assert not (tmp_path / "r" / "model.safetensors").exists()
