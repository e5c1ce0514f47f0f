"""Shot changes on real footage: are the cuts found, and does restarting the history there remove the bleed?

    python bench/shot_cuts.py [--tasks street face body] [--after 30] [--out bench/results/shot_cuts.json]
    python bench/shot_cuts.py --smoke            # two short committed segments, the face model (tests run it)

One video is spliced from segments of six real clips at known frames (vtest, carphone, Megamind, tree, Big
Buck Bunny, vtest again; each cropped to 4:3 and resized to 640x480).  For each shipped model:

* its source (by the model's recorded recipe, at its training size) is extracted once, and the detector's
  cuts (:class:`v2v.media.cuts.CutDetector` on the decoded video) are compared with the true ones;
* the same source frames are generated three ways: with the detected cuts (history restarts there), without
  any cut, and afresh from each true cut (the reference: nothing of the earlier shot can be in it);
* reported, for the ``--after`` frames following each true cut: the mean absolute difference (0..255 levels)
  between each run and the fresh one, and how many frames the run without cuts takes to come within 1 level.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import run_context, sample_clip, write_report  # noqa: E402

WORK = ROOT / ".cache" / "bench" / "shot_cuts"
MODELS = ROOT / "models" / "vid2vid"
SIZE = (480, 640)
# (clip, first frame, frames): six shots, five cuts
# each segment free of cuts of its own (Megamind.avi is edited: cuts at 98, 154, 200); tree.avi decodes 68 frames
SEGMENTS = [("vtest.avi", 100, 60), ("carphone_pristine.mp4", 0, 60), ("Megamind.avi", 20, 60), ("tree.avi", 0, 60),
            ("bigbuckbunny.mp4", 20, 60), ("vtest.avi", 500, 60)]


def to_4_3(frame: np.ndarray) -> np.ndarray:
    """Centre crop to 4:3, then resize to SIZE."""
    from v2v.media.resize import resize_image

    h, w = frame.shape[:2]
    if w * 3 > h * 4:
        cw = h * 4 // 3
        frame = frame[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = w * 3 // 4
        frame = frame[(h - ch) // 2:(h - ch) // 2 + ch]
    return resize_image(np.ascontiguousarray(frame), SIZE)


def spliced_video(segments) -> tuple[Path, list[int]]:
    """The spliced clip (cached under WORK) and the frames where its shots start (after the first)."""
    from v2v.media.video_io import VideoWriter, open_video

    name = "_".join(f"{Path(c).stem}{s}-{n}" for c, s, n in segments)
    out = WORK / f"spliced_{hashlib.sha1(name.encode()).hexdigest()[:10]}.mp4"
    record = out.with_suffix(".json")
    if not (out.is_file() and record.is_file()):
        out.parent.mkdir(parents=True, exist_ok=True)
        lengths = []
        with VideoWriter(out, fps=25, crf=16) as writer:
            for clip, start, n in segments:
                path = ROOT / clip if (ROOT / clip).is_file() else sample_clip(clip)   # committed, or fetched
                before = writer.count
                for frame in open_video(path, start=start, max_frames=n):
                    writer.write(to_4_3(frame))
                lengths.append(writer.count - before)
        if min(lengths) < 2:
            raise SystemExit(f"a segment of {segments} decoded to fewer than 2 frames: {lengths}")
        record.write_text(json.dumps({"segments": segments, "lengths": lengths}))
    lengths = json.loads(record.read_text())["lengths"]
    return out, [int(v) for v in np.cumsum(lengths)[:-1]]


def frames_of(model, source, **kw) -> list[np.ndarray]:
    from v2v.pipeline import frames_uint8, generate

    return [f.astype(np.int16) for f in frames_uint8(generate(model, source, **kw))]


def extracted(model, video: Path, size: tuple[int, int]):
    """``video`` turned into ``model``'s source at ``size`` by its recorded recipe, extracted once: the frames as one
    tensor, the source's kind and label count, and the cuts the detector marks on the decoded video."""
    import torch

    from v2v.pipeline import model_recipe
    from v2v.sources.base import ShotOptions
    from v2v.sources.recipe import source_for

    source = source_for(model_recipe(model), video, size=size)
    frames, detected = [], []
    for f in source.frames(shots=ShotOptions()):
        frames.append(f.tensor)
        if f.cut:
            detected.append(f.index)
    return torch.stack(frames), dict(kind=source.kind, label_nc=source.label_nc), detected


