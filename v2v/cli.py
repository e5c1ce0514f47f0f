"""Command line: ``python -m v2v generate|info``.

    python -m v2v generate --model M.safetensors --source <video | folder> --out out.mp4 \
        [--source-kind auto|video|labels|rgb|array] [--crop X,Y,W,H|face] [--resize off|model|WxH] \
        [--cuts detect|off] [--cut-frames 120,300] [--first-frame IMAGE_OR_VIDEO [--first-frame-index N]] \
        [--start-frame N] [--max-frames N] [--device cpu|cuda] [--precision fp32|bf16|int8] [--compile] [--fps F] \
        [--read-ahead N] [--write-behind N] [--seed S] [--stats stats.json] [--quiet]
    python -m v2v predict --predictor P.safetensors --renderer R.safetensors --source <video | label folder> \
        --future N --out future.mp4 [--observed N] [--real VIDEO] [--maps-out maps.mp4] [--resize off|model|WxH]
    python -m v2v info --model M.safetensors

``generate`` streams disk to disk through :func:`v2v.pipeline.generate`: one frame is decoded, turned into
the model's source, generated and written before the next is read.  A raw video is turned into the source
the model was trained on by the recipe its file records (face sketch, pose skeletons, pseudo-labels with the
model's label centres); prepared sources (label-id PNGs, renderings, ``.npy`` arrays) are read as they are.
Errors a user can fix print one line ``error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from .model.checkpoint import load_generator, read_config, read_metadata, training_frame_size
from .media.resize import parse_crop
from .media.tensors import uint8_to_image
from .media.video_io import IMAGE_EXTENSIONS, read_frames
from .prefetch import READ_AHEAD, WRITE_BEHIND
from .sampler import PRECISIONS

SOURCE_KINDS = ("auto", "video", "labels", "rgb", "array")
DEFAULT_FPS = 25.0


class UsageError(ValueError):
    """A problem with the command line's inputs (printed as one line, exit status 2)."""


# ---- what --source is ------------------------------------------------------------------------------------
def _looks_like_ids(path: Path, label_nc: int) -> bool:
    """A folder whose first image is an id map (one channel, or grey RGB, values < label_nc): prepared labels."""
    import cv2

    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if path.is_dir() else []
    if not images:
        return False
    img = cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED)
    if img is None:
        return False
    if img.ndim == 3:
        if not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])):
            return False
        img = img[..., 0]
    return int(img.max()) < label_nc


def source_kind(path: Path, model, recipe) -> str:
    """``auto``: .npy frames are arrays; a label model's id-map folder is labels; a model with a recipe takes
    anything else as raw video; without a recipe, label models take labels and 3-channel models renderings."""
    from .sources.recipe import FROM_VIDEO

    cfg = model.cfg
    if path.is_dir() and any(path.glob("*.npy")):
        return "array"
    if cfg.label_nc and _looks_like_ids(path, cfg.label_nc):
        return "labels"
    if recipe is not None and recipe.extractor in FROM_VIDEO:
        return "video"
    if cfg.label_nc:
        return "labels"
    if cfg.input_nc == 3:
        return "rgb"
    raise UsageError(f"this model takes {cfg.input_nc}-channel sources and its file records no source recipe, so "
                     "they cannot be made from a video here: give a folder of the .npy source frames "
                     "(--source-kind array)")


