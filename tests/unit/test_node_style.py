"""StyleSample without ComfyUI: a style plan from a tiny style model's mixtures, checked against the source."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nodes as pack_nodes
from nodes.style_sample import StyleSample, sample_style
from nodes.vid2vid_generate import run_generate
from v2v.model.checkpoint import save_generator
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.model.style import STYLE_GMM_KEY, StyleEncoder, StylePlan, class_styles, parse_classes
from v2v.sources.pseudo_labels import pseudo_label_video
from v2v.sources.recipe import METADATA_KEY, to_json
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
    assert parse_classes("all", 9) is None and parse_classes("", 9) is None and parse_classes("none", 9) == set()
    assert parse_classes(" 1, 8;2 ", 9) == {1, 2, 8}
    with pytest.raises(ValueError, match="all, none or label ids"):
        parse_classes("road", 9)
    with pytest.raises(ValueError, match=r"\[9\] are not label ids of this model \(0..8\)"):
        parse_classes("1, 9", 9)


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


def two_colour_frames(n=3, h=16, w=24):
    """uint8 frames: a red top half over a blue bottom half (two pseudo-label classes)."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[:, : h // 2] = (200, 40, 40)
    frames[:, h // 2:] = (30, 40, 190)
    return frames


@pytest.fixture
def reference_model(model_dir):
    """A tiny style model that records a pseudo-label recipe (k=2, no person class: ids 0..1 of label_nc 3) and
    carries its style encoder E."""
    recipe = pseudo_label_video(two_colour_frames(), k=2, person="none").recipe
    torch.manual_seed(0)
    model = Vid2VidGenerator(GeneratorConfig(input_nc=4, label_nc=3, style_nc=3, **TINY))
    encoder = StyleEncoder(3, ngf=4, n_downsample=2)
    save_generator(model, model_dir / "ref.safetensors", style_encoder=encoder,
                   extra_metadata={STYLE_GMM_KEY: json.dumps(MIXTURES), METADATA_KEY: to_json(recipe)})
    save_generator(model, model_dir / "noenc.safetensors",
                   extra_metadata={STYLE_GMM_KEY: json.dumps(MIXTURES), METADATA_KEY: to_json(recipe)})
    return encoder.eval()


def test_reference_image_gives_its_classes_the_encoders_styles(reference_model):
    source = pseudo_label_video(two_colour_frames(4), k=2, person="none")
    # the reference: another size, its colours swapped between the halves
    ref = two_colour_frames(1, 20, 30)[0][::-1].copy()
    image = torch.from_numpy(ref[None].astype(np.float32) / 255)
    plan, _ = sample_style(source, "ref.safetensors", 5, "all", reference_image=image)
    ids = next(iter(pseudo_label_video(ref[None], **source.recipe.params).frames(0, 1))).ids   # the model's centres
    expected = class_styles(reference_model, torch.from_numpy(ref).permute(2, 0, 1).float() / 127.5 - 1, ids)
    assert set(plan.fixed) == set(expected) and len(expected) == 2
    for c, v in expected.items():
        np.testing.assert_allclose(plan.fixed[c], v, rtol=1e-5, atol=1e-6)
    # the reference wins over the seed for its classes; reference_classes picks them
    assert torch.allclose(plan.frame(np.zeros((2, 2)), None)[:, 0, 0], torch.tensor(expected[0], dtype=torch.float32))
    only, _ = sample_style(source, "ref.safetensors", 5, "all", reference_image=image, reference_classes="1")
    assert set(only.fixed) == {1}
    with pytest.raises(ValueError, match="shows none of the classes \\[2\\]"):
        sample_style(source, "ref.safetensors", 5, "all", reference_image=image, reference_classes="2")
    with pytest.raises(ValueError, match="carries no style encoder"):
        sample_style(source, "noenc.safetensors", 5, "all", reference_image=image)


def test_class_styles_average_the_encoder_over_each_class_at_any_size():
    torch.manual_seed(0)
    encoder = StyleEncoder(3, ngf=4, n_downsample=2).eval()
    image = torch.rand(3, 13, 22) * 2 - 1                           # not a multiple of 4: padded inside
    ids = np.zeros((13, 22), np.int64)
    ids[:, 10:] = 4
    styles = class_styles(encoder, image, ids)
    padded = torch.nn.functional.pad(image[None], (0, 2, 0, 3), mode="reflect")
    with torch.no_grad():
        feats = encoder.body(padded)[0, :, :13, :22]
    assert set(styles) == {0, 4}
    np.testing.assert_allclose(styles[4], feats[:, :, 10:].mean((1, 2)).double().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="label map"):
        class_styles(encoder, image, ids[:, :5])
