"""train/data.py: layout, validation messages, clips, augmentation, flow, split."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from _synthetic import moving_scene
from train.data import (ClipDataset, DataConfig, DatasetError, build_datasets, split_sequences,
                        validate_dataset)

H, W = 48, 64


def write_sequence(seq_dir: Path, n=8, seed=0, *, instance=True, source="labels"):
    frames, labels = moving_scene(n, H, W, seed=seed, bg_step=(1, 0), fg_step=(2, 1), radius=8)
    for sub in ("source", "target") + (("instance",) if instance else ()):
        (seq_dir / sub).mkdir(parents=True, exist_ok=True)
    for t in range(n):
        cv2.imwrite(str(seq_dir / "target" / f"{t:06d}.png"), cv2.cvtColor(frames[t], cv2.COLOR_RGB2BGR))
        if source == "labels":
            cv2.imwrite(str(seq_dir / "source" / f"{t:06d}.png"), labels[t])
        elif source == "rgb":
            edges = cv2.Canny(frames[t], 50, 150)
            cv2.imwrite(str(seq_dir / "source" / f"{t:06d}.png"), cv2.merge([edges, edges, edges]))
        else:
            np.save(seq_dir / "source" / f"{t:06d}.npy", np.stack([labels[t] == 1, labels[t] == 2]).astype(np.float16))
        if instance:
            cv2.imwrite(str(seq_dir / "instance" / f"{t:06d}.png"), (labels[t] == 1).astype(np.uint16) * 1000)
    return frames, labels


@pytest.fixture
def label_root(tmp_path):
    for k in range(3):
        write_sequence(tmp_path / "train" / f"seq{k}", n=8, seed=k)
    return tmp_path


def cfg_for(root, **kw):
    base = dict(root=str(root), source_kind="labels", label_nc=3, use_instance=True, crop_size=(32, 48),
                max_stride=2, seed=0)
    base.update(kw)
    return DataConfig(**base)


def test_validates_and_splits_by_sequence(label_root):
    cfg = cfg_for(label_root, val_fraction=0.34)
    train, val = split_sequences(cfg)
    assert len(train) == 2 and len(val) == 1 and not set(train) & set(val)
    assert split_sequences(cfg) == (train, val)  # deterministic
    tr, va = build_datasets(cfg, n_frames=4)
    assert len(tr.sequences) == 2 and len(va.sequences) == 1
    assert tr.source_nc == 4 and cfg.input_nc == 4
    # an explicit val/ split wins
    write_sequence(label_root / "val" / "held", n=6, seed=9)
    train2, val2 = split_sequences(cfg)
    assert len(train2) == 3 and [p.name for p in val2] == ["held"]


def test_item_shapes_values_and_flow(label_root):
    cfg = cfg_for(label_root, flip=False, max_stride=1)
    seqs = validate_dataset(cfg, "train")
    ds = ClipDataset(cfg, seqs, n_frames=4)
    item = ds[0]
    assert item["source"].shape == (4, 4, 32, 48) and item["target"].shape == (4, 3, 32, 48)
    assert item["flow"].shape == (4, 2, 32, 48) and item["flow_conf"].shape == (4, 1, 32, 48)
    assert item["instance"].shape == (4, 1, 32, 48) and item["instance"].dtype == torch.int64
    assert torch.all(item["source"][:, :3].sum(1) == 1)  # one-hot
    assert set(item["source"][:, 3].unique().tolist()) <= {0.0, 1.0} and item["source"][:, 3].sum() > 0
    assert -1 <= item["target"].min() and item["target"].max() <= 1
    assert torch.all(item["flow"][0] == 0) and torch.all(item["flow_conf"][0] == 0)
    # background moves +1 px/frame in x: backward flow ~ -1 px where the source says background (id 0)
    bg = (item["source"][1:, 0] == 1) & (item["flow_conf"][1:, 0] == 1)
    assert abs(float(item["flow"][1:, 0][bg].median()) + 1.0) < 0.25
    assert ds.flows.misses == 3
    ds[0]
    assert ds.flows.hits == 3  # cached on disk, keyed by content
    assert list((label_root / ".flow_cache").rglob("*.npy"))


def test_random_choices_are_reproducible_and_vary(label_root):
    cfg = cfg_for(label_root, max_stride=2)
    ds = ClipDataset(cfg, validate_dataset(cfg, "train"), n_frames=3)
    a, b = ds[1], ds[1]
    for k in a:
        assert torch.equal(a[k], b[k])
    plans = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            p = ds.clip_plan(i)
            plans.add((p["stride"], p["start"], p["box"], p["flip"]))
            assert max(p["frames"]) < 8 and p["stride"] in (1, 2)
    assert len({s for s, *_ in plans}) == 2 and len({f for *_, f in plans}) == 2 and len(plans) > 6


def test_flip_mirrors_frames_and_negates_flow_x(label_root):
    cfg_f = cfg_for(label_root, flip=True)
    cfg_n = cfg_for(label_root, flip=False)
    seqs = validate_dataset(cfg_f, "train")
    ds_f, ds_n = ClipDataset(cfg_f, seqs, n_frames=3), ClipDataset(cfg_n, seqs, n_frames=3)
    i = next(i for i in range(len(ds_f)) if ds_f.clip_plan(i)["flip"])
    f, n = ds_f[i], ds_n[i]
    assert int(f["flipped"]) == 1 and int(n["flipped"]) == 0
    for k in ("source", "target", "flow_conf", "instance"):
        assert torch.equal(f[k], n[k].flip(-1))
    assert torch.equal(f["flow"][:, 0], -n["flow"][:, 0].flip(-1))
    assert torch.equal(f["flow"][:, 1], n["flow"][:, 1].flip(-1))


def test_validation_items_are_fixed(label_root):
    cfg = cfg_for(label_root)
    ds = ClipDataset(cfg, validate_dataset(cfg, "train"), n_frames=5, train=False)
    assert len(ds) == 3
    p = ds.clip_plan(2)
    assert p["frames"] == [0, 1, 2, 3, 4] and not p["flip"] and p["box"] == ((48 - 32) // 2, (64 - 48) // 2, 32, 48)


def test_load_size_resizes_before_crop(label_root):
    cfg = cfg_for(label_root, load_size=(24, 32), crop_size=None, use_instance=False)
    ds = ClipDataset(cfg, validate_dataset(cfg, "train"), n_frames=2)
    item = ds[0]
    assert item["source"].shape == (2, 3, 24, 32) and "instance" not in item
    assert torch.all(item["source"].sum(1) == 1)  # nearest neighbour keeps labels one-hot


def test_rgb_sources_and_video_targets(tmp_path):
    from v2v.media.video_io import VideoWriter

    frames, _ = write_sequence(tmp_path / "train" / "a", n=6, instance=False, source="rgb")
    seq = tmp_path / "train" / "b"
    write_sequence(seq, n=6, seed=3, instance=False, source="rgb")
    for p in (seq / "target").iterdir():
        p.unlink()
    (seq / "target").rmdir()
    with VideoWriter(seq / "target.mp4", fps=10) as w:
        for f in frames:
            w.write(f)
    cfg = DataConfig(root=str(tmp_path), source_kind="rgb", crop_size=None, val_fraction=0.0)
    seqs = validate_dataset(cfg, "train")
    assert [s.length for s in seqs] == [6, 6] and seqs[1].target.is_video
    ds = ClipDataset(cfg, seqs, n_frames=3)
    item = ds[len(ds) - 1]
    assert item["source"].shape == (3, 3, H, W) and item["target"].shape == (3, 3, H, W)
    assert item["source"].min() == -1 and item["source"].max() == 1


def test_array_sources(tmp_path):
    write_sequence(tmp_path / "train" / "a", n=5, instance=False, source="array")
    cfg = DataConfig(root=str(tmp_path), source_kind="array", val_fraction=0.0)
    seqs = validate_dataset(cfg, "train")
    ds = ClipDataset(cfg, seqs, n_frames=2)
    assert ds.source_nc == 2 and ds[0]["source"].shape == (2, 2, H, W)


def test_config_errors():
    with pytest.raises(DatasetError, match="label_nc"):
        DataConfig(root="x", source_kind="labels", label_nc=0)
    with pytest.raises(DatasetError, match="source_kind"):
        DataConfig(root="x", source_kind="depth")
    with pytest.raises(DatasetError, match="unknown keys"):
        DataConfig.from_dict({"root": "x", "label_nc": 3, "colour": 1})
    with pytest.raises(ValueError, match="preset"):
        DataConfig(root="x", label_nc=3, flow_preset="best")
    assert DataConfig.from_dict({"root": "x", "label_nc": 3, "crop_size": [8, 8]}).crop_size == (8, 8)


# ---- bad datasets: each is rejected before training, naming the file -------------------------------
def _expect(cfg, *fragments):
    with pytest.raises(DatasetError) as err:
        validate_dataset(cfg, "train")
    for frag in fragments:
        assert str(frag) in str(err.value), str(err.value)
    return str(err.value)


def test_bad_missing_targets(label_root):
    seq = label_root / "train" / "seq1"
    for p in (seq / "target").iterdir():
        p.unlink()
    (seq / "target").rmdir()
    _expect(cfg_for(label_root), f"{seq}: missing targets")


def test_bad_mismatched_counts(label_root):
    victim = label_root / "train" / "seq2" / "target" / "000007.png"
    victim.unlink()
    _expect(cfg_for(label_root), "mismatched frame counts", "seq2/target has 7", "seq2/source has 8")


def test_bad_mismatched_sizes(label_root):
    victim = label_root / "train" / "seq0" / "target" / "000003.png"
    cv2.imwrite(str(victim), np.zeros((H, W + 2, 3), np.uint8))
    _expect(cfg_for(label_root), str(victim), "size 66x48 differs")


def test_bad_unreadable_frame(label_root):
    victim = label_root / "train" / "seq0" / "target" / "000002.png"
    victim.write_bytes(b"this is not a png")
    _expect(cfg_for(label_root), str(victim), "cannot read")
    victim2 = label_root / "train" / "seq1" / "source" / "000004.png"
    victim2.write_bytes(b"\x89PNG garbage")
    _expect(cfg_for(label_root), str(victim2))


def test_bad_label_ids_beyond_label_nc(label_root):
    victim = label_root / "train" / "seq1" / "source" / "000005.png"
    ids = np.zeros((H, W), np.uint8)
    ids[3, 4] = 7
    cv2.imwrite(str(victim), ids)
    msg = _expect(cfg_for(label_root), str(victim), "label id 7 is outside [0, label_nc=3)")
    assert "seq0" not in msg
    # listing the id as ignored makes it acceptable
    validate_dataset(cfg_for(label_root, ignore_ids=(7,)), "train")


def test_bad_missing_instance_and_short_and_crop(label_root):
    seq = label_root / "train" / "seq0"
    for p in (seq / "instance").iterdir():
        p.unlink()
    (seq / "instance").rmdir()
    _expect(cfg_for(label_root), f"{seq}: missing instance maps")
    _expect(cfg_for(label_root, use_instance=False, crop_size=(64, 64)), "smaller than crop_size")
    with pytest.raises(DatasetError, match="fewer than the 10"):
        validate_dataset(cfg_for(label_root, use_instance=False), "train", min_frames=10)


def test_bad_empty_root(tmp_path):
    with pytest.raises(DatasetError, match="no sequence folders"):
        validate_dataset(cfg_for(tmp_path), "train")
    with pytest.raises(DatasetError, match="does not exist"):
        validate_dataset(cfg_for(tmp_path / "nope"), "train")


def test_all_problems_reported_together(label_root):
    (label_root / "train" / "seq2" / "target" / "000007.png").unlink()
    bad = label_root / "train" / "seq0" / "target" / "000002.png"
    bad.write_bytes(b"junk")
    _expect(cfg_for(label_root), "2 problem(s)", "seq2", str(bad))


def test_predict_items_pair_each_map_with_the_one_before_and_keep_the_real_flow(label_root):
    """Future prediction: the source of frame t is the label map of t-1, the target the map of t (one-hot in
    [-1, 1]); the flows are still the real frames' (the motion the predictor learns to continue)."""
    with pytest.raises(DatasetError, match="without use_instance"):
        cfg_for(label_root, predict=True)
    cfg = cfg_for(label_root, predict=True, use_instance=False, flip=False, max_stride=1, label_nc=4)
    plain = cfg_for(label_root, use_instance=False, flip=False, max_stride=1, label_nc=4)
    assert cfg.target_nc == 4 and plain.target_nc == 3
    item = ClipDataset(cfg, validate_dataset(cfg), n_frames=5)[0]
    ref = ClipDataset(plain, validate_dataset(plain), n_frames=5)[0]
    maps = ref["source"]                                            # one-hot maps of the same frames
    assert torch.equal(item["target"], maps * 2 - 1)
    assert torch.equal(item["source"][1:], maps[:-1]) and torch.equal(item["source"][0], maps[0])
    assert torch.equal(item["flow"], ref["flow"]) and item["flow"].abs().sum() > 0