def evaluate_task(task: str, video: Path, true_cuts: list[int], after: int) -> dict:
    from v2v.model.checkpoint import load_generator
    from v2v.pipeline import model_recipe, target_size
    from v2v.sources.base import ShotOptions, tensor_source

    model = load_generator(MODELS / f"{task}.safetensors")
    recipe = model_recipe(model)
    size = target_size(model, SIZE, "model")
    frames, kind, detected = extracted(model, video, size)
    fixed = tensor_source(frames, **kind)
    on = frames_of(model, fixed, shots=ShotOptions(detect=False, cut_frames=tuple(detected)))
    off = frames_of(model, fixed, shots=None)
    per_cut = []
    for c in true_cuts:
        fresh = frames_of(model, fixed, start=c, max_frames=after, shots=None)
        d_on = [float(np.abs(on[c + k] - fresh[k]).mean()) for k in range(len(fresh))]
        d_off = [float(np.abs(off[c + k] - fresh[k]).mean()) for k in range(len(fresh))]
        settle = next((k for k, d in enumerate(d_off) if d < 1.0), None)
        per_cut.append({"cut": c, "detected": c in detected, "diff_on": round(float(np.mean(d_on)), 3),
                        "diff_off": round(float(np.mean(d_off)), 3), "diff_off_first": round(d_off[0], 3),
                        "frames_until_within_1_level_off": settle, "diff_on_per_frame": [round(d, 3) for d in d_on],
                        "diff_off_per_frame": [round(d, 3) for d in d_off]})
    return {"task": task, "size": list(size), "recipe": recipe.extractor, "true_cuts": true_cuts,
            "detected_cuts": detected, "found": sum(c in detected for c in true_cuts),
            "false_alarms": [d for d in detected if d not in true_cuts], "per_cut": per_cut}


def markdown(results: list[dict], after: int) -> str:
    lines = [f"| model | cuts found | false alarms | mean abs diff vs a fresh run, {after} frames after each cut: "
             "detection on / off | frames until off is within 1 level |", "|---|---|---|---|---|"]
    for r in results:
        on = np.mean([c["diff_on"] for c in r["per_cut"]])
        off = np.mean([c["diff_off"] for c in r["per_cut"]])
        settle = [c["frames_until_within_1_level_off"] for c in r["per_cut"]]
        settle_s = ", ".join(f"> {after}" if s is None else str(s) for s in settle)
        lines.append(f"| {r['task']} ({r['size'][1]}x{r['size'][0]}) | {r['found']} / {len(r['true_cuts'])} | "
                     f"{len(r['false_alarms'])} | {on:.2f} / {off:.2f} | {settle_s} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["street", "face", "body"], choices=("street", "face", "body"))
    ap.add_argument("--after", type=int, default=30, help="frames after each cut to compare")
    ap.add_argument("--smoke", action="store_true", help="two 12-frame segments of committed clips, the face model")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--machine", default=f"{os.cpu_count()}-core CPU")
    a = ap.parse_args(argv)
    segments = SEGMENTS
    if a.smoke:
        segments = [("workflows/input/vid2vid_carphone_60f.mp4", 0, 12), ("tests/data/vtest_40f.mp4", 10, 12)]
        a.tasks, a.after = ["face"], 4
    video, cuts = spliced_video(segments)
    results = []
    for task in a.tasks:
        r = evaluate_task(task, video, cuts, a.after)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "per_cut"}), flush=True)
    table = markdown(results, a.after)
    print(table)
    if a.out:
        write_report(a.out, {**run_context(a.machine, "bench/shot_cuts.py", argv), "segments": segments,
                             "results": results, "markdown": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
