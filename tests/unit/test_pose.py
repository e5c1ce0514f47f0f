"""Pose sources: skeleton rendering, POSE_KEYPOINT / OpenPose JSON round trips, smoothing, mediapipe on
vtest person crops (when the mediapipe extra exists), clear errors, the node."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from v2v.sources import extras, pose

REPO = Path(__file__).resolve().parents[2]
VTEST_CLIP = REPO / "tests" / "data" / "vtest_40f.mp4"


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
    assert (len(src), src.input_nc, src.label_nc, src.size, src.kind) == (3, 3, 0, (64, 96), "pose")
    t = src.tensor()
    assert t.min() >= -1 and t.max() <= 1 and torch.all(t[1] == -1)   # empty frame: black = -1
    assert src.report["frames_without_person"] == 1
    assert torch.allclose((t.permute(0, 2, 3, 1) + 1) / 2, src.preview)
    assert src.extra["pose_keypoint"][0]["canvas_width"] == 96
    big = pose.pose_video(keypoints=kp, width=192, height=128)        # render at another size
    assert big.size == (128, 192)


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


def test_missing_mediapipe_gives_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(extras, "REPO", tmp_path)
    monkeypatch.delenv("V2V_MEDIAPIPE_PYTHON", raising=False)
    with pytest.raises(extras.MissingExtraError, match=r"pip install mediapipe==0\.10\.21"):
        pose.pose_video(np.zeros((2, 32, 32, 3), np.uint8))


@pytest.mark.skipif(not extras.has_mediapipe(), reason="mediapipe extra absent: " + extras.INSTALL["mediapipe"])
def test_vtest_pose_on_person_crops():
    frames, rep = pose.detect_poses(VTEST_CLIP, crops="moving")
    print("vtest pose report:", rep)
    assert rep["frames"] == 40 and rep["crops"] >= 40
    # measured on this clip: 120 crops, 104 skeletons (0.87), a skeleton on 40/40 frames
    assert rep["crop_hit_rate"] >= 0.75
    assert rep["detection_rate"] >= 0.95 and rep["people_total"] >= 80
    assert rep["frames_without_person"] == sum(not f.people for f in frames)
    for f in frames:
        for p in f.people:                                  # skeletons stand upright: neck above the ankles
            b = p.body
            if b[1, 2] > 0.5 and b[10, 2] > 0.5:
                assert b[1, 1] < b[10, 1]


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
    images = torch.zeros(3, 32, 48, 3)                                  # keypoints rendered at the images' size
    source, preview, _ = PoseExtract().extract("auto", False, images=images, pose_keypoint=kp)
    assert preview.shape == (3, 32, 48, 3)
    pose.write_openpose_json(pose.from_pose_keypoint(kp), tmp_path / "op")
    source, _, _ = PoseExtract().extract("auto", False, path="op")
    assert len(source) == 3 and PoseExtract.VALIDATE_INPUTS(path="op") is True
    with pytest.raises(ValueError, match="needs an IMAGE input"):
        PoseExtract().extract("auto", False)
