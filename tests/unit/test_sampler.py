"""v2v.sampler: streaming one frame at a time with O(L) state."""
from __future__ import annotations

import gc
import shutil

import psutil
import pytest
import torch

from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.sources.labels import instance_boundary
from v2v.sampler import StreamingSampler, cpp_compiler_found

TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1, fg_n_blocks=1)
H = W = 16



def generate(model, sources, styles=None, **kwargs) -> list[torch.Tensor]:
    """Step a fresh sampler through the frames (what v2v.pipeline.generate does, without a source)."""
    sampler = StreamingSampler(model, **kwargs)
    return [sampler.step(s, style=None if styles is None else styles[t]) for t, s in enumerate(sources)]


def make_model(seed: int = 0, **overrides) -> Vid2VidGenerator:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(**{"input_nc": 3, **TINY, **overrides})
    return Vid2VidGenerator(cfg).eval()


def make_sources(n: int, nc: int = 3, seed: int = 1, h: int = H, w: int = W) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(nc, h, w, generator=g) * 2 - 1 for _ in range(n)]


def window(items: list[torch.Tensor], t: int, length: int, include_current: bool) -> torch.Tensor:
    """items[t-length+1..t] (or ..t-1), padded with items[0] on the old side: [1, length, C, H, W]."""
    stop = t + 1 if include_current else t
    picked = items[max(0, stop - length):stop]
    picked = [items[0]] * (length - len(picked)) + picked
    return torch.stack([p.reshape(p.shape[-3:]) for p in picked]).unsqueeze(0)


def test_shapes_range_and_fixed_size_buffers():
    model = make_model()
    L = model.cfg.n_past
    sampler = StreamingSampler(model)
    for t, source in enumerate(make_sources(7)):
        frame = sampler.step(source if t % 2 else source.unsqueeze(0))  # [C,H,W] and [1,C,H,W] both work
        assert frame.shape == (1, 3, H, W) and frame.dtype == torch.float32
        assert frame.device.type == "cpu"
        assert frame.min() >= -1 and frame.max() <= 1
        assert len(sampler.sources) == min(t + 1, L) and len(sampler.outputs) == min(t + 1, L)
    assert sampler.sources.maxlen == sampler.outputs.maxlen == L
    assert sampler.frame_index == 7


def test_streaming_equals_the_model_on_the_same_windows():
    """Without a first frame: frames 0..L-1 are forced hallucinations with padded histories, then Eq. 4."""
    model = make_model(n_past=3)
    L = 3
    sources = make_sources(8)
    sampler = StreamingSampler(model)
    outputs = [sampler.step(s) for s in sources]
    with torch.no_grad():
        for t in range(len(sources)):
            src = window(sources, t, L + 1, include_current=True)
            if t == 0:
                expected = model(src, None, force_hallucinate=True)
                assert torch.equal(expected.mask, torch.ones_like(expected.mask))
            else:
                prev = window(outputs, t, L, include_current=False)
                expected = model(src, prev, force_hallucinate=t < L)
            assert torch.equal(outputs[t], expected.frame.clamp(-1, 1)), t


def test_first_frame_is_the_first_output_and_seeds_the_history():
    model = make_model()
    L = model.cfg.n_past
    sources = make_sources(5)
    real = torch.rand(3, H, W) * 2 - 1
    sampler = StreamingSampler(model, first_frame=real)
    outputs = [sampler.step(s) for s in sources]
    assert torch.equal(outputs[0][0], real)
    with torch.no_grad():
        for t in range(1, len(sources)):
            src = window(sources, t, L + 1, include_current=True)
            prev = window(outputs, t, L, include_current=False)  # padded with the real frame
            expected = model(src, prev, force_hallucinate=False)   # real history: warping allowed at once
            assert torch.equal(outputs[t], expected.frame.clamp(-1, 1)), t


def test_several_real_first_frames():
    model = make_model()
    L = model.cfg.n_past
    real = torch.rand(L, 3, H, W) * 2 - 1
    sampler = StreamingSampler(model, first_frame=real)
    outputs = [sampler.step(s) for s in make_sources(4)]
    for k in range(L):
        assert torch.equal(outputs[k][0], real[k])
    assert not torch.equal(outputs[L][0], real[-1])


