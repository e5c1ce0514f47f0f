"""Vid2VidGenerate without ComfyUI, on tiny saved models (random weights: shapes and plumbing only)."""
from __future__ import annotations

import gc
import json
import logging

import psutil
import pytest
import torch

import nodes as pack_nodes
from nodes import models
from nodes.vid2vid_generate import Vid2VidGenerate, run_generate
from v2v import pipeline
from v2v.model.checkpoint import CheckpointError, save_generator
from v2v.model.config import GeneratorConfig
from v2v.pipeline import GenerateError, check_ram, preview_indices, scale_advice
from v2v.model.generator import Vid2VidGenerator
from v2v.sources.base import tensor_source
from v2v.media.video_io import read_frames

TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1, fg_n_blocks=1)



def save_model(folder, name="tiny.safetensors", **cfg):
    torch.manual_seed(0)
    model = Vid2VidGenerator(GeneratorConfig(**{"input_nc": 3, **TINY, **cfg}))
    return save_generator(model, folder / name)


class LazyFrames:
    """Frames made on demand, like a long decoded video: nothing the size of the clip is ever held."""

    def __init__(self, n, nc, h, w):
        self.n, self.shape = n, (nc, h, w)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.rand(*self.shape, generator=torch.Generator().manual_seed(i)) * 2 - 1


def rgb_source(n=5, h=16, w=24, nc=3, kind="sketch", lazy=False):
    if lazy:
        return tensor_source(LazyFrames(n, nc, h, w), kind=kind, fps=12.0)
    g = torch.Generator().manual_seed(1)
    return tensor_source(torch.rand(n, nc, h, w, generator=g) * 2 - 1, kind=kind, fps=12.0)


def test_node_is_registered_with_its_contract():
    assert pack_nodes.NODE_CLASS_MAPPINGS["Vid2VidGenerate"] is Vid2VidGenerate
    spec = Vid2VidGenerate.INPUT_TYPES()
    assert spec["required"]["source"] == ("V2V_SOURCE",)
    assert Vid2VidGenerate.RETURN_TYPES == ("IMAGE", "STRING", "VIDEO") and Vid2VidGenerate.OUTPUT_NODE


def test_image_mode_frame_count_size_and_range(model_dir):
    save_model(model_dir)
    assert "tiny.safetensors" in models.list_models()
    out = Vid2VidGenerate().generate(rgb_source(5), "tiny.safetensors", "images", 0, "cpu", "fp32", 0, 0, "x")
    images, path, video = out["result"]
    assert video is None                       # no comfy_api here: no VIDEO type
    assert images.shape == (5, 16, 24, 3) and images.dtype == torch.float32
    assert 0 <= float(images.min()) and float(images.max()) <= 1 and path == ""
    assert float(images.std()) > 0
    # start/max_frames pick a sub-range; the same seed gives the same frames
    part = run_generate(rgb_source(5), "tiny.safetensors", "images", seed=0, start_frame=1, max_frames=2,
                        device="cpu")[0]
    assert part.shape == (2, 16, 24, 3)


def test_model_cache_reloads_only_a_changed_file(model_dir):
    path = save_model(model_dir)
    a = models.load_model(path, "cpu")
    assert models.load_model(path, "cpu") is a
    save_model(model_dir, ngf=8)  # replaced on disk: new mtime/size
    b = models.load_model(path, "cpu")
    assert b is not a and b.cfg.ngf == 8


def test_video_file_mode_writes_every_frame_with_flat_memory(model_dir, tmp_path):
    save_model(model_dir)
    images, path, ui = run_generate(rgb_source(6), "tiny.safetensors", "video_file", device="cpu",
                                    filename_prefix="runs/clip")
    video = read_frames(path)
    assert video.size == (24, 16)
    assert sum(1 for _ in video) == 6
    assert images.shape == (4, 16, 24, 3)           # the preview: 4 frames spread over the clip
    assert ui["videos"][0]["subfolder"] == "runs" and ui["videos"][0]["filename"].endswith(".mp4")
    second = run_generate(rgb_source(2), "tiny.safetensors", "video_file", device="cpu", filename_prefix="runs/clip")[1]
    assert second != path  # numbered, never overwritten


