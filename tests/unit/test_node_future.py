"""FuturePredict without ComfyUI, and `python -m v2v predict`, on tiny saved models (random weights)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nodes as pack_nodes
from nodes.future_predict import FuturePredict, run_predict
from v2v.cli import main as cli
from v2v.model.checkpoint import save_generator
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.pipeline import GenerateError
from v2v.sources.labels import label_video, write_id_png

TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1, fg_n_blocks=1)
K = 3


@pytest.fixture
def pair(model_dir):
    torch.manual_seed(0)
    predictor = Vid2VidGenerator(GeneratorConfig(input_nc=K, output_nc=K, label_nc=K, foreground=False, **TINY))
    record = {"v2v.train": json.dumps({"predict": True, "frame_size": [8, 12]})}   # learnt at half the size
    save_generator(predictor, model_dir / "predictor.safetensors", extra_metadata=record)
    save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=K, label_nc=K, **TINY)), model_dir / "renderer.safetensors")
    save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=4, label_nc=4, **TINY)), model_dir / "other.safetensors")
    return model_dir


def ids(n=5, h=16, w=24):
    out = np.zeros((n, h, w), np.int64)
    for t in range(n):
        out[t, :, : 4 + 3 * t] = 1
        out[t, 12:] = 2
    return out


def test_registered_and_predicts_maps_and_frames(pair):
    assert pack_nodes.NODE_CLASS_MAPPINGS["FuturePredict"] is FuturePredict
    assert FuturePredict.RETURN_TYPES == ("IMAGE", "IMAGE")
    maps, frames = FuturePredict().predict(label_video(ids(), label_nc=K), "predictor.safetensors",
                                           "renderer.safetensors", 6, 0, "cpu", "fp32")["result"]
    assert maps.shape == frames.shape == (6, 16, 24, 3)
    assert 0 <= float(frames.min()) and float(frames.max()) <= 1
    real = torch.rand(5, 16, 24, 3)
    _, seeded = run_predict(label_video(ids(), label_nc=K), "predictor.safetensors", "renderer.safetensors", 6,
                            device="cpu", observed_frames=real)
    assert not torch.equal(seeded, frames)                 # the real observed frames start the rendering
    _, last3 = run_predict(label_video(ids(), label_nc=K), "predictor.safetensors", "renderer.safetensors", 6,
                           observed=3, device="cpu", observed_frames=real)
    assert torch.equal(last3, seeded)                      # only the last frames matter


def test_wrong_models_and_inputs_are_named(pair):
    src = lambda: label_video(ids(), label_nc=K)  # noqa: E731
    with pytest.raises(GenerateError, match="renderer.safetensors is not a label-map predictor"):
        run_predict(src(), "renderer.safetensors", "renderer.safetensors", 2, device="cpu")
    with pytest.raises(GenerateError, match="3-class maps but other.safetensors takes 4"):
        run_predict(src(), "predictor.safetensors", "other.safetensors", 2, device="cpu")
    with pytest.raises(GenerateError, match="observed_frames has 2 frames but the source has 5"):
        run_predict(src(), "predictor.safetensors", "renderer.safetensors", 2, device="cpu",
                    observed_frames=torch.rand(2, 16, 24, 3))
    assert "outside" in FuturePredict.VALIDATE_INPUTS("predictor.safetensors", "", "", "/etc/passwd")


def test_cli_predicts_from_label_images(pair, tmp_path, capsys):
    folder = tmp_path / "labels"
    folder.mkdir()
    for t, m in enumerate(ids()):
        write_id_png(folder / f"{t:06d}.png", m)
    out, maps = tmp_path / "future.mp4", tmp_path / "maps.mp4"
    rc = cli(["predict", "--predictor", str(pair / "predictor.safetensors"), "--renderer",
              str(pair / "renderer.safetensors"), "--source", str(folder), "--future", "4", "--out", str(out),
              "--maps-out", str(maps), "--quiet"])
    assert rc == 0 and out.stat().st_size > 0 and maps.stat().st_size > 0
    from v2v.media.video_io import read_frames
    assert len(list(read_frames(out))) == 4
    rc = cli(["predict", "--predictor", str(pair / "renderer.safetensors"), "--renderer",
              str(pair / "renderer.safetensors"), "--source", str(folder), "--future", "4", "--out", str(out)])
    assert rc == 2 and "not a label-map predictor" in capsys.readouterr().err
