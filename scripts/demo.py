"""The README's main job: labels -> street through a real (offline) ComfyUI server, on held-out footage.

    .venv/bin/python scripts/demo.py [--out out/demo] [--first-frame]

1. Starts the offline ComfyUI host (scripts/comfy_host.py) with this checkout as a custom node pack.
2. Runs the shared workflow workflows/api/vid2vid_labels_to_street.json with two inputs changed, as a user
   would in the web UI: the source is the HELD-OUT last 20 % of the street video (80 pseudo-label maps,
   workflows/input/vid2vid_street_heldout/, never seen in training) and the model is the shipped
   models/vid2vid/street.safetensors (see models/vid2vid/README.md).  By default every frame is
   synthesised (no real frame given); --first-frame gives the real first frame, as the paper's test mode.
3. Writes out/demo/street.mp4 (ours), side_by_side.mp4 (labels | ours | real), strip.png and metrics.json:
   PSNR / SSIM against the real frames and the temporal warping error (flow of the real video) of ours and
   of the real video itself.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from v2v.sources.labels import generic_label_set, read_id_png, render_labels  # noqa: E402
from v2v.media.metrics import psnr, ssim, warping_error  # noqa: E402
from v2v.media.tensors import uint8_to_model  # noqa: E402
from v2v.media.video_io import VideoWriter, frame_grid, list_images, open_video, write_image  # noqa: E402

HELDOUT = ROOT / "workflows" / "input" / "vid2vid_street_heldout"
WORKFLOW = ROOT / "workflows" / "api" / "vid2vid_labels_to_street.json"
MODEL = "street.safetensors"
VTEST = ROOT / ".cache" / "data" / "vtest.avi"
GEN = "2"  # the Vid2VidGenerate node of the shared workflow


def load_comfy_host():
    spec = importlib.util.spec_from_file_location("v2v_comfy_host", ROOT / "scripts" / "comfy_host.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def real_heldout_frames(n: int) -> np.ndarray:
    """The real frames the held-out labels were made from: scripts/footage_models.py extracts vtest.avi at
    stride 2, longer side 256, and holds out the last 20 %."""
    if not VTEST.is_file():
        raise SystemExit(f"{VTEST} is missing: run bash scripts/setup.sh (it fetches the sample footage)")
    video = open_video(VTEST, stride=2, max_side=256)
    return np.stack([f for _, f in video.frames(len(video) - n)])


def first_frame_prompt(prompt: dict, image_name: str) -> dict:
    prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": image_name}}
    prompt[GEN]["inputs"]["first_frame"] = ["10", 0]
    return prompt


def run_workflow(out: Path, real: np.ndarray, use_first_frame: bool) -> list[np.ndarray]:
    import av

    host_mod = load_comfy_host()
    host = host_mod.ComfyHost.ensure()
    run_dir = Path(tempfile.mkdtemp(prefix="demo-", dir=host.home))
    prompt = json.loads(WORKFLOW.read_text())
    prompt["1"]["inputs"]["path"] = HELDOUT.name
    prompt[GEN]["inputs"]["model_name"] = MODEL
    prompt[GEN]["inputs"]["filename_prefix"] = "vid2vid/demo_street"
    try:
        data = _run_in(host_mod, host, run_dir, prompt, real, use_first_frame)
    except BaseException:
        print(f"the ComfyUI run's folder (server.log) is kept for a look: {run_dir}", file=sys.stderr)
        raise
    shutil.rmtree(run_dir, ignore_errors=True)      # a finished run leaves nothing behind in the host's folder
    (out / "street.mp4").write_bytes(data)
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _run_in(host_mod, host, run_dir: Path, prompt: dict, real: np.ndarray, use_first_frame: bool) -> bytes:
    """The workflow on a server whose user folders are ``run_dir``; the generated video's bytes."""
    with host.server(run_dir) as server:
        failures = server.import_failures()
        if failures:
            raise SystemExit("the pack failed to import in ComfyUI:\n" + "\n".join(failures))
        shutil.copytree(HELDOUT, Path(server.input_dir) / HELDOUT.name, dirs_exist_ok=True)
        if use_first_frame:
            import cv2
            cv2.imwrite(str(Path(server.input_dir) / "street_first.png"), cv2.cvtColor(real[0], cv2.COLOR_RGB2BGR))
            prompt = first_frame_prompt(prompt, "street_first.png")
        client = host_mod.ComfyClient(server.url)
        print(f"ComfyUI up at {server.url}; running the labels -> street workflow on {len(real)} held-out frames",
              flush=True)
        entry = client.run(prompt, timeout=3600)
        if not entry.completed:
            raise SystemExit("workflow failed: " + json.dumps(entry.error or entry.status)[:2000])
        return client.view(entry.outputs[GEN]["videos"][0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    ap.add_argument("--first-frame", action="store_true", help="give the real first frame (paper's test mode)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    label_files = list_images(HELDOUT)
    real = real_heldout_frames(len(label_files))
    ours = run_workflow(a.out, real, a.first_frame)
    if len(ours) != len(real) or ours[0].shape != real[0].shape:
        raise SystemExit(f"got {len(ours)} frames of {ours[0].shape}, expected {len(real)} of {real[0].shape}")

    palette = np.array(generic_label_set(9).colors, dtype=np.uint8)
    labels = [render_labels(read_id_png(f), palette) for f in label_files]
    with VideoWriter(a.out / "side_by_side.mp4", fps=5.0) as writer:   # vtest is 10 fps; we took every 2nd frame
        for lab, o, r in zip(labels, ours, real):
            writer.write(np.concatenate([lab, o, r], axis=1))
    write_image(a.out / "strip.png", frame_grid([labels, ours, list(real)], columns=4))

    first = 1 if a.first_frame else 0   # a given real first frame is returned unchanged: leave it out
    o, r = uint8_to_model(np.stack(ours[first:])), uint8_to_model(real[first:])
    metrics = {
        "frames": len(ours), "size": f"{real.shape[2]}x{real.shape[1]}", "first_frame_given": a.first_frame,
        "psnr_db": round(float(psnr(o, r).mean()), 2), "ssim": round(float(ssim(o, r).mean()), 4),
        "warping_error_ours": round(warping_error(real, ours).mean, 3),
        "warping_error_real": round(warping_error(real, real).mean, 3),
    }
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))
    print(f"wrote {a.out / 'street.mp4'}, {a.out / 'side_by_side.mp4'}, {a.out / 'strip.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
