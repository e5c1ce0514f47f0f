"""v2v.future: label-map prediction (stage 1) and rendering (stage 2) at tiny sizes, random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from v2v.future import is_predictor, one_hot_map, predict_future, predict_label_maps, render_future
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.pipeline import GenerateError

TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1, fg_n_blocks=1)
K = 4   # not 3, so a predictor (K outputs) and a renderer (RGB) differ


def predictor():
    torch.manual_seed(0)
    return Vid2VidGenerator(GeneratorConfig(input_nc=K, output_nc=K, label_nc=K, foreground=False, **TINY))


def renderer():
    torch.manual_seed(1)
    return Vid2VidGenerator(GeneratorConfig(input_nc=K, label_nc=K, **TINY))


def maps(n, h=16, w=24):
    ids = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        ids[t, :, : 4 + 2 * t] = 1
        ids[t, 10:, :] = 2
    return list(ids)


def test_one_hot_map_and_roles():
    hot = one_hot_map(np.array([[0, 2], [7, 1]]), K)
    assert hot.shape == (K, 2, 2) and hot[:, 1, 0].sum() == 0 and hot[2, 0, 1] == 1
    assert is_predictor(predictor()) and not is_predictor(renderer())


def test_predicts_each_horizon_deterministically_with_valid_ids():
    a = list(predict_label_maps(predictor(), maps(4), 6))
    b = list(predict_label_maps(predictor(), maps(4), 6))
    assert len(a) == 6 and all(m.shape == (16, 24) and m.dtype == np.uint8 and m.max() < K for m in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # only the last L (+1 for their sources) observed maps matter, as in training
    c = list(predict_label_maps(predictor(), [np.full((16, 24), 2, np.uint8)] * 5 + maps(4)[1:], 6))
    d = list(predict_label_maps(predictor(), maps(4)[1:], 6))
    assert all(np.array_equal(x, y) for x, y in zip(c, d))
    assert len(list(predict_label_maps(predictor(), maps(1), 2))) == 2     # one observed map is enough
    with pytest.raises(GenerateError, match="not a label-map predictor"):
        next(predict_label_maps(renderer(), maps(3), 1))
    with pytest.raises(GenerateError, match="at least one observed"):
        next(predict_label_maps(predictor(), [], 1))


def test_renders_only_the_future_frames_from_the_real_ones():
    observed, predicted = maps(4), maps(7)[4:]
    real = np.random.default_rng(0).integers(0, 256, (4, 16, 24, 3), dtype=np.uint8)
    frames = list(render_future(renderer(), observed, predicted, real))
    assert len(frames) == 3 and frames[0].shape == (3, 16, 24)
    other = list(render_future(renderer(), observed, predicted, 255 - real))
    assert not torch.equal(frames[0], other[0])            # the real frames seed the history
    assert len(list(render_future(renderer(), observed, predicted))) == 3


def test_both_stages_at_the_observed_size_with_a_smaller_predictor():
    observed = maps(3, 32, 48)
    predicted, frames = predict_future(predictor(), renderer(), observed, 4, predictor_size=(16, 24))
    assert len(predicted) == 4 and predicted[0].shape == (32, 48)
    assert [f.shape for f in frames] == [(3, 32, 48)] * 4
