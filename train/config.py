"""The trainer's configuration: one dataclass filled from a YAML file under train/configs/ plus ``--set``
overrides, the dataset's own ``dataset.json`` under the YAML's ``data:``, and the generator config they give."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from train.data import DataConfig, DatasetError, dataset_defaults
from v2v.model.config import GeneratorConfig, dataclass_from_dict, preset


@dataclass
class TrainConfig:
    """Everything a run needs; a YAML file under train/configs/ fills it (unknown keys are rejected)."""

    task: str = "labels"                   # labels | sketch | pose (documentation + metadata)
    out_dir: str = "out/run"
    data: dict[str, Any] = field(default_factory=dict)    # DataConfig fields (dataset.json fills the rest)
    preset: str = "small"                  # v2v.model.config.PRESETS name
    model: dict[str, Any] = field(default_factory=dict)   # GeneratorConfig overrides (n_past, n_scales, fg ...)
    disc: dict[str, Any] = field(default_factory=dict)    # DiscriminatorConfig fields
    loss: dict[str, Any] = field(default_factory=dict)    # LossWeights fields
    vgg_weights: str | None = None         # torchvision VGG19 file; None: VGG loss off (explicit opt-out)
    style_encoder_ngf: int = 16            # width of E when model.style_nc > 0
    style_gmm_components: int = 4          # per-class Gaussian mixture fitted after training (style_nc > 0)
    # optimisation (paper: Adam 2e-4, betas (0.5, 0.999), constant then linear decay to 0)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    max_steps: int = 1000
    decay_start: int | None = None         # linear decay from here to max_steps (None: max_steps // 2)
    batch_size: int = 1                    # clips per process
    grad_accum: int = 1                    # frames whose gradients are summed before an update
    mixed_precision: str = "auto"          # auto (bf16 where the GPU has it, else fp32) | no | fp16 | bf16
    compile: bool = False                  # torch.compile the generator's forward (Inductor; the first clips wait
                                           #   for the compiler; the saved weights are the same module's)
    seed: int = 0
    num_workers: int = 0
    # spatio-temporal progression
    n_frames_start: int = 0                # clip length at step 0 (0: n_past + 1)
    n_frames_max: int = 8                  # doubling stops here (capped by the shortest sequence)
    double_every: int = 0                  # steps between doublings (0: start at n_frames_max)
    detach_prev: bool = True               # False: backprop through the clip (one G update per clip; 1 process)
    generated_start: float = 0.0           # share of clips that start with NO real frames, as the sampler does
                                           #   without a first frame (frames 0..L-1 generated, mask forced to 1);
                                           #   0: every clip starts from L real frames (the paper's training)
    init_from: str | None = None           # coarser model (.safetensors) whose scales start this one
    finest_only_steps: int = 0             # with init_from: train only the new finest scale this long
    mask_loss_always: bool = True          # False: as the reference, only on clips without real first frames
                                           #   (the generated_start ones)
    val_first_frame: bool = True           # validation starts from the real first L frames (the paper's test
                                           #   mode); False: every frame generated, as the nodes without one
    # logging / checkpoints
    log_every: int = 10
    sample_every: int = 100
    val_every: int = 200
    save_every: int = 500
    keep_states: int = 2
    log_with: str | None = "tensorboard"   # accelerate tracker; None: none

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML 1.1 reads a bare `no` as false
            self.mixed_precision = "no"
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be auto, no, fp16 or bf16, got {self.mixed_precision!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return dataclass_from_dict(cls, data, error=ValueError)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> TrainConfig:
    """YAML file + ``key=value`` overrides (dotted keys reach into data/model/disc/loss; values are YAML)."""
    data: dict[str, Any] = {}
    if path:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a YAML mapping")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        target = data
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = yaml.safe_load(value)
    return TrainConfig.from_dict(data)


# measured with bench/train_throughput.py (small preset, 128x128, 6-frame clips) on the 2-core CPU: bf16/fp32 wall
CPU_BF16_SLOWDOWN = 1.28


def resolve_precision(asked: str, cuda: bool) -> tuple[str, str | None]:
    """The mixed precision a run uses and a warning when the config asks for one that does not pay here: ``auto``
    is bf16 on a GPU that has it and fp32 otherwise; bf16 on a CPU is kept (the user asked) but warned about."""
    if asked == "auto":
        return ("bf16" if cuda and torch.cuda.is_bf16_supported() else "no"), None
    if asked == "bf16" and not cuda:
        return asked, (f"warning: mixed_precision bf16 on a CPU trains slower than fp32 (a step took "
                       f"{CPU_BF16_SLOWDOWN}x as long on a 2-core CPU); set mixed_precision: auto or no")
    return asked, None


def data_config(cfg: TrainConfig) -> DataConfig:
    """DataConfig from ``<root>/dataset.json`` (prepare.py) overridden by the YAML's ``data:``."""
    root = cfg.data.get("root")
    if not root:
        raise DatasetError("data.root is not set (the dataset folder; see docs/DATASET.md)")
    merged = dataset_defaults(root)
    merged.update(cfg.data)
    merged.setdefault("seed", cfg.seed)
    return DataConfig.from_dict(merged)


def build_generator_config(cfg: TrainConfig, dcfg: DataConfig, source_nc: int) -> GeneratorConfig:
    task = {"input_nc": source_nc, "output_nc": dcfg.target_nc,
            "label_nc": dcfg.label_nc if dcfg.source_kind == "labels" else 0}
    task.update({k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.items()})
    return preset(cfg.preset, **task)


