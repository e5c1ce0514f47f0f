"""Peak memory of the whole pipeline (decode -> extract -> generate -> encode) over 300 and 3,000 frames, for
every shipped model, in the CLI and in the node's file mode; frames per second end to end and in the generator.

    python bench/stream_memory.py                          # all tasks, both modes, 300 and 3,000 frames
    python bench/stream_memory.py --tasks face --lengths 100 400 --modes cli
    python bench/stream_memory.py --smoke                  # the smallest run (the test suite runs it)
    python bench/stream_memory.py --modes cli --lengths 300 --compile   # the CLI with its compiled step
    python bench/stream_memory.py --modes cli --lengths 300 --read-ahead 0 2 --repeats 2   # reading the source
                                                           #   ahead or not, alternating, in one call
    python bench/stream_memory.py --modes cli --lengths 300 --write-behind 0 4 --repeats 2  # the same for encoding
    python bench/stream_memory.py --modes cli --tasks street --lengths 300 --device cuda   # the CLI on a GPU
    git worktree add /tmp/v2v-a6a83b3 a6a83b3 && ln -s $PWD/.cache /tmp/v2v-a6a83b3/.cache
    python bench/stream_memory.py --modes cli --lengths 600 --precision fp32 int8 --code /tmp/v2v-a6a83b3
                                                           # this checkout against an older one, alternating

Each run is a separate process whose resident memory (with its children: the mediapipe worker) is sampled
every 0.1 s; the peak is reported.  The clips are real footage of at least 640x480, looped forward and
backward (no cut at the loop) to the length: street and body on OpenCV's vtest.avi (768x576), face on
OpenCV's Megamind.avi (720x528, CG faces).  Every run generates at the model's training size (``--resize
model`` / the node's ``resize = model``).  The CLI reports its own timings (``--stats``); the node run is timed
around ``run_generate``; ``seconds`` is the whole process's wall time.  ``--code`` runs other checkouts' CLIs
(float32, this environment's Python and model files, each in its own tree) in turn with this one's, on the same
clips.  Results: a markdown table and JSON (``--out``) naming the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import run_context, sample_clip, write_report  # noqa: E402

WORK = ROOT / ".cache" / "bench" / "stream_memory"
MODELS = ROOT / "models" / "vid2vid"
TASKS = {"street": "vtest.avi", "face": "Megamind.avi", "body": "vtest.avi"}


# ---- the looped clips -------------------------------------------------------------------------------------
def looped_clip(clip: Path, n: int) -> Path:
    """``clip`` looped forward and backward to ``n`` frames (no cut at the turns), as an mp4 under WORK."""
    from v2v.media.video_io import VideoWriter, read_frames

    out = WORK / f"{clip.stem}_{n}.mp4"
    if out.is_file():
        return out
    video = read_frames(clip)
    frames = list(video)                  # this preparation step holds the clip; the measured runs do not
    order = frames + frames[-2:0:-1]
    out.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out, fps=video.fps or 25.0, crf=20) as writer:
        for i in range(n):
            writer.write(order[i % len(order)])
    return out


# ---- measuring a process --------------------------------------------------------------------------------
def run_measured(cmd: list[str], env: dict | None = None, interval: float = 0.1, cwd: Path = ROOT) -> dict:
    """Run ``cmd``; peak and sampled RSS (MB) of it and its children, wall time, exit status, stderr tail."""
    import psutil

    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=err)
        ps = psutil.Process(proc.pid)
        peak, samples = 0.0, []
        while proc.poll() is None:
            try:
                tree = [ps] + ps.children(recursive=True)
                rss = sum(p.memory_info().rss for p in tree) / 2**20
            except psutil.Error:
                continue
            peak = max(peak, rss)
            samples.append((round(time.perf_counter() - t0, 2), round(rss, 1)))
            time.sleep(interval)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
    return {"returncode": proc.returncode, "seconds": round(time.perf_counter() - t0, 2), "peak_mb": round(peak, 1),
            "rss_samples": samples[:: max(1, len(samples) // 60)], "stderr_tail": tail}


def cli_run(task: str, clip: Path, out: Path, compile: bool = False, read_ahead: int | None = None,
            precision: str | None = None, code: Path = ROOT, write_behind: int | None = None,
            device: str | None = None) -> dict:
    stats = out.with_suffix(".json")
    r = run_measured([sys.executable, "-m", "v2v", "generate", "--model", str(MODELS / f"{task}.safetensors"),
                      "--source", str(clip), "--out", str(out), "--resize", "model", "--quiet", "--stats", str(stats),
                      *(["--compile"] if compile else []),
                      *(["--read-ahead", str(read_ahead)] if read_ahead is not None else []),
                      *(["--write-behind", str(write_behind)] if write_behind is not None else []),
                      *(["--precision", precision] if precision is not None else []),
                      *(["--device", device] if device is not None else [])], cwd=code)
    if r["returncode"] == 0:
        s = json.loads(stats.read_text())
        r.update(frames=s["frames"], fps=s["fps"], sampler_fps=s["sampler_fps"], cuts=s["cuts"])
    return r


def node_run(task: str, clip: Path, out: Path) -> dict:
    r = run_measured([sys.executable, str(Path(__file__).resolve()), "node-run", "--task", task, "--clip", str(clip)],
                     env={"V2V_INPUT_DIR": str(clip.parent), "V2V_OUTPUT_DIR": str(out.parent)})
    stats = out.parent / f"node_{task}_{clip.stem}.json"
    if r["returncode"] == 0 and stats.is_file():
        r.update(json.loads(stats.read_text()))
    return r


def node_main(task: str, clip: Path) -> int:
    """What a ComfyUI graph does with the file: the task's source node, then Vid2VidGenerate in video_file mode."""
    from nodes.label_video_loader import load_labels
    from nodes.pose_extract import extract_pose
    from nodes.sketch_extract import extract_sketch
    from nodes.vid2vid_generate import run_generate
    from v2v.media.video_io import read_frames

    t0 = time.perf_counter()
    if task == "street":
        source = load_labels("pseudo", 0, False, path=clip.name, pseudo_k=8, person_mask="mog2")
    elif task == "face":
        source = extract_sketch("face", True, True, 0.33, path=clip.name)
    else:
        source = extract_pose("auto", True, path=clip.name)
    _, path, _ = run_generate(source, f"{task}.safetensors", "video_file", device="cpu", resize="model",
                              filename_prefix=f"node_{task}")
    seconds = time.perf_counter() - t0
    frames = sum(1 for _ in read_frames(path))
    Path(os.environ["V2V_OUTPUT_DIR"], f"node_{task}_{clip.stem}.json").write_text(
        json.dumps({"frames": frames, "fps": round(frames / seconds, 3)}))
    return 0


