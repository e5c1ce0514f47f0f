"""Multimodal synthesis (paper Sec. 3, "Multimodal synthesis"): the image encoder E and
instance-wise average pooling.  E maps a real frame to a d-channel map; averaging it inside every
instance makes all pixels of one object share one style vector, which the generator takes as extra
source channels.  At test time vectors are sampled per class from a Gaussian mixture (fitted by the trainer).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .layers import decoder_trunk, encoder, init_weights, output_conv


class StyleEncoder(nn.Module):
    """E: image [B, 3, H, W] in [-1, 1] -> features [B, style_nc, H, W] in [-1, 1] (before instance pooling)."""

    def __init__(self, style_nc: int = 3, *, in_nc: int = 3, ngf: int = 16, n_downsample: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        self.style_nc = style_nc
        # the constructor's arguments, stored in a model file beside E's weights so it can be rebuilt
        self.config = self.check_config({"style_nc": style_nc, "in_nc": in_nc, "ngf": ngf,
                                         "n_downsample": n_downsample, "norm": norm})
        self.body = nn.Sequential(
            encoder(in_nc, ngf, n_downsample, 0, norm),
            decoder_trunk(ngf, n_downsample, 0, norm),
            output_conv(ngf, style_nc),
            nn.Tanh(),
        )
        init_weights(self)

    @staticmethod
    def check_config(config: dict) -> dict:
        """The constructor's arguments, checked (a ValueError names the bad one): a model file's record of E."""
        if not isinstance(config, dict) or set(config) != {"style_nc", "in_nc", "ngf", "n_downsample", "norm"}:
            raise ValueError("expected the keys style_nc, in_nc, ngf, n_downsample, norm; got "
                             f"{sorted(config) if isinstance(config, dict) else type(config).__name__}")
        limits = {"style_nc": (1, 64), "in_nc": (1, 4), "ngf": (1, 256), "n_downsample": (0, 6)}
        for key, (lo, hi) in limits.items():
            value = config[key]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(f"{key} must be an integer in {lo}..{hi}, got {value!r}")
        if config["norm"] not in ("instance", "batch", "none"):
            raise ValueError(f"norm must be instance, batch or none, got {config['norm']!r}")
        return dict(config)

    @property
    def size_multiple(self) -> int:
        """Frame sides must be multiples of this (the encoder halves them ``n_downsample`` times)."""
        return 2 ** self.config["n_downsample"]

    def forward(self, image: torch.Tensor, instance_map: torch.Tensor) -> torch.Tensor:
        return instance_average(self.body(image), instance_map)


def instance_average(features: torch.Tensor, instance_map: torch.Tensor) -> torch.Tensor:
    """Replace every pixel's feature by the mean over its instance.

    features [B, C, H, W]; instance_map [B, 1, H, W] of integer ids (any dtype holding integers).
    Differentiable w.r.t. ``features``.
    """
    b, c, h, w = features.shape
    if instance_map.shape != (b, 1, h, w):
        raise ValueError(f"instance_map must be [B, 1, H, W] = {(b, 1, h, w)}, got {tuple(instance_map.shape)}")
    ids = instance_map.reshape(b, h * w).long()
    out = []
    for feats, inst in zip(features.reshape(b, c, h * w), ids):
        _, compact = torch.unique(inst, return_inverse=True)            # [HW] ids 0..n-1
        n = int(compact.max()) + 1
        sums = feats.new_zeros(c, n).index_add_(1, compact, feats)
        counts = torch.bincount(compact, minlength=n).to(feats.dtype)
        out.append((sums / counts)[:, compact])
    return torch.stack(out).reshape(b, c, h, w)


def clip_style(encoder, target, instance, frames: list[int]):
    """Instance-averaged style features of the given frames: [B, len(frames), d, H, W] (None without an encoder)."""
    if encoder is None:
        return None
    b, n = target.shape[0], len(frames)
    feats = encoder(target[:, frames].flatten(0, 1), instance[:, frames].flatten(0, 1))
    return feats.view(b, n, *feats.shape[1:])


def fit_style_gmm(encoder, dataset, label_nc: int, n_components: int, device, max_items: int = 64) -> dict:
    """Per-class Gaussian mixtures (scikit-learn) of the instance-averaged style vectors of training frames
    (``dataset[i]``: tensors ``target``, ``instance``, ``source`` of one clip).

    Returns a JSON-able dict {class_id: {"weights", "means", "covariances"}} (diagonal covariances)."""
    from sklearn.mixture import GaussianMixture

    per_class: dict[int, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(min(len(dataset), max_items)):
            item = dataset[i]
            target, inst, src = item["target"].to(device), item["instance"].to(device), item["source"]
            feats = encoder(target, inst).cpu()                       # [T, d, H, W]
            ids = src[:, :label_nc].argmax(1)                        # [T, H, W]
            for t in range(feats.shape[0]):
                inst_t = item["instance"][t, 0]
                for k in inst_t.unique().tolist():
                    where = inst_t == k
                    cls = int(ids[t][where].mode().values)
                    vec = feats[t][:, where].mean(1).numpy()
                    per_class.setdefault(cls, []).append(vec)
    out = {}
    for cls, vecs in sorted(per_class.items()):
        x = np.stack(vecs).astype(np.float64)
        k = max(1, min(n_components, len(x)))
        gmm = GaussianMixture(n_components=k, covariance_type="diag", random_state=0, reg_covar=1e-4).fit(x)
        out[str(cls)] = {"weights": gmm.weights_.tolist(), "means": gmm.means_.tolist(),
                         "covariances": gmm.covariances_.tolist(), "n_samples": len(x)}
    return out


def class_styles(encoder: StyleEncoder, image: torch.Tensor, ids: np.ndarray) -> dict[int, np.ndarray]:
    """Styles taken from a real image (paper Sec. 3: E encodes a frame): E's features of ``image`` ([3, H, W] in
    [-1, 1]) averaged over the pixels of each class of ``ids`` ([H, W]), as the trainer averages them over a
    stuff class.  The image is reflection-padded to E's size multiple (any size works).  Returns
    ``{class: vector [style_nc]}`` for the classes present."""
    h, w = image.shape[-2:]
    if np.shape(ids) != (h, w):
        raise StyleError(f"the reference's label map is {np.shape(ids)[::-1]} but the image is {w}x{h}")
    m = encoder.size_multiple
    pad_h, pad_w = -h % m, -w % m
    x = image[None].float()
    if pad_h or pad_w:   # reflection needs the pad below the side; replicate covers tiny images
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    device = next(encoder.parameters()).device
    with torch.no_grad():
        feats = encoder.body(x.to(device))[0, :, :h, :w].reshape(encoder.style_nc, -1).cpu().double().numpy()
    flat = np.asarray(ids, np.int64).ravel()
    return {int(c): feats[:, flat == c].mean(1) for c in np.unique(flat)}


# ---- test time: a style for every instance of a label video ------------------------------------------------
STYLE_GMM_KEY = "v2v.style_gmm"   # model-file metadata: the per-class mixtures fit_style_gmm wrote


class StyleError(ValueError):
    """A style that cannot be drawn: no mixtures in the model, classes it does not know, a vector of wrong size."""


def parse_classes(text: str, label_nc: int, *, what: str = "classes") -> set[int] | None:
    """``all`` (or empty): every class (None); ``none``: no class; else label ids such as ``1, 8``, each checked
    against the model's ``label_nc``."""
    text = (text or "").strip().lower()
    if text in ("", "all"):
        return None
    if text == "none":
        return set()
    try:
        classes = {int(part) for part in text.replace(";", ",").split(",") if part.strip()}
    except ValueError:
        raise StyleError(f"{what} must be all, none or label ids like 1, 8; got {text!r}") from None
    unknown = sorted(c for c in classes if not 0 <= c < label_nc)
    if unknown:
        raise StyleError(f"{what} {unknown} are not label ids of this model (0..{label_nc - 1})")
    return classes


