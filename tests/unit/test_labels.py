"""Label sources: Cityscapes id PNG round trip, color maps, boundaries, remapping, clear errors, the node."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from v2v.sources import labels as L
from v2v.sources.base import SourceError
from v2v.media.tensors import image_to_model, model_to_image


def _cityscapes_clip(folder, T=3, H=24, W=32, seed=0):
    """Cityscapes-style files: labelIds (8-bit), instanceIds (16-bit: id*1000+k for things)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((T, H, W), np.int32)
    inst = np.zeros((T, H, W), np.int32)
    for t in range(T):
        ids[t, : H // 2] = 23                                   # sky
        ids[t, H // 2:] = 7                                     # road
        ids[t, H // 2 - 3: H - 2, 4 + t: 12 + t] = 26           # a car moving right
        ids[t, 2:6, 20:24] = rng.integers(11, 22)               # some stuff class
        inst[t] = ids[t]
        inst[t][ids[t] == 26] = 26 * 1000 + 1
        L.write_id_png(folder / f"aachen_000000_{t:06d}_gtFine_labelIds.png", ids[t])
        L.write_id_png(folder / f"aachen_000000_{t:06d}_gtFine_instanceIds.png", inst[t])
        L.write_id_png(folder / f"aachen_000000_{t:06d}_gtFine_labelTrainIds.png", L.CITYSCAPES_ID_TO_TRAINID[ids[t]])
    return ids, inst


def test_cityscapes_tables():
    assert L.CITYSCAPES.label_nc == 35 and len(L.CITYSCAPES.names) == 35
    assert L.CITYSCAPES.names[26] == "car" and L.CITYSCAPES.colors[26] == (0, 0, 142)
    assert L.CITYSCAPES_TRAIN.label_nc == 19 and L.CITYSCAPES_TRAIN.names[13] == "car"
    assert L.CITYSCAPES_ID_TO_TRAINID[26] == 13 and L.CITYSCAPES_ID_TO_TRAINID[0] == 255
    assert L.CITYSCAPES_TRAIN.ignore_ids == (255,)


def test_cityscapes_id_png_round_trip(tmp_path):
    ids, inst = _cityscapes_clip(tmp_path)
    assert L.read_id_png(tmp_path / "aachen_000000_000000_gtFine_instanceIds.png").max() == 26001  # 16-bit kept
    src = L.label_video(tmp_path, label_set_name="cityscapes", instances=True, fps=17)
    assert (len(src), src.input_nc, src.label_nc, src.size, src.fps) == (3, 36, 35, (24, 32), 17.0)
    for t in range(3):
        frame = src.get(t)
        assert frame.shape == (36, 24, 32) and frame.dtype == torch.float32
        assert torch.equal(frame[:35].argmax(0), torch.from_numpy(ids[t]).long())
        assert torch.all(frame[:35].sum(0) == 1)
        assert torch.equal(frame[35].bool(), torch.from_numpy(L.instance_boundary(inst[t])))
    assert src.tensor().shape == (3, 36, 24, 32)
    assert src.preview.shape == (3, 24, 32, 3) and 0 <= src.preview.min() and src.preview.max() <= 1
    # the preview shows Cityscapes colors (road away from edges)
    assert tuple((src.preview[0, -1, 0] * 255).round().int().tolist()) == (128, 64, 128)
    # write back what we read: identical files
    out = tmp_path / "out"
    out.mkdir()
    for t in range(3):
        L.write_id_png(out / f"{t}.png", src.extra["ids"][t])
        assert np.array_equal(L.read_id_png(out / f"{t}.png"), ids[t])


def test_cityscapes_folder_with_train_ids_files(tmp_path):
    ids, _ = _cityscapes_clip(tmp_path)
    src = L.label_video(tmp_path, label_set_name="cityscapes_train", instances=True)
    assert (len(src), src.input_nc, src.label_nc) == (3, 20, 19)
    train = L.CITYSCAPES_ID_TO_TRAINID[ids[1]]
    f = src.get(1)
    assert torch.equal(f[:19].sum(0) == 0, torch.from_numpy(train == 255))   # ignored pixels: no class
    assert f[13][torch.from_numpy(ids[1] == 26)].min() == 1                  # car -> trainId 13


def test_train_ids_ignore_255_is_all_zero():
    ids = np.array([[0, 18], [255, 13]])
    src = L.label_video(ids[None], label_set_name="cityscapes_train")
    f = src.get(0)
    assert f.shape == (19, 2, 2)
    assert f[:, 1, 0].sum() == 0 and f[18, 0, 1] == 1 and f[13, 1, 1] == 1


def test_color_coded_maps_with_palette():
    pal = L.CITYSCAPES.palette()
    ids = np.array([[7, 7, 23], [26, 24, 11]])
    rgb = pal[ids].astype(np.uint8)
    assert np.array_equal(L.colors_to_ids(rgb, pal), ids)
    src = L.label_video(rgb[None], label_set_name="cityscapes", mode="color")
    assert torch.equal(src.get(0).argmax(0), torch.from_numpy(ids).long())
    bad = rgb.copy()
    bad[1, 2] = (1, 2, 3)
    with pytest.raises(SourceError, match=r"frame 0.*color \(1, 2, 3\).*not in the palette"):
        L.label_video(bad[None], label_set_name="cityscapes", mode="color")
    assert L.colors_to_ids(bad, pal, unknown=0)[1, 2] == 0


def test_instance_boundary_marks_both_sides_of_4_neighbour_changes():
    inst = np.zeros((5, 5), int)
    inst[1:3, 1:3] = 7
    b = L.instance_boundary(inst)
    expected = np.zeros((5, 5), bool)
    expected[1:3, 1:3] = True                       # the block itself touches 0 everywhere
    expected[0, 1:3] = expected[3, 1:3] = True      # above / below
    expected[1:3, 0] = expected[1:3, 3] = True      # left / right
    assert np.array_equal(b, expected)              # diagonal neighbours are not edges
    assert not L.instance_boundary(np.full((4, 4), 3)).any()


def test_remap_labels_by_id_and_by_name():
    ids = np.array([[21, 21, 7], [26, 11, 0]])
    out = L.remap_labels(ids, {"vegetation": "building"}, label_set=L.CITYSCAPES)  # trees -> buildings
    assert out.tolist() == [[11, 11, 7], [26, 11, 0]] and ids[0, 0] == 21      # input untouched
    assert L.remap_labels(ids, {26: 24, 7: 8}).tolist() == [[21, 21, 8], [24, 11, 0]]
    assert L.parse_mapping("vegetation->building, 26:24") == {"vegetation": "building", "26": "24"}
    with pytest.raises(KeyError, match="treez"):
        L.remap_labels(ids, {"treez": "building"}, label_set=L.CITYSCAPES)
    src = L.label_video(ids[None], label_set_name="cityscapes", remap={"vegetation": "building"})
    assert src.get(0)[11].sum() == 3 and src.get(0)[21].sum() == 0


def test_out_of_range_id_names_frame_and_id(tmp_path):
    ids = np.zeros((2, 4, 4), int)
    ids[1, 2, 2] = 40
    for t in range(2):
        L.write_id_png(tmp_path / f"f{t:03d}.png", ids[t])
    with pytest.raises(SourceError, match=r"frame f001\.png: label id 40 is outside \[0, 35\)"):
        L.label_video(tmp_path, label_nc=35)
    with pytest.raises(SourceError, match=r"label id 3 is outside \[0, 3\)"):
        L.one_hot(np.array([[0, 3]]), 3)


def test_mismatched_frame_sizes_name_the_frame(tmp_path):
    L.write_id_png(tmp_path / "a_000.png", np.zeros((4, 4), int))
    L.write_id_png(tmp_path / "a_001.png", np.zeros((5, 4), int))
    with pytest.raises(SourceError, match=r"frame a_001\.png is 4x5, but frame a_000\.png is 4x4"):
        L.label_video(tmp_path, label_nc=4)


def test_empty_folder_and_colored_id_png(tmp_path):
    with pytest.raises(SourceError, match="no label images"):
        L.label_video(tmp_path, label_nc=4)
    import cv2
    cv2.imwrite(str(tmp_path / "c.png"), np.dstack([np.zeros((3, 3)), np.ones((3, 3)), np.zeros((3, 3))]).astype(np.uint8))
    with pytest.raises(SourceError, match="color image, not an id map"):
        L.read_id_png(tmp_path / "c.png")


def test_image_batch_ids_and_label_boundaries():
    ids = np.array([[[0, 0, 2], [1, 1, 2]]])
    image = torch.from_numpy(np.repeat(ids[..., None], 3, -1) / 255.0).float()  # IMAGE [1, 2, 3, 3]
    src = L.label_video(image, label_nc=3, instances="labels")
    assert src.input_nc == 4 and torch.equal(src.get(0)[:3].argmax(0), torch.from_numpy(ids[0]).long())
    assert src.get(0)[3].sum() > 0


def test_tensors_round_trip():
    img = torch.rand(2, 5, 7, 3)
    m = image_to_model(img)
    assert m.shape == (2, 3, 5, 7) and m.min() >= -1 and m.max() <= 1
    assert torch.allclose(model_to_image(m), img, atol=1e-6)


def test_label_video_loader_node(tmp_path, monkeypatch):
    from nodes import _comfy
    from nodes.label_video_loader import LabelVideoLoader

    monkeypatch.setenv("V2V_INPUT_DIR", str(tmp_path))
    monkeypatch.setattr(_comfy, "_folder_paths", None)
    clip = tmp_path / "city"
    clip.mkdir()
    ids, _ = _cityscapes_clip(clip)
    spec = LabelVideoLoader.INPUT_TYPES()
    assert set(spec["required"]) == {"label_format", "label_nc", "instance_boundary"}
    assert LabelVideoLoader.RETURN_TYPES == ("V2V_SOURCE", "IMAGE")
    assert LabelVideoLoader.VALIDATE_INPUTS(path="city") is True
    assert "outside" in LabelVideoLoader.VALIDATE_INPUTS(path="../etc")
    assert "outside" in LabelVideoLoader.VALIDATE_INPUTS(path="/etc/passwd")
    h1 = LabelVideoLoader.IS_CHANGED(path="city", label_nc=0)
    assert h1 and h1 == LabelVideoLoader.IS_CHANGED(path="city")
    source, preview = LabelVideoLoader().load("cityscapes_labelIds", 0, True, path="city", remap="vegetation->building")
    assert (source.input_nc, source.label_nc, len(source)) == (36, 35, 3)
    assert preview.shape == (3, 24, 32, 3)
    # IMAGE batch input with generic ids
    batch = torch.from_numpy(np.repeat((ids % 5)[..., None], 3, -1) / 255.0).float()
    source, _ = LabelVideoLoader().load("ids", 5, False, images=batch)
    assert (source.input_nc, source.label_nc) == (5, 5)
    with pytest.raises(ValueError, match="needs an IMAGE input or a path"):
        LabelVideoLoader().load("ids", 5, False)
