"""Sketch sources: auto-Canny edges, the 68-landmark face sketch on real footage (carphone), streaming equals
eager (file vs IMAGE batch, frames from k, only), dlib frame by frame, errors, the node."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from v2v.media.video_io import open_video
from v2v.sources import extras, sketch
from v2v.sources.base import SourceError

from _scripts import load_script

REPO = Path(__file__).resolve().parents[2]
VTEST_CLIP = REPO / "tests" / "data" / "vtest_40f.mp4"
CARPHONE_CLIP = REPO / "workflows" / "input" / "vid2vid_carphone_60f.mp4"   # 176x144, ~30 fps, 60 frames
N_FACE = 24                                                                 # frames of it used here


def fetched(*items: str) -> dict[str, Path]:
    """Paths of items of scripts/fetch_sample_data.py (fetching them if needed), or skip with the reason."""
    res = load_script("fetch_sample_data").fetch(list(items), verbose=False)
    failed = {k: v for k, v in res.items() if not isinstance(v, Path)}
    if failed:
        pytest.skip(f"sample data could not be fetched: {failed}")
    return res


@pytest.fixture(scope="module")
def predictor() -> Path:
    """dlib's 68-landmark model (dlib itself must be installed), or skip."""
    pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
    try:
        return extras.shape_predictor_path()
    except extras.MissingExtraError:
        return fetched("shape_predictor")["shape_predictor"]


@pytest.fixture(scope="module")
def carphone_rgb() -> np.ndarray:
    """The first 24 carphone frames, uint8 ``[24, 144, 176, 3]``."""
    return np.stack(list(open_video(CARPHONE_CLIP, max_frames=N_FACE)))


@pytest.fixture(scope="module")
def carphone_landmarks(predictor, carphone_rgb):
    """DlibLandmarks over the 24 frames: ``([24, 68, 2], statuses)``."""
    return sketch.DlibLandmarks(predictor)(carphone_rgb)


@pytest.fixture(scope="module")
def carphone_dlib(predictor):
    """The dlib face sketch of the carphone FILE and its first full stream."""
    src = sketch.face_sketch(CARPHONE_CLIP, predictor_path=predictor, max_frames=N_FACE)
    return src, list(src.frames())


def _same(a, b) -> None:
    assert [f.index for f in a] == [f.index for f in b]
    for x, y in zip(a, b):
        assert torch.equal(x.tensor, y.tensor), f"frame {x.index}: tensors differ"
        assert np.array_equal(x.preview, y.preview), f"frame {x.index}: previews differ"

def _synthetic_landmarks(cx=48.0, cy=52.0, s=20.0) -> np.ndarray:
    """A plausible 68-point face (jaw arc, brows, nose, eyes, lips) centred at (cx, cy)."""
    lm = np.zeros((68, 2), np.float32)
    a = np.linspace(np.pi, 0, 17)
    lm[0:17] = np.c_[cx + s * np.cos(a), cy + 0.2 * s + s * np.sin(a)]
    lm[17:22] = np.c_[np.linspace(cx - 0.8 * s, cx - 0.2 * s, 5), np.full(5, cy - 0.6 * s)]
    lm[22:27] = np.c_[np.linspace(cx + 0.2 * s, cx + 0.8 * s, 5), np.full(5, cy - 0.6 * s)]
    lm[27:31] = np.c_[np.full(4, cx), np.linspace(cy - 0.4 * s, cy + 0.1 * s, 4)]
    lm[31:36] = np.c_[np.linspace(cx - 0.2 * s, cx + 0.2 * s, 5), np.full(5, cy + 0.2 * s)]
    for base, ex in ((36, cx - 0.45 * s), (42, cx + 0.45 * s)):
        t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        lm[base:base + 6] = np.c_[ex + 0.2 * s * np.cos(t), cy - 0.35 * s + 0.08 * s * np.sin(t)]
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lm[48:60] = np.c_[cx + 0.4 * s * np.cos(t), cy + 0.55 * s + 0.15 * s * np.sin(t)]
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lm[60:68] = np.c_[cx + 0.25 * s * np.cos(t), cy + 0.55 * s + 0.05 * s * np.sin(t)]
    return lm


