"""Pseudo-labels of real footage (vtest): frozen k-means ids, MOG2 person class, measured stability."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from v2v.sources import extras, pseudo_labels as P
from v2v.sources.base import read_video

REPO = Path(__file__).resolve().parents[2]
VTEST_CLIP = REPO / "tests" / "data" / "vtest_40f.mp4"


@pytest.fixture(scope="module")
def vtest_small():
    return read_video(VTEST_CLIP, max_frames=24, max_side=256)


@pytest.fixture(scope="module")
def vtest_source(vtest_small):
    return P.pseudo_label_video(vtest_small, k=8)


def test_vtest_pseudo_labels_shape_classes_and_person(vtest_source):
    src = vtest_source
    print("vtest pseudo-label report:", {k: v for k, v in src.report.items() if k != "class_share"})
    assert (len(src), src.label_nc, src.input_nc, src.size) == (24, 9, 10, (192, 256))
    f = src.get(5)
    assert torch.all(f[:9].sum(0) == 1) and set(torch.unique(f[9]).tolist()) <= {0.0, 1.0}
    ids = src.extra["ids"]
    assert len(np.unique(ids[:, :, :])) == 9                       # every cluster and the person class are used
    assert 0.0005 < src.report["foreground_share"] < 0.05         # a few pedestrians, not the whole street
    assert (ids == 8).any(axis=(1, 2)).mean() > 0.8               # persons found on most frames
    assert src.extra["label_names"][-1] == "person"


def test_vtest_pseudo_labels_are_stable_over_time(vtest_source):
    rep = vtest_source.report
    # measured here (24 frames, 256 px): 0.0056 aligned vs 0.0141 unaligned; 100 frames at 384 px: see report
    assert rep["label_flip_share"] < 0.02
    assert rep["label_flip_share"] < rep["label_flip_share_unaligned"]
    assert rep["label_flip_valid_share"] > 0.9


def test_centers_are_frozen_and_ids_reproducible(vtest_small):
    a = P.PseudoLabeler(k=6).fit(vtest_small.rgb)
    b = P.PseudoLabeler(k=6).fit(vtest_small.rgb)
    assert np.allclose(a.centers, b.centers)
    ids = a.predict(vtest_small.rgb[3])
    assert np.array_equal(ids, b.predict(vtest_small.rgb[3]))
    top, bottom = ids[:20].mean(), ids[-20:].mean()
    assert top < bottom                                            # ids ordered top to bottom


def test_flip_share_uses_flow_alignment():
    rng = np.random.default_rng(0)
    blocks = (rng.random((10, 14, 3)) * 255).astype(np.uint8)
    base = np.kron(blocks, np.ones((8, 8, 1), np.uint8))               # 80x112 texture of 8 px blocks
    frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(4)])  # pans 2 px per frame
    ids = (frames[..., 0] > 127).astype(np.int32)
    st = P.label_flip_share(ids, frames, max_side=512)
    assert st["unaligned"] > 0.05 and st["aligned"] < 0.02


@pytest.mark.skipif(extras.has_mediapipe(), reason="checks the error without mediapipe")
def test_selfie_masks_without_mediapipe_name_the_install_command():
    with pytest.raises(extras.MissingExtraError, match="mediapipe==0.10.21"):
        P.person_masks(np.zeros((1, 16, 16, 3), np.uint8), "selfie")


@pytest.mark.skipif(not extras.has_mediapipe(), reason="mediapipe extra absent: " + extras.INSTALL["mediapipe"])
def test_selfie_masks_with_mediapipe(vtest_small):
    m = P.person_masks(vtest_small.rgb[:2], "selfie")
    assert m.shape == (2, 192, 256) and m.dtype == bool


def test_missing_sklearn_gives_the_install_command(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "sklearn.cluster", None)
    with pytest.raises(extras.MissingExtraError, match="pip install scikit-learn"):
        P.PseudoLabeler().fit(np.zeros((1, 8, 8, 3), np.uint8))


def test_label_loader_node_pseudo(vtest_small):
    from nodes.label_video_loader import LabelVideoLoader

    images = torch.from_numpy(vtest_small.rgb[:8]).float() / 255
    source, preview = LabelVideoLoader().load("pseudo", 0, True, images=images, pseudo_k=5, fps=10.0)
    assert (source.label_nc, source.input_nc, len(source)) == (6, 7, 8) and preview.shape == images.shape
    assert "label_flip_share" in source.report
