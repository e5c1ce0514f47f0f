import pytest
import torch

from bench.model_cost import frame_flops
from v2v.model.config import ConfigError, GeneratorConfig, preset
from v2v.model.generator import Vid2VidGenerator, count_parameters


def make(n_scales=1, **task):
    torch.manual_seed(0)
    task.setdefault("input_nc", 4)
    return Vid2VidGenerator(preset("tiny", n_scales=n_scales, **task))


def inputs(g, size=None, batch=2):
    cfg = g.cfg
    h = w = size or cfg.size_multiple * 2
    src = torch.rand(batch, cfg.n_past + 1, cfg.input_nc, h, w)
    prev = torch.rand(batch, cfg.n_past, 3, h, w) * 2 - 1
    style = torch.rand(batch, cfg.n_past + 1, cfg.style_nc, h, w) if cfg.style_nc else None
    return src, prev, style


@pytest.mark.parametrize("n_scales", [1, 2, 3])
@pytest.mark.parametrize("input_nc", [1, 3, 15, 36])
def test_output_shapes(n_scales, input_nc):
    g = make(n_scales, input_nc=input_nc)
    src, prev, _ = inputs(g)
    out = g(src, prev)
    h = w = g.cfg.size_multiple * 2
    assert out.frame.shape == (2, 3, h, w)
    assert out.hallucinated.shape == (2, 3, h, w)
    assert out.flow.shape == (2, 2, h, w)
    assert out.mask.shape == (2, 1, h, w) and out.warped.shape == (2, 3, h, w)
    assert 0 <= out.mask.min() and out.mask.max() <= 1
    assert out.frame.abs().max() <= 1


def test_non_square_frames():
    g = make(2)
    m = g.cfg.size_multiple
    src = torch.rand(1, 3, 4, 2 * m, 3 * m)
    out = g(src, torch.zeros(1, 2, 3, 2 * m, 3 * m))
    assert out.frame.shape == (1, 3, 2 * m, 3 * m)


def test_per_frame_model_has_no_flow_and_ignores_history():
    g = make(1, use_flow=False)
    src, prev, _ = inputs(g)
    a = g(src, prev)
    assert a.flow is None and a.mask is None and a.warped is None
    b = g(src, torch.zeros_like(prev))
    assert torch.equal(a.frame, b.frame)
    assert torch.equal(a.frame, a.hallucinated)


def blend_with(g, mask_value, zero_flow):
    """Run g with its mask head forced to a constant and optionally zero flow."""
    head = g.mask_head[0][1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(1e4 if mask_value == 1 else -1e4)
        if zero_flow:
            g.flow_head[1].weight.zero_()
            g.flow_head[1].bias.zero_()
    src, prev, _ = inputs(g)
    return g(src, prev), prev


def test_mask_one_gives_hallucination():
    out, _ = blend_with(make(2), 1, zero_flow=False)
    assert torch.allclose(out.mask, torch.ones_like(out.mask))
    assert torch.allclose(out.frame, out.hallucinated)


def test_mask_zero_with_zero_flow_gives_previous_frame():
    out, prev = blend_with(make(2), 0, zero_flow=True)
    assert torch.equal(out.flow, torch.zeros_like(out.flow))
    assert torch.allclose(out.frame, prev[:, -1], atol=1e-6)


def test_no_history_forces_hallucination():
    g = make(1)
    src, _, _ = inputs(g)
    out = g(src, None)
    assert torch.equal(out.mask, torch.ones_like(out.mask))
    assert torch.allclose(out.frame, out.hallucinated)


def fg_model():
    # 5 labels + instance edge; label 3 is foreground
    return make(1, input_nc=6, label_nc=5, foreground=True, fg_label_ids=(3,))


def one_hot_sources(g, ids):
    """ids [H, W] -> [1, L+1, 6, H, W] one-hot labels (same map every frame) + zero edge channel."""
    onehot = torch.nn.functional.one_hot(ids, 5).permute(2, 0, 1).float()
    frame = torch.cat([onehot, torch.zeros(1, *ids.shape)])
    return frame.expand(1, g.cfg.n_past + 1, *frame.shape).clone()


def test_foreground_prior_takes_foreground_pixels_from_foreground_branch():
    g = fg_model()
    ids = torch.zeros(16, 16, dtype=torch.long)
    ids[4:10, 5:12] = 3
    src = one_hot_sources(g, ids)
    out = g(src, torch.rand(1, 2, 3, 16, 16))
    fg = (ids == 3)
    assert torch.equal(out.bg_mask[0, 0], (~fg).float())
    # foreground: occluded (mask 1) and equal to h_F; background: from h_B blended with the warp
    assert torch.all(out.mask[0, 0][fg] == 1)
    assert torch.allclose(out.frame[0][:, fg], out.fg_hallucinated[0][:, fg])
    assert not torch.allclose(out.frame[0][:, ~fg], out.fg_hallucinated[0][:, ~fg])


def test_foreground_branch_sees_sources_only():
    g = fg_model()
    src = one_hot_sources(g, torch.zeros(16, 16, dtype=torch.long))
    a = g(src, torch.rand(1, 2, 3, 16, 16)).fg_hallucinated
    b = g(src, torch.rand(1, 2, 3, 16, 16)).fg_hallucinated
    assert torch.equal(a, b)


def test_style_features_change_the_output():
    g = make(1, style_nc=3)
    src, prev, style = inputs(g)
    a = g(src, prev, style=style).frame
    b = g(src, prev, style=-style).frame
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="style features"):
        g(src, prev)