def _rss_after_frames(model, source, n_frames, tmp_path, name):
    """RSS sampled every frame while streaming ``n_frames`` frames to a file (after 20 warm-up frames)."""
    proc = psutil.Process()
    samples = []

    def progress(done, total):
        if done > 20:
            samples.append(proc.memory_info().rss)

    pipeline.generate_to_file(model, source, tmp_path / name, max_frames=n_frames, progress=progress,
                                    preview_frames=4)
    return samples


def test_streaming_memory_does_not_grow_with_length(model_dir, tmp_path):
    """300 frames at 128x96: an IMAGE batch would grow by ~44 MB; the stream must stay flat."""
    path = save_model(model_dir)
    model = models.load_model(path, "cpu")
    source = rgb_source(300, h=96, w=128, lazy=True)
    gc.collect()
    samples = _rss_after_frames(model, source, 300, tmp_path, "long.mp4")
    growth = samples[-1] - min(samples[:20])
    assert growth < 12 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 280 streamed frames"
    assert sum(1 for _ in read_frames(tmp_path / "long.mp4")) == 300


def test_ram_refusal_names_the_numbers(model_dir, monkeypatch):
    save_model(model_dir)

    class VM:
        available = 50 * 2**20  # 50 MB

    monkeypatch.setattr(psutil, "virtual_memory", lambda: VM)
    source = rgb_source(10_000, h=1024, w=2048, lazy=True)   # 10,000 frames of 2048x1024, never made
    with pytest.raises(GenerateError) as err:
        run_generate(source, "tiny.safetensors", "images", device="cpu")
    msg = str(err.value)
    assert "10000 frames at 2048x1024" in msg and "234.4 GB" in msg and "50.0 MB" in msg and "video_file" in msg
    assert check_ram(2, 16, 16, available=10 * 2**20) == 2 * 16 * 16 * 3 * 4


@pytest.mark.parametrize("case, message", [
    ("channels", "has 4 channels per frame but the model takes input_nc=3"),
    ("empty", "the source video is empty (0 frames)"),
    ("start", "start_frame is 9 but the source has 5 frames"),
    ("first_frame", "first_frame is 8x8 but the source frames are 24x16"),
    ("style", "this model has no style input"),
])
def test_bad_inputs_give_their_message(model_dir, case, message):
    save_model(model_dir)
    source, kw = rgb_source(5), {}
    if case == "channels":
        source = rgb_source(5, nc=4)
    elif case == "empty":
        source = rgb_source(5)
        source.num_frames = 0
    elif case == "start":
        kw["start_frame"] = 9
    elif case == "first_frame":
        kw["first_frame"] = torch.rand(1, 8, 8, 3)
    elif case == "style":
        kw["style"] = torch.zeros(2, 16, 24)
    with pytest.raises(GenerateError) as err:
        run_generate(source, "tiny.safetensors", "images", device="cpu", **kw)
    assert message in str(err.value)


def test_label_model_hints_how_to_load_the_labels(model_dir):
    save_model(model_dir, "labels.safetensors", input_nc=6, label_nc=5)
    source = tensor_source(torch.zeros(2, 5, 16, 16), kind="label", label_nc=5)
    with pytest.raises(GenerateError, match="label_nc=5 and instance_boundary=on"):
        run_generate(source, "labels.safetensors", "images", device="cpu")
    with pytest.raises(GenerateError, match="feed it a LabelVideoLoader source"):
        run_generate(rgb_source(2, h=16, w=16), "labels.safetensors", "images", device="cpu")


def test_first_frame_is_the_first_output(model_dir):
    save_model(model_dir)
    first = torch.rand(1, 16, 24, 3)
    images = run_generate(rgb_source(3), "tiny.safetensors", "images", device="cpu", first_frame=first)[0]
    assert torch.allclose(images[0], first, atol=1e-6)


def test_foreign_and_non_safetensors_files_are_refused(model_dir):
    torch.save({"w": torch.zeros(2)}, model_dir / "old.pth")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(model_dir / "sd.safetensors"))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        run_generate(rgb_source(2), "old.pth", "images", device="cpu")
    with pytest.raises(CheckpointError, match="not a vid2vid generator"):
        run_generate(rgb_source(2), "sd.safetensors", "images", device="cpu")
    assert "is not in the vid2vid model folders" in Vid2VidGenerate.VALIDATE_INPUTS("nope.safetensors")
    assert Vid2VidGenerate.VALIDATE_INPUTS("sd.safetensors") is True  # exists; what it holds is checked on run