def test_auto_canny_thresholds_follow_the_median():
    img = np.full((64, 64), 100, np.uint8)
    assert sketch.auto_canny(img).max() == 0                      # flat frame: no edges
    img[16:48, 16:48] = 200
    e = sketch.auto_canny(img)
    assert e[16:48, 14:19].any() and not e[30:34, 30:34].any()    # the square's border, not its inside


def test_edge_sketch_on_real_footage():
    src = sketch.edge_sketch(VTEST_CLIP, max_frames=4, max_side=256)
    assert (len(src), src.input_nc, src.label_nc, src.kind) == (4, 1, 0, "sketch")
    assert src.recipe.extractor == "edge_sketch" and src.recipe.params == {"sigma": 0.33, "blur": 3}
    t = src.tensor()
    assert t.shape == (4, 1, 192, 256) and t.dtype == torch.float32 and set(torch.unique(t).tolist()) <= {0.0, 1.0}
    edge_density = float(t.mean())
    assert 0.01 < edge_density < 0.3
    assert src.fps == 10.0 and src.preview().shape == (4, 192, 256, 3)
    rgb = next(iter(open_video(VTEST_CLIP, max_frames=1, max_side=256)))
    first = next(src.frames())
    assert np.array_equal(first.tensor[0].numpy() > 0, sketch.auto_canny(rgb) > 0)   # the frame's own Canny
    assert np.array_equal(first.preview, np.repeat(sketch.auto_canny(rgb)[..., None], 3, 2))  # white on black


def test_edge_sketch_streams_as_the_same_frames_as_an_image_batch():
    """Streaming equals eager: the video file and its frames as an IMAGE batch give identical frames;
    frames(start=k) equals the full stream from k (edges need no history); only={...} gives just those."""
    rgb = np.stack(list(open_video(VTEST_CLIP, max_frames=8, max_side=256)))
    from_file = sketch.edge_sketch(VTEST_CLIP, max_frames=8, max_side=256)
    from_batch = sketch.edge_sketch(torch.from_numpy(rgb).float() / 255, fps=10.0)
    from_uint8 = sketch.edge_sketch(rgb, fps=10.0)
    assert from_batch.size == from_file.size == (192, 256) and from_batch.fps == from_file.fps == 10.0
    full = list(from_file.frames())
    assert [f.index for f in full] == list(range(8)) and not any(f.cut for f in full)
    _same(list(from_batch.frames()), full)
    _same(list(from_uint8.frames()), full)
    for k in (1, 5, 7):
        _same(list(from_file.frames(start=k)), full[k:])
        _same(list(from_batch.frames(start=k)), full[k:])
    _same(list(from_file.frames(2, 4)), full[2:4])
    _same(list(from_file.frames(only={6, 1})), [full[1], full[6]])
    _same(list(from_batch.frames(only={6, 1, 42})), [full[1], full[6]])
    assert torch.equal(from_file.tensor(3, 5), torch.stack([full[3].tensor, full[4].tensor]))
    assert torch.equal(from_file.preview(max_frames=2),
                       torch.from_numpy(np.stack([full[0].preview, full[7].preview])).float() / 255)


def test_face_sketch_from_given_landmarks_needs_no_dlib():
    rgb = np.zeros((2, 96, 96, 3), np.uint8)
    lm = np.stack([_synthetic_landmarks(), np.full((68, 2), np.nan, np.float32)])
    src = sketch.face_sketch(rgb, landmarks=lm)
    assert "missing" not in src.report                           # counted as the frames stream
    assert src.recipe.extractor == "face_sketch" and src.recipe.params["distance_transform"] is True
    t = src.tensor()
    assert t.shape == (2, 1 + sketch.N_PARTS, 96, 96) and t.dtype == torch.float32
    x, y = np.round(lm[0, 8]).astype(int)                        # chin point lies on the jaw polyline
    assert t[0, 0, y, x] == 1 and t[0, 1, y, x] == 0             # line channel, jaw distance channel = 0
    assert t[0, 1:].min() == 0 and t[0, 1:].max() == 1
    assert t[1, 0].sum() == 0 and torch.all(t[1, 1:] == 1)       # no face: no lines, far everywhere
    assert src.report["missing"] == 1 and src.report["given"] == 1 and src.report["detected"] == 0
    assert src.report["landmark_rate"] == 0.5 and src.report["detection_rate"] == 0.0
    flat = sketch.face_sketch(rgb, landmarks=lm, distance_transform=False)
    assert flat.input_nc == 1 and flat.tensor().shape == (2, 1, 96, 96)
    with pytest.raises(ValueError, match=r"landmarks must be \[2, 68, 2\]"):
        sketch.face_sketch(rgb, landmarks=lm[:1])


