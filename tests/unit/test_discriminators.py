"""D_I / D_V shapes, temporal windows and flow composition, init, gradients (CPU, tiny sizes)."""
from __future__ import annotations

import pytest
import torch

from v2v.model.config import DiscriminatorConfig
from v2v.model.discriminators import (
    Discriminators,
    FLOW_DIVISOR,
    MultiscalePatchD,
    NLayerPatchD,
    TemporalD,
    compose_flows,
    detached,
    frames_needed,
    temporal_windows,
)
from v2v.model.flow import warp
from v2v.model.losses import lsgan_d_loss

TINY = dict(ndf=4, n_layers=2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_patchd_returns_all_layers_and_one_channel_prediction():
    d = NLayerPatchD(5, ndf=4, n_layers=3, norm="instance")
    feats = d(torch.randn(2, 5, 32, 32))
    assert len(feats) == 3 + 2  # 3 stride-2 layers, 1 stride-1 layer, prediction
    assert [f.shape[1] for f in feats] == [4, 8, 16, 32, 1]
    assert feats[0].shape[-1] == 17 and feats[1].shape[-1] == 9  # stride 2 (padding 2)
    assert feats[-1].shape[:2] == (2, 1)


def test_patchd_channel_cap_and_tiny_inputs():
    d = NLayerPatchD(3, ndf=256, n_layers=3, norm="none")
    feats = d(torch.randn(1, 3, 2, 2))  # still non-empty maps on a 2x2 input
    assert [f.shape[1] for f in feats] == [256, 512, 512, 512, 1]
    assert all(f.numel() > 0 for f in feats)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_init_is_normal_002(norm):
    d = NLayerPatchD(64, ndf=64, n_layers=2, norm=norm)
    w = torch.cat([m.weight.flatten() for m in d.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert all(m.bias.abs().max() == 0 for m in d.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("num_d", [1, 2, 3])
def test_multiscale_shapes(num_d):
    cfg = DiscriminatorConfig(num_d=num_d, **TINY)
    d = MultiscalePatchD(7, cfg)
    out = d(torch.randn(2, 7, 32, 32))
    assert len(out) == num_d
    widths = [feats[0].shape[-1] for feats in out]
    assert widths == [17, 9, 5][:num_d]  # scale i sees the input pooled i times: 32, 16, 8
    for feats in out:
        assert len(feats) == cfg.n_layers + 2 and feats[-1].shape[1] == 1


def test_multiscale_without_feature_matching_returns_predictions_only():
    d = MultiscalePatchD(3, DiscriminatorConfig(num_d=2, feature_matching=False, **TINY))
    out = d(torch.randn(1, 3, 16, 16))
    assert [len(f) for f in out] == [1, 1] and out[0][0].shape[1] == 1


def test_pyramid_pooling_excludes_padding():
    # A constant image stays constant under count_include_pad=False pooling, so the coarse scale's
    # first layer output is spatially uniform away from its own zero-padded border.
    cfg = DiscriminatorConfig(num_d=2, norm="none", **TINY)
    d = MultiscalePatchD(1, cfg)
    seen = {}

    def grab(module, inputs):  # pre-hook returning None leaves the forward untouched
        seen["x"] = inputs[0]

    d.scales[1].layers[0].register_forward_pre_hook(grab)
    d(torch.ones(1, 1, 16, 16))
    assert torch.allclose(seen["x"], torch.ones(1, 1, 8, 8))


def test_gradient_reaches_every_d_param():
    cfg = DiscriminatorConfig(num_d=2, **TINY)
    d = MultiscalePatchD(4, cfg)
    real, fake = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    lsgan_d_loss(d(real), d(fake)).backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---- temporal -----------------------------------------------------------------

def _clip(b=1, t=9, c=3, h=16, w=16):
    """Frames whose value is their time index, and flows whose value encodes the pair index."""
    frames = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1, 1).expand(b, t, c, h, w).clone()
    flows = torch.zeros(b, t - 1, 2, h, w)
    return frames, flows


def test_frames_needed():
    assert [frames_needed(s, 3) for s in range(3)] == [3, 7, 19]
    assert [frames_needed(s, 2) for s in range(3)] == [2, 3, 5]
    assert TemporalD(DiscriminatorConfig(k_frames=3, **TINY)).frames_needed(1) == 7


def test_temporal_windows_pick_last_frames_with_stride():
    frames, flows = _clip(t=9)
    win, _ = temporal_windows(frames, flows, scale=0, k=3)
    assert win[0, :, 0, 0, 0].tolist() == [6, 7, 8]
    win, _ = temporal_windows(frames, flows, scale=1, k=3)
    assert win[0, :, 0, 0, 0].tolist() == [2, 5, 8]
    win, none = temporal_windows(frames, None, scale=1, k=3)
    assert win.shape == (1, 3, 3, 16, 16) and none is None


def test_temporal_windows_scale0_flows_are_the_last_ones():
    frames, flows = _clip(t=5)
    flows += torch.arange(4, dtype=torch.float32).view(1, 4, 1, 1, 1)
    _, fw = temporal_windows(frames, flows, scale=0, k=3)
    assert fw[0, :, 0, 0, 0].tolist() == [2, 3]


def test_composed_flow_warps_subsampled_frames():
    # Each step translates the image by 1 px right (backward flow x = -1); 3 steps compose to -3.
    h = w = 24
    base = torch.randn(1, 3, h, w)
    frames = torch.stack([torch.roll(base, shifts=i, dims=-1) for i in range(7)], dim=1)  # [1, 7, 3, H, W]
    flows = torch.zeros(1, 6, 2, h, w)
    flows[:, :, 0] = -1.0
    win, fw = temporal_windows(frames, flows, scale=1, k=3)
    assert fw.shape == (1, 2, 2, h, w)
    assert torch.allclose(fw[:, :, 0], torch.full_like(fw[:, :, 0], -3.0))
    inner = (Ellipsis, slice(4, -4))  # away from the roll wrap-around / border clamp
    assert torch.allclose(warp(win[:, 0], fw[:, 0])[inner], win[:, 1][inner], atol=1e-5)


def test_compose_flows_reads_older_flow_where_newer_points():
    # f_ab varies along x; f_bc is a constant 2 px shift: f_ac(p) = f_bc + f_ab(p + 2), not f_ab(p) + f_bc.
    h, w = 4, 10
    f_ab = torch.zeros(1, 2, h, w)
    f_ab[:, 1] = torch.arange(w, dtype=torch.float32)  # y-component = column index
    f_bc = torch.zeros(1, 2, h, w)
    f_bc[:, 0] = 2.0
    out = compose_flows(torch.stack([f_ab, f_bc], dim=1))
    assert torch.allclose(out[0, 0], torch.full((h, w), 2.0))
    expected_y = torch.clamp(torch.arange(w, dtype=torch.float32) + 2, max=w - 1).expand(h, w)  # border clamp
    assert torch.allclose(out[0, 1], expected_y, atol=1e-5)


def test_temporal_windows_too_short_clip_raises():
    frames, flows = _clip(t=6)
    with pytest.raises(ValueError, match=r"needs clips of >= 7 frames.*got 6"):
        temporal_windows(frames, flows, scale=1, k=3)
    with pytest.raises(ValueError, match="flows must be"):
        temporal_windows(frames, flows[:, :-1], scale=0, k=3)


@pytest.mark.parametrize("n_scales", [1, 2, 3])
def test_temporal_d_shapes_per_scale(n_scales):
    cfg = DiscriminatorConfig(k_frames=2, n_temporal_scales=n_scales, num_d=2, **TINY)
    d = TemporalD(cfg, image_nc=3)
    assert len(d.scales) == n_scales
    t = d.frames_needed(n_scales - 1)
    frames, flows = torch.randn(2, t, 3, 16, 16), torch.randn(2, t - 1, 2, 16, 16)
    for s in range(n_scales):
        out = d(*d.windows(frames, flows, s), scale=s)
        assert len(out) == 2 and out[0][-1].shape[:2] == (2, 1) and len(out[0]) == cfg.n_layers + 2


def test_temporal_d_input_is_frames_then_flows_over_20():
    cfg = DiscriminatorConfig(k_frames=3, n_temporal_scales=1, num_d=1, **TINY)
    d = TemporalD(cfg)
    frames, flows = torch.randn(1, 3, 3, 16, 16), 20 * torch.randn(1, 2, 2, 16, 16)
    x = torch.cat([frames.flatten(1, 2), flows.flatten(1, 2) / FLOW_DIVISOR], dim=1)
    assert x.shape[1] == 3 * 3 + 2 * 2
    assert torch.equal(d(frames, flows, 0)[0][-1], d.scales[0](x)[0][-1])


def test_temporal_d_rejects_bad_windows_and_scales():
    cfg = DiscriminatorConfig(k_frames=3, n_temporal_scales=2, **TINY)
    d = TemporalD(cfg)
    frames, flows = torch.randn(1, 2, 3, 16, 16), torch.randn(1, 1, 2, 16, 16)
    with pytest.raises(ValueError, match=r"K=3.*clips need >= 7 frames at scale 1"):
        d(frames, flows, 1)
    with pytest.raises(ValueError, match="out of range"):
        d(torch.randn(1, 3, 3, 16, 16), torch.randn(1, 2, 2, 16, 16), 2)
    with pytest.raises(ValueError, match="flows_window"):
        d(torch.randn(1, 3, 3, 16, 16), torch.randn(1, 3, 2, 16, 16), 0)


def test_temporal_d_disabled_has_no_params():
    d = TemporalD(DiscriminatorConfig(n_temporal_scales=0))
    assert sum(p.numel() for p in d.parameters()) == 0
    with pytest.raises(ValueError, match="0 temporal scales"):
        d(torch.randn(1, 3, 3, 8, 8), torch.randn(1, 2, 2, 8, 8), 0)


def test_bundle_judges_each_frame_and_window_as_if_alone_in_the_order_given():
    """The trainer batches real, generated and hallucinated frames (and windows) into one pass: with per-sample
    norms each gets exactly the features it would get alone, in the order given."""
    cfg = DiscriminatorConfig(k_frames=2, n_temporal_scales=2, num_d=2, **TINY)
    d = Discriminators(source_nc=4, cfg=cfg)
    assert d.temporal_scales(2) == [0] and d.temporal_scales(3) == [0, 1]
    source, frames = torch.randn(1, 4, 16, 16), [torch.randn(1, 3, 16, 16) for _ in range(3)]
    clip, flows = torch.randn(1, 3, 3, 16, 16), torch.randn(1, 2, 2, 16, 16)
    windows = {s: d.temporal.windows(clip, flows, s) for s in (0, 1)}
    other = {s: torch.randn_like(w) for s, (w, _) in windows.items()}
    image, temporal = d(source, frames, {s: ([w, other[s]], fw) for s, (w, fw) in windows.items()})
    assert len(image) == 3 and sorted(temporal) == [0, 1]
    for x, feats in zip(frames, image):
        alone = d.image(torch.cat([source, x], 1))
        assert all(torch.allclose(a, b, atol=1e-6) for sa, sb in zip(alone, feats) for a, b in zip(sa, sb))
    for s, (w, fw) in windows.items():
        alone = d.temporal(other[s], fw, s)
        got = temporal[s][1]
        assert all(torch.allclose(a, b, atol=1e-6) for sa, sb in zip(alone, got) for a, b in zip(sa, sb))
    assert not any(t.requires_grad for scale in detached(image[0]) for t in scale)
