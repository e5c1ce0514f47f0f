"""Loss terms of vid2vid (paper Eq. 5-8 and Appendix A.3), as pure functions.

Each function returns an unweighted scalar tensor (or a dict of named scalars);
the trainer multiplies by ``LossWeights`` (``weighted_sum`` maps term names to
weights).  Discriminator outputs are the nested lists of ``v2v.model.discriminators``:
``preds[scale][layer]``, last layer = prediction map ``[B, 1, h, w]``.

Stable term names (keys of ``TERM_WEIGHTS``):
``gan``, ``feature_matching``, ``vgg``, ``flow_epe``, ``flow_warp``, ``generator_warp``,
``mask``, ``temporal_gan``, ``temporal_feature_matching``, ``label_ce``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Union

import torch
import torch.nn.functional as F

from .config import LossWeights
from .flow import warp

if TYPE_CHECKING:
    from .vgg import VGG19Features

DOutput = Union[torch.Tensor, Sequence[torch.Tensor], Sequence[Sequence[torch.Tensor]]]

VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # relu1_1 .. relu5_1: deep layers count most

# term name -> LossWeights field
TERM_WEIGHTS: dict[str, str] = {
    "gan": "gan",
    "feature_matching": "feature_matching",
    "vgg": "vgg",
    "flow_epe": "flow",
    "flow_warp": "flow",
    "generator_warp": "generator_warp",
    "mask": "mask",
    "temporal_gan": "temporal_gan",
    "temporal_feature_matching": "feature_matching",
    "label_ce": "label_ce",
}

LABEL_TEMPERATURE = 0.2   # a label-map output in [-1, 1] read as logits / this: +1 against -1 elsewhere is p > 0.99


def _predictions(preds: DOutput) -> list[torch.Tensor]:
    """Prediction map of each scale: accepts a tensor, a list of tensors, or the nested feature lists."""
    if isinstance(preds, torch.Tensor):
        return [preds]
    if len(preds) == 0:
        raise ValueError("discriminator output is empty")
    return [p if isinstance(p, torch.Tensor) else p[-1] for p in preds]


def lsgan_d_loss(real_preds: DOutput, fake_preds: DOutput) -> torch.Tensor:
    """LSGAN discriminator loss ``0.5 * (MSE(D(real), 1) + MSE(D(fake), 0))``, averaged over scales.

    Run D on ``fake.detach()`` so this loss does not reach G.  A perfect D (1 on real, 0 on fake) gives 0.
    """
    real, fake = _predictions(real_preds), _predictions(fake_preds)
    if len(real) != len(fake):
        raise ValueError(f"lsgan_d_loss: {len(real)} real scales vs {len(fake)} fake scales")
    per_scale = [
        F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f)) for r, f in zip(real, fake)
    ]
    return 0.5 * torch.stack(per_scale).mean()


def lsgan_g_loss(fake_preds: DOutput) -> torch.Tensor:
    """LSGAN generator loss ``MSE(D(fake), 1)``, averaged over scales."""
    return torch.stack([F.mse_loss(f, torch.ones_like(f)) for f in _predictions(fake_preds)]).mean()


def feature_matching_loss(
    real_feats: Sequence[Sequence[torch.Tensor]], fake_feats: Sequence[Sequence[torch.Tensor]], n_layers: int
) -> torch.Tensor:
    """Discriminator feature matching: L1 between D's intermediate maps on real and fake.

    Sum over scales and intermediate layers (the prediction map is excluded) of
    ``1/num_d * 4/(n_layers+1) * L1(fake, real.detach())``; ``n_layers`` is ``DiscriminatorConfig.n_layers``,
    so with the default 3 layers each of the 4 intermediate maps weighs 1/num_d.  Real features are
    detached, so only the fake branch (and thus G) receives gradient.  Run D on the non-detached fake.
    """
    if len(real_feats) != len(fake_feats):
        raise ValueError(f"feature_matching_loss: {len(real_feats)} real scales vs {len(fake_feats)} fake scales")
    scale = (1.0 / len(real_feats)) * (4.0 / (n_layers + 1))
    terms = [
        F.l1_loss(f, r.detach())
        for real, fake in zip(real_feats, fake_feats)
        for r, f in zip(real[:-1], fake[:-1])
    ]
    if not terms:  # features were not returned (DiscriminatorConfig.feature_matching=False)
        ref = _predictions(fake_feats)[0]
        return ref.new_zeros(())
    return scale * torch.stack(terms).sum()


def vgg_loss(vgg: "VGG19Features | None", fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """VGG19 perceptual loss: ``sum_i w_i * L1(vgg_i(fake), vgg_i(real))``, w = 1/32, 1/16, 1/8, 1/4, 1.

    ``fake``, ``real``: ``[B, 3, H, W]`` in [-1, 1] (vgg.py converts to ImageNet normalisation).
    ``vgg=None`` is the explicit opt-out and returns 0; there is no default on purpose.
    """
    if vgg is None:
        return fake.new_zeros(())
    if fake.shape != real.shape:
        raise ValueError(f"vgg_loss: fake {tuple(fake.shape)} and real {tuple(real.shape)} differ")
    with torch.no_grad():
        real_feats = vgg(real)
    fake_feats = vgg(fake)
    return sum(w * F.l1_loss(f, r) for w, f, r in zip(VGG_LAYER_WEIGHTS, fake_feats, real_feats))


def _masked_l1(a: torch.Tensor, b: torch.Tensor, confidence: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``|a - b| * confidence`` over ALL elements (``[B, C, H, W]``, confidence ``[B, 1, H, W]``).

    Dividing by every element (not by the mask's sum) keeps the term's scale fixed, so clips with
    little reliable flow simply contribute less instead of being up-weighted.
    """
    diff = (a - b).abs()
    if confidence is None:
        return diff.mean()
    if confidence.dim() != 4 or confidence.shape[1] != 1 or confidence.shape[-2:] != diff.shape[-2:]:
        raise ValueError(f"confidence must be [B, 1, H, W] matching {tuple(diff.shape)}, got {tuple(confidence.shape)}")
    return (diff * confidence.to(diff.dtype)).mean()


