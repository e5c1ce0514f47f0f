"""The sequential generator F of vid2vid (Eq. 3, 4 and 9; Appendix A).

One call produces frame t from the sources s_{t-L..t} and the previous outputs x~_{t-L..t-1}:

    x~_t = (1 - m~_t) * warp(x~_{t-1}, w~_{t-1}) + m~_t * h~_t                      (Eq. 4)
    h~_t = (1 - m_B) * h~_F + m_B * h~_B        with the foreground prior        (Eq. 9)

Coarse-to-fine: ``scales[0]`` is the global network (width ngf, at 1/2**(n_scales-1) resolution);
``scales[s]`` for s >= 1 is a local enhancer of width ngf/2**s that adds the coarser scale's last
features to its own encoding.  Only the finest scale feeds the output heads, so a model with one more
scale reuses every ``scales.*`` weight of the coarser model unchanged (progressive training).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import GeneratorConfig
from .flow import warp
from .layers import (conv_block, decode, decoder_trunk, encode, encoder, init_weights, output_conv, project,
                     res_blocks, up_block)


def _autocast_off(device: torch.device):
    """A region in fp32 under any autocast; a no-op on devices without autocast (``meta``: cost counting)."""
    if device.type in ("cuda", "cpu", "xpu", "mps"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """fp32 for bf16/fp16 activations; a float64 network (an accuracy reference) stays float64."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@dataclass
class GeneratorOutput:
    """Named parts of one generated frame; all [B, C, H, W]."""

    frame: torch.Tensor                     # x~_t in [-1, 1]
    hallucinated: torch.Tensor              # h~_t (fg/bg composite when the prior is on)
    flow: torch.Tensor | None = None        # w~_{t-1}: backward flow in pixels, [B, 2, H, W]
    mask: torch.Tensor | None = None        # m~_t in [0, 1] as used in the blend (fg_blend hard: 1 on foreground)
    warped: torch.Tensor | None = None      # warp(x~_{t-1}, w~_{t-1})
    fg_hallucinated: torch.Tensor | None = None  # h~_F
    bg_mask: torch.Tensor | None = None     # m_B: 1 on background labels
    free_mask: torch.Tensor | None = None   # 1 where the mask is the network's choice, 0 where the hard foreground
                                            # prior forced it to 1 (None: everywhere); mask regulariser and means


class GlobalScale(nn.Module):
    """Coarsest scale: two encoders (sources; previous outputs) summed, then image and flow trunks."""

    def __init__(self, cfg: GeneratorConfig, src_nc: int, prev_nc: int) -> None:
        super().__init__()
        n_enc, n_dec = cfg.n_blocks - cfg.n_blocks // 2, cfg.n_blocks // 2
        # share_trunk: one set of bottleneck blocks feeds both branches, which keep only their upsampling
        branch_blocks = 0 if cfg.share_trunk else n_dec
        self.skips = cfg.skips
        d, width = cfg.block_dilation, cfg.ngf * 2**cfg.n_downsample
        self.source_encoder = encoder(src_nc, cfg.ngf, cfg.n_downsample, n_enc, cfg.norm, cfg.stem_kernel, d)
        self.shared_trunk = res_blocks(width, n_dec, cfg.norm, d) if cfg.share_trunk else None
        self.image_trunk = decoder_trunk(cfg.ngf, cfg.n_downsample, branch_blocks, cfg.norm, d)
        if cfg.use_flow:
            self.prev_encoder = encoder(prev_nc, cfg.ngf, cfg.n_downsample, n_enc, cfg.norm, cfg.stem_kernel, d)
            self.flow_trunk = decoder_trunk(cfg.ngf, cfg.n_downsample, branch_blocks, cfg.norm, d)

    def forward(self, src, prev, coarse=None):
        code, skips = encode(self.source_encoder, src, self.skips)
        if prev is not None:
            prev_code, prev_skips = encode(self.prev_encoder, prev, self.skips)
            code = code + prev_code
            skips = [a + b for a, b in zip(skips, prev_skips)]
        if self.shared_trunk is not None:
            code = self.shared_trunk(code)
        if prev is None:  # per-frame model: hallucination branch alone
            return decode(self.image_trunk, code, skips), None
        return decode(self.image_trunk, code, skips), decode(self.flow_trunk, code, skips)


