"""Source recipes: the model file says what it eats, and that recipe reproduces its training sources.

* The shipped models record theirs; the street model's recipe, run on the raw video it was trained on,
  gives exactly the held-out label maps of its training extraction (committed under workflows/input/).
* prepare.py -> trainer's loader and the generation pipeline make the same source from the same raw video,
  at the same scale (extract_scale), for each extractor.
* A mismatched source is refused naming both recipes; pseudo-labels are re-made with the model's centres.
* End to end: prepare -> train (two steps) -> the model file carries the recipe -> the CLI turns a raw video
  into the model's source by itself.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _synthetic import moving_scene
from train.data import ClipDataset, DataConfig, dataset_defaults, validate_dataset
from train.prepare import prepare
from train.export import source_metadata
from v2v.media.video_io import VideoWriter, open_video
from v2v.model.checkpoint import load_generator, read_metadata, save_generator
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.pipeline import GenerateError, prepare_source
from v2v.sources import extras
from v2v.sources.recipe import SourceRecipe, check, from_json, read_recipe, source_for

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models" / "vid2vid"
VTEST = REPO / ".cache" / "data" / "vtest.avi"
HELDOUT = REPO / "workflows" / "input" / "vid2vid_street_heldout"
TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    frames, _ = moving_scene(8, 96, 128)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    with VideoWriter(path, fps=10) as w:
        for f in frames:
            w.write(f)
    return path


def test_shipped_models_record_their_recipes():
    street, face, body = (read_recipe(MODELS / f"{n}.safetensors") for n in ("street", "face", "body"))
    assert street.extractor == "pseudo_labels" and street.params["k"] == 8 and len(street.params["centers"]) == 8
    assert street.params["instances"] is False and street.extract_scale == 1.0
    assert face.extractor == "face_sketch" and face.params["distance_transform"] is True
    assert body.extractor == "pose" and body.extract_scale == 2.0       # poses found at 320x240, trained at 160x120
    assert read_recipe(MODELS / "vid2vid_sample_face.safetensors").extractor == "edge_sketch"


@pytest.mark.skipif(not VTEST.is_file(), reason="needs the sample footage: python scripts/fetch_sample_data.py")
def test_street_recipe_reproduces_its_training_label_maps():
    """vtest.avi read as the street dataset was (every 2nd frame, 256x192), labelled by the model's recorded
    recipe alone: the last 80 frames are the committed held-out maps of its training extraction, pixel for pixel."""
    import cv2

    recipe = read_recipe(MODELS / "street.safetensors")
    video = open_video(VTEST, stride=2, max_side=256)
    source = recipe.build(video)
    held = sorted(HELDOUT.glob("*.png"))
    start = len(source) - len(held)
    for f, png in zip(source.frames(start), held):
        assert np.array_equal(f.ids, cv2.imread(str(png), cv2.IMREAD_UNCHANGED)), png.name


def _dataset_and_pipeline(tmp_path, clip, task, load_size, **kw):
    """(trainer's source tensors of the prepared clip at ``load_size``, the pipeline's of the raw clip)."""
    out = tmp_path / task
    prepare(task, clip, out, log=quiet, **kw)
    cfg = DataConfig.from_dict({"root": str(out), **dataset_defaults(out), "load_size": list(load_size)})
    seqs = validate_dataset(cfg, "train")
    item = ClipDataset(cfg, seqs, n_frames=len(open_video(clip)), train=False)[0]
    recipe = from_json(source_metadata(out, seqs[0].size, load_size))
    ours = source_for(recipe, clip, size=load_size).tensor()
    return item["source"], ours, recipe


def test_prepared_and_generated_sources_agree_edges(tmp_path, clip):
    """Edges extracted at 128x96, the model trained at 64x48: extract_scale 2, both sides resize alike."""
    theirs, ours, recipe = _dataset_and_pipeline(tmp_path, clip, "sketch", (48, 64), sketch_mode="edges")
    assert recipe.extractor == "edge_sketch" and recipe.extract_scale == 2.0
    assert ours.shape == theirs.shape == (8, 1, 48, 64)
    torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=0)       # float16 storage of the dataset


def test_prepared_and_generated_sources_agree_pseudo_labels(tmp_path, clip):
    pytest.importorskip("sklearn")
    theirs, ours, recipe = _dataset_and_pipeline(tmp_path, clip, "labels", (96, 128), label_nc=4)
    assert recipe.extractor == "pseudo_labels" and len(recipe.params["centers"]) == 3
    assert torch.equal(ours, theirs)


def test_prepared_and_generated_sources_agree_face(tmp_path):
    try:
        extras.require_dlib()
        extras.shape_predictor_path()
    except ImportError:
        pytest.skip("dlib or its landmark model is not installed")
    carphone = tmp_path / "face.mp4"
    with VideoWriter(carphone, fps=30) as w:
        for i, f in enumerate(open_video(REPO / "workflows" / "input" / "vid2vid_carphone_60f.mp4", max_frames=6)):
            w.write(f)
    theirs, ours, recipe = _dataset_and_pipeline(tmp_path, carphone, "sketch", (144, 176), sketch_mode="face")
    assert recipe.extractor == "face_sketch" and ours.shape == (6, 10, 144, 176)
    torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=0)


@pytest.mark.skipif(not extras.has_mediapipe(), reason="mediapipe (the pose extra) is not installed")
def test_prepared_and_generated_sources_agree_pose(tmp_path):
    """As the body model: poses found on 320x240 frames, skeletons drawn there, trained at 160x120."""
    walk = tmp_path / "walk.mp4"
    with VideoWriter(walk, fps=10) as w:
        for f in open_video(REPO / "tests" / "data" / "vtest_40f.mp4", crop=(384, 128, 320, 240), max_frames=6):
            w.write(f)
    theirs, ours, recipe = _dataset_and_pipeline(tmp_path, walk, "pose", (120, 160))
    assert recipe.extractor == "pose" and recipe.extract_scale == 2.0
    assert torch.equal(ours, theirs)


def _model(tmp_path, input_nc, recipe: SourceRecipe | None, label_nc=0, name="m.safetensors"):
    torch.manual_seed(0)
    extra = {"v2v.source": json.dumps(recipe.to_dict())} if recipe else {}
    path = save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=input_nc, label_nc=label_nc, **TINY)),
                          tmp_path / name, extra_metadata=extra)
    return load_generator(path)


def test_a_mismatched_source_is_refused_naming_both(tmp_path, clip):
    from v2v.sources.sketch import edge_sketch

    face = _model(tmp_path, 1, SourceRecipe("face_sketch", {"distance_transform": False}), name="face.safetensors")
    with pytest.raises(GenerateError) as err:
        prepare_source(face, edge_sketch(clip), model_name="face.safetensors")
    assert "face.safetensors was trained on a face sketch" in str(err.value) and "an edge sketch" in str(err.value)
    edges = _model(tmp_path, 1, SourceRecipe("edge_sketch", {"sigma": 0.33, "blur": 5}), name="edges.safetensors")
    with pytest.raises(GenerateError, match=r"blur: model 5, source 3"):
        prepare_source(edges, edge_sketch(clip, blur=3))
    assert prepare_source(edges, edge_sketch(clip, blur=5)) is not None


def test_a_resized_source_is_extracted_at_the_models_scale(tmp_path, clip):
    """An edge sketch made at the video's size (as a node makes it), resized for a model whose sketches were
    extracted at 2x its frames: re-extracted at 2x the new size, the source the trainer and source_for make (at
    1x the lines would be drawn twice as thick)."""
    from v2v.sources.sketch import edge_sketch

    recipe = SourceRecipe("edge_sketch", {"sigma": 0.33, "blur": 3}, extract_scale=2.0)
    model = _model(tmp_path, 1, recipe)
    given = edge_sketch(clip)                                     # 128x96, its own recipe says 1x
    ours = prepare_source(model, given, resize=(48, 64)).tensor()
    assert torch.equal(ours, source_for(recipe, clip, size=(48, 64)).tensor())
    assert not torch.equal(ours, given.at_size((48, 64)).tensor())
    assert prepare_source(model, given) is given                  # the video's own size: extracted as it is


def test_pseudo_labels_are_remade_with_the_models_centres(clip):
    """A pseudo-label source fitted to another video is re-made with the model's centres (ids then mean what
    they meant in training); its other settings must match."""
    pytest.importorskip("sklearn")
    from v2v.sources.pseudo_labels import pseudo_label_video

    model_recipe = pseudo_label_video(open_video(clip, max_frames=2), k=3, instances=False).recipe
    mine = pseudo_label_video(clip, k=3, instances=False)
    assert mine.recipe.params["centers"] != model_recipe.params["centers"]
    remade = check(model_recipe, mine)
    assert remade.recipe.params["centers"] == model_recipe.params["centers"]
    expected = model_recipe.build(clip).tensor()
    assert torch.equal(remade.tensor(), expected)
    with pytest.raises(ValueError, match="k: model 3, source 4"):
        check(model_recipe, pseudo_label_video(clip, k=4, instances=False))


def test_train_records_the_recipe_and_the_cli_uses_it(tmp_path, clip, capsys):
    """prepare (edges) -> two training steps -> the model file's v2v.source is the dataset's recipe -> the CLI
    makes the source from a raw video by itself, at the model's scale."""
    from train.config import load_config
    from train.train import train
    from v2v.cli import main
    from v2v.media.video_io import read_frames

    data = tmp_path / "data"
    prepare("sketch", clip, data, sketch_mode="edges", log=quiet)
    cfg = load_config(None, [f"data.root={data}", f"out_dir={tmp_path / 'run'}", "preset=tiny", "max_steps=2",
                             "log_with=null", "val_every=0", "sample_every=0", "save_every=0", "loss.vgg=0",
                             "data.load_size=[48,64]", "data.flow_preset=fast", "data.val_fraction=0",
                             "disc.n_temporal_scales=0"])
    train(cfg)
    model_file = tmp_path / "run" / "model.safetensors"
    recipe = from_json(read_metadata(model_file)["v2v.source"])
    assert recipe.extractor == "edge_sketch" and recipe.extract_scale == 2.0
    out = tmp_path / "out.mp4"
    assert main(["generate", "--model", str(model_file), "--source", str(clip), "--out", str(out),
                 "--resize", "model", "--quiet"]) == 0
    video = read_frames(out)
    assert video.size == (64, 48) and sum(1 for _ in video) == 8


