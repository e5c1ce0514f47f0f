"""StyleSample: the paper's multimodal synthesis, a style for every instance of a label video (V2V_STYLE)."""
from __future__ import annotations

import torch

from v2v.media.tensors import image_to_uint8, model_to_image
from v2v.model.checkpoint import load_style_encoder
from v2v.model.style import parse_classes
from v2v.pipeline import prepare_source, style_plan

from . import models
from ._comfy import SOURCE_TYPE

STYLE_TYPE = "V2V_STYLE"   # a StylePlan (or per-frame style features: a [style_nc, H, W] / [T, ...] tensor)


def sample_style(source, model_name="", seed=0, resample_classes="all", model_path="", reference_image=None,
                 reference_classes="all"):
    """Everything the node does, callable without ComfyUI: ``(plan, preview)``; the preview is the style map of
    the source's first frame as the generator will see it (pseudo-labels re-made with the model's centres), its
    first three style channels as RGB."""
    path = models.resolve_model(model_name, model_path)
    model = models.load_model(path, "cpu")
    cfg = model.cfg
    if not cfg.style_nc:
        raise ValueError(f"{path.name} has no style input (style_nc 0): StyleSample needs a model trained with "
                         "model.style_nc > 0, such as street_style.safetensors")
    if getattr(source, "kind", None) != "label" or source.label_nc != cfg.label_nc:
        raise ValueError(f"StyleSample needs the label source the model takes ({cfg.label_nc} classes), got a "
                         f"{getattr(source, 'kind', type(source).__name__)} source"
                         + (f" of {source.label_nc} classes" if getattr(source, "label_nc", None) else ""))
    source = prepare_source(model, source, model_name=path.name)  # what the generator sees
    resample = parse_classes(resample_classes, cfg.label_nc, what="resample_classes")
    reference, encoder = None, None
    if reference_image is not None:
        reference = image_to_uint8(reference_image[:1])[0]
        encoder = load_style_encoder(path)
    plan = style_plan(model, seed=seed, resample=resample, reference=reference, encoder=encoder,
                      reference_classes=parse_classes(reference_classes, cfg.label_nc, what="reference_classes"))
    first = next(iter(source.frames(0, 1)))
    style = plan.frame(first.ids, first.instance)[:3]
    style = torch.cat([style, style[-1:].expand(3 - len(style), -1, -1)]) if len(style) < 3 else style
    preview = model_to_image(style)
    return plan, preview


class StyleSample(models.ModelFileNode):
    """Draw a style for every object of a label video from the model's per-class mixtures (paper Sec. 3,
    multimodal synthesis): each instance (a stuff class, or one tracked person) keeps its style along the video,
    and each seed gives another look.  Classes left out of resample_classes keep the model's mean style; with a
    reference image, the classes it shows take its look instead (encoded by the model's style encoder E)."""

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
                "reference_image": ("IMAGE", {"tooltip": "take styles from this picture (its first image): it is "
                                              "labelled like the video and encoded by the model's style encoder"}),
                "reference_classes": ("STRING", {"default": "all", "tooltip": "with a reference image: all, or "
                                                 "label ids such as 7: these classes take the reference's style"}),
            },
        }

    def sample(self, source, model_name, seed, resample_classes, model_path="", reference_image=None,
               reference_classes="all"):
        return sample_style(source, model_name, seed, resample_classes, model_path, reference_image,
                            reference_classes)


NODE_CLASS_MAPPINGS = {"StyleSample": StyleSample}
NODE_DISPLAY_NAME_MAPPINGS = {"StyleSample": "vid2vid Style Sample"}
