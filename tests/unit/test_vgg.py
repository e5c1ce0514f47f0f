"""VGG19 layout, torchvision-format loading (safetensors / weights-only .pth), discovery and errors."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from v2v.model.losses import vgg_loss
from v2v.model.vgg import ENV_VAR, TORCHVISION_FILE, VGG19Features, find_vgg19_weights, load_vgg19, require_vgg19

# torchvision vgg19 conv indices in `features` (conv before each ReLU): 16 convs
CONV_IDX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


class _NotAWeight:  # pickled by full torch.save; weights_only loading must refuse it
    pass


@pytest.fixture(scope="module")
def torchvision_state():
    """A random-init state dict in torchvision's key format, classifier keys included."""
    torch.manual_seed(0)
    sd = {k: v.clone() for k, v in VGG19Features().state_dict().items()}
    sd["classifier.0.weight"] = torch.randn(8, 4)  # real file: [4096, 25088]; must be ignored
    sd["classifier.0.bias"] = torch.randn(8)
    return sd


@pytest.fixture(scope="module")
def files(torchvision_state, tmp_path_factory):
    d = tmp_path_factory.mktemp("vgg")
    st, pth = d / "vgg19.safetensors", d / TORCHVISION_FILE
    save_file(torchvision_state, str(st))
    torch.save(torchvision_state, pth)
    return st, pth


def test_layout_matches_torchvision_keys():
    keys = set(VGG19Features().state_dict())
    assert keys == {f"features.{i}.{p}" for i in CONV_IDX for p in ("weight", "bias")}


@pytest.mark.parametrize("which", [0, 1], ids=["safetensors", "pth"])
def test_round_trip(files, torchvision_state, which):
    model = load_vgg19(files[which])
    for k, v in model.state_dict().items():
        assert torch.equal(v, torchvision_state[k]), k
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training
    model.train()
    assert not model.training  # stays frozen in eval mode


def test_outputs_relu_x_1_shapes(files):
    model = load_vgg19(files[0])
    feats = model(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    assert all((f >= 0).all() for f in feats)  # post-ReLU


def test_outputs_are_relu1_1_to_relu5_1(files):
    model = load_vgg19(files[0])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    z = (x + 1) / 2
    z = (z - model.mean) / model.std
    relu_idx = (1, 6, 11, 20, 29)  # torchvision indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
    for got, i in zip(model(x), relu_idx):
        assert isinstance(model.features[i], torch.nn.ReLU)
        assert torch.allclose(got, model.features[: i + 1](z), atol=1e-5), i


def test_input_normalisation_is_imagenet(files):
    model = load_vgg19(files[0])
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = model.features[:2](((x + 1) / 2 - mean) / std)
    assert torch.allclose(model(x)[0], expected, atol=1e-6)


def test_vgg_loss_with_real_layout(files):
    model = load_vgg19(files[0])
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert vgg_loss(model, x, x).item() == 0.0
    y = x.flip(-1).requires_grad_(True)
    loss = vgg_loss(model, y, x)
    assert loss.item() > 0
    loss.backward()
    assert y.grad.abs().sum() > 0


def test_missing_file_error_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_vgg19(tmp_path / "nope.safetensors")
    msg = str(e.value)
    assert "nope.safetensors" in msg and ENV_VAR in msg and "vgg=None" in msg


def test_missing_key_error_names_file_and_key(torchvision_state, tmp_path):
    sd = dict(torchvision_state)
    del sd["features.34.weight"]
    path = tmp_path / "partial.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ValueError, match=r"partial\.safetensors.*missing \['features\.34\.weight'\]"):
        load_vgg19(path)


def test_wrong_shape_error(torchvision_state, tmp_path):
    sd = dict(torchvision_state)
    sd["features.0.weight"] = torch.zeros(64, 1, 3, 3)  # grayscale first layer
    path = tmp_path / "gray.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"gray\.pth.*features\.0\.weight: file \(64, 1, 3, 3\)"):
        load_vgg19(path)


def test_unexpected_feature_key_error(torchvision_state, tmp_path):
    sd = dict(torchvision_state)
    sd["features.1.weight"] = torch.zeros(64)  # e.g. a vgg19_bn checkpoint has norm params here
    path = tmp_path / "bn.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ValueError, match=r"unexpected \['features\.1\.weight'\]"):
        load_vgg19(path)


def test_pth_is_loaded_weights_only(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _NotAWeight()}, path)
    with pytest.raises(ValueError, match=r"evil\.pth.*weights-only"):
        load_vgg19(path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "vgg.npz"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_vgg19(path)


def test_find_weights_env_then_hub_cache(files, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert find_vgg19_weights() is None
    with pytest.raises(FileNotFoundError, match=r"vgg=None"):
        require_vgg19()
    cached = tmp_path / "hub" / "checkpoints" / TORCHVISION_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(files[1].read_bytes())
    assert find_vgg19_weights() == cached
    monkeypatch.setenv(ENV_VAR, str(files[0]))
    assert find_vgg19_weights() == files[0]
    assert isinstance(require_vgg19(), VGG19Features)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone.pth"))
    with pytest.raises(FileNotFoundError, match=r"gone\.pth"):
        find_vgg19_weights()
