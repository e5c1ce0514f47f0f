"""python -m v2v: end to end on tiny saved models (raw video through a recipe, prepared sources), and one-line
errors with exit status 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from v2v.model.checkpoint import save_generator
from v2v.cli import main, source_kind
from v2v.media.tensors import model_to_uint8, uint8_to_model
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.media.video_io import VideoWriter, read_frames

REPO = Path(__file__).resolve().parents[2]
TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1)
SIZE = 32



def write_png(path, image):
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.fixture
def rgb_model(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=3, **TINY)), tmp_path / "rgb.safetensors")


@pytest.fixture
def label_model(tmp_path) -> Path:
    torch.manual_seed(0)
    cfg = GeneratorConfig(input_nc=5, label_nc=4, **TINY)
    return save_generator(Vid2VidGenerator(cfg), tmp_path / "labels.safetensors")


@pytest.fixture
def edge_model(tmp_path) -> Path:
    """A 1-channel model whose file records the edge-sketch recipe: it takes raw video."""
    torch.manual_seed(0)
    recipe = json.dumps({"extractor": "edge_sketch", "params": {"sigma": 0.33, "blur": 3}, "extract_scale": 1.0})
    return save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=1, **TINY)), tmp_path / "edges.safetensors",
                          extra_metadata={"v2v.source": recipe,
                                          "v2v.train": json.dumps({"step": 1, "frame_size": [SIZE, SIZE]})})


@pytest.fixture
def raw_clip(tmp_path) -> Path:
    """A 'raw' video: the synthetic scene (textured background, moving disc), 8 frames of 48x64."""
    from _synthetic import moving_scene

    frames, _ = moving_scene(8, 48, 64)
    path = tmp_path / "raw.mp4"
    with VideoWriter(path, fps=10) as w:
        for f in frames:
            w.write(f)
    return path


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_generate_folder_to_mp4(tmp_path, rgb_model, sketch_folder, capsys):
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out, "--fps", 8)
    assert code == 0, err
    video = read_frames(out)
    assert video.size == (SIZE, SIZE) and video.fps == pytest.approx(8) and len(list(video)) == 6
    assert "wrote 6 frames" in err


def test_generate_video_to_png_folder_with_max_frames_and_first_frame(tmp_path, rgb_model, sketch_folder, capsys):
    clip = tmp_path / "sketch.mp4"
    with VideoWriter(clip, fps=10) as writer:
        for f in read_frames(sketch_folder):
            writer.write(f)
    real = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    write_png(tmp_path / "real.png", real)
    out = tmp_path / "frames"
    code, err = run_cli(capsys, "generate", "--model", rgb_model, "--source", clip, "--out", out,
                        "--max-frames", 4, "--first-frame", tmp_path / "real.png", "--quiet")
    assert code == 0, err
    frames = list(read_frames(out))
    assert len(frames) == 4
    assert np.array_equal(frames[0], real)          # the real first frame is output frame 0
    assert not np.array_equal(frames[1], real)


@pytest.mark.parametrize("ahead", [None, "0", "3"])
def test_cli_matches_the_sampler(tmp_path, rgb_model, sketch_folder, capsys, ahead):
    """The CLI's frames are the StreamingSampler's on the same sources (fed by hand here), whether the source is
    read ahead in a second thread (the default) or not."""
    from v2v.model.checkpoint import load_generator
    from v2v.sampler import StreamingSampler

    out = tmp_path / "frames"
    extra = [] if ahead is None else ["--read-ahead", ahead]
    assert run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out, "--quiet",
                   "--source-kind", "rgb", *extra)[0] == 0
    sampler = StreamingSampler(load_generator(rgb_model))
    expected = [model_to_uint8(sampler.step(uint8_to_model(f))[0]) for f in read_frames(sketch_folder)]
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(out), expected))


def test_raw_video_through_the_models_recipe(tmp_path, edge_model, raw_clip, capsys):
    """A model that records its source recipe turns a raw video into its source by itself: the same frames as
    the pipeline on the recipe's source; --stats records where the time went."""
    from v2v.model.checkpoint import load_generator
    from v2v.pipeline import frames_uint8, generate
    from v2v.sources.sketch import edge_sketch

    out, stats = tmp_path / "out", tmp_path / "stats.json"
    code, err = run_cli(capsys, "generate", "--model", edge_model, "--source", raw_clip, "--out", out,
                        "--stats", stats)
    assert code == 0, err
    assert "source: an edge sketch (Canny)" in err and "frames/s end to end" in err
    expected = list(frames_uint8(generate(load_generator(edge_model), edge_sketch(raw_clip))))
    got = list(read_frames(out))
    assert len(got) == 8 and all(np.array_equal(a, b) for a, b in zip(got, expected))
    report = json.loads(stats.read_text())
    assert report["frames"] == 8 and report["fps"] > 0 and report["sampler_fps"] >= report["fps"]
    assert report["source"]["recipe"]["extractor"] == "edge_sketch"


