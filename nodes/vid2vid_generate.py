"""Vid2VidGenerate: a V2V_SOURCE through a vid2vid generator, as an IMAGE batch or streamed to a video file.

The node is an OUTPUT_NODE, so a workflow ``loader -> Vid2VidGenerate`` is complete: in ``video_file`` mode
it writes an mp4 under ComfyUI's output folder (memory flat in the video's length: the source streams
frame by frame into the generator and the encoder) and shows a few preview frames; in ``images`` mode it
returns every frame as IMAGE (refused up front when that would not fit in RAM) for any IMAGE node
(SaveImage, SaveAnimatedWEBP, VHS_VideoCombine, ...).  The source is checked against the model's recorded
recipe, resized to the model's training size when asked, padded to its size multiple otherwise, and the
history restarts at shot changes.  The work is :mod:`v2v.pipeline`; the model folder and cache are
:mod:`.models`.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from v2v.media.cuts import parse_cut_frames
from v2v.pipeline import (RESIZE_MODES, GenerateError, frame_range, generate_images, generate_to_file,
                          model_frame_size, prepare_source, scale_advice)
from v2v.sampler import PRECISIONS
from v2v.sources.base import ShotOptions

from . import models
from ._comfy import SOURCE_TYPE, progress
from .style_sample import STYLE_TYPE

OUTPUTS = ("video_file", "images")
DEVICES = ("auto", "cpu", "cuda")
PREVIEW_FRAMES = 4
log = logging.getLogger("vid2vid")

try:
    import folder_paths as _folder_paths
except Exception:  # noqa: BLE001
    _folder_paths = None

try:
    import comfy.model_management as _mm
except Exception:  # noqa: BLE001
    _mm = None


def pick_device(choice: str, precision: str = "fp32") -> str:
    if choice == "cuda" and not torch.cuda.is_available():
        raise GenerateError("device 'cuda' was chosen but CUDA is not available here; choose 'auto' or 'cpu'")
    if choice != "auto":
        return choice
    if precision == "int8":                     # a CPU's kernels only (v2v.quantize)
        return "cpu"
    if _mm is not None:
        return str(_mm.get_torch_device())
    return "cuda" if torch.cuda.is_available() else "cpu"


def output_device() -> torch.device:
    return _mm.intermediate_device() if _mm is not None else torch.device("cpu")


def output_directory() -> Path:
    if _folder_paths is not None:
        return Path(_folder_paths.get_output_directory())
    return Path(os.environ.get("V2V_OUTPUT_DIR") or Path.cwd() / "output")


def next_video_path(prefix: str, ext: str = ".mp4") -> tuple[Path, str, str]:
    """``(path, filename, subfolder)`` of a new ``<prefix>_NNNNN_.mp4`` under the output directory."""
    root = output_directory().resolve()
    prefix = (prefix or "vid2vid").strip().replace("\\", "/")
    target = (root / prefix).resolve()
    if root != target and root not in target.parents:
        raise GenerateError(f"filename_prefix {prefix!r} leaves ComfyUI's output directory")
    folder, stem = target.parent, target.name or "vid2vid"
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"_(\d+)_")
    used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    name = f"{stem}_{max(used, default=0) + 1:05d}_{ext}"
    return folder / name, name, str(folder.relative_to(root)) if folder != root else ""


def save_previews(preview: torch.Tensor, stem: str) -> list[dict]:
    """Preview frames as PNGs in ComfyUI's temp folder, as ``ui.images`` records (shown on the node)."""
    if _folder_paths is None or len(preview) == 0:
        return []
    import cv2

    from v2v.media.tensors import image_to_uint8

    folder = Path(_folder_paths.get_temp_directory())
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, rgb in enumerate(image_to_uint8(preview)):
        name = f"{stem}_preview_{i:02d}.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        records.append({"filename": name, "subfolder": "", "type": "temp"})
    return records


def run_generate(source, model_name="", output="video_file", seed=0, device="auto", precision="fp32", start_frame=0,
                 max_frames=0, filename_prefix="vid2vid/vid2vid", first_frame=None, style=None, model_path="",
                 resize="off", shot_cuts="detect", cut_frames="", compile=False, available_ram=None):
    """Everything the node does, callable without ComfyUI: ``(images, video_path, ui)``."""
    if output not in OUTPUTS:
        raise GenerateError(f"output must be one of {OUTPUTS}, got {output!r}")
    frames = frame_range(source, start_frame, max_frames)           # an empty source fails before loading
    shots = ShotOptions(detect=shot_cuts == "detect", cut_frames=parse_cut_frames(cut_frames or ""))
    dev = pick_device(device, precision)
    path = models.resolve_model(model_name, model_path)
    model = models.load_model(path, dev)
    source = prepare_source(model, source, resize=resize, model_name=path.name)
    advice = scale_advice(source.size, model_frame_size(model)) if resize == "off" else None
    if advice:
        log.warning("Vid2VidGenerate: %s", advice)
    common = dict(start=start_frame, max_frames=max_frames, first_frame=first_frame, style=style, device=dev,
                  precision=precision, seed=seed, shots=shots, progress=progress(len(frames)), compile=compile)
    if output == "images":
        images = generate_images(model, source, available=available_ram, **common)
        return images.to(output_device()), "", {}
    path, name, subfolder = next_video_path(filename_prefix)
    result = generate_to_file(model, source, path, preview_frames=PREVIEW_FRAMES, **common)
    video = {"filename": name, "subfolder": subfolder, "type": "output", "format": "video/mp4",
             "frame_rate": result.fps, "frame_count": result.frames}
    ui = {"images": save_previews(result.preview, path.stem), "videos": [video]}
    return result.preview.to(output_device()), str(result.path), ui