def flow_loss(
    pred_flow: torch.Tensor,
    gt_flow: torch.Tensor,
    real_prev: torch.Tensor,
    real_cur: torch.Tensor,
    confidence: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Flow loss L_W of Eq. 8 for one frame; the caller multiplies each term by lambda_W (``LossWeights.flow``).

    Args:
        pred_flow, gt_flow: ``[B, 2, H, W]`` backward flows in pixels (``warp(prev, flow) ~ cur``).
        real_prev, real_cur: ``[B, C, H, W]`` real frames t-1 and t in [-1, 1].
        confidence: optional ``[B, 1, H, W]`` in [0, 1]; 0 excludes a pixel (occluded / unreliable flow).

    Returns:
        ``{"flow_epe": L1(pred_flow, gt_flow), "flow_warp": L1(warp(real_prev, pred_flow), real_cur)}``.
    """
    if pred_flow.shape != gt_flow.shape:
        raise ValueError(f"flow_loss: pred_flow {tuple(pred_flow.shape)} vs gt_flow {tuple(gt_flow.shape)}")
    return {
        "flow_epe": _masked_l1(pred_flow, gt_flow, confidence),
        "flow_warp": _masked_l1(warp(real_prev, pred_flow), real_cur, confidence),
    }


def mask_loss(mask: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """Occlusion-mask regulariser: mean of m ``[B, 1, H, W]``, pushing m to 0 (prefer warping to hallucinating).

    ``where`` (``[B, 1, H, W]``, 1 = counted): only the pixels whose mask the network chose (the hard foreground
    prior forces m = 1 on foreground; averaging those would only dilute the term).  The reference applies the
    regulariser only when no real first frame is given; that choice is the trainer's.
    """
    return masked_mean(mask, where)


def masked_mean(x: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``x`` over the pixels where ``where`` is 1 (all when None; 0 when there are none)."""
    if where is None:
        return x.mean()
    where = where.expand_as(x)
    return (x * where).sum() / where.sum().clamp_min(1.0)


def generator_warp_loss(
    fake: torch.Tensor, fake_prev: torch.Tensor, gt_flow: torch.Tensor, confidence: torch.Tensor | None = None
) -> torch.Tensor:
    """Temporal consistency of the output: ``L1(fake, warp(fake_prev.detach(), gt_flow))``, masked.

    fake, fake_prev: ``[B, 3, H, W]``; gt_flow ``[B, 2, H, W]`` pixels; confidence ``[B, 1, H, W]``.
    The target is detached, so the gradient only pulls the current frame toward the warped previous one.
    """
    with torch.no_grad():
        target = warp(fake_prev.detach(), gt_flow)
    return _masked_l1(fake, target, confidence)


def label_cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a label-map output ``[B, K, H, W]`` in [-1, 1] (read as logits / LABEL_TEMPERATURE)
    against the true map given one-hot in [-1, 1] (``2 * one_hot - 1``); pixels of no class (all -1) are left
    out."""
    labelled = target.max(1).values > 0
    if not bool(labelled.any()):
        return output.sum() * 0.0
    ce = F.cross_entropy(output.float() / LABEL_TEMPERATURE, target.argmax(1), reduction="none")
    return ce[labelled].mean()


def weighted_sum(terms: Mapping[str, torch.Tensor], weights: LossWeights | Mapping[str, float]) -> torch.Tensor:
    """``sum(weight(name) * value)``; names map to ``LossWeights`` fields via ``TERM_WEIGHTS``.

    An unknown term name raises ``KeyError`` rather than being silently dropped.
    """
    table = weights.to_dict() if isinstance(weights, LossWeights) else dict(weights)
    if not terms:
        raise ValueError("weighted_sum: no terms")
    total = None
    for name, value in terms.items():
        if name not in TERM_WEIGHTS:
            raise KeyError(f"weighted_sum: unknown loss term {name!r}; known terms are {sorted(TERM_WEIGHTS)}")
        part = table[TERM_WEIGHTS[name]] * value
        total = part if total is None else total + part
    return total