def test_resize_to_the_models_size_and_odd_sizes(tmp_path, edge_model, raw_clip, capsys):
    """--resize model: the training size's area at the video's aspect ratio; off: any size, padded and cropped
    back (an odd 33x31 frame comes out 33x31)."""
    out = tmp_path / "small.mp4"
    assert run_cli(capsys, "generate", "--model", edge_model, "--source", raw_clip, "--out", out, "--resize",
                   "model", "--quiet")[0] == 0
    assert read_frames(out).size == (36, 28)                    # 32x32's area at 4:3, multiples of 2 (WxH)
    out = tmp_path / "explicit"
    assert run_cli(capsys, "generate", "--model", edge_model, "--source", raw_clip, "--out", out, "--resize",
                   "40x30", "--quiet")[0] == 0
    assert read_frames(out).size == (40, 30)
    odd = tmp_path / "odd"
    odd.mkdir()
    for i in range(3):
        write_png(odd / f"{i}.png", np.random.default_rng(i).integers(0, 256, (31, 33, 3), dtype=np.uint8))
    out = tmp_path / "odd_out"
    assert run_cli(capsys, "generate", "--model", edge_model, "--source", odd, "--out", out, "--quiet")[0] == 0
    assert read_frames(out).size == (33, 31)


def test_cut_frames_restart_the_history(tmp_path, rgb_model, sketch_folder, capsys):
    """--cut-frames 3: output frames 3.. equal a run started at frame 3; without it they differ."""
    runs = {}
    for name, extra in (("cut", ["--cut-frames", "3"]), ("plain", []), ("fresh", ["--start-frame", "3"])):
        out = tmp_path / name
        code, err = run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out,
                            "--source-kind", "rgb", "--cuts", "off", *extra)
        assert code == 0, err
        runs[name] = list(read_frames(out))
    assert all(np.array_equal(a, b) for a, b in zip(runs["cut"][3:], runs["fresh"]))
    assert all(np.array_equal(a, b) for a, b in zip(runs["cut"][:3], runs["plain"][:3]))
    assert not all(np.array_equal(a, b) for a, b in zip(runs["plain"][3:], runs["fresh"]))


def test_label_sources(tmp_path, label_model, capsys):
    folder = tmp_path / "labels"
    folder.mkdir()
    for i in range(3):
        ids = np.zeros((SIZE, SIZE), np.uint8)
        ids[:, : 8 + 4 * i] = 2
        ids[20:, 20:] = 3
        cv2.imwrite(str(folder / f"{i:03d}.png"), ids)
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "generate", "--model", label_model, "--source", folder, "--out", out,
                        "--source-kind", "labels", "--quiet")
    assert code == 0, err
    assert len(list(read_frames(out))) == 3