def test_explicit_model_path_and_fingerprint(model_dir, tmp_path):
    (model_dir / "runs").mkdir()
    nested = save_model(model_dir / "runs", "nested.safetensors")
    images = run_generate(rgb_source(2), "", "images", device="cpu", model_path=str(nested))[0]
    assert images.shape[0] == 2
    assert run_generate(rgb_source(2), "", "images", device="cpu", model_path="runs/nested.safetensors")[0].shape[0] == 2
    before = Vid2VidGenerate.IS_CHANGED("", str(nested))
    save_model(model_dir / "runs", "nested.safetensors", ngf=8)
    assert Vid2VidGenerate.IS_CHANGED("", str(nested)) != before


def test_only_files_inside_the_model_folders_are_opened(model_dir, tmp_path):
    """An absolute path elsewhere, or a name or relative path that climbs out with '..', is refused before
    anything is read, in validation and at run time; a link a user put into the folder is followed."""
    elsewhere = save_model(tmp_path, "elsewhere.safetensors")
    for name, path in [("", str(elsewhere)), ("", "../elsewhere.safetensors"), ("../elsewhere.safetensors", ""),
                       (str(elsewhere), "")]:
        message = Vid2VidGenerate.VALIDATE_INPUTS(name, path)
        assert isinstance(message, str) and "outside the vid2vid model folders" in message, (name, path, message)
        assert "extra_model_paths.yaml" in message
        with pytest.raises(CheckpointError, match="outside the vid2vid model folders"):
            run_generate(rgb_source(2), name, "images", device="cpu", model_path=path)
    (model_dir / "linked.safetensors").symlink_to(elsewhere)
    assert Vid2VidGenerate.VALIDATE_INPUTS("linked.safetensors") is True
    assert run_generate(rgb_source(2), "linked.safetensors", "images", device="cpu")[0].shape[0] == 2


def test_preview_indices_spread_over_the_clip():
    assert preview_indices(10, 4) == [0, 3, 6, 9]
    assert preview_indices(3, 4) == [0, 1, 2]
    assert preview_indices(0, 4) == []


def test_progress_is_called_per_frame_and_can_interrupt(model_dir):
    path = save_model(model_dir)
    model = models.load_model(path, "cpu")
    calls = []

    class Interrupted(Exception):
        pass

    def progress(done, total):
        calls.append((done, total))
        if done == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        pipeline.generate_images(model, rgb_source(6), progress=progress)
    assert calls == [(1, 6), (2, 6), (3, 6)]


def test_a_source_far_from_the_training_size_is_warned_about(model_dir, caplog):
    torch.manual_seed(0)
    model = Vid2VidGenerator(GeneratorConfig(**{"input_nc": 3, **TINY}))
    save_generator(model, model_dir / "sized.safetensors",
                   extra_metadata={"v2v.train": json.dumps({"step": 1, "frame_size": [120, 160]})})
    with caplog.at_level(logging.WARNING, logger="vid2vid"):
        run_generate(rgb_source(2, h=16, w=24), "sized.safetensors", "images", device="cpu")
    assert "source frames are 24x16 (WxH) but this model was trained on 160x120 frames" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vid2vid"):    # resized to its scale: nothing to warn about
        images = run_generate(rgb_source(2, h=16, w=24), "sized.safetensors", "images", device="cpu", resize="model")[0]
    assert "trained on" not in caplog.text and images.shape == (2, 114, 170, 3)   # 160x120's area at 3:2
    caplog.clear()
    save_model(model_dir)
    with caplog.at_level(logging.WARNING, logger="vid2vid"):
        run_generate(rgb_source(2, h=16, w=24), "tiny.safetensors", "images", device="cpu")   # no record: quiet
    assert "trained on" not in caplog.text


def test_scale_advice_only_beyond_the_tolerance():
    assert scale_advice((120, 160), None) is None
    assert scale_advice((120, 160), (120, 160)) is None
    assert scale_advice((96, 256), (120, 160)) is None                 # other shape, similar area: fine
    far = scale_advice((480, 640), (120, 160))
    assert far and "640x480" in far and "160x120" in far and "resize" in far
    assert scale_advice((48, 64), (120, 160))                           # much smaller warns too