def load_source(path: Path, kind: str, model, recipe, *, fps: float | None, log, model_name: str,
                crop: tuple[int, int, int, int] | None = None, resize=None):
    """The SourceVideo of ``--source`` read as ``kind``, made ready for ``model`` (:func:`v2v.pipeline.
    prepare_source`), and the size of its frames as given, ``(h, w)`` (``crop``: a window of a raw video's frames).
    A raw video is extracted at the size ``resize`` asks for straight away: extracting at its own size first and
    again resized fitted the background model (MOG2) twice, seconds of each run."""
    from .pipeline import prepare_source, target_size
    from .sources.labels import label_video
    from .sources.recipe import source_for
    from .sources.prepared import array_source, rendering_source

    cfg = model.cfg
    if kind == "video":
        if recipe is None:
            raise UsageError("this model file records no source recipe (it predates them or comes from elsewhere), "
                             "so it cannot turn a raw video into its source: give prepared sources with "
                             "--source-kind labels, rgb or array")
        from .sources.base import video_input

        video = video_input(path, fps=fps)
        if crop == "face":               # framed like the shipped face models' training clips
            from .sources.sketch import face_window

            try:
                crop = face_window(video)
            except (ValueError, ImportError) as e:
                raise UsageError(f"--crop face: {e}") from None
            log(f"--crop face: the face's window is {','.join(map(str, crop))} (X,Y,W,H)")
        if crop is not None:
            try:
                video = video.edit(crop=crop)
            except ValueError as e:
                raise UsageError(f"--crop: {e}") from None
        log(f"source: {recipe.describe()}, extracted from {path} ({video.width}x{video.height}, {len(video)} frames)")
        video_size = (video.height, video.width)
        source = source_for(recipe, video, target_size(model, video_size, resize))
        return prepare_source(model, source, model_name=model_name), video_size     # already at its size
    if crop is not None:
        raise UsageError("--crop applies to raw video (--source-kind video); crop prepared sources beforehand")
    if kind == "labels":
        if not cfg.label_nc:
            raise UsageError("--source-kind labels needs a label model (label_nc > 0); this one has label_nc=0")
        boundary = None
        if cfg.input_nc == cfg.label_nc + 1:       # instance maps beside the labels (prepare.py's layout), else
            sibling = path.parent / "instance"      # every label segment is one instance
            boundary = sibling if path.name == "source" and sibling.is_dir() else "labels"
        label_set = recipe.params.get("label_set") if recipe is not None and recipe.extractor == "label_maps" else None
        source = label_video(path, label_nc=cfg.label_nc, label_set_name=label_set, instances=boundary, fps=fps or 30.0)
    elif kind == "rgb":
        source = rendering_source(path, kind="pose" if recipe is None or recipe.kind == "pose" else "sketch",
                                  fps=fps or 30.0)
    elif kind == "array":
        source = array_source(path, fps=fps or 30.0)
    else:
        raise UsageError(f"unknown source kind {kind!r}; choose one of {SOURCE_KINDS}")
    return prepare_source(model, source, resize=resize, model_name=model_name), source.size


def _crop_arg(text: str):
    return "face" if text == "face" else parse_crop(text)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"takes a whole number >= 0, got {text!r}")
    return value


def _resize_arg(text: str):
    if text in ("off", "model"):
        return text
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--resize takes off, model or WIDTHxHEIGHT (e.g. 256x192); got {text!r}") from None
    return (h, w)


def _check_output(out: Path, source: Path) -> None:
    """Refuse an output that would overwrite the source (the same file, or a folder inside the source folder)."""
    out_r, src_r = out.resolve(), source.resolve()
    if out_r == src_r or (src_r.is_dir() and src_r in out_r.parents):
        raise UsageError(f"--out {out} would overwrite the source {source}; choose an output outside it")


