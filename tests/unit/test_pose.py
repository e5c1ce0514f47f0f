"""Pose sources: skeleton rendering, POSE_KEYPOINT / OpenPose JSON round trips, streaming smoothing, person
crops, mediapipe on vtest person crops (when the mediapipe extra exists), streaming equals eager (file vs IMAGE
batch, frames from k, only), clear errors, the node."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from v2v.media.video_io import open_video
from v2v.sources import extras, pose
from v2v.sources.base import SourceError

REPO = Path(__file__).resolve().parents[2]
VTEST_CLIP = REPO / "tests" / "data" / "vtest_40f.mp4"
needs_mediapipe = pytest.mark.skipif(not extras.has_mediapipe(),
                                     reason="mediapipe extra absent: " + extras.INSTALL["mediapipe"])


def _person(cx=0.5, top=0.2, h=0.6, conf=0.9) -> pose.Person:
    """A standing person (normalized coordinates), all 18 joints visible."""
    w = h * 0.25
    y = lambda f: top + f * h  # noqa: E731
    pts = {0: (cx, y(0.05)), 1: (cx, y(0.18)), 2: (cx - w, y(0.18)), 3: (cx - w * 1.2, y(0.38)),
           4: (cx - w * 1.3, y(0.55)), 5: (cx + w, y(0.18)), 6: (cx + w * 1.2, y(0.38)), 7: (cx + w * 1.3, y(0.55)),
           8: (cx - w * 0.5, y(0.55)), 9: (cx - w * 0.5, y(0.78)), 10: (cx - w * 0.5, y(1.0)),
           11: (cx + w * 0.5, y(0.55)), 12: (cx + w * 0.5, y(0.78)), 13: (cx + w * 0.5, y(1.0)),
           14: (cx - w * 0.2, y(0.03)), 15: (cx + w * 0.2, y(0.03)), 16: (cx - w * 0.4, y(0.05)),
           17: (cx + w * 0.4, y(0.05))}
    body = np.array([[*pts[j], conf] for j in range(18)], np.float32)
    return pose.Person(body)


def _walk(T=10, seed=0, width=96, height=64) -> list[pose.PoseFrame]:
    """Two jittery people walking, one of them gone on frame 3."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(T):
        people = [_person(0.3 + 0.01 * t), _person(0.7 - 0.01 * t, top=0.25)]
        for p in people:
            p.body[:, :2] += rng.normal(0, 0.004, (18, 2)).astype(np.float32)
        frames.append(pose.PoseFrame(width, height, people[:1] if t == 3 else people))
    return frames


def _same(a, b) -> None:
    assert [f.index for f in a] == [f.index for f in b]
    for x, y in zip(a, b):
        assert torch.equal(x.tensor, y.tensor), f"frame {x.index}: tensors differ"
        assert np.array_equal(x.preview, y.preview)
        assert len(x.detail.people) == len(y.detail.people)
        for p, q in zip(x.detail.people, y.detail.people):
            assert np.array_equal(p.body, q.body)


def test_render_draws_openpose_colors_and_empty_frames_are_black():
    f = pose.PoseFrame(256, 256, [_person()])
    img = pose.render_pose(f)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    x, y = np.round(f.people[0].body[4, :2] * 256).astype(int)      # right wrist joint: COLORS[4]
    assert tuple(img[y, x]) == pose.COLORS[4]
    a, b = pose.LIMBS[6]                                              # neck -> right hip, limb color 6 at 60 %
    mid = np.round((f.people[0].body[a, :2] + f.people[0].body[b, :2]) / 2 * 256).astype(int)
    assert np.abs(img[mid[1], mid[0]].astype(int) - np.array(pose.COLORS[6]) * 0.6).max() <= 2
    assert pose.render_pose(pose.PoseFrame(64, 48, [])).max() == 0
    low = _person(conf=0.05)                                          # below min_conf: not drawn
    assert pose.render_pose(pose.PoseFrame(64, 64, [low])).max() == 0


