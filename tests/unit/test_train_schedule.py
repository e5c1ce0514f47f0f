"""Pure parts of train/train.py: config loading, schedules, data sharding, checkpoint pointer."""
from pathlib import Path

import pytest
import torch

from train.config import TrainConfig, load_config, resolve_precision
from train.state import latest_state
from train.train import batches_of_epoch, lr_at, n_frames_at

REPO = Path(__file__).resolve().parents[2]


def test_shipped_configs_load():
    for name in ("tiny", "labels_street", "sketch_face", "pose_body"):
        cfg = load_config(REPO / "train" / "configs" / f"{name}.yaml")
        assert cfg.lr == 2e-4 and (cfg.beta1, cfg.beta2) == (0.5, 0.999)
    assert load_config(REPO / "train/configs/pose_body.yaml").data["flip"] is False
    street = load_config(REPO / "train/configs/labels_street.yaml")
    assert street.model["foreground"] is True and street.model["fg_label_ids"]
    assert street.loss.get("flow", 10.0) == 10.0


def test_overrides_and_unknown_keys(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("max_steps: 5\ndata: {root: a}\n")
    cfg = load_config(y, ["data.root=b", "model.n_scales=2", "lr=0.001", "disc.k_frames=3"])
    assert cfg.data["root"] == "b" and cfg.model["n_scales"] == 2 and cfg.lr == 0.001 and cfg.max_steps == 5
    with pytest.raises(ValueError, match="unknown keys"):
        load_config(y, ["learning_rate=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(y, ["lr"])


def test_temporal_schedule_doubles_and_caps():
    cfg = TrainConfig(n_frames_start=4, n_frames_max=16, double_every=100)
    got = [n_frames_at(s, cfg, n_past=2) for s in (0, 99, 100, 199, 200, 300, 10_000)]
    assert got == [4, 4, 8, 8, 16, 16, 16]
    assert n_frames_at(10_000, cfg, 2, cap=10) == 10
    assert n_frames_at(0, TrainConfig(n_frames_start=0, n_frames_max=8, double_every=5), 2) == 3  # L + 1
    assert n_frames_at(0, TrainConfig(n_frames_max=6, double_every=0), 2) == 6
    assert n_frames_at(0, TrainConfig(n_frames_max=2, double_every=0), 2) == 3  # never below L + 1


def test_lr_constant_then_linear_to_zero():
    cfg = TrainConfig(lr=2e-4, max_steps=100)
    assert lr_at(0, cfg) == lr_at(49, cfg) == 2e-4
    assert lr_at(75, cfg) == pytest.approx(1e-4)
    assert lr_at(100, cfg) == 0.0
    assert lr_at(10, TrainConfig(lr=1.0, max_steps=20, decay_start=0)) == pytest.approx(0.5)


def test_batches_shard_disjointly_and_reproducibly():
    a = batches_of_epoch(10, 3, 0, 2, 2, 0)
    b = batches_of_epoch(10, 3, 0, 2, 2, 1)
    assert len(a) == len(b) == 2 and all(len(x) == 2 for x in a + b)
    flat = [i for x in a + b for i in x]
    assert len(set(flat)) == 8
    assert a == batches_of_epoch(10, 3, 0, 2, 2, 0)
    assert a != batches_of_epoch(10, 4, 0, 2, 2, 0)
    tiny = batches_of_epoch(1, 0, 0, 1, 2, 1)  # fewer items than processes: repeat
    assert tiny == [[0]]


def test_latest_state_ignores_incomplete(tmp_path):
    ck = tmp_path / "checkpoints"
    assert latest_state(tmp_path) is None
    (ck / "state-00000002").mkdir(parents=True)
    (ck / "state-00000002" / "trainer.json").write_text("{}")
    (ck / ".tmp-state-00000004").mkdir()  # a write killed half-way
    (ck / "latest").write_text("state-00000002\n")
    assert latest_state(tmp_path) == ck / "state-00000002"
    (ck / "latest").write_text("state-00000004\n")  # pointer to a folder without trainer.json
    assert latest_state(tmp_path) is None


def test_precision_follows_the_device_and_warns_for_bf16_on_a_cpu(monkeypatch):
    assert resolve_precision("auto", cuda=False) == ("no", None)
    assert resolve_precision("no", cuda=False) == ("no", None)
    used, warning = resolve_precision("bf16", cuda=False)
    assert used == "bf16" and "slower than fp32" in warning and "mixed_precision: auto" in warning
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", cuda=True) == ("bf16", None)
    assert resolve_precision("bf16", cuda=True) == ("bf16", None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", cuda=True) == ("no", None)
    with pytest.raises(ValueError, match="auto, no, fp16 or bf16"):
        TrainConfig(mixed_precision="fp8")