class Vid2VidGenerate(models.ModelFileNode):
    """Generate a video from a source (labels, sketch or pose) with a vid2vid model, frame by frame.
    video_file: streams an mp4 to the output folder (any length) and returns a few preview frames;
    images: returns every frame as an IMAGE batch (clips that fit in RAM)."""

    CATEGORY = "vid2vid"
    FUNCTION = "generate"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "STRING", "VIDEO")
    RETURN_NAMES = ("images", "video_path", "video")   # video: the core VIDEO type (hosts that have it)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source": (SOURCE_TYPE,),
                "model_name": (models.list_models(), {"tooltip": "a .safetensors generator in models/vid2vid"}),
                "output": (list(OUTPUTS), {"default": "video_file",
                                           "tooltip": "video_file: stream to an mp4 (flat memory) + preview; "
                                                      "images: every frame as IMAGE"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF,
                                 "tooltip": "style models without a style input connected: draws every "
                                            "object's style from the model's mixtures (other models are "
                                            "deterministic and ignore it)"}),
                "device": (list(DEVICES), {"default": "auto"}),
                "precision": (list(PRECISIONS), {
                    "default": "fp32",
                    "tooltip": "bf16: faster on recent GPUs; int8: an x86 CPU's 8-bit convolutions (device "
                               "auto then picks the CPU; not with compile)"}),
                "start_frame": ("INT", {"default": 0, "min": 0, "max": 1_000_000}),
                "max_frames": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "tooltip": "0 = to the end"}),
                "filename_prefix": ("STRING", {"default": "vid2vid/vid2vid"}),
            },
            "optional": {
                "first_frame": ("IMAGE", {"tooltip": "real first frame(s) (up to the model's L) to start from"}),
                "style": (STYLE_TYPE,),
                "model_path": ("STRING", {"default": "", "tooltip": "a model file in a vid2vid model folder by "
                                          "path (absolute, or relative to the folder), e.g. in a subfolder; "
                                          "overrides model_name"}),
                "resize": (list(RESIZE_MODES), {"default": "off",
                                                "tooltip": "off: keep the source's size (padded to the model's "
                                                           "multiple, cropped back); model: the model's training "
                                                           "size (same area and aspect ratio as the source)"}),
                "shot_cuts": (["detect", "off"], {"default": "detect",
                                                  "tooltip": "restart the history at shot changes of the source"}),
                "cut_frames": ("STRING", {"default": "", "tooltip": "frames where a new shot starts, e.g. 120, 300 "
                                          "(added to the detected ones)"}),
                "compile": ("BOOLEAN", {"default": False,
                                        "tooltip": "torch.compile the step (CUDA graphs on a GPU): faster long "
                                                   "videos; the first frames wait for the compiler (cached "
                                                   "after the first run)"}),
            },
        }

    def generate(self, source, model_name, output, seed, device, precision, start_frame, max_frames, filename_prefix,
                 **optional):
        images, path, ui = run_generate(source, model_name, output, seed, device, precision, start_frame,
                                        max_frames, filename_prefix, **optional)
        return {"ui": ui, "result": (images, path, core_video_output(images, path, source))}


def core_video_output(images: torch.Tensor, path: str, source):
    """The core VIDEO of a run: the mp4 written (video_file), else the frames with the source's frame rate;
    None on hosts without ``comfy_api`` (ComfyUI before the VIDEO type)."""
    try:
        from comfy_api.latest import InputImpl, Types
    except ImportError:
        return None
    if path:
        return InputImpl.VideoFromFile(path)
    from fractions import Fraction

    rate = Fraction(float(getattr(source, "fps", 0) or 30.0)).limit_denominator(1001)
    return InputImpl.VideoFromComponents(Types.VideoComponents(images=images, frame_rate=rate))


NODE_CLASS_MAPPINGS = {"Vid2VidGenerate": Vid2VidGenerate}
NODE_DISPLAY_NAME_MAPPINGS = {"Vid2VidGenerate": "vid2vid Generate"}