def test_pose_keypoint_round_trip_and_formats():
    p = _person()
    p.body[16] = 0                                                    # a missing joint
    p.hand_left = np.c_[np.random.default_rng(0).random((21, 2)), np.ones(21)].astype(np.float32)
    frames = [pose.PoseFrame(640, 480, [p]), pose.PoseFrame(640, 480, [])]
    kp = pose.to_pose_keypoint(frames)
    assert kp[0]["canvas_width"] == 640 and len(kp[0]["people"][0]["pose_keypoints_2d"]) == 54
    assert kp[0]["people"][0]["hand_right_keypoints_2d"] is None and kp[1]["people"] == []
    json.dumps(kp)                                                    # plain JSON types
    back = pose.from_pose_keypoint(kp)
    assert np.allclose(back[0].people[0].body, p.body, atol=1e-5)
    assert np.allclose(back[0].people[0].hand_left, p.hand_left, atol=1e-5)
    assert back[1].people == []
    # pixel coordinates (values > 1) are recognised and normalized
    px = json.loads(json.dumps(kp))
    px[0]["people"][0]["pose_keypoints_2d"] = (p.body * (640, 480, 1)).reshape(-1).tolist()
    px[0]["people"][0]["hand_left_keypoints_2d"] = None
    assert np.allclose(pose.from_pose_keypoint(px)[0].people[0].body, p.body, atol=1e-4)
    # BODY_25 converts to 18 joints (mid-hip and feet dropped)
    b25 = np.zeros((25, 3), np.float32)
    b25[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]] = p.body
    b25[8] = (0.5, 0.6, 1.0)
    conv = pose.from_pose_keypoint({"people": [{"pose_keypoints_2d": b25.reshape(-1).tolist()}],
                                    "canvas_width": 10, "canvas_height": 10})
    assert np.allclose(conv[0].people[0].body, p.body)
    with pytest.raises(ValueError, match="canvas"):
        pose.from_pose_keypoint([{"people": []}])


def test_openpose_json_round_trip(tmp_path):
    frames = [pose.PoseFrame(320, 240, [_person(0.3), _person(0.7)]), pose.PoseFrame(320, 240, [])]
    paths = pose.write_openpose_json(frames, tmp_path, prefix="clip")
    assert [p.name for p in paths] == ["clip_000000000000_keypoints.json", "clip_000000000001_keypoints.json"]
    raw = json.loads(paths[0].read_text())
    assert raw["people"][0]["pose_keypoints_2d"][0] == pytest.approx(0.3 * 320, abs=1e-3)  # pixels on disk
    back = pose.read_openpose_json(tmp_path)
    assert len(back) == 2 and len(back[0].people) == 2 and back[1].people == []
    assert np.allclose(back[0].people[1].body, frames[0].people[1].body, atol=1e-5)
    # a plain OpenPose file has no canvas size: ask for it
    for p in paths:
        d = json.loads(p.read_text())
        d.pop("canvas_width"), d.pop("canvas_height")
        p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="width= and height="):
        pose.read_openpose_json(tmp_path)
    assert len(pose.read_openpose_json(tmp_path, width=320, height=240)[0].people) == 2


def test_pose_video_from_keypoints_without_mediapipe(monkeypatch):
    monkeypatch.setattr(extras, "mediapipe_python", lambda: (_ for _ in ()).throw(AssertionError("not needed")))
    kp = pose.to_pose_keypoint([pose.PoseFrame(96, 64, [_person()]), pose.PoseFrame(96, 64, []),
                                pose.PoseFrame(96, 64, [_person(0.4)])])
    src = pose.pose_video(keypoints=kp, smooth=False, fps=12)
    assert (len(src), src.input_nc, src.label_nc, src.size, src.kind, src.fps) == (3, 3, 0, (64, 96), "pose", 12.0)
    assert src.report["source"] == "keypoints" and src.report["smoothed"] is False
    t = src.tensor()
    assert t.shape == (3, 3, 64, 96) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1 and torch.all(t[1] == -1)   # empty frame: black = -1
    frames = list(src.frames())
    assert all(isinstance(f.detail, pose.PoseFrame) for f in frames)
    assert sum(not f.detail.people for f in frames) == 1               # frames without a person
    for f in frames:
        assert np.array_equal(f.preview, pose.render_pose(f.detail))
    assert torch.allclose((t.permute(0, 2, 3, 1) + 1) / 2, src.preview())
    keypoints = pose.PoseKeypoints(src)                               # POSE_KEYPOINT, lazily
    assert len(keypoints) == 3 and keypoints[0]["canvas_width"] == 96 and keypoints[1]["people"] == []
    assert np.allclose(pose.from_pose_keypoint(keypoints[2])[0].people[0].body, _person(0.4).body, atol=1e-5)
    json.dumps(list(keypoints))
    big = pose.pose_video(keypoints=kp, width=192, height=128)        # render at another size
    assert big.size == (128, 192) and big.tensor().shape == (3, 3, 128, 192)
    assert next(big.frames()).detail.width == 192
    assert len(pose.pose_video(keypoints=kp, max_frames=2)) == 2
    with pytest.raises(SourceError, match="no pose frames"):
        pose.pose_video(keypoints=[])
    with pytest.raises(ValueError, match="give a video"):
        pose.pose_video()