def read_style_mixtures(metadata: dict[str, str]) -> dict[int, dict]:
    """The per-class mixtures of a model file's metadata (``{class: {"weights", "means", "covariances"}}``)."""
    import json

    raw = metadata.get(STYLE_GMM_KEY)
    if not raw:
        raise StyleError("this model file has no style mixtures (v2v.style_gmm): train it with model.style_nc > 0 "
                         "and instance maps, which fits them at the end of the run")
    return {int(k): v for k, v in json.loads(raw).items()}


def mixture_mean(mixture: dict) -> np.ndarray:
    """A class's mean style: the components' means weighed by their weights."""
    return np.asarray(mixture["weights"]) @ np.asarray(mixture["means"])


class StylePlan:
    """The paper's multimodal synthesis at test time, streamed: which style vector every instance of a label video
    gets, drawn per instance (stuff: one per class; people: one per track id) from its class's mixture.

    A vector depends only on (seed, class, instance id), so an instance keeps its appearance along its track
    without any state, any length of video costs nothing, and a seed reproduces a video.  Classes outside
    ``resample`` (None: every class) take their mean style; ``fixed`` gives classes a chosen vector.  Classes
    without a mixture (never seen in training) get zeros, the encoder's mid-range."""

    def __init__(self, mixtures: dict[int, dict], style_nc: int, seed: int = 0,
                 resample: set[int] | frozenset[int] | None = None, fixed: dict[int, np.ndarray] | None = None) -> None:
        self.mixtures, self.style_nc, self.seed = mixtures, int(style_nc), int(seed)
        self.resample = None if resample is None else frozenset(int(c) for c in resample)
        self.fixed = {int(c): np.asarray(v, np.float64) for c, v in (fixed or {}).items()}
        for cls, m in mixtures.items():
            if np.asarray(m["means"]).shape[-1] != self.style_nc:
                raise StyleError(f"the mixture of class {cls} has {np.asarray(m['means']).shape[-1]}-d styles but "
                                 f"the model takes {self.style_nc}")
        for cls, v in self.fixed.items():
            if v.shape != (self.style_nc,):
                raise StyleError(f"the style given for class {cls} has shape {v.shape}, expected ({self.style_nc},)")

    def vector(self, cls: int, instance_id: int) -> np.ndarray:
        """The style of instance ``instance_id`` of class ``cls`` ([style_nc])."""
        if cls in self.fixed:
            return self.fixed[cls]
        mixture = self.mixtures.get(cls)
        if mixture is None:
            return np.zeros(self.style_nc)
        if self.resample is not None and cls not in self.resample:
            return mixture_mean(mixture)
        rng = np.random.default_rng([self.seed, cls, instance_id])
        k = rng.choice(len(mixture["weights"]), p=np.asarray(mixture["weights"]) / np.sum(mixture["weights"]))
        std = np.sqrt(np.asarray(mixture["covariances"][k]))
        return np.clip(np.asarray(mixture["means"][k]) + std * rng.standard_normal(self.style_nc), -1.0, 1.0)

    def frame(self, ids: np.ndarray, instance: np.ndarray | None) -> torch.Tensor:
        """The style map ``[style_nc, H, W]`` of one label frame: ``ids`` [H, W] class per pixel, ``instance`` [H, W]
        instance ids (None: one instance per class).  An instance's class is its most frequent label."""
        ids = np.asarray(ids, np.int64)
        inst = ids if instance is None else np.asarray(instance, np.int64)
        if inst.shape != ids.shape:
            raise StyleError(f"instance map {inst.shape} and label map {ids.shape} differ in size")
        uniq, inverse = np.unique(inst.ravel(), return_inverse=True)
        table = np.empty((len(uniq), self.style_nc), np.float32)
        flat_ids = ids.ravel()
        for j, inst_id in enumerate(uniq):
            cls = int(np.bincount(flat_ids[inverse == j]).argmax())
            table[j] = self.vector(cls, int(inst_id))
        return torch.from_numpy(np.ascontiguousarray(table[inverse].T.reshape(self.style_nc, *ids.shape)))
