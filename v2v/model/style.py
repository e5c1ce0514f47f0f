"""Multimodal synthesis (paper Sec. 3, "Multimodal synthesis"): the image encoder E and
instance-wise average pooling.  E maps a real frame to a d-channel map; averaging it inside every
instance makes all pixels of one object share one style vector, which the generator takes as extra
source channels.  At test time vectors are sampled per class from a Gaussian mixture (fitted by the trainer).
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import decoder_trunk, encoder, init_weights, output_conv


class StyleEncoder(nn.Module):
    """E: image [B, 3, H, W] in [-1, 1] -> features [B, style_nc, H, W] in [-1, 1] (before instance pooling)."""

    def __init__(self, style_nc: int = 3, *, in_nc: int = 3, ngf: int = 16, n_downsample: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        self.style_nc = style_nc
        self.body = nn.Sequential(
            encoder(in_nc, ngf, n_downsample, 0, norm),
            decoder_trunk(ngf, n_downsample, 0, norm),
            output_conv(ngf, style_nc),
            nn.Tanh(),
        )
        init_weights(self)

    def forward(self, image: torch.Tensor, instance_map: torch.Tensor) -> torch.Tensor:
        return instance_average(self.body(image), instance_map)


def instance_average(features: torch.Tensor, instance_map: torch.Tensor) -> torch.Tensor:
    """Replace every pixel's feature by the mean over its instance.

    features [B, C, H, W]; instance_map [B, 1, H, W] of integer ids (any dtype holding integers).
    Differentiable w.r.t. ``features``.
    """
    b, c, h, w = features.shape
    if instance_map.shape != (b, 1, h, w):
        raise ValueError(f"instance_map must be [B, 1, H, W] = {(b, 1, h, w)}, got {tuple(instance_map.shape)}")
    ids = instance_map.reshape(b, h * w).long()
    out = []
    for feats, inst in zip(features.reshape(b, c, h * w), ids):
        _, compact = torch.unique(inst, return_inverse=True)            # [HW] ids 0..n-1
        n = int(compact.max()) + 1
        sums = feats.new_zeros(c, n).index_add_(1, compact, feats)
        counts = torch.bincount(compact, minlength=n).to(feats.dtype)
        out.append((sums / counts)[:, compact])
    return torch.stack(out).reshape(b, c, h, w)