def test_sixteen_bit_label_pngs(tmp_path, label_model, capsys):
    """16-bit id PNGs (what write_id_png writes for many labels, and the trainer reads) are label sources too."""
    from v2v.sources.labels import write_id_png

    folder = tmp_path / "ids16"
    folder.mkdir()
    for i in range(2):
        ids = np.zeros((SIZE, SIZE), np.uint16)
        ids[:, 10 + i:] = 3
        write_id_png(folder / f"{i}.png", ids.astype(np.int64) + 0)
        cv2.imwrite(str(folder / f"{i}.png"), ids)              # force 16-bit storage even for small ids
        assert cv2.imread(str(folder / f"{i}.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    out = tmp_path / "o.mp4"
    code, err = run_cli(capsys, "generate", "--model", label_model, "--source", folder, "--out", out, "--quiet")
    assert code == 0, err
    assert len(list(read_frames(out))) == 2


def test_auto_source_kind(tmp_path, rgb_model, label_model, edge_model, raw_clip, sketch_folder):
    from v2v.model.checkpoint import load_generator
    from v2v.pipeline import model_recipe

    def kind(model, path):
        m = load_generator(model)
        return source_kind(Path(path), m, model_recipe(m))

    ids = tmp_path / "ids"
    ids.mkdir()
    cv2.imwrite(str(ids / "0.png"), np.full((8, 8), 3, np.uint8))
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    np.save(arrays / "0.npy", np.zeros((1, 8, 8), np.float16))
    assert kind(edge_model, raw_clip) == "video"             # a recipe: raw footage is extracted
    assert kind(edge_model, arrays) == "array"               # prepared .npy frames are taken as they are
    assert kind(label_model, ids) == "labels"                # id maps for a label model
    assert kind(rgb_model, sketch_folder) == "rgb"           # no recipe, 3 channels: renderings


def test_info(rgb_model, capsys):
    assert main(["info", "--model", str(rgb_model)]) == 0
    out = capsys.readouterr().out
    n = sum(p.numel() for p in Vid2VidGenerator(GeneratorConfig(input_nc=3, **TINY)).parameters())
    assert f"parameters: {n:,}" in out and '"ngf": 4' in out and '"v2v.format_version": "1"' in out
    assert "trained on" not in out   # no training record: no size claimed
    assert "trained at no single frame size" in out and "--resize WxH" in out   # and the way out is named


def test_info_names_the_training_frame_size(tmp_path, capsys):
    path = save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=3, **TINY)), tmp_path / "m.safetensors",
                          extra_metadata={"v2v.train": json.dumps({"step": 3, "frame_size": [120, 160]})})
    assert main(["info", "--model", str(path)]) == 0
    assert "trained on 160x120 (WxH) frames" in capsys.readouterr().out


def test_generate_warns_when_the_source_is_far_from_the_training_size(tmp_path, sketch_folder, capsys):
    model = Vid2VidGenerator(GeneratorConfig(input_nc=3, **TINY))
    for trained, warned in (([SIZE, SIZE], False), ([4 * SIZE, 4 * SIZE], True)):
        path = save_generator(model, tmp_path / "m.safetensors",
                              extra_metadata={"v2v.train": json.dumps({"step": 3, "frame_size": trained})})
        code, err = run_cli(capsys, "generate", "--model", path, "--source", sketch_folder, "--out",
                            tmp_path / "o.mp4")
        assert code == 0, err
        assert (f"warning: source frames are {SIZE}x{SIZE} (WxH) but this model was trained on "
                f"{4 * SIZE}x{4 * SIZE} frames" in err) is warned, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err


