"""Train a vid2vid generator on paired videos with Hugging Face accelerate.

    python train/train.py --config train/configs/labels_street.yaml --set data.root=data/street
    accelerate launch --num_processes 4 train/train.py --config train/configs/pose_body.yaml
    accelerate launch --multi_gpu --num_processes 2 train/train.py --config ...   # also on CPUs (gloo)
    torchrun --nproc_per_node 2 train/train.py --config ...                      # the same without accelerate
    python train/train.py --config ... --resume            # continue from <out_dir>/checkpoints/latest

Reads top to bottom: config (train/config.py) -> Accelerator -> data (validated before anything trains) ->
models and optimizers -> resume -> one visible loop over clips -> ``train_clip``, where the losses of one frame
are written out.  Per training clip, for every frame t >= L (the first L frames of the clip are the REAL frames;
later frames see the generator's own earlier outputs, detached by default): the discriminator loss (D_I on source
+ frame, for the final and the raw hallucinated frame; D_V on the newest K-frame window of every temporal scale
the clip is long enough for, conditioned on the real clip's ground-truth flow), then the generator loss against
the same D (LSGAN + feature matching + optional VGG + flow + warp consistency + mask regulariser + D_V terms;
paper Eq. 5), then both updates.  The real side's features and windows are computed once per frame.

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
import contextlib
import dataclasses
import json
import math
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as `python train/train.py`: import the repo, not this folder
    _repo = Path(__file__).resolve().parents[1]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _repo / "train"]
    sys.path.insert(0, str(_repo))

import numpy as np
import torch

from train.config import TrainConfig, build_generator_config, data_config, load_config, resolve_precision
from train.data import DatasetError, build_datasets
from train.evaluation import stats_sample, validate, write_sample
from train.export import export
from train.state import (TrainState, check_resume, latest_state, load_training_state, networks_record,
                         remove_unfinished_states, save_training_state, trim_loss_log, weights_digest)
from v2v.model import losses as L
from v2v.model.checkpoint import load_generator
from v2v.model.config import DiscriminatorConfig, LossWeights, preset
from v2v.model.discriminators import Discriminators, detached
from v2v.model.generator import Vid2VidGenerator
from v2v.model.style import clip_style
from v2v.sampler import cpp_compiler_found


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


def adam(params, cfg: TrainConfig) -> torch.optim.Adam:
    """The paper's Adam as one fused kernel per step: the default runs ~10 operators per parameter tensor, which on a
    CPU cost 9-13 % of a training step (fused: ~9x faster there, bench/NOTES.md "Adam in one fused kernel")."""
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)


# ---------------------------------------------------------------------------------------------------------
# helpers
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _workers_leave_stops_to_main(_worker_id: int) -> None:
    """Data-loading workers ignore SIGINT / SIGTERM: the main process finishes its step and saves on them.  A
    signal to the whole process group (Ctrl-C, ``timeout``, a cluster's time limit) would otherwise kill the
    workers first (PyTorch's worker handler re-raises SIGTERM) and the run would crash instead of saving.
    They start with both blocked (``_stop_signals_blocked``); ignoring them drops one that came meanwhile."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def _stop_signals_blocked():
    """SIGINT / SIGTERM held back while data workers are forked: a fork inherits the mask, so a signal to the
    group during a worker's start-up waits for ``_workers_leave_stops_to_main`` instead of killing it; here it
    is delivered when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):     # not POSIX: nothing to hold back
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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
    precision, precision_warning = resolve_precision(cfg.mixed_precision, torch.cuda.is_available())
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # lets torchrun-style launches on CPU-only machines use gloo DDP
        mixed_precision=precision, gradient_accumulation_steps=cfg.grad_accum,
        log_with=cfg.log_with, project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    device, main = accelerator.device, accelerator.is_main_process
    log = (lambda msg: accelerator.print(msg))
    set_seed(cfg.seed)
    if precision_warning:
        log(precision_warning)
    if cfg.compile and device.type == "cpu" and not cpp_compiler_found():
        raise ValueError("compile: true on a CPU needs a C++ compiler (g++ or clang++) on PATH, which was not found: "
                         "install one (Debian/Ubuntu: apt install g++) or set compile: false")

    # ---- data: validated on every process before anything trains ----------------------------------------
    dcfg = data_config(cfg)
    if dcfg.predict and (cfg.sample_every or cfg.val_every):   # their metrics are for RGB frames
        log("note: label prediction: sample strips and validation are off (bench/future_study.py scores predictors)")
        cfg = dataclasses.replace(cfg, sample_every=0, val_every=0)
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
    D = Discriminators(gcfg.input_nc, dis_cfg, image_nc=gcfg.output_nc)
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
    opt_g, opt_d = adam(g_params, cfg), adam(D.parameters(), cfg)
    if E is not None:
        G, D, E, opt_g, opt_d = accelerator.prepare(G, D, E, opt_g, opt_d)
    else:
        G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    D_raw = accelerator.unwrap_model(D)
    # the compiled wrapper shares G's parameters and is used only to call it: the optimiser, the checkpoints and the
    # training states keep the plain module's names, so a run may resume with compile on or off
    G_forward = torch.compile(G, dynamic=False) if cfg.compile else G
    nets = Nets(G, D, D_raw, E, vgg, opt_g, opt_d, G_forward)
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
        f"process(es) on {device}, mixed precision {precision}; {len(train_ds)} training clips/epoch")

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
    records: list[dict] = []
    t_start, frames_done = time.time(), 0

    def make_iter():
        train_ds.set_epoch(state.epoch)
        batches = batches_of_epoch(len(train_ds), state.epoch, cfg.seed, cfg.batch_size,
                                   accelerator.num_processes, accelerator.process_index)
        loader = torch.utils.data.DataLoader(train_ds, batch_sampler=batches[state.batch_in_epoch:],
                                             num_workers=cfg.num_workers,
                                             worker_init_fn=_workers_leave_stops_to_main)
        with _stop_signals_blocked():                 # the workers are forked here
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

        frozen = coarse_params if state.step < cfg.finest_only_steps else []
        t_step = time.perf_counter()
        stats = train_clip(nets, batch, accelerator, cfg, weights, n_past,
                           generated_start=starts_generated(state.step, cfg), frozen=frozen)
        state.step += 1
        state.batch_in_epoch += 1
        seconds = time.perf_counter() - t_step
        frames = stats.pop("_frames")
        frames_done += frames
        pbar.update(1)
        if main:   # wall time of the step and generated frames/s (this process) show where the time goes
            rec = {"step": state.step, "lr": lr, "n_frames": n_frames, "seconds": round(seconds, 4),
                   "frames_per_s": round(frames / max(seconds, 1e-9), 3), **stats}
            loss_log.write(json.dumps(rec) + "\n")
            loss_log.flush()
            records.append(rec)
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
            # a run stopped by its budget is still a usable style model: it gets its mixtures too
            export(G, E, out_dir, cfg, gcfg, dcfg, state, accelerator, train_ds, final=False, fit_style=stopping)
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
    return {"step": state.step, "history": records, "frames_per_second": fps, "weights_sha256": digest,
            "finished": done}


# ---------------------------------------------------------------------------------------------------------
# one training clip
@dataclass
class Nets:
    """What a training step updates, as accelerate prepared it (``D`` may be a DDP wrapper; ``D_raw`` is not)."""

    G: torch.nn.Module
    D: torch.nn.Module
    D_raw: Discriminators
    E: torch.nn.Module | None
    vgg: torch.nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    G_forward: Callable                   # what calls G: ``torch.compile(G)`` with ``compile: true``, else G itself


def train_clip(nets: Nets, batch: dict, accelerator, cfg: TrainConfig, weights: LossWeights, n_past: int, *,
               generated_start: bool, frozen: list) -> dict[str, float]:
    """Train on one clip: per generated frame t, the discriminators' and the generator's loss of that frame, taken
    against the same D, then both updates.  Returns the mean of every loss term over the clip's frames.

    The first L frames are real (the paper), or with ``generated_start`` generated like the sampler's start
    without a first frame: frame 0 from no history, frames 1..L-1 from the padded generated ones with the mask
    forced to 1 (F learns the start it meets at test time)."""
    G, D, D_raw, E = nets.G, nets.D, nets.D_raw, nets.E
    c = {k: v.to(accelerator.device) for k, v in batch.items()}
    src, real, flow, conf = c["source"], c["target"], c["flow"], c["flow_conf"]  # [B, T, ...]; flow[:, t]: t -> t-1
    t_first = 0 if generated_start else n_past
    history = [real[:, i] for i in range(t_first)]          # the frames fed back: real first ones, then generated
    sums: dict[str, float] = {}
    for t in range(t_first, src.shape[1]):
        with accelerator.accumulate(G, D):
            window = input_window(t, n_past)
            warm_up = t < n_past                             # generated start: nothing trustworthy to warp yet
            prev = torch.stack(([history[0]] * n_past + history)[-n_past:], 1) if history else None
            style = clip_style(E, real, c.get("instance"), window) if E is not None else None
            out = nets.G_forward(src[:, window], prev, style=style, force_hallucinate=warm_up)
            fake, cond = out.frame, src[:, t]                # D_I is conditioned on the source frame

            # D_V judges the newest K-frame window of every temporal scale the clip is long enough for, real and
            # generated alike conditioned on the real clip's flows (flow[:, i + 1] maps frame i onto i+1)
            real_windows = {s: D_raw.temporal.windows(real[:, :t + 1], flow[:, 1:t + 1], s)
                            for s in D_raw.temporal_scales(t + 1)}
            fake_clip = torch.stack([h.detach() for h in history] + [fake], 1)
            fake_windows = {s: D_raw.temporal.windows(fake_clip, None, s)[0] for s in real_windows}

            # ---- discriminator loss: real against generated (final and hallucinated frame, newest windows) ----
            (d_real, d_fake, d_raw), d_temporal = D(
                cond, [real[:, t], fake.detach(), out.hallucinated.detach()],
                {s: ([rw, fake_windows[s].detach()], fw) for s, (rw, fw) in real_windows.items()})
            d_terms = {"d_image": L.lsgan_d_loss(d_real, d_fake) + L.lsgan_d_loss(d_real, d_raw)}
            d_terms |= {f"d_temporal{s}": L.lsgan_d_loss(r, k) for s, (r, k) in d_temporal.items()}
            d_loss = sum(d_terms.values())
            accelerator.backward(d_loss)                     # D's update waits: G's loss is taken against the same D

            # ---- generator loss (paper Eq. 5): D frozen and called without its DDP wrapper ----
            D_raw.requires_grad_(False)
            with accelerator.autocast():
                (g_fake, g_raw), g_temporal = D_raw(cond, [fake, out.hallucinated],
                                                    {s: ([kw], real_windows[s][1]) for s, kw in fake_windows.items()})
                real_feats, n_layers = detached(d_real), D_raw.cfg.n_layers
                g_terms = {"gan": L.lsgan_g_loss(g_fake) + L.lsgan_g_loss(g_raw),
                           "feature_matching": L.feature_matching_loss(real_feats, g_fake, n_layers)
                           + L.feature_matching_loss(real_feats, g_raw, n_layers)}
                if nets.vgg is not None:
                    g_terms["vgg"] = L.vgg_loss(nets.vgg, fake, real[:, t])
                if weights.label_ce:                         # label-map outputs (future prediction)
                    g_terms["label_ce"] = L.label_cross_entropy(fake, real[:, t])
                if out.flow is not None and t > 0:           # flow, warp consistency and mask terms from t = 1
                    g_terms |= L.flow_loss(out.flow, flow[:, t], real[:, t - 1], real[:, t], conf[:, t])
                    g_terms["generator_warp"] = L.generator_warp_loss(fake, history[-1], flow[:, t], conf[:, t])
                    if (cfg.mask_loss_always or generated_start) and not warm_up:  # a forced mask has nothing to learn
                        g_terms["mask"] = L.mask_loss(out.mask, out.free_mask)
                if g_temporal:
                    g_terms["temporal_gan"] = sum(L.lsgan_g_loss(k) for (k,) in g_temporal.values())
                    g_terms["temporal_feature_matching"] = sum(
                        L.feature_matching_loss(detached(d_temporal[s][0]), k, n_layers) for s, (k,) in g_temporal.items())
            g_loss = L.weighted_sum(g_terms, weights)
            last_frame = t == src.shape[1] - 1
            # detach_prev false: gradients reach earlier frames through the fed-back outputs; one G update per clip
            accelerator.backward(g_loss, retain_graph=not cfg.detach_prev and not last_frame)
            if cfg.detach_prev or last_frame:
                for p in frozen:
                    p.grad = None
                nets.opt_g.step()
                nets.opt_g.zero_grad(set_to_none=True)
            nets.opt_d.step()
            nets.opt_d.zero_grad(set_to_none=True)
            D_raw.requires_grad_(True)
        for name, value in {"loss_d": d_loss, "loss_g": g_loss, **d_terms, **g_terms}.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach())
        history.append(fake.detach() if cfg.detach_prev else fake)
    n = max(1, src.shape[1] - t_first)
    return {k: v / n for k, v in sums.items()} | {"_frames": n * src.shape[0]}


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