def test_deterministic_and_reset():
    model = make_model()
    sources = make_sources(6)
    a = [f.clone() for f in generate(model, sources)]
    b = [f.clone() for f in generate(model, sources)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    sampler = StreamingSampler(model)
    first = [sampler.step(s) for s in sources]
    sampler.reset()
    again = [sampler.step(s) for s in sources]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert all(torch.equal(x, y) for x, y in zip(first, a))


def test_bf16_autocast_on_cpu_runs_and_returns_float32():
    model = make_model()
    sources = make_sources(4)
    fp32 = list(generate(model, sources))
    bf16 = list(generate(model, sources, precision="bf16"))
    assert all(f.dtype == torch.float32 for f in bf16)
    assert max(float((x - y).abs().max()) for x, y in zip(fp32, bf16)) < 0.25
    with pytest.raises(ValueError, match="precision"):
        StreamingSampler(model, precision="fp8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_matches_cpu_closely():
    model = make_model()
    sources = make_sources(4)
    cpu = list(generate(model, sources))
    gpu = list(generate(make_model(), sources, device="cuda", precision="bf16"))
    assert gpu[0].device.type == "cuda"
    assert max(float((x - y.cpu()).abs().max()) for x, y in zip(cpu, gpu)) < 0.25


def test_errors_of_the_network_contract():
    """The sampler checks nothing a user gives (v2v.pipeline does); the network names its own contract."""
    model = make_model()
    with pytest.raises(ValueError, match=r"sources must be \[B, L\+1=3, input_nc=3, H, W\]"):
        StreamingSampler(model).step(torch.zeros(4, H, W))
    with pytest.raises(ValueError, match="1 <= k <= L=2"):
        StreamingSampler(model, first_frame=torch.zeros(3, 3, H, W))
    with pytest.raises(ValueError, match="without a style input"):
        StreamingSampler(model).step(torch.zeros(3, H, W), style=torch.zeros(3, H, W))


def test_reset_without_the_first_frame_starts_a_shot_from_nothing():
    model = make_model()
    sources = make_sources(4)
    first = torch.rand(3, H, W) * 2 - 1
    sampler = StreamingSampler(model, first_frame=first)
    before = [sampler.step(s) for s in sources[:2]]
    assert torch.equal(before[0][0], first)
    sampler.reset(first_frame=False)                  # a cut: the real frame belongs to the first shot
    after = [sampler.step(s) for s in sources[2:]]
    fresh = generate(model, sources[2:])
    assert all(torch.equal(a, b) for a, b in zip(after, fresh))
    sampler.reset()                                    # a new video: the real frame applies again
    assert torch.equal(sampler.step(sources[0])[0], first)


def test_instance_boundary():
    ids = torch.zeros(6, 6, dtype=torch.long)
    ids[2:4, 2:4] = 1
    edges = instance_boundary(ids).float()
    expected = torch.zeros(6, 6)
    expected[1:5, 2:4] = 1
    expected[2:4, 1:5] = 1
    assert torch.equal(edges, expected)
    assert instance_boundary(torch.full((1, 1, 5, 5), 3)).sum() == 0


def test_style_features_stream_with_the_sources():
    model = make_model(style_nc=2)
    L = model.cfg.n_past
    sources, styles = make_sources(4), make_sources(4, nc=2, seed=9)
    outputs = list(generate(model, sources, styles=styles))
    with torch.no_grad():
        t = 3
        expected = model(window(sources, t, L + 1, True), window(outputs, t, L, False),
                         style=window(styles, t, L + 1, True))
    assert torch.equal(outputs[t], expected.frame.clamp(-1, 1))
    with pytest.raises(ValueError, match="takes style features"):
        StreamingSampler(model).step(sources[0])


def test_per_frame_model_streams_too():
    model = make_model(use_flow=False)
    sources = make_sources(3)
    outputs = list(generate(model, sources))
    with torch.no_grad():
        expected = model(window(sources, 2, 3, True), None)
    assert torch.equal(outputs[2], expected.frame.clamp(-1, 1))


def test_memory_is_flat_over_1000_frames():
    """Measured: RSS growth between frame 200 and frame 1000 at 64x64 stays small (no per-frame leak)."""
    torch.manual_seed(0)
    model = Vid2VidGenerator(GeneratorConfig(input_nc=3, ngf=4, n_downsample=2, n_blocks=2, norm="none")).eval()
    sampler = StreamingSampler(model)
    source = torch.rand(3, 64, 64) * 2 - 1
    process = psutil.Process()
    rss = {}
    for t in range(1000):
        sampler.step(source)
        if t + 1 in (200, 1000):
            gc.collect()
            rss[t + 1] = process.memory_info().rss
        assert len(sampler.sources) <= 2 and len(sampler.outputs) <= 2
    growth_mb = (rss[1000] - rss[200]) / 2**20
    print(f"RSS at frame 200: {rss[200] / 2**20:.1f} MiB, at frame 1000: {rss[1000] / 2**20:.1f} MiB, "
          f"growth {growth_mb:+.2f} MiB")
    assert growth_mb < 20, f"memory grew by {growth_mb:.1f} MiB over 800 frames"
    assert len(sampler.sources) == len(sampler.outputs) == 2 and sampler.frame_index == 1000


@pytest.mark.slow
def test_compiled_step_matches_the_eager_model_on_the_same_windows():
    """compile=True: the steady-state step goes through torch.compile (C++ kernels here; CUDA graphs on a card);
    each frame equals the eager network given the same history within float rounding, warm-up frames exactly."""
    if not cpp_compiler_found():
        pytest.skip("torch.compile on a CPU needs a C++ compiler; without one the sampler says so (next test)")
    model = make_model()
    L = model.cfg.n_past
    sources = make_sources(L + 4)
    sampler = StreamingSampler(model, compile=True)
    outputs = [sampler.step(s) for s in sources]
    assert sampler._steady is not model
    with torch.no_grad():
        for t in range(len(sources)):
            src = window(sources, t, L + 1, include_current=True)
            prev = None if t == 0 else window(outputs, t, L, include_current=False)
            expected = model(src, prev, force_hallucinate=t < L).frame.clamp(-1, 1)
            if t < L:
                assert torch.equal(outputs[t], expected), t
            else:
                torch.testing.assert_close(outputs[t], expected, atol=1e-4, rtol=0)


def test_compile_without_a_compiler_says_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler .*apt install g\\+\\+.*without compile"):
        StreamingSampler(make_model(), compile=True)
