"""Sketch sources: auto-Canny edges, the 68-landmark face sketch on real footage (carphone), errors."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from v2v.sources import extras, sketch
from v2v.sources.base import SourceError, read_video

REPO = Path(__file__).resolve().parents[2]
VTEST_CLIP = REPO / "tests" / "data" / "vtest_40f.mp4"


def fetched(*items: str) -> dict[str, Path]:
    """Paths of items of scripts/fetch_sample_data.py (fetching them if needed), or skip with the reason."""
    spec = importlib.util.spec_from_file_location("fetch_sample_data", REPO / "scripts" / "fetch_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.fetch(list(items), verbose=False)
    failed = {k: v for k, v in res.items() if not isinstance(v, Path)}
    if failed:
        pytest.skip(f"sample data could not be fetched: {failed}")
    return res


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
    t = src.tensor()
    assert t.shape == (4, 1, 192, 256) and set(torch.unique(t).tolist()) <= {0.0, 1.0}
    assert 0.01 < src.report["edge_density"] < 0.3
    assert src.fps == 10.0 and src.preview.shape == (4, 192, 256, 3)


def test_face_sketch_from_given_landmarks_needs_no_dlib():
    rgb = np.zeros((2, 96, 96, 3), np.uint8)
    lm = np.stack([_synthetic_landmarks(), np.full((68, 2), np.nan, np.float32)])
    src = sketch.face_sketch(rgb, landmarks=lm)
    t = src.tensor()
    assert t.shape == (2, 1 + sketch.N_PARTS, 96, 96)
    x, y = np.round(lm[0, 8]).astype(int)                        # chin point lies on the jaw polyline
    assert t[0, 0, y, x] == 1 and t[0, 1, y, x] == 0             # line channel, jaw distance channel = 0
    assert t[0, 1:].min() == 0 and t[0, 1:].max() == 1
    assert t[1, 0].sum() == 0 and torch.all(t[1, 1:] == 1)       # no face: no lines, far everywhere
    assert src.report["missing"] == 1
    flat = sketch.face_sketch(rgb, landmarks=lm, distance_transform=False)
    assert flat.input_nc == 1


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


def test_carphone_face_landmarks_on_at_least_95_percent_of_frames():
    pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
    data = fetched("carphone", "shape_predictor")
    src = sketch.face_sketch(data["carphone"], predictor_path=data["shape_predictor"])
    rep = src.report
    print("carphone face sketch report:", rep)
    assert rep["frames"] == 120 and src.input_nc == 10
    assert rep["detection_rate"] >= 0.95                         # the detector itself, no tracking
    assert rep["landmark_rate"] == 1.0
    lm = src.extra["landmarks"]
    assert np.isfinite(lm).all() and (lm[:, :, 0] < 176).all() and (lm[:, :, 1] < 144).all()
    jaw_width = np.linalg.norm(lm[:, 16] - lm[:, 0], axis=1)
    assert 35 < np.median(jaw_width) < 110                       # a ~60 px face


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
    with pytest.raises(SourceError, match="empty"):
        sketch.edge_sketch(empty)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(SourceError, match="corrupt"):
        read_video(corrupt)
    with pytest.raises(SourceError, match="no such file"):
        read_video(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="empty"):
        sketch.edge_sketch(torch.zeros(0, 8, 8, 3))


def test_sketch_extract_node(tmp_path, monkeypatch):
    from nodes import _comfy
    from nodes.sketch_extract import SketchExtract

    monkeypatch.setenv("V2V_INPUT_DIR", str(tmp_path))
    monkeypatch.setattr(_comfy, "_folder_paths", None)
    calls = []

    class Bar:  # stands in for comfy.utils.ProgressBar
        def __init__(self, total):
            calls.append(("new", total))

        def update_absolute(self, value, total=None):
            calls.append((value, total))

    monkeypatch.setattr(_comfy, "_ProgressBar", Bar)
    images = torch.from_numpy(read_video(VTEST_CLIP, max_frames=3, max_side=128).rgb).float() / 255
    assert SketchExtract.RETURN_TYPES == ("V2V_SOURCE", "IMAGE")
    source, preview = SketchExtract().extract("edges", True, True, 0.33, images=images)
    assert source.input_nc == 1 and preview.shape == images.shape
    assert calls == [("new", 3), (1, 3), (2, 3), (3, 3)]           # one update per frame
    (tmp_path / "clip.mp4").write_bytes(VTEST_CLIP.read_bytes())
    assert SketchExtract.VALIDATE_INPUTS(path="clip.mp4") is True
    assert "does not exist" in SketchExtract.VALIDATE_INPUTS(path="missing.mp4")
    assert SketchExtract.IS_CHANGED(path="clip.mp4") != SketchExtract.IS_CHANGED(path="")
    source, _ = SketchExtract().extract("edges", True, True, 0.33, path="clip.mp4", max_frames=2)
    assert len(source) == 2 and source.fps == 10.0
