"""Multimodal synthesis measured on held-out footage (issue: StyleSample): does a seed change what it should and
only that, without making the video flicker?

    python bench/style_study.py --model models/vid2vid/street_style.safetensors --classes 8 \
        --strip docs/style_strip.jpg                     # people resampled (README)
    python bench/style_study.py --model models/vid2vid/street_style.safetensors \
        --out bench/results/style_study_ground.json      # auto: the largest class (the ground)

The held-out street sequence (``.cache/datasets/street/val``: the last 20 % of vtest, never trained on; its
pseudo-labels and tracked person instances as the dataset stores them) is resized to the model's training size
and streamed through the nodes' generation loop with a :class:`v2v.model.style.StylePlan` per run:

* ``mean``: every class keeps its mean style (resample none), the reference;
* one run per seed resampling only ``--classes`` (``auto``: the class covering most of the held-out frames, the
  paper's "only the road changes"), and one per seed resampling every class.

Reported per run (uint8 outputs, as a saved video): the mean colour distance to the other seeds' runs inside the
resampled classes and outside them (mean absolute RGB difference in levels, 0..255, over the pixels of each
part, all frames), and the temporal warping error (the real video's DIS flow, occlusions masked) against the
mean-style run's.  Results: bench/results/style_study.json.

With ``--reference IMAGE`` (a frame of another clip) one more run takes the resampled classes' styles from that
picture (labelled with the model's recipe, encoded by the model's style encoder E, as StyleSample does), and the
report says, per class, how far the output's mean colour inside the class lies from the reference's mean colour
there (RGB distance, 0..441), for the mean-style run and the reference run: the reference run should be nearer.

    python bench/style_study.py --model models/vid2vid/streets_style.safetensors \
        --data .cache/datasets/streets --sequence street_challenge02 \
        --reference .cache/datasets/streets/val/street_project_video01/target/000050.jpg
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import load_heldout, run_context, training_load_size, write_report  # noqa: E402
from v2v.media.metrics import to_uint8_frames, warping_error  # noqa: E402
from v2v.media.optical_flow import FlowCache  # noqa: E402
from v2v.media.resize import resize_image  # noqa: E402
from v2v.media.video_io import frame_grid, read_frames, write_image  # noqa: E402
from v2v.model.checkpoint import load_generator, read_metadata  # noqa: E402
from v2v.model.style import StylePlan, read_style_mixtures  # noqa: E402
from v2v.pipeline import generate  # noqa: E402
from v2v.sources.labels import label_colors, label_video  # noqa: E402


def label_ids(data) -> np.ndarray:
    """[T, H, W] class ids of a held-out label sequence (its one-hot sources)."""
    return np.stack([s.argmax(0).numpy() for s in data.sources])


def run(model, ids: np.ndarray, instances: np.ndarray, plan: StylePlan) -> list[np.ndarray]:
    source = label_video(ids, label_nc=model.cfg.label_nc, instances=instances)
    return [to_uint8_frames(g.frame[None].cpu())[0] for g in generate(model, source, style=plan, shots=None)]


def colour_distance(a: list[np.ndarray], b: list[np.ndarray], where: np.ndarray) -> float | None:
    """Mean |a - b| over RGB levels of the pixels ``where`` ([T, H, W] bool); None when it selects nothing."""
    if not where.any():
        return None
    diff = np.abs(np.stack(a).astype(np.float32) - np.stack(b).astype(np.float32)).mean(-1)
    return float(diff[where].mean())


def class_colours(frames, ids: np.ndarray, classes) -> dict[int, np.ndarray]:
    """Mean RGB colour of each class's pixels over ``frames`` ([T, H, W, 3] or one [H, W, 3] with ids [H, W])."""
    rgb, ids = np.asarray(frames, np.float64), np.asarray(ids)
    return {c: rgb[ids == c].mean(0) for c in classes if (ids == c).any()}