class LocalScale(nn.Module):
    """A finer scale: 7x7 stem + one stride-2 conv per input, plus the coarser scale's features."""

    def __init__(self, cfg: GeneratorConfig, ngf: int, src_nc: int, prev_nc: int) -> None:
        super().__init__()

        def stem(in_nc: int) -> nn.Sequential:
            return nn.Sequential(conv_block(in_nc, ngf, cfg.stem_kernel, norm=cfg.norm),
                                 conv_block(ngf, 2 * ngf, 3, stride=2, norm=cfg.norm))

        def trunk() -> nn.Sequential:
            return nn.Sequential(res_blocks(2 * ngf, cfg.n_local_blocks, cfg.norm), up_block(2 * ngf, ngf, norm=cfg.norm))

        self.source_encoder = stem(src_nc)
        self.image_trunk = trunk()
        if cfg.use_flow:
            self.prev_encoder = stem(prev_nc)
            self.flow_trunk = trunk()

    def forward(self, src, prev, coarse):
        coarse_image, coarse_flow = coarse
        code = self.source_encoder(src)
        if prev is None:
            return self.image_trunk(code + coarse_image), None
        code = code + self.prev_encoder(prev)
        return self.image_trunk(code + coarse_image), self.flow_trunk(code + coarse_flow)


