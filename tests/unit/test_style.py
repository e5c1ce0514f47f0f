import torch

from v2v.model.style import StyleEncoder, instance_average


def test_instance_average_makes_each_instance_constant():
    feats = torch.randn(2, 3, 6, 6, requires_grad=True)
    inst = torch.zeros(2, 1, 6, 6, dtype=torch.long)
    inst[0, :, :3] = 7
    inst[1, :, :, 4:] = 2
    out = instance_average(feats, inst)
    for b in range(2):
        for i in inst[b].unique():
            region = out[b][:, inst[b, 0] == i]
            assert torch.allclose(region, feats[b][:, inst[b, 0] == i].mean(1, keepdim=True).expand_as(region), atol=1e-6)
    out.sum().backward()
    assert feats.grad.abs().sum() > 0


def test_style_encoder_shape_and_pooling():
    enc = StyleEncoder(style_nc=3, ngf=4, n_downsample=2)
    img = torch.rand(1, 3, 16, 16) * 2 - 1
    inst = torch.zeros(1, 1, 16, 16)
    inst[..., 8:, :] = 1
    z = enc(img, inst)
    assert z.shape == (1, 3, 16, 16)
    assert torch.unique(z[0, 0]).numel() == 2


# ---- test time: StylePlan ----------------------------------------------------------------------------------
import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from v2v.model.style import STYLE_GMM_KEY, StyleError, StylePlan, mixture_mean, read_style_mixtures  # noqa: E402

MIXTURES = {  # class -> two-component diagonal mixture of 3-d styles
    0: {"weights": [0.5, 0.5], "means": [[-0.5, 0.0, 0.5], [0.5, 0.0, -0.5]], "covariances": [[0.01] * 3, [0.01] * 3]},
    1: {"weights": [1.0], "means": [[0.2, 0.2, 0.2]], "covariances": [[0.04] * 3]},
    2: {"weights": [0.25, 0.75], "means": [[0.0, 0.4, 0.0], [0.0, 0.8, 0.0]], "covariances": [[0.01] * 3] * 2},
}


def frame_maps():
    ids = np.zeros((8, 12), np.int64)
    ids[:, 6:] = 1                     # stuff: class 0 left, class 1 right
    ids[2:5, 1:3] = 2                  # two people (class 2) with track ids 1000 and 1001
    ids[2:5, 8:10] = 2
    inst = ids.copy()
    inst[2:5, 1:3] = 1000
    inst[2:5, 8:10] = 1001
    return ids, inst


def test_style_plan_is_deterministic_per_seed_and_constant_per_instance():
    ids, inst = frame_maps()
    a, b = StylePlan(MIXTURES, 3, seed=5).frame(ids, inst), StylePlan(MIXTURES, 3, seed=5).frame(ids, inst)
    assert a.shape == (3, 8, 12) and a.dtype == torch.float32 and torch.equal(a, b)
    c = StylePlan(MIXTURES, 3, seed=6).frame(ids, inst)
    assert not torch.equal(a, c)
    for k in (0, 1, 1000, 1001):       # one vector per instance
        region = a[:, torch.from_numpy(inst == k)]
        assert torch.allclose(region, region[:, :1].expand_as(region))
    person1, person2 = a[:, 3, 1], a[:, 3, 8]
    assert not torch.equal(person1, person2)   # two people of one class get their own draws
    # a track keeps its style in any later frame (no state: a function of seed, class and track id)
    moved_ids, moved_inst = np.roll(ids, 1, axis=1), np.roll(inst, 1, axis=1)
    later = StylePlan(MIXTURES, 3, seed=5).frame(moved_ids, moved_inst)
    assert torch.equal(later[:, 3, 2], person1)


def test_unselected_classes_keep_their_mean_and_fixed_classes_their_vector():
    ids, inst = frame_maps()
    plan = StylePlan(MIXTURES, 3, seed=1, resample={0}, fixed={1: [0.9, -0.9, 0.0]})
    out = plan.frame(ids, inst)
    assert torch.allclose(out[:, 3, 2], torch.tensor(mixture_mean(MIXTURES[2]), dtype=torch.float32))
    assert torch.allclose(out[:, 0, 11], torch.tensor([0.9, -0.9, 0.0]))
    other = StylePlan(MIXTURES, 3, seed=2, resample={0}, fixed={1: [0.9, -0.9, 0.0]}).frame(ids, inst)
    changed = (out != other).any(0)
    assert changed[torch.from_numpy(ids == 0)].all() and not changed[torch.from_numpy(ids != 0)].any()
    # a class no mixture knows gets zeros; without an instance map each class is one instance
    unknown = StylePlan(MIXTURES, 3).frame(np.full((2, 2), 7), None)
    assert torch.equal(unknown, torch.zeros(3, 2, 2))


def test_draws_follow_the_mixture():
    plan = StylePlan(MIXTURES, 3, seed=0)
    draws = np.stack([plan.vector(2, i) for i in range(4000)])
    assert abs(draws[:, 1].mean() - mixture_mean(MIXTURES[2])[1]) < 0.02
    assert abs((draws[:, 1] > 0.6).mean() - 0.75) < 0.03       # the components' weights


def test_bad_mixtures_and_vectors_are_refused():
    with pytest.raises(StyleError, match="no style mixtures"):
        read_style_mixtures({})
    assert read_style_mixtures({STYLE_GMM_KEY: json.dumps({str(k): v for k, v in MIXTURES.items()})}) == MIXTURES
    with pytest.raises(StyleError, match="3-d styles but the model takes 2"):
        StylePlan(MIXTURES, 2)
    with pytest.raises(StyleError, match="class 1 has shape"):
        StylePlan(MIXTURES, 3, fixed={1: [0.0, 1.0]})
    with pytest.raises(StyleError, match="differ in size"):
        StylePlan(MIXTURES, 3).frame(np.zeros((4, 4)), np.zeros((4, 5)))
