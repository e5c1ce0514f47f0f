"""v2v.quantize: precision int8 on a CPU (the steady step on a copy of the network with 8-bit convolutions)."""
from __future__ import annotations

import platform

import pytest
import torch
from torch import nn

from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.model.layers import InstanceNorm
from v2v.quantize import Int8Conv2d, activation_levels, int8_network, int8_problem, quantisable
from v2v.sampler import StreamingSampler

needs_int8 = pytest.mark.skipif(int8_problem(torch.device("cpu")) is not None,
                                reason=f"int8 cannot run here: {int8_problem(torch.device('cpu'))}")


def make_model() -> Vid2VidGenerator:
    torch.manual_seed(0)
    cfg = GeneratorConfig(input_nc=4, label_nc=3, ngf=8, n_downsample=2, n_blocks=2, n_local_blocks=1,
                          foreground=True, fg_label_ids=(2,), fg_n_blocks=1)
    return Vid2VidGenerator(cfg).eval()


def label_sources(n: int, size: int = 32) -> list[torch.Tensor]:
    """One-hot label maps of a square moving right over two background classes, plus a boundary channel."""
    frames = []
    for t in range(n):
        ids = torch.zeros(size, size, dtype=torch.long)
        ids[size // 2:] = 1
        ids[8:20, 2 + t % 12:14 + t % 12] = 2
        one_hot = torch.nn.functional.one_hot(ids, 3).permute(2, 0, 1).float()
        frames.append(torch.cat([one_hot, torch.zeros(1, size, size)]))
    return frames


@needs_int8
def test_int8_stream_is_float32_for_the_warm_up_then_close_to_it():
    """Each shot's warm-up frames are float32 exactly as eager; after them the step runs the int8 copy: it differs
    from float32 (so the 8-bit path really runs), by a few 8-bit levels on average given the same history (this
    random tiny network; the shipped models on real footage: bench/NOTES.md "int8 on a CPU")."""
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    L = model.cfg.n_past
    sources = label_sources(L + 6)
    int8 = StreamingSampler(model, precision="int8")
    eager = StreamingSampler(model)
    for shot in range(2):                          # a cut: the warm-up is float32 again, then int8 again
        outputs = []
        for t, s in enumerate(sources):
            outputs.append(int8.step(s))
            if t < L:
                assert torch.equal(outputs[t], eager.step(s)), (shot, t)
                continue
            with torch.inference_mode():           # float32 given the same history as the int8 step had
                window = torch.stack(sources[t - L:t + 1]).unsqueeze(0)
                prev = torch.cat(outputs[t - L:t]).unsqueeze(0)
                ref = model(window, prev).frame.clamp(-1, 1)
            diff = (outputs[t] - ref).abs()
            assert 0 < diff.max() < 0.4 and diff.mean() < 0.03, (shot, t, diff.max().item(), diff.mean().item())
        int8.reset()
        eager.reset()
    net = int8._steady
    assert not quantisable(net)                                                  # no float32 Conv2d left
    assert sum(isinstance(m, Int8Conv2d) for m in net.modules()) == len(quantisable(model)) > 10
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the float32 model untouched


def test_int8_says_why_it_cannot_run(monkeypatch):
    assert "CPU only" in int8_problem(torch.device("cuda"))
    with pytest.raises(RuntimeError, match="do not combine"):
        StreamingSampler(make_model(), precision="int8", compile=True)
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    with pytest.raises(RuntimeError, match="needs an x86 CPU .*this is arm64.*use fp32"):
        StreamingSampler(make_model(), precision="int8")


@needs_int8
def test_int8_convolution_is_the_float32_one_within_its_rounding():
    """One convolution alone: weights per output channel, the input over its range; the error is what 8 bits allow,
    and stride and padding are kept."""
    torch.manual_seed(0)
    for conv in (nn.Conv2d(8, 16, 3), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.Conv2d(6, 3, 7)):
        x = torch.rand(1, conv.in_channels, 20, 24) * 4 - 1
        q = Int8Conv2d(conv)
        with torch.inference_mode():
            ref, out = conv(x), q(x)
        assert out.shape == ref.shape and out.dtype == torch.float32
        rel = ((out - ref).abs().mean() / ref.abs().mean()).item()
        assert 0 < rel < 0.02, (conv, rel)


def test_instance_norm_of_a_channels_last_map_keeps_its_digits():
    """The int8 convolutions hand the norms channels_last maps: those take batch norm's statistics (exact per
    sample at batch 1), not group norm's one-pass variance, which loses them on a map of large mean."""
    torch.manual_seed(0)
    norm = InstanceNorm(24, affine=True)
    x = torch.randn(1, 24, 40, 48) * 0.1 + 5
    exact = nn.functional.instance_norm(x.double(), weight=norm.weight.double(), bias=norm.bias.double())
    for layout in (torch.contiguous_format, torch.channels_last):
        with torch.no_grad():
            out = norm(x.contiguous(memory_format=layout))
        assert (out.double() - exact).abs().max() < 3e-4, layout


@needs_int8
@pytest.mark.parametrize("levels", [255, 127])
def test_seven_bit_inputs_are_close_everywhere_and_eight_where_the_kernels_allow(levels):
    """Inputs over 7 bits stay within 1.5 % of float32 on any x86 CPU; over 8 bits only where the kernels do not
    saturate (VNNI), which activation_levels measures: it picks 255 exactly there."""
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 3)
    x = torch.rand(1, 16, 20, 24) * 4 - 1
    with torch.inference_mode():
        ref, out = conv(x), Int8Conv2d(conv, levels=levels)(x)
    rel = ((out - ref).abs().mean() / ref.abs().mean()).item()
    if levels == 127 or activation_levels() == 255:
        assert rel < 0.015, (levels, rel)
    else:
        assert rel > 0.03, rel                          # saturating here: the reason 255 was not picked


def test_activation_levels_fall_back_to_seven_bits_when_eight_saturate(monkeypatch):
    from v2v import quantize

    for error, levels in ((0.004, 255), (0.11, 127)):
        monkeypatch.setattr(quantize, "full_range_error", lambda: error)
        quantize.activation_levels.cache_clear()
        assert quantize.activation_levels() == levels
    quantize.activation_levels.cache_clear()


@needs_int8
def test_each_input_is_quantised_over_its_own_range():
    """No calibration: an input far outside anything seen before is as close as the first one (a range fixed on
    early frames would saturate it), and an all-zero input gives the bias."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3)
    q = Int8Conv2d(conv)
    with torch.inference_mode():
        for x in (torch.rand(1, 4, 16, 16), torch.rand(1, 4, 16, 16) * 50 - 10):
            ref = conv(x)
            assert ((q(x) - ref).abs().mean() / ref.abs().mean()) < 0.02
        zero = torch.zeros(1, 4, 16, 16)
        torch.testing.assert_close(q(zero), conv(zero), atol=1e-5, rtol=0)
        broken = torch.rand(1, 4, 16, 16)
        broken[0, 0, 3, 3] = float("nan")            # from broken weights upstream: NaN goes on (the pipeline
        assert torch.isnan(q(broken)).any()          # names the weights), no error about a range


def test_int8_network_leaves_the_heads_and_transposed_convolutions_float32():
    model = make_model()
    names = set(quantisable(model))
    assert "image_head.0.1" not in names and "flow_head.1" not in names and "foreground.body.2.1" not in names
    assert all(type(m) is nn.Conv2d for m in quantisable(model).values())
    if int8_problem(torch.device("cpu")) is None:
        net = int8_network(model)
        assert isinstance(net.image_head[0][1], nn.Conv2d)
        assert any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
