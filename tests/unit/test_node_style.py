"""StyleSample without ComfyUI: a style plan from a tiny style model's mixtures, checked against the source."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nodes as pack_nodes
from nodes.style_sample import StyleSample, parse_classes, sample_style
from nodes.vid2vid_generate import run_generate
from v2v.model.checkpoint import save_generator
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.model.style import STYLE_GMM_KEY, StylePlan
from v2v.sources.labels import label_video

TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1, fg_n_blocks=1)
MIXTURES = {str(c): {"weights": [0.5, 0.5], "means": [[0.5 * c - 0.5] * 3, [0.5 - 0.5 * c] * 3],
                     "covariances": [[0.05] * 3] * 2} for c in range(3)}


@pytest.fixture
def style_models(model_dir):
    """A style model with mixtures and a model without a style input, in the nodes' model folder."""
    torch.manual_seed(0)
    style_model = Vid2VidGenerator(GeneratorConfig(input_nc=4, label_nc=3, style_nc=3, **TINY))
    save_generator(style_model, model_dir / "style.safetensors", extra_metadata={STYLE_GMM_KEY: json.dumps(MIXTURES)})
    save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=4, label_nc=3, **TINY)), model_dir / "plain.safetensors")
    return model_dir


def labels(n=4, label_nc=3):
    ids = np.zeros((n, 16, 24), np.int64)
    ids[:, :, 12:] = 1
    ids[:, 4:10, 3:8] = 2
    return label_video(ids, label_nc=label_nc, instances="labels")


def test_registered_and_parses_classes():
    assert pack_nodes.NODE_CLASS_MAPPINGS["StyleSample"] is StyleSample
    assert StyleSample.RETURN_TYPES == ("V2V_STYLE", "IMAGE")
    assert parse_classes("all") is None and parse_classes("") is None and parse_classes("none") == set()
    assert parse_classes(" 1, 8;2 ") == {1, 2, 8}
    with pytest.raises(ValueError, match="all, none or label ids"):
        parse_classes("road")


def test_plan_drives_the_generator_and_only_resampled_classes_change(style_models):
    plan, preview = StyleSample().sample(labels(), "style.safetensors", 3, "0")
    assert isinstance(plan, StylePlan) and plan.resample == {0}
    assert preview.shape == (1, 16, 24, 3) and 0 <= float(preview.min()) and float(preview.max()) <= 1
    other, _ = sample_style(labels(), "style.safetensors", 4, "0")
    a = run_generate(labels(), "style.safetensors", "images", style=plan, device="cpu")[0]
    b = run_generate(labels(), "style.safetensors", "images", style=other, device="cpu")[0]
    assert a.shape == (4, 16, 24, 3) and not torch.equal(a, b)
    s3, s4 = plan.frame(np.zeros((2, 2)), None), other.frame(np.zeros((2, 2)), None)
    assert not torch.equal(s3, s4)                                   # class 0 resampled
    assert torch.equal(plan.frame(np.ones((2, 2)), None), other.frame(np.ones((2, 2)), None))  # class 1: its mean


def test_wrong_model_source_or_classes_are_named(style_models):
    with pytest.raises(ValueError, match="no style input"):
        sample_style(labels(), "plain.safetensors", 0)
    with pytest.raises(ValueError, match="label source the model takes \\(3 classes\\).*5 classes"):
        sample_style(labels(label_nc=5), "style.safetensors", 0)
    with pytest.raises(ValueError, match=r"\[7\] are not label ids"):
        sample_style(labels(), "style.safetensors", 0, "1, 7")
    assert "outside" in StyleSample.VALIDATE_INPUTS(model_path="/etc/passwd")