def test_pose_from_keypoints_streams_the_same_with_a_video_file_or_an_image_batch():
    """Keypoints drawn on a video's canvas: the video FILE and the same frames as an IMAGE batch give identical
    frames (smoothed at the video's frame rate); frames(start=k) unsmoothed equals the full stream from k, and
    smoothed restarts its filters at k; only={...} gives just those frames, each on its own (unsmoothed)."""
    rgb = np.stack(list(open_video(VTEST_CLIP, max_frames=10, max_side=192)))          # 192x144, 10 fps
    walk = _walk(10, width=640, height=480)
    kp = pose.to_pose_keypoint(walk)
    from_file = pose.pose_video(VTEST_CLIP, keypoints=kp, max_side=192)
    from_batch = pose.pose_video(torch.from_numpy(rgb).float() / 255, keypoints=kp, fps=10.0)
    assert (from_file.size, from_file.fps, len(from_file)) == ((144, 192), 10.0, 10)
    assert (from_batch.size, from_batch.fps) == ((144, 192), 10.0)
    full = list(from_file.frames())
    _same(list(from_batch.frames()), full)
    expected = pose.smooth_poses(pose.from_pose_keypoint(kp), fps=10.0)
    for f, e in zip(full, expected):
        assert np.array_equal(f.preview, pose.render_pose(e, 192, 144))
        assert f.detail.width == 192 and f.detail.height == 144
    raw = pose.pose_video(VTEST_CLIP, keypoints=kp, max_side=192, smooth=False)
    raw_full = list(raw.frames())
    assert not all(torch.equal(a.tensor, b.tensor) for a, b in zip(raw_full, full))      # smoothing did something
    for k in (2, 6):
        _same(list(raw.frames(start=k)), raw_full[k:])                                  # stateless: the same
        restarted = pose.smooth_poses(pose.from_pose_keypoint(kp)[k:], fps=10.0)        # smoothed: anew from k
        for f, e in zip(from_file.frames(start=k), restarted):
            assert np.array_equal(f.preview, pose.render_pose(e, 192, 144))
    only = list(from_file.frames(only={7, 0, 3}))
    _same(only, [raw_full[0], raw_full[3], raw_full[7]])
    assert [f.index for f in from_batch.frames(only={9, 10})] == [9]
    assert [pose.PoseKeypoints(from_file)[i] for i in range(10)] == pose.to_pose_keypoint([f.detail for f in full])


