"""StyleSample: the paper's multimodal synthesis, a style for every instance of a label video (V2V_STYLE)."""
from __future__ import annotations

import torch

from v2v.media.tensors import model_to_image
from v2v.model.checkpoint import read_config, read_metadata
from v2v.model.style import StylePlan, read_style_mixtures
from v2v.pipeline import prepare_source

from . import models
from ._comfy import SOURCE_TYPE

STYLE_TYPE = "V2V_STYLE"   # a StylePlan (or per-frame style features: a [style_nc, H, W] / [T, ...] tensor)


def parse_classes(text: str) -> set[int] | None:
    """``all`` (or empty): every class; ``none``: no class; else label ids such as ``1, 8``."""
    text = (text or "").strip().lower()
    if text in ("", "all"):
        return None
    if text == "none":
        return set()
    try:
        return {int(part) for part in text.replace(";", ",").split(",") if part.strip()}
    except ValueError:
        raise ValueError(f"resample_classes must be all, none or label ids like 1, 8; got {text!r}") from None


def sample_style(source, model_name="", seed=0, resample_classes="all", model_path=""):
    """Everything the node does, callable without ComfyUI: ``(plan, preview)``; the preview is the style map of
    the source's first frame as the generator will see it (pseudo-labels re-made with the model's centres), its
    first three style channels as RGB."""
    path = models.resolve_model(model_name, model_path)
    cfg = read_config(path)
    if not cfg.style_nc:
        raise ValueError(f"{path.name} has no style input (style_nc 0): StyleSample needs a model trained with "
                         "model.style_nc > 0, such as street_style.safetensors")
    if getattr(source, "kind", None) != "label" or source.label_nc != cfg.label_nc:
        raise ValueError(f"StyleSample needs the label source the model takes ({cfg.label_nc} classes), got a "
                         f"{getattr(source, 'kind', type(source).__name__)} source"
                         + (f" of {source.label_nc} classes" if getattr(source, "label_nc", None) else ""))
    source = prepare_source(models.load_model(path, "cpu"), source, model_name=path.name)  # what the generator sees
    mixtures = read_style_mixtures(read_metadata(path))
    classes = parse_classes(resample_classes)
    unknown = sorted((classes or set()) - set(range(cfg.label_nc)))
    if unknown:
        raise ValueError(f"resample_classes {unknown} are not label ids of this model (0..{cfg.label_nc - 1})")
    plan = StylePlan(mixtures, cfg.style_nc, seed=seed, resample=classes)
    first = next(iter(source.frames(0, 1)))
    style = plan.frame(first.ids, first.instance)[:3]
    style = torch.cat([style, style[-1:].expand(3 - len(style), -1, -1)]) if len(style) < 3 else style
    preview = model_to_image(style)
    return plan, preview


class StyleSample(models.ModelFileNode):
    """Draw a style for every object of a label video from the model's per-class mixtures (paper Sec. 3,
    multimodal synthesis): each instance (a stuff class, or one tracked person) keeps its style along the video,
    and each seed gives another look.  Classes left out of resample_classes keep the model's mean style."""

    CATEGORY = "vid2vid"
    FUNCTION = "sample"
    RETURN_TYPES = (STYLE_TYPE, "IMAGE")
    RETURN_NAMES = ("style", "preview")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source": (SOURCE_TYPE,),
                "model_name": (models.list_models(), {"tooltip": "a style model (style_nc > 0) in models/vid2vid"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF}),
                "resample_classes": ("STRING", {"default": "all", "tooltip": "all, none, or label ids such as "
                                                "1, 8: these classes get new styles, the others their mean"}),
            },
            "optional": {
                "model_path": ("STRING", {"default": "", "tooltip": "a model file in a vid2vid model folder by "
                                          "path; overrides model_name"}),
            },
        }

    def sample(self, source, model_name, seed, resample_classes, model_path=""):
        return sample_style(source, model_name, seed, resample_classes, model_path)


NODE_CLASS_MAPPINGS = {"StyleSample": StyleSample}
NODE_DISPLAY_NAME_MAPPINGS = {"StyleSample": "vid2vid Style Sample"}
