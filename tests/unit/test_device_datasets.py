"""scripts/device_datasets.py: a prepared dataset packed for a GPU machine and unpacked there is the same dataset,
face-sketch sources rebuilt bit for bit from their lines; a sketch that cannot be rebuilt is refused."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from v2v.sources import sketch

from _scripts import load_script
from test_sketch import _synthetic_landmarks


def sketch_dataset(root, frames: list[np.ndarray]):
    """A face-sketch dataset as train/prepare.py writes one: float16 ``.npy`` sources, JPEG targets, a flow cache."""
    (root / ".flow_cache").mkdir(parents=True)
    (root / ".flow_cache" / "x.npy").write_bytes(b"cache")
    meta = {"source_kind": "array", "task": "sketch", "source_recipe": {"extractor": "face_sketch", "params": {}}}
    (root / "dataset.json").write_text(json.dumps(meta))
    for split in ("train", "val"):
        seq = root / split / "clip"
        (seq / "source").mkdir(parents=True)
        (seq / "target").mkdir()
        for t, chans in enumerate(frames):
            np.save(seq / "source" / f"{t:06d}.npy", chans.astype(np.float16))
            cv2.imwrite(str(seq / "target" / f"{t:06d}.jpg"), np.full((96, 96, 3), 40 * t, np.uint8))
    return root


def test_a_face_sketch_dataset_travels_in_a_fraction_of_its_size_and_comes_back_identical(tmp_path):
    dd = load_script("device_datasets")
    rgb = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)   # Canny edges outside the face
    lm = _synthetic_landmarks()
    frames = [sketch.face_sketch_frame(rgb, lm), sketch.face_sketch_frame(rgb, lm + 3.0),
              sketch.face_sketch_frame(rgb, None)]                                  # no face: far everywhere
    src = sketch_dataset(tmp_path / "faces", frames)
    counts = dd.pack(src, tmp_path / "carry" / "faces.tgz", ["train"], set())
    assert counts["sketch_frames"] == 3 and counts["files"] == 6
    npy_bytes = sum(p.stat().st_size for p in (src / "train").rglob("*.npy"))
    assert counts["bytes"] < npy_bytes / 5

    assert dd.unpack(tmp_path / "carry" / "faces.tgz", tmp_path / "there") == 3
    there = tmp_path / "there" / "faces"
    assert not (there / "val").exists() and not (there / ".flow_cache").exists()   # train split only, no cache
    assert not list(there.rglob("*.png"))
    for p in (src / "train").rglob("*"):
        if p.is_file():
            assert (there / p.relative_to(src)).read_bytes() == p.read_bytes(), p


def test_a_sketch_that_does_not_rebuild_exactly_is_refused(tmp_path):
    dd = load_script("device_datasets")
    odd = sketch.face_sketch_frame(np.zeros((96, 96, 3), np.uint8), _synthetic_landmarks())
    odd[3] = 0.5                                    # a distance map that is no distance to any line
    src = sketch_dataset(tmp_path / "faces", [odd])
    with pytest.raises(SystemExit, match="does not rebuild exactly"):
        dd.pack(src, tmp_path / "faces.tgz", ["train"], set())
    assert not list(tmp_path.glob("faces.*"))


def test_other_datasets_travel_as_they_are_and_instance_maps_can_stay_behind(tmp_path):
    dd = load_script("device_datasets")
    root = tmp_path / "streets"
    seq = root / "train" / "drive"
    for sub in ("source", "instance", "target"):
        (seq / sub).mkdir(parents=True)
        cv2.imwrite(str(seq / sub / "000000.png"), np.full((8, 8), 3, np.uint8))
    (root / "dataset.json").write_text(json.dumps({"source_kind": "labels"}))
    dd.main(["pack", "streets", "--datasets", str(tmp_path), "--out", str(tmp_path / "carry"), "--drop", "instance"])
    dd.main(["unpack", str(tmp_path / "carry"), "--into", str(tmp_path / "there")])
    there = tmp_path / "there" / "streets" / "train" / "drive"
    assert (there / "source" / "000000.png").read_bytes() == (seq / "source" / "000000.png").read_bytes()
    assert (there / "target" / "000000.png").exists() and not (there / "instance").exists()
