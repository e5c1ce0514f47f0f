"""VGG19 feature extractor for the perceptual loss, defined here (no torchvision dependency).

The module reproduces the layout of torchvision's ``vgg19().features`` (configuration "E", no batch
norm), so torchvision's ImageNet checkpoint ``vgg19-dcbb9e9d.pth`` (or a ``.safetensors`` copy with
the same keys) loads with strict checking of its ``features.N.weight/bias`` keys; ``classifier.*``
keys are ignored.  Outputs are the activations at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1.

Weights are never downloaded here.  ``find_vgg19_weights`` looks in ``$V2V_VGG19`` and the torch hub
cache; ``require_vgg19`` turns "not found" into an error explaining how to get them or opt out.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

ENV_VAR = "V2V_VGG19"
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
# Layer widths of VGG19 ("E"); "M" = 2x2 max-pool.  Index i of the Sequential follows from this list.
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# features[a:b] slices ending right after relu1_1 (idx 1), relu2_1 (6), relu3_1 (11), relu4_1 (20), relu5_1 (29)
_SLICE_ENDS = (2, 7, 12, 21, 30)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

HOW_TO_GET = (
    f"get torchvision's ImageNet VGG19 weights ({TORCHVISION_FILE}, e.g. "
    f"https://download.pytorch.org/models/{TORCHVISION_FILE}) and set {ENV_VAR}=/path/to/file "
    f"(.pth or a .safetensors with the same keys) or put it in <torch hub dir>/checkpoints/; "
    f"or opt out of the perceptual loss by passing vgg=None (LossWeights.vgg is then unused)"
)


def _norm_buffers() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)


class VGG19Features(nn.Module):
    """Frozen VGG19 trunk: forward(x ``[B, 3, H, W]`` in [-1, 1]) -> 5 maps (relu1_1 .. relu5_1)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_nc = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                # inplace=False: a returned relu output must not be overwritten by a later layer
                layers += [nn.Conv2d(in_nc, v, 3, padding=1), nn.ReLU(inplace=False)]
                in_nc = v
        self.features = nn.Sequential(*layers)  # same indices as torchvision, hence the same state-dict keys
        # Not persistent: the state dict stays exactly torchvision's feature keys.
        mean, std = _norm_buffers()
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        # Always eval: a parent's .train() must not change a frozen feature extractor.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std  # [-1, 1] -> ImageNet normalisation
        out = []
        start = 0
        for end in _SLICE_ENDS:
            x = self.features[start:end](x)
            out.append(x)
            start = end
        return out


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix in (".pth", ".pt", ".bin"):
        try:
            # weights_only: tensors and plain containers only, never arbitrary unpickling
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (pickle errors come in many types)
            raise ValueError(f"VGG19 weights {path}: cannot be read as a weights-only torch file ({e})") from e
        if not isinstance(state, dict):
            raise ValueError(f"VGG19 weights {path}: expected a state dict, got {type(state).__name__}")
        return state
    raise ValueError(f"VGG19 weights {path}: unsupported file type {path.suffix!r} (use .safetensors or .pth)")


def load_vgg19(path: str | os.PathLike, device: torch.device | str = "cpu") -> VGG19Features:
    """Build ``VGG19Features`` from a torchvision-format state dict (``.safetensors`` or ``.pth``).

    Raises:
        FileNotFoundError: no file at ``path`` (the message says how to get one).
        ValueError: unreadable file, or ``features.*`` keys missing, unexpected or mis-shaped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG19 weights not found at {path}: {HOW_TO_GET}")
    state = _read_state_dict(path)
    with torch.device("meta"):  # shapes only: skips initialising 20 M parameters that are overwritten anyway
        model = VGG19Features()
    expected = model.state_dict()
    feats = {k: v for k, v in state.items() if k.startswith("features.")}  # classifier.* ignored
    missing = sorted(set(expected) - set(feats))
    unexpected = sorted(set(feats) - set(expected))
    bad_shape = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in feats.items()
        if k in expected and (not isinstance(v, torch.Tensor) or v.shape != expected[k].shape)
    ]
    if missing or unexpected or bad_shape:
        raise ValueError(
            f"VGG19 weights {path} do not match torchvision's vgg19 'features' layout: "
            f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}, "
            f"wrong shape {bad_shape[:6]}; {HOW_TO_GET}"
        )
    model.load_state_dict({k: v.float() for k, v in feats.items()}, strict=True, assign=True)
    model.mean, model.std = _norm_buffers()  # non-persistent buffers are not in the file: rebuild off meta
    return model.requires_grad_(False).to(device)


def find_vgg19_weights() -> Path | None:
    """``$V2V_VGG19`` if set, else ``<torch hub dir>/checkpoints/vgg19-dcbb9e9d.pth`` if present, else None.

    A set but dangling ``$V2V_VGG19`` raises instead of silently falling back.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"{ENV_VAR}={env} does not point to a file: {HOW_TO_GET}")
        return p
    p = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
    return p if p.is_file() else None


def require_vgg19(path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> VGG19Features:
    """``load_vgg19(path or find_vgg19_weights())``; raises FileNotFoundError with instructions if absent."""
    found = Path(path) if path is not None else find_vgg19_weights()
    if found is None:
        raise FileNotFoundError(f"VGG19 weights not found (looked in ${ENV_VAR} and the torch hub cache): {HOW_TO_GET}")
    return load_vgg19(found, device)
