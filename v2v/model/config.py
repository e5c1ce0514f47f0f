"""Model configuration: frozen dataclasses whose fields ARE the architecture.

A checkpoint stores ``GeneratorConfig.to_dict()`` next to the weights, and
``GeneratorConfig.from_dict`` rebuilds the same network from the file alone, so
there is no second schema that can drift.  Unknown keys are rejected.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from typing import Any

NORMS = ("instance", "batch", "none")
FG_BLENDS = ("hard", "paper")


class ConfigError(ValueError):
    """A configuration that cannot describe a valid network."""


def dataclass_from_dict(cls, data: dict[str, Any], *, error: type[Exception] = ConfigError):
    """``cls(**data)`` for a config dataclass, rejecting unknown keys (naming them and the known ones) and
    turning top-level lists back into tuples (JSON and YAML have no tuples)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"{cls.__name__}: unknown keys {unknown}; known keys are {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class GeneratorConfig:
    """The sequential generator F of Eq. 3/4/9 (see docs in v2v/generator.py).

    Source frames carry ``input_nc`` channels.  For label sources the first
    ``label_nc`` channels are the one-hot labels (channel i == label id i) and an
    optional instance-boundary channel follows; sketch and pose sources set
    ``label_nc = 0``.
    """

    input_nc: int                  # channels of one source frame (labels + edge, sketch, pose)
    output_nc: int = 3             # RGB
    label_nc: int = 0              # leading one-hot label channels (0: source is not a label map)
    n_past: int = 2                # L: past source frames and past outputs fed to F
    ngf: int = 128                 # width of the coarsest scale's first layer
    n_downsample: int = 3          # stride-2 convolutions in the coarsest scale's encoders
    n_blocks: int = 9              # residual blocks at the bottleneck: encoders get the larger half, branches the rest
    n_scales: int = 1              # coarse-to-fine: 1, 2 or 3 spatial scales
    n_local_blocks: int = 3        # residual blocks per branch of each finer scale
    norm: str = "instance"         # instance | batch | none
    use_flow: bool = True          # False: per-frame synthesis (the hallucination branch alone, pix2pixHD-like)
    flow_multiplier: float = 20.0  # flow head output (tanh-free conv) times this, in pixels of the coarsest scale
    foreground: bool = False       # Eq. 9 foreground/background prior
    fg_label_ids: tuple[int, ...] = ()  # label ids that are foreground (e.g. person, car)
    fg_blend: str = "hard"         # hard: the original code's, mask forced to 1 (never warped) on foreground;
                                   # paper: Eq. 9 as written, the mask blends warp and hallucination there too
    fg_ngf: int = 0                # width of the foreground network (0: ngf // 2)
    fg_n_blocks: int = 4           # residual blocks of the foreground network
    stem_kernel: int = 7           # the encoders' first convolution (3 in the fast preset: label maps and
                                   # sketches need no 7x7 field there, and at full size it is the dearest layer)
    share_trunk: bool = False      # the image and flow branches share the coarsest scale's residual blocks
    head_kernel: int = 7           # the output projections (frame, flow, mask); from 8 channels at full size a 7x7
                                   # one is a fifth of the first fast design's CPU frame, a 3x3 one ~3x cheaper
                                   # (3 in the fast preset)
    skips: bool = False            # the coarsest scale's decoders (and the foreground network's) add the encoders'
                                   # features of the same size, as a U-Net does (an addition per level); off in
                                   # every preset: they keep streets but lose faces (bench/NOTES.md, "A fifth
                                   # candidate")
    block_dilation: int = 1        # the coarsest scale's residual blocks dilate their 3x3 convolutions by this:
                                   # half the blocks see as far as twice as many, at the same cost (2 in the fast
                                   # preset: a face drawn from a sparse sketch needs the wide field)
    style_nc: int = 0              # d of the instance-averaged style features concatenated to the source (0: off)

    def __post_init__(self) -> None:
        checks = [
            (self.input_nc >= 1, "input_nc must be >= 1"),
            (self.output_nc >= 1, "output_nc must be >= 1"),
            (0 <= self.label_nc <= self.input_nc, "label_nc must be in [0, input_nc]"),
            (self.n_past >= 1, "n_past (L) must be >= 1"),
            (self.ngf >= 1, "ngf must be >= 1"),
            (self.n_downsample >= 1, "n_downsample must be >= 1"),
            (self.n_blocks >= 2, "n_blocks must be >= 2 (encoders and branches each need one)"),
            (self.n_scales in (1, 2, 3), "n_scales must be 1, 2 or 3"),
            (self.n_local_blocks >= 1, "n_local_blocks must be >= 1"),
            (self.stem_kernel in (3, 5, 7), "stem_kernel must be 3, 5 or 7"),
            (self.head_kernel in (3, 5, 7), "head_kernel must be 3, 5 or 7"),
            (self.block_dilation in (1, 2), "block_dilation must be 1 or 2"),
            (self.norm in NORMS, f"norm must be one of {NORMS}"),
            (self.ngf % (2 ** (self.n_scales - 1)) == 0, "ngf must be divisible by 2**(n_scales-1)"),
            (self.style_nc >= 0, "style_nc must be >= 0"),
            (self.fg_blend in FG_BLENDS, f"fg_blend must be one of {FG_BLENDS}"),
        ]
        if self.foreground:
            checks += [
                (self.label_nc > 0, "foreground prior needs a label source (label_nc > 0)"),
                (len(self.fg_label_ids) > 0, "foreground prior needs fg_label_ids"),
                (all(0 <= i < self.label_nc for i in self.fg_label_ids),
                 f"fg_label_ids {self.fg_label_ids} must lie in [0, label_nc={self.label_nc})"),
                (self.foreground_ngf % (2 ** (self.n_scales - 1)) == 0,   # it runs on the pyramid too
                 f"the foreground network's width ({self.foreground_ngf}) must be divisible by 2**(n_scales-1)"),
            ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"GeneratorConfig: {message} (got {self})")

    # ---- derived sizes -------------------------------------------------
    @property
    def frame_nc(self) -> int:
        """Channels of one source frame as the network sees it (source + style)."""
        return self.input_nc + self.style_nc

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this."""
        return 2 ** (self.n_downsample + self.n_scales - 1)

    @property
    def bottleneck_side(self) -> int:
        """The smallest side of the bottleneck: its residual blocks reflect-pad by their dilation, which needs one
        pixel more (a 1x1 map would also leave instance normalisation one value)."""
        return self.block_dilation + 1

    @property
    def min_frame_side(self) -> int:
        """The smallest height and width: the bottleneck's least side (:attr:`bottleneck_side`) and the 7x7 input
        convolution's 4."""
        return max(self.bottleneck_side * self.size_multiple, 4)

    def frame_size_problem(self, height: int, width: int) -> str | None:
        """Why the network cannot take ``height`` x ``width`` frames (None: it can)."""
        m, least = self.size_multiple, self.min_frame_side
        if height % m or width % m:
            return (f"frame size {width}x{height} is not a multiple of {m} (n_downsample={self.n_downsample}, "
                    f"n_scales={self.n_scales}); resize or crop to e.g. {width // m * m or m}x{height // m * m or m}")
        if height < least or width < least:
            b = self.bottleneck_side
            return (f"frames of {width}x{height} are too small for this network (its bottleneck would be under "
                    f"{b}x{b} pixels); the smallest frames it takes are {least}x{least}")
        return None

    @property
    def flow_scale(self) -> float:
        """Pixels of the finest scale per unit of the flow head's output (the multiplier is in coarsest-scale
        pixels, and each finer scale doubles them)."""
        return self.flow_multiplier * 2 ** (self.n_scales - 1)

    @property
    def foreground_ngf(self) -> int:
        return self.fg_ngf or max(1, self.ngf // 2)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        return dataclass_from_dict(cls, data)

    def with_(self, **changes: Any) -> "GeneratorConfig":
        return replace(self, **changes)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """D_I (multi-scale PatchGAN on source + frame) and D_V (K frames + ground-truth flow)."""

    ndf: int = 64
    n_layers: int = 3              # stride-2 layers of each PatchGAN
    num_d: int = 2                 # spatial scales of D_I and of each temporal scale of D_V
    norm: str = "instance"
    k_frames: int = 3              # K consecutive frames judged by D_V
    n_temporal_scales: int = 2     # D_V temporal scales (frame subsampling by K**s); paper: up to 3; 0 disables D_V
    feature_matching: bool = True  # return intermediate features for the feature-matching loss

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ConfigError(f"DiscriminatorConfig: norm must be one of {NORMS}")
        if self.k_frames < 2:
            raise ConfigError("DiscriminatorConfig: k_frames must be >= 2")
        if not 0 <= self.n_temporal_scales <= 3:
            raise ConfigError("DiscriminatorConfig: n_temporal_scales must be in [0, 3]")
        if self.num_d < 1 or self.n_layers < 1:
            raise ConfigError("DiscriminatorConfig: num_d and n_layers must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiscriminatorConfig":
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the objective (Eq. 5 plus the feature-matching terms); code defaults of the reference."""

    gan: float = 1.0
    feature_matching: float = 10.0
    vgg: float = 10.0
    flow: float = 10.0             # lambda_W of Eq. 5/8 (flow EPE and flow warp)
    generator_warp: float = 10.0   # warp consistency of the output (the reference weighs it with lambda_W too)
    mask: float = 1.0
    temporal_gan: float = 1.0
    label_ce: float = 0.0          # label-map outputs (future prediction): cross-entropy against the true map

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LossWeights":
        return dataclass_from_dict(cls, data)


# ---- named presets ------------------------------------------------------
# Sizes only; the source layout (input_nc, label_nc, fg ids) comes from the task.
PRESETS: dict[str, dict[str, Any]] = {
    # The paper / reference implementation sizes (2115 GFLOPs per frame at 512x256, 1 scale).
    "paper": dict(ngf=128, n_downsample=3, n_blocks=9, n_local_blocks=3),
    # Trains on a GPU in minutes, ships small weights.
    "compact": dict(ngf=32, n_downsample=3, n_blocks=6, n_local_blocks=2, fg_n_blocks=2),
    # Trains on a CPU in seconds to minutes at 64-128 px.
    "small": dict(ngf=16, n_downsample=2, n_blocks=4, n_local_blocks=2, fg_n_blocks=2),
    # An eighth of small's FLOPs (Fast-Vid2Vid's direction): narrow at full size, wider at 1/8, 3x3 stems and output
    # projections, image and flow branches sharing the bottleneck, whose 2 blocks are dilated to see as far as 4.
    # ~3x small on a 2-core CPU; quality against small per seed: bench/NOTES.md, "A fifth candidate".
    "fast": dict(ngf=8, n_downsample=3, n_blocks=2, n_local_blocks=1, fg_n_blocks=1, stem_kernel=3, share_trunk=True,
                 head_kernel=3, block_dilation=2),
    # Unit tests.
    "tiny": dict(ngf=8, n_downsample=2, n_blocks=2, n_local_blocks=1, fg_n_blocks=1),
}


def preset(name: str, **task: Any) -> GeneratorConfig:
    """``preset("small", input_nc=36, label_nc=35, foreground=True, fg_label_ids=(26,))``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return GeneratorConfig(**{**PRESETS[name], **task})