class ForegroundNet(nn.Module):
    """H_F: an encoder-decoder that sees only the sources (foreground objects move too much to warp), on the
    same pyramid as the background: the deep part runs at the coarsest scale's resolution and each finer scale
    adds a light local stage (a :class:`LocalScale` without the flow branch), as the original code does.  At
    full resolution the deep part alone cost 3161 of 7218 GFLOPs per frame (paper preset, 2048x1024, 3 scales).
    With one scale this is exactly the single encoder-decoder (same weights, same names)."""

    def __init__(self, cfg: GeneratorConfig, src_nc: int) -> None:
        super().__init__()
        ngf = cfg.foreground_ngf
        finest = ngf // 2 ** (cfg.n_scales - 1)
        self.body = nn.Sequential(
            encoder(src_nc, ngf, cfg.n_downsample, cfg.fg_n_blocks, cfg.norm, cfg.stem_kernel),
            decoder_trunk(ngf, cfg.n_downsample, 0, cfg.norm),
            output_conv(finest, cfg.output_nc, cfg.head_kernel),
            nn.Tanh(),
        )
        self.skips = cfg.skips
        local_cfg = cfg.with_(use_flow=False)
        self.local = nn.ModuleList([LocalScale(local_cfg, ngf // 2**s, src_nc, 0) for s in range(1, cfg.n_scales)])

    def forward(self, src_pyr: list[torch.Tensor]) -> torch.Tensor:
        """``src_pyr``: the sources' pyramid, finest first (one level per scale)."""
        enc, dec, head, squash = self.body
        features = decode(dec, *encode(enc, src_pyr[-1], self.skips))
        for s, stage in enumerate(self.local, start=1):
            features, _ = stage(src_pyr[-1 - s], None, (features, None))
        return squash(head(features))


def downsample(x: torch.Tensor) -> torch.Tensor:
    """The input pyramid: 3x3 average pooling, stride 2 (one-hot maps become soft)."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


class Vid2VidGenerator(nn.Module):
    """F(x~_{t-L..t-1}, s_{t-L..t}) -> GeneratorOutput.  See the module docstring."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        L = cfg.n_past
        # Per-frame synthesis sees the current source only; the sequential model sees L+1 sources, L outputs.
        src_nc = cfg.frame_nc * ((L + 1) if cfg.use_flow else 1)
        prev_nc = cfg.output_nc * L
        self.scales = nn.ModuleList([GlobalScale(cfg, src_nc, prev_nc)])
        for s in range(1, cfg.n_scales):
            self.scales.append(LocalScale(cfg, cfg.ngf // 2**s, src_nc, prev_nc))
        ngf_out = cfg.ngf // 2 ** (cfg.n_scales - 1)
        k = cfg.head_kernel
        self.image_head = nn.Sequential(output_conv(ngf_out, cfg.output_nc, k), nn.Tanh())
        if cfg.use_flow:
            self.flow_head = output_conv(ngf_out, 2, k)
            self.mask_head = nn.Sequential(output_conv(ngf_out, 1, k), nn.Sigmoid())
        if cfg.foreground:
            self.foreground = ForegroundNet(cfg, src_nc)
        init_weights(self)

    # -- input checks: a wrong tensor should fail here with its name, not deep inside a conv --------------
    def _check(self, sources, prev_frames, style):
        cfg, L = self.cfg, self.cfg.n_past
        if sources.dim() != 5 or sources.shape[1] != L + 1 or sources.shape[2] != cfg.input_nc:
            raise ValueError(f"sources must be [B, L+1={L + 1}, input_nc={cfg.input_nc}, H, W], "
                             f"got {tuple(sources.shape)}")
        h, w = sources.shape[-2:]
        problem = cfg.frame_size_problem(h, w)
        if problem:
            raise ValueError(problem)
        if prev_frames is not None and prev_frames.shape != (sources.shape[0], L, cfg.output_nc, h, w):
            raise ValueError(f"prev_frames must be [B, L={L}, {cfg.output_nc}, {h}, {w}], got {tuple(prev_frames.shape)}")
        if cfg.style_nc and (style is None or style.shape != (sources.shape[0], L + 1, cfg.style_nc, h, w)):
            got = None if style is None else tuple(style.shape)
            raise ValueError(f"this model takes style features [B, L+1, {cfg.style_nc}, H, W]; got {got}")
        if not cfg.style_nc and style is not None:
            raise ValueError("style features given to a model without a style input (style_nc=0)")

    def forward(self, sources: torch.Tensor, prev_frames: torch.Tensor | None = None, *,
                style: torch.Tensor | None = None, force_hallucinate: bool = False) -> GeneratorOutput:
        """sources [B, L+1, input_nc, H, W] oldest..current; prev_frames [B, L, 3, H, W] oldest..newest in
        [-1, 1], or None for "no history" (zeros, and the mask forced to hallucinate)."""
        cfg = self.cfg
        self._check(sources, prev_frames, style)
        current = sources[:, -1]
        if style is not None:
            sources = torch.cat([sources, style], dim=2)
        b, _, _, h, w = sources.shape
        if prev_frames is None:
            force_hallucinate = True
            prev_frames = sources.new_zeros(b, cfg.n_past, cfg.output_nc, h, w)

        src = sources.flatten(1, 2) if cfg.use_flow else sources[:, -1]   # [B, (L+1)*C, H, W] or [B, C, H, W]
        prev = prev_frames.flatten(1, 2) if cfg.use_flow else None        # [B, L*3, H, W]

        # input pyramids, finest first; scale s runs on pyramid level n_scales-1-s
        src_pyr, prev_pyr = [src], [prev]
        for _ in range(cfg.n_scales - 1):
            src_pyr.append(downsample(src_pyr[-1]))
            prev_pyr.append(None if prev is None else downsample(prev_pyr[-1]))
        features = None
        for s, scale in enumerate(self.scales):
            level = cfg.n_scales - 1 - s
            features = scale(src_pyr[level], prev_pyr[level], features)
        image_features, flow_features = features

        hallucinated = self.image_head(image_features)                   # h~_B (or h~ without the prior)
        fg_hallucinated = bg_mask = None
        if cfg.foreground:
            fg_mask = current[:, list(cfg.fg_label_ids)].sum(1, keepdim=True).clamp(0, 1)
            bg_mask = 1 - fg_mask                                          # m_B from the labels
            fg_hallucinated = self.foreground(src_pyr)
            hallucinated = (1 - bg_mask) * fg_hallucinated + bg_mask * hallucinated

        if not cfg.use_flow:
            return GeneratorOutput(frame=hallucinated, hallucinated=hallucinated,
                                   fg_hallucinated=fg_hallucinated, bg_mask=bg_mask)

        # Flow and mask heads, warp and blend in fp32 even under bf16 autocast: the flow is scaled by
        # 20 * 2**(n_scales-1) pixels, and bf16's 8-bit mantissa would cost whole pixels of motion.
        with _autocast_off(flow_features.device):
            flow_features, hallucinated = _at_least_fp32(flow_features), _at_least_fp32(hallucinated)
            flow, mask = project(flow_features, [self.flow_head, self.mask_head[0]])   # one conv for both heads
            flow = flow * cfg.flow_scale
            mask = torch.sigmoid(mask)                                     # mask_head is (projection, sigmoid)
            if bg_mask is not None and cfg.fg_blend == "hard":
                mask = mask * bg_mask + (1 - bg_mask)                      # foreground treated as occluded
            if force_hallucinate:
                mask = torch.ones_like(mask)
            warped = warp(_at_least_fp32(prev_frames[:, -1]), flow)
            frame = (1 - mask) * warped + mask * hallucinated             # Eq. 4 / 9
        return GeneratorOutput(frame=frame, hallucinated=hallucinated, flow=flow, mask=mask, warped=warped,
                               fg_hallucinated=fg_hallucinated, bg_mask=bg_mask,
                               free_mask=bg_mask if cfg.fg_blend == "hard" else None)

    def load_coarser(self, coarser: "Vid2VidGenerator") -> None:
        """Progressive growth: copy every scale of a model with fewer scales (same ngf) into ours (not the output
        convolutions: the finest width changes)."""
        if coarser.cfg.n_scales >= self.cfg.n_scales:
            raise ValueError("load_coarser needs a model with fewer scales")
        expected = self.cfg.with_(n_scales=coarser.cfg.n_scales)
        if coarser.cfg != expected:
            raise ValueError(f"coarser model config {coarser.cfg} differs from ours beyond n_scales")
        for s, scale in enumerate(coarser.scales):
            self.scales[s].load_state_dict(scale.state_dict())
        if self.cfg.foreground:   # its deep part and local stages; the output conv's width changes, as above
            theirs = {k: v for k, v in coarser.foreground.state_dict().items() if not k.startswith("body.2.")}
            _, unexpected = self.foreground.load_state_dict(theirs, strict=False)
            assert not unexpected, unexpected


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
