"""The shared workflows in a real ComfyUI server: each API workflow runs over HTTP and writes the video it
should; the sequential model is temporally steadier than the same model run frame by frame; an interrupt
mid-run leaves a server that runs the next prompt; every bad input shows its message in /history.

The workflow inputs (workflows/input/) are copied into the server's input folder; the sample models ship
in the pack's models/vid2vid/ (made by scripts/make_sample_models.py), which the pack registers.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from nodes.models import PACK_MODELS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
INPUTS = WORKFLOWS / "input"

# workflow -> (frames, width, height, reference video for the warping error, sample model)
EXPECTED = {
    "vid2vid_labels_to_street": (40, 256, 192, ROOT / "tests" / "data" / "vtest_40f.mp4", "street"),
    "vid2vid_sketch_to_face": (60, 176, 144, INPUTS / "vid2vid_carphone_60f.mp4", "face"),
    "vid2vid_pose_to_body": (40, 256, 192, ROOT / "tests" / "data" / "vtest_40f.mp4", "pose"),
}
GEN = "2"  # the Vid2VidGenerate node's id in every shared workflow


def sample_model(task: str) -> Path:
    return PACK_MODELS / f"vid2vid_sample_{task}.safetensors"


def load_api(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def host(comfy_server, comfy):
    """The server with the workflow inputs in its input folder and the sample models present."""
    missing = [str(sample_model(t)) for *_, t in EXPECTED.values() if not sample_model(t).is_file()]
    if missing:
        pytest.fail(f"sample models missing: {missing}; make them with python scripts/make_sample_models.py")
    if comfy_server.input_dir is not None:
        for item in INPUTS.iterdir():
            target = Path(comfy_server.input_dir) / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(item, target)
    return comfy


def decode(data: bytes) -> list[np.ndarray]:
    """mp4 bytes -> RGB uint8 frames."""
    import av
    import io

    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def video_of(comfy, entry) -> list[np.ndarray]:
    videos = entry.outputs[GEN]["videos"]
    assert len(videos) == 1 and videos[0]["filename"].endswith(".mp4"), videos
    return decode(comfy.view(videos[0]))


def assert_completed(entry):
    assert entry.completed, json.dumps(entry.error or entry.status)[:3000]


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.host_smoke] if n == "vid2vid_sketch_to_face" else [])
                                  for n in sorted(EXPECTED)])
def test_workflow_writes_the_expected_video(host, name):
    frames_expected, width, height, *_ = EXPECTED[name]
    entry = host.run(load_api(name), timeout=240)
    assert_completed(entry)
    frames = video_of(host, entry)
    assert len(frames) == frames_expected
    assert frames[0].shape == (height, width, 3)
    clip = np.stack(frames).astype(np.float32)
    assert clip.std(axis=(1, 2, 3)).min() > 2.0, "a generated frame is (nearly) constant"
    assert np.abs(np.diff(clip, axis=0)).mean() > 0.1, "every frame is the same"
    previews = entry.outputs[GEN]["images"]
    assert len(previews) == 4 and all(p["type"] == "temp" for p in previews)
    assert host.view(previews[0])[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.host_smoke
def test_style_workflow_three_seeds_change_only_the_resampled_class(host):
    """labels -> StyleSample x 3 seeds -> three videos from the shipped style model: the seeds differ inside the
    resampled class (8, the people) clearly more than outside it."""
    from v2v.media.resize import resize_ids
    from v2v.sources.labels import read_id_png

    entry = host.run(load_api("vid2vid_style_street"), timeout=600)
    assert_completed(entry)
    videos = [np.stack(decode(host.view(entry.outputs[node]["videos"][0]))).astype(np.float32)
              for node in (GEN, "21", "22")]
    assert all(v.shape == (80, 96, 128, 3) for v in videos), [v.shape for v in videos]
    labels = sorted((INPUTS / "vid2vid_street_heldout").glob("*.png"))
    inside = np.stack([resize_ids(read_id_png(p), (96, 128)) == 8 for p in labels])
    for a, b in ((0, 1), (0, 2), (1, 2)):
        diff = np.abs(videos[a] - videos[b]).mean(-1)
        assert diff[inside].mean() > 2 * diff[~inside].mean(), (diff[inside].mean(), diff[~inside].mean())


@pytest.mark.host_smoke
def test_style_from_a_reference_image(host, comfy_server):
    """LoadImage -> StyleSample.reference_image: the classes the picture shows take its look, encoded by the shipped
    style model's E; its style preview and its video differ from the mean style's (a brightened street frame, so
    its look is not the training clip's)."""
    if comfy_server.input_dir is None:
        pytest.skip("needs a server this session started (its input directory)")
    cap = cv2.VideoCapture(str(ROOT / "tests" / "data" / "vtest_40f.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    cv2.imwrite(str(Path(comfy_server.input_dir) / "v2v_style_reference.png"),
                np.clip(frame.astype(np.float32) * 1.6 + 30, 0, 255).astype(np.uint8))
    workflow = load_api("vid2vid_style_street")
    loader = {**workflow["1"], "inputs": {**workflow["1"]["inputs"], "max_frames": 8}}
    mean = {**workflow["11"], "inputs": {**workflow["11"]["inputs"], "resample_classes": "none"}}
    referenced = {**mean, "inputs": {**mean["inputs"], "reference_image": ["5", 0], "reference_classes": "all"}}
    prompt = {"1": loader, "11": mean, "12": referenced,
              "5": {"class_type": "LoadImage", "inputs": {"image": "v2v_style_reference.png"}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["11", 1], "filename_prefix": "v2v_style_mean"}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["12", 1], "filename_prefix": "v2v_style_ref"}},
              GEN: {**workflow[GEN], "inputs": {**workflow[GEN]["inputs"], "style": ["11", 0],
                                                "filename_prefix": "vid2vid/style_mean"}},
              "21": {**workflow["21"], "inputs": {**workflow["21"]["inputs"], "style": ["12", 0],
                                                   "filename_prefix": "vid2vid/style_reference"}}}
    entry = host.run(prompt, timeout=600)
    assert_completed(entry)
    previews = {f["filename"].split("_")[2]: cv2.imdecode(np.frombuffer(host.view(f), np.uint8), cv2.IMREAD_COLOR)
                for f in entry.files("images") if f["filename"].startswith("v2v_style_")}
    assert set(previews) == {"mean", "ref"}
    assert np.abs(previews["mean"].astype(np.float32) - previews["ref"]).mean() > 5
    videos = [np.stack(decode(host.view(entry.outputs[node]["videos"][0]))).astype(np.float32) for node in (GEN, "21")]
    assert videos[0].shape == videos[1].shape == (8, 96, 128, 3)
    assert np.abs(videos[0] - videos[1]).mean() > 1.0


