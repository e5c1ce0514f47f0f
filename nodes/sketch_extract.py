"""SketchExtract: video -> face sketch (68 landmarks + edges + distance maps) or edge sketch V2V_SOURCE."""
from __future__ import annotations

from v2v.sources import sketch

from ._comfy import (SOURCE_TYPE, SourceNode, core_video, frame_limit, progress, resolve_input_path,
                     validate_input_path, video_inputs)


def extract_sketch(mode="face", distance_transform=True, canny_outside_face=True, canny_sigma=0.33, images=None,
                   path="", max_frames=0, fps=30.0, video=None):
    """Everything the node does, callable without ComfyUI: a lazy source (each frame is sketched as
    Vid2VidGenerate streams it)."""
    if video is not None:
        images, fps = core_video(video, fps)
    video = images if images is not None else (resolve_input_path(path) if path and path.strip() else None)
    if video is None:
        raise ValueError("SketchExtract needs an IMAGE or VIDEO input or a path under the input directory")
    n, cb = frame_limit(max_frames), progress()
    if mode == "edges":
        return sketch.edge_sketch(video, sigma=canny_sigma, fps=fps, max_frames=n, progress=cb)
    return sketch.face_sketch(video, distance_transform=distance_transform, canny_outside=canny_outside_face,
                              sigma=canny_sigma, fps=fps, max_frames=n, progress=cb)


class SketchExtract(SourceNode):
    """Sketch for vid2vid: the paper's face sketch (dlib 68 landmarks as part polylines, Canny outside
    the face, per-part distance maps) or a Canny edge sketch of any video."""

    FUNCTION = "extract"
    RETURN_TYPES = (SOURCE_TYPE, "IMAGE")
    RETURN_NAMES = ("source", "preview")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "mode": (["face", "edges"], {"default": "face"}),
                "distance_transform": ("BOOLEAN", {"default": True, "tooltip": "face: add 9 per-part distance channels"}),
                "canny_outside_face": ("BOOLEAN", {"default": True}),
                "canny_sigma": ("FLOAT", {"default": 0.33, "min": 0.05, "max": 1.0, "step": 0.01}),
            },
            "optional": video_inputs("video or image folder under the input directory"),
        }

    @classmethod
    def VALIDATE_INPUTS(cls, path=""):
        return validate_input_path(path)

    def extract(self, mode, distance_transform, canny_outside_face, canny_sigma, **optional):
        source = extract_sketch(mode, distance_transform, canny_outside_face, canny_sigma, **optional)
        return (source, source.preview())


NODE_CLASS_MAPPINGS = {"SketchExtract": SketchExtract}
NODE_DISPLAY_NAME_MAPPINGS = {"SketchExtract": "vid2vid Sketch Extract"}