def commit_of(tree: Path) -> str:
    """``tree``'s checked-out commit, short (with "+changes" when its work tree differs from it)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True, check=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "-uno") else "")


# ---- the report -------------------------------------------------------------------------------------------
def run_label(r: dict) -> str:
    return ((f"{r['code']}: " if r.get("code") else "") + r["mode"] + (" --compile" if r.get("compile") else "")
            + (f" --read-ahead {r['read_ahead']}" if r.get("read_ahead") is not None else "")
            + (f" --write-behind {r['write_behind']}" if r.get("write_behind") is not None else "")
            + (f" --precision {r['precision']}" if r.get("precision") is not None else ""))


def markdown(rows: list[dict]) -> str:
    lines = ["| task | mode | frames | peak resident MB | frames/s end to end | frames/s in the generator | "
             "process wall s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        sampler = f"{r['sampler_fps']:.2f}" if "sampler_fps" in r else "-"
        mode = run_label(r)
        lines.append(f"| {r['task']} | {mode} | {r['frames_requested']:,} | {r['peak_mb']:.0f} | "
                     f"{r.get('fps', float('nan')):.2f} | {sampler} | {r['seconds']:.1f} |")
    growth = []
    for task in dict.fromkeys(r["task"] for r in rows):
        for mode in dict.fromkeys(run_label(r) for r in rows):
            runs = sorted((r for r in rows if r["task"] == task and run_label(r) == mode),
                          key=lambda r: r["frames_requested"])
            if len(runs) >= 2 and runs[0]["frames_requested"] != runs[-1]["frames_requested"]:
                growth.append(f"{task} {mode}: {runs[-1]['peak_mb'] / runs[0]['peak_mb'] - 1:+.1%} from "
                              f"{runs[0]['frames_requested']:,} to {runs[-1]['frames_requested']:,} frames")
    return "\n".join(lines) + ("\n\npeak growth: " + "; ".join(growth) if growth else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", nargs="?", default="run", choices=("run", "node-run"))
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--lengths", nargs="+", type=int, default=None, help="frames per run (default: 300 3000; "
                                                                           "with --smoke: 12 24)")
    ap.add_argument("--modes", nargs="+", default=["cli", "node"], choices=("cli", "node"))
    ap.add_argument("--task", help="node-run: the task")
    ap.add_argument("--clip", type=Path, help="node-run: the looped clip")
    ap.add_argument("--smoke", action="store_true", help="the smallest run: face on the committed carphone clip, "
                                                         "12 and 24 frames, both modes")
    ap.add_argument("--out", type=Path, default=None, help="JSON report (default: none)")
    ap.add_argument("--compile", action="store_true",
                    help="CLI runs with --compile (the compiler's wait, cold or warm cache, is in the timing)")
    ap.add_argument("--read-ahead", nargs="+", type=int, default=[None], metavar="N",
                    help="CLI runs with --read-ahead N, each value in turn on the same clip (default: the CLI's own)")
    ap.add_argument("--write-behind", nargs="+", type=int, default=[None], metavar="N",
                    help="CLI runs with --write-behind N, each value in turn (default: the CLI's own)")
    ap.add_argument("--precision", nargs="+", default=[None], choices=("fp32", "bf16", "int8"),
                    help="CLI runs with --precision P, each value in turn (default: the CLI's own)")
    ap.add_argument("--code", nargs="+", type=Path, default=[], metavar="DIR",
                    help="other checkouts whose CLI runs (float32) in turn with this one's, e.g. a git worktree of an "
                         "older commit with this checkout's .cache linked into it")
    ap.add_argument("--device", default=None, help="CLI runs with --device D (default: the CLI's own, cpu)")
    ap.add_argument("--repeats", type=int, default=1, help="run every configuration this many times, alternating")
    ap.add_argument("--machine", default=f"{os.cpu_count()}-core CPU")
    a = ap.parse_args(argv)
    if a.action == "node-run":
        return node_main(a.task, a.clip)
    clips = {task: None for task in a.tasks}
    if a.smoke:     # committed data only
        a.lengths, clips = a.lengths or [12, 24], {"face": ROOT / "workflows" / "input" / "vid2vid_carphone_60f.mp4"}
    a.lengths = a.lengths or [300, 3000]
    rows = []
    with tempfile.TemporaryDirectory(prefix="v2v-memory-") as tmp:
        for task, clip_path in clips.items():
            for n in a.lengths:
                clip = looped_clip(clip_path or sample_clip(TASKS[task]), n)
                # (checkout, mode, read-ahead, write-behind, precision)
                configs = [(code, "cli", None, None, "fp32") for code in a.code]
                configs += [(None, mode, ahead, behind, p) for mode in a.modes
                            for ahead in (a.read_ahead if mode == "cli" else [None])
                            for behind in (a.write_behind if mode == "cli" else [None])
                            for p in (a.precision if mode == "cli" else [None])]
                for repeat in range(a.repeats):
                    for code, mode, ahead, behind, precision in configs:
                        out = Path(tmp) / mode / f"{task}_{n}.mp4"
                        out.parent.mkdir(exist_ok=True)
                        r = (node_run(task, clip, out) if mode == "node" else
                             cli_run(task, clip, out, a.compile, ahead, precision, write_behind=behind,
                                     device=a.device) if code is None else
                             cli_run(task, clip, out, precision=precision, code=code, device=a.device))
                        if r["returncode"] != 0:
                            raise SystemExit(f"{task} {mode} {n}: exit {r['returncode']}: {r['stderr_tail']}")
                        r.update(task=task, mode=mode, frames_requested=n, clip=f"{clip.name} (looped)",
                                 compile=a.compile and mode == "cli" and code is None, read_ahead=ahead,
                                 write_behind=behind, device=a.device if mode == "cli" else None, repeat=repeat,
                                 precision=precision, code=code and commit_of(code))
                        rows.append(r)
                        print(json.dumps({k: v for k, v in r.items() if k != "rss_samples"}), flush=True)
    table = markdown(rows)
    print(table)
    if a.out:
        write_report(a.out, {**run_context(a.machine, "bench/stream_memory.py", argv), "runs": rows,
                             "markdown": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