def test_one_euro_smoothing_reduces_jitter_and_keeps_people_apart():
    rng = np.random.default_rng(0)
    frames = []
    for t in range(60):
        a, b = _person(0.25), _person(0.75 - 0.002 * t)
        for p in (a, b):
            p.body[:, :2] += rng.normal(0, 0.004, (18, 2)).astype(np.float32)
        frames.append(pose.PoseFrame(200, 100, [a, b] if t % 2 else [b, a]))  # order swaps each frame
    out = pose.smooth_poses(frames, fps=30)
    left = np.stack([min(f.people, key=lambda p: p.body[1, 0]).body[1, 0] for f in out])
    raw = np.stack([min(f.people, key=lambda p: p.body[1, 0]).body[1, 0] for f in frames])
    assert np.std(np.diff(left[10:])) < 0.6 * np.std(np.diff(raw[10:]))
    assert np.all(np.abs(left - 0.25) < 0.03)                           # never mixed with the other person
    # the streaming smoother, one frame at a time, is what smooth_poses runs
    smoother = pose.PoseSmoother(30)
    streamed = [smoother(f) for f in frames]
    for a, b in zip(streamed, out):
        assert all(np.array_equal(p.body, q.body) for p, q in zip(a.people, b.people))
    # reset (a cut): the next frame passes through unsmoothed, then smoothing starts again from it
    smoother.reset()
    first = smoother(frames[30])
    assert all(np.array_equal(p.body, q.body) for p, q in zip(first.people, frames[30].people))
    again = pose.smooth_poses(frames[30:40], fps=30)
    for f, e in zip(frames[31:40], again[1:]):
        assert all(np.array_equal(p.body, q.body) for p, q in zip(smoother(f).people, e.people))


def test_smoother_passes_low_confidence_joints_and_keeps_frames_apart():
    smoother = pose.PoseSmoother(30)
    a = _person(0.5)
    smoother(pose.PoseFrame(100, 100, [a]))
    b = _person(0.52)
    b.body[4, 2] = 0.1                                                  # a joint the detector barely saw
    out = smoother(pose.PoseFrame(100, 100, [b])).people[0].body
    assert np.array_equal(out[4], b.body[4])                            # passed through unsmoothed
    assert not np.array_equal(out[0, :2], b.body[0, :2])                # the others smoothed
    assert 0.5 < out[1, 0] < 0.52
    assert smoother(pose.PoseFrame(100, 100, [])).people == []
    far = _person(0.95)                                                 # beyond max_jump: a new person
    assert np.array_equal(smoother(pose.PoseFrame(100, 100, [far])).people[0].body, far.body)


def test_person_crops_of_one_frame_mask():
    mask = np.zeros((120, 160), np.uint8)
    mask[20:60, 10:30] = 255                                            # a person ...
    mask[64:100, 12:28] = 255                                           # ... cut in two by a sign
    mask[40:90, 100:120] = 255                                          # someone else
    mask[5:7, 150:152] = 255                                            # speckle: too small
    boxes = pose.person_crops(mask)
    assert isinstance(boxes, list) and len(boxes) == 2
    left, right = sorted(boxes)
    assert left[0] <= 10 and left[1] <= 20 and left[2] >= 30 and left[3] >= 100   # merged and padded
    assert right[0] < 100 and right[2] > 120 and right[1] < 40 and right[3] > 90
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 120
        assert (x1 - x0) >= 0.6 * (y1 - y0) - 1 or x0 == 0 or x1 == 160          # widened to min_aspect
    assert pose.person_crops(np.zeros((50, 50), np.uint8)) == []