def test_face_preview_rendering():
    rgb = np.zeros((96, 96, 3), np.uint8)
    chans = sketch.face_sketch_frame(rgb, _synthetic_landmarks())
    prev = sketch.render_face_preview(chans)
    assert prev.shape == (96, 96, 3) and prev.dtype == np.uint8
    lines = chans[0] > 0
    assert (prev[lines] == 255).all()                            # white lines
    near = ~lines & (chans[1:].min(0) < 0.5)                     # off the lines, close to a face part
    assert near.sum() > 100
    assert (prev[near][:, :2] == 0).all() and (prev[near][:, 2] > 0).all()      # tinted blue
    assert prev[95, 0].tolist() == [0, 0, 0]                     # far from the face: black
    flat = sketch.render_face_preview(chans[:1])                 # no distance channels: lines only
    assert np.array_equal(flat, np.repeat((lines * 255).astype(np.uint8)[..., None], 3, 2))


def test_face_sketch_with_given_landmarks_streams_as_the_same_frames_as_an_image_batch(carphone_rgb):
    """Given landmarks on real footage: the file and its frames as an IMAGE batch give identical frames;
    frames(start=k) equals the full stream from k; only={...} gives just those; previews are the frames'."""
    T = 12
    rgb = carphone_rgb[:T]
    lm = np.stack([_synthetic_landmarks(cx=80.0 + t, cy=70.0, s=30.0) for t in range(T)])
    lm[4] = np.nan                                               # a frame without a face
    from_file = sketch.face_sketch(CARPHONE_CLIP, landmarks=lm, max_frames=T)
    from_batch = sketch.face_sketch(torch.from_numpy(rgb).float() / 255, landmarks=lm, fps=from_file.fps)
    assert (len(from_file), from_file.size, from_file.input_nc) == (T, (144, 176), 10)
    full = list(from_file.frames())
    _same(list(from_batch.frames()), full)
    for f in full:
        assert torch.equal(f.tensor, torch.from_numpy(sketch.face_sketch_frame(rgb[f.index], None if f.index == 4
                                                                               else lm[f.index])))
        assert np.array_equal(f.preview, sketch.render_face_preview(f.tensor.numpy()))
    assert from_file.report["given"] == T - 1 and from_file.report["missing"] == 1
    for k in (3, 11):
        _same(list(from_file.frames(start=k)), full[k:])
        _same(list(from_batch.frames(start=k)), full[k:])
    _same(list(from_file.frames(only={9, 0, 4})), [full[0], full[4], full[9]])
    _same(list(from_batch.frames(only={9, 0, 4})), [full[0], full[4], full[9]])


def test_canny_is_removed_inside_the_face_region():
    rgb = np.zeros((96, 96, 3), np.uint8)
    rgb[::8] = 255                                                # stripes everywhere
    lm = _synthetic_landmarks()
    with_face = sketch.face_sketch_frame(rgb, lm, distance_transform=False)[0]
    edges_only = sketch.face_sketch_frame(rgb, None, distance_transform=False)[0]
    inside = sketch.face_region_mask(lm, (96, 96)) > 0
    parts = np.zeros((96, 96), bool)
    for p in sketch.draw_face_parts(lm, (96, 96)):
        parts |= p > 0
    assert edges_only[inside & ~parts].sum() > 0
    assert with_face[inside & ~parts].sum() == 0                 # only part polylines inside the face
    assert np.array_equal(with_face[~inside], edges_only[~inside])


