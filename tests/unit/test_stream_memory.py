"""Every source kind streams with flat memory: measured over a long synthetic video, not assumed.

For each extractor, resident memory is read after frame 100 and after the last frame of a 400-frame video
(256x192).  Holding the clip would cost hundreds of MB (the old eager face sketch: 2 MB of float32 per
frame); a stream keeps only its per-shot state.
"""
from __future__ import annotations

import gc

import cv2
import numpy as np
import psutil
import pytest

from v2v.media.video_io import VideoWriter
from v2v.sources import extras

N, H, W = 400, 192, 256
GROWTH_LIMIT_MB = 25


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """A 400-frame street-like clip: textured background, two discs walking across; plus its label maps,
    renderings and arrays as prepared sources."""
    root = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.random((H, W, 3)).astype(np.float32), (0, 0), 3)
    bg = (bg - bg.min()) / (bg.max() - bg.min())
    path = root / "long.mp4"
    (root / "labels").mkdir()
    (root / "arrays").mkdir()
    with VideoWriter(path, fps=25) as writer:
        for t in range(N):
            img = (bg * 200).astype(np.uint8)
            ids = np.zeros((H, W), np.uint8)
            ids[H // 2:] = 1
            for k, (x0, y) in enumerate(((20, 120), (200, 100))):
                x = int(x0 + (1 if k == 0 else -1) * 0.4 * t) % W
                cv2.circle(img, (x, y), 14, (230, 60, 40), -1)
                cv2.circle(ids, (x, y), 14, 2, -1)
            writer.write(img)
            if t < N:
                cv2.imwrite(str(root / "labels" / f"{t:05d}.png"), ids)
                np.save(root / "arrays" / f"{t:05d}.npy", (ids[None] > 0).astype(np.float16))
    return root


def sources(root):
    """(name, factory) for every source kind; factories build lazily (extras permitting)."""
    from v2v.sources import labels, pose, pseudo_labels, sketch
    from v2v.sources.prepared import array_source, rendering_source

    video = root / "long.mp4"

    def keypoints():
        frames = []
        for t in range(N):
            body = np.zeros((18, 3), np.float32)
            body[:, 0] = np.linspace(0.3, 0.6, 18) + 0.0005 * t
            body[:, 1] = np.linspace(0.2, 0.9, 18)
            body[:, 2] = 1.0
            frames.append(pose.PoseFrame(W, H, [pose.Person(body=body)]))
        return pose.pose_video(keypoints=frames, width=W, height=H)

    out = [("label maps", lambda: labels.label_video(root / "labels", label_nc=3, instances="labels")),
           ("pseudo-labels", lambda: pseudo_labels.pseudo_label_video(video, k=4)),
           ("edge sketch", lambda: sketch.edge_sketch(video)),
           ("pose from keypoints", keypoints),
           ("renderings", lambda: rendering_source(video)),
           ("arrays", lambda: array_source(root / "arrays"))]
    try:
        extras.require_dlib()
        extras.shape_predictor_path()
        out.append(("face sketch", lambda: sketch.face_sketch(video)))
    except ImportError:
        pass
    if extras.has_mediapipe():
        out.append(("pose with mediapipe", lambda: pose.pose_video(video, crops="full")))
    return out


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


@pytest.mark.slow
def test_every_source_kind_streams_with_flat_memory(long_video):
    rows = []
    for name, make in sources(long_video):
        source = make()
        assert len(source) == N
        at = {}
        for f in source.frames():
            if f.index + 1 in (100, N):
                at[f.index + 1] = rss_mb()
        growth = at[N] - at[100]
        rows.append(f"{name}: {at[100]:.0f} MB at frame 100, {at[N]:.0f} MB at frame {N} ({growth:+.1f} MB)")
        print(rows[-1])
        assert growth < GROWTH_LIMIT_MB, rows[-1]
    assert len(rows) >= 6