def test_a_model_of_clips_at_several_sizes_records_no_single_frame_size(tmp_path):
    """load_size wins; clips sharing one size record it; clips kept at several sizes (the bodies dataset) record
    none, so resize "model" asks for an explicit size instead of scaling to whichever clip came first."""
    from types import SimpleNamespace

    from train.export import recorded_frame_size
    from v2v.model.checkpoint import load_generator, save_generator
    from v2v.model.config import GeneratorConfig
    from v2v.model.generator import Vid2VidGenerator
    from v2v.pipeline import GenerateError, target_size

    clips = lambda *sizes: [SimpleNamespace(size=s) for s in sizes]  # noqa: E731
    assert recorded_frame_size((96, 128), clips((224, 126), (240, 320))) == [96, 128]
    assert recorded_frame_size(None, clips((240, 320), (240, 320))) == [240, 320]
    assert recorded_frame_size(None, clips((224, 126), (240, 320))) is None
    tiny = GeneratorConfig(input_nc=3, ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1)
    path = save_generator(Vid2VidGenerator(tiny), tmp_path / "m.safetensors",
                          extra_metadata={"v2v.train": json.dumps({"step": 1, "frame_size": None})})
    model = load_generator(path)
    with pytest.raises(GenerateError, match="records no single frame size"):
        target_size(model, (216, 384), "model")
    assert target_size(model, (216, 384), (108, 192)) == (108, 192)