def test_carphone_face_landmarks_on_at_least_95_percent_of_frames(carphone_dlib, carphone_landmarks):
    src, frames = carphone_dlib
    rep = src.report
    print("carphone face sketch report:", rep)
    assert rep["frames"] == N_FACE and src.input_nc == 10 and len(frames) == N_FACE
    assert rep["detected"] + rep["tracked"] + rep["missing"] == N_FACE and rep["given"] == 0
    assert rep["detection_rate"] >= 0.95                         # the detector itself, no tracking
    assert rep["landmark_rate"] == 1.0
    lm, status = carphone_landmarks
    assert lm.shape == (N_FACE, 68, 2) and lm.dtype == np.float32 and len(status) == N_FACE
    assert status.count("detected") == rep["detected"] and status.count("tracked") == rep["tracked"]
    assert np.isfinite(lm).all() and (lm[:, :, 0] < 176).all() and (lm[:, :, 1] < 144).all()
    jaw_width = np.linalg.norm(lm[:, 16] - lm[:, 0], axis=1)
    assert 35 < np.median(jaw_width) < 110                       # a ~60 px face


def test_dlib_face_sketch_streams_as_the_same_frames_as_an_image_batch(carphone_dlib, carphone_landmarks,
                                                                       carphone_rgb, predictor):
    """dlib on the file and on its frames as an IMAGE batch: identical frames; the same sketch as from the
    landmarks DlibLandmarks finds frame by frame (given); only={...} frames each on their own."""
    src, full = carphone_dlib
    from_batch = sketch.face_sketch(torch.from_numpy(carphone_rgb).float() / 255, predictor_path=predictor,
                                    fps=src.fps)
    _same(list(from_batch.frames()), full)
    assert {k: from_batch.report[k] for k in ("detected", "tracked", "missing")} == \
        {k: src.report[k] for k in ("detected", "tracked", "missing")}
    lm, status = carphone_landmarks
    given = sketch.face_sketch(CARPHONE_CLIP, landmarks=lm, max_frames=N_FACE)
    _same(list(given.frames()), full)
    assert given.report["given"] == N_FACE
    picks = {0, 7, 23}
    only = list(src.frames(only=picks))
    assert [f.index for f in only] == sorted(picks)
    for f in only:
        if status[f.index] == "detected":                        # found on its own: no box from before needed
            _same([f], [full[f.index]])
    assert src.report["frames"] == N_FACE and src.report["detected"] == status.count("detected")  # only= counts not


def test_dlib_landmarks_frame_by_frame_track_and_reset(carphone_rgb, predictor):
    finder = sketch.DlibLandmarks(predictor)
    lm, status = finder.frame(carphone_rgb[0])
    assert status == "detected" and lm.shape == (68, 2) and lm.dtype == np.float32
    black = np.zeros_like(carphone_rgb[0])
    lm2, status2 = finder.frame(black)                           # no face found: the last box is reused
    assert status2 == "tracked" and lm2.shape == (68, 2)
    finder.reset()                                               # a new shot: no box to reuse
    assert finder.frame(black) == (None, "missing")
    many, statuses = finder(np.stack([black, carphone_rgb[1], black]))    # __call__ starts afresh
    assert statuses == ["missing", "detected", "tracked"]
    assert np.isnan(many[0]).all() and np.isfinite(many[1:]).all()
    empty, none = finder(np.zeros((0, 8, 8, 3), np.uint8))
    assert empty.shape == (0, 68, 2) and none == []


def test_missing_dlib_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)                # import dlib -> ImportError
    with pytest.raises(extras.MissingExtraError, match="pip install dlib-bin"):
        sketch.face_sketch(np.zeros((1, 32, 32, 3), np.uint8))


def test_missing_shape_predictor_gives_the_install_command(monkeypatch, tmp_path):
    pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
    monkeypatch.setattr(extras, "REPO", tmp_path)
    monkeypatch.delenv("V2V_SHAPE_PREDICTOR", raising=False)
    monkeypatch.delenv("V2V_DATA_CACHE", raising=False)
    monkeypatch.setattr(extras, "SYSTEM_MODEL_DIRS", (tmp_path / "usr-share-dlib",))
    with pytest.raises(extras.MissingExtraError, match="apt-get install libdlib-data"):
        extras.shape_predictor_path()


