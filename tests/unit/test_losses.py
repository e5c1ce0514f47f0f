"""Loss values on known inputs, masking and gradient routing (CPU, tiny sizes)."""
from __future__ import annotations

import pytest
import torch

from v2v.model.config import LossWeights
from v2v.model.losses import (
    TERM_WEIGHTS,
    feature_matching_loss,
    flow_loss,
    generator_warp_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    mask_loss,
    vgg_loss,
    weighted_sum,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _nested(pred_values, n_feats=3):
    """D-style output: per scale, ``n_feats`` random features then a constant prediction map."""
    return [[torch.randn(1, 4, 5, 5) for _ in range(n_feats)] + [torch.full((1, 1, 5, 5), float(v))]
            for v in pred_values]


# ---- LSGAN ------------------------------------------------------------------------

def test_lsgan_d_perfect_discriminator_is_zero():
    assert lsgan_d_loss(_nested([1, 1]), _nested([0, 0])).item() == 0.0


def test_lsgan_d_known_values():
    # 0.5 everywhere: 0.5 * (0.25 + 0.25); fully wrong D: 0.5 * (1 + 1)
    assert lsgan_d_loss(_nested([0.5, 0.5]), _nested([0.5, 0.5])).item() == pytest.approx(0.25)
    assert lsgan_d_loss(_nested([0]), _nested([1])).item() == pytest.approx(1.0)
    # averaged over scales: one perfect scale, one fully wrong scale
    assert lsgan_d_loss(_nested([1, 0]), _nested([0, 1])).item() == pytest.approx(0.5)


def test_lsgan_g_known_values_and_plain_tensors():
    assert lsgan_g_loss(_nested([1, 1])).item() == 0.0
    assert lsgan_g_loss(_nested([1, 0])).item() == pytest.approx(0.5)
    assert lsgan_g_loss(torch.zeros(2, 1, 3, 3)).item() == pytest.approx(1.0)
    assert lsgan_g_loss([torch.zeros(1, 1, 3, 3), torch.full((1, 1, 2, 2), 3.0)]).item() == pytest.approx(2.5)


def test_lsgan_uses_only_the_last_feature():
    a, b = _nested([1, 1]), _nested([1, 1])
    b[0][0] = b[0][0] + 100.0
    assert lsgan_g_loss(a).item() == lsgan_g_loss(b).item() == 0.0


def test_lsgan_d_scale_mismatch_raises():
    with pytest.raises(ValueError, match="scales"):
        lsgan_d_loss(_nested([1, 1]), _nested([0]))


# ---- feature matching ---------------------------------------------------------------

def test_feature_matching_zero_for_identical():
    feats = _nested([0.3, 0.7])
    assert feature_matching_loss(feats, feats, n_layers=2).item() == 0.0


def test_feature_matching_known_value_and_prediction_excluded():
    real = _nested([0.0, 0.0], n_feats=4)
    fake = [[f + 0.5 for f in scale[:-1]] + [scale[-1] + 9.0] for scale in real]  # preds differ a lot
    # 2 scales * 4 layers * 0.5, scaled by 1/num_d=1/2 and 4/(n_layers+1)=1 -> 2.0
    assert feature_matching_loss(real, fake, n_layers=3).item() == pytest.approx(2.0)
    # n_layers changes the per-layer weight: 4/(1+1) = 2
    assert feature_matching_loss(real, fake, n_layers=1).item() == pytest.approx(4.0)


def test_feature_matching_gradient_only_into_fake():
    real = [[torch.randn(1, 2, 4, 4, requires_grad=True) for _ in range(3)]]
    fake = [[torch.randn(1, 2, 4, 4, requires_grad=True) for _ in range(3)]]
    loss = feature_matching_loss(real, fake, n_layers=2)
    assert loss.item() > 0
    loss.backward()
    assert all(r.grad is None for r in real[0])
    assert all(f.grad.abs().sum() > 0 for f in fake[0][:-1])


def test_feature_matching_with_predictions_only_is_zero():
    only_preds = [[torch.ones(1, 1, 3, 3)], [torch.ones(1, 1, 2, 2)]]
    assert feature_matching_loss(only_preds, [[torch.zeros(1, 1, 3, 3)], [torch.zeros(1, 1, 2, 2)]], 3).item() == 0.0


# ---- VGG (stand-in extractor: the real VGG19 is tested in test_vgg.py) -----------------

class _TwoConv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.requires_grad_(False)

    def forward(self, x):
        h = self.a(x)
        return [h] * 5  # five "layers" so every VGG weight is used


def test_vgg_loss_zero_identical_positive_otherwise_and_weighted():
    vgg = _TwoConv()
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    assert vgg_loss(vgg, x, x).item() == 0.0
    y = (x + 0.1).requires_grad_(True)
    loss = vgg_loss(vgg, y, x)
    expected = sum((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)) * (vgg(y)[0] - vgg(x)[0]).abs().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert y.grad.abs().sum() > 0


def test_vgg_loss_opt_out():
    x = torch.zeros(1, 3, 4, 4)
    assert vgg_loss(None, x, x + 1).item() == 0.0


# ---- flow ------------------------------------------------------------------------------

def _shifted_pair(dx=2, dy=1, h=12, w=16):
    """prev random; cur(y, x) = prev(y + dy, x + dx) with border clamp, i.e. exact backward flow (dx, dy)."""
    prev = torch.rand(1, 3, h, w) * 2 - 1
    ys = torch.clamp(torch.arange(h) + dy, 0, h - 1)
    xs = torch.clamp(torch.arange(w) + dx, 0, w - 1)
    cur = prev[:, :, ys][:, :, :, xs]
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    return prev, cur, flow


def test_flow_loss_zero_for_exact_flow_positive_for_wrong():
    prev, cur, flow = _shifted_pair()
    terms = flow_loss(flow.clone(), flow, prev, cur)
    assert set(terms) == {"flow_epe", "flow_warp"}
    assert terms["flow_epe"].item() == 0.0 and terms["flow_warp"].item() < 1e-6
    wrong = flow_loss(torch.zeros_like(flow), flow, prev, cur)
    assert wrong["flow_epe"].item() == pytest.approx(1.5)  # mean of |2| and |1|
    assert wrong["flow_warp"].item() > 0.1


def test_flow_loss_confidence_excludes_pixels():
    prev, cur, flow = _shifted_pair()
    pred = flow.clone()
    pred[..., :, :8] = 0.0  # wrong on the left half only
    conf = torch.ones(1, 1, 12, 16)
    conf[..., :, :8] = 0.0
    masked = flow_loss(pred, flow, prev, cur, confidence=conf)
    assert masked["flow_epe"].item() == 0.0
    assert masked["flow_warp"].item() < 1e-6
    unmasked = flow_loss(pred, flow, prev, cur)
    assert unmasked["flow_epe"].item() > 0 and unmasked["flow_warp"].item() > 0


def test_flow_loss_gradient_into_pred_flow():
    prev, cur, flow = _shifted_pair()
    pred = (flow + 0.3).requires_grad_(True)
    sum(flow_loss(pred, flow, prev, cur).values()).backward()
    assert pred.grad.abs().sum() > 0


def test_flow_loss_bad_confidence_shape_raises():
    prev, cur, flow = _shifted_pair()
    with pytest.raises(ValueError, match="confidence"):
        flow_loss(flow, flow, prev, cur, confidence=torch.ones(1, 3, 12, 16))


def test_mask_loss_is_mean():
    m = torch.tensor([0.0, 0.5, 1.0, 0.5]).view(1, 1, 2, 2)
    assert mask_loss(m).item() == pytest.approx(0.5)
    assert mask_loss(torch.zeros(1, 1, 3, 3)).item() == 0.0


def test_generator_warp_loss_zero_for_consistent_output_and_target_detached():
    prev, cur, flow = _shifted_pair()
    assert generator_warp_loss(cur, prev, flow).item() < 1e-6
    fake = cur.clone().requires_grad_(True)
    fake_prev = (prev + 0.2).requires_grad_(True)
    loss = generator_warp_loss(fake, fake_prev, flow)
    assert loss.item() > 0
    loss.backward()
    assert fake.grad.abs().sum() > 0 and fake_prev.grad is None
    conf = torch.zeros(1, 1, 12, 16)
    assert generator_warp_loss(cur, prev + 0.2, flow, confidence=conf).item() == 0.0


# ---- weighted sum -----------------------------------------------------------------------

def test_weighted_sum_uses_loss_weights():
    w = LossWeights()
    one = torch.tensor(1.0)
    total = weighted_sum({"gan": one, "flow_epe": one, "flow_warp": one, "vgg": 2 * one}, w)
    assert total.item() == pytest.approx(w.gan + 2 * w.flow + 2 * w.vgg)
    assert weighted_sum({"mask": one}, {"mask": 3.0}).item() == 3.0
    assert set(TERM_WEIGHTS.values()) <= set(w.to_dict())
    with pytest.raises(KeyError, match="unknown loss term"):
        weighted_sum({"gann": one}, w)


def test_the_generator_warp_term_has_its_own_weight():
    """It can be weighed, or switched off, without touching lambda_W of the flow terms."""
    from v2v.model.config import LossWeights
    from v2v.model.losses import weighted_sum

    terms = {"flow_epe": torch.tensor(1.0), "flow_warp": torch.tensor(2.0), "generator_warp": torch.tensor(4.0)}
    assert weighted_sum(terms, LossWeights()).item() == 10 * 1 + 10 * 2 + 10 * 4
    assert weighted_sum(terms, LossWeights(generator_warp=0.0)).item() == 10 * 1 + 10 * 2
    assert weighted_sum(terms, LossWeights(flow=0.0)).item() == 10 * 4
