"""PoseExtract: video -> OpenPose skeleton V2V_SOURCE (+ POSE_KEYPOINT), or render given keypoints."""
from __future__ import annotations

from v2v.sources import pose

from ._comfy import (SOURCE_TYPE, SourceNode, core_video, frame_limit, progress, resolve_input_path,
                     validate_input_path, video_inputs)


def extract_pose(detector_crops="auto", smooth=True, images=None, path="", pose_keypoint=None, max_frames=0, fps=30.0,
                 video=None):
    """Everything the node does, callable without ComfyUI: a lazy source (poses are found, smoothed and drawn
    frame by frame as Vid2VidGenerate streams it)."""
    if video is not None:
        images, fps = core_video(video, fps)
    src_path = resolve_input_path(path) if path and path.strip() else None
    keypoints = pose_keypoint
    video = images
    if src_path is not None and src_path.is_dir() and any(src_path.glob("*.json")):
        keypoints = keypoints if keypoints is not None else src_path  # OpenPose JSON folder
    elif video is None:
        video = src_path
    if video is None and keypoints is None:
        raise ValueError("PoseExtract needs an IMAGE or VIDEO input, a path under the input directory, or POSE_KEYPOINT")
    return pose.pose_video(video, keypoints=keypoints, smooth=smooth, crops=detector_crops, fps=fps,
                           max_frames=frame_limit(max_frames), progress=progress())


class PoseExtract(SourceNode):
    """Body pose for vid2vid: mediapipe keypoints (moving-region crops for small people) or POSE_KEYPOINT
    from DWPose/OpenPose, rendered as an OpenPose-colored skeleton video."""

    FUNCTION = "extract"
    RETURN_TYPES = (SOURCE_TYPE, "IMAGE", "POSE_KEYPOINT")
    RETURN_NAMES = ("source", "preview", "pose_keypoint")   # pose_keypoint: computed only when read

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "detector_crops": (["auto", "moving", "full"], {"default": "auto",
                                   "tooltip": "mediapipe on whole frames, on crops of moving regions, or both"}),
                "smooth": ("BOOLEAN", {"default": True}),
            },
            "optional": video_inputs("video, image folder or OpenPose JSON folder under the input directory",
                                     pose_keypoint=("POSE_KEYPOINT",)),
        }

    @classmethod
    def VALIDATE_INPUTS(cls, path=""):
        return validate_input_path(path)

    def extract(self, detector_crops, smooth, **optional):
        source = extract_pose(detector_crops, smooth, **optional)
        return (source, source.preview(), pose.PoseKeypoints(source))


NODE_CLASS_MAPPINGS = {"PoseExtract": PoseExtract}
NODE_DISPLAY_NAME_MAPPINGS = {"PoseExtract": "vid2vid Pose Extract"}
