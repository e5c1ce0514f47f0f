"""Command line: ``python -m v2v generate|info``.

    python -m v2v generate --model M.safetensors --source <folder | video> --out out.mp4 \
        [--source-kind rgb|labels] [--first-frame IMAGE_OR_VIDEO [--first-frame-index N]] \
        [--device cpu|cuda] [--precision fp32|bf16] [--max-frames N] [--fps F] [--seed S]
    python -m v2v info --model M.safetensors

``generate`` streams disk to disk: one frame is read, converted to a source tensor, run through
the StreamingSampler and written before the next is read.  Errors a user can fix (bad files, wrong
sizes, wrong source kind) print one line ``error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import numpy as np
import torch

from .model.checkpoint import load_generator, read_config, read_metadata, training_frame_size
from .model.config import GeneratorConfig
from .generate_video import scale_advice
from .media.tensors import model_to_uint8, uint8_to_model
from .media.video_io import VideoWriter, read_frames

SOURCE_KINDS = ("rgb", "labels")
DEFAULT_FPS = 25.0


class UsageError(ValueError):
    """A problem with the command line's inputs (printed as one line, exit status 2)."""


# ---- frames <-> tensors (minimal; richer loaders belong to v2v/labels.py, pose.py, sketch.py) -----------
def frame_to_source(frame: np.ndarray, cfg: GeneratorConfig, kind: str) -> torch.Tensor:
    """One RGB uint8 frame read from disk -> the model's source tensor [input_nc, H, W].

    * ``rgb``: the frame already IS the source image (a sketch or pose rendering); needs input_nc == 3;
      values go to [-1, 1].
    * ``labels``: a label-id image (grayscale PNG, pixel value = label id; channel 0 is used). One-hot to
      label_nc channels; when input_nc == label_nc + 1 the instance-boundary channel is computed from the
      label-id map's own boundaries, a stand-in for a real instance map (no instance ids on disk here).
    """
    if kind == "rgb":
        if cfg.input_nc != 3:
            raise UsageError(f"--source-kind rgb needs a model with input_nc=3, this one takes {cfg.input_nc} channels"
                             + (" (a label model: use --source-kind labels)" if cfg.label_nc else ""))
        return uint8_to_model(frame)
    if kind == "labels":
        if not cfg.label_nc:
            raise UsageError("--source-kind labels needs a label model (label_nc > 0); this one has label_nc=0 "
                             "(use --source-kind rgb)")
        if cfg.input_nc not in (cfg.label_nc, cfg.label_nc + 1):
            raise UsageError(f"this model takes input_nc={cfg.input_nc} with label_nc={cfg.label_nc}; "
                             "the CLI only builds labels (+ one boundary channel)")
        from .sources.labels import encode_frame, instance_boundary
        from .sources.base import SourceError

        ids = np.ascontiguousarray(frame[:, :, 0])
        boundary = instance_boundary(ids) if cfg.input_nc == cfg.label_nc + 1 else None
        try:
            return encode_frame(ids, cfg.label_nc, boundary)
        except SourceError as e:
            raise UsageError(f"{e}; are these label-id images (not colour-coded labels)?") from None
    raise UsageError(f"unknown source kind {kind!r}; choose one of {SOURCE_KINDS}")


