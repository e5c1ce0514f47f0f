"""python -m v2v: end to end on a tiny saved model, and one-line errors with exit status 2."""
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
from v2v.cli import frame_to_source, main
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
def sketch_folder(tmp_path) -> Path:
    folder = tmp_path / "sketch"
    folder.mkdir()
    for i in range(6):
        image = np.zeros((SIZE, SIZE, 3), np.uint8)
        cv2.circle(image, (8 + 2 * i, 16), 5, (255, 255, 255), 1)
        write_png(folder / f"f{i}.png", image)
    return folder


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


def test_cli_matches_the_sampler(tmp_path, rgb_model, sketch_folder, capsys):
    from v2v.model.checkpoint import load_generator
    from v2v.sampler import generate

    out = tmp_path / "frames"
    assert run_cli(capsys, "generate", "--model", rgb_model, "--source", sketch_folder, "--out", out, "--quiet")[0] == 0
    model = load_generator(rgb_model)
    expected = [model_to_uint8(f[0]) for f in generate(model, (uint8_to_model(f) for f in read_frames(sketch_folder)))]
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(out), expected))


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


def test_frame_to_source_labels():
    cfg = GeneratorConfig(input_nc=5, label_nc=4, **TINY)
    ids = np.zeros((4, 6, 3), np.uint8)
    ids[:, 3:] = 2
    source = frame_to_source(ids, cfg, "labels")
    assert source.shape == (5, 4, 6)
    assert source[0, :, :3].eq(1).all() and source[2, :, 3:].eq(1).all() and source[:4].sum(0).eq(1).all()
    assert source[4, :, 2:4].eq(1).all() and source[4, :, [0, 1, 4, 5]].eq(0).all()   # boundary stand-in
    assert frame_to_source(ids, cfg.with_(input_nc=4), "labels").shape == (4, 4, 6)
    rgb = frame_to_source(np.full((2, 2, 3), 255, np.uint8), GeneratorConfig(input_nc=3, **TINY), "rgb")
    assert rgb.shape == (3, 2, 2) and rgb.eq(1).all()


def test_info(rgb_model, capsys):
    assert main(["info", "--model", str(rgb_model)]) == 0
    out = capsys.readouterr().out
    n = sum(p.numel() for p in Vid2VidGenerator(GeneratorConfig(input_nc=3, **TINY)).parameters())
    assert f"parameters: {n:,}" in out and '"ngf": 4' in out and '"v2v.format_version": "1"' in out
    assert "trained on" not in out   # no training record: no size claimed


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

    odd = tmp_path / "odd"
    odd.mkdir()
    write_png(odd / "0.png", np.zeros((31, 33, 3), np.uint8))
    assert_one_line_error(*run_cli(capsys, *gen, odd), "33x31", "multiples of 2")

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_png(mixed / "0.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    write_png(mixed / "1.png", np.zeros((16, 16, 3), np.uint8))
    assert_one_line_error(*run_cli(capsys, *gen, mixed), "1.png is 16x16")

    small = tmp_path / "small.png"
    write_png(small, np.zeros((16, 16, 3), np.uint8))
    assert_one_line_error(*run_cli(capsys, *gen, sketch_folder, "--first-frame", small), "--first-frame", "16x16")
    assert_one_line_error(*run_cli(capsys, "generate", "--model", label_model, "--source", sketch_folder, "--out", out),
                          "input_nc=3", "--source-kind labels")
    assert_one_line_error(*run_cli(capsys, "generate", "--model", label_model, "--source", sketch_folder, "--out", out,
                                   "--source-kind", "labels"), "label id 255")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


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