PARAMETER_GROUPS = ["scales.0.source_encoder", "scales.0.prev_encoder", "scales.0.image_trunk",
                    "scales.0.flow_trunk", "scales.1.source_encoder", "scales.1.prev_encoder",
                    "scales.1.image_trunk", "scales.1.flow_trunk", "image_head", "flow_head", "mask_head",
                    "foreground"]


def test_gradients_reach_every_parameter_group():
    g = make(2, input_nc=6, label_nc=5, foreground=True, fg_label_ids=(3,))
    ids = torch.zeros(16, 16, dtype=torch.long)
    ids[2:8, 2:8] = 3
    src = one_hot_sources(g, ids).repeat(2, 1, 1, 1, 1)
    out = g(src, torch.rand(2, 2, 3, 16, 16))
    (out.frame.mean() + out.flow.mean() + out.mask.mean()).backward()
    names = [n for n, _ in g.named_parameters()]
    for group in PARAMETER_GROUPS:
        grads = [p.grad for n, p in g.named_parameters() if n.startswith(group)]
        assert grads, f"no parameters in {group}: {names}"
        assert all(gr is not None for gr in grads), group
        assert sum(gr.abs().sum() for gr in grads) > 0, group


def test_bad_inputs_are_named():
    g = make(1)
    m = g.cfg.size_multiple
    with pytest.raises(ValueError, match="input_nc=4"):
        g(torch.rand(1, 3, 5, 2 * m, 2 * m), None)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        g(torch.rand(1, 3, 4, 2 * m + 1, 2 * m), None)
    with pytest.raises(ValueError, match="prev_frames"):
        g(torch.rand(1, 3, 4, 2 * m, 2 * m), torch.rand(1, 1, 3, 2 * m, 2 * m))


def test_config_rejects_invalid_and_unknown():
    with pytest.raises(ConfigError, match="unknown keys"):
        GeneratorConfig.from_dict({"input_nc": 3, "bogus": 1})
    with pytest.raises(ConfigError, match="fg_label_ids"):
        GeneratorConfig(input_nc=6, label_nc=5, foreground=True, fg_label_ids=(7,))
    with pytest.raises(ConfigError, match="n_scales"):
        GeneratorConfig(input_nc=3, n_scales=4)
    cfg = preset("tiny", input_nc=6, label_nc=5, foreground=True, fg_label_ids=(3, 4))
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg


def test_finer_model_reuses_coarser_weights():
    coarse = make(1)
    fine = Vid2VidGenerator(coarse.cfg.with_(n_scales=2))
    fine.load_coarser(coarse)
    for (n, a), (_, b) in zip(coarse.scales[0].state_dict().items(), fine.scales[0].state_dict().items()):
        assert torch.equal(a, b), n
    with pytest.raises(ValueError):
        fine.load_coarser(make(1, ngf=16))


def test_finer_model_reuses_the_coarser_foreground_network():
    coarse = make(1, input_nc=6, label_nc=5, foreground=True, fg_label_ids=(3,))
    fine = Vid2VidGenerator(coarse.cfg.with_(n_scales=3))
    fine.load_coarser(coarse)
    ours = fine.foreground.state_dict()
    for n, t in coarse.foreground.state_dict().items():
        if not n.startswith("body.2."):                      # the output conv: its width is the finest scale's
            assert torch.equal(ours[n], t), n


