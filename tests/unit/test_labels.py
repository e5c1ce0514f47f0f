"""Label sources: Cityscapes id PNG round trip, color maps, boundaries, remapping, clear errors (raised when
the stream reaches the bad frame), streaming equals eager, the node."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from v2v.sources import labels as L
from v2v.sources.base import SourceError, SourceFrame
from v2v.media.tensors import image_to_model, model_to_image


def _ids_image(ids: np.ndarray) -> torch.Tensor:
    """Id maps ``[T, H, W]`` (< 256) as a ComfyUI IMAGE batch: every channel = id / 255."""
    return torch.from_numpy(np.repeat(ids[..., None], 3, -1) / 255.0).float()


def _same_frames(a: list[SourceFrame], b: list[SourceFrame]) -> None:
    assert [f.index for f in a] == [f.index for f in b]
    for x, y in zip(a, b):
        assert torch.equal(x.tensor, y.tensor), f"frame {x.index}: tensors differ"
        assert np.array_equal(x.ids, y.ids) and np.array_equal(x.preview, y.preview)
        assert (x.instance is None) == (y.instance is None)
        if x.instance is not None:
            assert np.array_equal(x.instance, y.instance)


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
    assert src.recipe.extractor == "label_maps" and src.recipe.params["boundary"] is True
    frames = list(src.frames())
    assert [f.index for f in frames] == [0, 1, 2]
    for t, f in enumerate(frames):
        frame = f.tensor
        assert frame.shape == (36, 24, 32) and frame.dtype == torch.float32
        assert torch.equal(frame[:35].argmax(0), torch.from_numpy(ids[t]).long())
        assert torch.all(frame[:35].sum(0) == 1)
        assert torch.equal(frame[35].bool(), torch.from_numpy(L.instance_boundary(inst[t])))
        assert np.array_equal(f.ids, ids[t]) and np.array_equal(f.instance, inst[t])
        assert f.preview.shape == (24, 32, 3) and f.preview.dtype == np.uint8 and not f.cut
    assert src.tensor().shape == (3, 36, 24, 32)
    preview = src.preview()
    assert preview.shape == (3, 24, 32, 3) and 0 <= preview.min() and preview.max() <= 1
    # the preview shows Cityscapes colors (road away from edges)
    assert tuple((preview[0, -1, 0] * 255).round().int().tolist()) == (128, 64, 128)
    assert src.preview(max_frames=2).shape == (2, 24, 32, 3)                  # first and last frame
    assert torch.equal(src.preview(max_frames=2)[1], preview[2])
    # write back what we read: identical files
    out = tmp_path / "out"
    out.mkdir()
    for t, f in enumerate(frames):
        L.write_id_png(out / f"{t}.png", f.ids)
        assert np.array_equal(L.read_id_png(out / f"{t}.png"), ids[t])


def test_cityscapes_folder_with_train_ids_files(tmp_path):
    ids, _ = _cityscapes_clip(tmp_path)
    src = L.label_video(tmp_path, label_set_name="cityscapes_train", instances=True)
    assert (len(src), src.input_nc, src.label_nc) == (3, 20, 19)
    train = L.CITYSCAPES_ID_TO_TRAINID[ids[1]]
    (frame,) = src.frames(only={1})
    assert frame.index == 1 and np.array_equal(frame.ids, train)
    f = frame.tensor
    assert torch.equal(f[:19].sum(0) == 0, torch.from_numpy(train == 255))   # ignored pixels: no class
    assert f[13][torch.from_numpy(ids[1] == 26)].min() == 1                  # car -> trainId 13


def test_train_ids_ignore_255_is_all_zero():
    ids = np.array([[0, 18], [255, 13]])
    src = L.label_video(ids[None], label_set_name="cityscapes_train")
    f = src.tensor()[0]
    assert f.shape == (19, 2, 2)
    assert f[:, 1, 0].sum() == 0 and f[18, 0, 1] == 1 and f[13, 1, 1] == 1


def test_color_coded_maps_with_palette():
    pal = L.CITYSCAPES.palette()
    ids = np.array([[7, 7, 23], [26, 24, 11]])
    rgb = pal[ids].astype(np.uint8)
    assert np.array_equal(L.colors_to_ids(rgb, pal), ids)
    src = L.label_video(rgb[None], label_set_name="cityscapes", mode="color")
    assert torch.equal(src.tensor()[0].argmax(0), torch.from_numpy(ids).long())
    bad = rgb.copy()
    bad[1, 2] = (1, 2, 3)
    with pytest.raises(SourceError, match=r"frame #0: color \(1, 2, 3\).*not in the palette"):
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
    f = src.tensor()[0]
    assert f[11].sum() == 3 and f[21].sum() == 0
    assert np.array_equal(next(src.frames()).ids, out)                       # the frame's ids are remapped


def test_out_of_range_id_names_frame_and_id(tmp_path):
    ids = np.zeros((2, 4, 4), int)
    ids[1, 2, 2] = 40
    for t in range(2):
        L.write_id_png(tmp_path / f"f{t:03d}.png", ids[t])
    src = L.label_video(tmp_path, label_nc=35)                  # only the first frame is read up front
    with pytest.raises(SourceError, match=r"frame f001\.png \(index 1\): label id 40 is outside \[0, 35\)"):
        src.tensor()
    with pytest.raises(SourceError, match=r"label id 3 is outside \[0, 3\)"):
        L.one_hot(np.array([[0, 3]]), 3)
    bad_first = np.zeros((2, 4, 4), int)
    bad_first[0, 0, 0] = 7
    with pytest.raises(SourceError, match=r"frame #0 \(index 0\): label id 7 is outside \[0, 5\)"):
        L.label_video(bad_first, label_nc=5)                    # a bad FIRST frame fails at once


def test_out_of_range_id_in_a_later_frame_fails_only_when_streamed(tmp_path):
    ids = np.zeros((4, 6, 8), int)
    ids[:, 3:] = 7
    ids[2, 1, 5] = 40                                           # frame 2 is bad
    for t in range(4):
        L.write_id_png(tmp_path / f"clip_{t:03d}.png", ids[t])
    src = L.label_video(tmp_path, label_nc=35)                  # no error yet: frame 2 is not read
    assert len(src) == 4 and src.size == (6, 8)
    stream = src.frames()
    got = [next(stream), next(stream)]                          # frames 0 and 1 come out
    assert [f.index for f in got] == [0, 1] and np.array_equal(got[1].ids, ids[1])
    with pytest.raises(SourceError) as err:
        next(stream)
    msg = str(err.value)
    assert "clip_002.png" in msg and "(index 2)" in msg and "label id 40 is outside [0, 35)" in msg
    # the frames around it are fine on their own, and only={...} touching frame 2 fails too
    assert [f.index for f in src.frames(only={0, 3})] == [0, 3]
    assert [f.index for f in src.frames(3)] == [3]
    with pytest.raises(SourceError, match=r"clip_002\.png \(index 2\)"):
        list(src.frames(only={2}))
    with pytest.raises(SourceError, match=r"clip_002\.png \(index 2\)"):
        list(src.frames(1, 3))
    assert len(list(src.frames(0, 2))) == 2                     # stop before it: no error


def test_mismatched_frame_sizes_name_the_frame(tmp_path):
    L.write_id_png(tmp_path / "a_000.png", np.zeros((4, 4), int))
    L.write_id_png(tmp_path / "a_001.png", np.zeros((5, 4), int))
    src = L.label_video(tmp_path, label_nc=4)                   # the first frame fixes the size: 4x4
    assert src.size == (4, 4)
    stream = src.frames()
    assert next(stream).index == 0
    with pytest.raises(SourceError, match=r"frame a_001\.png is 4x5, but frame a_000\.png is 4x4"):
        next(stream)


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
    f = src.tensor()[0]
    assert src.input_nc == 4 and torch.equal(f[:3].argmax(0), torch.from_numpy(ids[0]).long())
    assert torch.equal(f[3].bool(), torch.from_numpy(L.instance_boundary(ids[0])))
    assert f[3].sum() > 0


def test_label_folder_streams_as_the_same_frames_as_an_image_batch(tmp_path):
    """Streaming equals eager: the folder of id PNGs and the same ids as an in-memory IMAGE batch give identical
    frames; frames(start=k) equals the full stream from k; only={...} yields just those frames."""
    ids, inst = _cityscapes_clip(tmp_path, T=5)
    from_files = L.label_video(tmp_path, label_set_name="cityscapes", instances="labels")
    from_batch = L.label_video(_ids_image(ids), label_set_name="cityscapes", instances="labels")
    from_arrays = L.label_video(ids, label_set_name="cityscapes", instances="labels")
    assert (len(from_files), from_files.size, from_files.input_nc) == (5, (24, 32), 36)
    full = list(from_files.frames())
    _same_frames(full, list(from_batch.frames()))
    _same_frames(full, list(from_arrays.frames()))
    assert torch.equal(from_files.tensor(), torch.stack([f.tensor for f in full]))
    for k in (1, 3, 4):
        _same_frames(list(from_files.frames(start=k)), full[k:])
        _same_frames(list(from_batch.frames(start=k)), full[k:])
    _same_frames(list(from_files.frames(1, 3)), full[1:3])
    assert torch.equal(from_files.tensor(2, 4), torch.stack([full[2].tensor, full[3].tensor]))
    only = list(from_files.frames(only={4, 0, 2}))
    _same_frames(only, [full[0], full[2], full[4]])
    _same_frames(list(from_batch.frames(only={4, 0, 2})), [full[0], full[2], full[4]])
    assert [f.index for f in from_files.frames(only={3, 9})] == [3]       # indices past the end are skipped
    assert list(from_files.frames(only=set())) == []
    # every stream starts afresh, and the boundary channel here comes from the label map itself
    _same_frames(list(from_files.frames()), full)
    assert torch.equal(full[2].tensor[35].bool(), torch.from_numpy(L.instance_boundary(ids[2])))
    # with the Cityscapes instance files: same from files and from arrays
    with_inst = L.label_video(tmp_path, label_set_name="cityscapes", instances=True)
    arrays_inst = L.label_video(ids, label_set_name="cityscapes", instances=inst)
    _same_frames(list(with_inst.frames()), list(arrays_inst.frames()))
    _same_frames(list(with_inst.frames(start=2)), list(arrays_inst.frames())[2:])


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
    assert preview.shape == (3, 24, 32, 3) and torch.equal(preview, source.preview())
    assert source.recipe.extractor == "label_maps"
    frames = list(source.frames())                              # instance boundaries from the instanceIds files
    assert all(torch.equal(f.tensor[35].bool(), torch.from_numpy(L.instance_boundary(f.instance))) for f in frames)
    assert frames[0].instance.max() == 26001
    # IMAGE batch input with generic ids
    batch = torch.from_numpy(np.repeat((ids % 5)[..., None], 3, -1) / 255.0).float()
    source, _ = LabelVideoLoader().load("ids", 5, False, images=batch)
    assert (source.input_nc, source.label_nc) == (5, 5)
    assert np.array_equal(np.stack([f.ids for f in source.frames()]), ids % 5)
    with pytest.raises(ValueError, match="needs an IMAGE or VIDEO input or a path"):
        LabelVideoLoader().load("ids", 5, False)


def test_label_colors_is_the_generic_palette_of_the_label_count():
    from v2v.sources.labels import generic_label_set, ids_to_colors, label_colors

    ids = np.array([[0, 1], [2, 8]])
    assert np.array_equal(label_colors(ids, 9), ids_to_colors(ids, generic_label_set(9).palette()))
    assert label_colors(ids, 9).dtype == np.uint8 and label_colors(ids, 9).shape == (2, 2, 3)
    assert np.array_equal(label_colors(np.zeros((2, 2), np.int64), 1), ids_to_colors(np.zeros((2, 2), np.int64), generic_label_set(2).palette()))