@pytest.mark.host_smoke
def test_future_workflow_continues_the_held_out_labels(host):
    """40 observed held-out maps -> FuturePredict (shipped predictor + street renderer) -> 10 predicted maps and
    frames; the first predicted map agrees with the true next map on most pixels."""
    from v2v.sources.labels import generic_label_set, ids_to_colors, read_id_png

    prompt = load_api("vid2vid_future_street")
    prompt["3"] = {"class_type": "SaveImage", "inputs": {"images": [GEN, 0], "filename_prefix": "v2v_future_maps"}}
    prompt["4"] = {"class_type": "SaveImage", "inputs": {"images": [GEN, 1], "filename_prefix": "v2v_future_frames"}}
    entry = host.run(prompt, timeout=300)
    assert_completed(entry)

    def saved(prefix):
        files = sorted((f for f in entry.files("images") if f["filename"].startswith(prefix)), key=lambda f: f["filename"])
        return [cv2.cvtColor(cv2.imdecode(np.frombuffer(host.view(f), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                for f in files]

    maps, frames = saved("v2v_future_maps"), saved("v2v_future_frames")
    assert len(maps) == len(frames) == 10 and frames[0].shape == (192, 256, 3)
    assert len(entry.outputs[GEN]["images"]) == 4                      # previews on the node
    clip = np.stack(frames).astype(np.float32)
    assert clip.std(axis=(1, 2, 3)).min() > 2.0
    truth = read_id_png(sorted((INPUTS / "vid2vid_street_heldout").glob("*.png"))[40])
    palette = generic_label_set(9).palette()
    agree = (maps[0] == ids_to_colors(truth, palette)).all(-1).mean()
    assert agree > 0.8, agree


# ---- temporal stability vs a per-frame run ----------------------------------------------------------
def _reference_frames(path: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    from v2v.media.video_io import read_frames

    out = []
    for frame in read_frames(path):
        if len(out) == n:
            break
        out.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if frame.shape[1::-1] != size else frame)
    return out


def _per_frame_run(model_path: Path, source) -> list[np.ndarray]:
    """The same model with no temporal context: a fresh sampler for every frame (frame 0 each time)."""
    import torch

    from v2v.model.checkpoint import load_generator
    from v2v.media.tensors import model_to_uint8
    from v2v.sampler import StreamingSampler

    model = load_generator(model_path)
    out = []
    for frame in source.frames():
        sampler = StreamingSampler(model)
        with torch.no_grad():
            out.append(model_to_uint8(sampler.step(frame.tensor)[0]))
    return out


def _local_source(name: str, input_dir: Path, monkeypatch):
    """The workflow's source node run in this process on the same input files (no ComfyUI needed)."""
    from nodes.label_video_loader import LabelVideoLoader
    from nodes.pose_extract import PoseExtract
    from nodes.sketch_extract import SketchExtract

    monkeypatch.setenv("V2V_INPUT_DIR", str(input_dir))
    node = load_api(name)["1"]
    cls = {"LabelVideoLoader": LabelVideoLoader, "SketchExtract": SketchExtract, "PoseExtract": PoseExtract}[node["class_type"]]
    return getattr(cls(), cls.FUNCTION)(**node["inputs"])[0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sequential_output_is_steadier_than_per_frame(host, comfy_server, name, monkeypatch):
    """Temporal warping error (DIS flow of the real video, occlusions masked) of the workflow's output,
    taken lossless (IMAGE mode + SaveImage), against the same model run frame by frame."""
    from v2v.media.metrics import warping_error

    n, width, height, reference, task = EXPECTED[name]
    prompt = load_api(name)
    prompt[GEN]["inputs"]["output"] = "images"
    prompt["3"] = {"class_type": "SaveImage", "inputs": {"images": [GEN, 0], "filename_prefix": f"v2v_warp_{task}"}}
    entry = host.run(prompt, timeout=240)
    assert_completed(entry)
    files = entry.files("images")
    files = [f for f in files if f["filename"].startswith(f"v2v_warp_{task}")]
    assert len(files) == n
    sequential = [cv2.cvtColor(cv2.imdecode(np.frombuffer(host.view(f), np.uint8), cv2.IMREAD_COLOR),
                               cv2.COLOR_BGR2RGB) for f in files]
    input_dir = Path(comfy_server.input_dir) if comfy_server.input_dir else INPUTS
    per_frame = _per_frame_run(sample_model(task), _local_source(name, input_dir, monkeypatch))
    real = _reference_frames(reference, n, (width, height))
    e_seq = warping_error(real, sequential).mean
    e_frame = warping_error(real, per_frame).mean
    e_real = warping_error(real, real).mean
    print(f"{name}: warping error sequential {e_seq:.2f}, per-frame {e_frame:.2f}, real video {e_real:.2f}")
    assert e_seq < e_frame


# ---- interrupts and bad inputs --------------------------------------------------------------------------
def _long_prompt(seed: int) -> dict:
    """100 frames at 512x384 (constant labels from an EmptyImage batch): long enough to interrupt."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 384, "batch_size": 100, "color": 0}},
        "4": {"class_type": "LabelVideoLoader", "inputs": {"label_format": "ids", "label_nc": 9,
                                                           "instance_boundary": False, "images": ["1", 0]}},
        GEN: {"class_type": "Vid2VidGenerate", "inputs": {
            **load_api("vid2vid_labels_to_street")[GEN]["inputs"], "source": ["4", 0], "seed": seed,
            "filename_prefix": "vid2vid/interrupted"}},
    }


def test_interrupt_mid_run_then_the_next_run_succeeds(host, comfy_server):
    prompt = _long_prompt(seed=12345)
    with host.events(timeout=120) as events:
        prompt_id = host.queue_prompt(prompt)
        for kind, data in events:
            if kind == "executing" and data.get("prompt_id") == prompt_id and data.get("node") is None:
                pytest.fail("the prompt finished before it could be interrupted")
            if kind == "progress" and data.get("max") == 100 and data.get("value", 0) >= 2:
                host.interrupt()
                break
    entry = host.wait(prompt_id, timeout=120)
    assert entry.interrupted and not entry.completed, entry.status
    if comfy_server.output_dir is not None:  # the aborted video is not left behind, not even as a temp file
        left = [p.name for p in Path(comfy_server.output_dir).rglob("*interrupted*")]
        assert left == [], left
    again = load_api("vid2vid_labels_to_street")
    again[GEN]["inputs"]["seed"] = 7  # not the cached result of the earlier test
    entry = host.run(again, timeout=240)
    assert_completed(entry)
    assert len(video_of(host, entry)) == 40


def _bad_foreign(comfy_server):
    from safetensors.torch import save_file
    import torch

    folder = Path(comfy_server.run_dir) / "models" / "vid2vid"
    save_file({"model.diffusion.weight": torch.zeros(4, 4)}, str(folder / "not_vid2vid.safetensors"))
    prompt = load_api("vid2vid_labels_to_street")
    prompt[GEN]["inputs"]["model_name"] = "not_vid2vid.safetensors"
    return prompt, "is a safetensors file but not a vid2vid generator"


def _bad_pickle(comfy_server):
    import torch

    folder = Path(comfy_server.run_dir) / "models" / "vid2vid"
    torch.save({"w": torch.zeros(2)}, folder / "old_format.pth")
    prompt = load_api("vid2vid_labels_to_street")
    prompt[GEN]["inputs"]["model_name"] = "old_format.pth"
    return prompt, "is not a safetensors file (looks like a pickled PyTorch checkpoint"


def _bad_source(comfy_server):
    prompt = load_api("vid2vid_labels_to_street")
    prompt[GEN]["inputs"]["model_name"] = "vid2vid_sample_face.safetensors"
    return prompt, ("vid2vid_sample_face.safetensors was trained on an edge sketch (Canny) [blur=3, sigma=0.33], "
                    "but the connected source is label maps")


def _bad_empty(comfy_server):
    prompt = load_api("vid2vid_labels_to_street")
    prompt[GEN]["inputs"]["start_frame"] = 1000
    return prompt, "start_frame is 1000 but the source has 40 frames"


BAD = {"foreign_model": _bad_foreign, "pickled_model": _bad_pickle, "wrong_source": _bad_source,
       "empty": _bad_empty}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_shows_its_message_and_leaves_a_healthy_server(host, comfy_server, case):
    if comfy_server.log_path is None and case in ("foreign_model", "pickled_model"):
        pytest.skip("needs the model folder of a server this test started")
    prompt, message = BAD[case](comfy_server)
    entry = host.run(prompt, timeout=120)
    assert not entry.completed
    error = entry.error
    assert error is not None and error["node_type"] == "Vid2VidGenerate", entry.status
    assert message in error["exception_message"], error["exception_message"]
    assert host.get_json("/system_stats")
    assert host.queue() == {"queue_running": [], "queue_pending": []}


def test_any_frame_size_runs_and_comes_back_at_its_size(host):
    """102x62 is no multiple of the model's 4: padded for the network, cropped back in the output."""
    prompt = _long_prompt(seed=1)
    prompt["1"]["inputs"].update(width=102, height=62, batch_size=3)
    entry = host.run(prompt, timeout=120)
    assert_completed(entry)
    frames = video_of(host, entry)
    assert len(frames) == 3 and frames[0].shape == (62, 102, 3)


@pytest.mark.host_smoke
def test_precision_int8_in_the_host_is_close_to_float32(host):
    """The node's precision int8 with device auto (which then picks the CPU), in the host's own torch: the same
    number of frames as float32, a few 8-bit levels from them at most on average."""
    prompt = load_api("vid2vid_labels_to_street")
    prompt[GEN]["inputs"].update(max_frames=12, device="auto", precision="fp32")
    runs = {}
    for precision in ("fp32", "int8"):
        prompt[GEN]["inputs"]["precision"] = precision
        entry = host.run(prompt, timeout=240)
        assert_completed(entry)
        runs[precision] = np.stack(video_of(host, entry)).astype(np.float32)
    assert runs["int8"].shape == runs["fp32"].shape and runs["fp32"].shape[0] == 12
    diff = np.abs(runs["int8"] - runs["fp32"]).mean()
    assert 0 < diff < 4.0, diff                    # measured 1.35 levels with this sample model


def test_server_runs_a_workflow_after_the_bad_inputs(host):
    prompt = load_api("vid2vid_sketch_to_face")
    prompt[GEN]["inputs"].update(seed=99, max_frames=5)
    entry = host.run(prompt, timeout=120)
    assert_completed(entry)
    assert len(video_of(host, entry)) == 5


# ---- the core VIDEO type of current hosts -----------------------------------------------------------------
@pytest.mark.parametrize("output", ["video_file", "images"])
def test_core_load_video_and_save_video_around_the_pack(host, comfy, output):
    """Load Video (VIDEO) -> SketchExtract -> Vid2VidGenerate -> Save Video (VIDEO), on hosts with the type."""
    if "LoadVideo" not in comfy.object_info():
        pytest.skip("this host has no core VIDEO nodes")
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "vid2vid_carphone_60f.mp4"}},
        "3": {"class_type": "SketchExtract", "inputs": {"mode": "edges", "distance_transform": False,
                                                        "canny_outside_face": True, "canny_sigma": 0.33,
                                                        "video": ["1", 0]}},
        GEN: {"class_type": "Vid2VidGenerate", "inputs": {
            **load_api("vid2vid_sketch_to_face")[GEN]["inputs"], "source": ["3", 0], "max_frames": 5,
            "output": output, "seed": 31, "filename_prefix": f"vid2vid/core_{output}"}},
        "4": {"class_type": "SaveVideo", "inputs": {"video": [GEN, 2], "filename_prefix": f"vid2vid/saved_{output}",
                                                    "format": "auto", "codec": "auto"}},
    }
    entry = host.run(prompt, timeout=240)
    assert_completed(entry)
    saved = [f for f in entry.files("images") + entry.files("videos")
             if isinstance(f, dict) and "saved_" in f.get("filename", "")]
    assert len(saved) == 1, entry.outputs
    frames = decode(comfy.view(saved[0]))
    assert len(frames) == 5 and frames[0].shape == (144, 176, 3)
