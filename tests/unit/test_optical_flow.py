import numpy as np
import pytest
import torch

from _synthetic import moving_scene
from v2v.model.flow import warp
from v2v.media.optical_flow import (FlowCache, FlowParams, backward_flow, flow_and_confidence, flow_to_tensor,
                              warp_numpy)


@pytest.fixture(scope="module")
def scene():
    return moving_scene(6, 64, 80, bg_step=(1, 0), fg_step=(3, 1))


def _to_model(img):
    return torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]


def test_backward_flow_sign_and_units(scene):
    frames, labels = scene
    flow = backward_flow(frames[3], frames[2])
    assert flow.shape == (64, 80, 2) and flow.dtype == np.float32
    background = (labels[3] == 0) & (labels[2] == 0)
    # background content moved +1 px in x from t-1 to t, so the flow t -> t-1 points 1 px left
    med = np.median(flow[background], axis=0)
    assert abs(med[0] - (-1.0)) < 0.2 and abs(med[1]) < 0.2


def test_flow_warps_previous_onto_current_with_model_warp(scene):
    frames, _ = scene
    flow, _ = flow_and_confidence(frames[3], frames[2])
    warped = warp(_to_model(frames[2]), flow_to_tensor(flow)[None])[0].permute(1, 2, 0).numpy()
    err_warp = np.abs(warped - frames[3]).mean()
    err_none = np.abs(frames[2].astype(np.float32) - frames[3]).mean()
    assert err_warp < 0.3 * err_none
    # the numpy warp used by the metric agrees with v2v.model.flow.warp
    assert np.abs(warp_numpy(frames[2].astype(np.float32), flow) - warped).max() < 1e-2


def test_flow_to_tensor_layout():
    f = np.zeros((4, 5, 2), np.float32)
    f[..., 0], f[..., 1] = 1.5, -2.0
    t = flow_to_tensor(f)
    assert t.shape == (2, 4, 5) and float(t[0, 0, 0]) == 1.5 and float(t[1, 0, 0]) == -2.0
    assert flow_to_tensor(np.stack([f, f])).shape == (2, 2, 4, 5)


def test_warp_numpy_integer_shift():
    img = np.arange(5 * 6, dtype=np.float32).reshape(5, 6)
    flow = np.zeros((5, 6, 2), np.float32)
    flow[..., 0] = 1  # sample one pixel to the right
    out = warp_numpy(img, flow)
    np.testing.assert_array_equal(out[:, :-1], img[:, 1:])
    np.testing.assert_array_equal(out[:, -1], img[:, -1])  # border replicate


def test_confidence_masks_occlusions():
    frames, labels = moving_scene(5, 96, 128, bg_step=(1, 0), fg_step=(8, 0), radius=16)
    flow, conf = flow_and_confidence(frames[3], frames[2])
    assert conf.shape == (96, 128) and set(np.unique(conf)) <= {0.0, 1.0}
    assert conf.mean() > 0.8
    # pixels uncovered behind the moving disc (disc at t-1, background at t) are less trusted than the rest
    uncovered = (labels[2] == 1) & (labels[3] != 1)
    stable = (labels[2] == 0) & (labels[3] == 0)
    assert conf[uncovered].mean() < conf[stable].mean() - 0.4
    # content entering at the left border (background pans right) is not in the previous frame
    assert conf[:, 0].mean() < 0.5


def test_uint8_required_and_size_mismatch(scene):
    frames, _ = scene
    with pytest.raises(TypeError):
        backward_flow(frames[1].astype(np.float32), frames[0])
    with pytest.raises(ValueError, match="differ"):
        backward_flow(frames[1][:32], frames[0])
    with pytest.raises(ValueError, match="preset"):
        FlowParams(preset="slowest")


def test_cache_roundtrip_keys_and_atomicity(tmp_path, scene):
    frames, _ = scene
    cache = FlowCache(tmp_path, FlowParams("medium"))
    f1, c1 = cache.get(frames[1], frames[0])
    assert (cache.hits, cache.misses) == (0, 1)
    f2, c2 = cache.get(frames[1], frames[0])
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(f1, f2)  # a miss returns exactly what a hit reads (float16-rounded)
    np.testing.assert_array_equal(c1, c2)
    direct, _ = flow_and_confidence(frames[1], frames[0])
    assert np.abs(direct - f1).max() < 0.02
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".npy" and not files[0].name.startswith(".tmp")
    assert np.load(files[0]).dtype == np.float16
    # other content, order or parameters -> other keys
    keys = {cache.key(frames[1], frames[0]), cache.key(frames[0], frames[1]), cache.key(frames[2], frames[0]),
            FlowCache(tmp_path, FlowParams("fast")).key(frames[1], frames[0]),
            FlowCache(tmp_path, FlowParams("medium", fb_alpha2=1.0)).key(frames[1], frames[0])}
    assert len(keys) == 5
    # a torn entry is recomputed, not trusted
    files[0].write_bytes(files[0].read_bytes()[:50])
    f3, _ = cache.get(frames[1], frames[0])
    np.testing.assert_array_equal(f3, f1)
    assert cache.misses == 2
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_cache_without_root_computes(scene):
    frames, _ = scene
    cache = FlowCache(None)
    flow, conf = cache.get(frames[1], frames[0])
    assert flow.shape == (64, 80, 2) and cache.misses == 1
