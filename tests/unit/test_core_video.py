"""The core VIDEO type of current ComfyUI hosts, as the source nodes read it (no ComfyUI needed: a VIDEO is
any object with its methods)."""
from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import torch

from nodes._comfy import core_video
from nodes.sketch_extract import extract_sketch
from nodes.vid2vid_generate import core_video_output
from v2v.media.video_io import VideoWriter


class FileVideo:          # like comfy_api's VideoFromFile
    def __init__(self, path):
        self.path = path

    def get_stream_source(self):
        return str(self.path)

    def get_frame_rate(self):
        return Fraction(12)


class FramesVideo:        # like VideoFromComponents: frames in RAM
    def __init__(self, images):
        self.images = images

    def get_stream_source(self):
        import io
        return io.BytesIO(b"")

    def get_frame_rate(self):
        return Fraction(8)

    def get_components(self):
        return SimpleNamespace(images=self.images, frame_rate=Fraction(8))


def test_a_file_backed_video_is_streamed_from_its_file_at_its_frame_rate(tmp_path):
    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, fps=12) as w:
        for i in range(5):
            w.write(np.full((32, 48, 3), 40 * i, np.uint8))
    what, fps = core_video(FileVideo(clip), 30.0)
    assert what == clip and fps == 12.0
    source = extract_sketch("edges", video=FileVideo(clip), fps=30.0)
    assert len(source) == 5 and source.fps == 12.0 and source.size == (32, 48)


def test_a_video_of_frames_gives_its_frames():
    images = torch.rand(3, 16, 24, 3)
    what, fps = core_video(FramesVideo(images), 30.0)
    assert what is images and fps == 8.0
    source = extract_sketch("edges", video=FramesVideo(images))
    assert len(source) == 3 and source.fps == 8.0


def test_no_video_output_without_the_type():
    """Hosts before the VIDEO type (and tests) get None on that output."""
    assert core_video_output(torch.zeros(1, 8, 8, 3), "", SimpleNamespace(fps=10)) is None
