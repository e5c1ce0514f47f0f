"""Discriminators of vid2vid: the image discriminator D_I and the video discriminator D_V.

Every discriminator returns *features*: for each spatial scale a list of the
PatchGAN's intermediate activations whose last element is the prediction map
``[B, 1, h, w]``.  ``v2v.model.losses`` reads the last element for the LSGAN terms
and the others for discriminator feature matching.

- ``MultiscalePatchD`` (D_I, paper Sec. 3 and A.2): ``num_d`` PatchGANs on an
  image pyramid; the caller feeds ``cat([source, frame], dim=1)``.
- ``TemporalD`` (D_V): per temporal scale ``s`` a ``MultiscalePatchD`` judging
  K frames subsampled by ``K**s`` together with the K-1 ground-truth flows of the
  *real* frames (the same flows for real and fake windows).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiscriminatorConfig
from .flow import warp
from .layers import init_weights, norm_layer

Features = list[torch.Tensor]   # one PatchGAN: intermediate maps, last = prediction [B, 1, h, w]
MultiFeatures = list[Features]  # one list per spatial scale, finest first

FLOW_DIVISOR = 20.0  # flows (pixels) are divided by this before D_V sees them, so they are ~unit scale
MAX_NDF = 512        # channel cap of the PatchGAN layers


class NLayerPatchD(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4x4 convs, one stride-1 4x4 conv, then a 4x4 conv to 1 channel.

    Returns ``n_layers + 2`` maps: ``n_layers + 1`` intermediate activations (used by feature
    matching) and the raw prediction ``[B, 1, h, w]`` (no sigmoid: LSGAN regresses it to 0/1).
    """

    def __init__(self, in_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        if in_nc < 1 or ndf < 1 or n_layers < 1:
            raise ValueError(f"NLayerPatchD: in_nc, ndf and n_layers must be >= 1 (got {in_nc}, {ndf}, {n_layers})")
        # padding 2 (not 1): every layer's output is >= 1 pixel even for tiny inputs, so the 3rd
        # spatial scale of a 32 px test clip still works; the receptive field is unchanged.
        pad = 2
        act = lambda: nn.LeakyReLU(0.2, inplace=False)  # noqa: E731  (inplace would clobber returned features)
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_nc, ndf, 4, 2, pad), act())]  # no norm on the input layer
        nf = ndf
        for _ in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, MAX_NDF)
            layers.append(nn.Sequential(nn.Conv2d(nf_prev, nf, 4, 2, pad), norm_layer(norm, nf), act()))
        nf_prev, nf = nf, min(nf * 2, MAX_NDF)
        layers.append(nn.Sequential(nn.Conv2d(nf_prev, nf, 4, 1, pad), norm_layer(norm, nf), act()))
        layers.append(nn.Conv2d(nf, 1, 4, 1, pad))
        self.layers = nn.ModuleList(layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> Features:
        feats: Features = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscalePatchD(nn.Module):
    """``cfg.num_d`` independent PatchGANs; scale i sees the input average-pooled i times (finest first).

    forward(x [B, in_nc, H, W]) -> ``num_d`` lists of features.  With ``cfg.feature_matching=False``
    each list holds only the prediction map, so feature matching sees nothing to match.
    """

    def __init__(self, in_nc: int, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scales = nn.ModuleList(NLayerPatchD(in_nc, cfg.ndf, cfg.n_layers, cfg.norm) for _ in range(cfg.num_d))

    def forward(self, x: torch.Tensor) -> MultiFeatures:
        out: MultiFeatures = []
        for i, d in enumerate(self.scales):
            if i > 0:  # count_include_pad=False: border pixels are not darkened by the zero padding
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            feats = d(x)
            out.append(feats if self.cfg.feature_matching else feats[-1:])
        return out


# ---- temporal windows ------------------------------------------------------

def frames_needed(scale: int, k: int) -> int:
    """Clip length needed for one K-frame window at temporal scale ``scale`` (stride ``k**scale``)."""
    if scale < 0 or k < 2:
        raise ValueError(f"frames_needed: need scale >= 0 and k >= 2 (got scale={scale}, k={k})")
    return (k - 1) * k ** scale + 1


def compose_flows(flows: torch.Tensor) -> torch.Tensor:
    """Chain consecutive backward flows into one: ``[B, n, 2, H, W] -> [B, 2, H, W]``.

    ``flows[:, i]`` satisfies ``warp(x_i, flows[:, i]) ~ x_{i+1}``.  Since
    ``x_c(p) = x_b(p + f_bc(p)) = x_a(p + f_bc(p) + f_ab(p + f_bc(p)))``, the flow from a to c is
    ``f_bc + warp(f_ab, f_bc)``: exact up to bilinear sampling and occlusions, unlike the plain sum,
    which ignores that f_ab must be read where f_bc points (wrong for anything that moves).
    """
    total = flows[:, -1]
    for i in range(flows.shape[1] - 2, -1, -1):  # fold older flows in, newest first
        total = total + warp(flows[:, i], total)
    return total


def temporal_windows(
    frames: torch.Tensor, flows: torch.Tensor | None, scale: int, k: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The last K-frame window of a clip at temporal scale ``scale``, and its flows.

    Args:
        frames: ``[B, T, C, H, W]`` oldest first (real or generated).
        flows: ``[B, T-1, 2, H, W]`` ground-truth backward flows of the REAL clip, pixels,
            ``warp(frames[:, i], flows[:, i]) ~ frames[:, i+1]``; or None (returns None: reuse the
            real clip's window flows for the fake clip, as the paper conditions both on the same flow).
        scale: temporal scale s; frames are taken every ``k**s`` steps, ending at the newest frame.
        k: frames per window (K).

    Returns:
        ``([B, K, C, H, W], [B, K-1, 2, H, W] or None)``.  Flows between subsampled frames are the
        intermediate flows chained by ``compose_flows`` (warp-composition, not the sum).  A caller
        with a flow estimator may instead estimate flows on the subsampled frames and skip this.

    Raises:
        ValueError: the clip is shorter than ``frames_needed(scale, k)`` or the flows do not match it.
    """
    if frames.dim() != 5:
        raise ValueError(f"temporal_windows: frames must be [B, T, C, H, W], got {tuple(frames.shape)}")
    b, t, _, h, w = frames.shape
    need = frames_needed(scale, k)
    if t < need:
        raise ValueError(
            f"temporal_windows: temporal scale {scale} with K={k} needs clips of >= {need} frames "
            f"(stride {k ** scale}), got {t}; skip this scale or use longer clips"
        )
    stride = k ** scale
    idx = [t - 1 - stride * (k - 1 - j) for j in range(k)]  # oldest .. newest frame of the window
    window = frames[:, idx]
    if flows is None:
        return window, None
    if flows.shape != (b, t - 1, 2, h, w):
        raise ValueError(
            f"temporal_windows: flows must be [B, T-1, 2, H, W] = {(b, t - 1, 2, h, w)}, got {tuple(flows.shape)}"
        )
    if stride == 1:
        return window, flows[:, idx[:-1]]
    chained = [compose_flows(flows[:, a:a + stride]) for a in idx[:-1]]  # each: [B, 2, H, W]
    return window, torch.stack(chained, dim=1)


class TemporalD(nn.Module):
    """D_V: one ``MultiscalePatchD`` per temporal scale, on K frames + K-1 flows stacked on channels.

    Input channels per scale: ``K * image_nc + (K - 1) * 2``; flows are divided by ``FLOW_DIVISOR``
    inside ``forward``, so callers pass pixels.  ``n_temporal_scales == 0`` builds an empty module.
    """

    def __init__(self, cfg: DiscriminatorConfig, image_nc: int = 3) -> None:
        super().__init__()
        self.cfg = cfg
        self.k = cfg.k_frames
        self.image_nc = image_nc
        in_nc = self.k * image_nc + (self.k - 1) * 2
        self.scales = nn.ModuleList(MultiscalePatchD(in_nc, cfg) for _ in range(cfg.n_temporal_scales))

    def frames_needed(self, scale: int) -> int:
        """Clip length that temporal scale ``scale`` needs (``(K-1)*K**scale + 1``)."""
        return frames_needed(scale, self.k)

    def windows(
        self, frames: torch.Tensor, flows: torch.Tensor | None, scale: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``temporal_windows`` with this D's K (see there)."""
        return temporal_windows(frames, flows, scale, self.k)

    def forward(self, frames_window: torch.Tensor, flows_window: torch.Tensor, scale: int) -> MultiFeatures:
        """frames_window ``[B, K, C, H, W]``, flows_window ``[B, K-1, 2, H, W]`` (pixels) -> features per spatial scale."""
        if not 0 <= scale < len(self.scales):
            raise ValueError(f"TemporalD: scale {scale} out of range; this D has {len(self.scales)} temporal scales")
        b, k, c, h, w = frames_window.shape
        if k != self.k or c != self.image_nc:
            raise ValueError(
                f"TemporalD: frames_window must be [B, K={self.k}, {self.image_nc}, H, W], got {tuple(frames_window.shape)}"
                + (f"; clips need >= {self.frames_needed(scale)} frames at scale {scale}" if k < self.k else "")
            )
        if flows_window.shape != (b, k - 1, 2, h, w):
            raise ValueError(
                f"TemporalD: flows_window must be [B, K-1, 2, H, W] = {(b, k - 1, 2, h, w)}, got {tuple(flows_window.shape)}"
            )
        x = torch.cat([frames_window.flatten(1, 2), flows_window.flatten(1, 2) / FLOW_DIVISOR], dim=1)  # [B, K*C + (K-1)*2, H, W]
        return self.scales[scale](x)


# ---- both discriminators in one module (one DDP wrapper, one optimizer in the trainer) ----------------------
Windows = dict[int, tuple[list[torch.Tensor], torch.Tensor]]  # temporal scale -> (K-frame windows, their flows)


class Discriminators(nn.Module):
    """D_I (image, conditioned on the source frame) and D_V (temporal, conditioned on real flow) in one module, so
    a distributed trainer wraps and synchronises them as one."""

    def __init__(self, source_nc: int, cfg: DiscriminatorConfig, image_nc: int = 3) -> None:
        super().__init__()
        self.cfg = cfg
        self.image = MultiscalePatchD(source_nc + image_nc, cfg)
        self.temporal = TemporalD(cfg, image_nc) if cfg.n_temporal_scales > 0 else None

    def temporal_scales(self, n_frames: int) -> list[int]:
        """The temporal scales a clip of ``n_frames`` frames is long enough for."""
        if self.temporal is None:
            return []
        return [s for s in range(self.cfg.n_temporal_scales) if self.temporal.frames_needed(s) <= n_frames]

    def forward(self, source: torch.Tensor, frames: list[torch.Tensor],
                windows: Windows | None = None) -> tuple[list[MultiFeatures], dict[int, list[MultiFeatures]]]:
        """D_I's features of every frame in ``frames`` ([B, image_nc, H, W] each, conditioned on ``source``) and D_V's of
        every window of each temporal scale in ``windows`` (all conditioned on the scale's one flow window, the
        real clip's).  Each list is judged in one batched pass; the features come back in the order given."""
        image = _split(self.image(torch.cat([torch.cat([source, x], 1) for x in frames], 0)), len(frames))
        temporal = {}
        for s, (clips, flows) in (windows or {}).items():
            feats = self.temporal(torch.cat(clips, 0), torch.cat([flows] * len(clips), 0), s)
            temporal[s] = _split(feats, len(clips))
        return image, temporal


def _split(feats: MultiFeatures, n: int) -> list[MultiFeatures]:
    """Features of a batch stacked n times -> n feature lists."""
    return [[[t.chunk(n, 0)[k] for t in scale] for scale in feats] for k in range(n)]


def detached(feats: MultiFeatures) -> MultiFeatures:
    """The same features cut from the graph (the real side of feature matching)."""
    return [[t.detach() for t in scale] for scale in feats]
