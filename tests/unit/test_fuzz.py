"""Property-based fuzzing of everything that reads user files: random and mutated bytes of model files,
video containers and label PNGs, and random POSE_KEYPOINT JSON, through the model loader, the source
readers and the CLI.  Every input must either work or fail with the package's error class (a ValueError
subclass naming the problem; the CLI: exit 2 and one ``error:`` line), never another exception, a
traceback or a hang.  Seeded (derandomized) so CI sees the same cases every run."""
from __future__ import annotations

import contextlib
import io
import json
import signal
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2v.cli import main
from v2v.model.checkpoint import CheckpointError, load_generator, save_generator
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.media.video_io import VideoError, VideoWriter, open_video
from v2v.sources.labels import label_video
from v2v.sources.pose import from_pose_keypoint

TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1)
FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=60,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HANG_SECONDS = 20


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    """Fail (instead of waiting forever) when one case runs longer than ``seconds``."""
    def alarm(signum, frame):
        raise TimeoutError(f"hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class Corpus(dict):
    def __repr__(self) -> str:          # hypothesis prints the arguments of a failing case: keep it short
        return f"Corpus({', '.join(self)})"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, bytes | Path]:
    """Valid seeds to mutate: a tiny model file, a short mp4, a label-id PNG."""
    root = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    model = save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=3, **TINY)), root / "rgb.safetensors")
    video = root / "clip.mp4"
    with VideoWriter(video, fps=10) as w:
        for i in range(6):
            w.write(np.full((32, 32, 3), 40 * i, np.uint8))
    ok, png = cv2.imencode(".png", (np.arange(32 * 32).reshape(32, 32) % 4).astype(np.uint8))
    assert ok
    return Corpus(root=root, model_path=model, model=model.read_bytes(), video=video.read_bytes(), png=png.tobytes())


def mutations(seed_key: str):
    """Strategies of damaged copies of a seed file: bit flips, overwritten spans, truncation, insertion."""
    def apply(data: bytes, ops) -> bytes:
        buf = bytearray(data)
        for kind, pos, value in ops:
            if not buf:
                break
            i = pos % len(buf)
            if kind == "flip":
                buf[i] ^= 1 << (value % 8)
            elif kind == "set":
                buf[i] = value % 256
            elif kind == "cut":
                del buf[i:]
            elif kind == "insert":
                buf[i:i] = bytes([value % 256]) * (1 + value % 7)
        return bytes(buf)

    op = st.tuples(st.sampled_from(["flip", "set", "cut", "insert"]), st.integers(0, 1 << 30), st.integers(0, 255))
    return st.lists(op, min_size=1, max_size=6).map(lambda ops: (seed_key, ops, apply))


def mutated(corpus, drawn) -> bytes:
    key, ops, apply = drawn
    return apply(corpus[key], ops)


def header_mutations():
    """Valid-looking safetensors whose JSON header is changed: the parser must judge the content, not trust it."""
    junk = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.floats() | st.text(max_size=8),
                        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
                        max_leaves=12)
    return st.tuples(st.sampled_from(["dtype", "shape", "data_offsets", "entry", "metadata", "config"]), junk)