def test_empty_and_corrupt_videos_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.mp4: cannot open as a video"):
        sketch.edge_sketch(empty)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(SourceError, match=r"corrupt\.mp4: cannot open as a video"):
        sketch.edge_sketch(corrupt)
    with pytest.raises(SourceError, match=r"corrupt\.mp4"):
        sketch.face_sketch(corrupt, landmarks=np.zeros((1, 68, 2)))
    with pytest.raises(SourceError, match="no such file"):
        sketch.edge_sketch(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="empty"):
        sketch.edge_sketch(torch.zeros(0, 8, 8, 3))


def test_sketch_extract_node(tmp_path, monkeypatch):
    from nodes import _comfy
    from nodes.sketch_extract import SketchExtract

    monkeypatch.setenv("V2V_INPUT_DIR", str(tmp_path))
    monkeypatch.setattr(_comfy, "_folder_paths", None)
    images = torch.from_numpy(np.stack(list(open_video(VTEST_CLIP, max_frames=3, max_side=128)))).float() / 255
    assert SketchExtract.RETURN_TYPES == ("V2V_SOURCE", "IMAGE")
    assert set(SketchExtract.INPUT_TYPES()["required"]) == {"mode", "distance_transform", "canny_outside_face",
                                                            "canny_sigma"}
    source, preview = SketchExtract().extract("edges", True, True, 0.25, images=images)
    assert source.input_nc == 1 and preview.shape == images.shape
    assert torch.equal(preview, source.preview())                # (source, source.preview())
    assert source.recipe.extractor == "edge_sketch" and source.recipe.params["sigma"] == 0.25
    (tmp_path / "clip.mp4").write_bytes(VTEST_CLIP.read_bytes())
    assert SketchExtract.VALIDATE_INPUTS(path="clip.mp4") is True
    assert "does not exist" in SketchExtract.VALIDATE_INPUTS(path="missing.mp4")
    assert SketchExtract.IS_CHANGED(path="clip.mp4") != SketchExtract.IS_CHANGED(path="")
    source, _ = SketchExtract().extract("edges", True, True, 0.33, path="clip.mp4", max_frames=2)
    assert len(source) == 2 and source.fps == 10.0
    with pytest.raises(ValueError, match="needs an IMAGE or VIDEO input or a path"):
        SketchExtract().extract("edges", True, True, 0.33)


def test_sketch_extract_node_face_mode(predictor, carphone_rgb):
    from nodes.sketch_extract import SketchExtract

    images = torch.from_numpy(carphone_rgb[:3]).float() / 255
    source, preview = SketchExtract().extract("face", True, True, 0.33, images=images, fps=30.0)
    assert (source.input_nc, len(source), source.kind) == (10, 3, "sketch")
    assert preview.shape == (3, 144, 176, 3) and torch.equal(preview, source.preview())
    assert source.recipe.extractor == "face_sketch" and source.recipe.params["distance_transform"] is True


def test_face_window_frames_a_face_like_the_shipped_models(carphone_rgb):
    pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
    # carphone (176x144) is the framing itself: the window is the whole frame
    x, y, w, h = sketch.face_window(carphone_rgb)
    assert (w, h) == (176, 144) and (x, y) == (0, 0)
    # the same face in a larger frame, off centre: a window around it, the face box 36 % of its height
    canvas = np.zeros((24, 432, 528, 3), np.uint8)
    canvas[:, 200:344, 300:476] = carphone_rgb
    x, y, w, h = sketch.face_window(canvas)
    assert abs(w / h - 176 / 144) < 0.02
    assert 300 - 20 <= x <= 300 + 20 and 200 - 20 <= y <= 200 + 20 and 130 <= h <= 160
    assert x + w <= 528 and y + h <= 432
    with pytest.raises(ValueError, match="no face found"):
        sketch.face_window(np.zeros((6, 120, 160, 3), np.uint8))
