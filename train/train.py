"""Train a vid2vid generator on paired videos with Hugging Face accelerate.

    python train/train.py --config train/configs/labels_street.yaml --set data.root=data/street
    accelerate launch --num_processes 4 train/train.py --config train/configs/pose_body.yaml
    accelerate launch --multi_gpu --num_processes 2 train/train.py --config ...   # also on CPUs (gloo)
    torchrun --nproc_per_node 2 train/train.py --config ...                      # the same without accelerate
    python train/train.py --config ... --resume            # continue from <out_dir>/checkpoints/latest

Reads top to bottom: config -> Accelerator -> data (validated before anything trains) -> models and
optimizers -> resume -> one visible loop.  Per training clip, for every frame t >= L (the first L frames of
the clip are the REAL frames; later frames see the generator's own earlier outputs, detached by default):
one discriminator step (D_I on source + frame, for the final and the raw hallucinated frame; D_V on the
last K-frame window of every temporal scale the clip is long enough for, conditioned on the real clip's
ground-truth flow) then one generator step (LSGAN + feature matching + optional VGG + flow loss with
lambda_W + warp consistency + mask regulariser + D_V terms; paper Eq. 5).

Schedules are pure functions of the step (``n_frames_at``, ``lr_at``) and are logged when they change.
``step`` counts training clips (iterations); each clip makes ``n_frames - L`` D and G updates.

Outputs under ``out_dir``:
  model.safetensors          the generator for the nodes / sampler / CLI (v2v.model.checkpoint format + config)
  checkpoints/latest         name of the newest complete training state; checkpoints/state-XXXXXXXX/ =
                             accelerate state (models, optimizers, RNG) + trainer.json (step, data position)
  losses.jsonl               one line per step (main process)
  samples/                   source | generated | real strips; logs/ TensorBoard (accelerate tracker)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python train/train.py`: import the repo, not this folder
    _repo = Path(__file__).resolve().parents[1]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _repo / "train"]
    sys.path.insert(0, str(_repo))

import numpy as np
import torch
import yaml

from train.data import DataConfig, DatasetError, build_datasets, dataset_defaults, read_dataset_json
from train.evaluation import stats_sample, validate, write_sample
from train.state import (TrainState, check_resume, latest_state, load_training_state, networks_record,
                         remove_unfinished_states, save_training_state, trim_loss_log, weights_digest)
from v2v.model import losses as L
from v2v.model.checkpoint import load_generator, save_generator
from v2v.model.config import DiscriminatorConfig, GeneratorConfig, LossWeights, dataclass_from_dict, preset
from v2v.model.discriminators import Discriminators
from v2v.model.generator import Vid2VidGenerator
from v2v.model.style import clip_style, fit_style_gmm


# ---------------------------------------------------------------------------------------------------------
# configuration
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
    mixed_precision: str = "no"            # no | fp16 | bf16
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
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")

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


def data_config(cfg: TrainConfig) -> DataConfig:
    """DataConfig from ``<root>/dataset.json`` (prepare.py) overridden by the YAML's ``data:``."""
    root = cfg.data.get("root")
    if not root:
        raise DatasetError("data.root is not set (the dataset folder; see docs/DATASET.md)")
    merged = dataset_defaults(root)
    merged.update(cfg.data)
    merged.setdefault("seed", cfg.seed)
    return DataConfig.from_dict(merged)


