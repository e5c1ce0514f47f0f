#!/usr/bin/env python3
"""Run the README's three raw-video commands (one per shipped model) and draw what they did: for each model,
a row of the video as the model saw it, a row of the source its recipe made from it, a row of the output.

    python scripts/raw_video_strip.py                      # 120 frames each -> out/raw_video/, docs/raw_video_strip.jpg
    python scripts/raw_video_strip.py --frames 40 --strip out/raw_video/strip.jpg

The commands are exactly the README's (plus ``--max-frames`` and ``--stats``); each run's timings are printed
and kept beside its video (``out/raw_video/<model>.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from v2v.cli import main as cli  # noqa: E402
from v2v.media.video_io import frame_grid, open_video, read_frames, write_image  # noqa: E402

DATA = ROOT / ".cache" / "data"
RUNS = {   # model -> the README command's arguments after --model/--source
    "street": (DATA / "vtest.avi", ["--resize", "model"]),
    "face": (DATA / "carphone_pristine.mp4", []),
    "body": (DATA / "vtest.avi", ["--crop", "384,128,320,240", "--resize", "model"]),
}
COLUMNS = 4


def model_view(name: str, n: int, size: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first ``n`` frames as the model saw them (cropped and resized like the CLI did), and the source the
    model's recipe makes of them (previews)."""
    from v2v.model.checkpoint import load_generator
    from v2v.pipeline import model_recipe
    from v2v.sources.recipe import source_for

    src, extra = RUNS[name]
    crop = tuple(int(v) for v in extra[extra.index("--crop") + 1].split(",")) if "--crop" in extra else None
    video = open_video(src, max_frames=n, crop=crop)
    recipe = model_recipe(load_generator(ROOT / "models" / "vid2vid" / f"{name}.safetensors"))
    source = source_for(recipe, video, size=size)
    seen = [f for f in video.edit(size=size)]
    return seen, [f.preview for f in source.frames()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "raw_video")
    ap.add_argument("--strip", type=Path, default=ROOT / "docs" / "raw_video_strip.jpg")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (src, extra) in RUNS.items():
        video, stats = a.out / f"{name}.mp4", a.out / f"{name}.json"
        args = ["generate", "--model", str(ROOT / "models" / "vid2vid" / f"{name}.safetensors"), "--source", str(src),
                *extra, "--out", str(video), "--max-frames", str(a.frames), "--stats", str(stats), "--quiet"]
        if cli(args) != 0:
            raise SystemExit(f"{name}: python -m v2v {' '.join(args)} failed")
        s = json.loads(stats.read_text())
        print(f"{name}: {s['frames']} frames, {s['fps']:.2f} frames/s end to end, {s['sampler_fps']:.2f} in the "
              f"generator, cuts {s['cuts']}")
        out = list(read_frames(video))
        seen, source = model_view(name, a.frames, out[0].shape[:2])
        rows += [seen, source, out]
    width = max(row[0].shape[1] for row in rows)
    write_image(a.strip, frame_grid([pad_to(row, width) for row in rows], COLUMNS))
    print(f"wrote {a.strip}")
    return 0


def pad_to(frames: list[np.ndarray], width: int) -> list[np.ndarray]:
    """Frames padded with black on the right to ``width`` (the models' frames differ in size)."""
    return [np.pad(f, ((0, 0), (0, width - f.shape[1]), (0, 0))) for f in frames]


if __name__ == "__main__":
    sys.exit(main())