def test_errors_exit_2_with_one_line(tmp_path, rgb_model, label_model, sketch_folder, capsys):
    out = tmp_path / "out.mp4"
    gen = ["generate", "--model", rgb_model, "--out", out, "--quiet", "--source"]

    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickled)
    assert_one_line_error(*run_cli(capsys, "generate", "--model", pickled, "--source", sketch_folder, "--out", out),
                          "not a safetensors file", "pickled")
    assert_one_line_error(*run_cli(capsys, "info", "--model", tmp_path / "none.safetensors"), "no such file")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(*run_cli(capsys, *gen, empty), "no image files")
    assert_one_line_error(*run_cli(capsys, *gen, tmp_path / "missing.mp4"), "no such file or folder")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    assert_one_line_error(*run_cli(capsys, *gen, broken), "broken.mp4")

    small = tmp_path / "small.png"
    write_png(small, np.zeros((16, 16, 3), np.uint8))
    assert_one_line_error(*run_cli(capsys, *gen, sketch_folder, "--first-frame", small), "--first-frame", "16x16")
    assert_one_line_error(*run_cli(capsys, "generate", "--model", label_model, "--source", sketch_folder, "--out", out,
                                   "--source-kind", "rgb"), "input_nc=5", "label-map model")
    assert_one_line_error(*run_cli(capsys, "generate", "--model", label_model, "--source", sketch_folder, "--out", out),
                          "label id 255", "f0.png")
    assert_one_line_error(*run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out,
                                   "--source-kind", "video"), "records no source recipe")
    assert_one_line_error(*run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out",
                                   sketch_folder / "inside"), "would overwrite the source")
    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, fps=5) as w:
        w.write(np.zeros((SIZE, SIZE, 3), np.uint8))
    assert_one_line_error(*run_cli(capsys, "generate", "--model", rgb_model, "--source", clip, "--out", clip),
                          "would overwrite the source")
    assert clip.stat().st_size > 0
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_a_source_failing_part_way_keeps_the_frames_made(tmp_path, rgb_model, capsys):
    """A frame of another size (or a truncated video) stops the run with one line, and the frames generated
    before it stay in the output."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i in range(3):
        write_png(mixed / f"{i}.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    write_png(mixed / "3.png", np.zeros((16, 16, 3), np.uint8))
    out = tmp_path / "partial.mp4"
    assert_one_line_error(*run_cli(capsys, "generate", "--model", rgb_model, "--source", mixed, "--out", out,
                                   "--source-kind", "rgb", "--quiet"), "3.png is 16x16", "the 3 frames generated")
    assert len(list(read_frames(out))) == 3


def test_module_entry_point(tmp_path, rgb_model, sketch_folder):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out.mp4"
    ok = subprocess.run([sys.executable, "-m", "v2v", "generate", "--model", str(rgb_model), "--source",
                         str(sketch_folder), "--out", str(out), "--max-frames", "3"],
                        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert len(list(read_frames(out))) == 3
    bad = subprocess.run([sys.executable, "-m", "v2v", "info", "--model", str(sketch_folder / "f0.png")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "v2v", "generate"], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=120)
    assert usage.returncode == 2 and "--model" in usage.stderr


def test_crop_face_frames_the_face_like_the_face_models(tmp_path, edge_model, raw_clip, capsys):
    """--crop face: the window around the video's face (dlib), at the face models' framing; a video without a
    face is refused with the reason, not a traceback."""
    pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
    carphone = Path(__file__).resolve().parents[2] / "workflows" / "input" / "vid2vid_carphone_60f.mp4"
    canvas = np.zeros((432, 528, 3), np.uint8)
    clip = tmp_path / "wide.mp4"
    with VideoWriter(clip, fps=10) as w:
        for i, frame in enumerate(read_frames(carphone)):
            if i == 4:
                break
            canvas[200:344, 300:476] = frame
            w.write(canvas)
    out = tmp_path / "framed"
    code, err = run_cli(capsys, "generate", "--model", edge_model, "--source", clip, "--out", out, "--crop", "face")
    assert code == 0, err
    x, y, w_, h = (int(v) for v in err.split("--crop face: the face's window is ")[1].split()[0].split(","))
    assert abs(x - 300) <= 20 and abs(y - 200) <= 20 and abs(w_ / h - 176 / 144) < 0.02
    assert read_frames(out).size == (w_, h)
    code, err = run_cli(capsys, "generate", "--model", edge_model, "--source", raw_clip, "--out", tmp_path / "none",
                        "--crop", "face")
    assert code != 0 and "--crop face: no face found" in err and "Traceback" not in err


def test_style_classes_and_reference_image(tmp_path, capsys):
    """--style-classes and --style-reference: StyleSample's plan on the command line, on a raw video made into
    pseudo-labels by the model's recipe; the reference changes the output, a model without E is named."""
    from v2v.model.style import STYLE_GMM_KEY, StyleEncoder
    from v2v.sources.pseudo_labels import pseudo_label_video
    from v2v.sources.recipe import METADATA_KEY, to_json

    frames = np.zeros((4, 32, 48, 3), np.uint8)
    frames[:, :16], frames[:, 16:] = (200, 40, 40), (30, 40, 190)
    video = tmp_path / "two.mp4"
    with VideoWriter(video, fps=10) as w:
        for f in frames:
            w.write(f)
    recipe = pseudo_label_video(frames, k=2, person="none").recipe
    mixtures = {str(c): {"weights": [1.0], "means": [[0.0] * 3], "covariances": [[0.2] * 3]} for c in range(3)}
    meta = {STYLE_GMM_KEY: json.dumps(mixtures), METADATA_KEY: to_json(recipe)}
    torch.manual_seed(0)
    model = Vid2VidGenerator(GeneratorConfig(input_nc=4, label_nc=3, style_nc=3, **TINY))
    with_e = save_generator(model, tmp_path / "style.safetensors", extra_metadata=meta,
                            style_encoder=StyleEncoder(3, ngf=4, n_downsample=2))
    without_e = save_generator(model, tmp_path / "noenc.safetensors", extra_metadata=meta)
    reference = tmp_path / "ref.png"
    write_png(reference, np.full((20, 30, 3), (20, 220, 60), np.uint8))

    def run(*extra, model_path=with_e, name="o"):
        out = tmp_path / name
        code, err = run_cli(capsys, "generate", "--model", model_path, "--source", video, "--out", out,
                            "--quiet", *extra)
        return code, err, (np.stack(list(read_frames(out))) if code == 0 else None)

    _, _, mean = run("--style-classes", "none", name="mean")
    _, _, seeded = run("--style-classes", "none", "--seed", "7", name="seeded")
    assert np.array_equal(mean, seeded)                         # nothing resampled: the seed changes nothing
    code, err, ref = run("--style-classes", "none", "--style-reference", reference, name="ref")
    assert code == 0, err
    assert np.abs(ref.astype(int) - mean).mean() > 0.5          # the reference's look replaces the mean style
    code, err, _ = run("--style-reference", reference, model_path=without_e, name="x")
    assert code == 2 and "carries no style encoder" in err
    code, err, _ = run("--style-classes", "3", name="y")
    assert code == 2 and "--style-classes [3] are not label ids" in err


