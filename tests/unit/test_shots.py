"""Shot changes restart the history: a clip spliced from two scenes at a known frame is cut there (detected on
the decoded video), the extractor's state and the sampler's history restart, and the frames after the cut are
those of a fresh run started at the cut."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _synthetic import moving_scene
from v2v.media.video_io import VideoWriter
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.pipeline import RunStats, generate
from v2v.sources.base import ShotOptions
from v2v.sources.sketch import edge_sketch

CUT = 6
TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1)


@pytest.fixture(scope="module")
def spliced(tmp_path_factory):
    """Two synthetic scenes (other textures, other motion) spliced at frame CUT."""
    a, _ = moving_scene(CUT, 48, 64, seed=0)
    b, _ = moving_scene(6, 48, 64, seed=7, bg_step=(-2, 1), fg_step=(-3, 0))
    path = tmp_path_factory.mktemp("cuts") / "spliced.mp4"
    with VideoWriter(path, fps=10, crf=10) as w:
        for f in np.concatenate([a, 255 - b]):       # the second shot inverted: unmistakably another scene
            w.write(f)
    return path


def model():
    torch.manual_seed(0)
    return Vid2VidGenerator(GeneratorConfig(input_nc=1, **TINY)).eval()


def frames(source, **kw) -> list[torch.Tensor]:
    return [g.frame for g in generate(model(), source, **kw)]


def test_a_detected_cut_restarts_the_history(spliced):
    source = edge_sketch(spliced)
    stats = RunStats()
    cut = frames(source, shots=ShotOptions(), stats=stats)
    assert stats.cuts == [CUT]
    assert [f.index for f in source.frames(shots=ShotOptions()) if f.cut] == [CUT]
    fresh = frames(source, start=CUT, shots=None)
    assert all(torch.equal(a, b) for a, b in zip(cut[CUT:], fresh))
    off = frames(source, shots=None)                  # detection off: the first shot bleeds into the second
    assert all(torch.equal(a, b) for a, b in zip(cut[:CUT], off[:CUT]))
    assert not torch.equal(off[CUT], fresh[0])


def test_listed_cuts_and_detection_off(spliced):
    source = edge_sketch(spliced)
    stats = RunStats()
    frames(source, shots=ShotOptions(detect=False, cut_frames=(3,)), stats=stats)
    assert stats.cuts == [3]
    stats = RunStats()
    frames(source, shots=ShotOptions(detect=True, cut_frames=(3,)), stats=stats)
    assert stats.cuts == [3, CUT]
    stats = RunStats()
    frames(source, start=CUT, shots=ShotOptions(), stats=stats)   # a stream's first frame is never a cut
    assert stats.cuts == []