def test_balance_sequences_gives_each_clip_the_same_share_of_an_epoch(tmp_path):
    """One long clip (a person filmed longest) must not set what the model learns: with balance_sequences every
    sequence gets the same number of items, the epoch keeps its size."""
    write_sequence(tmp_path / "train" / "long", n=22, seed=0)
    write_sequence(tmp_path / "train" / "short", n=4, seed=1)
    write_sequence(tmp_path / "train" / "mid", n=8, seed=2)
    plain_cfg, balanced_cfg = (cfg_for(tmp_path, frames_per_item=2, balance_sequences=b) for b in (False, True))
    seqs = validate_dataset(plain_cfg, "train")
    names = [s.path.name for s in seqs]
    plain, balanced = ClipDataset(plain_cfg, seqs, n_frames=3), ClipDataset(balanced_cfg, seqs, n_frames=3)
    count = lambda ds: {names[k]: ds.index.count(k) for k in range(len(seqs))}   # noqa: E731
    assert count(plain) == {"long": 11, "short": 2, "mid": 4}
    assert sorted(count(balanced).values()) == [5, 6, 6] and len(balanced) == len(plain) == 17
    item = balanced[len(balanced) - 1]                              # items still resolve to clips
    assert item["source"].shape[0] == 3 and names[int(item["sequence"])] == names[balanced.index[-1]]