def test_read_ahead_takes_a_count(tmp_path, rgb_model, sketch_folder, capsys):
    out = tmp_path / "out.mp4"
    with pytest.raises(SystemExit) as e:
        run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out, "--read-ahead", "-1")
    assert e.value.code == 2 and "--read-ahead: takes a whole number >= 0, got '-1'" in capsys.readouterr().err


def test_generate_compile_reaches_the_sampler(tmp_path, rgb_model, sketch_folder, capsys, monkeypatch):
    """--compile hands the model to v2v.sampler.compiled_step (the compile itself: tests/unit/test_sampler.py)."""
    import v2v.sampler
    compiled = []
    monkeypatch.setattr(v2v.sampler, "compiled_step", lambda model, device: compiled.append(device) or model)
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out, "--compile")
    assert code == 0, err
    assert [d.type for d in compiled] == ["cpu"] and "wrote 6 frames" in err


def test_generate_compile_without_a_compiler_is_a_clear_error(tmp_path, rgb_model, sketch_folder, capsys,
                                                              monkeypatch):
    import shutil
    monkeypatch.setattr(shutil, "which", lambda name: None)
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out, "--compile")
    assert code != 0 and "needs a C++ compiler" in err and "Traceback" not in err and not out.exists()


def test_generate_int8_reaches_the_sampler_and_its_refusals_are_one_line(tmp_path, rgb_model, sketch_folder, capsys,
                                                                         monkeypatch):
    """--precision int8 builds the int8 network (its convolutions: tests/unit/test_quantize.py); where it cannot
    run the run stops before writing anything, with one line that says why and what to use."""
    import platform
    import v2v.sampler
    built = []
    monkeypatch.setattr(v2v.sampler, "int8_network", lambda model: built.append(model) or model)
    monkeypatch.setattr(v2v.sampler, "int8_problem", lambda device: None)
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out,
                        "--precision", "int8")
    assert code == 0, err
    assert len(built) == 1 and "wrote 6 frames" in err
    monkeypatch.undo()
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    out.unlink()
    code, err = run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out,
                        "--precision", "int8")
    assert code == 2 and "error: precision int8 needs an x86 CPU" in err and "use fp32" in err
    assert "Traceback" not in err and not out.exists()