# ---- commands -----------------------------------------------------------------------------------------
def _load_first_frame(path: str, index: int, size: tuple[int, int]) -> torch.Tensor:
    source = read_frames(path)
    if source.size != size:
        raise UsageError(f"--first-frame {path} is {source.size[0]}x{source.size[1]} but the source frames are "
                         f"{size[0]}x{size[1]}; resize it to match")
    for i, frame in enumerate(source):
        if i == index:
            return uint8_to_model(frame)
    raise UsageError(f"--first-frame-index {index} is past the end of {path}")


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .sampler import StreamingSampler

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda but CUDA is not available on this machine; use --device cpu")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be >= 1")
    model = load_generator(args.model, device=args.device)
    cfg = model.cfg
    frames = read_frames(args.source)
    m = cfg.size_multiple
    w, h = frames.size
    if w % m or h % m:
        raise UsageError(f"source frames are {w}x{h} but this model needs multiples of {m}; "
                         f"resize them, e.g. to {max(m, w // m * m)}x{max(m, h // m * m)}")
    advice = scale_advice((h, w), training_frame_size(args.model))
    if advice and not args.quiet:
        print(f"warning: {advice}", file=sys.stderr)
    first = _load_first_frame(args.first_frame, args.first_frame_index, frames.size) if args.first_frame else None
    sampler = StreamingSampler(model, device=args.device, precision=args.precision, seed=args.seed,
                               first_frame=first)
    fps = args.fps or frames.fps or DEFAULT_FPS
    total = frames.count if args.max_frames is None else min(args.max_frames, frames.count or args.max_frames)
    stream = iter(frames)
    sources = map(lambda frame: frame_to_source(frame, cfg, args.source_kind), stream)
    if args.max_frames is not None:
        sources = itertools.islice(sources, args.max_frames)
    first_source = next(sources)  # convert frame 0 before any output exists: most errors surface here
    with VideoWriter(args.out, fps=fps, size=frames.size) as writer, \
            tqdm(total=total, unit="frame", desc="generate", disable=args.quiet) as bar:
        for source in itertools.chain([first_source], sources):
            writer.write(model_to_uint8(sampler.step(source)[0]))
            bar.update(1)
    if not args.quiet:
        print(f"wrote {writer.count} frames to {args.out}", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    cfg = read_config(args.model)
    metadata = read_metadata(args.model)
    model = load_generator(args.model)
    n_params = sum(p.numel() for p in model.parameters())
    extras = {k: v for k, v in metadata.items() if k not in ("format", "v2v.config")}
    print(f"model: {args.model}")
    print(f"parameters: {n_params:,}")
    print(f"frame size: multiples of {cfg.size_multiple}; past frames L={cfg.n_past}; input channels {cfg.input_nc}")
    trained = training_frame_size(args.model)
    if trained:   # fully convolutional, but things are drawn at the scale it learnt: feed frames of this size
        print(f"trained on {trained[1]}x{trained[0]} (WxH) frames: feed sources of that size for its learnt scale")
    print("metadata: " + json.dumps(extras, indent=2, sort_keys=True))
    print("config: " + json.dumps(cfg.to_dict(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m v2v", description="vid2vid (NeurIPS 2018): streaming video synthesis")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="turn a source video (folder of frames or video file) into a video")
    gen.add_argument("--model", required=True, help="generator .safetensors file")
    gen.add_argument("--source", required=True, help="folder of frames (natural order) or a video file")
    gen.add_argument("--out", required=True, help="output .mp4/.mov/.mkv, or a folder (no extension) for PNGs")
    gen.add_argument("--source-kind", choices=SOURCE_KINDS, default="rgb",
                     help="rgb: frames are the source images (sketch/pose renderings); labels: label-id images "
                          "(grayscale PNGs, pixel value = label id; use lossless PNG folders, not videos)")
    gen.add_argument("--first-frame", metavar="PATH",
                     help="a real first frame (image, or folder/video with --first-frame-index); "
                          "without it the first frames are generated from zeros")
    gen.add_argument("--first-frame-index", type=int, default=0, metavar="N",
                     help="which frame of a --first-frame folder/video (default 0)")
    gen.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:N)")
    gen.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    gen.add_argument("--max-frames", type=int, metavar="N")
    gen.add_argument("--fps", type=float, help="output frame rate (default: the source's, else 25)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)

    info = sub.add_parser("info", help="print a generator file's config and parameter count")
    info.add_argument("--model", required=True)
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (set V2V_DEBUG=1 to get tracebacks instead of one-line errors)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # UsageError, CheckpointError, VideoError, ConfigError and the sampler's checks
        if os.environ.get("V2V_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable/unwritable paths
        if os.environ.get("V2V_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no output written", file=sys.stderr)
        return 130
