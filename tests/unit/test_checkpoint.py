"""v2v.model.checkpoint: one safetensors file = weights + config; strict, pickle-free loading; atomic writes."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from v2v.model import checkpoint
from v2v.model.checkpoint import (CheckpointError, load_generator, read_config, read_metadata, save_generator,
                            training_frame_size)
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator

TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1, fg_n_blocks=1)
CONFIGS = {
    "rgb": GeneratorConfig(input_nc=3, **TINY),
    "labels_fg_2scales": GeneratorConfig(input_nc=6, label_nc=5, n_scales=2, foreground=True, fg_label_ids=(1, 3), **TINY),
    "no_flow_batchnorm": GeneratorConfig(input_nc=3, use_flow=False, norm="batch", **TINY),
    "style": GeneratorConfig(input_nc=3, style_nc=3, **TINY),
}



def make_model(cfg: GeneratorConfig, seed: int = 0) -> Vid2VidGenerator:
    torch.manual_seed(seed)
    model = Vid2VidGenerator(cfg)
    with torch.no_grad():  # perturb so BN buffers etc. are not just defaults
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model.eval()


def run(model: Vid2VidGenerator, seed: int = 1):
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    h = w = 4 * cfg.size_multiple
    L = cfg.n_past
    sources = torch.rand(1, L + 1, cfg.input_nc, h, w, generator=g)
    prev = torch.rand(1, L, 3, h, w, generator=g) * 2 - 1
    style = torch.rand(1, L + 1, cfg.style_nc, h, w, generator=g) if cfg.style_nc else None
    with torch.no_grad():
        return model(sources, prev, style=style)


def rewrite(path, *, metadata=None, tensors=None):
    """Rewrite a saved file with other metadata and/or tensors (test helper, not atomic)."""
    meta = read_metadata(path)
    data = load_file(str(path))
    save_file(tensors if tensors is not None else data, str(path), metadata=metadata if metadata is not None else meta)


@pytest.fixture
def saved(tmp_path):
    model = make_model(CONFIGS["rgb"])
    path = save_generator(model, tmp_path / "g.safetensors")
    return model, path


# ---- round trip -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_round_trip_is_bit_exact(tmp_path, name):
    model = make_model(CONFIGS[name])
    path = save_generator(model, tmp_path / f"{name}.safetensors")
    loaded = load_generator(path)
    assert loaded.cfg == model.cfg
    assert not loaded.training
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    out_a, out_b = run(model), run(loaded)
    assert torch.equal(out_a.frame, out_b.frame)
    assert torch.equal(out_a.hallucinated, out_b.hallucinated)


def test_loading_a_file_leaves_torch_dynamo_unimported(saved):
    """The checks build the networks on the meta device, where ``Tensor.normal_`` (the weights' init) imported
    torch._dynamo: 1.3 s of every CLI run on a 2-core CPU, for values that do not exist there."""
    import subprocess
    import sys

    _, path = saved
    code = ("import sys; from v2v.model.checkpoint import load_generator; load_generator(sys.argv[1]); "
            "print('torch._dynamo' in sys.modules)")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300,
                          cwd=repo)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"


def test_meta_build_skips_init_and_cpu_build_keeps_it():
    with torch.device("meta"):
        meta = Vid2VidGenerator(CONFIGS["rgb"])
    assert all(p.is_meta for p in meta.parameters())
    torch.manual_seed(0)
    model = Vid2VidGenerator(CONFIGS["rgb"])
    conv = model.scales[0].source_encoder[0][1]
    assert 0.01 < conv.weight.std().item() < 0.03 and torch.count_nonzero(conv.bias) == 0


def test_metadata_layout_and_extras(tmp_path):
    model = make_model(CONFIGS["rgb"])
    path = save_generator(model, tmp_path / "g.safetensors",
                          extra_metadata={"v2v.task": "sketch", "v2v.style_gmm": json.dumps({"k": 3})})
    meta = read_metadata(path)
    assert meta["format"] == "pt"
    assert meta["v2v.format_version"] == "1"
    assert meta["v2v.kind"] == "generator"
    assert GeneratorConfig.from_dict(json.loads(meta["v2v.config"])) == model.cfg
    assert meta["v2v.task"] == "sketch" and json.loads(meta["v2v.style_gmm"]) == {"k": 3}
    assert read_config(path) == model.cfg


def test_extra_metadata_cannot_override_reserved_keys(tmp_path):
    model = make_model(CONFIGS["rgb"])
    with pytest.raises(ValueError, match="reserved"):
        save_generator(model, tmp_path / "g.safetensors", extra_metadata={"v2v.config": "{}"})
    with pytest.raises(ValueError, match="str to str"):
        save_generator(model, tmp_path / "g.safetensors", extra_metadata={"v2v.task": 3})
    assert not list(tmp_path.iterdir())


def test_save_unwraps_compiled_style_wrappers(tmp_path):
    model = make_model(CONFIGS["rgb"])

    class Wrapper(torch.nn.Module):  # DDP / accelerate style: .module holds the generator
        def __init__(self, inner):
            super().__init__()
            self.module = inner

    path = save_generator(Wrapper(model), tmp_path / "g.safetensors")
    assert torch.equal(run(load_generator(path)).frame, run(model).frame)


def test_save_needs_a_generator(tmp_path):
    with pytest.raises(TypeError, match="Vid2VidGenerator"):
        save_generator(torch.nn.Linear(2, 2), tmp_path / "g.safetensors")


# ---- refusing bad files -----------------------------------------------------------------------------
@pytest.fixture
def no_unpickling(monkeypatch):
    """Any attempt to unpickle fails the test loudly."""
    def boom(*args, **kwargs):
        raise AssertionError("checkpoint loading must never unpickle")

    class Unpickler:
        def __init__(self, *args, **kwargs):
            boom()

    monkeypatch.setattr(pickle, "Unpickler", Unpickler)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(torch, "load", boom)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy_pickle"])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_pickled_checkpoint_is_refused_without_unpickling(tmp_path, zip_format, suffix, request):
    model = make_model(CONFIGS["rgb"])
    path = tmp_path / f"model{suffix}"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=zip_format)
    request.getfixturevalue("no_unpickling")
    for call in (load_generator, read_metadata, read_config):
        with pytest.raises(CheckpointError) as info:
            call(path)
        message = str(info.value)
        assert str(path) in message and "not a safetensors file" in message
        assert "pickled PyTorch checkpoint" in message and "convert" in message


@pytest.mark.parametrize("keep", ["4_bytes", "half_header", "half_data", "all_but_one"])
def test_truncated_file_is_named(saved, keep):
    _, path = saved
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    n = {"4_bytes": 4, "half_header": 8 + header_len // 2,
         "half_data": 8 + header_len + (len(data) - 8 - header_len) // 2, "all_but_one": len(data) - 1}[keep]
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_generator(path)
    assert str(path) in str(info.value)


def test_empty_and_garbage_files(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator(empty)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(64) + b"x" * 1000)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_generator(garbage)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_generator(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_generator(tmp_path)


def test_foreign_safetensors_is_not_a_generator(tmp_path):
    path = tmp_path / "sd15.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a vid2vid generator"):
        load_generator(path)
    save_file({"w": torch.zeros(2)}, str(path))  # no metadata at all
    with pytest.raises(CheckpointError, match="not a vid2vid generator"):
        load_generator(path)


def test_unsupported_format_version(saved):
    _, path = saved
    rewrite(path, metadata={**read_metadata(path), "v2v.format_version": "99"})
    with pytest.raises(CheckpointError, match="format version '99'"):
        load_generator(path)


def test_other_kind_is_refused(saved):
    _, path = saved
    rewrite(path, metadata={**read_metadata(path), "v2v.kind": "discriminator"})
    with pytest.raises(CheckpointError, match="not a 'generator'"):
        load_generator(path)


@pytest.mark.parametrize("config, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({**CONFIGS["rgb"].to_dict(), "n_frames_G": 3}), "n_frames_G"),
    (json.dumps({**CONFIGS["rgb"].to_dict(), "n_scales": 7}), "n_scales"),
])
def test_bad_config_metadata(saved, config, match):
    _, path = saved
    rewrite(path, metadata={**read_metadata(path), "v2v.config": config})
    with pytest.raises(CheckpointError, match=match):
        load_generator(path)


def test_config_that_does_not_match_the_weights_names_the_tensors(saved):
    _, path = saved
    wrong = CONFIGS["rgb"].with_(ngf=8).to_dict()
    rewrite(path, metadata={**read_metadata(path), "v2v.config": json.dumps(wrong)})
    with pytest.raises(CheckpointError, match=r"mis-shaped tensors: .*image_head.*weight \(file \[3, 4, 7, 7\], config \[3, 8, 7, 7\]\)") as info:
        load_generator(path)
    assert str(path) in str(info.value)


def test_missing_and_unexpected_tensors_are_named(saved):
    model, path = saved
    tensors = load_file(str(path))
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    tensors["scales.9.extra.weight"] = torch.zeros(3)
    rewrite(path, tensors=tensors)
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert f"missing tensors: {dropped}" in message
    assert "unexpected tensors: scales.9.extra.weight" in message


def test_flow_model_file_does_not_load_as_per_frame_model(saved):
    _, path = saved
    rewrite(path, metadata={**read_metadata(path), "v2v.config": json.dumps(CONFIGS["rgb"].with_(use_flow=False).to_dict())})
    with pytest.raises(CheckpointError, match="unexpected tensors: flow_head") as info:
        load_generator(path)
    assert "source_encoder.0.1.weight (file [4, 9, 7, 7], config [4, 3, 7, 7])" in str(info.value)


# ---- atomic writes ------------------------------------------------------------------------------------
def test_failed_write_keeps_the_previous_file(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()
    real_save_file = checkpoint.save_file

    def half_then_fail(tensors, filename, metadata=None):
        real_save_file(tensors, filename, metadata=metadata)
        data = open(filename, "rb").read()
        with open(filename, "wb") as f:  # a crash halfway through writing
            f.write(data[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint, "save_file", half_then_fail)
    other = make_model(CONFIGS["rgb"], seed=5)
    with pytest.raises(OSError, match="simulated"):
        save_generator(other, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert torch.equal(run(load_generator(path)).frame, run(model).frame)


def test_failed_first_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        save_generator(make_model(CONFIGS["rgb"]), tmp_path / "g.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_save_overwrites_atomically_and_creates_folders(tmp_path):
    path = tmp_path / "sub" / "dir" / "g.safetensors"
    save_generator(make_model(CONFIGS["rgb"], seed=1), path)
    second = make_model(CONFIGS["rgb"], seed=2)
    save_generator(second, path)
    assert torch.equal(run(load_generator(path)).frame, run(second).frame)
    assert [p.name for p in path.parent.iterdir()] == ["g.safetensors"]


def test_training_frame_size_is_read_from_the_record_and_tolerates_none_or_damage(tmp_path):
    model = Vid2VidGenerator(GeneratorConfig(input_nc=3, **TINY))
    for record, expect in ((json.dumps({"step": 1, "frame_size": [120, 160]}), (120, 160)),
                           (json.dumps({"step": 1}), None), ("not json", None),
                           (json.dumps({"frame_size": "big"}), None), (json.dumps({"frame_size": [0, 9]}), None)):
        path = save_generator(model, tmp_path / "m.safetensors", extra_metadata={"v2v.train": record})
        assert training_frame_size(path) == expect, record
    assert training_frame_size(save_generator(model, tmp_path / "bare.safetensors")) is None



def test_style_encoder_rides_along_checked_like_the_generator(tmp_path):
    from v2v.model.checkpoint import STYLE_ENCODER_KEY, load_style_encoder
    from v2v.model.style import StyleEncoder

    model = make_model(CONFIGS["style"])
    torch.manual_seed(3)
    encoder = StyleEncoder(3, ngf=4, n_downsample=2).eval()
    path = save_generator(model, tmp_path / "s.safetensors", style_encoder=encoder)
    assert json.loads(read_metadata(path)[STYLE_ENCODER_KEY])["ngf"] == 4
    loaded = load_generator(path)                              # the generator loads as before, E left aside
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    again = load_style_encoder(path)
    assert again.config == encoder.config and not again.training
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), encoder.state_dict().values()))
    # metadata rewrites keep it
    checkpoint.update_metadata(path, {"v2v.note": "x"})
    assert load_style_encoder(path).config == encoder.config

    # metadata copied from a file with E does not make a file without it claim one
    copied = {k: v for k, v in read_metadata(path).items() if k not in checkpoint.RESERVED_KEYS}
    plain = save_generator(model, tmp_path / "plain.safetensors", extra_metadata=copied)
    assert STYLE_ENCODER_KEY not in read_metadata(plain) and load_generator(plain).cfg.style_nc == 3
    with pytest.raises(CheckpointError, match="carries no style encoder"):
        load_style_encoder(plain)
    with pytest.raises(ValueError, match="3-d styles but the generator takes style_nc=0"):
        save_generator(make_model(CONFIGS["rgb"]), tmp_path / "bad.safetensors", style_encoder=encoder)

    # E's tensors are under the checksum, and its record is checked
    tensors, metadata = load_file(str(path)), read_metadata(path)
    name = next(k for k in tensors if k.startswith("style_encoder."))
    tensors[name] = tensors[name] + 1
    save_file(tensors, str(tmp_path / "flipped.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="checksum"):
        load_style_encoder(tmp_path / "flipped.safetensors")
    for record, match in ((json.dumps({**encoder.config, "ngf": 0}), "ngf must be an integer"),
                          ("{", "damaged"), (json.dumps({**encoder.config, "ngf": 8}), "mis-shaped tensors")):
        save_file(load_file(str(path)), str(tmp_path / "r.safetensors"), metadata={**metadata, STYLE_ENCODER_KEY: record})
        with pytest.raises(CheckpointError, match=match):
            load_generator(tmp_path / "r.safetensors")