def test_missing_mediapipe_gives_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(extras, "REPO", tmp_path)
    monkeypatch.delenv("V2V_MEDIAPIPE_PYTHON", raising=False)
    with pytest.raises(extras.MissingExtraError, match=r"pip install mediapipe==0\.10\.21"):
        pose.pose_video(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(extras.MissingExtraError, match=r"pip install mediapipe==0\.10\.21"):
        pose.detect_poses(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(extras.MissingExtraError, match=r"pip install mediapipe==0\.10\.21"):
        pose.PoseDetector(np.zeros((2, 32, 32, 3), np.uint8), crops="full")


@needs_mediapipe
def test_vtest_pose_on_person_crops():
    frames, rep = pose.detect_poses(VTEST_CLIP, crops="moving", max_frames=24)
    print("vtest pose report:", rep)
    assert len(frames) == 24 and all(isinstance(f, pose.PoseFrame) for f in frames)
    assert rep["frames"] == 24 and rep["crops"] >= 24 and rep["fps"] == 10.0 and rep["mode"] == "moving"
    # measured on this clip (24 frames, 768x576): 79 crops, 76 skeletons (0.96), a skeleton on 24/24 frames
    assert rep["crop_hit_rate"] >= 0.75
    assert rep["detection_rate"] >= 0.95 and rep["people_total"] >= 48
    assert rep["frames_without_person"] == sum(not f.people for f in frames)
    assert rep["people_total"] == sum(len(f.people) for f in frames)
    for f in frames:
        for p in f.people:                                  # skeletons stand upright: neck above the ankles
            b = p.body
            if b[1, 2] > 0.5 and b[10, 2] > 0.5:
                assert b[1, 1] < b[10, 1]


@needs_mediapipe
def test_mediapipe_pose_streams_as_the_same_frames_as_an_image_batch():
    """mediapipe poses of the video FILE and of its frames as an IMAGE batch: identical frames, keypoints and
    report; only={...} gives just those frames, each on its own (unsmoothed)."""
    T, side = 6, 384
    rgb = np.stack(list(open_video(VTEST_CLIP, max_frames=T, max_side=side)))
    from_file = pose.pose_video(VTEST_CLIP, max_frames=T, max_side=side, crops="moving")
    from_batch = pose.pose_video(torch.from_numpy(rgb).float() / 255, fps=10.0, crops="moving")
    assert from_file.recipe.extractor == "pose" and from_file.recipe.params == {"crops": "moving", "smooth": True,
                                                                                "min_conf": 0.1}
    assert (from_file.size, from_file.fps, len(from_file)) == ((288, 384), 10.0, T)
    full = list(from_file.frames())
    _same(list(from_batch.frames()), full)
    assert sum(len(f.detail.people) for f in full) >= T             # people found
    for key in ("frames", "frames_without_person", "people_total", "crops", "crops_with_pose", "detection_rate"):
        assert from_file.report[key] == from_batch.report[key], key
    assert from_file.report["frames"] == T and from_file.report["source"] == "mediapipe"
    raw = pose.pose_video(VTEST_CLIP, max_frames=T, max_side=side, crops="moving", smooth=False)
    only = list(raw.frames(only={4, 1}))
    assert [f.index for f in only] == [1, 4]
    _same(list(from_file.frames(only={1, 4})), only)                  # only=: unsmoothed, each on its own
    kp = pose.PoseKeypoints(from_file)
    assert len(kp) == T and kp[0]["canvas_width"] == 384


def test_pose_extract_node(monkeypatch, tmp_path):
    from nodes import _comfy
    from nodes.pose_extract import PoseExtract

    monkeypatch.setenv("V2V_INPUT_DIR", str(tmp_path))
    monkeypatch.setattr(_comfy, "_folder_paths", None)
    assert PoseExtract.RETURN_TYPES == ("V2V_SOURCE", "IMAGE", "POSE_KEYPOINT")
    assert "pose_keypoint" in PoseExtract.INPUT_TYPES()["optional"]
    kp = pose.to_pose_keypoint([pose.PoseFrame(64, 64, [_person()])] * 3)
    source, preview, kp_out = PoseExtract().extract("auto", True, pose_keypoint=kp)
    assert source.input_nc == 3 and preview.shape == (3, 64, 64, 3) and len(kp_out) == 3
    assert torch.equal(preview, source.preview())                       # (source, source.preview(), keypoints)
    assert isinstance(kp_out, pose.PoseKeypoints) and kp_out[0]["canvas_width"] == 64
    assert np.allclose(pose.from_pose_keypoint(kp_out[2])[0].people[0].body, _person().body, atol=1e-5)
    images = torch.zeros(3, 32, 48, 3)                                  # keypoints rendered at the images' size
    source, preview, kp_out = PoseExtract().extract("auto", False, images=images, pose_keypoint=kp)
    assert preview.shape == (3, 32, 48, 3) and kp_out[0]["canvas_width"] == 48
    pose.write_openpose_json(pose.from_pose_keypoint(kp), tmp_path / "op")
    source, _, _ = PoseExtract().extract("auto", False, path="op")
    assert len(source) == 3 and PoseExtract.VALIDATE_INPUTS(path="op") is True
    with pytest.raises(ValueError, match="needs an IMAGE or VIDEO input"):
        PoseExtract().extract("auto", False)