# ---------------------------------------------------------------------------------------------------------
# pure schedules
def n_frames_at(step: int, cfg: TrainConfig, n_past: int, cap: int | None = None) -> int:
    """Clip length at ``step``: starts at ``n_frames_start`` (>= L+1) and doubles every ``double_every``."""
    top = cfg.n_frames_max if cap is None else min(cfg.n_frames_max, cap)
    start = max(cfg.n_frames_start or n_past + 1, n_past + 1)
    if cfg.double_every <= 0:
        return max(top, n_past + 1)
    return max(min(top, start * 2 ** (step // cfg.double_every)), min(start, top), n_past + 1)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Constant ``lr`` until ``decay_start``, then linear to 0 at ``max_steps``."""
    start = cfg.max_steps // 2 if cfg.decay_start is None else cfg.decay_start
    if step < start or cfg.max_steps <= start:
        return cfg.lr
    return cfg.lr * max(0.0, 1.0 - (step - start) / (cfg.max_steps - start))


# ---------------------------------------------------------------------------------------------------------
# helpers
def build_generator_config(cfg: TrainConfig, dcfg: DataConfig, source_nc: int) -> GeneratorConfig:
    task = {"input_nc": source_nc, "label_nc": dcfg.label_nc if dcfg.source_kind == "labels" else 0}
    task.update({k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.items()})
    return preset(cfg.preset, **task)


def batches_of_epoch(n_items: int, epoch: int, seed: int, batch_size: int, n_proc: int, rank: int) -> list[list[int]]:
    """This process's batches for ``epoch``: a seeded permutation cut into global batches of
    batch_size * n_proc items; process ``rank`` takes its slice of each (the last partial batch is dropped)."""
    order = np.random.default_rng([seed, 7919, epoch]).permutation(n_items).tolist()
    per_step = batch_size * n_proc
    if n_items < per_step:  # tiny datasets: repeat the permutation so every process gets a full batch
        order = (order * math.ceil(per_step / max(1, n_items)))[:per_step]
    n_batches = len(order) // per_step
    return [order[i * per_step + rank * batch_size: i * per_step + (rank + 1) * batch_size] for i in range(n_batches)]


def input_window(t: int, n_past: int) -> list[int]:
    """Frames F sees at t: t-L..t, the missing past padded with frame 0 (as the sampler pads its first frames)."""
    return [max(0, i) for i in range(t - n_past, t + 1)]


def starts_generated(step: int, cfg: "TrainConfig") -> bool:
    """Whether the clip of ``step`` starts from no history; a pure function of (seed, step), so resume is exact."""
    if cfg.generated_start <= 0:
        return False
    return random.Random(cfg.seed * 1_000_003 + step).random() < cfg.generated_start


# ---------------------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, *, resume: bool = False) -> dict[str, Any]:
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import ProjectConfiguration, set_seed
    from tqdm.auto import tqdm

    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # lets torchrun-style launches on CPU-only machines use gloo DDP
        mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
        log_with=cfg.log_with, project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    device, main = accelerator.device, accelerator.is_main_process
    log = (lambda msg: accelerator.print(msg))
    set_seed(cfg.seed)

    # ---- data: validated on every process before anything trains ----------------------------------------
    dcfg = data_config(cfg)
    weights = LossWeights.from_dict(cfg.loss)
    dis_cfg = DiscriminatorConfig.from_dict(cfg.disc)
    # L from the model's config (preset + overrides); the source channels are known once the data is read
    n_past = preset(cfg.preset, input_nc=1, **{k: v for k, v in cfg.model.items() if k == "n_past"}).n_past
    train_ds, val_ds = build_datasets(dcfg, n_frames=n_past + 1, min_frames=n_past + 1)
    cap = train_ds.min_length
    if cap < cfg.n_frames_max:
        log(f"note: the shortest training sequence has {cap} frames; clips are capped at {cap}")
    gcfg = build_generator_config(cfg, dcfg, train_ds.source_nc)
    trained_hw = dcfg.crop_size or dcfg.load_size or train_ds.sequences[0].size
    problem = gcfg.frame_size_problem(*trained_hw)
    if problem:                                   # refused before any step, not deep inside the first one
        raise DatasetError(f"training frames: {problem} (set data.crop_size or data.load_size)")

    # ---- models and optimizers ---------------------------------------------------------------------------
    G = Vid2VidGenerator(gcfg)
    if cfg.init_from:
        coarse = load_generator(cfg.init_from)
        if coarse.cfg.n_scales < gcfg.n_scales:
            G.load_coarser(coarse)
            log(f"initialised scales 0..{coarse.cfg.n_scales - 1} from {cfg.init_from}")
        else:
            G.load_state_dict(coarse.state_dict())
            log(f"initialised from {cfg.init_from}")
    coarse_params = [p for s in G.scales[:-1] for p in s.parameters()] if (cfg.init_from and gcfg.n_scales > 1) else []
    D = Discriminators(gcfg.input_nc, dis_cfg)
    E = None
    if gcfg.style_nc:
        from v2v.model.style import StyleEncoder

        if not dcfg.use_instance:
            raise DatasetError("model.style_nc > 0 needs instance maps (data.use_instance: true)")
        E = StyleEncoder(gcfg.style_nc, ngf=cfg.style_encoder_ngf)
    vgg = None
    if cfg.vgg_weights:
        from v2v.model.vgg import require_vgg19

        vgg = require_vgg19(cfg.vgg_weights, device)
    g_params = list(G.parameters()) + (list(E.parameters()) if E is not None else [])
    opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if E is not None:
        G, D, E, opt_g, opt_d = accelerator.prepare(G, D, E, opt_g, opt_d)
    else:
        G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    D_raw = accelerator.unwrap_model(D)
    if not cfg.detach_prev and accelerator.num_processes > 1:
        raise ValueError("detach_prev: false (backprop through the clip) is supported on one process only")
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    networks = networks_record(gcfg, dis_cfg, cfg.style_encoder_ngf if E is not None else None)

    if resume:
        found = latest_state(out_dir)
        if found is None:
            raise FileNotFoundError(f"--resume: no complete training state under {out_dir / 'checkpoints'}")
        check_resume(found, networks)
        load_training_state(accelerator, found)
        state.load_state_dict(json.loads((found / "trainer.json").read_text()))
        log(f"resumed from {found} at step {state.step} (epoch {state.epoch}, batch {state.batch_in_epoch})")
    if main:   # leftovers of a kill: half-written states, log lines of steps after the state resumed from
        remove_unfinished_states(out_dir)
        if resume:
            trim_loss_log(out_dir / "losses.jsonl", state.step)
    accelerator.wait_for_everyone()

    if cfg.log_with:
        flat = {k: (json.dumps(v) if isinstance(v, (dict, list, tuple)) or v is None else v) for k, v in cfg.to_dict().items()}
        accelerator.init_trackers("vid2vid", config=flat)
    n_params = sum(p.numel() for p in accelerator.unwrap_model(G).parameters())
    log(f"generator {n_params / 1e6:.2f} M parameters, input_nc {gcfg.input_nc}, {accelerator.num_processes} "
        f"process(es) on {device}, mixed precision {cfg.mixed_precision}; {len(train_ds)} training clips/epoch")

    # ---- stop on SIGINT / SIGTERM: finish the step, save, exit ------------------------------------------
    stop = {"flag": False}

    def _on_signal(signum, frame):
        stop["flag"] = True

    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    samples_dir = out_dir / "samples"
    loss_log = open(out_dir / "losses.jsonl", "a") if main else None
    pbar = tqdm(total=cfg.max_steps, initial=state.step, disable=not main, desc="train", dynamic_ncols=True)
    last_n_frames = None
    loader_iter = None
    history: list[dict] = []
    t_start, frames_done = time.time(), 0

    def make_iter():
        train_ds.set_epoch(state.epoch)
        batches = batches_of_epoch(len(train_ds), state.epoch, cfg.seed, cfg.batch_size,
                                   accelerator.num_processes, accelerator.process_index)
        loader = torch.utils.data.DataLoader(train_ds, batch_sampler=batches[state.batch_in_epoch:],
                                             num_workers=cfg.num_workers)
        return iter(loader), len(batches)

    n_batches = 0
    while state.step < cfg.max_steps:
        # -- schedule (pure functions of the step) --
        n_frames = n_frames_at(state.step, cfg, n_past, cap)
        if n_frames != last_n_frames:
            log(f"step {state.step}: clip length {n_frames} frames "
                f"(temporal scales of D_V in use: {D_raw.temporal_scales(n_frames)})")
            train_ds.n_frames = n_frames
            last_n_frames = n_frames
            loader_iter = None
        if loader_iter is None:
            loader_iter, n_batches = make_iter()
        try:
            batch = next(loader_iter)
        except StopIteration:
            state.epoch += 1
            state.batch_in_epoch = 0
            loader_iter = None
            continue
        lr = lr_at(state.step, cfg)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

        stats = run_clip(batch, G, D, D_raw, E, vgg, opt_g, opt_d, accelerator, cfg, gcfg, weights, dcfg,
                         coarse_params if state.step < cfg.finest_only_steps else [], n_past,
                         generated_start=starts_generated(state.step, cfg))
        state.step += 1
        state.batch_in_epoch += 1
        frames_done += stats.pop("_frames")
        pbar.update(1)
        if main:
            rec = {"step": state.step, "lr": lr, "n_frames": n_frames, **stats}
            loss_log.write(json.dumps(rec) + "\n")
            loss_log.flush()
            history.append(rec)
            if state.step % cfg.log_every == 0 or state.step == 1:
                pbar.set_postfix(g=f"{stats['loss_g']:.3f}", d=f"{stats['loss_d']:.3f}")
        if cfg.log_with and state.step % cfg.log_every == 0:
            accelerator.log({f"train/{k}": v for k, v in stats.items()} | {"train/lr": lr, "train/n_frames": n_frames},
                            step=state.step)
        if main and cfg.sample_every and state.step % cfg.sample_every == 0:
            write_sample(stats_sample(batch, G, E, accelerator, dcfg, n_past), samples_dir, state.step, accelerator, cfg)
        if val_ds is not None and cfg.val_every and state.step % cfg.val_every == 0:
            metrics = validate(G, E, val_ds, accelerator, n_past, cfg) if main else {}
            if main:
                log(f"step {state.step}: validation {json.dumps({k: round(v, 4) for k, v in metrics.items()})}")
                if cfg.log_with:
                    accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=state.step)
            accelerator.wait_for_everyone()
        # a signal on any process stops every process at the same step
        flag = torch.tensor([1.0 if stop["flag"] else 0.0], device=device)
        stopping = bool(accelerator.reduce(flag, reduction="sum").item() > 0)
        if stopping or (cfg.save_every and state.step % cfg.save_every == 0) or state.step >= cfg.max_steps:
            save_training_state(accelerator, out_dir, state, cfg.keep_states, networks)
            export(G, E, out_dir, cfg, gcfg, dcfg, state, accelerator, train_ds, final=False)
        if stopping:
            log(f"stopped by signal at step {state.step}; state saved. Continue with --resume")
            break

    pbar.close()
    elapsed = time.time() - t_start
    done = state.step >= cfg.max_steps
    if done:
        export(G, E, out_dir, cfg, gcfg, dcfg, state, accelerator, train_ds, final=True)
    digest = weights_digest(accelerator.unwrap_model(G))
    (out_dir / f"weights_rank{accelerator.process_index}.sha256").write_text(digest + "\n")
    if loss_log:
        loss_log.close()
    if cfg.log_with:
        accelerator.end_training()
    for s, h in old_handlers.items():
        signal.signal(s, h)
    fps = frames_done / max(elapsed, 1e-9)
    log(f"{'finished' if done else 'stopped'} at step {state.step}: {fps:.2f} generated frames/s per process; "
        f"model: {out_dir / 'model.safetensors'}")
    return {"step": state.step, "history": history, "frames_per_second": fps, "weights_sha256": digest,
            "finished": done}


def run_clip(batch, G, D, D_raw, E, vgg, opt_g, opt_d, accelerator, cfg, gcfg, weights, dcfg, frozen, n_past,
             generated_start: bool = False):
    """One training clip: per generated frame, a D step then a G step.  Returns mean losses over frames.

    The first L frames are real (the paper), or with ``generated_start`` generated like the sampler's start
    without a first frame: frame 0 from no history, frames 1..L-1 from the padded generated ones, the mask
    forced to 1 (``F`` learns the start it meets at test time, and the rest of the clip is conditioned on
    its own frames only)."""
    device = accelerator.device
    src = batch["source"].to(device)          # [B, T, C, H, W]
    real = batch["target"].to(device)         # [B, T, 3, H, W]
    flow = batch["flow"].to(device)           # [B, T, 2, H, W]; flow[:, t]: t -> t-1
    conf = batch["flow_conf"].to(device)      # [B, T, 1, H, W]
    inst = batch["instance"].to(device) if "instance" in batch else None
    T = src.shape[1]
    t_first = 0 if generated_start else n_past
    history = [real[:, i] for i in range(t_first)]     # the first L frames are real, or none
    sums: dict[str, float] = {}
    backprop_clip = False

    def add(name, value):
        sums[name] = sums.get(name, 0.0) + float(value)

    for t in range(t_first, T):
        with accelerator.accumulate(G, D):
            window = input_window(t, n_past)
            style = clip_style(E, real, inst, window) if E is not None else None
            warm_up = t < n_past                               # generated start: nothing trustworthy to warp
            prev = torch.stack(([history[0]] * n_past + history)[-n_past:], 1) if history else None
            out = G(src[:, window], prev, style=style, force_hallucinate=warm_up)
            fake = out.frame
            cond = src[:, t]                                   # D_I is conditioned on the source frame
            real_clip = real[:, :t + 1]
            flows_d = flow[:, 1:t + 1]                         # flows_d[:, i] maps frame i onto i+1
            fake_clip = torch.stack([h.detach() for h in history] + [fake.detach()], 1)

            # ---- discriminator step ----
            D_raw.requires_grad_(True)
            d_loss, d_terms = D(cond, real[:, t], fake.detach(), out.hallucinated.detach(),
                                real_clip, fake_clip, flows_d)
            accelerator.backward(d_loss)
            opt_d.step()
            opt_d.zero_grad(set_to_none=True)

            # ---- generator step (D frozen, called without its DDP wrapper) ----
            D_raw.requires_grad_(False)
            with accelerator.autocast():
                terms = g_terms(out, cond, real, fake, history, flow, conf, t, D_raw, vgg, warm_up,
                                mask_reg=cfg.mask_loss_always or generated_start)
            g_loss = L.weighted_sum(terms, weights)
            if cfg.detach_prev:
                accelerator.backward(g_loss)
                for p in frozen:
                    p.grad = None
                opt_g.step()
                opt_g.zero_grad(set_to_none=True)
            else:  # gradients reach earlier frames through the fed-back outputs; one G update per clip
                accelerator.backward(g_loss, retain_graph=True)
                backprop_clip = True
        add("loss_d", d_loss.detach())
        add("loss_g", g_loss.detach())
        for k, v in {**d_terms, **terms}.items():
            add(k, v.detach())
        history.append(fake.detach() if cfg.detach_prev else fake)

    if backprop_clip:  # backprop through the whole clip: one G update
        for p in frozen:
            p.grad = None
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
    D_raw.requires_grad_(True)
    n = max(1, T - t_first)
    stats = {k: v / n for k, v in sums.items()}
    stats["_frames"] = n * src.shape[0]
    return stats


def g_terms(out, cond, real, fake, history, flow, conf, t, D_raw, vgg, warm_up=False,
            mask_reg=True) -> dict[str, torch.Tensor]:
    """The generator's loss terms at frame t (unweighted; names of v2v.model.losses.TERM_WEIGHTS).  ``warm_up``: the
    mask was forced to 1, so the mask regulariser has nothing to act on and is left out; the flow and warp terms
    still apply from t = 1 (none at t = 0).  ``mask_reg``: add the mask regulariser (pushes towards warping)."""
    real_t = real[:, t]
    fake_feats = D_raw.image(torch.cat([cond, fake], 1))
    raw_feats = D_raw.image(torch.cat([cond, out.hallucinated], 1))
    with torch.no_grad():
        real_feats = D_raw.image(torch.cat([cond, real_t], 1))
    terms = {
        "gan": L.lsgan_g_loss(fake_feats) + L.lsgan_g_loss(raw_feats),
        "feature_matching": L.feature_matching_loss(real_feats, fake_feats, D_raw.cfg.n_layers)
        + L.feature_matching_loss(real_feats, raw_feats, D_raw.cfg.n_layers),
    }
    if vgg is not None:
        terms["vgg"] = L.vgg_loss(vgg, fake, real_t)
    if out.flow is not None and t > 0:
        terms.update(L.flow_loss(out.flow, flow[:, t], real[:, t - 1], real_t, conf[:, t]))
        terms["generator_warp"] = L.generator_warp_loss(fake, history[-1], flow[:, t], conf[:, t])
        if mask_reg and not warm_up:
            terms["mask"] = L.mask_loss(out.mask, out.free_mask)
    scales = D_raw.temporal_scales(t + 1)
    if scales:
        fake_clip = torch.stack([h.detach() for h in history] + [fake], 1)
        real_clip = real[:, :t + 1]
        flows_d = flow[:, 1:t + 1]
        tg, tfm = 0.0, 0.0
        for s in scales:
            rw, fw = D_raw.temporal.windows(real_clip, flows_d, s)
            kw, _ = D_raw.temporal.windows(fake_clip, None, s)
            fk = D_raw.temporal(kw, fw, s)
            with torch.no_grad():
                rl = D_raw.temporal(rw, fw, s)
            tg = tg + L.lsgan_g_loss(fk)
            tfm = tfm + L.feature_matching_loss(rl, fk, D_raw.cfg.n_layers)
        terms["temporal_gan"] = tg
        terms["temporal_feature_matching"] = tfm
    return terms


def source_metadata(root, native: tuple[int, int], size: tuple[int, int], boundary: bool = False) -> str | None:
    """The ``v2v.source`` metadata of a model trained on the dataset at ``root``: the recipe its ``dataset.json``
    records, with the extraction scale (the dataset's frame height over the height the model learnt at) and,
    for label maps, whether the model takes the instance-boundary channel (``use_instance``), so generation
    makes the same source from any video; None when the dataset records no recipe."""
    recipe = read_dataset_json(root).get("source_recipe")
    if not recipe:
        return None
    params = dict(recipe.get("params") or {})
    if recipe.get("extractor") == "pseudo_labels":
        params["instances"] = bool(boundary)
    elif recipe.get("extractor") == "label_maps":
        params["boundary"] = bool(boundary)
    return json.dumps({**recipe, "params": params, "extract_scale": round(native[0] / size[0], 6)}, sort_keys=True)


def record_source_recipe(model_path, root) -> str:
    """Write the recipe of the dataset at ``root`` into a model file trained on it before recipes existed (its
    weights and config untouched): the metadata export() writes today.  Returns it."""
    from train.data import list_sequences
    from v2v.media.video_io import read_frames
    from v2v.model.checkpoint import read_config, training_frame_size, update_metadata

    first = read_frames(list_sequences(root, "train")[0] / "target")
    native = (first.height, first.width)
    cfg = read_config(model_path)
    recipe = source_metadata(root, native, training_frame_size(model_path) or native,
                             boundary=bool(cfg.label_nc) and cfg.input_nc == cfg.label_nc + 1)
    if recipe is None:
        raise DatasetError(f"{root}/dataset.json records no source recipe: prepare it with this version")
    update_metadata(model_path, {"v2v.source": recipe})
    return recipe


def export(G, E, out_dir, cfg, gcfg, dcfg, state, accelerator, train_ds, *, final: bool) -> None:
    """The nodes' safetensors (generator + config + training metadata); at the end also the style GMM."""
    native = train_ds.sequences[0].size            # (H, W) of the dataset's frames
    size = dcfg.load_size or native                # the scale the generator learnt (crops are cut from it)
    extra = {"v2v.train": json.dumps({"step": state.step, "task": cfg.task, "source_kind": dcfg.source_kind,
                                      "preset": cfg.preset, "finished": final, "frame_size": list(size)})}
    recipe = source_metadata(dcfg.root, native, size, boundary=dcfg.use_instance)
    if recipe:
        extra["v2v.source"] = recipe
    if final and E is not None and accelerator.is_main_process:
        gmm = fit_style_gmm(accelerator.unwrap_model(E), train_ds, dcfg.label_nc, cfg.style_gmm_components,
                            accelerator.device)
        extra["v2v.style_gmm"] = json.dumps(gmm)
        accelerator.print(f"fitted style Gaussian mixtures for classes {sorted(gmm, key=int)}")
    if accelerator.is_main_process:
        save_generator(accelerator.unwrap_model(G), out_dir / "model.safetensors", extra_metadata=extra)
    accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train a vid2vid generator (see the module docstring).")
    p.add_argument("--config", help="YAML file (train/configs/*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set data.root=data/street --set max_steps=2000")
    p.add_argument("--out", help="shorthand for --set out_dir=...")
    p.add_argument("--resume", action="store_true", help="continue from <out_dir>/checkpoints/latest")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config, a.set + ([f"out_dir={a.out}"] if a.out else []))
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
        train(cfg, resume=a.resume)
    except (DatasetError, FileNotFoundError, ValueError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
