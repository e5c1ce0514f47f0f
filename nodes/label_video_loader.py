"""LabelVideoLoader: label maps (Cityscapes ids, color maps, or pseudo-labels of footage) -> V2V_SOURCE."""
from __future__ import annotations

from v2v.sources import labels, pseudo_labels

from ._comfy import (SOURCE_TYPE, SourceNode, core_video, frame_limit, progress, resolve_input_path,
                     validate_input_path, video_inputs)

FORMATS = ("cityscapes_labelIds", "cityscapes_trainIds", "cityscapes_color", "ids", "color", "pseudo")
_SETS = {"cityscapes_labelIds": ("cityscapes", "ids"), "cityscapes_trainIds": ("cityscapes_train", "ids"),
         "cityscapes_color": ("cityscapes", "color"), "ids": (None, "ids"), "color": (None, "color")}


def load_labels(label_format, label_nc, instance_boundary, images=None, path="", instance_path="", remap="",
                pseudo_k=8, person_mask="mog2", max_frames=0, fps=30.0, video=None):
    """Everything the node does, callable without ComfyUI: a lazy source (frames are read, or pseudo-labelled,
    as Vid2VidGenerate streams them)."""
    src_path = resolve_input_path(path) if path and path.strip() else None
    if video is not None:
        images, fps = core_video(video, fps)
    if images is None and src_path is None:
        raise ValueError("LabelVideoLoader needs an IMAGE or VIDEO input or a path under the input directory")
    video = images if images is not None else src_path
    n = frame_limit(max_frames)
    if label_format == "pseudo":
        return pseudo_labels.pseudo_label_video(video, k=pseudo_k, person=person_mask, instances=instance_boundary,
                                                fps=fps, max_frames=n, progress=progress())
    set_name, mode = _SETS[label_format]
    if set_name is None and label_nc <= 0:
        raise ValueError(f"label_format {label_format!r} needs label_nc > 0")
    instances = None
    if instance_boundary:
        if instance_path and instance_path.strip():
            instances = resolve_input_path(instance_path)
        elif src_path is not None and src_path.is_dir() and set_name and any(src_path.glob("*instanceIds.png")):
            instances = True
        else:
            instances = "labels"
    return labels.label_video(video, label_nc=label_nc or None, label_set_name=set_name, mode=mode,
                              instances=instances, remap=labels.parse_mapping(remap) if remap.strip() else None,
                              fps=fps, max_frames=n)


class LabelVideoLoader(SourceNode):
    """Semantic label video for vid2vid: Cityscapes labelIds/trainIds/color PNG folders, any id or
    color-coded maps, or pseudo-labels (k-means + moving-person masks) of your own footage."""

    FUNCTION = "load"
    PATH_INPUTS = ("path", "instance_path")
    RETURN_TYPES = (SOURCE_TYPE, "IMAGE")
    RETURN_NAMES = ("source", "preview")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "label_format": (list(FORMATS), {"default": "cityscapes_labelIds"}),
                "label_nc": ("INT", {"default": 0, "min": 0, "max": 1024,
                                     "tooltip": "one-hot channels; 0 = the label set's (35 labelIds, 19 trainIds, k+1 pseudo)"}),
                "instance_boundary": ("BOOLEAN", {"default": True}),
            },
            "optional": video_inputs(
                "folder of label PNGs or a video, under the input directory",
                instance_path=("STRING", {"default": ""}),
                remap=("STRING", {"default": "", "multiline": True, "tooltip": "e.g. vegetation->building, 26->24"}),
                pseudo_k=("INT", {"default": 8, "min": 2, "max": 64}),
                person_mask=(["mog2", "selfie", "both", "none"], {"default": "mog2"})),
        }

    @classmethod
    def VALIDATE_INPUTS(cls, path="", instance_path=""):
        ok = validate_input_path(path)
        return ok if ok is not True else validate_input_path(instance_path)

    def load(self, label_format, label_nc, instance_boundary, **optional):
        source = load_labels(label_format, label_nc, instance_boundary, **optional)
        return (source, source.preview())


NODE_CLASS_MAPPINGS = {"LabelVideoLoader": LabelVideoLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"LabelVideoLoader": "vid2vid Label Video Loader"}
