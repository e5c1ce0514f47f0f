import math

import numpy as np
import pytest
import torch

from _synthetic import moving_scene, noisy_copy
from v2v.media.metrics import (drift, format_windows, psnr, ssim, to_uint8_frames, warping_error, window_means)
from v2v.media.optical_flow import FlowCache


def test_psnr_known_values():
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[1] += 0.2  # mse 0.04 in range [-1, 1] (data range 2) -> 10 log10(4 / 0.04) = 20 dB
    p = psnr(x, y)
    assert p.shape == (2,)
    assert p[0] > 100 and abs(float(p[1]) - 20.0) < 1e-4
    assert abs(float(psnr(x[1], y[1] / 2, value_range=(0.0, 1.0))) - 10 * math.log10(1 / 0.01)) < 1e-4
    with pytest.raises(ValueError):
        psnr(x, y[:, :2])


def test_ssim_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.random((3, 40, 52))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ref = skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    channel_axis=0, data_range=1.0)
    ours = float(ssim(torch.tensor(a), torch.tensor(b), value_range=(0.0, 1.0)))
    assert abs(ours - ref) < 1e-4
    # model range [-1, 1] (the default): same value
    ours2 = float(ssim(torch.tensor(a * 2 - 1), torch.tensor(b * 2 - 1)))
    assert abs(ours2 - ref) < 1e-4


def test_ssim_batch_shape_and_identity():
    x = torch.rand(2, 4, 3, 16, 16) * 2 - 1
    s = ssim(x, x)
    assert s.shape == (2, 4) and torch.allclose(s, torch.ones(2, 4), atol=1e-6)
    assert float(ssim(x[0, 0], torch.rand(3, 16, 16) * 2 - 1)) < 0.2
    assert abs(float(ssim(x[0, 0] * 255, x[0, 0] * 255, value_range=(-255, 255))) - 1) < 1e-6
    with pytest.raises(ValueError, match="window"):
        ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_warping_error_real_low_noisy_high():
    frames, _ = moving_scene(8, 64, 80)
    real = warping_error(frames, frames)
    noisy = warping_error(frames, noisy_copy(frames, sigma=25))
    assert len(real.per_pair) == 7 and len(real.confident_fraction) == 7
    assert real.mean < 3.0            # the reference's own floor (carphone: ~2.4)
    assert noisy.mean > 5 * real.mean  # noise / flicker (noisy carphone: ~26)
    assert noisy.mean > 15.0
    # a frozen video ignores the reference's motion: higher than the reference itself
    frozen = np.repeat(frames[:1], len(frames), axis=0)
    assert warping_error(frames, frozen).mean > real.mean


def test_warping_error_streams_and_uses_cache(tmp_path):
    frames, _ = moving_scene(5, 48, 64)
    cache = FlowCache(tmp_path)
    a = warping_error(iter(list(frames)), (f for f in frames), cache=cache)
    b = warping_error(frames, frames, cache=cache)
    assert cache.hits == 4 and cache.misses == 4
    assert abs(a.mean - b.mean) < 1e-9
    with pytest.raises(ValueError, match="at least 2"):
        warping_error(frames[:1], frames[:1])
    with pytest.raises(ValueError):
        warping_error(frames, frames[:3])
    with pytest.raises(ValueError, match="differ"):
        warping_error(frames, frames[:, :32])


def test_to_uint8_frames_from_model_tensors():
    frames, _ = moving_scene(3, 32, 32)
    t = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    back = to_uint8_frames(t)
    assert len(back) == 3 and back[0].dtype == np.uint8
    np.testing.assert_array_equal(np.stack(back), frames)
    floats = to_uint8_frames(frames.astype(np.float32) / 255)
    np.testing.assert_array_equal(np.stack(floats), frames)


def test_window_helpers():
    values = [1.0, 1.0, 2.0, 2.0, 3.0, float("nan"), 5.0]
    stats = window_means(values, 2)
    assert [(s.start, s.end) for s in stats] == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert [s.mean for s in stats] == [1.0, 2.0, 3.0, 5.0]
    assert drift(values, 2) == 4.0 and drift(values, 10) == 0.0
    assert "frames      0-     1" in format_windows(stats, "psnr")
    with pytest.raises(ValueError):
        window_means(values, 0)