@pytest.mark.parametrize("n_scales", [1, 2, 3])
def test_the_foreground_network_runs_on_the_pyramid(n_scales):
    """Its deep part (encoder + decoder) sees the coarsest level, each finer scale adds a local stage, and the
    output is full size; with one scale it is the single encoder-decoder the shipped models hold."""
    g = make(n_scales, input_nc=6, label_nc=5, foreground=True, fg_label_ids=(3,))
    seen = []
    g.foreground.body[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-2:]))
    side = g.cfg.size_multiple * 2
    out = g(*inputs(g, side, batch=1)[:2])
    assert seen == [(side // 2 ** (n_scales - 1),) * 2]
    assert len(g.foreground.local) == n_scales - 1
    assert out.fg_hallucinated.shape == (1, 3, side, side)


def test_paper_foreground_costs_no_more_than_the_original_at_2048x1024():
    """The paper preset with the foreground prior at 2048x1024 and 3 scales: at most the original code's 5064
    GFLOPs per frame (bench/model_cost.py; 7218 when the foreground network ran at full resolution)."""
    cfg = preset("paper", input_nc=36, label_nc=35, n_scales=3, foreground=True, fg_label_ids=(26,))
    assert frame_flops(cfg, 2048, 1024) / 1e9 <= 5064


def test_the_foreground_width_must_halve_with_each_scale():
    with pytest.raises(ConfigError, match="foreground network's width"):
        preset("tiny", input_nc=6, label_nc=5, n_scales=3, fg_ngf=6, foreground=True, fg_label_ids=(3,))


@pytest.mark.parametrize("task", [dict(input_nc=10, label_nc=9, foreground=True, fg_label_ids=(8,)),
                                  dict(input_nc=15), dict(input_nc=3)], ids=["street", "face", "body"])
def test_the_fast_preset_costs_at_most_a_quarter_of_small(task):
    assert frame_flops(preset("fast", **task), 128, 96) <= frame_flops(preset("small", **task), 128, 96) / 4


@pytest.mark.parametrize("n_scales", [1, 2])
@pytest.mark.parametrize("use_flow", [True, False])
def test_the_fast_preset_generates_and_learns(n_scales, use_flow):
    """3x3 stems and projections, one bottleneck of dilated blocks shared by the image and flow branches: shapes at
    the smallest frame it takes, and gradients everywhere."""
    torch.manual_seed(0)
    g = Vid2VidGenerator(preset("fast", input_nc=6, label_nc=5, n_scales=n_scales, use_flow=use_flow,
                                foreground=True, fg_label_ids=(3,)))
    assert g.cfg.stem_kernel == 3 and g.scales[0].source_encoder[0][1].kernel_size == (3, 3)
    assert g.scales[0].shared_trunk[0].body[1].dilation == (2, 2) and g.cfg.head_kernel == 3
    side = g.cfg.min_frame_side
    ids = torch.zeros(side, side, dtype=torch.long)
    ids[2:8, 2:8] = 3
    out = g(one_hot_sources(g, ids), torch.rand(1, 2, 3, side, side))
    assert out.frame.shape == (1, 3, side, side)
    (out.frame.mean() + (out.flow.mean() + out.mask.mean() if use_flow else 0)).backward()
    unused = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused and any(n.startswith("scales.0.shared_trunk") for n, _ in g.named_parameters())


def test_stem_and_head_kernels_are_checked():
    with pytest.raises(ConfigError, match="stem_kernel"):
        preset("tiny", input_nc=3, stem_kernel=4)
    with pytest.raises(ConfigError, match="head_kernel"):
        preset("tiny", input_nc=3, head_kernel=1)


@pytest.mark.parametrize("n_down", [1, 2, 3])
def test_skips_add_each_encoder_feature_to_the_decoder_output_of_its_size(n_down):
    """``encode``/``decode`` with skips: the decoder adds, after each upsampling, the encoder's feature of that size
    (its stem's at full size); without skips they are the plain Sequentials, so every checkpoint runs as before."""
    from v2v.model.layers import decode, decoder_trunk, encode, encoder

    torch.manual_seed(0)
    enc, dec = encoder(5, 4, n_down, 1, "instance", 3), decoder_trunk(4, n_down, 1, "instance")
    x = torch.randn(1, 5, 16, 24)
    with torch.no_grad():
        code, skips = encode(enc, x, False)
        assert skips == [] and torch.equal(code, enc(x)) and torch.equal(decode(dec, code, []), dec(code))
        code, skips = encode(enc, x, True)
        torch.testing.assert_close(code, enc(x))
        sizes = [(f.shape[1], f.shape[-1]) for f in skips]
        assert sizes == [(4 * 2**i, 24 // 2**i) for i in range(n_down)]   # finest first, one per upsampling
        expected = dec[0](code)
        for i, up in enumerate(dec[1:], start=1):
            expected = up(expected) + skips[-i]
        torch.testing.assert_close(decode(dec, code, skips), expected)


def test_skips_change_the_frame_and_train_every_weight():
    """A skip model (3x3 projections too) differs from the same weights without skips, and every weight learns."""
    torch.manual_seed(0)
    g = Vid2VidGenerator(preset("tiny", input_nc=4, label_nc=3, skips=True, head_kernel=3))
    plain = Vid2VidGenerator(g.cfg.with_(skips=False))
    plain.load_state_dict(g.state_dict())
    src, prev, _ = inputs(g, batch=1)
    out = g(src, prev)
    with torch.no_grad():
        assert not torch.allclose(out.frame, plain(src, prev).frame)
    (out.frame.mean() + out.flow.mean() + out.mask.mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


@pytest.mark.parametrize("dilation, field", [(1, 5), (2, 9)])
def test_a_dilated_block_sees_twice_as_far_with_the_same_weights(dilation, field):
    """A residual block's two 3x3 convolutions see 5x5 pixels; dilated by 2, 9x9 with the same weight shapes."""
    from v2v.model.layers import ResnetBlock

    torch.manual_seed(0)
    block = ResnetBlock(4, "none", dilation)
    x = torch.randn(1, 4, 15, 15, requires_grad=True)
    block(x)[0, :, 7, 7].sum().backward()
    rows, cols = (x.grad[0].abs().sum(0) > 0).nonzero().unbind(1)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (field, field)
    assert [p.shape for p in block.parameters()] == [p.shape for p in ResnetBlock(4, "none").parameters()]


def test_block_dilation_keeps_the_weights_changes_the_frame_and_is_checked():
    """``block_dilation`` reaches every residual block of the coarsest scale (the same state dict, another frame,
    every weight learns); a file written before the switch existed reads as 1; 3 is refused."""
    torch.manual_seed(0)
    cfg = preset("fast", input_nc=4, label_nc=3, n_blocks=2, skips=True, head_kernel=3, block_dilation=1)
    g = Vid2VidGenerator(cfg.with_(block_dilation=2))
    plain = Vid2VidGenerator(cfg)
    plain.load_state_dict(g.state_dict())
    dilated = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d) and m.dilation == (2, 2)]
    assert len(dilated) == 2 * 3       # two convolutions in each of three blocks (two encoders, one shared)
    src, prev, _ = inputs(g, batch=1, size=64)
    out = g(src, prev)
    with torch.no_grad():
        assert not torch.allclose(out.frame, plain(src, prev).frame)
    (out.frame.mean() + out.flow.mean() + out.mask.mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    m = cfg.size_multiple      # the blocks reflect-pad by 2: the bottleneck needs 3x3 pixels, not 2x2
    assert (cfg.min_frame_side, g.cfg.min_frame_side) == (2 * m, 3 * m)
    assert "under 3x3 pixels" in g.cfg.frame_size_problem(2 * m, 4 * m)
    assert g.cfg.frame_size_problem(3 * m, 3 * m) is None
    with torch.no_grad():
        assert g(*inputs(g, batch=1, size=3 * m)[:2]).frame.shape[-1] == 3 * m
    old = {k: v for k, v in cfg.to_dict().items() if k != "block_dilation"}
    assert GeneratorConfig.from_dict(old).block_dilation == 1
    with pytest.raises(ConfigError, match="block_dilation"):
        cfg.with_(block_dilation=3)


def test_paper_preset_size():
    """The paper preset at its Cityscapes layout: about 0.4 G parameters (reference: 411 M)."""
    cfg = preset("paper", input_nc=36, label_nc=35, foreground=True, fg_label_ids=(26,))
    with torch.device("meta"):
        n = count_parameters(Vid2VidGenerator(cfg))
    assert 350e6 < n < 450e6


def test_the_foreground_prior_forces_the_mask_only_in_hard_mode():
    """fg_blend hard (the original code): m = 1 on foreground, and those pixels are left out of the mask
    regulariser; paper (Eq. 9 as written): the mask is the network's everywhere."""
    from v2v.model.losses import mask_loss

    torch.manual_seed(0)
    src = torch.zeros(1, 3, 4, 16, 16)
    src[:, :, 1, :8] = 1          # class 1 (foreground) on the top half
    src[:, :, 0, 8:] = 1
    prev = torch.zeros(1, 2, 3, 16, 16)
    outs = {}
    for blend in ("hard", "paper"):
        torch.manual_seed(0)
        g = Vid2VidGenerator(GeneratorConfig(input_nc=4, label_nc=3, ngf=4, n_downsample=1, n_blocks=2,
                                             n_local_blocks=1, foreground=True, fg_label_ids=(1,), fg_blend=blend))
        outs[blend] = g(src, prev)
    hard, paper = outs["hard"], outs["paper"]
    assert torch.all(hard.mask[..., :8, :] == 1) and hard.free_mask is not None and torch.equal(hard.free_mask, hard.bg_mask)
    assert not torch.all(paper.mask[..., :8, :] == 1) and paper.free_mask is None
    assert torch.allclose(mask_loss(hard.mask, hard.free_mask), hard.mask[..., 8:, :].mean())
    with pytest.raises(ValueError, match="fg_blend"):
        GeneratorConfig(input_nc=4, label_nc=3, fg_blend="soft")


@pytest.mark.parametrize("channels_last", [True, False])
def test_output_projections_sharing_features_match_each_head_alone(monkeypatch, channels_last):
    """``project`` (one stacked convolution, channels_last on a CPU) gives each head's own padded convolution,
    values and gradients: the flow and mask heads of every flow model go through it."""
    from torch import nn

    from v2v.model import layers

    monkeypatch.setattr(layers, "CHANNELS_LAST_HEADS", channels_last)
    torch.manual_seed(0)
    for kernel in (7, 3):
        heads = [layers.OutputConv(6, 2, kernel), layers.OutputConv(6, 1, kernel)]
        x = torch.randn(2, 6, 13, 17, requires_grad=True)
        fused = layers.project(x, heads)
        alone = [nn.Sequential.forward(h, x) for h in heads]   # the plain pad-then-conv every checkpoint trained with
        assert [f.shape for f in fused] == [(2, 2, 13, 17), (2, 1, 13, 17)]
        for f, a in zip(fused, alone):
            torch.testing.assert_close(f, a, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(sum((f * f).sum() for f in fused), [x, heads[0][1].weight, heads[1][1].bias])
    grads_alone = torch.autograd.grad(sum((a * a).sum() for a in alone), [x, heads[0][1].weight, heads[1][1].bias])
    for g, a in zip(grads, grads_alone):
        torch.testing.assert_close(g, a, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(heads[0](x), alone[0], rtol=1e-5, atol=1e-5)   # one head alone takes the same path


def test_instance_norm_on_a_cpu_matches_torch_instance_norm():
    """The CPU path (group norm, one group per channel) against ``nn.InstanceNorm2d`` with the same weights: values
    and gradients, at batch 2 so that statistics per sample are checked too."""
    from torch import nn

    from v2v.model.layers import InstanceNorm

    torch.manual_seed(0)
    ours, reference = InstanceNorm(5, affine=True), nn.InstanceNorm2d(5, affine=True)
    with torch.no_grad():
        for m in (ours, reference):
            m.weight.copy_(torch.linspace(0.5, 2, 5))
            m.bias.copy_(torch.linspace(-1, 1, 5))
    x = torch.randn(2, 5, 9, 11) * torch.tensor([1.0, 10.0]).view(2, 1, 1, 1) + 3
    x.requires_grad_(True)
    y, y_ref = ours(x), reference(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad((y * y.detach().roll(1, -1)).sum(), [x, ours.weight, ours.bias])
    grads_ref = torch.autograd.grad((y_ref * y_ref.detach().roll(1, -1)).sum(), [x, reference.weight, reference.bias])
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)
    assert ours.state_dict().keys() == reference.state_dict().keys()


@pytest.mark.parametrize("n_scales", [1, 2])
def test_float32_on_a_cpu_stays_within_rounding_of_float64(n_scales):
    """The CPU's fast paths (stacked channels_last output projections, instance norm as group norm) keep a frame
    within fp32 rounding of the same network in float64; a one-pass variance or a lossy layout would not (bench/
    channels_last_accuracy.py measures it on the shipped models)."""
    g = make(n_scales, input_nc=5, foreground=True, fg_label_ids=(1,), label_nc=5)
    src, prev, _ = inputs(g, size=g.cfg.size_multiple * 4, batch=1)
    src = src * 0.1 + 2          # inputs with a large mean and a small spread: where a one-pass variance fails
    with torch.inference_mode():
        ours = g(src, prev)
        exact = g.double()(src.double(), prev.double())
    assert exact.frame.dtype == torch.float64
    flow_unit = g.cfg.flow_scale                  # the flow head's output is scaled to pixels
    for part in ("frame", "hallucinated", "flow", "mask"):
        err = (getattr(ours, part).double() - getattr(exact, part)).abs().max().item()
        err /= flow_unit if part == "flow" else 1
        assert err < 3e-4, (part, err)   # measured: <= 9e-5 here; the network in channels_last, 1e-3 to 6e-3