def reference_rows(model, model_path, path, picture: np.ndarray, outputs: dict, ids: np.ndarray,
                   inst: np.ndarray, classes: set[int]) -> dict:
    """The reference run (styles of ``classes`` from ``picture``, read from ``path``) and its colour distances;
    the picture's class colours are taken as E sees it (:func:`v2v.pipeline.reference_labels`)."""
    from v2v.model.checkpoint import load_style_encoder
    from v2v.pipeline import reference_labels, style_plan

    plan = style_plan(model, resample=set(), reference=picture, reference_classes=classes,
                      encoder=load_style_encoder(model_path))
    outputs["reference"] = run(model, ids, inst, plan)
    target = class_colours(*reference_labels(model, picture), classes)
    rows = {}
    for name in ("mean", "reference"):
        got = class_colours(np.stack(outputs[name]), ids, target)
        rows[name] = {str(c): round(float(np.linalg.norm(got[c] - target[c])), 1) for c in sorted(got)}
    return {"picture": str(path), "classes_taken": sorted(int(c) for c in plan.fixed),
            "colour_distance_to_reference": rows,
            "reference_colours": {str(c): [round(float(v), 1) for v in target[c]] for c in sorted(target)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=ROOT / ".cache" / "datasets" / "street")
    ap.add_argument("--sequence", default=None, help="the held-out sequence (default: the first)")
    ap.add_argument("--reference", type=Path, default=None,
                    help="a picture (first frame of an image/video) whose styles the resampled classes take")
    ap.add_argument("--classes", default="auto", help="resampled class ids, comma-separated, or auto")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--max-frames", type=int, default=0, help="0: the whole held-out sequence")
    ap.add_argument("--machine", default="2-core CPU (project machine)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "style_study.json")
    ap.add_argument("--strip", type=Path, default=None,
                    help="picture, a row each: labels, mean style, each seed resampling --classes")
    a = ap.parse_args(argv)

    model = load_generator(a.model)
    cfg = model.cfg
    mixtures = read_style_mixtures(read_metadata(a.model))
    size = training_load_size(a.model)
    data = load_heldout(a.data, "val", sequence=a.sequence, size=size)[0]
    if data.instances is None:
        raise SystemExit(f"{a.data}: the held-out sequence has no instance maps (prepare with instances)")
    n = len(data) if a.max_frames <= 0 else min(a.max_frames, len(data))
    ids, inst, real = label_ids(data)[:n], np.stack(data.instances[:n]), data.real[:n]
    if a.classes == "auto":
        classes = {int(np.bincount(ids.ravel(), minlength=cfg.label_nc).argmax())}
    else:
        classes = {int(c) for c in a.classes.split(",")}
    inside = np.isin(ids, sorted(classes))

    plans = {"mean": StylePlan(mixtures, cfg.style_nc, resample=set())}
    for s in a.seeds:
        plans[f"classes seed {s}"] = StylePlan(mixtures, cfg.style_nc, seed=s, resample=classes)
    for s in a.seeds:
        plans[f"all seed {s}"] = StylePlan(mixtures, cfg.style_nc, seed=s)
    outputs = {name: run(model, ids, inst, plan) for name, plan in plans.items()}
    picture = next(iter(read_frames(a.reference))) if a.reference else None
    reference = (reference_rows(model, a.model, a.reference, picture, outputs, ids, inst, classes)
                 if a.reference else None)

    flows = FlowCache(data.flow_cache)
    rows = []
    mean_we = warping_error(real, outputs["mean"], cache=flows).mean
    for group in ("classes", "all"):
        names = [f"{group} seed {s}" for s in a.seeds]
        pairs = list(itertools.combinations(names, 2))
        d_in = [colour_distance(outputs[x], outputs[y], inside) for x, y in pairs]
        d_out = [colour_distance(outputs[x], outputs[y], ~inside) for x, y in pairs]
        for name in names:
            we = warping_error(real, outputs[name], cache=flows).mean
            rows.append({"run": name, "resampled": sorted(classes) if group == "classes" else "all",
                         "seed_distance_inside": round(float(np.mean([d for d in d_in if d is not None])), 2),
                         "seed_distance_outside": round(float(np.mean([d for d in d_out if d is not None])), 2),
                         "warping_error": round(we, 3), "warping_error_vs_mean_style": round(we / mean_we, 3)})
    report = {"model": str(a.model), "frames": n, "size": list(real[0].shape[:2]), "classes": sorted(classes),
              "class_area_share": round(float(inside.mean()), 3), "warping_error_mean_style": round(mean_we, 3),
              "warping_error_real_video": round(warping_error(real, real, cache=flows).mean, 3),
              "sequence": data.name, "rows": rows, "reference": reference,
              **run_context(a.machine, "bench/style_study.py", argv)}
    write_report(a.out, report)
    print(json.dumps({k: v for k, v in report.items() if k not in ("rows", "reference")}, indent=1))
    if reference:
        print("reference:", json.dumps(reference))
    print("| run | resampled | seed distance inside | outside | warping error (x mean style) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['resampled']} | {r['seed_distance_inside']} | {r['seed_distance_outside']} | "
              f"{r['warping_error']} ({r['warping_error_vs_mean_style']}x) |")
    if a.strip:
        labels = [label_colors(i, cfg.label_nc) for i in ids]
        seeds = [outputs[f"classes seed {s}"] for s in a.seeds]
        extra = [[resize_image(picture, real[0].shape[:2])] * len(real), outputs["reference"]] if a.reference else []
        write_image(a.strip, frame_grid([labels, outputs["mean"], *seeds, *extra], 4))
        print(f"strip: {a.strip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