def test_odd_sizes_are_padded_and_cropped_back(model_dir):
    """A size that is not a multiple of the model's is padded (reflect) and the output cropped back to it."""
    save_model(model_dir)
    for h, w in ((15, 25), (5, 7), (109, 256)):
        images = run_generate(rgb_source(3, h=h, w=w), "tiny.safetensors", "images", device="cpu")[0]
        assert images.shape == (3, h, w, 3) and float(images.std()) > 0


def test_shot_cuts_restart_the_history(model_dir):
    """A listed cut restarts the sampler there: the frames after it equal a fresh run started at the cut, and
    differ without the cut (the first shot's frames bleed into the second through the warped history)."""
    save_model(model_dir)
    source = rgb_source(6)
    cut = run_generate(source, "tiny.safetensors", "images", device="cpu", shot_cuts="off", cut_frames="3")[0]
    fresh = run_generate(source, "tiny.safetensors", "images", device="cpu", shot_cuts="off", start_frame=3)[0]
    plain = run_generate(source, "tiny.safetensors", "images", device="cpu", shot_cuts="off")[0]
    assert torch.equal(cut[3:], fresh) and torch.equal(cut[:3], plain[:3])
    assert not torch.equal(plain[3:], fresh)
    with pytest.raises(ValueError, match="cut frame"):
        run_generate(source, "tiny.safetensors", "images", device="cpu", cut_frames="3, x")


def test_compile_runs_the_steady_frames_through_the_compiled_step(model_dir, monkeypatch):
    """The node's compile input reaches the sampler: frames L.. go through v2v.sampler.compiled_step's network
    (here a counting stand-in; the real compile: tests/unit/test_sampler.py), the output is unchanged."""
    import v2v.sampler
    save_model(model_dir)
    calls = []

    def counting(model, device):
        return lambda *args, **kwargs: calls.append(device.type) or model(*args, **kwargs)

    monkeypatch.setattr(v2v.sampler, "compiled_step", counting)
    source = rgb_source(6)
    compiled = run_generate(source, "tiny.safetensors", "images", device="cpu", shot_cuts="off", compile=True)[0]
    plain = run_generate(source, "tiny.safetensors", "images", device="cpu", shot_cuts="off")[0]
    L = GeneratorConfig(**{"input_nc": 3, **TINY}).n_past
    assert torch.equal(compiled, plain) and calls == ["cpu"] * (6 - L)


def test_seed_draws_the_style_of_a_style_model_and_nothing_else(model_dir):
    """With a style model and no V2V_STYLE connected, the seed draws every instance's style from the model's
    mixtures: same seed, same video; another seed, another video.  Models without a style input ignore it."""
    from v2v.model.style import STYLE_GMM_KEY
    from v2v.sources.labels import label_video

    mixtures = {str(c): {"weights": [1.0], "means": [[0.3 * c - 0.3] * 2], "covariances": [[0.2] * 2]} for c in range(3)}
    torch.manual_seed(0)
    model = Vid2VidGenerator(GeneratorConfig(input_nc=4, label_nc=3, style_nc=2, **TINY))
    save_generator(model, model_dir / "style.safetensors", extra_metadata={STYLE_GMM_KEY: json.dumps(mixtures)})
    save_generator(model, model_dir / "nomix.safetensors")
    ids = torch.zeros(4, 16, 24, dtype=torch.long)
    ids[:, :, 12:] = 1
    ids[:, 4:10, 3:8] = 2
    labels = lambda: label_video(ids.numpy(), label_nc=3, instances="labels")  # noqa: E731
    run = lambda seed, name="style.safetensors": run_generate(labels(), name, "images", seed=seed, device="cpu")[0]  # noqa: E731
    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(GenerateError, match="no style mixtures.*connect a V2V_STYLE"):
        run(1, "nomix.safetensors")
    save_model(model_dir)                                    # a model without a style input: the seed changes nothing
    assert torch.equal(run_generate(rgb_source(3), "tiny.safetensors", "images", seed=1, device="cpu")[0],
                       run_generate(rgb_source(3), "tiny.safetensors", "images", seed=2, device="cpu")[0])
