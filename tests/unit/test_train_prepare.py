"""train/prepare.py: raw video -> dataset layout via the extractors, accepted by train/data.py."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from _synthetic import moving_scene
from train.data import ClipDataset, DataConfig, dataset_defaults, read_dataset_json, validate_dataset
from train.prepare import PrepareError, prepare

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from v2v.media.video_io import VideoWriter

    frames, labels = moving_scene(6, 48, 64)
    path = tmp_path_factory.mktemp("vid") / "clip.mp4"
    with VideoWriter(path, fps=10) as w:
        for f in frames:
            w.write(f)
    return path, labels


def _config(root):
    return DataConfig.from_dict({"root": str(root), **dataset_defaults(root)})


def test_cli_sketch_edges_makes_a_valid_dataset(video, tmp_path):
    path, _ = video
    out = tmp_path / "ds"
    r = subprocess.run([sys.executable, str(REPO / "train" / "prepare.py"), "--task", "sketch", "--sketch-mode",
                        "edges", "--video", str(path), "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    seq = out / "train" / "clip"
    assert len(list((seq / "target").glob("*.png"))) == 6 and len(list((seq / "source").glob("*.npy"))) == 6
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["source_kind"] == "array" and meta["task"] == "sketch" and meta["flip"] is True
    cfg = _config(out)
    ds = ClipDataset(cfg, validate_dataset(cfg, "train"), n_frames=3)
    item = ds[0]
    assert item["source"].shape == (3, 1, 48, 64) and set(item["source"].unique().tolist()) <= {0.0, 1.0}
    # a second video with the same name is refused; the CLI reports errors without a traceback
    r = subprocess.run([sys.executable, str(REPO / "train" / "prepare.py"), "--task", "sketch", "--sketch-mode",
                        "edges", "--video", str(path), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr


def test_pose_from_keypoints_disables_flip(video, tmp_path):
    from v2v.sources.pose import Person, PoseFrame, write_openpose_json

    path, _ = video
    frames = []
    for t in range(6):
        body = np.zeros((18, 3), np.float32)
        body[:, 0] = np.linspace(0.3, 0.7, 18) + 0.01 * t
        body[:, 1] = np.linspace(0.2, 0.9, 18)
        body[:, 2] = 1.0
        frames.append(PoseFrame(64, 48, [Person(body=body)]))
    write_openpose_json(frames, tmp_path / "kp")
    out = tmp_path / "ds"
    prepare("pose", path, out, keypoints=str(tmp_path / "kp"), log=lambda *_: None)
    meta = read_dataset_json(out)
    assert meta["source_kind"] == "rgb" and meta["flip"] is False
    cfg = _config(out)
    item = ClipDataset(cfg, validate_dataset(cfg, "train"), n_frames=2)[0]
    assert item["source"].shape == (2, 3, 48, 64) and item["source"].max() > -1  # a skeleton was drawn


def test_labels_from_id_pngs(video, tmp_path):
    path, labels = video
    lab_dir = tmp_path / "labels"
    lab_dir.mkdir()
    for t, lab in enumerate(labels):
        cv2.imwrite(str(lab_dir / f"f{t}.png"), lab)
    out = tmp_path / "ds"
    prepare("labels", path, out, split="val", sequence="s1", labels=str(lab_dir), label_nc=3, log=lambda *_: None)
    meta = read_dataset_json(out)
    assert meta["source_kind"] == "labels" and meta["label_nc"] == 3
    written = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((out / "val" / "s1" / "source").iterdir())]
    np.testing.assert_array_equal(np.stack(written), labels)
    validate_dataset(_config(out), "val")
    # a conflicting second video is refused instead of mixing label sets
    with pytest.raises(PrepareError, match="label_nc"):
        prepare("labels", path, out, sequence="s2", labels=str(lab_dir), label_nc=5, log=lambda *_: None)
    assert not (out / "train" / "s2").exists()
    with pytest.raises(PrepareError, match="task"):
        prepare("sketch", path, out, sequence="s3", sketch_mode="edges", log=lambda *_: None)
    assert not (out / "train" / "s3").exists()


def test_bad_task_and_split(video, tmp_path):
    path, _ = video
    with pytest.raises(PrepareError, match="--task"):
        prepare("depth", path, tmp_path)
    with pytest.raises(PrepareError, match="--split"):
        prepare("sketch", path, tmp_path, split="test")


def test_labels_from_pseudo_labels(video, tmp_path):
    pytest.importorskip("sklearn")
    path, _ = video
    out = tmp_path / "ds"
    prepare("labels", path, out, label_nc=5, log=lambda *_: None)
    meta = read_dataset_json(out)
    assert meta["source_kind"] == "labels" and meta["label_nc"] == 5
    cfg = _config(out)
    item = ClipDataset(cfg, validate_dataset(cfg, "train"), n_frames=2)[0]
    assert item["source"].shape == (2, 5, 48, 64)


def test_val_fraction_splits_one_extraction_in_time_and_jpg_targets(video, tmp_path):
    path, _ = video
    out = tmp_path / "ds"
    prepare("sketch", path, out, sketch_mode="edges", val_fraction=1 / 3, target_format="jpg", log=lambda *_: None)
    train_seq, val_seq = out / "train" / "clip", out / "val" / "clip"
    assert len(list((train_seq / "target").glob("*.jpg"))) == 4
    assert len(list((val_seq / "target").glob("*.jpg"))) == 2
    # the held-out frames are the LAST ones of the video, renumbered from 0
    from v2v.media.video_io import read_frames
    real = list(read_frames(path))
    held = cv2.cvtColor(cv2.imread(str(val_seq / "target" / "000000.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(held.astype(int) - real[4].astype(int)).mean() < 8       # JPEG q95 of frame 4 (noisy texture)
    assert np.abs(held.astype(int) - real[3].astype(int)).mean() > np.abs(held.astype(int) - real[4].astype(int)).mean()
    cfg = _config(out)
    assert len(validate_dataset(cfg, "val")) == 1
    with pytest.raises(PrepareError, match="val-fraction"):
        prepare("sketch", path, tmp_path / "other", sketch_mode="edges", val_fraction=1.0)


def test_crop_keeps_a_window_before_downscaling(video, tmp_path):
    from v2v.media.video_io import open_video

    path, _ = video
    full = np.stack(list(open_video(path)))
    window = np.stack(list(open_video(path, crop=(16, 8, 40, 32))))
    assert window.shape == (6, 32, 40, 3) and np.array_equal(window, full[:, 8:40, 16:56])
    assert np.stack(list(open_video(path, crop=(16, 8, 40, 32), max_side=20))).shape == (6, 16, 20, 3)
    with pytest.raises(ValueError, match="does not fit .* 64x48"):
        open_video(path, crop=(40, 0, 40, 32))
    out = tmp_path / "ds"
    r = subprocess.run([sys.executable, str(REPO / "train" / "prepare.py"), "--task", "sketch", "--sketch-mode",
                        "edges", "--video", str(path), "--out", str(out), "--crop", "16,8,40,32"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(out / "train" / "clip" / "target" / "000000.png")).shape == (32, 40, 3)
    r = subprocess.run([sys.executable, str(REPO / "train" / "prepare.py"), "--task", "sketch", "--video", str(path),
                        "--out", str(tmp_path / "x"), "--crop", "16,8,40"], capture_output=True, text=True)
    assert r.returncode == 2 and "X,Y,WIDTH,HEIGHT" in r.stderr