def _first_frame_image(path: str, index: int, video_size: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """--first-frame as an IMAGE ``[1, H, W, 3]`` at the generation size ``size``: a frame of the video's own size
    ``video_size`` is resized along with the video, any other size is refused."""
    from .media.resize import resize_image

    source = read_frames(path)
    if index >= (source.count or 0):
        raise UsageError(f"--first-frame-index {index} is past the end of {path}")
    frame = source.read(index)
    if frame.shape[:2] not in (size, video_size):
        raise UsageError(f"--first-frame {path} is {frame.shape[1]}x{frame.shape[0]} but the source frames are "
                         f"{video_size[1]}x{video_size[0]}; give a frame of the video's size")
    return uint8_to_image(resize_image(frame, size)[None])


def _style(args: argparse.Namespace, model):
    """--style-classes / --style-reference: the style plan of a style model (StyleSample's, on the command line)."""
    from .model.checkpoint import load_style_encoder
    from .model.style import parse_classes
    from .pipeline import style_plan

    if not model.cfg.style_nc:
        raise UsageError(f"--style-classes / --style-reference need a style model; {args.model} has no style input")
    reference, encoder = None, None
    if args.style_reference:
        frames = read_frames(args.style_reference)
        if not frames.count:
            raise UsageError(f"--style-reference {args.style_reference}: no image in it")
        reference, encoder = frames.read(0), load_style_encoder(args.model)
    return style_plan(model, seed=args.seed, resample=parse_classes(args.style_classes, model.cfg.label_nc,
                                                                   what="--style-classes"),
                      reference=reference, encoder=encoder)


# ---- commands -----------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .pipeline import PartialOutput, RunStats, generate_to_file, model_frame_size, model_recipe, scale_advice
    from .sources.base import ShotOptions
    from .media.cuts import parse_cut_frames

    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda but CUDA is not available on this machine; use --device cpu")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be >= 1")
    src_path, out = Path(args.source), Path(args.out)
    if not src_path.exists():
        raise UsageError(f"--source {src_path}: no such file or folder")
    _check_output(out, src_path)
    model = load_generator(args.model, device=args.device)
    recipe = model_recipe(model)
    kind = source_kind(src_path, model, recipe) if args.source_kind == "auto" else args.source_kind
    source, video_size = load_source(src_path, kind, model, recipe, fps=args.fps, log=log, crop=args.crop,
                                     resize=args.resize, model_name=Path(args.model).name)
    if args.resize in (None, "off"):
        advice = scale_advice(source.size, model_frame_size(model))
        if advice:
            log(f"warning: {advice}")
    shots = ShotOptions(detect=args.cuts == "detect", cut_frames=parse_cut_frames(args.cut_frames or ""))
    first = (_first_frame_image(args.first_frame, args.first_frame_index, video_size, source.size)
             if args.first_frame else None)
    style = _style(args, model) if (args.style_classes or args.style_reference) else None
    stats = RunStats()
    n = len(source) - args.start_frame if args.max_frames is None else min(args.max_frames, len(source) - args.start_frame)
    with tqdm(total=max(0, n), unit="frame", desc="generate", disable=args.quiet) as bar:
        try:
            result = generate_to_file(model, source, out, start=args.start_frame, max_frames=args.max_frames or 0,
                                      fps=args.fps or source.fps or DEFAULT_FPS, first_frame=first, device=args.device,
                                      precision=args.precision, seed=args.seed, style=style, shots=shots, stats=stats,
                                      compile=args.compile, read_ahead=args.read_ahead,
                                      write_behind=args.write_behind,
                                      progress=lambda done, total: bar.update(1))
        except PartialOutput as e:
            _write_stats(args.stats, e.result.stats, source, partial=True)
            raise
    _write_stats(args.stats, stats, source)
    cuts = f"; history restarted at {len(stats.cuts)} cut(s): frames {', '.join(map(str, stats.cuts))}" if stats.cuts else ""
    log(f"wrote {result.frames} frames of {result.size[0]}x{result.size[1]} to {out} in {stats.seconds:.1f} s: "
        f"{stats.fps():.2f} frames/s end to end, {stats.sampler_fps():.2f} in the generator{cuts}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Future video prediction (v2v.future): the observed frames' label maps (made from a raw video by the
    renderer's recipe, or given as label-id images), continued by the predictor and rendered by the renderer,
    starting from the last observed real frames."""
    from .future import check_pair, predict_future
    from .media.resize import resize_image
    from .media.tensors import model_to_uint8
    from .media.video_io import VideoWriter, open_video
    from .pipeline import model_recipe
    from .sources.labels import label_colors

    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    if args.future < 1:
        raise UsageError("--future must be >= 1")
    src_path, out = Path(args.source), Path(args.out)
    if not src_path.exists():
        raise UsageError(f"--source {src_path}: no such file or folder")
    _check_output(out, src_path)
    predictor, renderer = load_generator(args.predictor, device=args.device), load_generator(args.renderer, device=args.device)
    check_pair(predictor, renderer, f"--predictor {args.predictor}", f"--renderer {args.renderer}")
    recipe = model_recipe(renderer)
    kind = source_kind(src_path, renderer, recipe) if args.source_kind == "auto" else args.source_kind
    if kind not in ("video", "labels"):
        raise UsageError("--source must be a raw video or label-id images (the maps the renderer takes)")
    source, _ = load_source(src_path, kind, renderer, recipe, fps=args.fps, log=log, resize=args.resize,
                            model_name=Path(args.renderer).name)
    start = 0 if args.observed is None else max(0, len(source) - args.observed)
    observed = [f.ids.astype(np.uint8) for f in source.frames(start)]
    real_path = src_path if kind == "video" else (Path(args.real) if args.real else None)
    real = None
    if real_path is not None:   # the real frames of the last observed maps start the renderer's history
        video = open_video(real_path)
        last = min(renderer.cfg.n_past, len(observed))
        if len(video) < start + len(observed):
            raise UsageError(f"--real {real_path} has {len(video)} frames, fewer than the {start + len(observed)} "
                             "observed maps")
        first = start + len(observed) - last
        real = np.stack([resize_image(f, source.size) for _, f in video.frames(first, first + last)])
    log(f"observed {len(observed)} maps of {source.size[1]}x{source.size[0]}; predicting {args.future} frames"
        + ("" if real is not None else " (no real frames: the renderer starts from its own)"))
    predicted, frames = predict_future(predictor, renderer, observed, args.future, real,
                                       predictor_size=training_frame_size(args.predictor), device=args.device,
                                       precision=args.precision)
    fps = args.fps or source.fps or DEFAULT_FPS
    with VideoWriter(out, fps=fps) as writer:
        for frame in frames:
            writer.write(model_to_uint8(frame))
    if args.maps_out:
        with VideoWriter(args.maps_out, fps=fps) as writer:
            for ids in predicted:
                writer.write(label_colors(ids, renderer.cfg.label_nc))
    log(f"wrote {len(predicted)} predicted frames to {out}" + (f", their label maps to {args.maps_out}" if args.maps_out else ""))
    return 0


def _write_stats(path: str | None, stats, source, partial: bool = False) -> None:
    if not path:
        return
    report = {**stats.to_dict(), "partial": partial, "source": source.metadata()}
    Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n")


def cmd_info(args: argparse.Namespace) -> int:
    from .sources.recipe import METADATA_KEY, from_json

    cfg = read_config(args.model)
    metadata = read_metadata(args.model)
    model = load_generator(args.model)
    n_params = sum(p.numel() for p in model.parameters())
    extras = {k: v for k, v in metadata.items() if k not in ("format", "v2v.config")}
    print(f"model: {args.model}")
    print(f"parameters: {n_params:,}")
    print(f"frame size: multiples of {cfg.size_multiple} (other sizes are padded); past frames L={cfg.n_past}; "
          f"input channels {cfg.input_nc}")
    trained = training_frame_size(args.model)
    if trained:   # fully convolutional, but things are drawn at the scale it learnt: feed frames of this size
        print(f"trained on {trained[1]}x{trained[0]} (WxH) frames: --resize model generates at that scale")
    else:
        print("trained at no single frame size (clips of several sizes, or not recorded): choose --resize WxH so "
              "that things have the size they had in training (models/vid2vid/README.md says it per model)")
    recipe = from_json(metadata.get(METADATA_KEY), where=args.model)
    if recipe is not None:
        print(f"source: {recipe.describe()}" + ("" if recipe.extract_scale == 1 else
                                                f", extracted at {recipe.extract_scale:g}x the frame size"))
    else:
        print("source: not recorded (give prepared sources: label-id PNGs, renderings or .npy arrays)")
    if cfg.style_nc:
        from .model.checkpoint import STYLE_ENCODER_KEY
        from .model.style import STYLE_GMM_KEY

        classes = sorted(json.loads(metadata[STYLE_GMM_KEY]), key=int) if STYLE_GMM_KEY in metadata else []
        print(f"style: {cfg.style_nc}-d per instance; mixtures for classes {', '.join(classes) or 'none'}; "
              + ("carries its style encoder (--style-reference works)" if STYLE_ENCODER_KEY in metadata
                 else "no style encoder (no --style-reference)"))
    print("metadata: " + json.dumps(extras, indent=2, sort_keys=True))
    print("config: " + json.dumps(cfg.to_dict(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m v2v", description="vid2vid (NeurIPS 2018): streaming video synthesis")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="turn a video (raw footage, or prepared sources) into a generated video")
    gen.add_argument("--model", required=True, help="generator .safetensors file")
    gen.add_argument("--source", required=True, help="a video file or a folder of frames (natural order)")
    gen.add_argument("--out", required=True, help="output .mp4/.mov/.mkv, or a folder (no extension) for PNGs")
    gen.add_argument("--source-kind", choices=SOURCE_KINDS, default="auto",
                     help="video: raw footage, turned into the model's source by the recipe its file records; "
                          "labels: label-id images (PNG, 8 or 16 bit); rgb: frames that already are the source "
                          "(skeleton or sketch renderings); array: a folder of .npy source frames [C, H, W]; "
                          "auto (default): .npy -> array, id maps -> labels, else video when the model has a recipe")
    gen.add_argument("--resize", type=_resize_arg, default="off", metavar="off|model|WxH",
                     help="off (default): keep the size (padded to the model's multiple, cropped back); model: the "
                          "model's training size (same area, the video's aspect ratio); or WIDTHxHEIGHT")
    gen.add_argument("--crop", type=_crop_arg, metavar="X,Y,W,H|face",
                     help="keep this window of every frame of a raw video (its pixels), before --resize: e.g. "
                          "where people walk, so they have the size the model learnt; face: the window that frames "
                          "the video's face as the face models were trained (dlib; with --resize model)")
    gen.add_argument("--cuts", choices=("detect", "off"), default="detect",
                     help="restart the history at shot changes found in the video (default), or never")
    gen.add_argument("--cut-frames", default="", metavar="N,N,...",
                     help="frames where a new shot starts (in addition to the detected ones)")
    gen.add_argument("--first-frame", metavar="PATH",
                     help="a real first frame (image, or folder/video with --first-frame-index); "
                          "without it the first frames are generated from zeros")
    gen.add_argument("--first-frame-index", type=int, default=0, metavar="N",
                     help="which frame of a --first-frame folder/video (default 0)")
    gen.add_argument("--start-frame", type=int, default=0, metavar="N", help="first source frame to generate")
    gen.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:N)")
    gen.add_argument("--precision", choices=PRECISIONS, default="fp32",
                     help="bf16: faster on recent GPUs; int8: an x86 CPU's 8-bit convolutions (README 'Measured')")
    gen.add_argument("--compile", action="store_true",
                     help="torch.compile the generator's step (CUDA graphs on a GPU); the first frames wait for "
                          "the compiler, see README 'Measured' for when it pays")
    gen.add_argument("--read-ahead", type=_non_negative, default=READ_AHEAD, metavar="N",
                     help=f"source frames decoded and extracted ahead in a second thread while the network works "
                          f"(default {READ_AHEAD}; 0: one after the other)")
    gen.add_argument("--write-behind", type=_non_negative, default=WRITE_BEHIND, metavar="N",
                     help=f"generated frames that may wait for the encoder, which runs in a second thread while the "
                          f"network works (default {WRITE_BEHIND}; 0: one after the other)")
    gen.add_argument("--max-frames", type=int, metavar="N")
    gen.add_argument("--fps", type=float, help="output frame rate (default: the source's, else 25)")
    gen.add_argument("--seed", type=int, default=0,
                     help="draws every object's style from a style model's mixtures (other models ignore it)")
    gen.add_argument("--style-classes", default="", metavar="all|none|N,N",
                     help="style models: only these label ids get new styles from --seed, the others their mean "
                          "(default: all)")
    gen.add_argument("--style-reference", metavar="IMAGE",
                     help="style models: the classes this picture shows take its look (labelled like the video, "
                          "encoded by the model's style encoder)")
    gen.add_argument("--stats", metavar="PATH", help="write the run's timings and source report as JSON")
    gen.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    gen.set_defaults(func=cmd_generate)

    pred = sub.add_parser("predict", help="future video prediction: continue a video's label maps and render them")
    pred.add_argument("--predictor", required=True, help="label-map predictor .safetensors (data.predict: true)")
    pred.add_argument("--renderer", required=True, help="label -> video generator .safetensors")
    pred.add_argument("--source", required=True, help="the observed video, or its label-id images")
    pred.add_argument("--source-kind", choices=("auto", "video", "labels"), default="auto")
    pred.add_argument("--future", type=int, required=True, metavar="N", help="frames to predict")
    pred.add_argument("--observed", type=int, metavar="N", help="observe only the last N frames (default: all)")
    pred.add_argument("--real", metavar="VIDEO", help="with label images: the real video they belong to (its frames "
                                                      "of the last observed maps start the renderer)")
    pred.add_argument("--out", required=True, help="output video of the predicted frames")
    pred.add_argument("--maps-out", metavar="PATH", help="also write the predicted label maps (colours) here")
    pred.add_argument("--resize", type=_resize_arg, default="off", metavar="off|model|WxH",
                      help="as for generate: the size the renderer works at")
    pred.add_argument("--device", default="cpu")
    pred.add_argument("--precision", choices=PRECISIONS, default="fp32")
    pred.add_argument("--fps", type=float)
    pred.add_argument("--quiet", action="store_true")
    pred.set_defaults(func=cmd_predict)

    info = sub.add_parser("info", help="print a generator file's config, source recipe and parameter count")
    info.add_argument("--model", required=True)
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (set V2V_DEBUG=1 to get tracebacks instead of one-line errors)."""
    args = build_parser().parse_args(argv)
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):       # a kill ends like Ctrl-C: the half-written output is removed
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (ValueError, ImportError) as e:  # UsageError, CheckpointError, VideoError, SourceError, missing extras
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
    finally:
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)


def _terminate(signum, frame):
    raise KeyboardInterrupt