def with_header_change(data: bytes, change) -> bytes:
    where, value = change
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    name = sorted(k for k in header if k != "__metadata__")[0]
    if where in ("dtype", "shape", "data_offsets"):
        header[name][where] = value
    elif where == "entry":
        header[name] = value
    elif where == "metadata":
        header["__metadata__"] = value
    else:
        header["__metadata__"]["v2v.config"] = value if isinstance(value, str) else json.dumps(value)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def cli_clean(args: list) -> None:
    """The CLI on ``args``: exit 0, or exit 2 with one ``error:`` line; anything else fails the test."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), no_hang():
        code = main([str(a) for a in args])
    text = err.getvalue()
    assert code in (0, 2), (code, text[-2000:])
    if code == 2:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        assert lines and lines[-1].startswith("error: ") and "Traceback" not in text, text[-2000:]


# ---- the model loader ----------------------------------------------------------------------------------------
@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_as_a_model(corpus, data):
    path = write(corpus["root"], "random.safetensors", data)
    with no_hang(), pytest.raises(CheckpointError):
        load_generator(path)


@FUZZ
@given(drawn=mutations("model"))
def test_mutated_model_files(corpus, drawn):
    data = mutated(corpus, drawn)
    path = write(corpus["root"], "mutated.safetensors", data)
    with no_hang():
        try:
            model = load_generator(path)
        except CheckpointError:
            return
    # loading succeeded: only harmless changes may do that, so the weights are exactly the original ones
    original = load_generator(corpus["model_path"]).state_dict()
    assert all(torch.equal(t, original[k]) for k, t in model.state_dict().items())


@FUZZ
@given(change=header_mutations())
def test_mutated_model_headers(corpus, change):
    path = write(corpus["root"], "header.safetensors", with_header_change(corpus["model"], change))
    with no_hang():
        try:
            load_generator(path)
        except CheckpointError:
            pass


# ---- source readers ----------------------------------------------------------------------------------------
def read_all(video) -> None:
    for _ in video.frames():
        pass


@FUZZ
@given(drawn=mutations("video"))
def test_mutated_video_containers(corpus, drawn):
    path = write(corpus["root"], "mutated.mp4", mutated(corpus, drawn))
    with no_hang():
        try:
            read_all(open_video(path))
        except VideoError:
            pass


@FUZZ
@given(drawn=mutations("png"))
def test_mutated_label_pngs(corpus, drawn):
    folder = corpus["root"] / "labels"
    folder.mkdir(exist_ok=True)
    write(folder, "000000.png", corpus["png"])
    write(folder, "000001.png", mutated(corpus, drawn))
    with no_hang():
        try:
            source = label_video(folder, label_nc=4)
            for _ in source.frames():
                pass
        except VideoError:      # SourceError is one
            pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda kids: st.lists(kids, max_size=6) | st.dictionaries(
        st.sampled_from(["people", "canvas_width", "canvas_height", "pose_keypoints_2d", "hand_left_keypoints_2d",
                         "face_keypoints_2d", "x"]), kids, max_size=5),
    max_leaves=40)
keypoint_frames = st.lists(st.fixed_dictionaries(
    {"canvas_width": st.integers(-5, 300) | json_values, "canvas_height": st.integers(-5, 300) | json_values,
     "people": st.lists(st.fixed_dictionaries(
         {"pose_keypoints_2d": st.lists(st.floats(-2, 400) | st.floats() | json_values, max_size=80)}), max_size=3)
        | json_values}),
    max_size=4) | json_values


@FUZZ
@given(data=keypoint_frames)
def test_random_pose_keypoint_json(data):
    from v2v.sources.pose import pose_video

    with no_hang():
        try:
            frames = from_pose_keypoint(data)
            source = pose_video(keypoints=frames)
            for _ in source.frames():
                pass
        except ValueError:          # SourceError and VideoError are ValueErrors
            pass


# ---- the CLI ---------------------------------------------------------------------------------------------
@settings(FUZZ, max_examples=25)
@given(drawn=mutations("model"))
def test_cli_info_on_mutated_models(corpus, drawn):
    cli_clean(["info", "--model", write(corpus["root"], "cli.safetensors", mutated(corpus, drawn))])


@settings(FUZZ, max_examples=25)
@given(drawn=mutations("video"))
def test_cli_generate_on_mutated_videos(corpus, drawn):
    out = corpus["root"] / "out.mp4"
    out.unlink(missing_ok=True)
    source = write(corpus["root"], "cli_source.mp4", mutated(corpus, drawn))
    cli_clean(["generate", "--model", corpus["model_path"], "--source", source, "--out", out, "--source-kind", "rgb",
               "--quiet"])


@FUZZ
@given(data=st.binary(max_size=600) | keypoint_frames.map(lambda v: json.dumps(v).encode()))
def test_openpose_json_files_of_random_bytes(corpus, data):
    from v2v.sources.pose import read_openpose_json

    folder = corpus["root"] / "openpose"
    folder.mkdir(exist_ok=True)
    write(folder, "frame_000000_keypoints.json", data)
    with no_hang():
        try:
            read_openpose_json(folder, width=64, height=48)
        except ValueError:
            pass


@settings(FUZZ, max_examples=25)
@given(drawn=mutations("png"))
def test_cli_generate_on_mutated_label_pngs(corpus, drawn):
    root = corpus["root"]
    if not (root / "labels4.safetensors").exists():
        torch.manual_seed(0)
        save_generator(Vid2VidGenerator(GeneratorConfig(input_nc=5, label_nc=4, **TINY)), root / "labels4.safetensors")
    folder = root / "cli_labels"
    folder.mkdir(exist_ok=True)
    write(folder, "000000.png", corpus["png"])
    write(folder, "000001.png", mutated(corpus, drawn))
    out = root / "labels_out.mp4"
    out.unlink(missing_ok=True)
    cli_clean(["generate", "--model", root / "labels4.safetensors", "--source", folder, "--out", out, "--quiet"])
