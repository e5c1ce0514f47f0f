"""FuturePredict: continue a video (paper Sec. 4): predict its next label maps, then render them as frames."""
from __future__ import annotations

import time

import numpy as np
import torch

from v2v.future import check_pair, predict_future
from v2v.media.resize import resize_image
from v2v.media.tensors import image_to_uint8, model_to_image, uint8_to_image
from v2v.model.checkpoint import training_frame_size
from v2v.pipeline import GenerateError, prepare_source
from v2v.sampler import PRECISIONS
from v2v.sources.labels import label_colors

from . import models
from ._comfy import SOURCE_TYPE
from .vid2vid_generate import DEVICES, output_device, pick_device, save_previews


def _real_frames(images: torch.Tensor, first: int, count: int, size: tuple[int, int]) -> np.ndarray:
    """Frames ``first .. first + count - 1`` of an IMAGE batch (the observed video), uint8 at ``size``."""
    if images.shape[0] < first + count:
        raise GenerateError(f"observed_frames has {images.shape[0]} frames but the source has {first + count}: "
                            "connect the frames of the video the source was made from")
    return np.stack([resize_image(f, size) for f in image_to_uint8(images[first:first + count])])


def run_predict(source, predictor_name="", renderer_name="", n_future=10, observed=0, device="auto",
                precision="fp32", observed_frames=None, predictor_path="", renderer_path=""):
    """Everything the node does, callable without ComfyUI: ``(map previews, frames)`` as IMAGE batches."""
    if n_future < 1:
        raise GenerateError("n_future must be >= 1")
    dev = pick_device(device, precision)
    predictor_file = models.resolve_model(predictor_name, predictor_path)
    renderer_file = models.resolve_model(renderer_name, renderer_path)
    predictor, renderer = models.load_model(predictor_file, dev), models.load_model(renderer_file, dev)
    check_pair(predictor, renderer, predictor_file.name, renderer_file.name)
    source = prepare_source(renderer, source, model_name=renderer_file.name)
    if source.kind != "label":
        raise GenerateError(f"FuturePredict observes label maps (LabelVideoLoader), got a {source.kind} source")
    start = max(0, len(source) - observed) if observed else 0
    maps = [f.ids.astype(np.uint8) for f in source.frames(start)]
    real = None
    if observed_frames is not None:
        last = min(renderer.cfg.n_past, len(maps))
        real = _real_frames(observed_frames, start + len(maps) - last, last, source.size)
    predicted, frames = predict_future(predictor, renderer, maps, n_future, real,
                                       predictor_size=training_frame_size(predictor.file_metadata), device=dev,
                                       precision=precision)
    images = model_to_image(torch.stack([f.cpu() for f in frames]))
    previews = uint8_to_image(np.stack([label_colors(m, renderer.cfg.label_nc) for m in predicted]))
    return previews.to(output_device()), images.to(output_device())


class FuturePredict:
    """Future video prediction (paper Sec. 4): a predictor continues the observed label maps frame by frame
    (warping its last map and hallucinating what appears), a vid2vid model renders the predicted maps; the real
    observed frames, when connected, start the rendering."""

    CATEGORY = "vid2vid"
    FUNCTION = "predict"
    OUTPUT_NODE = True          # shows the predicted maps and frames on the node
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("predicted_maps", "predicted_frames")

    @classmethod
    def INPUT_TYPES(cls):
        names = models.list_models()
        return {
            "required": {
                "source": (SOURCE_TYPE, {"tooltip": "the observed video's label maps (LabelVideoLoader)"}),
                "predictor_name": (names, {"tooltip": "a label-map predictor, e.g. street_predict.safetensors"}),
                "renderer_name": (names, {"tooltip": "the labels -> video model for the same label maps"}),
                "n_future": ("INT", {"default": 10, "min": 1, "max": 10_000}),
                "observed": ("INT", {"default": 0, "min": 0, "max": 1_000_000,
                                     "tooltip": "observe only the source's last N frames (0 = all)"}),
                "device": (list(DEVICES), {"default": "auto"}),
                "precision": (list(PRECISIONS), {"default": "fp32"}),
            },
            "optional": {
                "observed_frames": ("IMAGE", {"tooltip": "the real frames of the observed video: its last ones "
                                              "start the rendering"}),
                "predictor_path": ("STRING", {"default": "", "tooltip": "overrides predictor_name"}),
                "renderer_path": ("STRING", {"default": "", "tooltip": "overrides renderer_name"}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, predictor_name="", renderer_name="", predictor_path="", renderer_path=""):
        for name, path in ((predictor_name, predictor_path), (renderer_name, renderer_path)):
            ok = models.ModelFileNode.VALIDATE_INPUTS(name, path)
            if ok is not True:
                return ok
        return True

    @classmethod
    def IS_CHANGED(cls, predictor_name="", renderer_name="", predictor_path="", renderer_path="", **kwargs):
        return "/".join(models.ModelFileNode.IS_CHANGED(name, path) for name, path in
                        ((predictor_name, predictor_path), (renderer_name, renderer_path)))

    def predict(self, source, predictor_name, renderer_name, n_future, observed, device, precision, **optional):
        maps, frames = run_predict(source, predictor_name, renderer_name, n_future, observed, device, precision,
                                   **optional)
        picks = sorted({round(i * (len(frames) - 1) / 3) for i in range(4)})     # a few, spread over the future
        ui = {"images": save_previews(torch.cat([maps[picks], frames[picks]], 2).cpu(), f"vid2vid_future_{time.time_ns()}")}
        return {"ui": ui, "result": (maps, frames)}


NODE_CLASS_MAPPINGS = {"FuturePredict": FuturePredict}
NODE_DISPLAY_NAME_MAPPINGS = {"FuturePredict": "vid2vid Future Predict"}
